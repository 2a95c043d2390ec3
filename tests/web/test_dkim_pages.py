"""DKIM on the domain page and in the API: the record to publish (and in the zone snippet), its
check, the domain JSON's dkim, and rotation (staff only; another customer's domain is a 404)."""

# ruff: noqa: F811  (the tests take the fixtures imported from test_domain_dns_pages)

from __future__ import annotations

import html as htmllib
import json

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Domain
from app.services import dkim, domains, users, vault
from app.services.access import Actor
from tests import factories
from tests.web.test_domain_dns_pages import HTMX, pending, text, world  # noqa: F401  (fixtures)

pytestmark = pytest.mark.fresh_dkim_keys


@pytest.fixture
def active(pending, make):
    """A customer's active rossi.it (approved by staff: it has its key), its admin signed in."""
    c, domain, user = pending
    domains.approve_domain(Actor.for_user(make.staff()), domain.id)
    return c, domain, user


def page_url(domain) -> str:
    return f"/customers/{domain.customer_id}/domains/{domain.id}"


def zone_txt(value: str) -> str:
    data = value.encode()
    return " ".join(f'"{data[i : i + 255].decode()}"' for i in range(0, len(data), 255))


def test_the_domain_page_shows_the_dkim_record_to_publish_and_its_zone_line(client, world, active):
    _c, domain, _u = active
    key = dkim.active_key(domain.id)
    page = htmllib.unescape(client.get(page_url(domain)).get_data(as_text=True))
    name = f"{key.selector}._domainkey.rossi.it"
    assert name in page and f"v=DKIM1; k=rsa; p={key.public_key}" in page
    # A 2048-bit key's record is longer than one TXT string: split at 255 bytes in the zone file.
    assert len(key.txt) > 255
    assert f"{name}.\t3600\tIN\tTXT\t{zone_txt(key.txt)}" in page
    assert leaks(page, key) == []


def test_check_now_says_whether_the_dkim_record_is_published_and_matches(client, world, active):
    _c, domain, _u = active
    key = dkim.active_key(domain.id)
    name = f"{key.selector}._domainkey.rossi.it"
    rows = text(client.post(page_url(domain) + "/check", headers=HTMX))
    assert f'hx-post="{page_url(domain)}/check/dkim" hx-trigger="load"' in rows

    row = text(client.post(page_url(domain) + "/check/dkim", headers=HTMX))
    assert '<tr id="dns-row-dkim">' in row and "record mancante" in row
    assert f"{name} TXT" in htmllib.unescape(row)

    other = dkim._new_key()[1]
    world.at("127.0.0.2", "127.0.0.3").set(name, "TXT", zone_txt(f"v=DKIM1; k=rsa; p={other}"))
    row = text(client.post(page_url(domain) + "/check/dkim", headers=HTMX))
    assert "record diverso dalla chiave" in row

    world.at("127.0.0.2", "127.0.0.3").set(name, "TXT", zone_txt(key.txt))
    row = text(client.post(page_url(domain) + "/check/dkim", headers=HTMX))
    assert "record pubblicato" in row and "firma i messaggi" in row


# --- the API --------------------------------------------------------------------------------


def call(client, user, method: str, path: str):
    token = users.create_token(factories.SYSTEM, user, "tests")[1]
    return client.open("/api/v1" + path, method=method, headers={"Authorization": f"Bearer {token}"})


def leaks(text: str, key) -> list[str]:
    """Whatever of the key's private part is in the text: the PEM's armour, or any 32 characters
    of its own base64 body (the public key's base64 is not a part of it)."""
    pem = vault.unseal(key.private_key_sealed).decode()
    body = "".join(pem.splitlines()[1:-1])
    found = [word for word in ("BEGIN", "PRIVATE KEY") if word in text]
    return found + [body[i : i + 32] for i in range(0, len(body) - 32, 16) if body[i : i + 32] in text]


def test_leaks_finds_a_private_key_in_a_text(make):
    c = make.customer(domain="base.example")
    key = dkim.active_key(domains.list_domains(factories.SYSTEM, c.id)[0].id)
    pem = vault.unseal(key.private_key_sealed).decode()
    assert leaks(f'{{"dkim": "{key.txt}"}}', key) == []
    assert leaks(pem, key) and leaks(pem.splitlines()[5], key)  # even one line of it, without the armour
    assert leaks(json.dumps({"k": pem}), key)


def test_the_domain_json_carries_its_dkim_record(client, make):
    c = make.customer(domain="base.example")
    admin = make.admin(c)
    active = domains.list_domains(factories.SYSTEM, c.id)[0]
    key = dkim.active_key(active.id)
    one = call(client, admin, "GET", f"/domains/{active.id}")
    assert one.get_json()["dkim"] == {"selector": key.selector, "txt": f"v=DKIM1; k=rsa; p={key.public_key}"}
    waiting = domains.add_domain(Actor.for_user(admin), c.id, "attesa.example")
    assert call(client, admin, "GET", f"/domains/{waiting.id}").get_json()["dkim"] is None
    listed = call(client, admin, "GET", f"/customers/{c.id}/domains")
    assert [d["dkim"] for d in listed.get_json()] == [None, one.get_json()["dkim"]]  # attesa, base
    # No part of the private key in any answer where the key's record is.
    for answer in (one, listed):
        assert leaks(answer.get_data(as_text=True), key) == []


def test_the_domain_list_reads_every_domain_s_dkim_record_in_one_query(client, make, app):
    """Each domain of the list with its own record (a rotation's pending one, none for a pending
    domain), and as many queries for six domains as for two."""
    c = make.customer(domain="base.example")
    admin = make.admin(c)
    staff = Actor.for_user(make.staff())

    def listing() -> tuple[list[dict], int]:
        statements = []

        def count(*_args):
            statements.append(1)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            answer = call(client, admin, "GET", f"/customers/{c.id}/domains")
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert answer.status_code == 200
        return answer.get_json(), len(statements)

    domains.add_domain(Actor.for_user(admin), c.id, "attesa.example")  # pending: no key
    _few, queries = listing()
    for n in range(3):
        domains.add_domain(factories.SYSTEM, c.id, f"altro{n}.example")
    rotated = next(d for d in domains.list_domains(factories.SYSTEM, c.id) if d.name == "altro0.example")
    new = dkim.rotate(staff, rotated.id)
    many, more_queries = listing()
    assert len(many) == 5
    assert more_queries == queries
    for item in many:
        record = dkim.dkim_record(db.session.get(Domain, item["id"]))
        assert item["dkim"] == ({"selector": record["selector"], "txt": record["txt"]} if record else None)
    by_name = {d["name"]: d["dkim"] for d in many}
    assert by_name["attesa.example"] is None
    assert by_name["altro0.example"] == {"selector": new.selector, "txt": new.txt}
    assert len({d["txt"] for d in by_name.values() if d}) == 4  # each domain its own key

    # Staff's list of pending domains too.
    token = users.create_token(factories.SYSTEM, make.staff(), "tests")[1]
    waiting = client.get("/api/v1/domains", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [(d["name"], d["dkim"]) for d in waiting] == [("attesa.example", None)]


def test_rotate_is_for_staff_another_customer_s_domain_is_a_404(client, make):
    c = make.customer(domain="base.example")
    other = make.customer(domain="altro.example")
    admin = make.admin(c)
    mine = domains.list_domains(factories.SYSTEM, c.id)[0]
    theirs = domains.list_domains(factories.SYSTEM, other.id)[0]
    before = dkim.active_key(mine.id)

    assert call(client, admin, "POST", f"/domains/{mine.id}/dkim/rotate").status_code == 403
    assert call(client, admin, "POST", f"/domains/{theirs.id}/dkim/rotate").status_code == 404
    assert client.post(f"/api/v1/domains/{mine.id}/dkim/rotate").status_code == 401
    assert dkim.pending_key(mine.id) is None and dkim.pending_key(theirs.id) is None

    staff = make.staff()
    answer = call(client, staff, "POST", f"/domains/{mine.id}/dkim/rotate")
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["state"] == "pending" and body["selector"] == before.selector + "b"
    assert body["name"] == f"{body['selector']}._domainkey.base.example"
    assert body["txt"].startswith("v=DKIM1; k=rsa; p=")
    assert leaks(answer.get_data(as_text=True), dkim.pending_key(mine.id)) == []
    # The domain shows the new record to publish; the old key still signs.
    assert (
        call(client, staff, "GET", f"/domains/{mine.id}").get_json()["dkim"]["selector"] == body["selector"]
    )
    assert dkim.active_key(mine.id).selector == before.selector
    # One rotation at a time.
    again = call(client, staff, "POST", f"/domains/{mine.id}/dkim/rotate")
    assert again.status_code == 409

    waiting = domains.add_domain(Actor.for_user(admin), c.id, "attesa.example")
    assert call(client, staff, "POST", f"/domains/{waiting.id}/dkim/rotate").status_code == 409


def test_staff_rotate_from_the_domain_page_and_a_customer_cannot(client, world, active, auth, make):
    _c, domain, _u = active
    before = dkim.active_key(domain.id)
    page = text(client.get(page_url(domain)))
    assert "Nuova chiave DKIM" not in page  # not a customer's button
    assert client.post(page_url(domain) + "/dkim/rotate").status_code == 403
    assert dkim.pending_key(domain.id) is None

    auth.logout()
    staff = make.staff()
    auth.login(staff.email)
    page = text(client.get(page_url(domain)))
    assert "Chiavi DKIM (supporto)" in page and "Nuova chiave DKIM" in page
    done = text(client.post(page_url(domain) + "/dkim/rotate", headers=HTMX))
    new = dkim.pending_key(domain.id)
    assert new is not None and new.selector in done and "pubblica il suo record" in done
    assert dkim.active_key(domain.id).selector == before.selector
    again = text(client.post(page_url(domain) + "/dkim/rotate", headers=HTMX))
    assert "attende già" in again
    # The records to publish now show the new key's record (the old one still signs).
    page = htmllib.unescape(client.get(page_url(domain)).get_data(as_text=True))
    assert f"{new.selector}._domainkey.rossi.it" in page
    assert leaks(page, new) == [] and leaks(page, before) == [] and leaks(done, new) == []
