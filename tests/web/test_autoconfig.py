"""The documents mail programs fetch to set themselves up: Thunderbird's autoconfig, Outlook's POX
Autodiscover and the Apple profile of a mailbox, read the way the programs read them."""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET

import idna
import pytest

from app.services import domains
from app.services.access import Actor
from tests.conftest import make_app
from tests.integration.conftest import REDIS_URL, connection  # noqa: F401 (the Redis fixture)

RESPONSE = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
OUTLOOK_SCHEMA = OUTLOOK.strip("{}")
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"


def _request(address: str, schema: str = OUTLOOK_SCHEMA) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{REQUEST_NS}"><Request>'
        f"<EMailAddress>{address}</EMailAddress>"
        f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema>"
        "</Request></Autodiscover>"
    ).encode()


def _post(client, body: bytes, path: str = "/autodiscover/autodiscover.xml"):
    return client.post(path, data=body, content_type="text/xml; charset=utf-8", csrf=False)


@pytest.fixture
def served(make):
    """A customer with an active domain (added by staff) and a pending one (added by the customer)."""
    c = make.customer(domain="studio-rossi.it")
    domains.add_domain(Actor.for_user(make.admin(c)), c.id, "in-attesa.it")
    return c


# Thunderbird


def _text(element, path: str) -> str:
    found = element.find(path)
    assert found is not None, f"missing {path}"
    return found.text


def _check_thunderbird(response, domain: str):
    assert response.status_code == 200
    assert (
        response.mimetype in {"application/xml", "text/xml"}
        and response.mimetype_params["charset"] == "utf-8"
    )
    assert "max-age=" in response.headers["Cache-Control"]
    root = ET.fromstring(response.data)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == domain
    assert [d.text for d in provider.findall("domain")] == [domain]
    assert _text(provider, "displayName") == "Collabra Professional Email"
    incoming = [
        (s.get("type"), _text(s, "hostname"), _text(s, "port"), _text(s, "socketType"))
        for s in provider.findall("incomingServer")
    ]
    assert incoming == [
        ("imap", "mail.collabra.it", "993", "SSL"),
        ("imap", "mail.collabra.it", "143", "STARTTLS"),
        ("pop3", "mail.collabra.it", "995", "SSL"),
        ("pop3", "mail.collabra.it", "110", "STARTTLS"),
    ]
    (smtp,) = provider.findall("outgoingServer")
    assert (smtp.get("type"), _text(smtp, "hostname"), _text(smtp, "port"), _text(smtp, "socketType")) == (
        "smtp",
        "mail.collabra.it",
        "587",
        "STARTTLS",
    )
    for server in [*provider.findall("incomingServer"), smtp]:
        assert _text(server, "username") == "%EMAILADDRESS%"
        assert _text(server, "authentication") == "password-cleartext"


@pytest.mark.parametrize("path", ["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"])
def test_thunderbird_reads_the_settings_of_a_served_domain_from_the_address(client, served, path):
    response = client.get(path, query_string={"emailaddress": "mario@Studio-Rossi.IT"})
    _check_thunderbird(response, "studio-rossi.it")


def test_thunderbird_without_an_address_gets_the_domain_of_the_host_it_asked(client, served):
    _check_thunderbird(
        client.get("/mail/config-v1.1.xml", base_url="https://autoconfig.studio-rossi.it"), "studio-rossi.it"
    )
    well_known = "/.well-known/autoconfig/mail/config-v1.1.xml"
    _check_thunderbird(client.get(well_known, base_url="https://studio-rossi.it:443"), "studio-rossi.it")


def test_thunderbird_settings_follow_the_provider_settings(client, app, served, monkeypatch):
    monkeypatch.setitem(app.config, "PROVIDER_MAIL_HOST", "posta.example.net")
    monkeypatch.setitem(app.config, "CLIENT_SMTP_PORT", 2525)
    root = ET.fromstring(client.get("/mail/config-v1.1.xml?emailaddress=a@studio-rossi.it").data)
    smtp = root.find("emailProvider/outgoingServer")
    assert (_text(smtp, "hostname"), _text(smtp, "port")) == ("posta.example.net", "2525")


def test_an_idn_domain_is_answered_in_its_ascii_form(client, make):
    make.customer(domain="caffè-bar.it")
    response = client.get("/mail/config-v1.1.xml", query_string={"emailaddress": "io@caffè-bar.it"})
    _check_thunderbird(response, idna.encode("caffè-bar.it", uts46=True).decode())


@pytest.mark.parametrize(
    "query, host",
    [
        ({"emailaddress": "mario@in-attesa.it"}, "localhost"),  # pending: not served yet
        ({"emailaddress": "mario@altrui.it"}, "localhost"),  # not ours at all
        ({"emailaddress": "senza-chiocciola"}, "autoconfig.studio-rossi.it"),  # the address decides
        ({}, "autoconfig.altrui.it"),
        ({}, "localhost"),
        ({"emailaddress": "x@" + "a" * 300 + ".it"}, "localhost"),
    ],
)
def test_thunderbird_gets_a_404_for_any_domain_the_panel_does_not_serve(client, served, query, host):
    response = client.get("/mail/config-v1.1.xml", query_string=query, base_url=f"http://{host}")
    assert response.status_code == 404
    assert b"mail.collabra.it" not in response.data and b"clientConfig" not in response.data


# Outlook


def test_outlook_gets_imap_and_smtp_with_starttls_for_an_address_on_a_served_domain(client, served):
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        response = _post(client, _request("Mario.Rossi@studio-rossi.it"), path)
        assert response.status_code == 200
        assert response.mimetype in {"application/xml", "text/xml"}
        assert response.mimetype_params["charset"] == "utf-8"
        root = ET.fromstring(response.data)
        assert root.tag == f"{RESPONSE}Autodiscover"
        account = root.find(f"{OUTLOOK}Response/{OUTLOOK}Account")
        assert account is not None, response.text
        assert _text(account, f"{OUTLOOK}AccountType") == "email"
        assert _text(account, f"{OUTLOOK}Action") == "settings"
        protocols = {_text(p, f"{OUTLOOK}Type"): p for p in account.findall(f"{OUTLOOK}Protocol")}
        assert set(protocols) == {"IMAP", "SMTP"}

        def field(kind: str, name: str, protocols=protocols):
            element = protocols[kind].find(f"{OUTLOOK}{name}")
            return None if element is None else element.text

        assert field("IMAP", "Server") == "mail.collabra.it" and field("IMAP", "Port") == "993"
        assert field("IMAP", "SSL") == "on" and field("IMAP", "SPA") == "off"
        assert field("IMAP", "LoginName") == "mario.rossi@studio-rossi.it"
        assert field("IMAP", "AuthRequired") == "on"
        assert field("SMTP", "Server") == "mail.collabra.it" and field("SMTP", "Port") == "587"
        # STARTTLS on 587: Encryption TLS, never SSL on (that would be TLS from the first byte).
        assert field("SMTP", "Encryption") == "TLS" and field("SMTP", "SSL") != "on"
        assert field("SMTP", "SPA") == "off" and field("SMTP", "AuthRequired") == "on"
        assert field("SMTP", "UsePOPAuth") == "on"
        assert field("SMTP", "LoginName") == "mario.rossi@studio-rossi.it"


def _error_code(response) -> str:
    root = ET.fromstring(response.data)
    assert root.tag == f"{RESPONSE}Autodiscover"
    error = root.find(f"{RESPONSE}Response/{RESPONSE}Error")
    assert error is not None, response.text
    assert error.get("Time") and error.get("Id")
    assert error.find(f"{RESPONSE}Message").text
    assert root.find(f".//{OUTLOOK}Account") is None and b"mail.collabra.it" not in response.data
    return _text(error, f"{RESPONSE}ErrorCode")


@pytest.mark.parametrize("address", ["mario@in-attesa.it", "mario@altrui.it", "non-un-indirizzo", "a b@x"])
def test_outlook_gets_an_error_not_data_for_an_address_we_do_not_serve(client, served, address):
    response = _post(client, _request(address))
    assert response.status_code == 200
    assert _error_code(response) == "500"


def test_outlook_asking_another_schema_gets_error_601(client, served):
    mobilesync = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
    assert _error_code(_post(client, _request("mario@studio-rossi.it", mobilesync))) == "601"


ENTITY_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE Autodiscover [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b"<Autodiscover><Request><EMailAddress>&b;@studio-rossi.it</EMailAddress>"
    b"<AcceptableResponseSchema>"
    + OUTLOOK_SCHEMA.encode()
    + b"</AcceptableResponseSchema></Request></Autodiscover>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>"
)


@pytest.mark.parametrize(
    "body",
    [
        ENTITY_BOMB,
        EXTERNAL_ENTITY,
        b'<?xml version="1.0"?><!DOCTYPE Autodiscover><Autodiscover/>',
        b"<Autodiscover><Request><EMailAddress>mario@studio-rossi.it</EMailAddress>",  # cut short
        b"<Autodiscover><Request></Request></Autodiscover>",
        b"not xml at all",
        b"",
        "<Autodiscover>\u00e8</Autodiscover>".encode("latin-1"),
    ],
)
def test_a_request_outlook_would_never_send_is_refused_with_an_invalid_request_error(client, served, body):
    response = _post(client, body)
    assert response.status_code == 400
    assert _error_code(response) == "600"
    assert b"root:" not in response.data and b"Traceback" not in response.data


def test_a_request_body_past_the_cap_is_refused_unread(client, served):
    huge = _request("mario@studio-rossi.it").replace(b"<Request>", b"<Request>" + b" " * 20_000)
    response = _post(client, huge)
    assert response.status_code in {400, 413}
    assert _error_code(response) == "600"


def test_autodiscover_needs_no_session_and_no_csrf_token_but_only_posts(client, served):
    response = client.post(
        "/autodiscover/autodiscover.xml",
        data=_request("mario@studio-rossi.it"),
        content_type="text/xml",
        csrf=False,
    )
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert client.get("/autodiscover/autodiscover.xml").status_code == 405
    # A browser form posted there (what a cross-site page could send) is not a request.
    form = client.post(
        "/autodiscover/autodiscover.xml", data={"EMailAddress": "mario@studio-rossi.it"}, csrf=False
    )
    assert form.status_code == 400


# Abuse


def test_each_client_address_is_held_to_the_rate_limit(database_url, make, connection):  # noqa: F811
    app = make_app(
        database_url, RATELIMIT_ENABLED=True, REDIS_URL=REDIS_URL, AUTOCONFIG_RATE_LIMIT="3 per minute"
    )
    with app.app_context():
        make.customer(domain="limitato.it")
        one = app.test_client()
        one.environ_base["REMOTE_ADDR"] = "203.0.113.7"
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = "203.0.113.8"
        url = "/mail/config-v1.1.xml?emailaddress=a@limitato.it"
        assert [one.get(url).status_code for _ in range(3)] == [200, 200, 200]
        refused = one.get(url)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert _post(one, _request("a@limitato.it")).status_code == 429
        assert other.get(url).status_code == 200


# Apple


def test_the_mobileconfig_of_a_mailbox_is_a_profile_apple_devices_install(client, make, auth):
    c = make.customer(domain="studio-rossi.it")
    auth.login(make.admin(c).email)
    box = make.mailbox(c, "mario.rossi", display_name="Mario Rossi", password="Segreta-Lunga-77")
    response = client.get(f"/customers/{c.id}/mailboxes/{box.id}/mobileconfig")
    assert response.status_code == 200
    assert response.mimetype == "application/x-apple-aspen-config"
    assert (
        response.headers["Content-Disposition"]
        == 'attachment; filename="mario.rossi@studio-rossi.it.mobileconfig"'
    )
    profile = plistlib.loads(response.data)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    uuid.UUID(profile["PayloadUUID"])
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    uuid.UUID(mail["PayloadUUID"])
    assert mail["PayloadUUID"] != profile["PayloadUUID"]
    assert mail["PayloadIdentifier"] != profile["PayloadIdentifier"]
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == "mario.rossi@studio-rossi.it"
    assert mail["EmailAccountName"] == "Mario Rossi"
    assert mail["IncomingMailServerHostName"] == "mail.collabra.it"
    assert mail["IncomingMailServerPortNumber"] == 993 and mail["IncomingMailServerUseSSL"] is True
    assert mail["OutgoingMailServerHostName"] == "mail.collabra.it"
    assert mail["OutgoingMailServerPortNumber"] == 587 and mail["OutgoingMailServerUseSSL"] is True
    for side in ("Incoming", "Outgoing"):
        assert mail[f"{side}MailServerAuthentication"] == "EmailAuthPassword"
        assert mail[f"{side}MailServerUsername"] == "mario.rossi@studio-rossi.it"
    # No password anywhere: the device asks for it.
    assert not [k for k in mail if "Password" in k and k != "OutgoingPasswordSameAsIncomingPassword"]
    assert b"Segreta-Lunga-77" not in response.data
    # The same identifiers every time: installing it again replaces the account.
    again = plistlib.loads(client.get(f"/customers/{c.id}/mailboxes/{box.id}/mobileconfig").data)
    assert again == profile
    other_box = make.mailbox(c, "anna")
    other = plistlib.loads(client.get(f"/customers/{c.id}/mailboxes/{other_box.id}/mobileconfig").data)
    assert other["PayloadUUID"] != profile["PayloadUUID"]
    assert other["PayloadContent"][0]["PayloadUUID"] != mail["PayloadUUID"]


def test_another_customers_mailbox_profile_is_a_404(client, make, auth):
    mine, theirs = make.customer(), make.customer()
    box = make.mailbox(theirs)
    auth.login(make.admin(mine).email)
    assert client.get(f"/customers/{theirs.id}/mailboxes/{box.id}/mobileconfig").status_code == 404
    assert client.get(f"/customers/{mine.id}/mailboxes/{box.id}/mobileconfig").status_code == 404
    auth.logout()
    anonymous = client.get(f"/customers/{theirs.id}/mailboxes/{box.id}/mobileconfig")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_staff_download_any_mailbox_profile_and_the_mailbox_page_links_it(client, make, auth):
    c = make.customer()
    box = make.mailbox(c)
    auth.login(make.staff().email)
    url = f"/customers/{c.id}/mailboxes/{box.id}/mobileconfig"
    assert client.get(url).status_code == 200
    assert f'href="{url}"' in client.get(f"/customers/{c.id}/mailboxes/{box.id}").text


# DNS


def test_the_records_to_publish_point_to_the_host_serving_the_documents(app, monkeypatch):
    from app.services import autoconfig

    monkeypatch.setitem(app.config, "PANEL_URL", "https://pannello.collabra.it/")
    lines = [r.zone_line() for r in autoconfig.dns_records("studio-rossi.it")]
    assert lines == [
        "autoconfig.studio-rossi.it. 3600 IN CNAME pannello.collabra.it.",
        "_autodiscover._tcp.studio-rossi.it. 3600 IN SRV 0 0 443 pannello.collabra.it.",
    ]
    monkeypatch.setitem(app.config, "PANEL_URL", "")
    assert autoconfig.dns_records("x.it")[0].value == "mail.collabra.it."
