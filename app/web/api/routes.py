"""JSON API /api/v1: catalogue, customers, contracts, capacity requests.

Each route parses JSON, calls a service with the caller's Actor and shapes
the answer; the services hold every rule, including tenant scoping. What a
route accepts and answers is its @documented declaration (app/web/api/openapi.py).
"""

from __future__ import annotations

from flask import jsonify, url_for
from flask_babel import lazy_gettext as _l

from app.models.enums import Plan, RequestStatus
from app.services import capacity, classes, customers, limits
from app.services.access import customer_for
from app.services.paging import Page
from app.web.api import body, openapi
from app.web.api import serializers as out
from app.web.api.auth import actor
from app.web.api.blueprint import bp
from app.web.api.body import Param, boolean, choice, integer, list_of, object_of, shape, text
from app.web.api.openapi import WRITE_ERRORS, documented

# Write requests

VAT_DUPLICATE_REASON = text(
    nullable=True,
    max_len=500,
    description="Why a VAT number another customer has is accepted (audited); without it, 409.",
)
CUSTOMER_INPUT = shape(
    "CustomerInput",
    name=text(required=True, max_len=200),
    plan=choice(Plan, required=True),
    vat_number=text(nullable=True, max_len=32, description="Partita IVA (11 digits) or an EU VAT number."),
    contact_email=text(nullable=True),
    vat_duplicate_reason=VAT_DUPLICATE_REASON,
)
CUSTOMER_PATCH = CUSTOMER_INPUT.but("CustomerPatch", optional=True)
ALLOWANCE_INPUT = shape(
    "AllowanceInput",
    service_class=body.CLASS_REF,
    max_accounts=integer(required=True, minimum=0, maximum=100_000),
)
CONTRACT_INPUT = shape(
    "ContractInput",
    allowances=list_of(
        object_of(ALLOWANCE_INPUT),
        required=True,
        message=_l("Deve essere un elenco di oggetti {service_class: nome o id, max_accounts: intero}."),
        description="Replaces every allowance; a class left out (or 0) is no longer allowed.",
    ),
    self_service=boolean(required=True),
)
CAPACITY_REQUEST_INPUT = shape(
    "CapacityRequestInput",
    service_class=body.CLASS_REF,
    extra_accounts=integer(required=True, minimum=1, maximum=capacity.MAX_ACCOUNTS),
    note=text(
        required=True, min_len=1, max_len=capacity.MAX_NOTE, description="Why the accounts are needed."
    ),
)
CAPACITY_APPROVAL = shape(
    "CapacityApproval",
    accounts=integer(
        minimum=1, maximum=capacity.MAX_ACCOUNTS, description="How many to grant; by default what was asked."
    ),
    reason=text(nullable=True, max_len=capacity.MAX_NOTE),
)
CAPACITY_REJECTION = shape(
    "CapacityRejection",
    reason=text(
        required=True,
        min_len=1,
        max_len=capacity.MAX_NOTE,
        missing=_l("Scrivi il motivo del rifiuto: il cliente lo leggerà."),
        description="Why: the customer reads it.",
    ),
)

# Query parameters

REQUEST_FILTER = (Param("status", enum=RequestStatus, description="Only requests in this state."),)


@bp.get("/openapi.json", endpoint="openapi")
@documented("This document.", "meta", ok={"type": "object"}, errors=())
def openapi_document():
    return jsonify(openapi.document())


@bp.get("/service-classes")
@documented(
    "The 32 classes of service, in catalogue order.",
    "catalogue",
    ok=openapi.array_of(out.SERVICE_CLASS),
    errors=(401,),
)
def service_classes():
    return jsonify([out.service_class(c) for c in classes.all_classes()])


@bp.get("/customers")
@documented(
    "Customers: all of them for staff, the caller's own for a customer admin.",
    "customers",
    ok=out.CUSTOMER_PAGE,
    errors=(401, 422),
    query=(
        Param("q", default="", description="Search name, VAT number, contact email (staff)."),
        *body.PAGING,
    ),
)
def customer_list():
    who, args = actor(), body.query()
    if who.is_staff:
        result = customers.search_customers(who, args["q"], args["page"], args["per_page"])
    else:
        own = customer_for(who, who.customer_id)
        result = Page([own], 1, 1, args["per_page"])
    return jsonify(out.page(result, out.customer))


@bp.post("/customers")
@documented(
    "Create a customer (staff). A VAT number another customer has is a 409 "
    "unless `vat_duplicate_reason` says why.",
    "customers",
    ok=out.CUSTOMER,
    status=201,
    body=CUSTOMER_INPUT,
    errors=(401, 403, 409, 422),
)
def customer_create():
    customer = customers.create_customer(actor(), **body.read())
    response = jsonify(out.customer(customer))
    response.headers["Location"] = url_for("api.customer_get", customer_id=customer.id)
    return response, 201


@bp.get("/customers/<id:customer_id>")
@documented("One customer.", "customers", ok=out.CUSTOMER)
def customer_get(customer_id: int):
    return jsonify(out.customer(customer_for(actor(), customer_id)))


@bp.patch("/customers/<id:customer_id>")
@documented(
    "Change a customer's data or plan (staff).",
    "customers",
    ok=out.CUSTOMER,
    body=CUSTOMER_PATCH,
    errors=WRITE_ERRORS,
)
def customer_update(customer_id: int):
    return jsonify(out.customer(customers.update_customer(actor(), customer_id, **body.read())))


@bp.get("/customers/<id:customer_id>/contract")
@documented("The contract: allowances per class with the accounts in use.", "contracts", ok=out.CONTRACT)
def contract_get(customer_id: int):
    customer = customer_for(actor(), customer_id)
    return jsonify(out.contract(customer, limits.usage_report(customer)))


@bp.put("/customers/<id:customer_id>/contract")
@documented(
    "Replace the allowances and the self-administration flag (staff).",
    "contracts",
    ok=out.CONTRACT,
    body=CONTRACT_INPUT,
    errors=WRITE_ERRORS,
)
def contract_put(customer_id: int):
    data = body.read()
    customer = customers.set_contract(actor(), customer_id, data["allowances"], data["self_service"])
    return jsonify(out.contract(customer, limits.usage_report(customer)))


@bp.get("/capacity-requests")
@documented(
    "Every customer's capacity requests, newest first (staff).",
    "capacity",
    ok=openapi.array_of(out.CAPACITY_REQUEST),
    errors=(401, 403, 422),
    query=REQUEST_FILTER,
)
def capacity_request_list():
    rows = capacity.list_requests(actor(), status=body.query()["status"])
    return jsonify([out.capacity_request(r) for r in rows])


@bp.get("/customers/<id:customer_id>/capacity-requests")
@documented(
    "A customer's capacity requests, newest first.",
    "capacity",
    ok=openapi.array_of(out.CAPACITY_REQUEST),
    errors=(401, 404, 422),
    query=REQUEST_FILTER,
)
def customer_capacity_requests(customer_id: int):
    rows = capacity.list_requests(actor(), customer_id=customer_id, status=body.query()["status"])
    return jsonify([out.capacity_request(r) for r in rows])


@bp.post("/customers/<id:customer_id>/capacity-requests")
@documented(
    "Ask sales for more accounts of a class, saying why (contract customers). "
    "There is one open request per class: asking again revises it and answers 200.",
    "capacity",
    ok=out.CAPACITY_REQUEST,
    status=201,
    body=CAPACITY_REQUEST_INPUT,
    errors=(401, 404, 409, 422),
    also={200: (out.CAPACITY_REQUEST, "The open request for the class, revised.")},
)
def capacity_request_create(customer_id: int):
    """201 with a new request; 200 when the customer's open request for the class was revised."""
    data = body.read()
    asked = capacity.request_capacity(
        actor(),
        customer_id,
        service_class=data["service_class"],
        extra_accounts=data["extra_accounts"],
        note=data["note"],
    )
    return jsonify(out.capacity_request(asked.request)), 201 if asked.created else 200


@bp.post("/capacity-requests/<id:request_id>/approve")
@documented(
    "Approve: the allowance grows by `accounts` (by default what was asked); "
    "the body may be omitted (staff).",
    "capacity",
    ok=out.CAPACITY_REQUEST,
    body=CAPACITY_APPROVAL,
    body_required=False,
    errors=WRITE_ERRORS,
)
def capacity_request_approve(request_id: int):
    data = body.read_optional()
    req = capacity.decide(
        actor(), request_id, approve=True, accounts=data.get("accounts"), reason=data.get("reason") or ""
    )
    return jsonify(out.capacity_request(req))


@bp.post("/capacity-requests/<id:request_id>/reject")
@documented(
    "Reject an open request with a reason the customer reads (staff).",
    "capacity",
    ok=out.CAPACITY_REQUEST,
    body=CAPACITY_REJECTION,
    errors=WRITE_ERRORS,
)
def capacity_request_reject(request_id: int):
    # A bodyless call is the service's to refuse, in the same words as a missing reason.
    data = body.read_optional()
    req = capacity.decide(actor(), request_id, approve=False, reason=data.get("reason") or "")
    return jsonify(out.capacity_request(req))


from app.web.api import billing, imports, jobs, mail, migrations  # noqa: E402,F401  (register the domain/mailbox/alias/list, job, billing, import and migration routes)
