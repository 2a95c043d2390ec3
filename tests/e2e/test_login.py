"""A customer admin signs in through the form and lands on the dashboard, with htmx loaded."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_customer_admin_logs_in_and_sees_the_dashboard(page, login, make):
    customer = make.customer(
        plan="contract", allowances={"Business Mail 100 MB": 3}, name="Studio Associato Verdi"
    )
    admin = make.admin(customer, email="it@studioverdi.example")
    make.mailbox(customer, local="anna.verdi")
    customer_id = customer.id

    login(page, admin.email)

    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}/$"))
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Studio Associato Verdi")
    # The script tag carries an SRI hash: htmx exists only if the browser accepted the file.
    # It is deferred, so it may run just after the page shows: wait for it (fails on timeout).
    page.wait_for_function("() => typeof window.htmx === 'object'", timeout=5000)


def test_wrong_password_stays_on_the_login_form(page, make):
    customer = make.customer()
    admin = make.admin(customer)

    page.goto("/login")
    page.fill("#email", admin.email)
    page.fill("#password", "not-the-password")
    page.click("form button[type=submit]")

    expect(page.locator("[role=alert]")).to_contain_text("Email o password non corretti.")
    expect(page).to_have_url(re.compile(r"/login"))
    page.wait_for_function("() => typeof window.htmx === 'object'", timeout=5000)
