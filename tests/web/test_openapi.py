"""The OpenAPI document is built from what the API checks: it validates, covers every route,
follows a changed check, and the API's real answers fit it."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flask import Blueprint, Flask
from flask_babel import Babel
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from app.models.enums import DomainState, MailboxStatus, Plan, PostPolicy, RequestStatus
from app.services import users
from app.services.errors import ValidationError
from app.web.api import body, mail, openapi
from app.web.api.body import text
from app.web.api.openapi import documented
from tests import factories

CLASS = "Business Mail 100 MB"
METHODS = {"get", "post", "put", "patch", "delete"}


class Api:
    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def __call__(self, method: str, path: str, json=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.client.open("/api/v1" + path, method=method, json=json, headers=headers)


@pytest.fixture
def doc(client) -> dict:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    return r.get_json()


@pytest.fixture
def ctx(client, make):
    c = make.customer("contract", {CLASS: 3}, name="Cliente")
    box = make.mailbox(c, local="anna")

    def token(user):
        return Api(client, users.create_token(factories.SYSTEM, user, "tests")[1])

    class Ctx:
        customer, domain, mailbox = c, make.domain_of(c), box
        admin = token(make.admin(c))
        staff = token(make.staff())

    return Ctx


def test_the_document_is_valid_openapi(doc):
    validate(doc)
    assert doc["openapi"].startswith("3.")


def test_every_api_route_is_documented_and_nothing_else(doc, app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower(), rule.endpoint[4:]) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented_ops = {
        (path, method, op["operationId"])
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }
    assert documented_ops == routes
    for path, item in doc["paths"].items():
        names = {p["name"] for p in item.get("parameters", [])}
        assert names == set(re.findall(r"{(\w+)}", path)), path


def _toy_app(*views) -> Flask:
    toy = Flask("toy")
    # Messages as written: no catalogue (Flask's root for "toy" is the working directory).
    toy.config["BABEL_TRANSLATION_DIRECTORIES"] = "no-catalogues-here"
    Babel(toy)
    bp = Blueprint("api", "toy")
    for rule, view in views:
        bp.add_url_rule(rule, view_func=view, methods=["POST"])
    toy.register_blueprint(bp, url_prefix="/api/v1")
    return toy


def test_a_view_without_documentation_fails_the_build():
    def described():
        return ""

    def forgotten():
        return ""

    app = _toy_app(
        ("/described", documented("Described.", "toys", errors=())(described)), ("/forgotten", forgotten)
    )
    with pytest.raises(openapi.Undocumented, match="api.forgotten"):
        openapi.build(app)


def test_a_toy_endpoints_check_is_its_document():
    toy_shape = body.shape("Toy", name=text(required=True, max_len=5))

    def toy():
        return body.read()

    app = _toy_app(("/toys", documented("Make a toy.", "toys", body=toy_shape, status=201)(toy)))
    assert openapi.build(app)["components"]["schemas"]["Toy"] == {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 5}},
        "required": ["name"],
        "additionalProperties": False,
    }
    with app.test_request_context("/api/v1/toys", method="POST", json={"name": "sei ch"}):
        with pytest.raises(ValidationError) as refused:
            toy()
    assert refused.value.errors == {"name": "Al massimo 5 caratteri."}
    with app.test_request_context("/api/v1/toys", method="POST", json={"name": "cinqu"}):
        assert toy() == {"name": "cinqu"}


def test_a_changed_check_changes_the_document_and_the_answers(ctx, client, monkeypatch):
    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["MailboxInput"]
    assert schema["properties"]["display_name"]["maxLength"] == 200
    shorter = replace(mail.MAILBOX_INPUT.fields["display_name"], max_len=5)
    monkeypatch.setitem(mail.MAILBOX_INPUT.fields, "display_name", shorter)

    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["MailboxInput"]
    assert schema["properties"]["display_name"]["maxLength"] == 5
    new = {"password": "Secret-pass-1", "service_class": CLASS}
    r = ctx.admin(
        "POST",
        f"/customers/{ctx.customer.id}/mailboxes",
        {"address": f"bruno@{ctx.domain}", "display_name": "Bruno B", **new},
    )
    assert r.status_code == 422
    assert r.get_json()["errors"] == {"display_name": "Al massimo 5 caratteri."}
    r = ctx.admin(
        "POST",
        f"/customers/{ctx.customer.id}/mailboxes",
        {"address": f"bruno@{ctx.domain}", "display_name": "Bruno", **new},
    )
    assert r.status_code == 201, r.get_json()


def _query_param(doc: dict, path: str, name: str) -> dict:
    return next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name)["schema"]


def test_each_enum_in_the_document_is_its_codes(doc):
    schemas = doc["components"]["schemas"]

    def codes(schema_name: str, field: str) -> list:
        return schemas[schema_name]["properties"][field]["enum"]

    for schema_name, field, enum in [
        ("Mailbox", "status", MailboxStatus),
        ("MailboxPatch", "status", MailboxStatus),
        ("Customer", "plan", Plan),
        ("CustomerInput", "plan", Plan),
        ("CustomerPatch", "plan", Plan),
        ("Contract", "plan", Plan),
        ("CapacityRequest", "status", RequestStatus),
        ("Domain", "state", DomainState),
        ("DistributionList", "post_policy", PostPolicy),
        ("DistributionListInput", "post_policy", PostPolicy),
        ("DistributionListPatch", "post_policy", PostPolicy),
    ]:
        assert codes(schema_name, field) == [m.value for m in enum], (schema_name, field)
    assert _query_param(doc, "/api/v1/customers/{customer_id}/mailboxes", "status")["enum"] == list(
        MailboxStatus.values()
    )
    assert _query_param(doc, "/api/v1/capacity-requests", "status")["enum"] == list(RequestStatus.values())
    assert _query_param(doc, "/api/v1/domains", "state")["enum"] == [DomainState.PENDING.value]


def test_a_value_outside_an_enum_is_422_on_its_field(ctx):
    c = ctx.customer
    cases = [
        (ctx.staff, "POST", "/customers", {"name": "Nuovo", "plan": "gold"}, "plan"),
        (ctx.staff, "PATCH", f"/customers/{c.id}", {"plan": "PAYG"}, "plan"),
        (ctx.admin, "PATCH", f"/mailboxes/{ctx.mailbox.id}", {"status": "deleted"}, "status"),
        (
            ctx.admin,
            "POST",
            f"/customers/{c.id}/lists",
            {"address": f"l@{ctx.domain}", "post_policy": "all"},
            "post_policy",
        ),
        (ctx.admin, "GET", f"/customers/{c.id}/mailboxes?status=gone", None, "status"),
        (ctx.staff, "GET", "/capacity-requests?status=closed", None, "status"),
        (ctx.staff, "GET", "/domains?state=active", None, "state"),
    ]
    for who, method, path, payload, field in cases:
        r = who(method, path, payload)
        assert r.status_code == 422, (path, r.get_json())
        assert list(r.get_json()["errors"]) == [field], path
    r = ctx.admin("PATCH", f"/mailboxes/{ctx.mailbox.id}", {"status": "deleted"})
    assert r.get_json()["errors"]["status"] == "Stato non valido: usa active, suspended o disabled."
    assert ctx.admin("GET", f"/mailboxes/{ctx.mailbox.id}").get_json()["status"] == MailboxStatus.ACTIVE


def _fits(doc: dict, path: str, method: str, status: int, answer: object) -> None:
    schema = doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(answer)]
    assert not problems, (path, method, problems)


def test_real_answers_fit_the_documented_shapes(ctx, doc, make):
    c, staff, admin = ctx.customer, ctx.staff, ctx.admin
    make.alias(c, "info", ctx.mailbox)
    make.dlist(c, "tutti", ["fuori@esterno.example", ctx.mailbox.address])
    asked = admin(
        "POST",
        f"/customers/{c.id}/capacity-requests",
        {"service_class": CLASS, "extra_accounts": 2, "note": "Nuovi colleghi"},
    )
    _fits(doc, "/api/v1/customers/{customer_id}/capacity-requests", "post", 201, asked.get_json())
    approved = staff("POST", f"/capacity-requests/{asked.get_json()['id']}/approve")
    _fits(doc, "/api/v1/capacity-requests/{request_id}/approve", "post", 200, approved.get_json())
    created = admin(
        "POST",
        f"/customers/{c.id}/mailboxes",
        {"address": f"bruno@{ctx.domain}", "password": "Secret-pass-1", "service_class": CLASS},
    )
    _fits(doc, "/api/v1/customers/{customer_id}/mailboxes", "post", 201, created.get_json())
    pending = admin("POST", f"/customers/{c.id}/domains", {"name": "nuovo-dominio.example"})
    _fits(doc, "/api/v1/customers/{customer_id}/domains", "post", 201, pending.get_json())
    for path, url in [
        ("/api/v1/service-classes", "/service-classes"),
        ("/api/v1/customers", "/customers"),
        ("/api/v1/customers/{customer_id}", f"/customers/{c.id}"),
        ("/api/v1/customers/{customer_id}/contract", f"/customers/{c.id}/contract"),
        ("/api/v1/customers/{customer_id}/domains", f"/customers/{c.id}/domains"),
        ("/api/v1/domains", "/domains"),
        ("/api/v1/customers/{customer_id}/mailboxes", f"/customers/{c.id}/mailboxes"),
        ("/api/v1/mailboxes/{mailbox_id}", f"/mailboxes/{ctx.mailbox.id}"),
        ("/api/v1/customers/{customer_id}/aliases", f"/customers/{c.id}/aliases"),
        ("/api/v1/customers/{customer_id}/lists", f"/customers/{c.id}/lists"),
        ("/api/v1/customers/{customer_id}/list-limits", f"/customers/{c.id}/list-limits"),
        ("/api/v1/capacity-requests", "/capacity-requests"),
    ]:
        r = staff("GET", url)
        assert r.status_code == 200, url
        answer = r.get_json()
        assert answer, url  # an empty list would fit any shape
        _fits(doc, path, "get", 200, answer)
