"""The OpenAPI 3.1 description of /api/v1, built from the routes and what they validate.

Nothing here is written twice: the paths are the API blueprint's URL rules, each
operation is the `@documented(...)` declaration on its view, the request schemas
are the body Shapes and query Params the view checks with (app/web/api/body.py),
the response schemas are the Shapes declared next to the serializers, and the
codes of an enum come from app/models/enums.py. A view without `@documented`
makes `build()` fail, and so the tests.

To document a new endpoint (in a new module too, e.g. app/web/api/jobs.py):

    from app.web.api import body
    from app.web.api.blueprint import bp
    from app.web.api.openapi import array_of, documented

    # An answer's shape, next to its serializer (every field is required in an answer).
    JOB = body.response(
        "Job",
        id=body.integer(read_only=True),
        kind=body.text(),
        state=body.choice(JobState),          # an enum of app/models/enums.py
        done=body.integer(),
        total=body.integer(nullable=True),
        message=body.text(),
        result=body.any_json(nullable=True),
    )
    JOB_FILTERS = (body.Param("state", enum=JobState, description="Only jobs in this state."),)

    @bp.get("/customers/<id:customer_id>/jobs")
    @documented("A customer's jobs, newest first.", "jobs", ok=array_of(JOB), query=JOB_FILTERS)
    def customer_jobs(customer_id: int):
        args = body.query()                   # checks exactly JOB_FILTERS: {"state": ...}
        ...

    @bp.post("/customers/<id:customer_id>/quota-refresh")
    @documented("Start reading every mailbox's usage.", "jobs", ok=JOB, status=202, errors=(401, 403, 404, 409))
    def quota_refresh(customer_id: int): ...

`@documented` goes below the route decorator. Its arguments (see Operation): the summary
and a tag; ok, the answer (a Shape, array_of(Shape), or None for no content) with its
status; errors, the error statuses (401, 403, 404, 409, 413, 422, 503), limit=True when a 409 may
be an allowance used up; also={200: (Shape, "words")} for a second success answer. A
request body is declared with body=body.shape("JobInput", field=body.text(required=True,
max_len=...), ...) (body_required=False if it may be left out) and read with body.read(),
which checks exactly that shape and answers 422 with a message per field. A view that
takes a file declares upload=(media types of a raw body) instead (app/web/api/imports.py),
and one that answers with a file, ok_media="its media type". A path's ids
need no declaration: they come from the rule (<id:customer_id> is an integer >= 1), and
blueprint.SCOPED_IDS must know how to scope each one. The module must be imported by
app/web/api/routes.py (as mail.py is) so that its routes exist; an enum needs its words
in app/services/labels.py (and INVALID, if a caller may send it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import Flask, current_app

from app.web.api.body import Field, Param, Shape

# The blueprint's endpoints are "api.<view>"; only these are described.
PREFIX = "api."
# Converters of the URL rules and the JSON type of what they match.
CONVERTERS = {"id": {"type": "integer", "minimum": 1}, "int": {"type": "integer"}}


@dataclass(frozen=True)
class ArrayOf:
    """An answer that is a JSON array of one shape."""

    shape: Shape


def array_of(shape: Shape) -> ArrayOf:
    return ArrayOf(shape)


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    ok: Shape | ArrayOf | dict | None = None  # None: no content (204)
    status: int = 200
    ok_description: str | None = None
    body: Shape | None = None
    body_required: bool = True
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = (401, 404)
    # A 409 may be a contract's allowance used up (the LimitExceeded body).
    limit: bool = False
    # More success answers: status -> (shape, description).
    also: dict[int, tuple[Shape | ArrayOf, str]] = field(default_factory=dict)
    # A file as the request body: multipart/form-data with a part named "file", or a raw body
    # of one of these media types (the view is made with app.web.accepts_upload).
    upload: tuple[str, ...] = ()
    # The success answer is a file of this media type, not JSON.
    ok_media: str | None = None


def documented(summary: str, tag: str, **kw):
    """Declares what a view of the API takes and answers; see this module's docstring."""
    operation = Operation(summary, tag, **kw)

    def decorate(view):
        view.__openapi__ = operation
        return view

    return decorate


class Undocumented(Exception):
    """An API route whose view has no @documented declaration."""


# Field -> JSON Schema


def schema(f: Field, components: dict) -> dict:
    if f.kind == "object":
        out: dict = _ref(f.shape, components)
        if f.nullable:
            out = {"oneOf": [out, {"type": "null"}]}
    elif f.kind == "json":
        out = {}
    elif f.kind == "name_or_id":
        out = {"oneOf": [{"type": "string", **({"examples": list(f.examples)} if f.examples else {})}]}
        out["oneOf"].append({"type": "integer"})
        if f.nullable:
            out["oneOf"].append({"type": "null"})
    else:
        json_type = {"text": "string", "datetime": "string", "list": "array"}.get(f.kind, f.kind)
        out = {"type": [json_type, "null"] if f.nullable else json_type}
        if f.format:
            out["format"] = f.format
        if f.kind == "list":
            out["items"] = schema(f.items, components)
        if f.codes is not None:
            out["enum"] = [*f.codes, None] if f.nullable else list(f.codes)
        for key, value in (
            ("minLength", f.min_len),
            ("maxLength", f.max_len),
            ("minimum", f.minimum),
            ("maximum", f.maximum),
        ):
            if value is not None:
                out[key] = value
        if f.examples:
            out["examples"] = list(f.examples)
    if f.description:
        out["description"] = f.description
    if f.default is not None:
        out["default"] = f.default
    if f.read_only:
        out["readOnly"] = True
    if f.write_only:
        out["writeOnly"] = True
    return out


def object_schema(shape: Shape, components: dict) -> dict:
    out: dict = {
        "type": "object",
        "properties": {name: schema(f, components) for name, f in shape.fields.items()},
        "additionalProperties": False,
    }
    if shape.required:
        out["required"] = list(shape.required)
    if shape.description:
        out["description"] = shape.description
    return out


def _ref(shape: Shape, components: dict) -> dict:
    """A shape is described once, under components/schemas, and referred to by name."""
    if shape.name not in components:
        components[shape.name] = {}  # a placeholder first: a shape may (one day) contain itself
        components[shape.name] = object_schema(shape, components)
    elif components[shape.name] and components[shape.name] != object_schema(shape, components):
        raise ValueError(f"two different shapes are named {shape.name}")
    return {"$ref": f"#/components/schemas/{shape.name}"}


def _answer_schema(ok: Shape | ArrayOf | dict, components: dict) -> dict:
    if isinstance(ok, ArrayOf):
        return {"type": "array", "items": _ref(ok.shape, components)}
    if isinstance(ok, Shape):
        return _ref(ok, components)
    return ok


def _param(p: Param) -> dict:
    f = Field(
        "integer" if p.kind == "integer" else "text",
        minimum=p.minimum,
        maximum=p.maximum,
        enum=p.enum,
        default=p.default,
        max_len=None if p.kind == "integer" else p.max_len,
    )
    out = {"name": p.name, "in": "query", "required": False, "schema": schema(f, {})}
    if p.description:
        out["description"] = p.description
    return out


# Errors, as the blueprint's handlers write them (app/web/api/blueprint.py).

STR = {"type": "string"}
INT = {"type": "integer"}
ERROR_SCHEMAS = {
    "Error": {
        "type": "object",
        "properties": {"error": STR, "field": STR},
        "required": ["error"],
        "additionalProperties": False,
    },
    "ValidationErrors": {
        "type": "object",
        "properties": {
            "errors": {
                "type": "object",
                "additionalProperties": STR,
                "description": "A message per field ('allowances.0.max_accounts' inside a list); "
                "'body' when the body is not a JSON object.",
            }
        },
        "required": ["errors"],
        "additionalProperties": False,
    },
    "LimitExceeded": {
        "type": "object",
        "properties": {"error": STR, "field": STR, "service_class": STR, "allowance": INT, "used": INT},
        "required": ["error", "service_class", "allowance", "used"],
        "additionalProperties": False,
    },
}


def _error(description: str, schema_name: str = "Error") -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


RESPONSES = {
    "Unauthorized": {
        **_error("No bearer token, or an invalid or revoked one."),
        "headers": {"WWW-Authenticate": {"schema": STR}},
    },
    "Forbidden": _error("Reserved to support staff, or self-administration is not enabled."),
    "NotFound": _error("Missing, or outside the caller's customer (both look the same)."),
    "Unprocessable": _error("Bad input: a message per field.", "ValidationErrors"),
    "Conflict": _error("Clashes with existing data (a duplicate address, say)."),
    "Unavailable": _error("The job queue cannot be reached: nothing was started; try again later."),
    "LimitExceeded": {
        "description": "A contract allowance is used up, or another conflict.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/LimitExceeded"},
                        {"$ref": "#/components/schemas/Error"},
                    ]
                }
            }
        },
    },
    "UnsupportedMediaType": _error("A request body must be sent as Content-Type: application/json."),
    "UnsupportedUpload": _error(
        "The file must be sent as multipart/form-data (a part named file) or as a body of an accepted type."
    ),
    "TooLarge": _error("The file is larger than the limit, which the message states."),
}
# What a change may meet: no token, not allowed, not found, a clash, bad input.
WRITE_ERRORS = (401, 403, 404, 409, 422)
ERROR_RESPONSES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "TooLarge",
    422: "Unprocessable",
    503: "Unavailable",
}


def _json(schema_: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema_}}}


def operation(endpoint: str, op: Operation, public: bool, components: dict) -> dict:
    default_words = {201: "Created.", 202: "Accepted.", 204: "Deleted."}.get(op.status, "OK")
    words = op.ok_description or default_words
    if op.ok_media:
        ok_answer = {"description": words, "content": {op.ok_media: {"schema": _file(op.ok_media)}}}
    elif op.ok is None:
        ok_answer = {"description": words}
    else:
        ok_answer = _json(_answer_schema(op.ok, components), words)
    responses: dict = {str(op.status): ok_answer}
    for status, (shape, description) in op.also.items():
        responses[str(status)] = _json(_answer_schema(shape, components), description)
    for status in op.errors:
        name = "LimitExceeded" if status == 409 and op.limit else ERROR_RESPONSES[status]
        responses[str(status)] = {"$ref": f"#/components/responses/{name}"}
    out: dict = {"operationId": endpoint.removeprefix(PREFIX), "summary": op.summary, "tags": [op.tag]}
    if op.query:
        out["parameters"] = [_param(p) for p in op.query]
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(op.body, components)}},
        }
        responses["415"] = {"$ref": "#/components/responses/UnsupportedMediaType"}
    if op.upload:
        out["requestBody"] = {"required": True, "content": _upload_content(op.upload)}
        responses["415"] = {"$ref": "#/components/responses/UnsupportedUpload"}
    if public:
        out["security"] = []
    out["responses"] = dict(sorted(responses.items()))
    return out


def _file(media_type: str) -> dict:
    return {"type": "string", "contentMediaType": media_type}


def _upload_content(media_types: tuple[str, ...]) -> dict:
    form = {
        "type": "object",
        "properties": {
            "file": {**_file("application/octet-stream"), "description": "The file, with its name."}
        },
        "required": ["file"],
    }
    return {"multipart/form-data": {"schema": form}, **{m: {"schema": _file(m)} for m in media_types}}


# "<id:mailbox_id>", "<int(min=1):n>", "<name>" in a rule
_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def _path(rule: str) -> tuple[str, list[dict]]:
    """'/api/v1/mailboxes/<id:mailbox_id>' -> '/api/v1/mailboxes/{mailbox_id}' and its parameters."""
    params = [
        {
            "name": m["name"],
            "in": "path",
            "required": True,
            "schema": dict(CONVERTERS.get(m["converter"] or "", STR)),
        }
        for m in _VARIABLE.finditer(rule)
    ]
    return _VARIABLE.sub(lambda m: "{" + m["name"] + "}", rule), params


def build(app: Flask) -> dict:
    """The document for app's API routes; raises Undocumented if a route's view declares nothing."""
    from app.web.api.blueprint import PUBLIC_ENDPOINTS

    components: dict = dict(ERROR_SCHEMAS)
    paths: dict = {}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(PREFIX):
            continue
        op = getattr(app.view_functions[rule.endpoint], "__openapi__", None)
        if op is None:
            missing.append(rule.endpoint)
            continue
        path, params = _path(rule.rule)
        item = paths.setdefault(path, {"parameters": params} if params else {})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            item[method.lower()] = operation(rule.endpoint, op, rule.endpoint in PUBLIC_ENDPOINTS, components)
    if missing:
        raise Undocumented(f"API views without @documented: {', '.join(sorted(missing))}")
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
            "schemas": dict(sorted(components.items())),
            "responses": RESPONSES,
        },
        "paths": paths,
    }


def document() -> dict:
    return build(current_app)
