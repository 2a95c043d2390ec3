"""Bulk provisioning on real components: the template filled in, uploaded, applied by real RQ
workers (two sharing the hashing, both killed with SIGKILL half-way, the work then finished
by new ones), and the mailboxes logging in on a real Dovecot and receiving through Postfix."""

from __future__ import annotations

import io
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import psutil
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Alias, DistributionList, Import, ImportRow, Job, Mailbox
from app.models.enums import ImportState, RowOutcome
from app.services import imports
from app.services import jobs as job_service
from tests import factories, sheetkit
from tests.integration.conftest import REDIS_URL
from tests.integration.mailservers import HOST
from tests.integration.test_mailservers import message, send, subject, wait_in_inbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
C100 = "Business Mail 100 MB"
SECRET = "Segreta-Lunga-42"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_template_filled_uploaded_and_applied_logs_in_and_receives_on_dovecot(servers, app, client, auth):
    """The customer's journey through the portal's doors: the template, an upload, the preview, apply,
    the generated passwords and the report; then the mailboxes work on the real servers."""
    mail = servers
    saved = app.config["JOBS_INLINE"]
    app.config["JOBS_INLINE"] = True
    try:
        c = factories.customer("contract", {C100: 10}, domain="importati.example")
        admin = factories.admin(c)
        auth.login(admin.email)
        template = client.get(f"/customers/{c.id}/imports/modello.xlsx")
        assert template.status_code == 200
        book = openpyxl.load_workbook(io.BytesIO(template.data))
        boxes, alias_sheet, list_sheet = book.worksheets[:3]
        boxes.append(["Anna@Importati.example", SECRET, "Anna", C100])
        boxes.append(["gen@importati.example", None, "Gen", C100, "Sì"])
        alias_sheet.append(["info@importati.example", "anna@importati.example"])
        list_sheet.append(
            ["tutti@importati.example", "anna@importati.example, gen@importati.example", "Tutti"]
        )
        filled = io.BytesIO()
        book.save(filled)
        uploaded = client.post(
            f"/customers/{c.id}/imports",
            data={"file": (io.BytesIO(filled.getvalue()), "caselle.xlsx")},
            content_type="multipart/form-data",
        )
        assert uploaded.status_code == 303, uploaded.get_data(as_text=True)[:500]
        page = uploaded.headers["Location"]
        assert "Verranno creati 6 elementi" in client.get(page).get_data(as_text=True)
        assert client.post(page + "/apply", data={"scope": "all"}).status_code == 303
        taken = client.post(page + "/passwords", data={"current_password": factories.PASSWORD})
        assert taken.status_code == 200
        report = client.get(page + "/resoconto.xlsx")
        assert report.status_code == 200
    finally:
        app.config["JOBS_INLINE"] = saved
    generated_password = list(
        openpyxl.load_workbook(io.BytesIO(taken.data)).active.iter_rows(values_only=True)
    )[1][1]

    mail.imap("anna@importati.example", SECRET).logout()
    mail.imap("gen@importati.example", generated_password).logout()
    to_alias, to_list = subject(), subject()
    send(mail, "info@importati.example", to_alias)
    # The list takes mail from the customer's own mailboxes (its default policy): anna logs in to send.
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login("anna@importati.example", SECRET)
        smtp.send_message(
            message("anna@importati.example", "tutti@importati.example", to_list),
            from_addr="anna@importati.example",
            to_addrs=["tutti@importati.example"],
        )
    wait_in_inbox(mail, "anna@importati.example", to_alias, password=SECRET)
    wait_in_inbox(mail, "gen@importati.example", to_list, password=generated_password)
    outcomes = list(openpyxl.load_workbook(io.BytesIO(report.data)).active.iter_rows(values_only=True))[1:]
    assert {row[7] for row in outcomes} == {"Creato"} and len(outcomes) == 6


def worker_env(app, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "development",
        "SECRET_KEY": "imports-test",
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": REDIS_URL,
        # The same key as the panel that sealed the passwords.
        "DATA_KEYS": app.config["DATA_KEYS"],
        # The production hashing cost (~0.3 s): the kill lands half-way, and on SQLite each process
        # waits for the write lock only briefly between its hashes, as in production; fast heartbeats.
        "ARGON2_TIME_COST": "3",
        "ARGON2_MEMORY_COST": "65536",
        # The slots the killed workers held count 10 s, not a minute: the test need not wait that.
        "ARGON2_SLOT_HOLD_SECONDS": "10",
        "JOB_HEARTBEAT_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start_workers(env, n: int, tmp_path: Path, tag: str) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        log = open(tmp_path / f"worker-{tag}-{i}.log", "wb")  # noqa: SIM115  (closed with the process)
        procs.append(
            subprocess.Popen(
                [sys.executable, "worker.py", "--queues", "bulk"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        )
    return procs


def kill(procs: list[subprocess.Popen]) -> None:
    family = []
    for p in procs:
        try:
            family += [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        os.kill(p.pid, signal.SIGKILL) if p.poll() is None else None
    psutil.wait_procs(family, timeout=10)


# PostgreSQL only: processes sharing an import is what SELECT ... FOR UPDATE SKIP LOCKED is for.
# On SQLite (one writer at a time, no fairness among waiting writers) a process that writes again
# at once can keep the lock for the whole import, and the second never gets a row to claim.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_workers_share_an_import_and_a_sigkill_half_way_loses_nothing(app, connection, tmp_path):
    n = 60
    c = factories.customer("contract", {C100: n}, domain="lavoro.example")
    rows = [[f"u{i:03d}@lavoro.example", SECRET, f"Utente {i}", C100] for i in range(n)]
    data = sheetkit.filled_template(
        [C100],
        mailboxes=rows,
        aliases=[[f"a{i}@lavoro.example", f"u{i:03d}@lavoro.example"] for i in range(10)],
    )
    imp = imports.preview(factories.SYSTEM, c.id, data, "grande.xlsx")
    assert imp.problems == []
    saved = {k: app.config[k] for k in ("REDIS_URL", "JOBS_INLINE", "JOB_STALE_SECONDS")}
    app.config.update(REDIS_URL=REDIS_URL, JOBS_INLINE=False, JOB_STALE_SECONDS=3)
    env = worker_env(app, tmp_path)
    first = start_workers(env, 2, tmp_path, "first")
    second: list[subprocess.Popen] = []
    try:
        for i in range(2):  # both workers ready before the import starts
            log = tmp_path / f"worker-first-{i}.log"
            wait_for(lambda log=log: b"Listening on" in log.read_bytes(), 60, "a worker to listen")
        imports.start_apply(factories.SYSTEM, imp.id)

        def created() -> int:
            db.session.rollback()
            return db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox))

        def claimants() -> list:
            db.session.rollback()
            found = db.session.scalars(
                sa.select(ImportRow.claimed_by).where(ImportRow.import_id == imp.id).distinct()
            ).all()
            return [x for x in found if x is not None]

        # Both processes hash (a worker may take a moment to start the helper job), then the kill.
        wait_for(lambda: len(claimants()) == 2 and created() >= 10, 90, "both workers hashing")
        parts = db.session.execute(
            sa.select(Job.state, Job.result).where(Job.kind == "bulk_import_part")
        ).all()
        assert len(claimants()) == 2, f"both workers hashed: {parts}"
        kill(first)
        at_kill = created()
        assert at_kill < n, "killed too late to test anything"
        time.sleep(1)
        assert created() == at_kill, "something went on writing after the kill"

        second = start_workers(env, 2, tmp_path, "second")
        time.sleep(app.config["JOB_STALE_SECONDS"] + 1)
        retried = job_service.sweep_stale_jobs()
        assert retried, "the killed jobs were found dead and queued again"

        def finished():
            db.session.rollback()
            return db.session.get(Import, imp.id).state == ImportState.DONE

        wait_for(finished, 90, "the import to finish")
    finally:
        kill(first + second)
        app.config.update(saved)
    db.session.expire_all()
    odd = db.session.execute(
        sa.select(ImportRow.address, ImportRow.outcome, ImportRow.message, ImportRow.claimed_by).where(
            ImportRow.import_id == imp.id, ImportRow.outcome != RowOutcome.CREATED
        )
    ).all()
    assert odd == []
    addresses = db.session.scalars(sa.select(Mailbox.address).order_by(Mailbox.address)).all()
    assert addresses == [r[0] for r in rows]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alias)) == 10
    outcomes = dict(
        db.session.execute(
            sa.select(ImportRow.outcome, sa.func.count())
            .where(ImportRow.import_id == imp.id)
            .group_by(ImportRow.outcome)
        ).all()
    )
    assert outcomes == {RowOutcome.CREATED: n + 10}
    assert db.session.scalar(sa.select(sa.func.count()).where(ImportRow.secret.is_not(None))) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DistributionList)) == 0
