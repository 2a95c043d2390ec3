"""The public documents mail programs fetch to set themselves up (no sign-in, no CSRF token:
a mail program has neither). What they say comes from app/services/autoconfig.py.

Thunderbird asks https://autoconfig.<domain>/mail/config-v1.1.xml, then
https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml, and also autoconfig.<the domain of
its MX host> with ?emailaddress=; Outlook POSTs to https://autodiscover.<domain>/autodiscover/
autodiscover.xml, or to the host of the domain's _autodiscover._tcp SRV record (docs/autoconfig.md).
"""

from __future__ import annotations

from flask import Blueprint, make_response, request
from werkzeug.wrappers import Response

from app.extensions import csrf
from app.services import autoconfig
from app.services.autoconfig import TooManyRequests
from app.services.errors import NotFound

bp = Blueprint("autoconfig", __name__)
csrf.exempt(bp)

XML = "application/xml; charset=utf-8"


@bp.before_request
def _bounded():
    try:
        autoconfig.allow_request(request.remote_addr)
    except TooManyRequests as e:
        response = make_response(e.message + "\n", 429)
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        response.headers["Retry-After"] = str(e.retry_after)
        return response
    return None


def _not_found() -> Response:
    response = make_response("", 404)
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    return response


@bp.route("/mail/config-v1.1.xml")
@bp.route("/.well-known/autoconfig/mail/config-v1.1.xml", endpoint="thunderbird_well_known")
def thunderbird():
    try:
        domain = autoconfig.requested_domain(request.args.get("emailaddress", "")[:320], request.host)
    except NotFound:
        return _not_found()
    response = make_response(autoconfig.thunderbird_config(domain))
    response.headers["Content-Type"] = XML
    response.headers["Cache-Control"] = f"public, max-age={autoconfig.CACHE_SECONDS}"
    return response


@bp.route("/autodiscover/autodiscover.xml", methods=["POST"])
@bp.route("/Autodiscover/Autodiscover.xml", methods=["POST"], endpoint="outlook_capitalised")
@bp.route("/AutoDiscover/AutoDiscover.xml", methods=["POST"], endpoint="outlook_camel_case")
def outlook():
    if (request.content_length or 0) > autoconfig.MAX_REQUEST_BYTES:
        body = autoconfig.autodiscover_error(autoconfig.INVALID_REQUEST)
        status = 413
    else:
        # One byte more than allowed tells a body without Content-Length that is too long.
        raw = request.stream.read(autoconfig.MAX_REQUEST_BYTES + 1)
        body, status = autoconfig.autodiscover(raw)
    response = make_response(body, status)
    response.headers["Content-Type"] = XML
    response.headers["Cache-Control"] = "no-store"
    return response
