"""A migration in a real browser, against two real Dovecots: support signs in, opens the customer's
domain's migrations, enters one, runs the preflight and sees the folders as they will be named here
(and the message over the limit that will be skipped), starts it, watches a real RQ worker copy it
from a slow old server (a relay that delays every byte) while the page follows by itself through
"In corso" with a part of the messages to "Completata", and downloads the report; the pages on a
390 px phone too, with a long address, old username and folder name, and the customer's read-only
view; then the sheet page, whose "Crea" lands on the domain's migrations.
"""

# ruff: noqa: F811  (the test takes the fixture `pair` imported from test_imap_copy)

from __future__ import annotations

import csv
import io
import json
import re
import socket
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from imapclient import IMAPClient
from playwright.sync_api import expect
from rq import Queue, SimpleWorker
from rq.timeouts import TimerDeathPenalty

from app import jobs as app_jobs
from app.services import domains
from tests.conftest import TEST_REDIS_URL
from tests.e2e.test_mailbox_journey import new_page, no_page_load  # noqa: F401  (new_page: a fixture)
from tests.e2e.test_phone_layout import DESKTOP, PHONE, SIDEWAYS, shot
from tests.integration.imap_servers import MASTER, MASTER_PASSWORD
from tests.integration.mailservers import HOST
from tests.integration.test_imap_copy import pair  # noqa: F401  (the two Dovecots, once per module)
from tests.integration.test_migrations_panel import _mx

OLD_PASSWORD = "Vecchia-" + uuid.uuid4().hex[:10]
LIMIT = 40_000  # the size limit for this run: one message is over it
DELAY_PROXY = Path(__file__).resolve().parents[2] / "bench" / "_delay_proxy.py"
DELAY_MS = 400  # each way: every IMAP round trip to the old server costs 0.8 s, the copy some seconds


class _ThreadWorker(SimpleWorker):
    """A worker in a thread: no signal handlers (the main thread's), timeouts by a timer."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


def _work(conn) -> None:
    _ThreadWorker([Queue("migration", connection=conn)], connection=conn).work(burst=True)


# A long folder name, on the old server and here (it must wrap on a phone).
ARCHIVE = 1000  # messages in one folder: five batches of the copy (200 a batch)
LONG_FOLDER = "Progetti" + "ProgettoConUnNomeMoltoLungoSenzaSpazi" * 2
# Nothing wider than the phone: the page itself.
PAGE_WIDTH = "() => document.documentElement.scrollWidth"
# What sticks out (for the failure's message): the innermost elements past the right edge.
WIDEST = """() => [...document.querySelectorAll('body *')].filter(e => !e.closest('thead') && e.getBoundingClientRect().right > innerWidth + 1
  && ![...e.children].some(c => c.getBoundingClientRect().right > innerWidth + 1))
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 60))"""


@pytest.fixture
def slow(pair):
    """A relay in front of the old Dovecot that holds every chunk DELAY_MS each way (its own process)."""
    old, _ours = pair
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    relay = subprocess.Popen(
        [sys.executable, str(DELAY_PROXY), str(port), HOST, str(old.port), "--delay-ms", str(DELAY_MS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout.readline().strip() == "ready"
        yield port
    finally:
        relay.terminate()
        relay.wait(timeout=10)


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
    client.create_folder(f"INBOX.{LONG_FOLDER}")
    client.create_folder("INBOX.Archivio")
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
    # An archive of small messages: its copy takes several batches, each a round trip through the
    # slow relay, so the page sees a part of the messages copied.
    for i in range(ARCHIVE):
        raw = (
            f"Message-ID: <a{i}@vecchio.example>\r\nFrom: a@vecchio.example\r\nSubject: archivio {i}\r\n"
            f"Date: Mon, 1 Jun 2015 10:00:00 +0200\r\n\r\ntesto\r\n"
        ).encode()
        client.append(
            "INBOX.Archivio", raw, flags=(b"\\Seen",), msg_time=datetime(2015, 6, 1, 9, 0, tzinfo=UTC)
        )
    big = (
        "Message-ID: <grande@vecchio.example>\r\nFrom: a@vecchio.example\r\nSubject: =allegato enorme\r\n"
        "Date: Tue, 2 Jun 2015 10:00:00 +0200\r\n\r\n" + "x" * 60 + "\r\n"
    ) * 1 + ("y" * 76 + "\r\n") * 700
    client.append("INBOX", big.encode(), msg_time=datetime(2015, 6, 2, 8, 0, tzinfo=UTC))
    client.logout()


def test_support_enters_checks_starts_watches_and_downloads_a_migration(
    page, login, make, setup, slow, new_page
):
    old, ours, conn = setup
    tag = uuid.uuid4().hex[:6]
    c = make.customer(domain=f"neri{tag}.example", name="Studio Neri")
    box = make.mailbox(c, "mario.rossi.amministrazione.contabilita.fornitori.esteri" + tag[:4])  # 60
    assert len(box.address.split("@")[0]) == 60
    ours.add_user(box.address, "non-usata-qui")
    user = f"mario.vecchio.{tag}.utente-con-un-nome-molto-lungo-del-vecchio-fornitore-di-posta"
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
    page.fill("#f-port", str(slow))  # the old server behind the slow relay
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
    expect(folders).to_have_count(6)
    expect(page.locator("#preflight-folders")).to_contain_text(LONG_FOLDER)
    expect(page.locator("#preflight-folders")).to_contain_text("INBOX.Posta inviata")
    expect(page.locator("#preflight-folders")).to_contain_text("Clienti/Città")
    expect(folders.filter(has_text="INBOX.Posta inviata")).to_contain_text("Sent")
    expect(page.locator(".migration-skipped")).to_contain_text("=allegato enorme")
    expect(page.locator("#preflight-free")).to_be_visible()
    shot(page, "migration-preflight-desktop")
    page.set_viewport_size(PHONE)
    shot(page, "migration-preflight-phone")
    assert page.evaluate(SIDEWAYS) == [], page.evaluate(WIDEST)
    assert page.evaluate(PAGE_WIDTH) <= PHONE["width"]
    page.set_viewport_size(DESKTOP)

    with page.expect_navigation():
        page.get_by_role("button", name="Avvia").click()
    expect(page.locator("#migration-state")).to_have_text("In coda")
    expect(page.locator("#migration-live")).to_have_attribute("hx-trigger", "every 2s")
    shot(page, "migration-queued-desktop")

    # What the state and the count show after each of the page's own refreshes (htmx swaps): the
    # browser polls by itself while the worker below holds this thread.
    page.evaluate(
        """() => { window.__states = [];
          document.body.addEventListener('htmx:afterSettle', () => {
            const s = document.querySelector('#migration-state'); const n = document.querySelector('#migration-count');
            if (s) window.__states.push([s.textContent, n ? n.textContent : ""]); }); }"""
    )
    with no_page_load(page):
        # A real worker takes the job from the migration queue and copies from the slow old server;
        # the page follows by itself.
        # (In a thread of its own: every request of the browser passes through this one.)
        worker = threading.Thread(target=_work, args=(conn,), name="migration-worker", daemon=True)
        worker.start()
        expect(page.locator("#migration-state")).to_have_text("In corso", timeout=30_000)
        shot(page, "migration-running-desktop")
        expect(page.locator("#migration-state")).to_have_text("Completata")
        expect(page.locator("#report-copied")).to_have_text("1.050")
    worker.join(timeout=30)
    assert not worker.is_alive()
    expect(page.locator("#migration-live")).not_to_have_attribute("hx-trigger", "every 2s")
    states = page.evaluate("window.__states")
    assert states and states[-1][0] == "Completata", states
    # On the way: "In corso" with a part of the messages (not none, not all), never past 100%.
    partial = []
    for state, count in states:
        found = re.match(r"\s*([\d.]+) di ([\d.]+)", count)
        numbers = [int(n.replace(".", "")) for n in found.groups()] if found else []
        if state == "In corso" and numbers and 0 < numbers[0] < numbers[1]:
            partial.append(count)
    assert partial, states
    assert not any(
        re.search(r"\((\d{3,})%\)", c) and int(re.search(r"\((\d+)%", c).group(1)) > 100 for _s, c in states
    )
    expect(page.locator("#migration-count")).to_contain_text("1.051 di 1.051")
    expect(page.locator("#report")).to_contain_text("Verifica finale: nessun messaggio manca")
    # Every column of the report in view, the long folder name wrapped rather than pushing them out.
    assert page.evaluate(SIDEWAYS) == [], page.evaluate(WIDEST)
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
    assert rows["Totale"][4] == "1050" and rows["Totale"][6] == "1" and rows["Totale"][8] == "0"
    assert any(r[1:2] == ["'=allegato enorme"] for r in lines)  # a formula would be text
    with page.expect_download() as got:
        page.get_by_role("link", name="Scarica il resoconto (JSON)").click()
    with open(got.value.path(), "rb") as f:
        body = json.load(f)
    assert body["mailbox"] == box.address and body["report"]["totals"]["copied"] == 1050

    page.set_viewport_size(PHONE)
    expect(page.locator("#report-folders")).to_contain_text(LONG_FOLDER)
    assert page.evaluate(SIDEWAYS) == [], page.evaluate(WIDEST)
    assert page.evaluate(PAGE_WIDTH) <= PHONE["width"], "a long address or name widens the page"
    shot(page, "migration-done-phone")
    page.goto(f"/admin/domains/{domain.id}/migrations")
    expect(page.locator("#migrations-live")).to_contain_text("1.051 / 1.051")
    assert page.evaluate(SIDEWAYS) == [], page.evaluate(WIDEST)
    assert page.evaluate(PAGE_WIDTH) <= PHONE["width"]
    shot(page, "migration-list-phone")
    page.set_viewport_size(DESKTOP)
    assert page.evaluate(SIDEWAYS) == [], page.evaluate(WIDEST)
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

    # The sheet page: its preview names a long file without widening a phone; "Crea" lands on the
    # domain's migrations, the new draft listed there.
    other = make.mailbox(c, "anna.bianchi.ufficio.acquisti.e.relazioni.con.i.fornitori" + tag[:2])
    page.set_viewport_size(PHONE)
    page.goto(f"/admin/domains/{domain.id}/migrations/sheet")
    expect(page.locator(".breadcrumb")).to_contain_text(f"Migrazioni di {domain.display_name}")
    name = "migrazioni-del-dominio-" + "con-un-nome-di-file-lunghissimo" * 3 + ".csv"
    sheet = f"Casella;Vecchio utente;Vecchia password\n{other.address};{user}2;{OLD_PASSWORD}\n"
    page.fill("#f-host", HOST)
    page.set_input_files("#f-file", files=[{"name": name, "mimeType": "text/csv", "buffer": sheet.encode()}])
    with page.expect_navigation():
        page.get_by_role("button", name="Anteprima").click()
    expect(page.locator("#h-preview")).to_contain_text(name)
    expect(page.locator("#sheet-rows")).to_contain_text(other.address)
    assert page.evaluate(SIDEWAYS) == [], page.evaluate(WIDEST)
    assert page.evaluate(PAGE_WIDTH) <= PHONE["width"]
    shot(page, "migration-sheet-phone")
    page.set_viewport_size(DESKTOP)
    assert page.evaluate(SIDEWAYS) == [], page.evaluate(WIDEST)
    shot(page, "migration-sheet-desktop")
    with page.expect_navigation():
        page.locator("#confirm").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Migrazioni di {domain.display_name}")
    expect(page.locator("#migrations-live")).to_contain_text(other.address)
    expect(page.locator("#status-region")).to_contain_text("Creata 1 migrazione in bozza")
