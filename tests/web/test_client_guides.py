"""The setup guide of each mail program and the client settings page: the exact values, with the
signed-in customer's own domain in the examples, and links between them."""

from __future__ import annotations

import re

import pytest

from app.services import domains
from app.services.access import Actor

GUIDES = ["thunderbird", "outlook", "apple", "android"]


def _content(response) -> str:
    assert response.status_code == 200
    return response.text.split('<footer class="footer">')[0]


@pytest.fixture
def customer(make, auth):
    c = make.customer(domain="studio-rossi.it")
    auth.login(make.admin(c).email)
    return c


@pytest.mark.parametrize("guide", GUIDES)
def test_each_guide_gives_the_values_with_the_customers_domain(client, customer, guide):
    html = _content(client.get(f"/help/guides/{guide}"))
    assert "mario.rossi@studio-rossi.it" in html and "azienda.it" not in html
    assert "mail.collabra.it" in html
    assert re.search(r"\b993\b", html) and re.search(r"\b587\b", html)
    assert "STARTTLS" in html and "SSL" in html
    assert '<ol class="steps">' in html
    assert 'href="/help/client-settings"' in html  # back to all the settings
    for other in GUIDES:
        if other != guide:
            assert f'href="/help/guides/{other}"' in html


def test_the_guides_say_what_fills_the_settings_by_itself(client, customer):
    assert "autoconfig" in _content(client.get("/help/guides/thunderbird"))
    assert "autodiscover" in _content(client.get("/help/guides/outlook"))
    apple = _content(client.get("/help/guides/apple"))
    assert "profilo" in apple and f'href="/customers/{customer.id}/mailboxes"' in apple


def test_staff_see_a_generic_example(client, make, auth):
    make.customer(domain="studio-rossi.it")
    auth.login(make.staff().email)
    for guide in GUIDES:
        html = _content(client.get(f"/help/guides/{guide}"))
        assert "mario.rossi@azienda.it" in html and "studio-rossi.it" not in html


def test_a_customer_whose_domains_are_pending_sees_one_of_them(client, make, auth):
    c = make.customer(domain="attivo.it")
    admin = make.admin(c)
    domains.delete_domain(Actor.system("tests"), domains.list_domains(Actor.system("tests"), c.id)[0].id)
    domains.add_domain(Actor.for_user(admin), c.id, "in-attesa.it")
    auth.login(admin.email)
    html = _content(client.get("/help/guides/android"))
    assert "mario.rossi@in-attesa.it" in html
    # Its documents are not served yet: no link to them.
    settings = _content(client.get("/help/client-settings"))
    assert "mario.rossi@in-attesa.it" in settings and "config-v1.1.xml" not in settings


def test_an_active_domain_comes_before_a_pending_one(client, make, auth):
    c = make.customer(domain="zeta-attivo.it")
    admin = make.admin(c)
    domains.add_domain(Actor.for_user(admin), c.id, "alfa-in-attesa.it")
    auth.login(admin.email)
    assert "mario.rossi@zeta-attivo.it" in _content(client.get("/help/guides/thunderbird"))


def test_client_settings_list_the_servers_and_link_guides_and_autoconfiguration(client, customer):
    html = _content(client.get("/help/client-settings"))
    rows = re.findall(r'<td data-label="Porta" class="num">(\d+)</td>', html)
    assert rows == ["993", "143", "995", "110", "587"]
    assert "mario.rossi@studio-rossi.it" in html
    for guide in GUIDES:
        assert f'href="/help/guides/{guide}"' in html
    assert re.search(
        r'href="/mail/config-v1\.1\.xml\?emailaddress=mario\.rossi(@|%40)studio-rossi\.it"', html
    )
    assert "/autodiscover/autodiscover.xml" in html
    assert f'href="/customers/{customer.id}/mailboxes"' in html


def test_client_settings_follow_the_provider_settings(client, app, customer, monkeypatch):
    monkeypatch.setitem(app.config, "PROVIDER_MAIL_HOST", "posta.example.net")
    monkeypatch.setitem(app.config, "CLIENT_SMTP_PORT", 2525)
    html = _content(client.get("/help/client-settings"))
    assert "posta.example.net" in html and "mail.collabra.it" not in html
    assert re.search(r'class="num">2525<', html) and not re.search(r'class="num">587<', html)
    assert "2525" in _content(client.get("/help/guides/outlook"))


def test_the_guides_need_a_sign_in(client):
    for guide in GUIDES:
        response = client.get(f"/help/guides/{guide}")
        assert response.status_code == 302 and "/login" in response.headers["Location"]
