"""A bulk import in a real browser: the template downloaded and filled in, a file with an error
previewed (the problem at its cell, Apply disabled), the fixed file uploaded and applied, the
progress bar while a real RQ worker does the job, the outcome arriving by itself, the report
downloaded; and the pages on a 390 px phone.
"""

from __future__ import annotations

import io
import re

import pytest
import redis
from openpyxl import load_workbook
from playwright.sync_api import Page, expect
from rq import Queue, SimpleWorker

from app import jobs as app_jobs
from tests.conftest import TEST_REDIS_URL
from tests.e2e.test_mailbox_journey import no_page_load
from tests.e2e.test_phone_layout import DESKTOP, PHONE, SIDEWAYS, shot

BM = "Business Mail 100 MB"


@pytest.fixture
def queues(live_server):
    """The live server's jobs go to the test Redis; a worker in this process runs them in its app."""
    conn = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as e:
        pytest.skip(f"Redis unreachable at {TEST_REDIS_URL}: {e}")
    conn.flushdb()
    config = live_server.app.config
    saved = {k: config.get(k) for k in ("REDIS_URL", "JOBS_INLINE", "IMPORT_PARALLEL")}
    config.update(REDIS_URL=TEST_REDIS_URL, JOBS_INLINE=False, IMPORT_PARALLEL=1)
    app_jobs.use_app(live_server.app)
    yield conn
    app_jobs.use_app(None)
    config.update(saved)
    conn.flushdb()
    conn.close()


@pytest.fixture
def office(make):
    c = make.customer("contract", {BM: 20}, domain="studioneri.example", name="Studio Neri")
    return c, make.admin(c, email="it@studioneri.example").email


def fill(template: bytes, mailboxes: list[list[str]], aliases: list[list[str]]) -> bytes:
    """Fill the downloaded template as a person would in a spreadsheet program."""
    book = load_workbook(io.BytesIO(template))
    for ws, rows in ((book["Caselle"], mailboxes), (book["Alias"], aliases)):
        for r, values in enumerate(rows, start=2):
            for col, value in enumerate(values, start=1):
                ws.cell(row=r, column=col, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(page: Page, path) -> None:
    page.set_input_files("#f-file", str(path))
    with page.expect_navigation():
        page.get_by_role("button", name="Carica e controlla").click()


def test_template_fill_preview_fix_apply_with_progress_and_report(page, login, office, queues, tmp_path):
    c, email = office
    page.set_viewport_size(DESKTOP)
    login(page, email)
    page.goto(f"/customers/{c.id}/")
    page.locator("#sidenav").get_by_role("link", name="Importa da Excel").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Importa da Excel")

    with page.expect_download() as got:
        page.get_by_role("link", name="Scarica il modello").click()
    with open(got.value.path(), "rb") as f:
        template = f.read()
    assert got.value.suggested_filename == "modello-importazione.xlsx"

    people = [
        ["anna.neri@studioneri.example", "Segreta-Lunga-1", "Anna Neri", BM],
        ["bruno.neri@studioneri.example", "corta", "Bruno Neri", BM],
        ["carla.neri@studioneri.example", "Segreta-Lunga-3", "Carla Neri", BM],
    ]
    aliases = [["info@studioneri.example", "anna.neri@studioneri.example"]]
    wrong = tmp_path / "personale.xlsx"
    wrong.write_bytes(fill(template, people, aliases))
    upload(page, wrong)
    expect(page.get_by_role("heading", level=1)).to_have_text("Importazione di personale.xlsx")
    problems = page.locator("ul.problems li")
    expect(problems).to_have_count(1)
    expect(problems.first).to_have_text(
        "Foglio Caselle, riga 3, colonna B: La password deve avere almeno 8 caratteri."
    )
    expect(page.get_by_role("button", name="Applica", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Applica solo le righe valide")).to_be_enabled()
    shot(page, "import-preview-errors-desktop")
    page.set_viewport_size(PHONE)
    assert page.evaluate(SIDEWAYS) == [], "the preview scrolls sideways on a phone"
    shot(page, "import-preview-errors-phone")
    page.set_viewport_size(DESKTOP)

    people[1][1] = "Segreta-Lunga-2"
    fixed = tmp_path / "personale-corretto.xlsx"
    fixed.write_bytes(fill(template, people, aliases))
    page.get_by_role("link", name="Carica un altro file").click()
    upload(page, fixed)
    expect(page.get_by_role("heading", level=1)).to_have_text("Importazione di personale-corretto.xlsx")
    expect(page.locator("ul.problems")).to_have_count(0)
    expect(page.get_by_text("Verranno creati 4 elementi")).to_be_visible()

    with page.expect_navigation():
        page.get_by_role("button", name="Applica", exact=True).click()
    bar = page.get_by_role("progressbar", name="Avanzamento")
    expect(bar).to_be_visible()
    expect(bar).to_have_attribute("aria-valuemax", "4")
    expect(page.locator(".job")).to_contain_text("Importazione da Excel")
    shot(page, "import-applying-desktop")

    with no_page_load(page):
        # A real worker takes the job from the bulk queue; the page finds out by itself.
        SimpleWorker([Queue("bulk", connection=queues)], connection=queues).work(burst=True)
        report_link = page.get_by_role("link", name="Scarica il resoconto")
        expect(report_link).to_be_visible()
    expect(page.locator("#import-state")).to_contain_text("Importazione finita: 4 elementi creati")
    expect(page.locator("#import-state")).to_contain_text("Completata")
    shot(page, "import-done-desktop")

    with page.expect_download() as got:
        report_link.click()
    assert got.value.suggested_filename == "personale-corretto-esito.xlsx"
    with open(got.value.path(), "rb") as f:
        sheet = load_workbook(io.BytesIO(f.read())).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [(r[4], r[7]) for r in rows] == [
        ("anna.neri@studioneri.example", "Creato"),
        ("bruno.neri@studioneri.example", "Creato"),
        ("carla.neri@studioneri.example", "Creato"),
        ("info@studioneri.example", "Creato"),
    ]

    # On a phone: the outcome and the history read without scrolling sideways.
    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.get_by_role("link", name="Scarica il resoconto")).to_be_visible()
    assert page.evaluate(SIDEWAYS) == [], "the outcome scrolls sideways on a phone"
    shot(page, "import-done-phone")
    page.goto(f"/customers/{c.id}/imports")
    rows = page.locator("section[aria-labelledby=h-history] tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("personale-corretto.xlsx")
    expect(rows.first).to_contain_text("Completata")
    expect(rows.nth(1)).to_contain_text(re.compile("Da confermare"))
    assert page.evaluate(SIDEWAYS) == [], "the imports page scrolls sideways on a phone"
    shot(page, "import-index-phone")
    page.set_viewport_size(DESKTOP)
    shot(page, "import-index-desktop")
