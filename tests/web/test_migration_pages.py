"""The migrations' pages, back office and portal, on two real Dovecots (tests/integration/imap_servers.py):
the form (errors beside the fields, the password never sent back), the preflight's findings and its
refusals (quota, inactive mailbox), the gate's refusal, the copy job to its end, the report and its
downloads (CSV safe for spreadsheets, JSON), cancel, the live progress that stops polling, and who may
see and do what (another customer: 404; the customer: read-only, its POSTs refused; no CSRF: 400)."""

# ruff: noqa: F811  (the tests take the fixture `pair` imported from test_imap_copy)

from __future__ import annotations

import csv
import html as html_lib
import io
import json
import re
import uuid
from datetime import UTC, datetime

import pytest
import redis
import sqlalchemy as sa

from app.extensions import db
from app.models import MailboxUsage, Migration
from app.services import domains
from app.services.migration import progress
from tests import factories
from tests.conftest import TEST_REDIS_URL
from tests.integration.mailservers import HOST
from tests.integration.test_imap_copy import pair  # noqa: F401  (the two Dovecots, once per module)
from tests.integration.test_migrations_panel import OLD_PASSWORD, _configure, _mx, _seed


def text(response) -> str:
    return response.get_data(as_text=True)


def plain(html: str) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def main(html: str) -> str:
    """The page's own content, without the header and footer (their sign-out and language forms)."""
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def field_error(html: str, field_id: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    return html_lib.unescape(found.group(1)) if found else None


@pytest.fixture
def office(make):
    tag = uuid.uuid4().hex[:8]
    c = make.customer(domain=f"migra{tag}.example", name="Studio Neri")
    box = make.mailbox(c, "mario")
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    return c, domain, box


def _form(box, old, user, **kw) -> dict:
    return {
        "mailbox": box.address,
        "host": HOST,
        "port": str(old.port),
        "security": "none",
        "verify_cert": "1",
        "username": user,
        "password": OLD_PASSWORD,
        **kw,
    }


def _enter(client, domain, box, old, user, **kw) -> int:
    response = client.post(f"/admin/domains/{domain.id}/migrations", data=_form(box, old, user, **kw))
    assert response.status_code == 303, text(response)
    found = re.fullmatch(r"/admin/migrations/(\d+)", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def test_the_form_says_what_is_wrong_beside_each_field_and_never_sends_the_password_back(
    client, auth, make, office
):
    c, domain, box = office
    other = make.customer()
    foreign = make.mailbox(other, "bruno")
    auth.login(make.staff().email)
    page = text(client.get(f"/admin/domains/{domain.id}/migrations"))
    assert "Nuova migrazione" in page and f'<option value="{box.address}">' in page
    assert foreign.address not in page  # only this domain's mailboxes are offered
    assert 'name="verify_cert" value="1" checked' in page  # certificate verification on by default
    assert 'name="csrf_token"' in page

    bad = client.post(
        f"/admin/domains/{domain.id}/migrations",
        data={
            "mailbox": foreign.address,
            "host": "imap..vecchio",
            "port": "70000",
            "security": "tls",
            "username": "",
            "password": OLD_PASSWORD,
        },
    )
    assert bad.status_code == 422
    html = text(bad)
    assert field_error(html, "f-host") and field_error(html, "f-port") and field_error(html, "f-username")
    assert field_error(html, "f-mailbox") == "Nessuna casella con questo indirizzo nel dominio."
    assert field_error(html, "f-security") == "Scegli la sicurezza: ssl, starttls o none."
    assert 'id="f-host" name="host" type="text" value="imap..vecchio" aria-invalid="true"' in html
    assert OLD_PASSWORD not in html  # not even after a validation error
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Migration)) == 0

    # Only the password is wrong: kept out, and the other values come back.
    bad = client.post(
        f"/admin/domains/{domain.id}/migrations",
        data={
            "mailbox": box.address,
            "host": "imap.vecchio.it",
            "port": "993",
            "username": "anna",
            "password": "",
        },
    )
    assert bad.status_code == 422
    html = text(bad)
    assert field_error(html, "f-password") == "Scrivi la password della vecchia casella."
    assert 'value="imap.vecchio.it"' in html and f'<option value="{box.address}" selected>' in html
    assert 'name="verify_cert" value="1">' in html  # unticked as it was sent

    # Without the CSRF token: refused, nothing written.
    refused = client.post(
        f"/admin/domains/{domain.id}/migrations",
        data={"mailbox": box.address, "host": "imap.vecchio.it", "username": "a", "password": "x"},
        csrf=False,
    )
    assert refused.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Migration)) == 0

    # A good entry: the migration's page, the password sealed and never shown.
    good = client.post(
        f"/admin/domains/{domain.id}/migrations",
        data={
            "mailbox": box.address,
            "host": "IMAP.Vecchio.it",
            "port": "993",
            "security": "ssl",
            "username": "anna",
            "password": OLD_PASSWORD,
        },
    )
    assert good.status_code == 303
    row = db.session.scalars(sa.select(Migration)).one()
    assert (row.host, row.verify_cert, row.state) == ("imap.vecchio.it", False, "draft")
    html = text(client.get(good.headers["Location"]))
    assert OLD_PASSWORD not in html and "Da verificare" in html and "Verifica" in html
    assert "hx-trigger" not in html  # nothing runs: no polling


@pytest.mark.integration
def test_preflight_refusals_the_gate_the_copy_and_the_report(client, auth, make, office, pair, monkeypatch):
    old, ours = pair
    _configure(monkeypatch, ours)
    c, domain, box = office
    ours.add_user(box.address, "non-usata-qui")
    user = f"vecchio{uuid.uuid4().hex[:8]}"
    old.add_user(user, OLD_PASSWORD)
    _seed(old, user)
    auth.login(make.staff().email)
    mid = _enter(client, domain, box, old, user)
    detail = f"/admin/migrations/{mid}"

    # Starting before the preflight: refused, the reason on the page.
    early = client.post(detail + "/start")
    assert early.status_code == 409 and "Esegui prima la verifica" in plain(text(early))

    # The mailbox nearly full: the preflight refuses with the numbers and still shows the folders.
    quota = box.service_class.quota_mb * 1024 * 1024
    db.session.add(
        MailboxUsage(mailbox_id=box.id, used_bytes=quota - 1000, messages=1, read_at=datetime.now(UTC))
    )
    db.session.commit()
    full = client.post(detail + "/preflight")
    assert full.status_code == 409
    words = plain(text(full))
    assert "0.0 MB liberi" in words and f"{box.service_class.quota_mb} MB in tutto" in words
    assert "Spazio necessario" in words and "Spazio libero nella casella" in words
    assert "INBOX.Posta inviata" in words and "Sent" in words
    assert "Avvia" not in words  # not checked: it cannot start
    db.session.execute(sa.delete(MailboxUsage))
    db.session.commit()

    # The mailbox not active: the preflight says so.
    from app.services import mailboxes

    mailboxes.update_mailbox(factories.SYSTEM, box.id, status="suspended")
    inactive = client.post(detail + "/preflight")
    assert inactive.status_code == 409
    assert f"La casella di destinazione {box.address} non è attiva." in plain(text(inactive))
    mailboxes.update_mailbox(factories.SYSTEM, box.id, status="active")

    ok = client.post(detail + "/preflight")
    assert ok.status_code == 303 and ok.headers["Location"] == detail
    html = text(client.get(detail))
    words = plain(html)
    assert "Verifica riuscita" in words and "Verificata" in words
    assert re.search(r"INBOX\.Posta inviata Sent 1 ", words) and re.search(r"INBOX INBOX 2 ", words)
    assert "Avvia" in words and "hx-trigger" not in html

    # The gate: the MX has not propagated.
    _mx(domain.id, "published")
    gated = client.post(detail + "/start")
    assert gated.status_code == 409
    assert "La migrazione può partire quando il record MX punta a noi ed è propagato" in plain(text(gated))
    assert db.session.get(Migration, mid).state == "preflight_ok"

    _mx(domain.id, "propagated")
    started = client.post(detail + "/start")  # JOBS_INLINE: the job ran to its end here
    assert started.status_code == 303
    html = text(client.get(detail))
    words = plain(html)
    assert "Completata" in words and "Resoconto della copia" in words
    assert "Verifica finale: nessun messaggio manca" in words
    assert re.search(r"Sent da INBOX\.Posta inviata 1 1 0 0 0 0", words)
    assert "hx-trigger" not in html  # done: no polling
    assert "Inserisci di nuovo" in words and "Annulla" not in words

    # The domain's page: the totals.
    listed = plain(text(client.get(f"/admin/domains/{domain.id}/migrations")))
    assert "3 / 3" in listed and "Completata: 1" in listed

    # The downloads: CSV (BOM, attachment named after the mailbox) and JSON.
    got = client.get(detail + "/resoconto.csv")
    assert got.status_code == 200 and got.mimetype == "text/csv"
    assert got.headers["Content-Disposition"] == f'attachment; filename="migrazione-{box.address}-{mid}.csv"'
    lines = list(csv.reader(io.StringIO(got.data.decode("utf-8-sig"))))
    assert lines[0][:2] == ["Migrazione", box.address]
    header = lines.index(
        [
            "Cartella di origine",
            "Cartella da noi",
            "Messaggi all'origine",
            "Byte all'origine",
            "Copiati",
            "Già presenti",
            "Saltati perché troppo grandi",
            "Errori",
            "Mancanti",
        ]
    )
    folders = {r[0]: r for r in lines[header + 1 :] if r}
    assert folders["INBOX"][1:3] == ["INBOX", "2"] and folders["INBOX"][4:] == ["2", "0", "0", "0", "0"]
    assert folders["INBOX.Posta inviata"][1] == "Sent" and folders["Totale"][4] == "3"
    assert OLD_PASSWORD not in got.data.decode()
    got = client.get(detail + "/resoconto.json")
    assert got.status_code == 200 and got.mimetype == "application/json"
    assert got.headers["Content-Disposition"] == f'attachment; filename="migrazione-{box.address}-{mid}.json"'
    body = json.loads(got.data)
    assert body["mailbox"] == box.address and body["report"]["totals"]["copied"] == 3
    assert OLD_PASSWORD not in got.data.decode()
    assert client.get(detail + "/resoconto.xlsx").status_code == 404

    # The customer reads it in the portal: the progress, the report, its downloads; no buttons.
    auth.logout()
    auth.login(make.admin(c).email)
    portal = f"/customers/{c.id}/migrations/{mid}"
    html = text(client.get(portal))
    assert "Completata" in html and "Resoconto della copia" in html and "<form" not in main(html)
    assert "Verifica</button>" not in html and "Avvia</button>" not in html and "Annulla</a>" not in html
    assert client.get(portal + "/resoconto.csv").status_code == 200
    listed = text(client.get(f"/customers/{c.id}/domains/{domain.id}/migrations"))
    assert box.address in listed and "Nuova migrazione" not in listed and 'name="password"' not in listed
    domain_page = text(client.get(f"/customers/{c.id}/domains/{domain.id}"))
    assert f'href="/customers/{c.id}/domains/{domain.id}/migrations"' in domain_page


def test_a_report_cell_that_a_spreadsheet_would_run_is_written_as_text():
    assert progress.csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert [progress.csv_cell(v) for v in ("+1", "-2", "@SUM(A1)", "\tx", "ok", 7)] == [
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "ok",
        7,
    ]


def test_a_hostile_subject_lands_in_the_csv_as_text(client, auth, make, office):
    c, domain, box = office
    staff = factories.staff()
    from app.services.access import Actor
    from app.services.migration import migrations

    row = migrations.create(
        Actor.for_user(staff),
        domain.id,
        {
            "mailbox": box.address,
            "host": "imap.vecchio.it",
            "username": "=cmd|' /C calc'!A0",
            "password": "x",
        },
    )
    report = {
        "dry_run": False,
        "seconds": 1.0,
        "totals": {
            "folders": 1,
            "source_count": 1,
            "source_bytes": 40_000_000,
            "copied": 0,
            "copied_bytes": 0,
            "already_present": 0,
            "skipped_too_large": 1,
            "errors": 0,
            "missing": 0,
        },
        "folders": [
            {
                "source": "=INBOX",
                "target": "@Folder",
                "source_count": 1,
                "source_bytes": 40_000_000,
                "copied": 0,
                "already_present": 0,
                "errors": [],
                "missing": 0,
                "skipped_too_large": [{"uid": 1, "subject": "=1+2", "date": "-", "size": 40_000_000}],
            }
        ],
        "errors": ["+33 errore"],
    }
    db.session.execute(sa.update(Migration).where(Migration.id == row.id).values(state="done", report=report))
    db.session.commit()
    auth.login(staff.email)
    got = client.get(f"/admin/migrations/{row.id}/resoconto.csv")
    cells = [c for line in csv.reader(io.StringIO(got.data.decode("utf-8-sig"))) for c in line]
    assert "'=1+2" in cells and "'=INBOX" in cells and "'@Folder" in cells and "'+33 errore" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    words = plain(text(client.get(f"/admin/migrations/{row.id}")))
    assert "Messaggi saltati perché oltre il limite" in words and "=1+2" in words


@pytest.fixture
def queues(app):
    """Jobs go to the test Redis; a worker in this process runs them."""
    from app import jobs as app_jobs

    conn = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as e:
        pytest.skip(f"Redis unreachable at {TEST_REDIS_URL}: {e}")
    conn.flushdb()
    app_jobs.use_app(app)
    yield conn
    app_jobs.use_app(None)
    conn.flushdb()
    conn.close()


@pytest.mark.integration
def test_the_progress_polls_while_queued_or_running_and_stops_when_done(
    client, auth, make, office, pair, monkeypatch, queues
):
    from rq import Queue, SimpleWorker

    old, ours = pair
    _configure(monkeypatch, ours, JOBS_INLINE=False, REDIS_URL=TEST_REDIS_URL)
    c, domain, box = office
    ours.add_user(box.address, "non-usata-qui")
    user = f"vecchio{uuid.uuid4().hex[:8]}"
    old.add_user(user, OLD_PASSWORD)
    _seed(old, user)
    _mx(domain.id, "propagated")
    auth.login(make.staff().email)
    mid = _enter(client, domain, box, old, user)
    detail = f"/admin/migrations/{mid}"
    htmx = {"HX-Request": "true"}
    # The check is a job: the page says so and polls until a worker has run it; one check at a time,
    # and no start before its end.
    assert client.post(detail + "/preflight").status_code == 303
    checking = text(client.get(detail, headers=htmx))
    assert checking.strip().startswith(f'<div id="migration-live" hx-get="{detail}" hx-trigger="every 2s"')
    assert "Verifica in corso" in checking and "Avvia" not in plain(checking)
    assert client.post(detail + "/preflight").status_code == 409
    assert client.post(detail + "/start").status_code == 409
    SimpleWorker([Queue("migration", connection=queues)], connection=queues).work(burst=True)
    checked = text(client.get(detail, headers=htmx))
    assert "hx-trigger" not in checked and "Verificata" in checked and "Verifica in corso" not in checked
    assert client.post(detail + "/start").status_code == 303
    assert db.session.get(Migration, mid).state == "queued"

    live = text(client.get(detail, headers=htmx))
    assert live.strip().startswith(f'<div id="migration-live" hx-get="{detail}" hx-trigger="every 2s"')
    assert "<html" not in live and "In coda" in live
    listed = text(client.get(f"/admin/domains/{domain.id}/migrations", headers=htmx))
    assert 'id="migrations-live"' in listed and 'hx-trigger="every 2s"' in listed
    working = text(client.get("/admin/migrations"))
    assert box.address in working and 'hx-trigger="every 2s"' in working
    # The customer's page polls too.
    portal_client = client.application.test_client()
    from tests.conftest import Auth

    Auth(portal_client).login(make.admin(c).email)
    portal_live = text(portal_client.get(f"/customers/{c.id}/migrations/{mid}", headers=htmx))
    assert 'hx-trigger="every 2s"' in portal_live and "Annulla" not in portal_live

    # A real worker takes the job from the migration queue.
    SimpleWorker([Queue("migration", connection=queues)], connection=queues).work(burst=True)
    assert db.session.get(Migration, mid).state == "done"
    live = text(client.get(detail, headers=htmx))
    assert "hx-trigger" not in live and "Completata" in live and "Resoconto della copia" in live
    assert "3 di 3" in plain(live)
    listed = text(client.get(f"/admin/domains/{domain.id}/migrations", headers=htmx))
    assert "hx-trigger" not in listed
    assert "hx-trigger" not in text(portal_client.get(f"/customers/{c.id}/migrations/{mid}", headers=htmx))


@pytest.mark.integration
def test_cancel_asks_first_then_wipes_and_a_failed_one_can_be_started_again(
    client, auth, make, office, pair, monkeypatch
):
    old, ours = pair
    _configure(monkeypatch, ours)
    c, domain, box = office
    ours.add_user(box.address, "non-usata-qui")
    user = f"vecchio{uuid.uuid4().hex[:8]}"
    old.add_user(user, OLD_PASSWORD)
    _seed(old, user)
    _mx(domain.id, "propagated")
    auth.login(make.staff().email)

    # A wrong old password: the preflight says why; cancelling asks first (without JavaScript).
    mid = _enter(client, domain, box, old, user, password="sbagliata")
    detail = f"/admin/migrations/{mid}"
    refused = client.post(detail + "/preflight")
    assert refused.status_code == 409 and "Sorgente" in plain(text(refused))
    html = text(client.get(detail))
    assert f'hx-post="{detail}/cancel"' in html and "hx-confirm=" in html
    ask = client.get(detail + "/cancel")
    assert ask.status_code == 200 and "Annullare la migrazione di" in plain(text(ask))
    assert db.session.get(Migration, mid).state == "draft"
    done = client.post(detail + "/cancel")
    assert done.status_code == 303
    assert db.session.get(Migration, mid).state == "cancelled"
    assert db.session.scalar(sa.select(Migration.secret).where(Migration.id == mid)) is None
    assert client.post(detail + "/cancel").status_code == 409  # already cancelled

    # Entered again, with the earlier server and account filled in (not the password).
    again = text(client.get(f"/admin/domains/{domain.id}/migrations?again={mid}"))
    assert f'value="{user}"' in again and f'value="{old.port}"' in again and "sbagliata" not in again
    mid = _enter(client, domain, box, old, user)
    detail = f"/admin/migrations/{mid}"
    assert client.post(detail + "/preflight").status_code == 303
    # A failed copy: "Riprova" starts it again, and only what is missing is copied.
    db.session.execute(
        sa.update(Migration).where(Migration.id == mid).values(state="failed", error="Rete caduta.")
    )
    db.session.commit()
    words = plain(text(client.get(detail)))
    assert "Non riuscita" in words and "Rete caduta." in words and "Riprova" in words
    assert client.post(detail + "/start").status_code == 303
    assert db.session.get(Migration, mid).state == "done"


def test_other_customers_get_404_and_customers_cannot_act(client, auth, make, office):
    c, domain, box = office
    staff = factories.staff()
    from app.services.access import Actor
    from app.services.migration import migrations

    row = migrations.create(
        Actor.for_user(staff),
        domain.id,
        {"mailbox": box.address, "host": "imap.vecchio.it", "username": "anna", "password": OLD_PASSWORD},
    )
    other = make.customer()
    auth.login(make.admin(other).email)
    for url in (
        f"/customers/{c.id}/domains/{domain.id}/migrations",
        f"/customers/{c.id}/migrations/{row.id}",
        f"/customers/{c.id}/migrations/{row.id}/resoconto.csv",
        f"/customers/{other.id}/migrations/{row.id}",  # its own customer id, another's migration
        f"/customers/{other.id}/domains/{domain.id}/migrations",
    ):
        assert client.get(url).status_code == 404, url
    auth.logout()

    auth.login(make.admin(c).email)
    html = text(client.get(f"/customers/{c.id}/migrations/{row.id}"))
    assert "Da verificare" in html and "admin/migrations" not in html and OLD_PASSWORD not in html
    # The back office's doors are a 404 for a customer, even when POSTed directly.
    for url in (
        f"/admin/domains/{domain.id}/migrations",
        f"/admin/migrations/{row.id}",
        "/admin/migrations",
        f"/admin/migrations/{row.id}/cancel",
    ):
        assert client.get(url).status_code == 404, url
    for url in ("preflight", "start", "cancel"):
        assert client.post(f"/admin/migrations/{row.id}/{url}").status_code == 404
    posted = client.post(
        f"/admin/domains/{domain.id}/migrations",
        data={"mailbox": box.address, "host": "x.it", "username": "a", "password": "b"},
    )
    assert posted.status_code == 404
    assert client.post(f"/customers/{c.id}/migrations/{row.id}").status_code == 405
    assert db.session.get(Migration, row.id).state == "draft"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Migration)) == 1
    # No report yet: the download says so.
    assert client.get(f"/customers/{c.id}/migrations/{row.id}/resoconto.csv").status_code == 409


def test_a_running_copy_shows_its_folder_count_and_rate_and_the_domain_adds_them_up(
    client, auth, make, office
):
    """A copy at work (its job's progress as the worker reports it): messages done of the total, the
    folder being copied, the rate; the domain's totals; the working list."""
    from datetime import timedelta

    from app.models.base import utcnow
    from app.services.access import Actor
    from app.services.migration import migrations
    from tests.web.jobrows import job_row

    c, domain, box = office
    staff = factories.staff()
    row = migrations.create(
        Actor.for_user(staff),
        domain.id,
        {"mailbox": box.address, "host": "imap.vecchio.it", "username": "anna", "password": OLD_PASSWORD},
    )
    job = job_row(
        c.id,
        "running",
        kind="migration_copy",
        done=40,
        total=100,
        message="Clienti/Città",
        started_at=utcnow() - timedelta(seconds=20),
    )
    preflight = {
        "ok": True,
        "problem": None,
        "needed_bytes": 5 * 1024 * 1024,
        "free_bytes": 100 * 1024 * 1024,
        "totals": {
            "folders": 1,
            "source_count": 100,
            "source_bytes": 5 * 1024 * 1024,
            "skipped_too_large": 0,
        },
        "folders": [
            {
                "source": "INBOX.Clienti.Città",
                "target": "Clienti/Città",
                "source_count": 100,
                "source_bytes": 5 * 1024 * 1024,
                "skipped_too_large": [],
            }
        ],
    }
    db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id)
        .values(state="running", job_id=job.id, preflight=preflight, started_by=staff.email)
    )
    db.session.commit()

    auth.login(staff.email)
    htmx = {"HX-Request": "true"}
    live = text(client.get(f"/admin/migrations/{row.id}", headers=htmx))
    words = plain(live)
    assert 'hx-trigger="every 2s"' in live and 'aria-valuenow="40"' in live
    assert "In corso" in words and "40 di 100 (40%)" in words and "Clienti/Città" in words
    assert re.search(r"Velocità 2 messaggi/s", words) and "Da copiare 5,0 MB" in words
    listed = plain(text(client.get(f"/admin/domains/{domain.id}/migrations", headers=htmx)))
    assert "40 / 100" in listed and "In corso: 1" in listed and "Clienti/Città" in listed
    working = plain(text(client.get("/admin/migrations")))
    assert box.address in working and "Studio Neri" in working and "40 di 100" in working

    # Done: the job's figures give way to the report's; the working list lets it go.
    report = {
        "seconds": 10.0,
        "totals": {
            "folders": 1,
            "source_count": 100,
            "source_bytes": 1,
            "copied": 90,
            "copied_bytes": 3 * 1024 * 1024,
            "already_present": 10,
            "skipped_too_large": 0,
            "errors": 0,
            "missing": 0,
        },
        "folders": [],
        "errors": [],
    }
    db.session.execute(sa.update(Migration).where(Migration.id == row.id).values(state="done", report=report))
    db.session.commit()
    words = plain(text(client.get(f"/admin/migrations/{row.id}", headers=htmx)))
    assert "100 di 100 (100%)" in words and "10 messaggi/s" in words and "Copiati 3,0 MB" in words
    assert "Clienti/Città" not in words
    assert box.address not in plain(text(client.get("/admin/migrations")))


def test_a_migration_kept_in_sync_starts_before_the_switch_and_staff_end_it(
    client, auth, make, office, pair, monkeypatch
):
    old, ours = pair
    _configure(monkeypatch, ours)
    c, domain, box = office
    ours.add_user(box.address, "non-usata-qui")
    user = f"vecchio{uuid.uuid4().hex[:8]}"
    old.add_user(user, OLD_PASSWORD)
    _seed(old, user)
    _mx(domain.id, "published")  # the MX not propagated yet
    auth.login(make.staff().email)
    page = plain(text(client.get(f"/admin/domains/{domain.id}/migrations")))
    assert "Una migrazione tenuta in sincronia può partire già ora" in page
    assert "Inserisci da un foglio" in page

    mid = _enter(client, domain, box, old, user, sync="1")
    assert db.session.get(Migration, mid).sync is True
    detail = f"/admin/migrations/{mid}"
    assert client.post(detail + "/preflight").status_code == 303
    assert client.post(detail + "/start").status_code == 303  # JOBS_INLINE: the first pass ran
    row = db.session.get(Migration, mid)
    db.session.refresh(row)
    assert row.state == "syncing" and row.passes == 1
    html = text(client.get(detail))
    words = plain(html)
    assert "In sincronia" in words and "Prossima copia:" in words and "Copie eseguite 1" in words
    assert f'action="{detail}/finish"' in html and "Ultima copia ora" in words
    assert "hx-trigger" not in html  # resting between passes: no polling

    finished = client.post(detail + "/finish")  # the final pass runs at once (inline)
    assert finished.status_code == 303
    db.session.refresh(row)
    assert row.state == "done" and row.passes == 2
    assert db.session.scalar(sa.select(Migration.secret).where(Migration.id == mid)) is None
    words = plain(text(client.get(detail)))
    assert "Completata" in words and "Ultima copia ora" not in words
    # The customer reads it; it cannot finish it.
    auth.logout()
    auth.login(make.admin(c).email)
    assert client.post(detail + "/finish").status_code == 404
    portal = plain(text(client.get(f"/customers/{c.id}/migrations/{mid}")))
    assert "Completata" in portal and "Ultima copia ora" not in portal


def _made(domain, box, **values):
    """A migration entered by staff, then set as a test needs it (no copy run)."""
    from app.services.access import Actor
    from app.services.migration import migrations

    row = migrations.create(
        Actor.for_user(factories.staff()),
        domain.id,
        {"mailbox": box.address, "host": "imap.vecchio.it", "username": "anna", "password": OLD_PASSWORD},
    )
    if values:
        db.session.execute(sa.update(Migration).where(Migration.id == row.id).values(**values))
        db.session.commit()
    db.session.refresh(row)
    return row


MB = 1024 * 1024


def _preflight(count: int, needed: int, **more) -> dict:
    return {
        "ok": True,
        "problem": None,
        "needed_bytes": needed,
        "free_bytes": 100 * MB,
        "totals": {"folders": 1, "source_count": count, "source_bytes": needed, "skipped_too_large": 0},
        "folders": [
            {"source": "INBOX", "target": "INBOX", "source_count": count, "source_bytes": needed,
             "skipped_too_large": [], "errors": []}
        ],
        **more,
    }  # fmt: skip


def test_after_several_passes_the_figures_are_every_passs_and_the_folders_the_last_ones(
    client, auth, make, office
):
    c, domain, box = office
    other = make.mailbox(c, "anna")
    last_pass = {
        "seconds": 2.0,
        "totals": {"folders": 1, "source_count": 100, "source_bytes": 9 * MB, "copied": 2,
                   "copied_bytes": 1 * MB, "already_present": 98, "skipped_too_large": 0, "errors": 0,
                   "missing": 0},
        "folders": [{"source": "INBOX", "target": "INBOX", "source_count": 100, "source_bytes": 9 * MB,
                     "copied": 2, "already_present": 98, "skipped_too_large": [], "errors": [],
                     "missing": 0}],
        "errors": [],
        "all_passes": {"copied": 100, "copied_bytes": 6 * MB},
    }  # fmt: skip
    row = _made(
        domain, box, sync=True, state="done", passes=3, report=last_pass, preflight=_preflight(98, 7 * MB)
    )
    _made(domain, other, state="preflight_ok", preflight=_preflight(10, 2 * MB))
    auth.login(make.staff().email)
    html = text(client.get(f"/admin/migrations/{row.id}"))
    words = plain(html)
    assert re.search(r'id="report-copied">100<', html)  # every pass's, not the last one's 2
    assert "Copiati 6,0 MB" in words and "in 3 copie" in words
    assert "Per cartella, l'ultima copia" in words
    listed = plain(text(client.get(f"/admin/domains/{domain.id}/migrations")))
    assert "6,0 MB Copiati" in listed
    # Still to copy: only the one not finished (2 MB), not the done one's 7 MB besides.
    assert "da copiare: 2,0 MB" in listed
    # The CSV says the same: every pass's copied, the folders the last copy's, the state in words.
    got = client.get(f"/admin/migrations/{row.id}/resoconto.csv")
    lines = list(csv.reader(io.StringIO(got.get_data().decode("utf-8-sig"))))
    assert ["Copie eseguite", "3", "Copiati in tutte le copie", "100", str(6 * MB)] in lines
    assert next(r for r in lines if r and r[0] == "Stato")[1] == "Completata"
    # A one-pass migration keeps the plain heading.
    db.session.execute(sa.update(Migration).where(Migration.id == row.id).values(passes=1))
    db.session.commit()
    assert "l'ultima copia" not in plain(text(client.get(f"/admin/migrations/{row.id}")))
    # The CSV says the state in words.
    got = client.get(f"/admin/migrations/{row.id}/resoconto.csv")
    lines = list(csv.reader(io.StringIO(got.get_data().decode("utf-8-sig"))))
    state_row = next(r for r in lines if r and r[0] == "Stato")
    assert state_row[1] == "Completata"


def test_a_pass_waiting_for_its_turn_shows_no_finished_jobs_counts_and_never_a_false_100(
    client, auth, make, office
):
    from tests.web.jobrows import job_row

    c, domain, box = office
    earlier = job_row(c.id, "done", kind="migration_copy", done=100, total=100, message="INBOX")
    row = _made(domain, box, sync=True, state="queued", passes=1, job_id=earlier.id,
                preflight=_preflight(100, MB))  # fmt: skip
    auth.login(make.staff().email)
    htmx = {"HX-Request": "true"}
    words = plain(text(client.get(f"/admin/migrations/{row.id}", headers=htmx)))
    assert "0 di 100 (0%)" in words and "100 di 100" not in words
    assert "0 / 100" in plain(text(client.get(f"/admin/domains/{domain.id}/migrations", headers=htmx)))
    # Running, its count at the preflight's total (new mail since): the count, no "100%".
    running = job_row(c.id, "running", kind="migration_copy", done=100, total=100, message="INBOX")
    db.session.execute(
        sa.update(Migration).where(Migration.id == row.id).values(state="running", job_id=running.id)
    )
    db.session.commit()
    html = text(client.get(f"/admin/migrations/{row.id}", headers=htmx))
    words = plain(html)
    assert "100 di 100" in words and "100%)" not in words and 'style="width: 100%"' in html
    assert progress.progress(db.session.get(Migration, row.id)).percent is None


def test_a_failed_one_whose_password_is_gone_offers_only_cancel(client, auth, make, office):
    c, domain, box = office
    row = _made(domain, box, state="failed", error="Rete caduta.", secret=None, preflight=_preflight(5, MB))
    auth.login(make.staff().email)
    html = main(text(client.get(f"/admin/migrations/{row.id}")))
    words = plain(html)
    assert "Inserisci di nuovo" not in words and "Riprova" not in words
    assert f'href="/admin/migrations/{row.id}/cancel"' in html
    assert "annulla questa migrazione, poi inseriscila di nuovo" in words


def test_a_refused_preflight_hides_start_and_its_unread_folders_are_said(client, auth, make, office):
    c, domain, box = office
    refused = {"ok": False, "problem": "La casella di destinazione non è attiva."}
    row = _made(domain, box, state="failed", error="Rete caduta.", preflight=refused)
    auth.login(make.staff().email)
    html = main(text(client.get(f"/admin/migrations/{row.id}")))
    words = plain(html)
    assert "Riprova" not in words and f"/admin/migrations/{row.id}/start" not in html
    assert "Esegui di nuovo la verifica" in words
    # A good preflight with a folder it could not read: the warning, the folder named.
    pre = _preflight(5, MB)
    pre["folders"].append({"source": "INBOX.Rotta", "target": "Rotta", "source_count": 0, "source_bytes": 0,
                           "skipped_too_large": [], "errors": ["SELECT non riuscito: cartella illeggibile"]})  # fmt: skip
    db.session.execute(
        sa.update(Migration).where(Migration.id == row.id).values(state="preflight_ok", preflight=pre)
    )
    db.session.commit()
    html = main(text(client.get(f"/admin/migrations/{row.id}")))
    warning = re.search(r'<div class="notice notice-warn" id="preflight-errors".*?</div>', html, re.S)
    assert warning and "Rotta" in warning.group(0) and "cartella illeggibile" in warning.group(0)
    assert f"/admin/migrations/{row.id}/start" in html  # this one may start


def test_the_working_list_says_when_it_is_cut(client, auth, make, office, monkeypatch):
    c, domain, box = office
    _made(domain, box, state="failed", error="x")
    _made(domain, make.mailbox(c, "anna"), state="failed", error="y")
    auth.login(make.staff().email)
    monkeypatch.setattr(progress, "WORKING_LIMIT", 1)
    words = plain(text(client.get("/admin/migrations")))
    assert "Le prime 1 migrazioni" in words
    monkeypatch.setattr(progress, "WORKING_LIMIT", 500)
    words = plain(text(client.get("/admin/migrations")))
    assert "Le prime" not in words and "migrazioni" in words
