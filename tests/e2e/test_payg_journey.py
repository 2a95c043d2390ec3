"""A Pay-per-Use customer's journey in real browsers: the wallet with its figures and chart, the warning
that the credit runs low, the cost of a new mailbox before creating it, a 50 EUR recharge asked by
the customer and confirmed by staff, and the raised balance with the warning gone.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from app.services import billing, clock
from tests.billingkit import created, rome, seed_prices
from tests.e2e.conftest import open_context
from tests.e2e.test_mailbox_journey import no_page_load, shot

BM100 = "Business Mail 100 MB"
PRO25000 = "Professional Suite 25.000 MB"
IBAN = "IT60X0542811101000000123456"
BENEFICIARY = "Collabra S.r.l."


@pytest.fixture
def bank(live_server):
    config = live_server.app.config
    saved = {k: config.get(k) for k in ("BANK_IBAN", "BANK_BENEFICIARY", "BANK_NAME")}
    config.update(BANK_IBAN=IBAN, BANK_BENEFICIARY=BENEFICIARY, BANK_NAME="")
    yield
    config.update(saved)


@pytest.fixture
def payg_customer(app, make, bank):
    """Two active mailboxes costing 31 points a day (1 + 30) and 2 EUR of credit: 160 points, 5 days."""
    seed_prices()
    clock.set_now(rome(2026, 3, 2, 10))
    c = make.customer(name="Studio Verdi", domain="verdi.example")
    created(c, rome(2026, 3, 2, 9))
    make.mailbox(c, "anna", service_class=BM100)
    make.mailbox(c, "bruno", service_class=PRO25000)
    billing.record_credit(make.SYSTEM, c.id, 200, "BONIFICO-INIZIALE", first=True)
    admin = make.admin(c)
    yield c.id, admin.email
    clock.reset()


def points_of(text: str) -> Decimal:
    """ "4.160,00 punti" -> Decimal("4160.00")."""
    number = re.search(r"-?[\d.]+,\d{2}", text).group(0)
    return Decimal(number.replace(".", "").replace(",", "."))


def credit_banner(page: Page):
    return page.get_by_role("region", name=re.compile("Credito in esaurimento"))


def test_payg_customer_sees_the_credit_asks_a_recharge_staff_confirm_it(
    page, login, make, payg_customer, browser, live_server, htmx_js
):
    customer_id, admin_email = payg_customer
    staff = make.staff(email="amministrazione@collabra.it")

    # (1) The wallet: balance in points and EUR, days left, until when, the balance chart; the banner.
    login(page, admin_email)
    page.goto(f"/customers/{customer_id}/wallet")
    expect(page.get_by_role("heading", level=1)).to_have_text("Conto Collabra")
    balance = page.locator("#wallet-balance")
    expect(balance).to_have_text("160,00 punti")
    expect(page.locator("#wallet-eur")).to_contain_text("2,00")
    expect(page.locator("#wallet-eur")).to_contain_text("€")
    expect(page.locator("#wallet-cost")).to_contain_text("31,00 punti al giorno")
    expect(page.locator("#wallet-days-left")).to_contain_text("5 giorni")
    expect(page.locator("#wallet-until")).to_contain_text("il credito dura fino al 07/03/2026")
    chart = page.locator("#balance-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("polyline")).to_have_attribute("points", re.compile(r"\d"))
    expect(chart.locator("circle").first).to_be_attached()
    banner = credit_banner(page)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Credito in esaurimento: 5 giorni rimasti")
    expect(banner).to_contain_text("Il saldo è di 160,00 punti: al costo di oggi basta fino al 07/03/2026.")
    shot(page, "30-payg-wallet-low")

    # (2) The cost of a new mailbox, before creating it, follows the class chosen.
    page.goto(f"/customers/{customer_id}/mailboxes")
    expect(credit_banner(page)).to_be_visible()
    create = page.locator("#mailbox-create")
    create.get_by_text("+ Nuova casella").click()
    cost = create.locator("#new-class-cost")
    expect(cost).to_contain_text("Costo giornaliero attuale: 31,00 punti")
    select = create.get_by_label("Classe di servizio")
    with no_page_load(page):  # htmx fetches the cost line alone
        select.select_option(create.locator("option", has_text=BM100).get_attribute("value"))
        expect(cost).to_contain_text("Costo: 1,00 punti al giorno")
        expect(cost).to_contain_text("totale giornaliero con la nuova casella: 32,00 punti")
        # The new line listens to the select once htmx has settled it (20 ms after the swap).
        expect(cost).not_to_have_class(re.compile(r"\bhtmx-added\b"))
        select.select_option(create.locator("option", has_text=PRO25000).get_attribute("value"))
        expect(cost).to_contain_text("Costo: 30,00 punti al giorno")
        expect(cost).to_contain_text("totale giornaliero con la nuova casella: 61,00 punti")
    shot(page, "31-payg-new-mailbox-cost")

    # (3) The customer asks for 50 EUR and reads how to pay.
    credit_banner(page).get_by_role("link", name="Ricarica il conto").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ricarica il conto")
    page.get_by_role("button", name="50 EUR: 4.000 punti").click()
    instructions = page.get_by_role("region", name="Istruzioni per il bonifico")
    expect(instructions).to_be_visible()
    expect(instructions).to_contain_text(BENEFICIARY)
    expect(instructions).to_contain_text(IBAN)
    expect(instructions).to_contain_text("50,00 EUR")
    expect(instructions).to_contain_text("4.000,00")
    reference = instructions.get_by_label("Causale da copiare").input_value()
    assert reference.strip(), "no reference to write on the transfer"
    expect(page.locator("#recharge-requests")).to_contain_text(reference)
    shot(page, "32-payg-recharge-instructions")

    # (4) Staff, in another browser, confirm the transfer received.
    desk_context = open_context(browser, live_server, htmx_js)
    try:
        desk = desk_context.new_page()
        login(desk, staff.email)
        desk.get_by_role("navigation", name="Menu principale").get_by_role("link", name="Ricariche").click()
        expect(desk.get_by_role("heading", level=1)).to_have_text("Ricariche")
        row = desk.locator("tr", has_text=reference)
        expect(row).to_contain_text("Studio Verdi")
        expect(row).to_contain_text("50,00 EUR")
        expect(row.get_by_label("Importo ricevuto in EUR")).to_have_value("50,00")
        row.get_by_role("button", name="Conferma e accredita").click()
        expect(desk.locator(".flashes")).to_contain_text(
            f"Ricarica {reference} confermata: 4.000,00 punti accreditati a Studio Verdi."
        )
        expect(desk.get_by_text("Nessuna ricarica in attesa.")).to_be_visible()
        shot(desk, "33-payg-recharge-confirmed")
        assert not desk_context.csp_violations
    finally:
        desk_context.close()

    # (5) The customer's wallet: 4.000 points more, the warning gone.
    page.goto(f"/customers/{customer_id}/wallet")
    expect(balance).to_have_text("4.160,00 punti")
    assert points_of(balance.inner_text()) - Decimal("160.00") == Decimal("4000.00")
    expect(page.locator("#wallet-eur")).to_contain_text("52,00")
    expect(page.locator("#wallet-days-left")).to_contain_text("134 giorni")
    expect(page.get_by_text("Credito in esaurimento")).to_have_count(0)
    expect(page.locator("#credit-banner")).to_have_count(0)
    shot(page, "34-payg-wallet-recharged")
