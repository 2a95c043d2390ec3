"""The Content-Security-Policy in a real browser: it is enforced, and every page works under it.

The `page` fixture fails a test on any CSP violation the console reports; here
the customer's and the staff's pages are walked with their htmx parts used
(live search, a refused form swapped in place), so a blocked script, style or
eval anywhere in them shows up.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from app.web import HTMX_URL
from tests.e2e.conftest import open_context


def _htmx_ready(page):
    page.wait_for_function("() => typeof window.htmx === 'object'", timeout=5000)


def test_the_policy_is_sent_and_refuses_an_injected_inline_script(browser, live_server, app, htmx_js):
    context = open_context(browser, live_server, htmx_js)
    try:
        page = context.new_page()
        response = page.goto("/login")
        policy = response.headers["content-security-policy"]
        assert f"script-src 'self' {HTMX_URL}" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        _htmx_ready(page)  # the pinned htmx URL is allowed
        ran = page.evaluate(
            """() => {
                const s = document.createElement('script');
                s.textContent = 'window.__injected = 1';
                document.body.appendChild(s);
                return window.__injected === 1;
            }"""
        )
        assert ran is False
        page.wait_for_timeout(100)
        assert any("inline script" in v for v in context.csp_violations), context.csp_violations
    finally:
        context.close()


def test_customer_pages_work_under_the_policy(page, login, make):
    customer = make.customer("contract", {"Business Mail 100 MB": 5}, domain="studioblu.example")
    admin = make.admin(customer, email="it@studioblu.example")
    make.mailbox(customer, local="anna.blu", display_name="Anna Blu")
    make.mailbox(customer, local="marco.blu", display_name="Marco Blu")
    cid = customer.id

    login(page, admin.email)
    _htmx_ready(page)
    for path in ("aliases", "lists", "domains", "capacity-requests", ""):
        page.goto(f"/customers/{cid}/{path}")
        expect(page.locator("h1")).to_be_visible()
    page.goto(f"/customers/{cid}/mailboxes")
    _htmx_ready(page)
    page.evaluate("window.__marker = 1")
    page.get_by_role("searchbox", name="Cerca").fill("anna")
    expect(page).to_have_url(re.compile(r"q=anna"))
    results = page.locator("#mailbox-results")
    expect(results).to_contain_text("anna.blu@studioblu.example")
    expect(results).not_to_contain_text("marco.blu@studioblu.example")
    assert page.evaluate("window.__marker") == 1, "the search reloaded the page instead of using htmx"
    page.goto("/account")
    expect(page.locator("h1")).to_be_visible()


def test_staff_pages_and_a_refused_form_work_under_the_policy(page, login, make):
    customer = make.customer(name="Officina Verde")
    staff = make.staff(email="assistenza@collabra.it")

    login(page, staff.email)
    for path in ("/admin/customers", "/admin/capacity-requests", "/admin/audit", "/admin/users"):
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
    page.goto(f"/admin/customers/{customer.id}")
    _htmx_ready(page)
    page.evaluate("window.__marker = 1")
    admins = page.locator("#admins")
    admins.get_by_label("Email").fill("non-un-indirizzo")
    admins.get_by_label("Password iniziale").fill("Password-lunga-1")
    admins.get_by_role("button", name="Crea l'amministratore").click()
    # The 422 answer is swapped in place, its message beside the field: no eval was needed.
    expect(page.locator("#admins .field-error")).to_be_visible()
    assert page.evaluate("window.__marker") == 1
