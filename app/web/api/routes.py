"""JSON API /api/v1: catalogue, customers, contracts, capacity requests.

Each route parses JSON, calls a service with the caller's Actor and shapes
the answer; the services hold every rule, including tenant scoping.
"""

from __future__ import annotations

from flask import jsonify, request, url_for
from flask_babel import gettext as _

from app.services import capacity, classes, customers, limits
from app.services.access import customer_for
from app.services.errors import ValidationError
from app.services.paging import Page
from app.web.api import body, openapi
from app.web.api import serializers as out
from app.web.api.auth import actor
from app.web.api.blueprint import bp

CUSTOMER_FIELDS = {
    "name": body.text,
    "plan": body.text,
    "vat_number": body.optional_text,
    "contact_email": body.optional_text,
    "vat_duplicate_reason": body.optional_text,
}
REQUEST_STATUSES = ("open", "approved", "rejected")


@bp.get("/openapi.json", endpoint="openapi")
def openapi_document():
    return jsonify(openapi.document())


@bp.get("/service-classes")
def service_classes():
    return jsonify([out.service_class(c) for c in classes.all_classes()])


@bp.get("/customers")
def customer_list():
    who = actor()
    page = body.query_int("page", 1)
    per_page = body.query_int("per_page", 50, maximum=200)
    if who.is_staff:
        result = customers.search_customers(who, body.query_text("q"), page, per_page)
    else:
        own = customer_for(who, who.customer_id)
        result = Page([own], 1, 1, per_page)
    return jsonify(out.page(result, out.customer))


@bp.post("/customers")
def customer_create():
    data = body.read(CUSTOMER_FIELDS)
    customer = customers.create_customer(actor(), **data)
    response = jsonify(out.customer(customer))
    response.headers["Location"] = url_for("api.customer_get", customer_id=customer.id)
    return response, 201


@bp.get("/customers/<id:customer_id>")
def customer_get(customer_id: int):
    return jsonify(out.customer(customer_for(actor(), customer_id)))


@bp.patch("/customers/<id:customer_id>")
def customer_update(customer_id: int):
    data = body.read(CUSTOMER_FIELDS)
    return jsonify(out.customer(customers.update_customer(actor(), customer_id, **data)))


@bp.get("/customers/<id:customer_id>/contract")
def contract_get(customer_id: int):
    customer = customer_for(actor(), customer_id)
    return jsonify(out.contract(customer, limits.usage_report(customer)))


@bp.put("/customers/<id:customer_id>/contract")
def contract_put(customer_id: int):
    data = body.read(
        {"allowances": body.allowance_list, "self_service": body.boolean},
        required=("allowances", "self_service"),
    )
    customer = customers.set_contract(actor(), customer_id, data["allowances"], data["self_service"])
    return jsonify(out.contract(customer, limits.usage_report(customer)))


def _request_status() -> str | None:
    status = request.args.get("status") or None
    if status is not None and status not in REQUEST_STATUSES:
        raise ValidationError.one("status", _("Stato non valido: usa open, approved o rejected."))
    return status


@bp.get("/capacity-requests")
def capacity_request_list():
    rows = capacity.list_requests(actor(), status=_request_status())
    return jsonify([out.capacity_request(r) for r in rows])


@bp.get("/customers/<id:customer_id>/capacity-requests")
def customer_capacity_requests(customer_id: int):
    rows = capacity.list_requests(actor(), customer_id=customer_id, status=_request_status())
    return jsonify([out.capacity_request(r) for r in rows])


@bp.post("/customers/<id:customer_id>/capacity-requests")
def capacity_request_create(customer_id: int):
    """201 with a new request; 200 when the customer's open request for the class was revised."""
    data = body.read(
        {"service_class": body.name_or_id, "extra_accounts": body.integer, "note": body.text},
        required=("service_class", "extra_accounts", "note"),
    )
    asked = capacity.request_capacity(
        actor(),
        customer_id,
        service_class=data["service_class"],
        extra_accounts=data["extra_accounts"],
        note=data["note"],
    )
    return jsonify(out.capacity_request(asked.request)), 201 if asked.created else 200


def _decision_body(spec: dict) -> dict:
    # An approval may come without a body (it grants what was asked); a rejection's missing
    # reason is the service's to report, after it has said whether the request exists at all.
    return body.read(spec) if request.get_data(cache=True).strip() else {}


@bp.post("/capacity-requests/<id:request_id>/approve")
def capacity_request_approve(request_id: int):
    data = _decision_body({"accounts": body.integer, "reason": body.optional_text})
    req = capacity.decide(
        actor(), request_id, approve=True, accounts=data.get("accounts"), reason=data.get("reason") or ""
    )
    return jsonify(out.capacity_request(req))


@bp.post("/capacity-requests/<id:request_id>/reject")
def capacity_request_reject(request_id: int):
    data = _decision_body({"reason": body.optional_text})
    req = capacity.decide(actor(), request_id, approve=False, reason=data.get("reason") or "")
    return jsonify(out.capacity_request(req))


from app.web.api import jobs, mail  # noqa: E402,F401  (register the domain/mailbox/alias/list and job routes)
