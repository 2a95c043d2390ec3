"""Domains waiting for support: every customer's pending domains, approved in place."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, flash, redirect, url_for
from flask_babel import gettext as _

from app.extensions import db
from app.models import AuditEvent
from app.services import domains
from app.services.errors import Conflict, ValidationError
from app.web import current_actor, is_fragment_request, render, staff_required
from app.web.admin.routes import bp


def _added_by(pending) -> dict[int, str]:
    """Who added each pending domain, from the audit trail (the latest 'domain.create' of its name)."""
    by_name = {d.name: d for d in pending}
    if not by_name:
        return {}
    rows = db.session.execute(
        sa.select(AuditEvent.target, AuditEvent.customer_id, AuditEvent.actor)
        .where(AuditEvent.action == "domain.create", AuditEvent.target.in_(by_name))
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    added: dict[int, str] = {}
    for target, customer_id, actor in rows:
        domain = by_name[target]
        if customer_id == domain.customer_id:
            added[domain.id] = actor
    return added


def _context(notice: str | None = None, error: str | None = None) -> dict:
    pending = domains.pending_domains(current_actor())
    return {
        "pending": pending,
        "added_by": _added_by(pending),
        "mx_host": current_app.config["PROVIDER_MX_HOST"],
        "notice": notice,
        "error": error,
    }


@bp.route("/domains")
@staff_required
def domains_pending():
    return render("admin/domains.html", "admin/_domains.html", **_context())


@bp.route("/domains/<int:domain_id>/approve", methods=["POST"])
@staff_required
def domain_approve(domain_id: int):
    status, notice, error = 200, None, None
    try:
        domain = domains.approve_domain(current_actor(), domain_id)
    except (ValidationError, Conflict) as e:
        status, error = (
            e.status,
            "; ".join(e.errors.values()) if isinstance(e, ValidationError) else e.message,
        )
    else:
        notice = _(
            "Dominio %(d)s di %(cust)s attivato: ora i server di posta lo servono.",
            d=domain.display_name,
            cust=domain.customer.name,
        )
        if not is_fragment_request():
            flash(notice, "ok")
            return redirect(url_for("admin.domains_pending"))
    return render("admin/domains.html", "admin/_domains.html", status, **_context(notice=notice, error=error))


@bp.app_template_global()
def pending_domain_count() -> int:
    """For the staff navigation: how many domains wait for approval."""
    return domains.count_pending(current_actor())


@bp.app_template_global()
def customer_domains(customer_id: int) -> list:
    """For the customer page: the customer's domains with their state."""
    return domains.list_domains(current_actor(), customer_id)
