"""A migration in a real browser, against two real Dovecots: support signs in, opens the customer's
domain's migrations, enters one, runs the preflight and sees the folders as they will be named here
(and the message over the limit that will be skipped), starts it, watches a real RQ worker copy it
while the page follows by itself to "Completata", and downloads the report; the pages on a 390 px
phone too, and the customer's read-only view.
"""

# ruff: noqa: F811  (the test takes the fixture `pair` imported from test_imap_copy)

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from datetime import UTC, datetime

import pytest
import redis
from imapclient import IMAPClient
from playwright.sync_api import expect
from rq import Queue, SimpleWorker

from app import jobs as app_jobs
from app.services import domains
from tests.e2e.test_mailbox_journey import new_page, no_page_load  # noqa: F401  (new_page: a fixture)
from tests.e2e.test_phone_layout import DESKTOP, PHONE, SIDEWAYS, shot
from tests.integration.imap_servers import MASTER, MASTER_PASSWORD
from tests.integration.mailservers import HOST
from tests.integration.test_imap_copy import pair  # noqa: F401  (the two Dovecots, once per module)
from tests.integration.test_migrations_panel import _mx

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
OLD_PASSWORD = "Vecchia-" + uuid.uuid4().hex[:10]
LIMIT = 40_000  # the size limit for this run: one message is over it


@pytest.fixture
def setup(live_server, pair):
    """The live server writes to the "ours" Dovecot and queues its jobs in the test Redis; a worker
    in this process runs them (restored after the test)."""
    old, ours = pair
    conn = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as e:
        pytest.skip(f"Redis unreachable at {TEST_REDIS_URL}: {e}")
    conn.flushdb()
    config = live_server.app.config
    values = {
        "REDIS_URL": TEST_REDIS_URL,
        "JOBS_INLINE": False,
        "DOVECOT_IMAP_HOST": HOST,
        "DOVECOT_IMAP_PORT": ours.port,
        "DOVECOT_MASTER_USER": MASTER,
        "DOVECOT_MASTER_PASSWORD": MASTER_PASSWORD,
        "MIGRATION_DEST_SECURITY": "none",
        "MIGRATION_MAX_SIZE": LIMIT,
    }
    saved = {k: config.get(k) for k in values}
    config.update(values)
    app_jobs.use_app(live_server.app)
    yield old, ours, conn
    app_jobs.use_app(None)
    config.update(saved)
    conn.flushdb()
    conn.close()


def seed(server, user: str) -> None:
    """The old account: an inbox, an Italian "Posta inviata" and a client folder, one big message."""
    client = IMAPClient(HOST, port=server.port, ssl=False, timeout=30)
    client.login(user, OLD_PASSWORD)
    client.create_folder("INBOX.Posta inviata")
    client.create_folder("INBOX.Clienti")
    client.create_folder("INBOX.Clienti.Città")
    n = 0
    for folder, count in (("INBOX", 30), ("INBOX.Posta inviata", 12), ("INBOX.Clienti.Città", 8)):
        for _ in range(count):
            n += 1
            raw = (
                f"Message-ID: <m{n}@vecchio.example>\r\nFrom: a@vecchio.example\r\nSubject: messaggio {n}\r\n"
                f"Date: Mon, 1 Jun 2015 10:00:00 +0200\r\n\r\n" + "testo\r\n" * 300
            ).encode()
            client.append(
                folder, raw, flags=(b"\\Seen",), msg_time=datetime(2015, 6, 1, 8, n % 60, tzinfo=UTC)
            )
    big = (
        "Message-ID: <grande@vecchio.example>\r\nFrom: a@vecchio.example\r\nSubject: =allegato enorme\r\n"
        "Date: Tue, 2 Jun 2015 10:00:00 +0200\r\n\r\n" + "x" * 60 + "\r\n"
    ) * 1 + ("y" * 76 + "\r\n") * 700
    client.append("INBOX", big.encode(), msg_time=datetime(2015, 6, 2, 8, 0, tzinfo=UTC))
    client.logout()


def test_support_enters_checks_starts_watches_and_downloads_a_migration(page, login, make, setup, new_page):
    old, ours, conn = setup
    tag = uuid.uuid4().hex[:6]
    c = make.customer(domain=f"neri{tag}.example", name="Studio Neri")
    box = make.mailbox(c, "mario")
    ours.add_user(box.address, "non-usata-qui")
    user = f"mario.vecchio{tag}"
    old.add_user(user, OLD_PASSWORD)
    seed(old, user)
    domain = domains.list_domains(make.SYSTEM, c.id)[0]
    _mx(domain.id, "propagated")
    staff = make.staff(email=f"assistenza{tag}@collabra.it")

    page.set_viewport_size(DESKTOP)
    login(page, staff.email)
    page.goto(f"/admin/customers/{c.id}")
    page.locator(f"#customer-domain-{domain.id}").get_by_role("link", name="Migrazioni").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Migrazioni di {domain.display_name}")
    expect(page.locator("#migrations-live")).to_contain_text("Nessuna migrazione per questo dominio.")

    # A mistake first: the password is not sent back, the message is beside the field.
    page.select_option("#f-mailbox", box.address)
    page.fill("#f-host", "imap..vecchio")
    page.fill("#f-port", str(old.port))
    page.select_option("#f-security", "none")
    page.fill("#f-username", user)
    page.fill("#f-password", OLD_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Inserisci la migrazione").click()
    expect(page.locator("#f-host-error")).to_be_visible()
    expect(page.locator("#f-password")).to_have_value("")
    assert OLD_PASSWORD not in page.content()
    page.set_viewport_size(PHONE)
    assert page.evaluate(SIDEWAYS) == [], "the form scrolls sideways on a phone"
    shot(page, "migration-form-errors-phone")
    page.set_viewport_size(DESKTOP)

    page.fill("#f-host", HOST)
    page.fill("#f-password", OLD_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Inserisci la migrazione").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Migrazione di {box.address}")
    expect(page.locator("#migration-state")).to_have_text("Da verificare")

    # The preflight, a job: the page says it is at work and follows it by itself; then the folders with
    # their names here, the big one to be skipped, the space.
    with page.expect_navigation():
        page.get_by_role("button", name="Verifica").click()
    expect(page.locator("#migration-checking")).to_contain_text("Verifica in corso")
    expect(page.locator("#migration-live")).to_have_attribute("hx-trigger", "every 2s")
    with no_page_load(page):
        SimpleWorker([Queue("migration", connection=conn)], connection=conn).work(burst=True)
        expect(page.locator("#migration-state")).to_have_text("Verificata")
    expect(page.locator("#migration-checking")).to_have_count(0)
    folders = page.locator("#preflight-folders tbody tr")
    expect(folders).to_have_count(4)
    expect(page.locator("#preflight-folders")).to_contain_text("INBOX.Posta inviata")
    expect(page.locator("#preflight-folders")).to_contain_text("Clienti/Città")
    expect(folders.filter(has_text="INBOX.Posta inviata")).to_contain_text("Sent")
    expect(page.locator(".migration-skipped")).to_contain_text("=allegato enorme")
    expect(page.locator("#preflight-free")).to_be_visible()
    shot(page, "migration-preflight-desktop")
    page.set_viewport_size(PHONE)
    assert page.evaluate(SIDEWAYS) == [], "the preflight scrolls sideways on a phone"
    shot(page, "migration-preflight-phone")
    page.set_viewport_size(DESKTOP)

    with page.expect_navigation():
        page.get_by_role("button", name="Avvia").click()
    expect(page.locator("#migration-state")).to_have_text("In coda")
    expect(page.locator("#migration-live")).to_have_attribute("hx-trigger", "every 2s")
    shot(page, "migration-queued-desktop")

    # What the state shows after each of the page's own refreshes (htmx swaps).
    page.evaluate(
        """() => { window.__states = [];
          document.body.addEventListener('htmx:afterSettle', () => {
            const s = document.querySelector('#migration-state'); if (s) window.__states.push(s.textContent); }); }"""
    )
    with no_page_load(page):
        # A real worker takes the job from the migration queue; the page follows by itself.
        SimpleWorker([Queue("migration", connection=conn)], connection=conn).work(burst=True)
        expect(page.locator("#migration-state")).to_have_text("Completata")
        expect(page.locator("#report-copied")).to_have_text("50")
    expect(page.locator("#migration-live")).not_to_have_attribute("hx-trigger", "every 2s")
    states = page.evaluate("window.__states")
    assert states and states[-1] == "Completata", states
    expect(page.locator("#migration-count")).to_contain_text("51 di 51")
    expect(page.locator("#report")).to_contain_text("Verifica finale: nessun messaggio manca")
    shot(page, "migration-done-desktop")

    with page.expect_download() as got:
        page.get_by_role("link", name="Scarica il resoconto (CSV)").click()
    assert got.value.suggested_filename.startswith(f"migrazione-{box.address}-")
    with open(got.value.path(), "rb") as f:
        lines = list(csv.reader(io.StringIO(f.read().decode("utf-8-sig"))))
    rows = {}
    for (
        r
    ) in lines:  # the folders' table comes before the skipped messages' (whose rows start with a folder too)
        if r:
            rows.setdefault(r[0], r)
    assert rows["INBOX"][1:7] == ["INBOX", "31", rows["INBOX"][3], "30", "0", "1"]
    assert rows["INBOX.Posta inviata"][1] == "Sent" and rows["INBOX.Posta inviata"][4] == "12"
    assert rows["Totale"][4] == "50" and rows["Totale"][6] == "1" and rows["Totale"][8] == "0"
    assert any(r[1:2] == ["'=allegato enorme"] for r in lines)  # a formula would be text
    with page.expect_download() as got:
        page.get_by_role("link", name="Scarica il resoconto (JSON)").click()
    with open(got.value.path(), "rb") as f:
        body = json.load(f)
    assert body["mailbox"] == box.address and body["report"]["totals"]["copied"] == 50

    page.set_viewport_size(PHONE)
    assert page.evaluate(SIDEWAYS) == [], "the report scrolls sideways on a phone"
    shot(page, "migration-done-phone")
    page.goto(f"/admin/domains/{domain.id}/migrations")
    expect(page.locator("#migrations-live")).to_contain_text("51 / 51")
    assert page.evaluate(SIDEWAYS) == [], "the domain's migrations scroll sideways on a phone"
    shot(page, "migration-list-phone")
    page.set_viewport_size(DESKTOP)
    shot(page, "migration-list-desktop")

    # The customer reads the same, with no buttons.
    customer_page = new_page()
    login(customer_page, make.admin(c, email=f"it@neri{tag}.example").email)
    customer_page.goto(f"/customers/{c.id}/domains/{domain.id}")
    customer_page.get_by_role("link", name="Migrazione della posta dal vecchio fornitore").click()
    expect(customer_page.locator("#migrations-live")).to_contain_text(box.address)
    customer_page.get_by_role("link", name=box.address).click()
    expect(customer_page.locator("#migration-state")).to_have_text("Completata")
    expect(customer_page.get_by_role("button", name="Verifica")).to_have_count(0)
    expect(customer_page.get_by_role("link", name="Scarica il resoconto (CSV)")).to_be_visible()
    customer_page.set_viewport_size(PHONE)
    assert customer_page.evaluate(SIDEWAYS) == [], "the customer's report scrolls sideways on a phone"
    shot(customer_page, "migration-customer-phone")
