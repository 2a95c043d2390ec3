"""The contract admin's mailbox journey in a real browser, the support side of a refused mailbox,
and reading the list with JavaScript off.

Every step goes through what a person sees and clicks: labels, buttons, messages, the URL.
"Without a full page load" is proved by a value set on `window` that a reload would wipe,
and, where the URL must not change, by counting the main frame's navigations.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.services import capacity
from tests import factories
from tests.e2e.conftest import open_context

SHOTS = Path("/tmp/e2e-shots")
BM100 = "Business Mail 100 MB"
PLUS100 = "Business Mail Plus 100 MB"
DOMAIN = "studiorossi.example"


def shot(page: Page, name: str) -> None:
    # Screenshots are for a person reviewing the UI; they never decide the outcome.
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def ask_for_more(notice, count: str, reason: str) -> None:
    """In a limit notice: open the request form, say how many and why, send."""
    notice.get_by_text("Chiedi più caselle al commerciale").click()
    notice.get_by_label(re.compile("Quante caselle")).fill(count)
    notice.get_by_label("Perché ti servono").fill(reason)
    notice.get_by_role("button", name="Invia la richiesta al commerciale").click()


@contextmanager
def no_page_load(page: Page):
    """Assert the block changed the page through htmx: no navigation, and the window survived."""
    page.evaluate("window.__marker = 1")
    loads: list[str] = []

    def on_nav(frame):
        if frame == page.main_frame:
            loads.append(frame.url)

    page.on("framenavigated", on_nav)
    try:
        yield
    finally:
        page.remove_listener("framenavigated", on_nav)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert loads == [], f"the page navigated: {loads}"


@pytest.fixture
def new_page(browser, live_server, htmx_js):
    """Another browser (a second person, or one without JavaScript), routed like the `page` fixture."""
    contexts = []

    def _new_page(**options) -> Page:
        context = open_context(browser, live_server, htmx_js, **options)
        contexts.append(context)
        return context.new_page()

    yield _new_page
    for context in contexts:
        context.close()


def contract_customer(make, allowances: dict[str, int], mailboxes=(("mario.rossi", "Mario Rossi", BM100),)):
    """A contract customer with self-administration, one domain, its admin and a few mailboxes."""
    customer = make.customer(
        plan="contract", allowances=allowances, domain=DOMAIN, name="Studio Rossi & Associati"
    )
    admin = make.admin(customer, email=f"it@{DOMAIN}")
    for local, name, service_class in mailboxes:
        make.mailbox(customer, local=local, display_name=name, service_class=service_class)
    return customer.id, admin.email


def open_mailboxes(page: Page) -> None:
    page.get_by_role("navigation", name="Menu principale").get_by_role("link", name="Caselle").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Caselle")


def fill_create_form(page: Page, local: str, name: str, password: str, service_class: str) -> None:
    create = page.locator("#mailbox-create")
    if create.get_attribute("open") is None:
        create.get_by_text("+ Nuova casella").click()
    create.get_by_label("Indirizzo").fill(local)
    create.get_by_label("Nome visualizzato").fill(name)
    create.get_by_label("Password").fill(password)
    pick_class(create.get_by_label("Classe di servizio"), service_class)


def pick_class(select, service_class: str) -> None:
    # Each option also says how many of the class are free ("· 1 di 2 libere"): pick it by its name.
    option = select.locator("option", has_text=re.compile(rf"^{re.escape(service_class)}\b"))
    select.select_option(value=option.get_attribute("value"))


def row(page: Page, address: str):
    return page.locator("#mailbox-results tbody tr", has_text=address)


def test_contract_admin_creates_hits_the_limit_edits_suspends_and_deletes(page, login, make):
    customer_id, admin_email = contract_customer(make, {BM100: 2, PLUS100: 1})
    giulia = f"giulia.bianchi@{DOMAIN}"

    login(page, admin_email)
    expect(page.locator("main")).to_contain_text("Studio Rossi & Associati")
    open_mailboxes(page)
    expect(page.locator(".result-summary")).to_contain_text("1 casella in tutto")
    expect(row(page, f"mario.rossi@{DOMAIN}")).to_contain_text(BM100)
    shot(page, "01-mailboxes")

    with no_page_load(page):
        # Input error: the message sits beside the password field and nothing is created.
        fill_create_form(page, "giulia.bianchi", "Giulia Bianchi", "corta", BM100)
        page.get_by_role("button", name="Crea casella").click()
        password = page.locator("#mailbox-create").get_by_label("Password")
        expect(password).to_have_attribute("aria-invalid", "true")
        expect(password).to_have_accessible_description(re.compile("almeno 8 caratteri"))
        expect(page.locator("#mailbox-create .field", has=page.get_by_label("Password"))).to_contain_text(
            "La password deve avere almeno 8 caratteri."
        )
        # What was typed is kept (but the password), so only the password needs fixing.
        expect(page.locator("#mailbox-create").get_by_label("Indirizzo")).to_have_value("giulia.bianchi")
        expect(page.locator(".result-summary")).to_contain_text("1 casella in tutto")
        expect(row(page, giulia)).to_have_count(0)
        shot(page, "02-create-short-password")

        page.locator("#mailbox-create").get_by_label("Password").fill("Giulia-Bianchi-2026")
        page.get_by_role("button", name="Crea casella").click()
        expect(page.locator("#mailbox-create [role=status]")).to_contain_text(f"Casella {giulia} creata.")
        expect(row(page, giulia)).to_contain_text("Giulia Bianchi")
        expect(row(page, giulia)).to_contain_text(BM100)
        expect(page.locator(".result-summary")).to_contain_text("2 caselle in tutto")
        shot(page, "03-created")

        # The contract allows two Business Mail 100 MB: a third is refused, with the numbers.
        fill_create_form(page, "luca.verdi", "Luca Verdi", "Luca-Verdi-2026", BM100)
        page.get_by_role("button", name="Crea casella").click()
        notice = page.locator("#limit-notice")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text(BM100)
        expect(notice).to_contain_text("2 caselle su 2")
        expect(row(page, f"luca.verdi@{DOMAIN}")).to_have_count(0)
        shot(page, "04-limit")

        ask_for_more(notice, "1", "Arriva Luca Verdi")
        expect(page.locator("#mailbox-create")).to_contain_text("Richiesta inviata al commerciale")
        expect(page.locator("#mailbox-create")).to_contain_text(BM100)
        shot(page, "05-asked-for-more")

    db.session.remove()  # a fresh read of what the server committed
    requests = capacity.list_requests(factories.SYSTEM, customer_id=customer_id)
    assert [(r.service_class.name, r.extra_accounts, r.note, r.status) for r in requests] == [
        (BM100, 1, "Arriva Luca Verdi", "open")
    ]

    with no_page_load(page):
        # Inline edit: new display name and a move to the class that still has room.
        page.get_by_role("link", name=f"Modifica {giulia}").click()
        editor = page.locator("#mailbox-results tr.editing")
        expect(editor.get_by_role("heading")).to_have_text(f"Modifica {giulia}")
        editor.get_by_label("Nome visualizzato").fill("Giulia Bianchi (amministrazione)")
        pick_class(editor.get_by_label("Classe di servizio"), PLUS100)
        shot(page, "06-editing")
        editor.get_by_role("button", name="Salva").click()
        expect(editor).to_have_count(0)
        expect(row(page, giulia)).to_contain_text("Giulia Bianchi (amministrazione)")
        expect(row(page, giulia)).to_contain_text(PLUS100)

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name=f"Sospendi {giulia}").click()
        expect(row(page, giulia).locator(".badge")).to_have_text("Sospesa")
        expect(row(page, giulia).get_by_role("button", name=f"Riattiva {giulia}")).to_be_visible()
        shot(page, "07-suspended")

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("link", name=f"Elimina {giulia}").click()
        expect(row(page, giulia)).to_have_count(0)
        expect(page.locator(".result-summary")).to_contain_text("1 casella in tutto")
        shot(page, "08-deleted")

    # Active search: the list narrows as one types, the URL follows, and a reload shows the same.
    # hx-push-url's pushState counts as a navigation for Playwright: only the marker tells here.
    page.evaluate("window.__marker = 1")
    page.get_by_role("searchbox", name="Cerca").fill("mario")
    expect(page).to_have_url(re.compile(r"/mailboxes\?q=mario(&|$)"))
    expect(page.locator(".result-summary")).to_contain_text("1 casella trovata")
    expect(row(page, f"mario.rossi@{DOMAIN}")).to_be_visible()
    assert page.evaluate("window.__marker") == 1, "the search reloaded the page"
    page.get_by_role("searchbox", name="Cerca").fill("nessuno")
    expect(page).to_have_url(re.compile(r"/mailboxes\?q=nessuno(&|$)"))
    expect(page.locator("#mailbox-results")).to_contain_text("Nessuna casella corrisponde alla ricerca.")
    page.reload()
    expect(page.get_by_role("searchbox", name="Cerca")).to_have_value("nessuno")
    expect(page.locator("#mailbox-results")).to_contain_text("Nessuna casella corrisponde alla ricerca.")
    page.go_back()
    expect(page).to_have_url(re.compile(r"/mailboxes\?q=mario(&|$)"))
    page.reload()
    expect(page.get_by_role("searchbox", name="Cerca")).to_have_value("mario")
    expect(page.locator(".result-summary")).to_contain_text("1 casella trovata")
    expect(row(page, f"mario.rossi@{DOMAIN}")).to_be_visible()
    shot(page, "09-search-reloaded")

    # The dashboard's bars: one of two Business Mail 100 MB in use, the Plus one free again.
    page.get_by_role("navigation", name="Menu principale").get_by_role("link", name="Dashboard").click()
    usage = page.get_by_role("region", name="Utilizzo del contratto")
    bm = usage.locator("li", has_text=BM100)
    plus = usage.locator("li", has_text=PLUS100)
    expect(bm.locator(".usage-count")).to_have_text("1 di 2")
    expect(bm.locator(".bar span")).to_have_attribute("style", re.compile(r"width: 50%"))
    expect(plus.locator(".usage-count")).to_have_text("0 di 1")
    expect(plus.locator(".bar span")).to_have_attribute("style", re.compile(r"width: 0%"))
    expect(page.locator("main")).to_contain_text("Hai 1 richiesta in attesa di risposta dal commerciale.")
    shot(page, "10-dashboard")


@pytest.mark.parametrize("way", ["contract editor", "capacity request"])
def test_support_raises_the_allowance_and_the_refused_mailbox_can_be_created(
    page, login, make, new_page, way
):
    _, admin_email = contract_customer(
        make, {BM100: 2}, [("mario.rossi", "Mario Rossi", BM100), ("anna.neri", "Anna Neri", BM100)]
    )
    make.customer(
        plan="contract", allowances={BM100: 5}, name="Bianchi Costruzioni", domain="bianchi.example"
    )
    staff = make.staff(email="assistenza@collabra.it")
    luca = f"luca.verdi@{DOMAIN}"

    # The customer is refused and asks for more.
    login(page, admin_email)
    open_mailboxes(page)
    fill_create_form(page, "luca.verdi", "Luca Verdi", "Luca-Verdi-2026", BM100)
    page.get_by_role("button", name="Crea casella").click()
    expect(page.locator("#limit-notice")).to_contain_text("2 caselle su 2")
    ask_for_more(page.locator("#limit-notice"), "1", "Arriva Luca Verdi")
    expect(page.locator("#mailbox-create")).to_contain_text("Richiesta inviata al commerciale")

    # Support, in another browser, finds the customer and gives one more Business Mail 100 MB.
    desk = new_page()
    login(desk, staff.email)
    menu = desk.get_by_role("navigation", name="Menu principale")
    if way == "contract editor":
        # Staff land on this same page: wait for the click's own load, or the search may be typed
        # into the page being replaced.
        with desk.expect_navigation():
            menu.get_by_role("link", name="Clienti").click()
        expect(desk.locator("#customers-table")).to_contain_text("Bianchi Costruzioni")
        desk.get_by_role("searchbox", name="Cerca un cliente").fill("Rossi")
        expect(desk).to_have_url(re.compile(r"/admin/customers\?q=Rossi"))
        table = desk.locator("#customers-table")
        expect(table).to_contain_text("1 cliente trovato per «Rossi»")
        expect(table).not_to_contain_text("Bianchi Costruzioni")
        shot(desk, "11-staff-search")
        table.get_by_role("link", name="Studio Rossi & Associati").click()
        expect(desk.get_by_role("heading", level=1)).to_contain_text("Studio Rossi & Associati")
        contract = desk.locator("#contract")
        expect(contract).to_contain_text(f"In vigore: 2 × {BM100}")
        contract.get_by_label(BM100, exact=True).fill("3")
        contract.get_by_role("button", name="Salva il contratto").click()
        expect(desk.locator("#contract")).to_contain_text("Contratto salvato.")
        expect(desk.locator("#contract")).to_contain_text(f"In vigore: 3 × {BM100}")
        shot(desk, "12-staff-contract")
    else:
        menu.get_by_role("link", name="Richieste al commerciale").click()
        pending = desk.get_by_role("region", name=re.compile("Da gestire"))
        request_row = pending.locator("tr", has_text="Studio Rossi & Associati")
        expect(request_row).to_contain_text(BM100)
        expect(request_row).to_contain_text("2 / 2")
        shot(desk, "11-staff-requests")
        request_row.get_by_role("button", name="Approva").click()
        expect(desk.locator("#capacity [role=status]")).to_contain_text("Approvata")
        expect(desk.get_by_role("region", name=re.compile("Da gestire"))).to_contain_text(
            "Nessuna richiesta in attesa."
        )
        shot(desk, "12-staff-approved")

    # Back in the customer's page, still showing the refusal: the same form now goes through.
    with no_page_load(page):
        page.locator("#mailbox-create").get_by_label("Password").fill("Luca-Verdi-2026")
        page.get_by_role("button", name="Crea casella").click()
        expect(page.locator("#mailbox-create [role=status]")).to_contain_text(f"Casella {luca} creata.")
        expect(row(page, luca)).to_contain_text(BM100)
    shot(page, f"13-created-after-{way.replace(' ', '-')}")

    page.get_by_role("navigation", name="Menu principale").get_by_role("link", name="Dashboard").click()
    bm = page.get_by_role("region", name="Utilizzo del contratto").locator("li", has_text=BM100)
    expect(bm.locator(".usage-count")).to_have_text("3 di 3")
    expect(bm).to_contain_text("Limite raggiunto")


def test_without_javascript_the_list_reads_and_the_search_is_a_plain_get(login, make, new_page):
    _, admin_email = contract_customer(
        make,
        {BM100: 5, PLUS100: 1},
        [("mario.rossi", "Mario Rossi", BM100), ("anna.neri", "Anna Neri", PLUS100)],
    )
    page = new_page(java_script_enabled=False)

    login(page, admin_email)
    open_mailboxes(page)
    results = page.locator("#mailbox-results")
    expect(results).to_contain_text("2 caselle in tutto")
    expect(row(page, f"anna.neri@{DOMAIN}")).to_contain_text("Anna Neri")
    expect(row(page, f"anna.neri@{DOMAIN}")).to_contain_text(PLUS100)
    expect(row(page, f"mario.rossi@{DOMAIN}")).to_contain_text("Attiva")
    shot(page, "14-nojs-list")

    page.get_by_role("searchbox", name="Cerca").fill("anna")
    with page.expect_navigation():
        page.get_by_role("button", name="Filtra").click()
    expect(page).to_have_url(re.compile(r"/mailboxes\?q=anna(&|$)"))
    expect(page.get_by_role("searchbox", name="Cerca")).to_have_value("anna")
    expect(results).to_contain_text("1 casella trovata")
    expect(row(page, f"anna.neri@{DOMAIN}")).to_be_visible()
    expect(row(page, f"mario.rossi@{DOMAIN}")).to_have_count(0)
    shot(page, "15-nojs-search")
