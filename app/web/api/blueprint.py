"""The /api/v1 blueprint, its authentication and its error bodies."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.extensions import csrf, db
from app.services.errors import Conflict, DomainError, LimitExceeded, ValidationError
from app.web.api import auth

bp = Blueprint("api", __name__)
# Safe only because the API reads no cookies: a bearer token cannot be forged cross-site.
csrf.exempt(bp)

PUBLIC_ENDPOINTS = {"api.openapi"}


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    return auth.authenticate()


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
