"""Web doors: blueprints, the page-or-fragment helper, and error rendering."""

from __future__ import annotations

from flask import (
    Flask,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask_babel import format_decimal, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.services.access import Actor
from app.services.errors import DomainError

HTMX_VERSION = "2.0.11"
HTMX_URL = f"https://cdn.jsdelivr.net/npm/htmx.org@{HTMX_VERSION}/dist/htmx.min.js"
HTMX_SRI = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"


def is_fragment_request() -> bool:
    """htmx asked for a piece of a page (not a boosted full navigation)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """Render the full page, or only its fragment for an htmx request.

    The page template includes the fragment template, so both always agree.
    """
    template = fragment if (fragment and is_fragment_request()) else page
    response = make_response(render_template(template, **context), status)
    response.headers.add("Vary", "HX-Request")
    return response


def current_actor(via: str = "web") -> Actor:
    if "actor" not in g:
        g.actor = Actor.for_user(current_user, ip=request.remote_addr, via=via)
    return g.actor


def wants_json() -> bool:
    return request.path.startswith("/api/")


def register_web(app: Flask) -> None:
    from app.web.admin.routes import bp as admin_bp
    from app.web.api.routes import bp as api_bp
    from app.web.auth.routes import bp as auth_bp
    from app.web.portal.routes import bp as portal_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(api_bp, url_prefix="/api/v1")

    from app.services import labels

    # The one way templates write dates and name codes (app/services/labels.py).
    app.add_template_filter(labels.when, "when")
    app.add_template_global(labels.label, "label")
    app.add_template_global(labels.action_label, "action_label")

    @app.context_processor
    def _globals():
        return {
            "brand_name": current_app.config["BRAND_NAME"],
            "htmx_url": HTMX_URL,
            "htmx_sri": HTMX_SRI,
            "current_locale": str(get_locale()),
            "fmt_int": lambda n: format_decimal(n, format="#,##0"),
        }

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError):
        if wants_json():
            body = {"errors": error.errors} if hasattr(error, "errors") else {"error": error.message}
            return jsonify(body), error.status
        return render("error.html", "_error.html", status=error.status, message=error.message), error.status

    @app.errorhandler(CSRFError)
    def _csrf_error(error):
        message = _("La sessione è scaduta o la richiesta non è valida: ricarica la pagina e riprova.")
        if wants_json():
            return jsonify({"error": message}), 400
        return render("error.html", "_error.html", status=400, message=message), 400

    for code, text in (
        (404, _l("Pagina non trovata.")),
        (405, _l("Metodo non consentito.")),
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
        message = str(text)
        if wants_json():
            return jsonify({"error": message}), code
        return render("error.html", "_error.html", status=code, message=message), code

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
