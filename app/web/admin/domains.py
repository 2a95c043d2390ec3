"""Domains waiting for support: every customer's pending domains, approved in place."""

from __future__ import annotations

from flask import current_app, url_for
from flask_babel import gettext as _

from app.services import audit, domains
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.respond import FORM_ERRORS, done, error_text, failed, render

PAGE, FRAGMENT = "admin/domains.html", "admin/_domains.html"


def _context(notice: str | None = None, error: str | None = None) -> dict:
    actor = current_actor()
    pending = domains.pending_domains(actor)
    return {
        "pending": pending,
        "added_by": audit.added_by(actor, pending),
        "mx_host": current_app.config["PROVIDER_MX_HOST"],
        "notice": notice,
        "error": error,
    }


@bp.route("/domains")
@staff_required
def domains_pending():
    return render(PAGE, FRAGMENT, **_context())


@bp.route("/domains/<int:domain_id>/approve", methods=["POST"])
@staff_required
def domain_approve(domain_id: int):
    try:
        domain = domains.approve_domain(current_actor(), domain_id)
    except FORM_ERRORS as e:
        return failed(e, PAGE, FRAGMENT, **_context(error=error_text(e)))
    notice = _(
        "Dominio %(d)s di %(cust)s attivato: ora i server di posta lo servono.",
        d=domain.display_name,
        cust=domain.customer.name,
    )
    return done(notice, url_for("admin.domains_pending"), FRAGMENT, lambda: _context(notice=notice))
