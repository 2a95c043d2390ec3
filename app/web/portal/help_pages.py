"""Help pages: client settings and FAQ, the same for every customer."""

from __future__ import annotations

from flask import current_app

from app.web.portal import bp
from app.web.respond import render


def _help_context() -> dict:
    config = current_app.config
    host = config["PROVIDER_MAIL_HOST"]
    return {
        "mail_host": host,
        "mx_host": config["PROVIDER_MX_HOST"],
        "webmail_url": config.get("WEBMAIL_URL") or f"https://{host}",
        "sales_email": config.get("SALES_EMAIL"),
    }


@bp.route("/help/client-settings")
def client_settings():
    return render("portal/client_settings.html", **_help_context())


@bp.route("/help/faq")
def faq():
    return render("portal/faq.html", **_help_context())
