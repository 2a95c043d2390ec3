"""The "Conto Collabra" page in a real browser, on a desktop and on a phone: the figures and the charts
are on screen and nothing scrolls sideways."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.services import billing, clock
from tests.billingkit import created, rome, seed_prices, timeline
from tests.e2e.conftest import open_context
from tests.e2e.test_phone_layout import SIDEWAYS

SHOTS = Path("/tmp/e2e-shots")


@pytest.fixture
def seeded(app, make):
    seed_prices()
    clock.set_now(rome(2026, 3, 1, 9))
    c = make.customer(name="Studio Bianchi", domain="bianchi.example")
    created(c, rome(2026, 3, 1, 8))
    boxes = [
        make.mailbox(c, "anna", service_class="Business Mail 100 MB"),
        make.mailbox(c, "bruno", service_class="Professional Suite 25.000 MB"),
        make.mailbox(c, "carla", service_class="Standard Suite 1.000 MB"),
    ]
    timeline(boxes[0], ("active", "Business Mail 100 MB", rome(2026, 3, 1, 8), None))
    timeline(boxes[1], ("active", "Professional Suite 25.000 MB", rome(2026, 4, 10, 8), None))
    timeline(boxes[2], ("active", "Standard Suite 1.000 MB", rome(2026, 3, 1, 8), rome(2026, 5, 1, 8)))
    billing.record_credit(make.SYSTEM, c.id, 3_000, "BONIFICO-1")
    clock.set_now(rome(2026, 4, 20, 9))
    billing.record_credit(make.SYSTEM, c.id, 2_000, "BONIFICO-2")
    clock.set_now(rome(2026, 5, 20, 12))
    billing.charge_until(date(2026, 5, 19))
    admin = make.admin(c)
    yield c.id, admin.email
    clock.reset()


@pytest.mark.parametrize("size", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}])
def test_the_wallet_page_reads_on_a_desktop_and_a_phone(browser, live_server, htmx_js, login, seeded, size):
    customer_id, email = seeded
    context = open_context(browser, live_server, htmx_js, viewport=size)
    page = context.new_page()
    try:
        login(page, email)
        page.goto(f"/customers/{customer_id}/wallet")
        expect(page.locator("#wallet-balance")).to_contain_text("punti")
        expect(page.locator("#wallet-until")).to_contain_text("il credito dura fino al")
        expect(page.locator("#balance-chart")).to_be_visible()
        expect(page.locator("#cost-chart")).to_be_visible()
        assert page.evaluate(SIDEWAYS) == []
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"wallet-{size['width']}.png"), full_page=True)
        page.screenshot(path=str(SHOTS / f"wallet-{size['width']}-top.png"))
        page.locator("#cost-chart").screenshot(path=str(SHOTS / f"wallet-{size['width']}-cost.png"))
        page.locator("#days").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"wallet-{size['width']}-days.png"))
        assert not context.csp_violations
    finally:
        context.close()
