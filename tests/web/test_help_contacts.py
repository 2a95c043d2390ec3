"""The help pages, the read-only notice and the footer point somewhere real: support's address and
phone (SUPPORT_EMAIL, SUPPORT_PHONE) and sales' address (SALES_EMAIL) as mailto: and tel: links."""

from __future__ import annotations

import re

import pytest

from app.web.templating import tel_uri

SUPPORT_MAIL = 'href="mailto:assistenza@collabra.it"'
SUPPORT_TEL = re.compile(r'href="tel:\+390105961255"[^>]*>\+39 010 5961255</a>')
SALES_MAIL = 'href="mailto:commerciale@collabra.it"'


def footer(html: str) -> str:
    return html[html.index('<footer class="footer">') :]


@pytest.fixture
def customer_admin(make, auth):
    c = make.customer("payg")
    auth.login(make.admin(c).email)
    return c


def test_faq_offers_support_and_sales_as_links_and_no_missing_contact_form(client, customer_admin):
    html = client.get("/help/faq").get_data(as_text=True)
    content = html[: html.index('<footer class="footer">')]
    assert SUPPORT_MAIL in content and SUPPORT_TEL.search(content) and SALES_MAIL in content
    assert "modulo di contatto" not in html
    # No phone number left as plain text: every one is inside its tel: link.
    assert content.count("+39 010 5961255") == len(SUPPORT_TEL.findall(content))


def test_client_settings_tell_whom_to_ask(client, customer_admin):
    content = client.get("/help/client-settings").get_data(as_text=True).split('<footer class="footer">')[0]
    assert SUPPORT_MAIL in content and SUPPORT_TEL.search(content)


@pytest.mark.parametrize("url", ["/login", "/help/faq", "/account"])
def test_footer_of_every_page_shows_support_and_sales(client, customer_admin, auth, url):
    if url == "/login":
        auth.logout()
    html = client.get(url).get_data(as_text=True)
    assert SUPPORT_MAIL in footer(html) and SUPPORT_TEL.search(footer(html)) and SALES_MAIL in footer(html)


def test_read_only_customers_are_told_how_to_reach_support(client, make, auth):
    c = make.customer("contract", {"Business Mail 100 MB": 2}, self_service=False)
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True)
    notice = re.search(r'<div class="notice notice-warn" role="note">(.*?)</div>', html, re.S).group(1)
    assert SUPPORT_MAIL in notice and SUPPORT_TEL.search(notice)
    assert "scrivi al supporto tecnico o chiama" not in notice


def test_domains_page_says_how_to_reach_support_for_a_domain_we_manage(client, customer_admin):
    content = client.get(f"/customers/{customer_admin.id}/domains").get_data(as_text=True)
    content = content.split('<footer class="footer">')[0]
    assert SUPPORT_MAIL in content and SUPPORT_TEL.search(content)


def test_contract_dashboard_shows_the_sales_address(client, make, auth):
    c = make.customer("contract", {"Business Mail 100 MB": 2})
    auth.login(make.admin(c).email)
    content = client.get(f"/customers/{c.id}/").get_data(as_text=True).split('<footer class="footer">')[0]
    assert SALES_MAIL in content and SUPPORT_MAIL in content


def test_contacts_come_from_the_environment_and_an_empty_one_is_hidden(
    client, app, customer_admin, monkeypatch
):
    monkeypatch.setitem(app.config, "SUPPORT_EMAIL", "help@example.net")
    monkeypatch.setitem(app.config, "SUPPORT_PHONE", "")
    monkeypatch.setitem(app.config, "SALES_EMAIL", "vendite@example.net")
    html = client.get("/help/faq").get_data(as_text=True)
    assert 'href="mailto:help@example.net"' in html and 'href="mailto:vendite@example.net"' in html
    assert "tel:" not in html and "assistenza@collabra.it" not in html
    assert "Supporto tecnico, telefono" not in html  # no label left without its number


def test_a_hostile_contact_value_stays_text(client, app, customer_admin, monkeypatch):
    monkeypatch.setitem(app.config, "SUPPORT_EMAIL", 'x"><script>alert(1)</script>')
    html = client.get("/help/faq").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "written, uri",
    [
        ("+39 010 5961255", "tel:+390105961255"),
        ("+39 (010) 596-12.55", "tel:+390105961255"),
        ("800 123 456", "tel:800123456"),
        ("  +39 02 1234567 ", "tel:+39021234567"),
        ("", None),
        ("chiamaci", None),
        ("+٣٩ ١٢٣", None),  # digits of another script are not dialable
    ],
)
def test_tel_uri_has_no_spaces_or_punctuation(written, uri):
    assert tel_uri(written) == uri
