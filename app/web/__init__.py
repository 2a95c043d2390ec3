"""The web doors: their blueprints, the checks every request passes, and error pages.

One package per area, each a blueprint whose __init__ imports one module per resource:
auth/ (login, account), portal/ (customers), admin/ (support staff), api/ (JSON).
Replies to forms go through app.web.respond; what templates can call, app.web.templating.
"""

from __future__ import annotations

from flask import Flask, current_app, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.routing import IntegerConverter

from app.services.access import Actor
from app.services.errors import DomainError
from app.services.fields import MAX_ROW_ID
from app.web.respond import is_fragment_request, render

HTMX_VERSION = "2.0.11"
HTMX_URL = f"https://cdn.jsdelivr.net/npm/htmx.org@{HTMX_VERSION}/dist/htmx.min.js"
HTMX_SRI = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"


def current_actor(via: str = "web") -> Actor:
    if "actor" not in g:
        g.actor = Actor.for_user(current_user, ip=request.remote_addr, via=via)
    return g.actor


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _numbers_up_to(limit: int) -> str:
    """A regex matching the decimal numbers 1..limit, written without leading zeros."""
    digits = str(limit)
    shorter = [rf"[1-9]\d{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    same_length = [
        digits[:i] + f"[{'1' if i == 0 else '0'}-{int(d) - 1}]" + rf"\d{{{len(digits) - i - 1}}}"
        for i, d in enumerate(digits)
        if int(d) > (1 if i == 0 else 0)
    ]
    return "(?:" + "|".join([*shorter, *same_length, digits]) + ")"


class RowIdConverter(IntegerConverter):
    """An id in a path, within the databases' integer range (PostgreSQL's is 32-bit).

    A bigger number cannot name a row: it is a plain 404, never a driver error. The
    range is in the regex, not only in to_python, because werkzeug answers 405 rather
    than 404 when a rule matches the path but its converter then refuses the value.
    """

    regex = _numbers_up_to(MAX_ROW_ID)

    def __init__(self, map, *args, **kwargs):
        super().__init__(map, min=1, max=MAX_ROW_ID)


# Form fields may hold line breaks and tabs (a textarea of list members); nothing else below
# U+0020 is ever typed, and PostgreSQL refuses NUL in text outright.
_FORM_CONTROL = frozenset(chr(c) for c in (*range(32), 127)) - {"\t", "\n", "\r"}
_QUERY_CONTROL = frozenset(chr(c) for c in (*range(32), 127))


def _offending(values, banned: frozenset) -> list[str]:
    """Names of the fields whose name or a value holds a banned character."""
    return [
        name[:64].translate({ord(c): "?" for c in banned})
        for name, value in values.items(multi=True)
        if not _QUERY_CONTROL.isdisjoint(name) or not banned.isdisjoint(value)
    ]


def refuse_control_characters():
    """before_request: one place where NUL and control characters stop, for every door.

    Checked on the query string and the form (names and values) before any view reads
    them, so no route can forget; JSON bodies are checked by app.web.api.body.
    """
    bad = _offending(request.args, _QUERY_CONTROL) + _offending(request.form, _FORM_CONTROL)
    if not bad:
        return None
    # 422 on both doors, as when a service refuses a field: the content, not the request's form, is wrong.
    if wants_json():
        return jsonify({"errors": dict.fromkeys(bad, _("Contiene caratteri non ammessi."))}), 422
    message = _(
        "Contiene caratteri non ammessi (caratteri di controllo, come il carattere nullo): correggi e riprova."
    )
    return render("error.html", "_error.html", status=422, message=message)


# Room for the multipart envelope around an uploaded file (boundaries, headers, the CSRF field).
UPLOAD_ENVELOPE = 1024 * 1024


def accepts_upload(limit_key: str, too_large):
    """A view that takes a file of up to config[limit_key] bytes: its request may exceed the app's
    MAX_CONTENT_LENGTH by that much, and past it `too_large()` answers (the limit in words; None:
    the plain 413 page). Set before any before_request reads the form."""

    def decorate(view):
        view.upload_limit = limit_key
        view.upload_too_large = too_large
        return view

    return decorate


def _upload_view():
    return current_app.view_functions.get(request.endpoint) if request.endpoint else None


def _raise_upload_limit(endpoint, values):
    key = getattr(_upload_view(), "upload_limit", None)
    if key:
        request.max_content_length = current_app.config[key] + UPLOAD_ENVELOPE


# Our pages load scripts and styles from our origin only, plus the one pinned htmx file.
# No inline script anywhere (htmx's hx-on would need eval: listeners live in static/js).
# Inline style *attributes* stay allowed: the usage bars' widths are data, and a style
# attribute cannot run script; <style> elements are refused (htmx's own is configured off).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        f"script-src 'self' {HTMX_URL}",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Only where the panel is served over TLS: a laptop run on http://127.0.0.1 must not pin it.
HSTS = "max-age=31536000; includeSubDomains"


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config["ENV_NAME"] not in {"development", "testing"}:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def register_web(app: Flask) -> None:
    from app.web.admin import bp as admin_bp
    from app.web.api.routes import bp as api_bp
    from app.web.auth import bp as auth_bp
    from app.web.autoconfig import bp as autoconfig_bp
    from app.web.portal import bp as portal_bp
    from app.web.templating import register_templating

    # Every route's ids, "<int:...>" and the API's "<id:...>" alike, are bounded: set before
    # the blueprints add their rules, which look their converters up when added.
    app.url_map.converters["int"] = RowIdConverter
    app.url_map.converters["id"] = RowIdConverter
    app.url_value_preprocessor(_raise_upload_limit)
    app.before_request(refuse_control_characters)
    app.after_request(_security_headers)

    app.register_blueprint(auth_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(autoconfig_bp)  # public: mail programs set themselves up

    register_templating(app, HTMX_URL, HTMX_SRI)

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError):
        if wants_json():
            body = {"errors": error.errors} if hasattr(error, "errors") else {"error": error.message}
            return jsonify(body), error.status
        return render("error.html", "_error.html", status=error.status, message=error.message)

    @app.errorhandler(CSRFError)
    def _csrf_error(error):
        message = _("La sessione è scaduta o la richiesta non è valida: ricarica la pagina e riprova.")
        if wants_json():
            return jsonify({"error": message}), 400
        return render("error.html", "_error.html", status=400, message=message)

    for code, text in (
        (404, _l("Pagina non trovata.")),
        (405, _l("Metodo non consentito.")),
        (413, _l("La richiesta è troppo grande.")),
        (429, _l("Troppi tentativi: attendi un minuto e riprova.")),
    ):
        app.register_error_handler(code, _http_error(code, text))

    @app.errorhandler(500)
    def _server_error(error):
        message = _("Si è verificato un errore imprevisto. Il supporto tecnico è stato avvisato.")
        if wants_json():
            return jsonify({"error": message}), 500
        return render_template("error.html", message=message), 500


def _http_error(code: int, text: str):
    def handler(error):
        too_large = getattr(_upload_view(), "upload_too_large", None) if code == 413 else None
        reply = too_large() if too_large is not None else None
        if reply is not None:
            return reply
        message = str(text)
        if wants_json():
            return jsonify({"error": message}), code
        return render("error.html", "_error.html", status=code, message=message)

    return handler


def staff_required(view):
    """Support staff only. Anyone else gets the same 404 as for a missing page."""
    from functools import wraps

    from flask import abort
    from flask_login import login_required

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_staff:
            abort(404)
        return view(*args, **kwargs)

    wrapper.permission = "staff"
    return wrapper


__all__ = [
    "HTMX_URL",
    "accepts_upload",
    "HTMX_VERSION",
    "current_actor",
    "is_fragment_request",
    "register_web",
    "render",
    "staff_required",
    "wants_json",
]
