"""Portal pages as a customer admin and as support staff see them."""

from __future__ import annotations

import pytest

from app.services import capacity, mailboxes
from tests import factories

CONTRACT = {"Business Mail 100 MB": 10, "Business Mail Plus 100 MB": 3}


def pages(cid: int) -> list[str]:
    return [
        f"/customers/{cid}/",
        f"/customers/{cid}/mailboxes",
        f"/customers/{cid}/aliases",
        f"/customers/{cid}/lists",
        f"/customers/{cid}/domains",
        f"/customers/{cid}/capacity-requests",
        "/help/client-settings",
        "/help/faq",
    ]


def test_every_page_renders_for_a_customer_admin(client, auth, make):
    c = make.customer("contract", CONTRACT, domain="studio.example")
    make.mailbox(c, "anna", display_name="Anna Bianchi")
    auth.login(make.admin(c).email)
    for url in pages(c.id):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        assert "<html" in html and 'class="sidenav"' in html
        assert f'href="/customers/{c.id}/mailboxes"' in html
        assert "Stai operando su" not in html  # only staff switch customers


def test_staff_see_which_customer_they_are_on_and_the_way_back(client, auth, make):
    c = make.customer("payg", name="Torrefazione Rossi")
    auth.login(make.staff().email)
    html = client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True)
    assert "Stai operando su" in html and "Torrefazione Rossi" in html
    assert 'href="/admin/customers"' in html
    assert "Registro attività" in html  # the back office links


def test_pages_of_another_customer_are_not_found(client, auth, make):
    mine, theirs = make.customer(), make.customer()
    other_box = make.mailbox(theirs, "segreto")
    auth.login(make.admin(mine).email)
    for url in pages(theirs.id)[:6] + [f"/customers/{mine.id}/mailboxes/{other_box.id}"]:
        assert client.get(url).status_code == 404, url


def test_dashboard_shows_plan_usage_bars_and_counts(client, auth, make):
    c = make.customer("contract", CONTRACT)
    for i in range(3):
        make.mailbox(c, f"u{i}", service_class="Business Mail Plus 100 MB")
    box = make.mailbox(c, "x")
    mailboxes.update_mailbox(factories.SYSTEM, box.id, status="suspended")
    make.alias(c, "info", box)
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/").get_data(as_text=True)
    assert "Contratto a canone" in html
    assert "Business Mail Plus 100 MB" in html and "3 di 3" in html
    assert 'class="bar full"' in html and "width: 100%" in html
    assert "1 di 10" in html and "width: 10%" in html
    assert "3 attive" in html and "1 sospese" in html


def test_pay_per_use_dashboard_shows_plan_and_usage_but_no_invented_balance(client, auth, make):
    c = make.customer("payg")
    make.mailbox(c, "mario", service_class="Professional Suite 5.000 MB")
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/").get_data(as_text=True)
    assert "Pay per Use" in html and "Professional Suite 5.000 MB" in html
    assert 'class="bar' not in html  # no contract, nothing to measure against
    assert "saldo" not in html.lower()


def test_contract_without_self_service_reads_but_cannot_change(client, auth, make):
    c = make.customer("contract", CONTRACT, self_service=False)
    box = make.mailbox(c, "anna")
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True)
    assert "anna@" in html
    assert "puoi vedere caselle, alias, liste e domini ma non modificarli" in html
    assert "Nuova casella" not in html and "Modifica" not in html and "Elimina" not in html
    dashboard = client.get(f"/customers/{c.id}/").get_data(as_text=True)
    assert "sola consultazione" in dashboard and "supporto tecnico" in dashboard

    domain = factories.domain_of(c)
    attempts = [
        (
            f"/customers/{c.id}/mailboxes",
            {
                "local_part": "new",
                "domain": domain,
                "password": "x" * 12,
                "service_class": "Business Mail 100 MB",
            },
        ),
        (
            f"/customers/{c.id}/mailboxes/{box.id}",
            {"display_name": "Altro", "service_class": box.service_class_id},
        ),
        (f"/customers/{c.id}/mailboxes/{box.id}/status", {"status": "suspended"}),
        (f"/customers/{c.id}/mailboxes/{box.id}/delete", {}),
        (f"/customers/{c.id}/aliases", {"local_part": "info", "domain": domain, "target": box.address}),
        (f"/customers/{c.id}/domains", {"name": "altro.example"}),
    ]
    for url, data in attempts:
        response = client.post(url, data=data)
        assert response.status_code == 403, url
        assert "amministrazione autonoma non è abilitata" in response.get_data(as_text=True)
    page = mailboxes.search_mailboxes(factories.SYSTEM, c.id)
    assert [(m.address, m.display_name, m.status) for m in page.items] == [(box.address, "Anna", "active")]


def test_client_settings_show_the_guides_parameters_correctly_labelled(client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    html = client.get("/help/client-settings").get_data(as_text=True)
    assert "mail.collabra.it" in html
    for port in ("143", "993", "110", "995", "587"):
        assert f">{port}<" in html
    assert "SMTPs" not in html  # 587 is STARTTLS, not implicit TLS
    assert "STARTTLS" in html and "SSL/TLS" in html
    assert 'href="https://mail.collabra.it"' in html
    assert "indirizzo email completo" in html


def test_faq_explains_aliases_lists_mx_and_ssl(client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    html = client.get("/help/faq").get_data(as_text=True)
    for question in ("Cosa sono gli alias?", "Cosa sono le liste di distribuzione?", "record MX", "SSL/TLS"):
        assert question in html
    assert "MX 10 mx.collabra.it" in html and "48 ore" in html


def test_domains_show_unicode_punycode_and_the_mx_record(client, auth, make):
    c = make.customer(domain="rossi.example")
    auth.login(make.admin(c).email)
    response = client.post(
        f"/customers/{c.id}/domains", data={"name": "caffè-rossi.it"}, follow_redirects=True
    )
    html = response.get_data(as_text=True)
    assert "caffè-rossi.it" in html and "xn--caff-rossi-" in html
    assert "MX 10 mx.collabra.it" in html and "48 ore" in html


@pytest.mark.parametrize(
    "name, message", [("", "Inserisci un nome di dominio"), ("non valido", "non è un nome di dominio valido")]
)
def test_bad_domain_shows_the_message_beside_the_field(client, auth, make, name, message):
    c = make.customer()
    auth.login(make.admin(c).email)
    response = client.post(f"/customers/{c.id}/domains", data={"name": name})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="domain-name-error"' in html and message in html and 'aria-invalid="true"' in html


def test_a_domain_with_addresses_is_not_removed(client, auth, make):
    c = make.customer(domain="pieno.example")
    make.mailbox(c, "anna")
    auth.login(make.admin(c).email)
    domain_id = _domain_id(c)
    response = client.post(f"/customers/{c.id}/domains/{domain_id}/delete")
    assert response.status_code == 409
    assert "ha ancora 1 indirizzo" in response.get_data(as_text=True)
    assert "pieno.example" in client.get(f"/customers/{c.id}/domains").get_data(as_text=True)


def test_an_empty_domain_is_removed(client, auth, make):
    c = make.customer(domain="primo.example")
    auth.login(make.admin(c).email)
    client.post(f"/customers/{c.id}/domains", data={"name": "vuoto.example"})
    vuoto = [d for d in _domains(c) if d.name == "vuoto.example"][0]
    confirm = client.get(f"/customers/{c.id}/domains/{vuoto.id}/delete").get_data(as_text=True)
    assert "Togliere il dominio vuoto.example?" in confirm
    response = client.post(f"/customers/{c.id}/domains/{vuoto.id}/delete", follow_redirects=True)
    assert "Dominio vuoto.example tolto." in response.get_data(as_text=True)
    assert [d.name for d in _domains(c)] == ["primo.example"]


def test_capacity_requests_page_lists_the_customers_requests(client, auth, make):
    c = make.customer("contract", CONTRACT)
    capacity.request_capacity(
        factories.SYSTEM, c.id, service_class="Business Mail Plus 100 MB", extra_accounts=2, note="Nuovi soci"
    )
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/capacity-requests").get_data(as_text=True)
    assert "Business Mail Plus 100 MB" in html and "In attesa" in html


def _domains(c):
    from app.services import domains

    return domains.list_domains(factories.SYSTEM, c.id)


def _domain_id(c) -> int:
    return _domains(c)[0].id
