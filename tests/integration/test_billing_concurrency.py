"""The daily charge as operators run it: real `flask billing charge` processes on PostgreSQL.

Two started at once charge each day once; one killed half-way (SIGKILL) and run again
charges each day once. The customers and their mailbox periods are written directly
(thousands of them): the charge reads only the periods.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Customer, LedgerEntry, MailboxPeriod
from app.services import billing
from tests.billingkit import class_id, ledger_checked, rome  # noqa: F401
from tests.integration.test_supervision import ROOT

pytestmark = [
    pytest.mark.usefixtures("ledger_checked"),
    # Concurrent charge processes need PostgreSQL's locks: these tests run on it alone
    # (not collected for SQLite, rather than skipped there).
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]

UNTIL = date(2026, 1, 20)
DAYS = 20  # 1 to 20 January


@pytest.fixture
def postgresql(backend, database_url):
    return database_url


def many_customers(n: int) -> list[int]:
    """n Pay-per-Use customers since 1 January, each with one mailbox (a bigger one every third)."""
    start = rome(2026, 1, 1, 8)
    small, big = class_id("Business Mail 100 MB"), class_id("Professional Suite 25.000 MB")
    ids = list(
        db.session.scalars(
            sa.insert(Customer).returning(Customer.id),
            [{"name": f"Cliente {i}", "plan": "payg", "created_at": start} for i in range(n)],
        )
    )
    db.session.execute(
        sa.insert(MailboxPeriod),
        [
            {
                "mailbox_id": 1_000_000 + cid,
                "customer_id": cid,
                "address": f"utente@cliente{cid}.example",
                "service_class_id": big if cid % 3 == 0 else small,
                "status": "active",
                "valid_from": start,
                "valid_to": None,
            }
            for cid in ids
        ],
    )
    db.session.commit()
    return ids


def charge_process(database_url: str, tmp_path, **env) -> subprocess.Popen:
    environment = {
        **os.environ,
        "APP_ENV": "development",
        "SECRET_KEY": "billing-test",
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "billing", "charge", "--date", UNTIL.isoformat()],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def charge_counts() -> dict[int, int]:
    db.session.rollback()
    rows = db.session.execute(
        sa.select(LedgerEntry.customer_id, sa.func.count())
        .where(LedgerEntry.kind == "charge")
        .group_by(LedgerEntry.customer_id)
    )
    return dict(rows.all())


def assert_each_day_charged_once(ids: list[int]) -> None:
    assert charge_counts() == {cid: DAYS for cid in ids}
    balances = dict(db.session.execute(sa.select(Customer.id, Customer.balance_centipoints)).all())
    assert {cid: balances[cid] for cid in ids} == {
        cid: -DAYS * (3000 if cid % 3 == 0 else 100) for cid in ids
    }
    assert billing.verify() == []


def test_two_charge_processes_started_together_charge_each_day_once(postgresql, tmp_path):
    ids = many_customers(300)
    first, second = (charge_process(postgresql, tmp_path, BILLING_BATCH="40") for _ in range(2))
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert_each_day_charged_once(ids)
    # Between them they wrote every customer-day once: what one wrote, the other skipped.
    charged = [int(re.search(r"Addebitati (\d+)", out).group(1)) for out, _err in outputs]
    assert sum(charged) == len(ids) * DAYS, outputs


def test_a_charge_process_killed_half_way_and_run_again_charges_each_day_once(postgresql, tmp_path):
    ids = many_customers(400)
    process = charge_process(postgresql, tmp_path, BILLING_BATCH="10")
    deadline = time.monotonic() + 120
    while sum(charge_counts().values()) < 200:
        assert process.poll() is None and time.monotonic() < deadline, (
            "the charge ended before it could be killed"
        )
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    half = sum(charge_counts().values())
    assert 0 < half < len(ids) * DAYS
    assert billing.verify() == []  # whole batches or nothing: every balance is its entries' sum
    again = charge_process(postgresql, tmp_path)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert_each_day_charged_once(ids)
