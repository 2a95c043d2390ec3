"""Domains waiting for support: every customer's pending domains, approved in place or rejected."""

from __future__ import annotations

from flask import current_app, request, url_for
from flask_babel import gettext as _

from app.services import audit, dnscheck, domain_checks, domains
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.respond import FORM_ERRORS, done, error_text, failed, field_errors, render

PAGE, FRAGMENT = "admin/domains.html", "admin/_domains.html"
REJECT_PAGE = "admin/domain_reject.html"


def _context(notice: str | None = None, error: str | None = None) -> dict:
    actor = current_actor()
    pending = domains.pending_domains(actor)
    return {
        "pending": pending,
        "added_by": audit.added_by(actor, pending),
        "mx_host": current_app.config["PROVIDER_MX_HOST"],
        "moved": domain_checks.moved_away(actor),
        "verdict_labels": {v: domain_checks.verdict_label(v) for v in (None, *dnscheck.VERDICTS)},
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


@bp.route("/domains/<int:domain_id>/reject", methods=["GET", "POST"])
@staff_required
def domain_reject(domain_id: int):
    """Refuse a pending domain: the page says what goes with it and asks why; the POST removes it."""
    actor = current_actor()
    try:
        domain, prepared = domains.rejection_preview(actor, domain_id)
    except FORM_ERRORS as e:
        return failed(e, PAGE, FRAGMENT, **_context(error=error_text(e)))
    reason = request.form.get("reason", "") if request.method == "POST" else ""
    errors: dict[str, str] = {}
    if request.method == "POST":
        name, customer_name = domain.display_name, domain.customer.name  # the row goes
        try:
            domains.reject_domain(actor, domain.id, reason)
        except FORM_ERRORS as e:
            errors = field_errors(e, "reason")
            return render(
                REJECT_PAGE, status=e.status, domain=domain, prepared=prepared, reason=reason, errors=errors
            )
        notice = _(
            "Dominio %(d)s di %(cust)s rifiutato e tolto con %(num)d indirizzi preparati.",
            d=name,
            cust=customer_name,
            num=len(prepared.addresses),
        )
        return done(notice, url_for("admin.domains_pending"), FRAGMENT, lambda: _context(notice=notice))
    return render(REJECT_PAGE, domain=domain, prepared=prepared, reason=reason, errors=errors)
