"""The panel's migrations on two real Dovecots (tests/integration/imap_servers.py): entered by staff,
the preflight (quota, nothing written), the MX gate, the copy job run to the end, the old password
sealed, kept out of the job's arguments and the logs, and wiped after."""

# ruff: noqa: F811  (the tests take the fixture `pair` imported from test_imap_copy)

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient

from app.extensions import db
from app.models import DomainCheck, Job, MailboxUsage, Migration
from app.models.enums import MigrationState
from app.services import domains
from app.services.access import Actor
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.services.migration import migrations
from tests import factories
from tests.integration.imap_servers import MASTER, MASTER_PASSWORD
from tests.integration.mailservers import HOST
from tests.integration.test_imap_copy import pair  # noqa: F401  (the two Dovecots, once per module)

pytestmark = pytest.mark.integration

OLD_PASSWORD = "Vecchia-Segreta-" + uuid.uuid4().hex[:8]


def _staff() -> Actor:
    return Actor.for_user(factories.staff(), via="api")


def _mx(domain_id: int, verdict: str) -> None:
    row = db.session.get(DomainCheck, domain_id)
    if row is None:
        row = DomainCheck(domain_id=domain_id, first_seen={}, details={})
        db.session.add(row)
    row.verdict = verdict
    db.session.commit()


def _configure(monkeypatch, ours, **more) -> None:
    """Our side is the "ours" Dovecot through its master user; jobs run inline (restored after the test)."""
    from flask import current_app

    values = {
        "DOVECOT_IMAP_HOST": HOST,
        "DOVECOT_IMAP_PORT": ours.port,
        "DOVECOT_MASTER_USER": MASTER,
        "DOVECOT_MASTER_PASSWORD": MASTER_PASSWORD,
        "MIGRATION_DEST_SECURITY": "none",
        "JOBS_INLINE": True,
        **more,
    }
    for key, value in values.items():
        monkeypatch.setitem(current_app.config, key, value)


def _worker_side(monkeypatch, ours, **more: str) -> dict[str, str]:
    """Our side for a real worker too: set in this process's config (what runs inline here) and
    returned as the worker process's settings (strings)."""
    from flask import current_app

    from tests.conftest import TEST_CONFIG

    settings = {
        "DOVECOT_IMAP_HOST": HOST,
        "DOVECOT_IMAP_PORT": str(ours.port),
        "DOVECOT_MASTER_USER": MASTER,
        "DOVECOT_MASTER_PASSWORD": MASTER_PASSWORD,
        "MIGRATION_DEST_SECURITY": "none",
        "DATA_KEYS": TEST_CONFIG["DATA_KEYS"],
        **more,
    }
    for key, value in settings.items():
        monkeypatch.setitem(current_app.config, key, int(value) if value.isdigit() else value)
    return settings


def _office(old, ours, label: str, local: str = "mario", *, seed: bool = True):
    """A customer with domain <label><tag>.example and a mailbox `local` known to the "ours" Dovecot,
    and its account on the old server (with the seeded mail): (customer, domain, box, old username)."""
    tag = uuid.uuid4().hex[:8]
    c = factories.customer(domain=f"{label}{tag}.example", name=f"Studio {label}")
    box = factories.mailbox(c, local)
    ours.add_user(box.address, "non-usata-qui")
    src_user = f"vecchio{tag}"
    old.add_user(src_user, OLD_PASSWORD)
    if seed:
        _seed(old, src_user)
    return c, domains.list_domains(factories.SYSTEM, c.id)[0], box, src_user


def _entry(mailbox: str, **kw) -> dict:
    return {
        "host": HOST,
        "port": 143,
        "security": "none",
        "username": "vecchio",
        "password": OLD_PASSWORD,
        "mailbox": mailbox,
        **kw,
    }


def test_bad_input_is_422_per_field_and_only_staff_enter_migrations(app):
    c = factories.customer()
    other = factories.customer()
    box = factories.mailbox(c, "anna")
    foreign = factories.mailbox(other, "bruno")
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    staff = _staff()
    with pytest.raises(ValidationError) as bad:
        migrations.create(
            staff,
            domain.id,
            {
                "host": "imap..vecchio",
                "port": 70000,
                "security": "tls",
                "username": "",
                "mailbox": foreign.address,
            },
        )
    assert set(bad.value.errors) == {"host", "port", "security", "username", "password", "mailbox"}
    for host in ("imap.vecchio.it\x00", "-x.it", "a b.it", "1.2.3"):
        with pytest.raises(ValidationError) as bad:
            migrations.create(staff, domain.id, _entry(box.address, host=host))
        assert set(bad.value.errors) == {"host"}
    with pytest.raises(ValidationError) as bad:  # no second IMAP command smuggled in the login
        migrations.create(
            staff, domain.id, _entry(box.address, password="x\r\nA1 DELETE INBOX", username="a\r\nb")
        )
    assert set(bad.value.errors) == {"password", "username"}
    with pytest.raises(PermissionDenied):
        migrations.create(Actor.for_user(factories.admin(c)), domain.id, _entry(box.address))

    row = migrations.create(staff, domain.id, _entry(box.address, host="IMAP.Vecchio.it.", port="993"))
    assert (row.host, row.port, row.verify_cert, row.state) == ("imap.vecchio.it", 993, True, "draft")
    assert OLD_PASSWORD.encode() not in row.secret  # sealed
    with pytest.raises(Conflict):  # one open migration per mailbox
        migrations.create(staff, domain.id, _entry(box.address))

    # Another tenant sees nothing of it; its own customer sees it, read-only.
    stranger = Actor.for_user(factories.admin(other))
    with pytest.raises(NotFound):
        migrations.get_migration(stranger, row.id)
    with pytest.raises(NotFound):
        migrations.list_migrations(stranger, domain.id)
    owner = Actor.for_user(factories.admin(c))
    assert migrations.get_migration(owner, row.id).id == row.id
    with pytest.raises(PermissionDenied):
        migrations.cancel(owner, row.id)

    cancelled = migrations.cancel(staff, row.id)
    assert cancelled.state == "cancelled"
    assert db.session.scalar(sa.select(Migration.secret).where(Migration.id == row.id)) is None
    again = migrations.create(staff, domain.id, _entry(box.address))  # a new one may follow
    assert again.state == "draft"

    # One left "running" by a job that ended without it (its worker died for good) can still be cancelled.
    db.session.execute(sa.update(Migration).where(Migration.id == again.id).values(state="running"))
    db.session.commit()
    assert migrations.cancel(staff, again.id).state == "cancelled"


def _seed(server, user: str) -> None:
    client = IMAPClient(HOST, port=server.port, ssl=False, timeout=30)
    client.login(user, OLD_PASSWORD)
    client.create_folder("INBOX.Posta inviata")
    for n, folder in enumerate(("INBOX", "INBOX", "INBOX.Posta inviata")):
        raw = (
            f"Message-ID: <m{n}@vecchio.example>\r\nFrom: a@vecchio.example\r\nSubject: messaggio {n}\r\n"
            f"Date: Mon, 1 Jun 2015 10:00:00 +0200\r\n\r\n" + "testo\r\n" * 200
        ).encode()
        client.append(folder, raw, flags=(b"\\Seen",), msg_time=datetime(2015, 6, 1, 8, n, tzinfo=UTC))
    client.logout()


def _our_folders(server, address: str) -> dict[str, int]:
    client = IMAPClient(HOST, port=server.port, ssl=False, timeout=30)
    client.login(f"{address}*{MASTER}", MASTER_PASSWORD)
    found = {}
    for flags, _sep, name in client.list_folders():
        if b"\\Noselect" not in flags:
            found[name] = client.folder_status(name, [b"MESSAGES"])[b"MESSAGES"]
    client.logout()
    return found


def test_preflight_quota_gate_and_the_copy_job_to_the_end(app, pair, caplog, monkeypatch):
    old, ours = pair
    caplog.set_level(logging.DEBUG)
    _configure(monkeypatch, ours)
    c, domain, box, src_user = _office(old, ours, "migra")
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))

    # Starting before a preflight is refused.
    with pytest.raises(Conflict, match="preflight"):
        migrations.start(staff, row.id)

    # The mailbox is nearly full (its last usage reading): refused with the numbers, nothing written.
    quota = box.service_class.quota_mb * 1024 * 1024
    db.session.add(
        MailboxUsage(mailbox_id=box.id, used_bytes=quota - 1000, messages=1, read_at=datetime.now(UTC))
    )
    db.session.commit()
    with pytest.raises(Conflict) as full:
        migrations.preflight(staff, row.id)
    assert (
        "0.0 MB liberi" in full.value.message
        and f"{box.service_class.quota_mb} MB in tutto" in full.value.message
    )
    db.session.refresh(row)
    assert row.state == "draft" and row.preflight["ok"] is False and row.preflight["needed_bytes"] > 1000
    assert _our_folders(ours, box.address) == {"INBOX": 0}  # the preflight wrote nothing

    db.session.execute(sa.delete(MailboxUsage))
    db.session.commit()
    row = migrations.preflight(staff, row.id)
    assert row.state == "preflight_ok"
    assert row.preflight["totals"]["source_count"] == 3
    assert {f["target"] for f in row.preflight["folders"]} == {"INBOX", "Sent"}

    # The gate: the MX has not propagated yet.
    _mx(domain.id, "published")
    with pytest.raises(Conflict, match="propagato"):
        migrations.start(staff, row.id)
    assert db.session.get(Migration, row.id).state == "preflight_ok"

    _mx(domain.id, "propagated")
    row = migrations.start(staff, row.id)  # JOBS_INLINE: the job ran to its end here
    assert row.state == "done", row.error
    assert row.report["totals"]["copied"] == 3 and row.report["totals"]["missing"] == 0
    job = db.session.get(Job, row.job_id)
    assert (job.kind, job.queue, job.state, job.args) == ("migration_copy", "migration", "done", [row.id])
    assert job.done == 3
    assert db.session.scalar(sa.select(Migration.secret).where(Migration.id == row.id)) is None  # wiped
    folders = _our_folders(ours, box.address)
    assert (folders["INBOX"], folders["Sent"]) == (2, 1)

    # Re-run (a new migration: the password was wiped): nothing is copied twice.
    again = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
    migrations.preflight(staff, again.id)
    again = migrations.start(staff, again.id)
    assert again.state == "done"
    assert (again.report["totals"]["copied"], again.report["totals"]["already_present"]) == (0, 3)

    # The old password was never in a job's row nor in the logs.
    for j in db.session.scalars(sa.select(Job)):
        assert OLD_PASSWORD not in repr((j.args, j.message, j.result))
    assert OLD_PASSWORD not in caplog.text
    actions = [a for (a,) in db.session.execute(sa.text("SELECT action FROM audit_events ORDER BY id"))]
    assert [a for a in actions if a.startswith("migration.")] == [
        "migration.create",
        "migration.preflight",
        "migration.preflight",
        "migration.start",
        "migration.create",
        "migration.preflight",
        "migration.start",
    ]


def test_a_failed_login_fails_the_preflight_and_a_staff_override_opens_the_gate(app, pair, monkeypatch):
    old, ours = pair
    _configure(monkeypatch, ours)
    c, domain, box, src_user = _office(old, ours, "override", "luisa", seed=False)
    staff = _staff()
    wrong = migrations.create(
        staff, domain.id, _entry(box.address, port=old.port, username=src_user, password="sbagliata")
    )
    with pytest.raises(Conflict, match="Sorgente"):
        migrations.preflight(staff, wrong.id)
    assert db.session.get(Migration, wrong.id).state == "draft"
    migrations.cancel(staff, wrong.id)

    row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
    migrations.preflight(staff, row.id)
    from app.services import domain_checks

    domain_checks.allow_migration(staff, domain.id, "Il cliente passa oggi, MX cambiato stamattina")
    row = migrations.start(staff, row.id)
    assert row.state == MigrationState.DONE and row.report["totals"]["source_count"] == 0


def test_the_api_doors_enter_check_start_and_show_a_migration(app, client, pair, monkeypatch):
    from app.services import users
    from tests.web.test_openapi import Api, _fits

    old, ours = pair
    _configure(monkeypatch, ours)
    doc = client.get("/api/v1/openapi.json").get_json()
    c, domain, box, src_user = _office(old, ours, "api", "carla")
    other = factories.customer()
    staff = Api(client, users.create_token(factories.SYSTEM, factories.staff(), "tests")[1])
    admin = Api(client, users.create_token(factories.SYSTEM, factories.admin(c), "tests")[1])
    stranger = Api(client, users.create_token(factories.SYSTEM, factories.admin(other), "tests")[1])

    bad = staff("POST", f"/domains/{domain.id}/migrations", {"host": "x y", "port": 0, "security": "tls"})
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]) == {"host", "port", "security", "username", "password", "mailbox"}
    entry = _entry(box.address, port=old.port, username=src_user)
    assert admin("POST", f"/domains/{domain.id}/migrations", entry).status_code == 403
    created = staff("POST", f"/domains/{domain.id}/migrations", entry)
    assert created.status_code == 201, created.get_json()
    _fits(doc, "/api/v1/domains/{domain_id}/migrations", "post", 201, created.get_json())
    assert OLD_PASSWORD not in created.get_data(as_text=True)
    mid = created.get_json()["id"]
    assert stranger("GET", f"/migrations/{mid}").status_code == 404
    assert stranger("POST", f"/migrations/{mid}/start").status_code == 404
    assert stranger("GET", f"/domains/{domain.id}/migrations").status_code == 404

    checked = staff("POST", f"/migrations/{mid}/preflight")
    assert checked.status_code == 200 and checked.get_json()["state"] == "preflight_ok"
    _fits(doc, "/api/v1/migrations/{migration_id}/preflight", "post", 200, checked.get_json())
    refused = staff("POST", f"/migrations/{mid}/start")
    assert refused.status_code == 409 and "MX" in refused.get_json()["error"]
    _mx(domain.id, "propagated")
    started = staff("POST", f"/migrations/{mid}/start")
    assert started.status_code == 200, started.get_json()
    seen = admin("GET", f"/migrations/{mid}").get_json()  # the customer reads its own
    assert seen["state"] == "done" and seen["password_kept"] is False
    assert seen["report"]["totals"]["copied"] == 3 and seen["job"]["state"] == "done"
    _fits(doc, "/api/v1/migrations/{migration_id}", "get", 200, seen)
    listed = staff("GET", f"/domains/{domain.id}/migrations").get_json()
    assert [m["id"] for m in listed] == [mid]
    _fits(doc, "/api/v1/domains/{domain_id}/migrations", "get", 200, listed)
    assert staff("POST", f"/migrations/{mid}/cancel").status_code == 409  # already done


def _copying(*ids: int) -> None:
    """These migrations are running, each under a live job (as a worker copying them would have it)."""
    for mid in ids:
        row = db.session.get(Migration, mid)
        job = Job(
            kind="migration_copy",
            queue="migration",
            customer_id=row.customer_id,
            requested_by="tests",
            args=[mid],
            state="running",
            started_at=datetime.now(UTC),
            heartbeat_at=datetime.now(UTC),
        )
        db.session.add(job)
        db.session.flush()
        row.state, row.job_id, row.started_at = "running", job.id, datetime.now(UTC)
    db.session.commit()


def _worker_died(*ids: int) -> None:
    """The jobs copying these migrations ended without moving them (their worker died)."""
    for mid in ids:
        db.session.get(Job, db.session.get(Migration, mid).job_id).state = "failed"
    db.session.commit()


def _busy_host(c, domain, staff, n: int) -> list[int]:
    """n copies already running from HOST (other mailboxes of the customer)."""
    ids = []
    for _ in range(n):
        other_box = factories.mailbox(c)
        row = migrations.create(staff, domain.id, _entry(other_box.address))
        ids.append(row.id)
    _copying(*ids)
    return ids


def test_a_copy_waits_for_its_turn_without_holding_a_worker_and_runs_when_one_ends(app, pair, monkeypatch):
    old, ours = pair
    _configure(monkeypatch, ours, MIGRATION_PER_HOST=2)
    c, domain, box, src_user = _office(old, ours, "turno", "piero")
    _mx(domain.id, "propagated")
    staff = _staff()
    busy = _busy_host(c, domain, staff, 2)

    # Two copies run from the old server: this one's job ends at once, the migration stays queued,
    # waiting for its turn; it is cancelled while it waits.
    row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
    migrations.preflight(staff, row.id)
    started = time.monotonic()
    row = migrations.start(staff, row.id)
    assert time.monotonic() - started < 5
    assert (row.state, row.waiting_turn) == ("queued", True)
    job = db.session.get(Job, row.job_id)
    assert job.state == "done" and "attesa" in job.message and job.result["waiting"] is True
    assert migrations.wake_waiting(HOST) == []  # still no turn free
    row = migrations.cancel(staff, row.id)
    assert row.state == "cancelled" and row.report is None
    assert db.session.scalar(sa.select(Migration.secret).where(Migration.id == row.id)) is None

    # Again: it waits; one of the two running ends, and it is copied.
    row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
    migrations.preflight(staff, row.id)
    row = migrations.start(staff, row.id)
    assert row.state == "queued"
    _worker_died(busy[0])
    migrations.cancel(staff, busy[0])  # its copy ends: the next from that server takes the turn
    db.session.refresh(row)
    assert row.state == "done" and row.report["totals"]["copied"] == 3
    assert db.session.get(Job, row.job_id).state == "done"


def test_with_one_turn_per_server_the_second_copy_runs_after_the_first(app, pair, monkeypatch):
    """MIGRATION_PER_HOST=1, two mailboxes from one old server: the second ends its job at once and
    is copied when the first's copy ends (here the first is caught half-way: running, its job gone)."""
    old, ours = pair
    _configure(monkeypatch, ours, MIGRATION_PER_HOST=1)
    tag = uuid.uuid4().hex[:8]
    c = factories.customer(domain=f"uno{tag}.example")
    first_box, second_box = factories.mailbox(c, "primo"), factories.mailbox(c, "secondo")
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    _mx(domain.id, "propagated")
    staff = _staff()
    rows = []
    for box in (first_box, second_box):
        ours.add_user(box.address, "non-usata-qui")
        src_user = f"v{box.local_part}{tag}"
        old.add_user(src_user, OLD_PASSWORD)
        _seed(old, src_user)
        row = migrations.create(staff, domain.id, _entry(box.address, port=old.port, username=src_user))
        migrations.preflight(staff, row.id)
        rows.append(row)
    first, second = rows
    # The first one copying (as its job would be): the second's job ends at once, holding no worker.
    _copying(first.id)
    second = migrations.start(staff, second.id)
    assert second.state == "queued" and second.waiting_turn
    assert db.session.get(Job, second.job_id).state == "done"
    assert migrations.run_due()["woken"] == []  # the cron finds no turn free
    # The first's copy ends (cancelled half-way, its worker gone): the second is copied.
    _worker_died(first.id)
    migrations.cancel(staff, first.id)
    db.session.refresh(second)
    assert second.state == "done" and second.report["totals"]["copied"] == 3
    assert db.session.get(Migration, first.id).state == "cancelled"


def test_a_customer_admin_cannot_cancel_staffs_migration_through_the_portals_jobs(app, client, auth):
    """The generic jobs cancel of the portal: a migration_copy job is staff's, so refused (403), the
    component shows no cancel button, and the migration goes on untouched (its password kept)."""
    c = factories.customer()
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    staff = _staff()
    running = migrations.create(staff, domain.id, _entry(factories.mailbox(c).address))
    _copying(running.id)
    queued = migrations.create(staff, domain.id, _entry(factories.mailbox(c).address))
    queued.state = "queued"
    db.session.commit()
    _copying(queued.id)
    queued_job = db.session.get(Job, db.session.get(Migration, queued.id).job_id)
    queued_job.state, queued.state = "queued", "queued"
    db.session.commit()
    auth.login(factories.admin(c).email)

    for mid, state in ((running.id, "running"), (queued.id, "queued")):
        job_id = db.session.get(Migration, mid).job_id
        html = client.get(f"/customers/{c.id}/jobs/{job_id}", headers={"HX-Request": "true"}).get_data(True)
        assert "Annulla il lavoro" not in html
        refused = client.post(f"/customers/{c.id}/jobs/{job_id}/cancel", headers={"HX-Request": "true"})
        assert refused.status_code == 403
        db.session.expire_all()
        row, job = db.session.get(Migration, mid), db.session.get(Job, job_id)
        assert (row.state, row.cancel_requested_at, row.password_kept) == (state, None, True)
        assert (job.state, job.cancel_requested) == (state, False)
