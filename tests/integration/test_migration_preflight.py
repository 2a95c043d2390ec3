"""The migrations' preflight on the two real Dovecots of imap_servers.py: a `migration_preflight` job
(202 while it is at work, one at a time, no start before its end, a cancel stops it), a refused check
that "Riprova" cannot bypass, folders of the old mailbox that cannot be read, and our side's failures
told to the customer without our master user, host or port."""

# ruff: noqa: F811  (the tests take fixtures imported from other test modules)

from __future__ import annotations

import contextlib
import logging
import re
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Job, MailboxUsage, Migration
from app.services import users
from app.services.errors import Conflict
from app.services.migration import migrations
from tests import factories
from tests.conftest import Auth
from tests.integration.imap_servers import MASTER, MASTER_PASSWORD
from tests.integration.mailservers import HOST
from tests.integration.test_imap_copy import _RewritingProxy, pair  # noqa: F401  (the two Dovecots)
from tests.integration.test_jobs import fresh, queues, workers  # noqa: F401
from tests.integration.test_migrations_panel import (
    OLD_PASSWORD,
    _configure,
    _entry,
    _mx,
    _office,
    _staff,
    _worker_side,
)
from tests.web.test_openapi import Api, _fits

pytestmark = pytest.mark.integration


def _setup(old, ours, label: str):
    c, domain, box, src_user = _office(old, ours, label)
    _mx(domain.id, "propagated")
    return c, domain, box, src_user


def _api(user) -> Api:
    from flask import current_app

    return Api(current_app.test_client(), users.create_token(factories.SYSTEM, user, "tests")[1])


def _until(check, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in time: {what}")
        time.sleep(0.1)


class _SlowGreeting(_RewritingProxy):
    """A relay to the old server whose greeting comes `delay` seconds late: a check at work for a while."""

    def __init__(self, port: int, delay: float):
        def late(data: bytes) -> bytes:
            if data.startswith(b"* OK"):
                time.sleep(delay)
            return data

        super().__init__(port, late)


def test_the_preflight_is_a_job_one_at_a_time_and_a_cancel_stops_it(
    app, client, pair, queues, workers, monkeypatch
):
    """A real worker.py: the API answers 202 with the job, a second check and a start are refused
    while it is at work, the worker stores the findings; a check cancelled while at work ends
    cancelled and stores nothing."""
    old, ours = pair
    settings = _worker_side(monkeypatch, ours)
    monkeypatch.setitem(app.config, "JOBS_INLINE", False)
    doc = client.get("/api/v1/openapi.json").get_json()
    c, domain, box, src_user = _setup(old, ours, "attesa")
    staff, customer = _api(factories.staff()), _api(factories.admin(c))
    slow = _SlowGreeting(old.port, delay=4)
    try:
        created = staff(
            "POST", f"/domains/{domain.id}/migrations", _entry(box.address, port=slow.port, username=src_user)
        )
        mid = created.get_json()["id"]
        assert customer("POST", f"/migrations/{mid}/preflight").status_code == 403

        queued = staff("POST", f"/migrations/{mid}/preflight")
        assert queued.status_code == 202, queued.get_json()
        body = queued.get_json()
        assert (body["state"], body["job"]["kind"], body["job"]["state"]) == (
            "draft",
            "migration_preflight",
            "queued",
        )
        _fits(doc, "/api/v1/migrations/{migration_id}/preflight", "post", 202, body)
        job = db.session.get(Job, body["job"]["id"])
        assert (job.queue, job.args) == ("migration", [mid])  # the id only, never the password
        again = staff("POST", f"/migrations/{mid}/preflight")
        assert again.status_code == 409 and "già in corso" in again.get_json()["error"]
        early = staff("POST", f"/migrations/{mid}/start")
        assert early.status_code == 409 and "verifica" in early.get_json()["error"].lower()

        workers("--queues", "migration", **settings)
        _until(lambda: fresh(job.id).state == "done", what="the check's job")
        seen = customer("GET", f"/migrations/{mid}").get_json()
        assert seen["state"] == "preflight_ok" and seen["preflight"]["ok"] is True
        assert seen["preflight"]["totals"]["source_count"] == 3 and seen["job"]["state"] == "done"
        db.session.expire_all()
        checked_at = db.session.get(Migration, mid).preflight_at

        # Checked again, and cancelled while the worker waits for the old server's greeting.
        second = staff("POST", f"/migrations/{mid}/preflight").get_json()["job"]["id"]
        _until(lambda: fresh(second).state == "running", what="the second check at work")
        cancelled = staff("POST", f"/migrations/{mid}/cancel")
        assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
        _until(lambda: fresh(second).state != "running", what="the cancelled check's end")
        assert fresh(second).state == "cancelled" and fresh(second).cancel_requested  # asked to stop
        db.session.expire_all()
        row = db.session.get(Migration, mid)
        assert row.state == "cancelled" and row.preflight_at == checked_at  # nothing stored
        assert db.session.scalar(sa.select(Migration.secret).where(Migration.id == mid)) is None
        for j in db.session.scalars(sa.select(Job)):
            assert OLD_PASSWORD not in repr((j.args, j.message, j.result))
    finally:
        slow.close()


def test_a_refused_preflight_cannot_be_bypassed_by_starting_a_failed_migration_again(
    app, client, auth, pair, monkeypatch
):
    old, ours = pair
    _configure(monkeypatch, ours)
    c, domain, box, src_user = _setup(old, ours, "riprova")
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
    migrations.preflight(staff, row.id)
    # Its copy failed (a network gone, say); the mailbox has meanwhile filled up.
    db.session.execute(
        sa.update(Migration).where(Migration.id == row.id).values(state="failed", error="Rete caduta.")
    )
    quota = box.service_class.quota_mb * 1024 * 1024
    db.session.add(
        MailboxUsage(mailbox_id=box.id, used_bytes=quota - 1000, messages=1, read_at=datetime.now(UTC))
    )
    db.session.commit()
    with pytest.raises(Conflict, match="MB liberi"):
        migrations.preflight(staff, row.id)
    assert db.session.get(Migration, row.id).state == "failed"
    with pytest.raises(Conflict, match="Esegui di nuovo la verifica"):
        migrations.start(staff, row.id)
    # The page offers the check again, not "Riprova"; POSTing the start anyway is refused.
    auth.login(factories.staff().email)
    detail = f"/admin/migrations/{row.id}"
    html = client.get(detail).get_data(as_text=True)
    assert f'action="{detail}/preflight"' in html and f'action="{detail}/start"' not in html
    assert "Riprova" not in html
    assert client.post(detail + "/start").status_code == 409
    assert db.session.get(Migration, row.id).state == "failed"

    db.session.execute(sa.delete(MailboxUsage))
    db.session.commit()
    migrations.preflight(staff, row.id)
    assert migrations.start(staff, row.id).state == "done"


def _unreadable(old, user: str, folders: list[str]) -> list:
    """Folders of the old account Dovecot cannot open (their maildir without permissions)."""
    from imapclient import IMAPClient

    client = IMAPClient(HOST, port=old.port, ssl=False, timeout=30)
    client.login(user, OLD_PASSWORD)
    for name in folders:
        client.create_folder(f"INBOX.{name}")
        client.append(f"INBOX.{name}", b"Subject: chiusa\r\n\r\nnon si legge\r\n")
    client.logout()
    closed = []
    for name in folders:
        path = old.root / "vmail" / user / f".{name}"
        assert path.is_dir(), path
        path.chmod(0)
        closed.append(path)
    return closed


def test_folders_of_the_old_mailbox_that_cannot_be_read_refuse_the_preflight(app, pair, monkeypatch):
    old, ours = pair
    _configure(monkeypatch, ours)
    c, domain, box, src_user = _setup(old, ours, "chiusa")
    closed = _unreadable(old, src_user, ["Chiusa"])
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
    try:
        with pytest.raises(Conflict) as refused:
            migrations.preflight(staff, row.id)
        assert "non si possono leggere: INBOX.Chiusa." in refused.value.message
        row = db.session.get(Migration, row.id)
        assert row.state == "draft" and row.preflight["ok"] is False
        assert [f["source"] for f in row.preflight["folders"] if f["errors"]] == ["INBOX.Chiusa"]
        with pytest.raises(Conflict, match="Esegui prima la verifica"):
            migrations.start(staff, row.id)

        # Many of them: a few named, then how many more.
        more = _unreadable(old, src_user, ["Uno", "Due", "Tre", "Quattro"])
        closed += more
        with pytest.raises(Conflict) as refused:
            migrations.preflight(staff, row.id)
        named = re.search(r"non si possono leggere: (.*)\. Controllale", refused.value.message).group(1)
        assert named.endswith(" e altre 2") and named.count(",") == 2, named

        # Readable again: the check passes.
        for path in closed:
            path.chmod(0o700)
        assert migrations.preflight(staff, row.id).state == "preflight_ok"
    finally:
        for path in closed:
            with contextlib.suppress(OSError):
                path.chmod(0o700)


def test_a_failure_on_our_side_is_told_to_the_customer_without_our_master_user_or_server(
    app, client, pair, monkeypatch, caplog
):
    old, ours = pair
    _configure(monkeypatch, ours)
    caplog.set_level(logging.WARNING)
    c, domain, box, src_user = _setup(old, ours, "nostro")
    staff = _staff()
    customer = _api(factories.admin(c))
    neutral = "Il nostro server di posta non ha accettato la migrazione"
    leaks = (f"*{MASTER}", f":{ours.port}", "Destinazione")

    def shown(mid: int) -> str:
        """What the customer reads: the API's view and the portal's page."""
        seen = customer("GET", f"/migrations/{mid}").get_data(as_text=True)
        portal = client.application.test_client()
        Auth(portal).login(factories.admin(c).email)
        return seen + portal.get(f"/customers/{c.id}/migrations/{mid}").get_data(as_text=True)

    # The preflight with our master password wrong.
    monkeypatch.setitem(app.config, "DOVECOT_MASTER_PASSWORD", "non-questa")
    row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
    with pytest.raises(Conflict) as refused:
        migrations.preflight(staff, row.id)
    assert refused.value.message.startswith(neutral)
    page = shown(row.id)
    assert neutral in page and not any(leak in page for leak in leaks), page
    assert f"{box.address}*{MASTER}" in caplog.text and "non-questa" not in caplog.text  # the detail, logged

    # The copy: a good check, then our side refuses the copy.
    monkeypatch.setitem(app.config, "DOVECOT_MASTER_PASSWORD", MASTER_PASSWORD)
    migrations.preflight(staff, row.id)
    monkeypatch.setitem(app.config, "DOVECOT_MASTER_PASSWORD", "non-questa")
    row = migrations.start(staff, row.id)  # JOBS_INLINE: the copy's job ran here
    assert row.state == "failed" and row.error.startswith(neutral)
    assert db.session.get(Job, row.job_id).message.startswith(neutral)
    page = shown(row.id)
    assert neutral in page and not any(leak in page for leak in leaks), page

    # A refusal of the old server keeps its reason (the old account's, nothing of ours).
    monkeypatch.setitem(app.config, "DOVECOT_MASTER_PASSWORD", MASTER_PASSWORD)
    migrations.cancel(staff, row.id)
    wrong = migrations.create(
        staff, domain.id, _entry(box.address, port=old.port, username=src_user, password="sbagliata")
    )
    with pytest.raises(Conflict) as refused:
        migrations.preflight(staff, wrong.id)
    assert refused.value.message.startswith("Sorgente") and src_user in refused.value.message
    assert not any(leak in refused.value.message for leak in leaks)
