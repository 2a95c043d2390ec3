"""The JSON API's happy paths, its authentication and its OpenAPI document."""

from __future__ import annotations

import re

import idna
import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from app.extensions import db
from app.models import Allowance, AuditEvent, Mailbox
from app.services import passwords, users
from tests import factories


class Api:
    """Calls /api/v1 with a bearer token, as an outside tool would."""

    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def __call__(self, method: str, path: str, json=None, **kw):
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.client.open("/api/v1" + path, method=method, json=json, headers=headers, **kw)

    def get(self, path, **kw):
        return self("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self("POST", path, json, **kw)

    def patch(self, path, json=None, **kw):
        return self("PATCH", path, json, **kw)

    def put(self, path, json=None, **kw):
        return self("PUT", path, json, **kw)

    def delete(self, path, **kw):
        return self("DELETE", path, **kw)


@pytest.fixture
def api(client):
    def for_user(user) -> Api:
        return Api(client, users.create_token(factories.SYSTEM, user, "tests")[1])

    return for_user


# Authentication


def test_no_token_is_401_with_a_bearer_challenge(client):
    r = client.get("/api/v1/customers")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization" in r.get_json()["error"]


@pytest.mark.parametrize(
    "header",
    ["Bearer cp_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "cp_token-without-scheme", "Bearer x"],
)
def test_a_bad_token_is_401(client, make, header):
    r = client.get("/api/v1/service-classes", headers={"Authorization": header})
    assert r.status_code == 401
    assert "Bearer" in r.headers["WWW-Authenticate"]
    assert r.get_json()["error"]


def test_a_revoked_token_stops_working(client, make):
    staff = make.staff()
    token, plaintext = users.create_token(make.SYSTEM, staff, "ci")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/v1/service-classes", headers=headers).status_code == 200
    users.revoke_token(make.SYSTEM, staff, token.id)
    assert client.get("/api/v1/service-classes", headers=headers).status_code == 401


def test_a_logged_in_browser_session_does_not_authenticate_the_api(client, auth, make):
    staff = make.staff()
    token = client.csrf_token()
    assert auth.login(staff.email).status_code == 302
    client._csrf_token = token  # still the session's token: login keeps the session
    assert client.get("/api/v1/customers").status_code == 401
    before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    r = client.post("/api/v1/customers", json={"name": "Via cookie", "plan": "payg"}, csrf=False)
    assert r.status_code == 401
    r = client.post("/api/v1/customers", json={"name": "Via cookie", "plan": "payg"})
    assert r.status_code == 401
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before


def test_unknown_path_and_wrong_method_answer_json(api, make):
    staff = api(make.staff())
    r = staff.get("/nothing-here")
    assert r.status_code == 404 and r.get_json()["error"]
    r = staff.delete("/customers")
    assert r.status_code == 405 and r.get_json()["error"]
    r = staff.get("/mailboxes/not-a-number")
    assert r.status_code == 404 and r.get_json()["error"]


# OpenAPI


def _route_operations(app) -> set[tuple[str, str]]:
    ops = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            ops |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return ops


def test_openapi_document_is_public_valid_and_matches_the_routes(client, app):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc)
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    documented = {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert documented == _route_operations(app)
    for path, item in doc["paths"].items():
        for method in ("post", "put", "patch"):
            if method in item and not path.endswith(
                (
                    "/approve",
                    "/reject",
                    "/quota-refresh",
                    "/resume",
                    "/check",
                    "/preflight",
                    "/start",
                    "/cancel",
                    "/finish",
                    "/rotate",
                )
            ):
                assert "requestBody" in item[method], (path, method)


# Catalogue


def test_service_classes_in_catalogue_order_with_feature_codes(api, make):
    r = api(make.staff()).get("/service-classes")
    assert r.status_code == 200
    rows = r.get_json()
    assert len(rows) == 32
    assert rows[0] == {
        "id": rows[0]["id"],
        "name": "Business Mail 100 MB",
        "type": "Business Mail",
        "quota_mb": 100,
        "features": ["email", "contacts"],
    }
    names = [row["name"] for row in rows]
    assert names.index("Business Mail 5.000 MB") < names.index("Business Mail Plus 100 MB")
    plus = next(row for row in rows if row["name"] == "Business Mail Plus 1.000 MB")
    assert plus["type"] == "Business Mail Plus" and plus["features"] == ["email", "contacts", "calendar"]
    pro = rows[-1]
    assert pro["name"] == "Professional Suite 25.000 MB"
    assert set(pro["features"]) == {
        "email",
        "contacts",
        "calendar",
        "briefcase",
        "sharing",
        "mobile",
        "outlook_mapi",
    }


# Customers and contracts


def test_staff_create_read_update_customer(api, make):
    staff = api(make.staff())
    r = staff.post(
        "/customers",
        json={
            "name": "Studio Verdi",
            "plan": "contract",
            "vat_number": "IT 03504190103",
            "contact_email": "Amministrazione@StudioVerdi.example",
        },
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body == {
        "id": body["id"],
        "name": "Studio Verdi",
        "plan": "contract",
        "vat_number": "03504190103",
        "contact_email": "amministrazione@studioverdi.example",
        "self_service": False,
        "allowances": [],
        "on_hold": False,
        "created_at": body["created_at"],
    }
    assert r.headers["Location"].endswith(f"/api/v1/customers/{body['id']}")
    assert staff.get(f"/customers/{body['id']}").get_json()["name"] == "Studio Verdi"

    listing = staff.get("/customers?q=verdi").get_json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == body["id"]
    assert listing["page"] == 1 and listing["pages"] == 1

    r = staff.patch(f"/customers/{body['id']}", json={"name": "Studio Verdi & Associati", "vat_number": None})
    assert r.status_code == 200
    assert r.get_json()["name"] == "Studio Verdi & Associati"
    assert r.get_json()["vat_number"] is None
    assert r.get_json()["plan"] == "contract"


def test_customer_admin_sees_only_their_own_customer(api, make):
    mine = make.customer(name="Mio")
    make.customer(name="Altro")
    admin = api(make.admin(mine))
    listing = admin.get("/customers").get_json()
    assert [c["name"] for c in listing["items"]] == ["Mio"]
    assert listing["total"] == 1
    assert admin.get(f"/customers/{mine.id}").get_json()["name"] == "Mio"


def test_contract_put_and_get_with_used_counts(api, make):
    c = make.customer("contract", {"Business Mail 100 MB": 2})
    make.mailbox(c)
    staff = api(make.staff())
    r = staff.put(
        f"/customers/{c.id}/contract",
        json={
            "allowances": [
                {"service_class": "business mail 100mb", "max_accounts": 3},
                {"service_class": "Professional Suite 5 GB", "max_accounts": 1},
            ],
            "self_service": False,
        },
    )
    assert r.status_code == 200, r.get_json()
    contract = r.get_json()
    assert contract["self_service"] is False and contract["plan"] == "contract"
    assert contract["allowances"] == [
        {"service_class": "Business Mail 100 MB", "max_accounts": 3, "used": 1},
        {"service_class": "Professional Suite 5.000 MB", "max_accounts": 1, "used": 0},
    ]
    assert staff.get(f"/customers/{c.id}/contract").get_json() == contract
    customer = staff.get(f"/customers/{c.id}").get_json()
    assert {"service_class": "Professional Suite 5.000 MB", "max_accounts": 1} in customer["allowances"]


# Domains


def test_domains_add_list_get_delete_with_unicode_names(api, make):
    c = make.customer()
    admin = api(make.admin(c))
    r = admin.post(f"/customers/{c.id}/domains", json={"name": "Caffè-Bianchi.example"})
    assert r.status_code == 201, r.get_json()
    domain = r.get_json()
    assert domain["name"] == idna.encode("caffè-bianchi.example", uts46=True).decode()
    assert domain["name"].startswith("xn--")
    assert domain["unicode_name"] == "caffè-bianchi.example"
    names = [d["unicode_name"] for d in admin.get(f"/customers/{c.id}/domains").get_json()]
    assert "caffè-bianchi.example" in names and len(names) == 2
    assert admin.get(f"/domains/{domain['id']}").get_json() == domain
    assert admin.delete(f"/domains/{domain['id']}").status_code == 204
    assert admin.get(f"/domains/{domain['id']}").status_code == 404


def test_a_domain_in_use_cannot_be_deleted(api, make):
    c = make.customer()
    make.mailbox(c)
    admin = api(make.admin(c))
    domain_id = admin.get(f"/customers/{c.id}/domains").get_json()[0]["id"]
    r = admin.delete(f"/domains/{domain_id}")
    assert r.status_code == 409 and "1" in r.get_json()["error"]


# Mailboxes


def test_mailbox_create_get_update_delete(api, make):
    c = make.customer()
    domain = make.domain_of(c)
    admin = api(make.admin(c))
    r = admin.post(
        f"/customers/{c.id}/mailboxes",
        json={
            "address": f"Mario.Rossi@{domain}",
            "password": "Secret-pass-1",
            "display_name": "Mario Rossi",
            "service_class": "Business Mail Plus 1.000 MB",
        },
    )
    assert r.status_code == 201, r.get_json()
    box = r.get_json()
    assert box["address"] == f"mario.rossi@{domain}"
    assert box["display_name"] == "Mario Rossi"
    assert box["service_class"] == "Business Mail Plus 1.000 MB"
    assert box["status"] == "active"
    assert box["created_at"] and box["updated_at"]
    assert not any("pass" in key or "hash" in key for key in box)
    assert admin.get(f"/mailboxes/{box['id']}").get_json() == box

    r = admin.patch(
        f"/mailboxes/{box['id']}",
        json={
            "display_name": "Mario R.",
            "status": "suspended",
            "service_class": "Business Mail 100 MB",
            "password": "Another-pass-2",
        },
    )
    assert r.status_code == 200, r.get_json()
    changed = r.get_json()
    assert (changed["display_name"], changed["status"], changed["service_class"]) == (
        "Mario R.",
        "suspended",
        "Business Mail 100 MB",
    )
    stored = db.session.get(Mailbox, box["id"])
    db.session.refresh(stored)
    assert passwords.verify_mailbox_password(stored.password_hash, "Another-pass-2")

    assert admin.delete(f"/mailboxes/{box['id']}").status_code == 204
    assert admin.get(f"/mailboxes/{box['id']}").status_code == 404


def test_mailbox_search_filters_and_pages(api, make):
    c = make.customer()
    for i in range(5):
        make.mailbox(c, local=f"vendite{i}")
    make.mailbox(c, local="direzione", service_class="Professional Suite 2.000 MB")
    staff = api(make.staff())
    box = staff.get(f"/customers/{c.id}/mailboxes?q=direz").get_json()["items"][0]
    staff.patch(f"/mailboxes/{box['id']}", json={"status": "disabled"})

    page = staff.get(f"/customers/{c.id}/mailboxes?q=vendite&per_page=2&page=2").get_json()
    assert (page["total"], page["page"], page["pages"]) == (5, 2, 3)
    assert [m["address"].split("@")[0] for m in page["items"]] == ["vendite2", "vendite3"]

    by_class = staff.get(f"/customers/{c.id}/mailboxes?service_class=professional suite 2000").get_json()
    assert [m["address"].split("@")[0] for m in by_class["items"]] == ["direzione"]
    disabled = staff.get(f"/customers/{c.id}/mailboxes?status=disabled").get_json()
    assert disabled["total"] == 1
    assert staff.get(f"/customers/{c.id}/mailboxes?per_page=200").get_json()["total"] == 6


# Aliases and lists


def test_alias_create_get_retarget_delete(api, make):
    c = make.customer()
    domain = make.domain_of(c)
    first, second = make.mailbox(c, local="primo"), make.mailbox(c, local="secondo")
    admin = api(make.admin(c))
    r = admin.post(f"/customers/{c.id}/aliases", json={"address": f"info@{domain}", "target": first.address})
    assert r.status_code == 201, r.get_json()
    alias = r.get_json()
    assert (alias["address"], alias["target"]) == (f"info@{domain}", first.address)
    assert [a["id"] for a in admin.get(f"/customers/{c.id}/aliases").get_json()] == [alias["id"]]
    r = admin.patch(f"/aliases/{alias['id']}", json={"target": second.id})
    assert r.status_code == 200 and r.get_json()["target"] == second.address
    assert admin.get(f"/aliases/{alias['id']}").get_json()["target_id"] == second.id
    assert admin.delete(f"/aliases/{alias['id']}").status_code == 204
    assert admin.get(f"/aliases/{alias['id']}").status_code == 404


def test_list_create_replace_members_delete(api, make):
    c = make.customer()
    domain = make.domain_of(c)
    box = make.mailbox(c, local="anna")
    admin = api(make.admin(c))
    r = admin.post(
        f"/customers/{c.id}/lists",
        json={
            "address": f"tutti@{domain}",
            "members": [box.address, "Partner@Esterno.example"],
            "description": "Tutto l'ufficio",
        },
    )
    assert r.status_code == 201, r.get_json()
    dlist = r.get_json()
    assert dlist["members"] == [box.address, "partner@esterno.example"]
    assert dlist["description"] == "Tutto l'ufficio"
    assert admin.get(f"/customers/{c.id}/lists").get_json()[0]["id"] == dlist["id"]

    r = admin.patch(f"/lists/{dlist['id']}", json={"members": ["nuovo@esterno.example"], "description": None})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["members"] == ["nuovo@esterno.example"]
    assert r.get_json()["description"] == ""
    assert admin.get(f"/lists/{dlist['id']}").get_json()["members"] == ["nuovo@esterno.example"]
    r = admin.patch(f"/lists/{dlist['id']}", json={"members": []})
    assert r.get_json()["members"] == []
    assert admin.delete(f"/lists/{dlist['id']}").status_code == 204
    assert admin.get(f"/lists/{dlist['id']}").status_code == 404


# Capacity requests


def test_capacity_request_asked_by_customer_approved_by_staff(api, make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    admin, staff = api(make.admin(c)), api(make.staff())
    r = admin.post(
        f"/customers/{c.id}/capacity-requests",
        json={"service_class": "Business Mail 100 MB", "extra_accounts": 4, "note": "Nuovi assunti"},
    )
    assert r.status_code == 201, r.get_json()
    req = r.get_json()
    assert (req["status"], req["extra_accounts"], req["service_class"]) == ("open", 4, "Business Mail 100 MB")
    assert [x["id"] for x in admin.get(f"/customers/{c.id}/capacity-requests").get_json()] == [req["id"]]
    assert [x["id"] for x in staff.get("/capacity-requests?status=open").get_json()] == [req["id"]]

    r = staff.post(f"/capacity-requests/{req['id']}/approve")
    assert r.status_code == 200 and r.get_json()["status"] == "approved"
    assert r.get_json()["decided_at"]
    allowance = db.session.scalar(sa.select(Allowance.max_accounts).where(Allowance.customer_id == c.id))
    assert allowance == 5
    r = staff.post(f"/capacity-requests/{req['id']}/reject", json={"reason": "Troppo tardi"})
    assert r.status_code == 409 and r.get_json()["error"]


def test_capacity_request_rejected(api, make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    admin, staff = api(make.admin(c)), api(make.staff())
    req = admin.post(
        f"/customers/{c.id}/capacity-requests",
        json={"service_class": "Business Mail 100 MB", "extra_accounts": 1, "note": "Un nuovo socio"},
    )
    assert req.status_code == 201 and req.get_json()["extra_accounts"] == 1
    r = staff.post(f"/capacity-requests/{req.get_json()['id']}/reject", json={})
    assert r.status_code == 422 and "reason" in r.get_json()["errors"]
    r = staff.post(
        f"/capacity-requests/{req.get_json()['id']}/reject", json={"reason": "Contratto in scadenza"}
    )
    assert r.status_code == 200 and r.get_json()["status"] == "rejected"
    assert r.get_json()["decision_note"] == "Contratto in scadenza"
    assert staff.get(f"/customers/{c.id}/contract").get_json()["allowances"][0]["max_accounts"] == 1


def test_api_changes_are_audited_as_api_with_the_token_owner(api, make):
    c = make.customer()
    admin_user = make.admin(c)
    r = api(admin_user).post(
        f"/customers/{c.id}/mailboxes",
        json={"address": f"audit@{make.domain_of(c)}", "password": "Secret-pass-1", "service_class": 1},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert r.status_code == 201, r.get_json()
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "mailbox.create").limit(1))
    assert (event.via, event.actor, event.ip) == ("api", admin_user.email, "203.0.113.7")
