"""The OpenAPI 3 description of /api/v1, written by hand next to the routes it describes.

A test keeps it honest: every API route is here and everything here is a route.
"""

from __future__ import annotations

from app.services import catalog


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: tuple[str, ...] = (), **props) -> dict:
    schema: dict = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


STR = {"type": "string"}
NULLABLE_STR = {"type": ["string", "null"]}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
WHEN = {"type": "string", "format": "date-time"}
POST_POLICY = {
    "type": "string",
    "enum": ["anyone", "customer", "members"],
    "description": "Who may post: anyone; only the customer's own mailboxes, logged in; only the members.",
}
NULLABLE_WHEN = {"type": ["string", "null"], "format": "date-time"}
VAT_DUPLICATE_REASON = {
    **NULLABLE_STR,
    "maxLength": 500,
    "description": "Why a VAT number another customer has is accepted (audited); without it, 409.",
}
ID = {"type": "integer", "readOnly": True}
CLASS_REF = {
    "oneOf": [{"type": "string", "examples": ["Business Mail 5.000 MB", "business mail 5 GB"]}, INT],
    "description": "A class of service by name (the guide's spelling or a variant) or by id.",
}
STATUS = {"type": "string", "enum": ["active", "suspended", "disabled"]}
REQUEST_STATUS = {"type": "string", "enum": ["open", "approved", "rejected"]}

SCHEMAS = {
    "Error": _obj(("error",), error=STR, field=STR),
    "ValidationErrors": _obj(
        ("errors",),
        errors={
            "type": "object",
            "additionalProperties": STR,
            "description": "A message per field; 'body' when the body is not a JSON object.",
        },
    ),
    "LimitExceeded": _obj(
        ("error", "service_class", "allowance", "used"),
        error=STR,
        field=STR,
        service_class=STR,
        allowance=INT,
        used=INT,
    ),
    "ServiceClass": _obj(
        ("id", "name", "type", "quota_mb", "features"),
        id=ID,
        name={**STR, "examples": ["Business Mail 5.000 MB"]},
        type={"type": "string", "enum": [name for _, name, _ in catalog.TYPES]},
        quota_mb={"type": "integer", "enum": list(catalog.SIZES_MB)},
        features={"type": "array", "items": {"type": "string", "enum": list(catalog.FEATURE_LABELS)}},
    ),
    "Allowance": _obj(("service_class", "max_accounts"), service_class=STR, max_accounts=INT),
    "Customer": _obj(
        ("id", "name", "plan", "vat_number", "contact_email", "self_service", "allowances"),
        id=ID,
        name=STR,
        plan={"type": "string", "enum": ["payg", "contract"]},
        vat_number=NULLABLE_STR,
        contact_email=NULLABLE_STR,
        self_service=BOOL,
        allowances={"type": "array", "items": _ref("Allowance")},
        created_at=WHEN,
    ),
    "CustomerInput": _obj(
        ("name", "plan"),
        name={**STR, "maxLength": 200},
        plan={"type": "string", "enum": ["payg", "contract"]},
        vat_number={**NULLABLE_STR, "description": "Partita IVA (11 digits) or an EU VAT number."},
        contact_email=NULLABLE_STR,
        vat_duplicate_reason=VAT_DUPLICATE_REASON,
    ),
    "CustomerPatch": _obj(
        name={**STR, "maxLength": 200},
        plan={"type": "string", "enum": ["payg", "contract"]},
        vat_number=NULLABLE_STR,
        contact_email=NULLABLE_STR,
        vat_duplicate_reason=VAT_DUPLICATE_REASON,
    ),
    "CustomerPage": _obj(
        ("items", "total", "page", "pages"),
        items={"type": "array", "items": _ref("Customer")},
        total=INT,
        page=INT,
        per_page=INT,
        pages=INT,
    ),
    "ContractAllowance": _obj(
        ("service_class", "max_accounts", "used"),
        service_class=STR,
        max_accounts={"type": ["integer", "null"], "description": "null for Pay per Use customers."},
        used=INT,
    ),
    "Contract": _obj(
        ("customer_id", "plan", "self_service", "allowances"),
        customer_id=INT,
        plan=STR,
        self_service=BOOL,
        allowances={"type": "array", "items": _ref("ContractAllowance")},
    ),
    "ContractInput": _obj(
        ("allowances", "self_service"),
        allowances={
            "type": "array",
            "items": _obj(("service_class", "max_accounts"), service_class=CLASS_REF, max_accounts=INT),
            "description": "Replaces every allowance; a class left out (or 0) is no longer allowed.",
        },
        self_service=BOOL,
    ),
    "Domain": _obj(
        ("id", "name", "unicode_name"),
        id=ID,
        customer_id=INT,
        name={**STR, "description": "ASCII (punycode) form, as stored."},
        unicode_name=STR,
        state={
            "type": "string",
            "enum": ["pending", "active"],
            "description": "pending: added by a customer, not served until support approves it; "
            "active: the mail servers serve it.",
        },
        created_at=WHEN,
        activated_at=NULLABLE_WHEN,
    ),
    "DomainInput": _obj(
        ("name",),
        name={**STR, "description": "Unicode or punycode."},
        override_reason={
            **NULLABLE_STR,
            "maxLength": 500,
            "description": "Staff only: add a public mailbox provider's domain anyway, for this reason "
            "(at least 10 characters; kept in the audit trail).",
        },
    ),
    "Mailbox": _obj(
        ("id", "address", "display_name", "service_class", "status", "created_at", "updated_at"),
        id=ID,
        customer_id=INT,
        address=STR,
        unicode_address=STR,
        display_name=STR,
        service_class=STR,
        status=STATUS,
        created_at=WHEN,
        updated_at=WHEN,
    ),
    "MailboxInput": _obj(
        ("address", "password", "service_class"),
        address=STR,
        password={**STR, "minLength": 8, "maxLength": 128, "writeOnly": True},
        display_name={**NULLABLE_STR, "maxLength": 200},
        service_class=CLASS_REF,
    ),
    "MailboxPatch": _obj(
        password={**STR, "minLength": 8, "maxLength": 128, "writeOnly": True},
        display_name={**NULLABLE_STR, "maxLength": 200},
        service_class=CLASS_REF,
        status=STATUS,
    ),
    "MailboxPage": _obj(
        ("items", "total", "page", "pages"),
        items={"type": "array", "items": _ref("Mailbox")},
        total=INT,
        page=INT,
        per_page=INT,
        pages=INT,
    ),
    "Alias": _obj(
        ("id", "address", "target"),
        id=ID,
        customer_id=INT,
        address=STR,
        unicode_address=STR,
        target={**STR, "description": "Address of the mailbox it delivers to."},
        target_id=INT,
        created_at=WHEN,
    ),
    "AliasInput": _obj(
        ("address", "target"),
        address=STR,
        target={"oneOf": [STR, INT], "description": "A mailbox of the same customer: address or id."},
    ),
    "AliasPatch": _obj(("target",), target={"oneOf": [STR, INT]}),
    "DistributionList": _obj(
        ("id", "address", "members"),
        id=ID,
        customer_id=INT,
        address=STR,
        unicode_address=STR,
        description=STR,
        members={"type": "array", "items": STR},
        post_policy=POST_POLICY,
        created_at=WHEN,
    ),
    "DistributionListInput": _obj(
        ("address",),
        address=STR,
        members={
            "type": "array",
            "items": STR,
            "description": "Mailboxes of the customer or outside addresses.",
        },
        description={**NULLABLE_STR, "maxLength": 200},
        post_policy={**POST_POLICY, "default": "customer"},
    ),
    "ListLimits": _obj(
        ("per_list", "per_customer", "external_members"),
        per_list={**INT, "description": "External members allowed in one list."},
        per_customer={**INT, "description": "External members allowed over all the customer's lists."},
        per_list_override={
            "type": ["integer", "null"],
            "description": "Staff's override; null: the default.",
        },
        per_customer_override={"type": ["integer", "null"]},
        external_members={**INT, "description": "External members now, over all lists."},
    ),
    "ListLimitsInput": _obj(
        per_list={"type": ["integer", "null"], "minimum": 0},
        per_customer={"type": ["integer", "null"], "minimum": 0},
    ),
    "DistributionListPatch": _obj(
        members={"type": "array", "items": STR, "description": "Replaces all members."},
        description={**NULLABLE_STR, "maxLength": 200},
        post_policy=POST_POLICY,
    ),
    "CapacityRequest": _obj(
        ("id", "customer_id", "service_class", "extra_accounts", "status"),
        id=ID,
        customer_id=INT,
        service_class=STR,
        extra_accounts={**INT, "description": "How many more accounts the customer asks for."},
        note={**STR, "description": "Why the customer asks."},
        status=REQUEST_STATUS,
        granted_accounts={
            "type": ["integer", "null"],
            "description": "What staff granted (the allowance grew by it); null unless approved.",
        },
        decision_note={**STR, "description": "Staff's reason, shown to the customer; empty if none."},
        created_at=WHEN,
        updated_at={**NULLABLE_WHEN, "description": "When the customer last revised the open request."},
        decided_at=NULLABLE_WHEN,
    ),
    "CapacityRequestInput": _obj(
        ("service_class", "extra_accounts", "note"),
        service_class=CLASS_REF,
        extra_accounts={"type": "integer", "minimum": 1, "maximum": 10000},
        note={**STR, "minLength": 1, "maxLength": 1000, "description": "Why the accounts are needed."},
    ),
    "CapacityApproval": _obj(
        accounts={
            "type": "integer",
            "minimum": 1,
            "maximum": 10000,
            "description": "How many to grant; by default what was asked.",
        },
        reason={**NULLABLE_STR, "maxLength": 1000},
    ),
    "CapacityRejection": _obj(("reason",), reason={**STR, "minLength": 1, "maxLength": 1000}),
}


def _error(description: str, schema: str = "Error") -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


RESPONSES = {
    "Unauthorized": {
        **_error("No bearer token, or an invalid or revoked one."),
        "headers": {"WWW-Authenticate": {"schema": STR}},
    },
    "Forbidden": _error("Reserved to support staff, or self-administration is not enabled."),
    "NotFound": _error("Missing, or outside the caller's customer (both look the same)."),
    "Unprocessable": _error("Bad input: a message per field.", "ValidationErrors"),
    "Conflict": _error("Clashes with existing data (a duplicate address, say)."),
    "LimitExceeded": {
        "description": "A contract allowance is used up, or another conflict.",
        "content": {"application/json": {"schema": {"oneOf": [_ref("LimitExceeded"), _ref("Error")]}}},
    },
    "UnsupportedMediaType": _error("A request body must be sent as Content-Type: application/json."),
}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    tag: str,
    *,
    ok: dict | None = None,
    status: str = "200",
    body: str | None = None,
    errors: tuple[str, ...] = ("401", "404"),
    params: tuple[dict, ...] = (),
) -> dict:
    names = {
        "401": "Unauthorized",
        "403": "Forbidden",
        "404": "NotFound",
        "409": "Conflict",
        "422": "Unprocessable",
    }
    responses: dict = {status: ok if ok is not None else {"description": "Deleted."}}
    for code in errors:
        name = "LimitExceeded" if code == "409L" else names[code]
        responses[code[:3]] = {"$ref": f"#/components/responses/{name}"}
    op: dict = {"summary": summary, "tags": [tag], "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
        responses["415"] = {"$ref": "#/components/responses/UnsupportedMediaType"}
    if params:
        op["parameters"] = list(params)
    return op


def _also(op: dict, status: str, response: dict) -> dict:
    """An operation with one more success answer (a create that may revise instead)."""
    return {**op, "responses": {status: response, **op["responses"]}}


def _body_optional(op: dict) -> dict:
    return {**op, "requestBody": {**op["requestBody"], "required": False}}


def _path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PAGING = (
    _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number."),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Rows per page."),
)
REQUEST_FILTER = (_query("status", REQUEST_STATUS, "Only requests in this state."),)


def _arr(name: str) -> dict:
    return {"type": "array", "items": _ref(name)}


def _paths() -> dict:
    c = {"parameters": [_path_param("customer_id")]}
    write = ("401", "403", "404", "422", "409")
    return {
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document.",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": _json({"type": "object"})},
            }
        },
        "/api/v1/service-classes": {
            "get": _op(
                "The 32 classes of service, in catalogue order.",
                "catalogue",
                ok=_json(_arr("ServiceClass")),
                errors=("401",),
            )
        },
        "/api/v1/customers": {
            "get": _op(
                "Customers: all of them for staff, the caller's own for a customer admin.",
                "customers",
                ok=_json(_ref("CustomerPage")),
                errors=("401", "422"),
                params=(_query("q", STR, "Search name, VAT number, contact email (staff)."), *PAGING),
            ),
            "post": _op(
                "Create a customer (staff). A VAT number another customer has is a 409 "
                "unless `vat_duplicate_reason` says why.",
                "customers",
                ok=_json(_ref("Customer"), "Created."),
                status="201",
                body="CustomerInput",
                errors=("401", "403", "409", "422"),
            ),
        },
        "/api/v1/customers/{customer_id}": {
            **c,
            "get": _op("One customer.", "customers", ok=_json(_ref("Customer"))),
            "patch": _op(
                "Change a customer's data or plan (staff).",
                "customers",
                ok=_json(_ref("Customer")),
                body="CustomerPatch",
                errors=write,
            ),
        },
        "/api/v1/customers/{customer_id}/contract": {
            **c,
            "get": _op(
                "The contract: allowances per class with the accounts in use.",
                "contracts",
                ok=_json(_ref("Contract")),
            ),
            "put": _op(
                "Replace the allowances and the self-administration flag (staff).",
                "contracts",
                ok=_json(_ref("Contract")),
                body="ContractInput",
                errors=write,
            ),
        },
        "/api/v1/customers/{customer_id}/domains": {
            **c,
            "get": _op("A customer's domains.", "domains", ok=_json(_arr("Domain"))),
            "post": _op(
                "Add a domain (Unicode names are stored as punycode). A customer admin's domain is "
                "pending until support approves it; staff's is active at once. Refused: the provider's "
                "own domains, public mailbox providers (staff may give override_reason), names that are "
                "not registrable, and names already served (a customer hears only 'not available').",
                "domains",
                ok=_json(_ref("Domain"), "Created."),
                status="201",
                body="DomainInput",
                errors=write,
            ),
        },
        "/api/v1/domains/{domain_id}": {
            "parameters": [_path_param("domain_id")],
            "get": _op("One domain.", "domains", ok=_json(_ref("Domain"))),
            "delete": _op(
                "Remove a domain that no address uses any more.",
                "domains",
                status="204",
                errors=("401", "403", "404", "409"),
            ),
        },
        "/api/v1/domains/{domain_id}/approve": {
            "parameters": [_path_param("domain_id")],
            "post": _op(
                "Approve a pending domain: it becomes active and the mail servers serve it (staff). "
                "Approving an active domain changes nothing.",
                "domains",
                ok=_json(_ref("Domain")),
                errors=("401", "403", "404", "422"),
            ),
        },
        "/api/v1/domains": {
            "get": _op(
                "Every customer's domains in one state, oldest first (staff).",
                "domains",
                ok=_json(_arr("Domain")),
                errors=("401", "403", "422"),
                params=(
                    _query(
                        "state",
                        {"type": "string", "enum": ["pending"], "default": "pending"},
                        "Only domains in this state.",
                    ),
                ),
            )
        },
        "/api/v1/customers/{customer_id}/mailboxes": {
            **c,
            "get": _op(
                "Search a customer's mailboxes, one page at a time.",
                "mailboxes",
                ok=_json(_ref("MailboxPage")),
                errors=("401", "404", "422"),
                params=(
                    _query("q", STR, "Part of the address or display name."),
                    _query("status", STATUS, "Only mailboxes in this state."),
                    _query("service_class", STR, "Only this class of service (name or id)."),
                    *PAGING,
                ),
            ),
            "post": _op(
                "Create a mailbox; refused with 409 when the contract's allowance is used up.",
                "mailboxes",
                ok=_json(_ref("Mailbox"), "Created."),
                status="201",
                body="MailboxInput",
                errors=("401", "403", "404", "422", "409L"),
            ),
        },
        "/api/v1/mailboxes/{mailbox_id}": {
            "parameters": [_path_param("mailbox_id")],
            "get": _op("One mailbox.", "mailboxes", ok=_json(_ref("Mailbox"))),
            "patch": _op(
                "Change display name, password, class (within the contract) or status.",
                "mailboxes",
                ok=_json(_ref("Mailbox")),
                body="MailboxPatch",
                errors=("401", "403", "404", "422", "409L"),
            ),
            "delete": _op(
                "Delete a mailbox with its aliases and list memberships.",
                "mailboxes",
                status="204",
                errors=("401", "403", "404"),
            ),
        },
        "/api/v1/customers/{customer_id}/aliases": {
            **c,
            "get": _op(
                "A customer's aliases.",
                "aliases",
                ok=_json(_arr("Alias")),
                params=(_query("q", STR, "Part of the address."),),
            ),
            "post": _op(
                "Create an alias to one of the customer's mailboxes.",
                "aliases",
                ok=_json(_ref("Alias"), "Created."),
                status="201",
                body="AliasInput",
                errors=write,
            ),
        },
        "/api/v1/aliases/{alias_id}": {
            "parameters": [_path_param("alias_id")],
            "get": _op("One alias.", "aliases", ok=_json(_ref("Alias"))),
            "patch": _op(
                "Point an alias to another mailbox.",
                "aliases",
                ok=_json(_ref("Alias")),
                body="AliasPatch",
                errors=("401", "403", "404", "422"),
            ),
            "delete": _op("Delete an alias.", "aliases", status="204", errors=("401", "403", "404")),
        },
        "/api/v1/customers/{customer_id}/lists": {
            **c,
            "get": _op(
                "A customer's distribution lists.",
                "lists",
                ok=_json(_arr("DistributionList")),
                params=(_query("q", STR, "Part of the address."),),
            ),
            "post": _op(
                "Create a distribution list.",
                "lists",
                ok=_json(_ref("DistributionList"), "Created."),
                status="201",
                body="DistributionListInput",
                errors=write,
            ),
        },
        "/api/v1/customers/{customer_id}/list-limits": {
            **c,
            "get": _op(
                "Limits on external list members for a customer, and what is used.",
                "lists",
                ok=_json(_ref("ListLimits")),
            ),
            "put": _op(
                "Staff: override the limits on external list members (null: the default).",
                "lists",
                ok=_json(_ref("ListLimits")),
                body="ListLimitsInput",
                errors=("401", "403", "404", "422"),
            ),
        },
        "/api/v1/lists/{list_id}": {
            "parameters": [_path_param("list_id")],
            "get": _op("One distribution list.", "lists", ok=_json(_ref("DistributionList"))),
            "patch": _op(
                "Replace the members and/or the description.",
                "lists",
                ok=_json(_ref("DistributionList")),
                body="DistributionListPatch",
                errors=("401", "403", "404", "422"),
            ),
            "delete": _op("Delete a distribution list.", "lists", status="204", errors=("401", "403", "404")),
        },
        "/api/v1/capacity-requests": {
            "get": _op(
                "Every customer's capacity requests, newest first (staff).",
                "capacity",
                ok=_json(_arr("CapacityRequest")),
                errors=("401", "403", "422"),
                params=REQUEST_FILTER,
            ),
        },
        "/api/v1/customers/{customer_id}/capacity-requests": {
            **c,
            "get": _op(
                "A customer's capacity requests, newest first.",
                "capacity",
                ok=_json(_arr("CapacityRequest")),
                errors=("401", "404", "422"),
                params=REQUEST_FILTER,
            ),
            "post": _also(
                _op(
                    "Ask sales for more accounts of a class, saying why (contract customers). "
                    "There is one open request per class: asking again revises it and answers 200.",
                    "capacity",
                    ok=_json(_ref("CapacityRequest"), "Created."),
                    status="201",
                    body="CapacityRequestInput",
                    errors=("401", "404", "422", "409"),
                ),
                "200",
                _json(_ref("CapacityRequest"), "The open request for the class, revised."),
            ),
        },
        "/api/v1/capacity-requests/{request_id}/approve": {
            "parameters": [_path_param("request_id")],
            "post": _body_optional(
                _op(
                    "Approve: the allowance grows by `accounts` (by default what was asked); "
                    "the body may be omitted (staff).",
                    "capacity",
                    ok=_json(_ref("CapacityRequest")),
                    body="CapacityApproval",
                    errors=("401", "403", "404", "409", "422"),
                )
            ),
        },
        "/api/v1/capacity-requests/{request_id}/reject": {
            "parameters": [_path_param("request_id")],
            "post": _op(
                "Reject an open request with a reason the customer reads (staff).",
                "capacity",
                ok=_json(_ref("CapacityRequest")),
                body="CapacityRejection",
                errors=("401", "403", "404", "409", "422"),
            ),
        },
    }


# Background jobs (app/web/api/jobs.py): the schema and the paths, in one block.
SCHEMAS["Job"] = _obj(
    ("id", "kind", "state", "done", "total", "message", "result"),
    id=ID,
    kind={**STR, "examples": ["quota_refresh"]},
    state={"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
    done={**INT, "description": "Steps done so far."},
    total={"type": ["integer", "null"], "description": "Steps in all, when known."},
    message={**STR, "description": "What it is doing, or why it failed or stopped (for people)."},
    result={"type": ["object", "null"], "description": "What it did, once done (depends on the kind)."},
)
JOB_PATHS = {
    "/api/v1/jobs/{job_id}": {
        "parameters": [_path_param("job_id")],
        "get": _op(
            "One background job: state, progress, outcome. Another customer's job is a 404.",
            "jobs",
            ok=_json(_ref("Job")),
        ),
    },
    "/api/v1/customers/{customer_id}/jobs": {
        "parameters": [_path_param("customer_id")],
        "get": _op(
            "A customer's background jobs, newest first.",
            "jobs",
            ok=_json(_arr("Job")),
            errors=("401", "404", "422"),
            params=(
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    "At most this many.",
                ),
            ),
        ),
    },
    "/api/v1/customers/{customer_id}/quota-refresh": {
        "parameters": [_path_param("customer_id")],
        "post": {
            **_op(
                "Read every mailbox's usage from the mail server again, in the background. Answers 202 with "
                "the job (the one already queued or running, if any) and its URL in Location.",
                "jobs",
                ok={**_json(_ref("Job"), "Accepted."), "headers": {"Location": {"schema": STR}}},
                status="202",
            ),
            # Nothing to send: an empty object, or no body at all.
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
            },
        },
    },
}


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Control panel API",
            "version": "1.0.0",
            "description": (
                "Customers, contracts, domains, mailboxes, aliases and distribution lists. "
                "Authenticate with `Authorization: Bearer <token>` (`flask tokens create EMAIL` "
                "or the account page). Staff see every customer; a customer admin only their own, "
                "and anything else answers 404."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": RESPONSES,
        },
        "paths": {**_paths(), **JOB_PATHS},
    }
