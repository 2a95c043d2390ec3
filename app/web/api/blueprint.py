"""The /api/v1 blueprint, its authentication and its error bodies."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.extensions import csrf, db
from app.services import aliases, capacity, domains, imports, jobs, lists, mailboxes
from app.services.access import customer_for
from app.services.errors import Conflict, DomainError, LimitExceeded, ValidationError
from app.services.migration import migrations
from app.web.api import auth, body

bp = Blueprint("api", __name__)
# Safe only because the API reads no cookies: a bearer token cannot be forged cross-site.
csrf.exempt(bp)
# Its routes' "<id:...>" is app.web.RowIdConverter, registered before any blueprint.

PUBLIC_ENDPOINTS = {"api.openapi"}


# Each id a path can carry, and the service lookup that scopes it to the caller.
SCOPED_IDS = {
    "customer_id": customer_for,
    "mailbox_id": mailboxes.get_mailbox,
    "alias_id": aliases.get_alias,
    "list_id": lists.get_list,
    "domain_id": domains.get_domain,
    "request_id": capacity.get_request,
    "job_id": jobs.get_job,
    "import_id": imports.get_import,
    "migration_id": migrations.get_migration,
}


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    refused = auth.authenticate()
    if refused is not None:
        return refused
    # Another customer's id is a 404 before anything else is looked at (the body, the
    # role): a caller learns nothing about what is not theirs. The services decide.
    for name, value in (request.view_args or {}).items():
        SCOPED_IDS[name](auth.actor(), value)
    # A view that takes a file (app.web.accepts_upload) checks its own media types.
    if getattr(current_app.view_functions.get(request.endpoint), "upload_limit", None) is None:
        body.require_json_media_type()
    return None


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError):
    # A refused change may have left a lock bump or half-applied attributes in the session.
    db.session.rollback()
    if isinstance(error, ValidationError):
        return jsonify({"errors": error.errors}), error.status
    body: dict = {"error": error.message}
    if isinstance(error, Conflict) and error.field:
        body["field"] = error.field
    if isinstance(error, LimitExceeded):
        body.update(service_class=error.service_class, allowance=error.allowance, used=error.used)
    return jsonify(body), error.status
