"""A domain's activation in a real browser: the customer adds it, reads what to publish, publishes
the TXT (on the local DNS server), presses "check now", and sees each record's result arrive and
the domain become active, without the page reloading."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.dnsfixtures import asking
from tests.e2e.test_mailbox_journey import shot


@pytest.fixture
def world(live_server, dns):
    with asking(live_server.app.config, dns, timeout=0.5):
        dns.delegate("rossi-e2e.it", {"ns1.rossi-e2e.it": "127.0.0.2", "ns2.rossi-e2e.it": "127.0.0.3"})
        yield dns


def test_add_a_domain_read_the_instructions_and_check_now_without_a_reload(page, login, make, world):
    customer = make.customer(domain="base-e2e.example", name="Studio Rossi")
    admin = make.admin(customer, email="it@base-e2e.example")
    login(page, admin.email)
    page.get_by_role("navigation", name="Menu principale").get_by_role("link", name="Domini").click()
    page.get_by_label("Nome del dominio").fill("rossi-e2e.it")
    page.get_by_role("button", name="Aggiungi dominio").click()
    expect(page.locator("#domains")).to_contain_text("è in attesa di verifica")
    shot(page, "59-domains-list")
    page.get_by_role("link", name="rossi-e2e.it").first.click()

    expect(page.get_by_role("heading", level=1)).to_have_text("rossi-e2e.it")
    proof = page.locator("#proof-value")
    expect(proof).to_contain_text("collabra-verification=")
    txt = proof.inner_text().strip()
    expect(page.locator("#zone-snippet")).to_contain_text("MX\t10 mx.collabra.it.", use_inner_text=False)
    expect(page.locator("#domain-state")).to_contain_text("In attesa di verifica")
    shot(page, "60-domain-pending")

    # The customer's DNS provider publishes the TXT; the page is not reloaded from here on.
    world.authorities("rossi-e2e.it").set("rossi-e2e.it", "TXT", f'"{txt}"')
    page.evaluate("window.__samePage = true")
    page.get_by_role("button", name="Verifica ora").click()
    results = page.locator("#dns-results")
    expect(results.locator("#dns-row-mx")).to_contain_text("MX mancante")
    expect(results.locator("#dns-row-mx")).to_contain_text("record TXT di verifica: trovato")
    for record, words in (
        ("spf", "manca"),
        ("dmarc", "manca"),
        ("autoconfig", "manca"),
        ("autodiscover", "manca"),
    ):
        expect(results.locator(f"#dns-row-{record}")).to_contain_text(words)
    expect(page.locator("#domain-state")).to_contain_text("Attivo")
    expect(page.locator("#domain-state")).to_contain_text("verificato con il record TXT")
    expect(page.locator("#dns-status")).to_contain_text("MX mancante")
    expect(page.locator("#status-region")).to_contain_text("attivato: la prova è nel DNS")
    expect(page.locator("#domain-proof")).to_contain_text("ora puoi togliere il record TXT di verifica")
    assert page.evaluate("window.__samePage") is True
    shot(page, "61-domain-checked")

    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "62-domain-checked-phone")
