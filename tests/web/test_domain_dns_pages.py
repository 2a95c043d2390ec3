"""A domain's page, "check now" and the API, against the local DNS server (tests/dnsserver.py)."""

from __future__ import annotations

import html as htmllib
import re

import pytest

from app.extensions import db
from app.models import Domain
from app.services import domain_checks, domains, users
from app.services.access import Actor
from tests import factories
from tests.dnsfixtures import asking

HTMX = {"HX-Request": "true"}
OURS = "10 mx.collabra.it."


def text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def world(app, dns):
    with asking(app.config, dns):
        dns.delegate("rossi.it", {"ns1.rossi.it": "127.0.0.2", "ns2.rossi.it": "127.0.0.3"})
        yield dns


@pytest.fixture
def pending(make, auth):
    """A customer's pending rossi.it, its admin signed in."""
    c = make.customer(domain="base.example")
    user = make.admin(c)
    domain = domains.add_domain(Actor.for_user(user), c.id, "rossi.it")
    auth.login(user.email)
    return c, domain, user


def page_url(domain) -> str:
    return f"/customers/{domain.customer_id}/domains/{domain.id}"


def test_the_domain_page_shows_the_txt_to_publish_the_records_and_the_zone_snippet(client, world, pending):
    _c, domain, _u = pending
    html = text(client.get(page_url(domain)))
    txt = f"collabra-verification={domain.verification_token}"
    assert f'<code id="proof-value" class="record">{txt}</code>' in html
    assert 'data-copy="#proof-value"' in html
    page = htmllib.unescape(client.get(page_url(domain)).get_data(as_text=True))
    for line in (
        "rossi.it.\t3600\tIN\tMX\t10 mx.collabra.it.",
        f'rossi.it.\t3600\tIN\tTXT\t"{txt}"',
        'rossi.it.\t3600\tIN\tTXT\t"v=spf1 mx include:spf.collabra.it ~all"',
        '_dmarc.rossi.it.\t3600\tIN\tTXT\t"v=DMARC1; p=none"',
        "autoconfig.rossi.it.\t3600\tIN\tCNAME\tmail.collabra.it.",
    ):
        assert line in page
    assert "Non ancora verificato" in html
    assert "Cos'è un record MX?" in html and "48 ore" in html
    # The staff's migration box is not a customer's.
    assert "Consenti la migrazione" not in html


def test_check_now_loads_each_record_on_its_own_and_activates_the_domain_once_its_proof_is_there(
    client, world, pending
):
    _c, domain, _u = pending
    rows = text(client.post(page_url(domain) + "/check", headers=HTMX))
    # Each row asks for its own result as soon as it is on the page.
    assert f'hx-post="{page_url(domain)}/check/mx" hx-trigger="load"' in rows
    for record in ("spf", "dmarc", "autoconfig", "autodiscover"):
        assert f'hx-post="{page_url(domain)}/check/{record}" hx-trigger="load"' in rows
    assert db.session.get(Domain, domain.id).check is None  # nothing asked yet

    mx_row = text(client.post(page_url(domain) + "/check/mx", headers=HTMX))
    assert '<tr id="dns-row-mx">' in mx_row and "MX mancante" in mx_row
    assert 'id="dns-status" class="dns-status" hx-swap-oob="true"' in mx_row
    assert "record TXT di verifica: non trovato" in mx_row
    assert db.session.get(Domain, domain.id).state == "pending"

    world.authorities("rossi.it").set(
        "rossi.it", "TXT", f'"collabra-verification={domain.verification_token}"'
    )
    mx_row = text(client.post(page_url(domain) + "/check/mx", headers=HTMX))
    assert "record TXT di verifica: trovato" in mx_row
    assert 'id="domain-state" class="domain-state" hx-swap-oob="true"' in mx_row
    assert "Dominio rossi.it attivato: la prova è nel DNS." in mx_row
    assert db.session.get(Domain, domain.id).state == "active"
    assert "verificato con il record TXT" in text(client.get(page_url(domain)))

    spf = text(client.post(page_url(domain) + "/check/spf", headers=HTMX))
    assert (
        '<tr id="dns-row-spf">' in spf and "manca" in spf and "v=spf1 mx include:spf.collabra.it ~all" in spf
    )


def test_check_now_without_javascript_checks_and_comes_back_to_the_page(client, world, pending):
    _c, domain, _u = pending
    world.authorities("rossi.it").set("rossi.it", "MX", OURS)
    response = client.post(page_url(domain) + "/check")
    assert response.status_code == 303 and response.headers["Location"].endswith(page_url(domain))
    html = text(client.get(page_url(domain)))
    assert "Dominio rossi.it attivato: la prova è nel DNS." in html
    assert "MX pubblicato" in html and "verificato con il record MX" in html


def test_a_second_check_within_the_cooldown_shows_the_stored_result_without_asking(
    client, app, world, pending
):
    _c, domain, _u = pending
    app.config["DNS_CHECK_COOLDOWN"] = 30
    client.post(page_url(domain) + "/check/mx", headers=HTMX)
    asked = world.queries("127.0.0.2")
    again = text(client.post(page_url(domain) + "/check/mx", headers=HTMX))
    assert "Verificato pochi secondi fa" in again
    assert world.queries("127.0.0.2") == asked


def test_another_customers_domain_and_an_unknown_record_are_404(client, world, pending, make):
    _c, domain, _u = pending
    other = make.customer(domain="bianchi.it")
    theirs = domains.list_domains(factories.SYSTEM, other.id)[0]
    for method, path in (
        ("get", page_url(theirs)),
        ("post", page_url(theirs) + "/check/mx"),
        ("post", page_url(theirs) + "/check/spf"),
        ("post", f"/customers/{domain.customer_id}/domains/{theirs.id}/check/mx"),
    ):
        assert getattr(client, method)(path, headers=HTMX).status_code == 404, path
    assert client.post(page_url(domain) + "/check/passwd", headers=HTMX).status_code == 404
    assert world.queries("127.0.0.2") == 0


def test_staff_let_a_migration_start_with_a_reason(client, auth, world, make):
    c = make.customer(domain="rossi.it")
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    auth.login(make.staff().email)
    html = text(client.get(page_url(domain)))
    assert "Migrazione della posta (supporto)" in html and "Non ancora" in html
    refused = client.post(page_url(domain) + "/migration", data={"reason": "no"}, headers=HTMX)
    assert refused.status_code == 422 and "almeno 10 caratteri" in text(refused)
    allowed = text(
        client.post(
            page_url(domain) + "/migration", data={"reason": "Chiude il vecchio fornitore"}, headers=HTMX
        )
    )
    assert "Può partire" in allowed and "Chiude il vecchio fornitore" in allowed


def test_a_customer_cannot_override_the_migration_gate(client, world, pending):
    _c, domain, _u = pending
    response = client.post(page_url(domain) + "/migration", data={"reason": "Vogliamo partire subito"})
    assert response.status_code == 403
    assert db.session.get(Domain, domain.id).check is None


# The API.


def api_call(client, user, method, path, json=None):
    token = users.create_token(factories.SYSTEM, user, "tests")[1]
    return client.open(
        "/api/v1" + path, method=method, json=json, headers={"Authorization": f"Bearer {token}"}
    )


def test_the_api_gives_the_txt_while_pending_and_check_activates(client, world, pending):
    _c, domain, user = pending
    data = api_call(client, user, "GET", f"/domains/{domain.id}").get_json()
    assert data["verification_txt"] == f"collabra-verification={domain.verification_token}"
    assert data["dns"]["verdict"] is None and data["dns"]["migration_allowed"] is False

    world.authorities("rossi.it").set("rossi.it", "TXT", f'"{data["verification_txt"]}"')
    result = api_call(client, user, "POST", f"/domains/{domain.id}/check").get_json()
    assert result["checked"] and result["activated"] and result["verdict"] == "missing"
    assert result["domain"]["state"] == "active" and result["domain"]["verification_txt"] is None
    assert result["domain"]["verified_by"] == "txt"
    assert {a["address"] for a in result["report"]["mx"]} == {"127.0.0.2", "127.0.0.3"}


def test_the_api_migration_override_is_staff_only(client, world, pending, make):
    _c, domain, user = pending
    assert (
        api_call(
            client, user, "POST", f"/domains/{domain.id}/migration-override", {"reason": "x" * 20}
        ).status_code
        == 403
    )
    staff = make.staff()
    bad = api_call(client, staff, "POST", f"/domains/{domain.id}/migration-override", {"reason": "corto"})
    assert bad.status_code == 422 and "reason" in bad.get_json()["errors"]
    ok = api_call(
        client, staff, "POST", f"/domains/{domain.id}/migration-override", {"reason": "Il cliente lo chiede"}
    )
    # Recorded, but a domain not yet active is never migrated: its mail is not served here.
    assert ok.status_code == 200 and ok.get_json()["dns"]["migration_allowed"] is False
    domains.approve_domain(Actor.for_user(staff), domain.id)
    assert (
        api_call(client, staff, "GET", f"/domains/{domain.id}").get_json()["dns"]["migration_allowed"] is True
    )
    assert domain_checks.migration_gate(db.session.get(Domain, domain.id)).open
