"""Tenant scoping and roles through the API: another customer's ids are 404, staff-only is 403."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import CapacityRequest, Customer, Domain, Mailbox
from app.services import capacity, users
from tests import factories
from tests.dbstate import row_counts as counts


class Api:
    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def __call__(self, method: str, path: str, json=None, data=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.client.open("/api/v1" + path, method=method, json=json, data=data, headers=headers)


@pytest.fixture
def api(client):
    def for_user(user) -> Api:
        return Api(client, users.create_token(factories.SYSTEM, user, "tests")[1])

    return for_user


@pytest.fixture
def two(make):
    """Customers A and B, both self-administered, B with one of everything."""
    a = make.customer("contract", {"Business Mail 100 MB": 5}, name="Cliente A")
    b = make.customer("contract", {"Business Mail 100 MB": 5}, name="Cliente B")
    box = make.mailbox(b, local="bruno", display_name="Bruno")
    alias = make.alias(b, "info", box)
    dlist = make.dlist(b, "tutti", [box.address])
    req = capacity.request_capacity(
        make.SYSTEM, b.id, service_class="Business Mail 100 MB", extra_accounts=1, note="Serve"
    ).request
    domain = db.session.scalar(sa.select(Domain).where(Domain.customer_id == b.id))
    ids = {
        "a": a.id,
        "b": b.id,
        "domain": domain.id,
        "dname": domain.name,
        "box": box.id,
        "box_address": box.address,
        "alias": alias.id,
        "list": dlist.id,
        "req": req.id,
    }
    return ids


def scoped_calls(i: dict) -> list[tuple[str, str, dict | None]]:
    b, d = i["b"], i["dname"]
    return [
        ("GET", f"/customers/{b}", None),
        ("GET", f"/customers/{b}/contract", None),
        ("GET", f"/customers/{b}/domains", None),
        ("POST", f"/customers/{b}/domains", {"name": "nuovo-b.example"}),
        ("GET", f"/domains/{i['domain']}", None),
        ("POST", f"/domains/{i['domain']}/approve", None),
        ("DELETE", f"/domains/{i['domain']}", None),
        ("GET", f"/customers/{b}/mailboxes", None),
        (
            "POST",
            f"/customers/{b}/mailboxes",
            {"address": f"x@{d}", "password": "Secret-pass-1", "service_class": "Business Mail 100 MB"},
        ),
        ("GET", f"/mailboxes/{i['box']}", None),
        ("PATCH", f"/mailboxes/{i['box']}", {"display_name": "Preso", "status": "disabled"}),
        ("DELETE", f"/mailboxes/{i['box']}", None),
        ("GET", f"/customers/{b}/aliases", None),
        ("POST", f"/customers/{b}/aliases", {"address": f"altro@{d}", "target": i["box_address"]}),
        ("GET", f"/aliases/{i['alias']}", None),
        ("PATCH", f"/aliases/{i['alias']}", {"target": i["box"]}),
        ("DELETE", f"/aliases/{i['alias']}", None),
        ("GET", f"/customers/{b}/lists", None),
        ("POST", f"/customers/{b}/lists", {"address": f"lista@{d}", "members": []}),
        ("GET", f"/lists/{i['list']}", None),
        ("PATCH", f"/lists/{i['list']}", {"members": ["spia@esterno.example"]}),
        ("DELETE", f"/lists/{i['list']}", None),
        ("GET", f"/customers/{b}/capacity-requests", None),
        (
            "POST",
            f"/customers/{b}/capacity-requests",
            {"service_class": "Business Mail 100 MB", "extra_accounts": 1, "note": "x"},
        ),
        # Staff-only operations too: another customer's id is not found before it is forbidden.
        ("PATCH", f"/customers/{b}", {"name": "Preso"}),
        ("PUT", f"/customers/{b}/contract", {"allowances": [], "self_service": True}),
        ("POST", f"/capacity-requests/{i['req']}/approve", None),
        ("POST", f"/capacity-requests/{i['req']}/reject", None),
    ]


STAFF_ONLY = [
    ("PATCH", "/customers/{b}", {"name": "Preso"}),
    ("PUT", "/customers/{b}/contract", {"allowances": [], "self_service": True}),
    ("POST", "/capacity-requests/{req}/approve", None),
    ("POST", "/capacity-requests/{req}/reject", None),
    ("POST", "/domains/{domain}/approve", None),
]


def test_another_customers_ids_are_404_for_every_endpoint_and_nothing_changes(api, make, two):
    a_admin = api(make.admin(db.session.get(Customer, two["a"])))
    before = counts()
    for method, path, body in scoped_calls(two):
        r = a_admin(method, path, body)
        assert r.status_code == 404, (method, path, r.status_code, r.get_json())
        assert set(r.get_json()) == {"error"}, (method, path)
        if method != "GET":
            # Not even the body is read first: bad input on B's ids is still a 404.
            for junk in (b"{", b'{"unknown": 1}'):
                r = a_admin(method, path, data=junk)
                assert r.status_code == 404, (method, path, junk, r.get_json())
    assert counts() == before
    box = db.session.get(Mailbox, two["box"])
    db.session.refresh(box)
    assert (box.display_name, box.status) == ("Bruno", "active")
    assert db.session.get(CapacityRequest, two["req"]).status == "open"


def test_staff_only_endpoints_are_403_for_a_customer_admin_on_their_own_customer(api, make, two):
    b_admin = api(make.admin(db.session.get(Customer, two["b"])))
    before = counts()
    for method, path, body in STAFF_ONLY:
        r = b_admin(method, path.format(**two), body)
        assert r.status_code == 403, (method, path, r.get_json())
        assert r.get_json()["error"]
    assert b_admin("POST", "/customers", {"name": "Nuovo", "plan": "payg"}).status_code == 403
    assert b_admin("GET", "/capacity-requests", None).status_code == 403
    assert b_admin("GET", "/domains", None).status_code == 403
    assert counts() == before
    assert db.session.get(Customer, two["b"]).name == "Cliente B"
    assert db.session.get(CapacityRequest, two["req"]).status == "open"


def test_staff_act_on_any_customer(api, make, two):
    staff = api(make.staff())
    for method, path, body in scoped_calls(two):
        if method == "GET":
            assert staff(method, path, body).status_code == 200, path
    r = staff(
        "POST",
        f"/customers/{two['b']}/mailboxes",
        {
            "address": f"nuova@{two['dname']}",
            "password": "Secret-pass-1",
            "service_class": "Business Mail 100 MB",
        },
    )
    assert r.status_code == 201, r.get_json()
    r = staff("PATCH", f"/customers/{two['b']}", {"name": "Cliente B S.p.A."})
    assert r.status_code == 200 and r.get_json()["name"] == "Cliente B S.p.A."
    assert staff("POST", f"/capacity-requests/{two['req']}/approve", None).status_code == 200
    listing = staff("GET", "/customers", None).get_json()
    assert {c["name"] for c in listing["items"]} == {"Cliente A", "Cliente B S.p.A."}


def test_missing_ids_are_404_for_staff(api, make):
    staff = api(make.staff())
    for path in (
        "/customers/999999",
        "/customers/999999/contract",
        "/customers/999999/mailboxes",
        "/customers/999999/aliases",
        "/customers/999999/lists",
        "/customers/999999/domains",
        "/customers/999999/capacity-requests",
        "/mailboxes/999999",
        "/aliases/999999",
        "/lists/999999",
        "/domains/999999",
    ):
        r = staff("GET", path)
        assert r.status_code == 404 and r.get_json()["error"], path
    assert staff("POST", "/capacity-requests/999999/approve").status_code == 404
    assert staff("PATCH", "/customers/999999", {"name": "X"}).status_code == 404
    assert (
        staff("PUT", "/customers/999999/contract", {"allowances": [], "self_service": False}).status_code
        == 404
    )


def test_without_self_administration_a_contract_customer_reads_but_cannot_change(api, make):
    c = make.customer("contract", {"Business Mail 100 MB": 5}, self_service=False)
    box = make.mailbox(c, local="anna")
    alias = make.alias(c, "info", box)
    admin = api(make.admin(c))
    domain = make.domain_of(c)
    for path in (f"/customers/{c.id}/mailboxes", f"/mailboxes/{box.id}", f"/customers/{c.id}/contract"):
        assert admin("GET", path).status_code == 200
    before = counts()
    refused = [
        (
            "POST",
            f"/customers/{c.id}/mailboxes",
            {
                "address": f"nuova@{domain}",
                "password": "Secret-pass-1",
                "service_class": "Business Mail 100 MB",
            },
        ),
        ("PATCH", f"/mailboxes/{box.id}", {"status": "suspended"}),
        ("DELETE", f"/mailboxes/{box.id}", None),
        ("POST", f"/customers/{c.id}/aliases", {"address": f"altro@{domain}", "target": box.address}),
        ("DELETE", f"/aliases/{alias.id}", None),
        ("POST", f"/customers/{c.id}/lists", {"address": f"lista@{domain}"}),
        ("POST", f"/customers/{c.id}/domains", {"name": "altro-dominio.example"}),
    ]
    for method, path, body in refused:
        r = admin(method, path, body)
        assert r.status_code == 403, (method, path, r.get_json())
        assert "supporto" in r.get_json()["error"]
    assert counts() == before
    # Asking sales for more is always open to the customer.
    r = admin(
        "POST",
        f"/customers/{c.id}/capacity-requests",
        {"service_class": "Business Mail 100 MB", "extra_accounts": 1, "note": "Un nuovo collega"},
    )
    assert r.status_code == 201
