"""A new staff member sets up the second factor in the browser, between password and panel."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from app.services import totp
from tests import factories


def test_staff_enrols_with_the_secret_shown_and_keeps_the_recovery_codes(page, make):
    staff = make.staff(email="nuovo.supporto@collabra.it")

    page.goto("/login")
    page.fill("#email", staff.email)
    page.fill("#password", factories.PASSWORD)
    with page.expect_navigation():
        page.click("form button[type=submit]")

    expect(page).to_have_url(re.compile(r"/login/enrol$"))
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    # Anywhere else in the panel, the half-signed-in browser is sent back to sign in.
    page.goto("/admin/customers")
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/login/enrol")
    assert page.locator("#totp-secret").inner_text().replace(" ", "") == secret

    page.fill("#f-code", totp.code_at(secret, totp.current_step()))
    with page.expect_navigation():
        page.click("form button[type=submit]")
    codes = page.locator(".recovery-codes li")
    expect(codes).to_have_count(10)
    page.click("text=Li ho salvati, continua")
    expect(page).to_have_url(re.compile(r"/admin/customers$"))
