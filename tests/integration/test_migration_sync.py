"""Migrations kept in sync until the MX switch, on the two real Dovecots of imap_servers.py: passes
every MIGRATION_SYNC_HOURS copying only what is new, the final pass once the MX has propagated (or
staff finish it), a failed pass that keeps syncing, cancel; the customer's one mail when the
domain's migration is over (through a real SMTP sink); and a copy run by the real worker.py."""

# ruff: noqa: F811  (the tests take fixtures imported from other test modules)

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient

from app.extensions import db
from app.models import Domain, Job, Migration, Outbox
from app.services import clock, domains
from app.services.errors import Conflict
from app.services.migration import migrations
from tests import factories
from tests.integration.mailservers import HOST
from tests.integration.test_imap_copy import pair  # noqa: F401  (the two Dovecots, once per module)
from tests.integration.test_jobs import fresh, queues, workers  # noqa: F401
from tests.integration.test_migrations_panel import (
    OLD_PASSWORD,
    _configure,
    _copying,
    _entry,
    _mx,
    _our_folders,
    _seed,
    _staff,
    _worker_died,
    _worker_side,
)
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture
def sink(app):
    started = SmtpSink().start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _clock():
    yield
    clock.reset()


def _append(server, user: str, n: int) -> None:
    client = IMAPClient(HOST, port=server.port, ssl=False, timeout=30)
    client.login(user, OLD_PASSWORD)
    raw = (
        f"Message-ID: <nuovo{n}@vecchio.example>\r\nFrom: a@vecchio.example\r\nSubject: arrivato dopo {n}\r\n"
        f"Date: Tue, 2 Jun 2015 10:00:00 +0200\r\n\r\nancora sul vecchio server\r\n"
    ).encode()
    client.append("INBOX", raw, msg_time=datetime(2015, 6, 2, 8, n, tzinfo=UTC))
    client.logout()


def _setup(old, ours, label: str, *boxes: str):
    tag = uuid.uuid4().hex[:8]
    c = factories.customer(domain=f"{label}{tag}.example", name=f"Studio {label}")
    c.contact_email = f"segreteria@{label}{tag}-contatti.example"
    db.session.commit()
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    sources = {}
    for local in boxes:
        box = factories.mailbox(c, local)
        ours.add_user(box.address, "non-usata-qui")
        src_user = f"{local}{tag}"
        old.add_user(src_user, OLD_PASSWORD)
        _seed(old, src_user)
        sources[box.address] = src_user
    return c, domain, sources


def _assert_links_to_a_page(app, body: str, base: str, customer_id: int, domain_id: int) -> None:
    """The mail's link is a route of the app, for this customer's domain (not a made-up path)."""
    (url,) = [w for w in body.split() if w.startswith(base)]
    path = url[len(base) :]
    endpoint, values = app.url_map.bind("pannello.example").match(path)
    assert endpoint == "portal.migrations"
    assert (values["customer_id"], values["domain_id"]) == (customer_id, domain_id)


def _secret_kept(migration_id: int) -> bool:
    return db.session.scalar(sa.select(Migration.secret.is_not(None)).where(Migration.id == migration_id))


def test_a_sync_migration_copies_what_is_new_until_the_mx_propagates_then_ends_and_mails_once(
    app, pair, monkeypatch, sink
):
    old, ours = pair
    _configure(
        monkeypatch,
        ours,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=sink.port,
        PANEL_URL="https://pannello.example",
        MIGRATION_SYNC_HOURS=4,
    )
    c, domain, sources = _setup(old, ours, "sincro", "anna", "bruno")
    admin = factories.admin(c)
    staff = _staff()
    _mx(domain.id, "published")  # the MX is not ours yet: users still receive on the old server
    (anna, anna_src), (bruno, bruno_src) = sources.items()

    # A one-shot copy waits for the gate; a sync migration may start on an active domain.
    one_shot = migrations.create(staff, domain.id, _entry(bruno, port=old.port, username=bruno_src))
    migrations.preflight(staff, one_shot.id)
    with pytest.raises(Conflict, match="propagato"):
        migrations.start(staff, one_shot.id)
    row = migrations.create(staff, domain.id, _entry(anna, port=old.port, username=anna_src, sync="true"))
    assert row.sync is True
    migrations.preflight(staff, row.id)
    before = datetime.now(UTC)
    row = migrations.start(staff, row.id)  # JOBS_INLINE: the first pass ran here
    assert (row.state, row.passes, row.final_pass, row.error) == ("syncing", 1, False, None)
    assert row.report["totals"]["copied"] == 3 and _secret_kept(row.id)
    assert before + timedelta(hours=4) <= row.next_pass_at <= datetime.now(UTC) + timedelta(hours=4)
    assert row.last_pass_at >= before and row.finished_at is None

    # Not due yet: the cron queues nothing. Four hours later: a pass copies only what arrived.
    _append(old, anna_src, 1)
    assert migrations.run_due()["passes"] == []
    clock.set_now(datetime.now(UTC) + timedelta(hours=4, minutes=1))
    assert migrations.run_due()["passes"] == [row.id]
    db.session.refresh(row)
    assert (row.state, row.passes) == ("syncing", 2)
    assert (row.report["totals"]["copied"], row.report["totals"]["already_present"]) == (1, 3)
    assert row.report["all_passes"]["copied"] == 4
    assert sink.received == []  # an open migration: no mail yet

    # The MX propagates: the next look runs the final pass at once (not waiting for next_pass_at).
    _append(old, anna_src, 2)
    _mx(domain.id, "propagated")
    assert migrations.run_due()["passes"] == [row.id]
    db.session.refresh(row)
    assert (row.state, row.passes, row.final_pass, row.next_pass_at) == ("done", 3, True, None)
    assert row.report["totals"]["copied"] == 1 and row.report["all_passes"]["copied"] == 5
    assert not _secret_kept(row.id)
    assert _our_folders(ours, anna)["INBOX"] == 4
    assert sink.received == []  # bruno's migration is still open

    # The last open migration ends (bruno's, cancelled): one mail, with anna's figures, bruno's
    # mailbox said not migrated, and a link to a page the app has.
    migrations.cancel(staff, one_shot.id)
    (mail,) = sink.wait_for(1)
    assert sorted(mail.envelope_to) == sorted([admin.email, c.contact_email])
    assert domain.name in mail.subject
    body = mail.body
    assert anna in body and f"{bruno} — non migrata: annullata" in body
    assert body.index(anna) < body.index(bruno)
    assert "copiati: 5" in body and "già presenti: 0" in body and "mancanti: 0" in body
    _assert_links_to_a_page(app, body, "https://pannello.example", c.id, domain.id)
    # The cron looks again: nothing twice.
    assert migrations.run_due()["notified"] == []
    assert migrations.notify_if_finished(domain.id) is False
    time.sleep(0.3)
    assert len(sink.received) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Outbox)) == 1

    actions = [a for (a,) in db.session.execute(sa.text("SELECT action FROM audit_events ORDER BY id"))]
    assert actions.count("migration.start") == 1 and "migration.cancel" in actions


def test_a_pending_domain_cannot_sync_and_a_batch_only_cancelled_sends_nothing(app, pair, monkeypatch, sink):
    old, ours = pair
    _configure(monkeypatch, ours, SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
    c, domain, sources = _setup(old, ours, "attesa", "carla")
    staff = _staff()
    ((carla, src),) = sources.items()
    row = migrations.create(staff, domain.id, _entry(carla, port=old.port, username=src, sync=True))
    migrations.preflight(staff, row.id)
    db.session.execute(sa.update(Domain).where(Domain.id == domain.id).values(state="pending"))
    db.session.commit()
    with pytest.raises(Conflict, match="non è ancora attivo"):
        migrations.start(staff, row.id)
    migrations.cancel(staff, row.id)
    assert migrations.run_due()["notified"] == []
    assert db.session.get(Migration, row.id).notified_at is not None  # settled, without a mail
    time.sleep(0.3)
    assert sink.received == []


def test_a_failed_pass_keeps_syncing_staff_finish_it_and_cancel_another_between_passes(
    app, client, pair, monkeypatch
):
    from app.services import users
    from tests.web.test_openapi import Api, _fits

    old, ours = pair
    _configure(monkeypatch, ours)
    doc = client.get("/api/v1/openapi.json").get_json()
    c, domain, sources = _setup(old, ours, "fine", "dario", "elena")
    (dario, dario_src), (elena, elena_src) = sources.items()
    _mx(domain.id, "published")
    api = Api(client, users.create_token(factories.SYSTEM, factories.staff(), "tests")[1])
    customer = Api(client, users.create_token(factories.SYSTEM, factories.admin(c), "tests")[1])

    created = api(
        "POST",
        f"/domains/{domain.id}/migrations",
        _entry(dario, port=old.port, username=dario_src, sync=True),
    )
    assert created.status_code == 201 and created.get_json()["sync"] is True
    mid = created.get_json()["id"]
    assert api("POST", f"/migrations/{mid}/finish").status_code == 409  # not started: not in sync
    assert api("POST", f"/migrations/{mid}/preflight").status_code == 200
    started = api("POST", f"/migrations/{mid}/start")
    assert started.status_code == 200, started.get_json()
    seen = customer("GET", f"/migrations/{mid}").get_json()
    assert (seen["state"], seen["passes"], seen["sync"], seen["waiting"]) == ("syncing", 1, True, False)
    assert seen["next_pass_at"] and seen["last_pass_at"]
    _fits(doc, "/api/v1/migrations/{migration_id}", "get", 200, seen)
    assert customer("POST", f"/migrations/{mid}/finish").status_code == 403
    stranger = Api(
        client, users.create_token(factories.SYSTEM, factories.admin(factories.customer()), "tests")[1]
    )
    assert stranger("POST", f"/migrations/{mid}/finish").status_code == 404
    assert db.session.get(Migration, mid).final_pass is False

    # The old server refuses the login on the next pass: still syncing, the error shown, the next
    # pass scheduled, the password kept.
    db.session.execute(sa.update(Migration).where(Migration.id == mid).values(username="nessuno"))
    db.session.commit()
    clock.set_now(datetime.now(UTC) + timedelta(hours=5))
    assert migrations.run_due()["passes"] == [mid]
    row = db.session.get(Migration, mid)
    db.session.refresh(row)
    assert (row.state, row.passes) == ("syncing", 2) and row.error
    assert row.next_pass_at > clock.now() and _secret_kept(mid)
    assert db.session.get(Job, row.job_id).state == "failed"
    assert row.report["totals"]["copied"] == 3  # the last good pass's report stays

    # Staff finish it: the final pass runs at once, then done.
    db.session.execute(sa.update(Migration).where(Migration.id == mid).values(username=dario_src))
    db.session.commit()
    finished = api("POST", f"/migrations/{mid}/finish")
    assert finished.status_code == 200, finished.get_json()
    _fits(doc, "/api/v1/migrations/{migration_id}/finish", "post", 200, finished.get_json())
    body = finished.get_json()
    assert (body["state"], body["passes"], body["final_pass"], body["password_kept"]) == (
        "done",
        3,
        True,
        False,
    )
    assert body["error"] is None and body["next_pass_at"] is None
    assert api("POST", f"/migrations/{mid}/finish").status_code == 409

    # Another between two passes is cancelled at once, its password wiped.
    other = migrations.create(
        _staff(), domain.id, _entry(elena, port=old.port, username=elena_src, sync=True)
    )
    migrations.preflight(_staff(), other.id)
    assert migrations.start(_staff(), other.id).state == "syncing"
    cancelled = api("POST", f"/migrations/{other.id}/cancel").get_json()
    assert (cancelled["state"], cancelled["password_kept"], cancelled["next_pass_at"]) == (
        "cancelled",
        False,
        None,
    )
    actions = [a for (a,) in db.session.execute(sa.text("SELECT action FROM audit_events ORDER BY id"))]
    assert actions.count("migration.finish") == 1


def test_a_due_pass_waits_for_a_turn_on_its_old_server(app, pair, monkeypatch):
    old, ours = pair
    _configure(monkeypatch, ours, MIGRATION_PER_HOST=1)
    c, domain, sources = _setup(old, ours, "turni", "gino", "ivo")
    (gino, gino_src), (ivo, ivo_src) = sources.items()
    _mx(domain.id, "published")
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(gino, port=old.port, username=gino_src, sync=True))
    migrations.preflight(staff, row.id)
    assert migrations.start(staff, row.id).state == "syncing"
    # Another mailbox's copy from the same old server is running (as its job would have it).
    busy = migrations.create(staff, domain.id, _entry(ivo, port=old.port, username=ivo_src))
    _copying(busy.id)

    clock.set_now(datetime.now(UTC) + timedelta(hours=5))
    due = migrations.run_due()
    assert (due["passes"], due["woken"]) == ([row.id], [])
    db.session.refresh(row)
    assert (row.state, row.waiting_turn, row.passes) == ("queued", True, 1)
    _worker_died(busy.id)
    migrations.cancel(staff, busy.id)  # that copy ends: the pass takes the turn
    db.session.refresh(row)
    assert (row.state, row.passes) == ("syncing", 2)
    assert row.report["totals"]["already_present"] == 3


def test_the_real_worker_copies_a_migration_to_the_end(app, pair, queues, workers, monkeypatch):
    old, ours = pair
    # The preflight's job runs here (inline), the copy's in the worker.
    settings = _worker_side(monkeypatch, ours)
    c, domain, sources = _setup(old, ours, "lavoro", "franca")
    ((franca, src),) = sources.items()
    _mx(domain.id, "propagated")
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(franca, port=old.port, username=src))
    _preflight_here(app, monkeypatch, staff, row.id)
    row = migrations.start(staff, row.id)
    assert row.state == "queued" and not app.config.get("JOBS_INLINE")
    worker = workers("--queues", "migration", **settings)
    deadline = time.monotonic() + 60
    while fresh(row.job_id).state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    job = fresh(row.job_id)
    db.session.expire_all()
    row = db.session.get(Migration, row.id)
    assert job.state == "done", (job.message, (worker.log.name))
    assert row.state == "done" and row.report["totals"]["copied"] == 3, row.error
    assert row.report["totals"]["missing"] == 0 and row.passes == 1
    assert not _secret_kept(row.id)
    folders = _our_folders(ours, franca)
    assert (folders["INBOX"], folders["Sent"]) == (2, 1)


def _preflight_here(app, monkeypatch, staff, migration_id: int) -> None:
    """The preflight's job run here and now (JOBS_INLINE), the copies' jobs left to the real worker."""
    monkeypatch.setitem(app.config, "JOBS_INLINE", True)
    migrations.preflight(staff, migration_id)
    monkeypatch.setitem(app.config, "JOBS_INLINE", False)


def _until(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        found = check()
        db.session.commit()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("not reached in time")


def test_with_one_turn_per_server_a_waiting_copy_leaves_the_one_worker_free(
    app, pair, queues, workers, monkeypatch
):
    """MIGRATION_PER_HOST=1 and a single real worker: the second copy from a busy server ends its
    job, the worker copies a mailbox from another server meanwhile, and the second is copied once
    the first ends."""
    old, ours = pair
    # The preflight's job runs here (inline), the copy's in the worker.
    settings = _worker_side(monkeypatch, ours, MIGRATION_PER_HOST="1")
    c, domain, sources = _setup(old, ours, "unturno", "primo", "secondo", "terzo")
    (first_box, first_src), (second_box, second_src), (third_box, third_src) = sources.items()
    _mx(domain.id, "propagated")
    staff = _staff()
    first = migrations.create(staff, domain.id, _entry(first_box, port=old.port, username=first_src))
    second = migrations.create(staff, domain.id, _entry(second_box, port=old.port, username=second_src))
    # The same old server by another name: another host for the turns.
    third = migrations.create(
        staff, domain.id, _entry(third_box, host="localhost", port=old.port, username=third_src)
    )
    for row in (first, second, third):
        _preflight_here(app, monkeypatch, staff, row.id)
    # The first is copying (as its job would have it).
    _copying(first.id)
    workers("--queues", "migration", **settings)

    second = migrations.start(staff, second.id)
    waiting_job = second.job_id
    _until(lambda: fresh(waiting_job).state == "done")
    assert "attesa" in fresh(waiting_job).message
    third = migrations.start(staff, third.id)
    _until(lambda: db.session.get(Migration, third.id).state == "done")  # the one worker was free
    second = db.session.get(Migration, second.id)
    assert (second.state, second.waiting_turn) == ("queued", True)

    _worker_died(first.id)
    migrations.cancel(staff, first.id)  # the first's copy ends: the second gets a job
    _until(lambda: db.session.get(Migration, second.id).state == "done")
    second = db.session.get(Migration, second.id)
    assert second.job_id != waiting_job and second.report["totals"]["copied"] == 3


def test_migration_0019_counts_finished_batches_as_told_and_downgrades_syncing_to_failed(backend, tmp_path):
    """Upgrading must not mail customers about migrations finished before; a downgrade keeps a
    migration between passes open and startable (failed, its password kept)."""
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from tests.conftest import TEST_CONFIG
    from tests.dbstate import fresh_database

    with fresh_database(backend, tmp_path) as url:
        other = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
        with other.app_context():
            upgrade(revision="0018_migrations")
            run = lambda sql, **p: db.session.execute(sa.text(sql), p)  # noqa: E731
            run(
                "INSERT INTO customers (id, name, plan, self_service, lock_version, created_at) "
                "VALUES (1, 'Rossi', 'payg', false, 0, CURRENT_TIMESTAMP)"
            )
            run(
                "INSERT INTO domains (id, customer_id, name, state, created_at) "
                "VALUES (1, 1, 'rossi.example', 'active', CURRENT_TIMESTAMP)"
            )
            cls = run("SELECT id FROM service_classes ORDER BY id LIMIT 1").scalar()
            states = ["done", "cancelled", "failed", "draft"]
            for n, state in enumerate(states, start=1):
                run(
                    "INSERT INTO mailboxes (id, customer_id, domain_id, local_part, address, display_name, "
                    "password_hash, service_class_id, status, created_at, updated_at) VALUES (:n, 1, 1, :l, :a, '', "
                    "'x', :cls, 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                    n=n,
                    l=f"u{n}",
                    a=f"u{n}@rossi.example",
                    cls=cls,
                )
                finished = state in ("done", "cancelled", "failed")
                run(
                    "INSERT INTO migrations (id, customer_id, domain_id, mailbox_id, host, port, security, "
                    "verify_cert, username, secret, state, report, created_by, created_at, finished_at) VALUES "
                    "(:n, 1, 1, :n, 'imap.vecchio.it', 993, 'ssl', true, 'v', NULL, :state, :report, 'staff', "
                    "CURRENT_TIMESTAMP, " + ("CURRENT_TIMESTAMP" if finished else "NULL") + ")",
                    n=n,
                    state=state,
                    report='{"totals": {"copied": 1}}' if state in ("done", "failed") else None,
                )
            db.session.commit()
            upgrade()
            got = {
                state: (notified is not None, passes)
                for state, notified, passes in run("SELECT state, notified_at, passes FROM migrations")
            }
            assert got == {
                "done": (True, 1),
                "cancelled": (True, 0),
                "failed": (False, 1),
                "draft": (False, 0),
            }
            run("UPDATE migrations SET state = 'syncing', sync = true WHERE id = 4")
            db.session.commit()
            db.session.remove()
            downgrade(revision="0018_migrations")
            assert run("SELECT state FROM migrations WHERE id = 4").scalar() == "failed"
            db.session.commit()
            db.session.remove()
            upgrade()
            db.session.remove()
            db.engine.dispose()


def test_a_cancel_during_a_pass_with_nothing_new_ends_it_cancelled_and_the_next_pass_counts_from_its_end(
    app, pair, monkeypatch
):
    old, ours = pair
    _configure(monkeypatch, ours, MIGRATION_SYNC_HOURS=4)
    c, domain, sources = _setup(old, ours, "fermo", "luca")
    ((luca, src),) = sources.items()
    _mx(domain.id, "published")
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(luca, port=old.port, username=src, sync=True))
    migrations.preflight(staff, row.id)
    real_target = migrations.target_endpoint
    began = datetime.now(UTC)
    clock.set_now(began)

    def half_an_hour_later(r):  # the pass takes its time
        clock.set_now(began + timedelta(minutes=30))
        return real_target(r)

    monkeypatch.setattr(migrations, "target_endpoint", half_an_hour_later)
    row = migrations.start(staff, row.id)
    assert row.state == "syncing"
    assert (row.last_pass_at, row.next_pass_at) == (
        began + timedelta(minutes=30),
        began + timedelta(hours=4, minutes=30),
    )

    def cancelled_meanwhile(r):  # staff cancel while the pass runs; it finds nothing new
        migrations.cancel(_staff(), r.id)
        return real_target(r)

    monkeypatch.setattr(migrations, "target_endpoint", cancelled_meanwhile)
    clock.set_now(began + timedelta(hours=5))
    assert migrations.run_due()["passes"] == [row.id]
    db.session.expire_all()
    row = db.session.get(Migration, row.id)
    assert (row.state, row.passes, row.next_pass_at) == ("cancelled", 2, None)
    assert not _secret_kept(row.id) and row.cancel_requested_at is not None
    assert db.session.get(Job, row.job_id).state == "cancelled"
    assert migrations.run_due()["passes"] == []


def test_a_copy_the_sweep_gave_to_a_retry_writes_nothing_over_the_retrys_migration(app, pair, monkeypatch):
    old, ours = pair
    _configure(monkeypatch, ours)
    c, domain, sources = _setup(old, ours, "perso", "nino")
    ((nino, src),) = sources.items()
    _mx(domain.id, "propagated")
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(nino, port=old.port, username=src))
    migrations.preflight(staff, row.id)
    real_target = migrations.target_endpoint
    retried = []

    def taken_for_dead(r):
        # The sweep took this copy's job for dead and its retry took the migration over.
        lost = db.session.get(Job, r.job_id)
        lost.state = "failed"
        retry = Job(
            kind="migration_copy",
            queue="migration",
            customer_id=r.customer_id,
            requested_by="tests",
            args=[r.id],
            state="running",
            attempt=2,
            retry_of=lost.id,
            started_at=datetime.now(UTC),
            heartbeat_at=datetime.now(UTC),
        )
        db.session.add(retry)
        db.session.flush()
        db.session.execute(sa.update(Migration).where(Migration.id == r.id).values(job_id=retry.id))
        db.session.commit()
        retried.append(retry.id)
        return real_target(r)

    monkeypatch.setattr(migrations, "target_endpoint", taken_for_dead)
    migrations.start(staff, row.id)  # the lost copy meets JobLost at its first progress
    db.session.expire_all()
    row = db.session.get(Migration, row.id)
    assert (row.state, row.job_id, row.error, row.passes, row.finished_at) == (
        "running",
        retried[0],
        None,
        0,
        None,
    )
    assert _secret_kept(row.id)


def test_a_copy_whose_worker_died_for_good_is_reconciled_and_holds_no_turn(app, pair, monkeypatch):
    old, ours = pair
    _configure(monkeypatch, ours, MIGRATION_PER_HOST=1)
    c, domain, sources = _setup(old, ours, "morto", "pia", "rita", "sara")
    (pia, pia_src), (rita, rita_src), (sara, sara_src) = sources.items()
    _mx(domain.id, "published")
    staff = _staff()
    pass_of = migrations.create(staff, domain.id, _entry(pia, port=old.port, username=pia_src, sync=True))
    final = migrations.create(staff, domain.id, _entry(rita, port=old.port, username=rita_src, sync=True))
    _copying(pass_of.id, final.id)
    db.session.get(Migration, final.id).final_pass = True
    db.session.commit()
    _worker_died(pass_of.id, final.id)

    # Their jobs are over: they copy nothing, so the one turn of the old server is free.
    assert migrations.running_from(HOST) == 0
    other = migrations.create(staff, domain.id, _entry(sara, port=old.port, username=sara_src, sync=True))
    migrations.preflight(staff, other.id)
    assert migrations.start(staff, other.id).state == "syncing"

    # The cron settles them: a pass that was not the final one is a failed pass, the other failed.
    due = migrations.run_due()
    assert sorted(due["reconciled"]) == sorted([pass_of.id, final.id])
    db.session.expire_all()
    pass_of, final = db.session.get(Migration, pass_of.id), db.session.get(Migration, final.id)
    assert pass_of.state == "syncing" and "interrotta" in pass_of.error and pass_of.next_pass_at
    assert pass_of.failed_passes == 1 and _secret_kept(pass_of.id)
    assert final.state == "failed" and "interrotta" in final.error and _secret_kept(final.id)
    assert migrations.run_due()["reconciled"] == []


def test_sync_passes_are_gated_again_and_end_failed_after_too_many_or_too_long(app, pair, monkeypatch):
    from app.models import Mailbox

    old, ours = pair
    _configure(monkeypatch, ours, MIGRATION_SYNC_MAX_FAILURES=2, MIGRATION_SYNC_MAX_DAYS=10)
    c, domain, sources = _setup(old, ours, "cancello", "nora", "olga")
    (nora, nora_src), (olga, olga_src) = sources.items()
    _mx(domain.id, "published")
    staff = _staff()
    rows = []
    for box, src in ((nora, nora_src), (olga, olga_src)):
        row = migrations.create(staff, domain.id, _entry(box, port=old.port, username=src, sync=True))
        migrations.preflight(staff, row.id)
        rows.append(migrations.start(staff, row.id))
    nora_id, olga_id = (r.id for r in rows)
    began = datetime.now(UTC)

    # Olga's mailbox is disabled: her pass is skipped, the reason shown; nora's runs.
    db.session.execute(sa.update(Mailbox).where(Mailbox.address == olga).values(status="disabled"))
    db.session.commit()
    clock.set_now(began + timedelta(hours=5))
    due = migrations.run_due()
    assert (due["passes"], due["skipped"]) == ([nora_id], [olga_id])
    db.session.expire_all()
    o = db.session.get(Migration, olga_id)
    assert (o.state, o.passes, o.failed_passes) == ("syncing", 1, 1) and "non è attiva" in o.error
    assert o.next_pass_at > clock.now() and _secret_kept(olga_id)

    # The domain is no longer active: both skipped; olga's second in a row fails her, password wiped.
    db.session.execute(sa.update(Domain).where(Domain.id == domain.id).values(state="pending"))
    db.session.commit()
    clock.set_now(began + timedelta(hours=10))
    due = migrations.run_due()
    assert (due["passes"], sorted(due["skipped"])) == ([], sorted([nora_id, olga_id]))
    db.session.expire_all()
    o, n = db.session.get(Migration, olga_id), db.session.get(Migration, nora_id)
    assert o.state == "failed" and "2 passaggi di fila" in o.error and not _secret_kept(olga_id)
    assert (n.state, n.failed_passes) == ("syncing", 1) and "non è attivo" in n.error

    # Active again, but in sync for longer than MIGRATION_SYNC_MAX_DAYS: failed, password wiped.
    db.session.execute(sa.update(Domain).where(Domain.id == domain.id).values(state="active"))
    db.session.commit()
    clock.set_now(began + timedelta(days=11))
    due = migrations.run_due()
    assert (due["passes"], due["skipped"]) == ([], [nora_id])
    db.session.expire_all()
    n = db.session.get(Migration, nora_id)
    assert n.state == "failed" and "più di 10 giorni" in n.error and not _secret_kept(nora_id)


def test_a_cancel_racing_the_end_of_the_copys_job_is_not_a_conflict(app, monkeypatch):
    c = factories.customer()
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    row = migrations.create(_staff(), domain.id, _entry(factories.mailbox(c).address))
    _copying(row.id)
    real_stuck = migrations._stuck

    def looked_then_ended(r):
        found = real_stuck(r)
        _worker_died(r.id)  # the copy's job ends right after the look
        return found

    monkeypatch.setattr(migrations, "_stuck", looked_then_ended)
    row = migrations.cancel(_staff(), row.id)
    assert row.state == "cancelled" and not _secret_kept(row.id)


def test_the_mail_lists_the_messages_too_large_to_copy(app, pair, monkeypatch, sink):
    old, ours = pair
    _configure(
        monkeypatch,
        ours,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=sink.port,
        PANEL_URL="https://pannello.example",
        MIGRATION_MAX_SIZE=4000,
    )
    c, domain, sources = _setup(old, ours, "grandi", "ugo")
    ((ugo, src),) = sources.items()
    client = IMAPClient(HOST, port=old.port, ssl=False, timeout=30)
    client.login(src, OLD_PASSWORD)
    for n in range(22):
        raw = (
            f"Message-ID: <grande{n}@vecchio.example>\r\nFrom: a@vecchio.example\r\nSubject: allegato {n:02d}\r\n"
            f"Date: Wed, 3 Jun 2015 10:00:00 +0200\r\n\r\n" + "x" * 76 + "\r\n" + ("y" * 76 + "\r\n") * 80
        ).encode()
        client.append("INBOX", raw, msg_time=datetime(2015, 6, 3, 8, n, tzinfo=UTC))
    client.logout()
    _mx(domain.id, "propagated")
    staff = _staff()
    row = migrations.create(staff, domain.id, _entry(ugo, port=old.port, username=src))
    migrations.preflight(staff, row.id)
    row = migrations.start(staff, row.id)
    assert row.state == "done" and row.report["totals"]["skipped_too_large"] == 22
    (mail,) = sink.wait_for(1)
    body = mail.body
    assert "non copiati perché troppo grandi: 22" in body
    listed = [line for line in body.splitlines() if line.strip().startswith("- allegato")]
    assert len(listed) == 20 and listed[0].strip().startswith(
        "- allegato 00 (Wed, 3 Jun 2015 10:00:00 +0200, "
    )
    assert listed[0].endswith(" KB)")
    assert "e altri 2" in body
    _assert_links_to_a_page(app, body, "https://pannello.example", c.id, domain.id)


def test_the_mail_shows_a_mailbox_cancelled_half_way_with_what_it_had_copied(app, pair, monkeypatch, sink):
    old, ours = pair
    _configure(monkeypatch, ours, SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
    c, domain, sources = _setup(old, ours, "meta", "vera", "walter")
    (vera, vera_src), (walter, walter_src) = sources.items()
    _mx(domain.id, "propagated")
    staff = _staff()
    done = migrations.create(staff, domain.id, _entry(vera, port=old.port, username=vera_src))
    half = migrations.create(staff, domain.id, _entry(walter, port=old.port, username=walter_src))
    for row in (done, half):
        migrations.preflight(staff, row.id)
    assert migrations.start(staff, done.id).state == "done"
    real_run_copy = migrations.run_copy

    def cancelled_meanwhile(*args, progress, **kwargs):  # staff cancel once a batch has been copied
        asked = []

        def watching(folder):
            if folder.copied and not asked:
                asked.append(migrations.cancel(_staff(), half.id))
            progress(folder)

        return real_run_copy(*args, progress=watching, **kwargs)

    monkeypatch.setattr(migrations, "run_copy", cancelled_meanwhile)
    half = migrations.start(staff, half.id)
    assert (half.state, half.passes) == ("cancelled", 1)
    copied = half.report["all_passes"]["copied"]
    assert copied >= 1 and not _secret_kept(half.id)
    (mail,) = sink.wait_for(1)
    body = mail.body
    walter_part = body[body.index(f"{walter} — non migrata: annullata") :]
    assert f"copiati: {copied}" in walter_part.split("\n\n")[0]
    assert body.index(vera) < body.index(walter)
