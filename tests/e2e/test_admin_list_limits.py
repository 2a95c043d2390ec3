"""The list-limits card of the back-office customer page in a real browser: with htmx the card
swaps in place (message beside a bad field, the new limit in force), without JavaScript a plain
POST and redirect; at 1280 and 390 px it fits without scrolling sideways."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from app.cli import demo
from app.extensions import db
from app.models import Customer
from tests.e2e.conftest import open_context
from tests.e2e.test_phone_layout import DESKTOP, PHONE, SHOTS, SIDEWAYS, shot


@pytest.fixture
def seeded(app):
    demo.seed()
    by_plan = {c.plan: c.id for c in db.session.scalars(sa.select(Customer))}
    db.session.rollback()
    return by_plan


def limits_of(customer_id: int) -> tuple:
    row = db.session.get(Customer, customer_id)
    values = row.list_external_per_list, row.list_external_per_customer
    db.session.rollback()
    return values


@pytest.mark.parametrize("plan", ["payg", "contract"])
@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_card_fits_and_saves_in_place(page: Page, login, seeded, plan, size):
    page.set_viewport_size(size)
    login(page, demo.STAFF[0], demo.STAFF[1])
    url = f"/admin/customers/{seeded[plan]}"
    page.goto(url)
    card = page.locator("#list-limits")
    expect(card.get_by_role("heading", name="Liste di distribuzione")).to_be_visible()
    expect(card).to_contain_text("predefinito: 50")
    assert page.evaluate(SIDEWAYS) == [], f"{url} scrolls sideways"

    card.get_by_label("Indirizzi esterni per lista").fill("-3")
    card.get_by_role("button", name="Salva i limiti").click()
    expect(page.locator("#f-list_external_per_list-error")).to_have_text("Deve essere tra 0 e 100000.")
    expect(card.get_by_label("Indirizzi esterni per lista")).to_have_attribute("aria-invalid", "true")
    assert limits_of(seeded[plan]) == (None, None)
    assert page.evaluate(SIDEWAYS) == []
    name = f"list-limits-{plan}-{size['width']}"
    shot(page, f"{name}-error")
    card.screenshot(path=str(SHOTS / f"{name}-error-card.png"))

    card.get_by_label("Indirizzi esterni per lista").fill("30")
    card.get_by_role("button", name="Salva i limiti").click()
    expect(card.get_by_role("status")).to_contain_text(
        "Limiti delle liste salvati: al massimo 30 indirizzi esterni per lista e 200 in tutto."
    )
    expect(page.locator("#f-list_external_per_list-error")).to_have_count(0)
    expect(card.locator("tbody tr").first).to_contain_text("30")
    assert page.url.endswith(url)
    assert limits_of(seeded[plan]) == (30, None)
    assert page.evaluate(SIDEWAYS) == []
    shot(page, name)
    card.screenshot(path=str(SHOTS / f"{name}-card.png"))


def test_without_javascript_a_plain_post_and_redirect(browser, live_server, htmx_js, login, seeded):
    context = open_context(browser, live_server, htmx_js, java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    try:
        login(page, demo.STAFF[0], demo.STAFF[1])
        page.goto(f"/admin/customers/{seeded['contract']}")
        card = page.locator("#list-limits")
        card.get_by_label("Indirizzi esterni in tutto").fill("tanti")
        with page.expect_navigation():
            card.get_by_role("button", name="Salva i limiti").click()
        expect(page.locator("#f-list_external_per_customer-error")).to_have_text(
            "Deve essere un numero intero."
        )
        assert limits_of(seeded["contract"]) == (None, None)

        page.locator("#list-limits").get_by_label("Indirizzi esterni in tutto").fill("150")
        with page.expect_navigation():
            page.locator("#list-limits").get_by_role("button", name="Salva i limiti").click()
        assert page.url.endswith(f"/admin/customers/{seeded['contract']}#list-limits")
        expect(page.locator("#status-region")).to_contain_text(
            "al massimo 50 indirizzi esterni per lista e 150 in tutto"
        )
        assert limits_of(seeded["contract"]) == (None, 150)
    finally:
        context.close()
