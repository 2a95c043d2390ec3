"""Capacity requests: open ones first, approved (possibly a different number) or rejected with a reason, in place."""

from __future__ import annotations

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from app.extensions import db
from app.models import User
from app.services import capacity, limits
from app.services.errors import Conflict, ValidationError
from app.web import current_actor, is_fragment_request, render, staff_required
from app.web.admin.routes import bp


def _context(notice: str | None = None, error: str | None = None, failed: dict | None = None) -> dict:
    """failed: {"id": request id, "values": submitted, "errors": by field} for the row whose decision was refused."""
    requests = capacity.list_requests(current_actor())
    open_ = [r for r in requests if r.status == "open"]
    decided = [r for r in requests if r.status != "open"]
    people_ids = {i for r in requests for i in (r.requested_by_id, r.decided_by_id) if i}
    people = (
        dict(db.session.execute(sa.select(User.id, User.email).where(User.id.in_(people_ids))).all())
        if people_ids
        else {}
    )
    # Used and allowed now, per customer and class, for the open requests only.
    usage: dict[int, dict[int, int]] = {}
    allowed: dict[tuple[int, int], int] = {}
    for r in open_:
        if r.customer_id not in usage:
            usage[r.customer_id] = limits.usage_by_class(r.customer_id)
        allowed[(r.customer_id, r.service_class_id)] = limits.allowance_for(r.customer_id, r.service_class_id)
    return {
        "open_requests": open_,
        "decided_requests": decided,
        "people": people,
        "usage": usage,
        "allowed": allowed,
        "notice": notice,
        "error": error,
        "failed": failed or {},
    }


@bp.route("/capacity-requests")
@staff_required
def capacity_requests():
    return render("admin/capacity_requests.html", "admin/_capacity_requests.html", **_context())


@bp.route("/capacity-requests/<int:request_id>/decision", methods=["POST"])
@staff_required
def capacity_decide(request_id: int):
    approve = request.form.get("decision") == "approve"
    values = {"accounts": request.form.get("accounts", ""), "reason": request.form.get("reason", "")}
    status, notice, error, failed = 200, None, None, None
    try:
        req = capacity.decide(
            current_actor(), request_id, approve=approve, accounts=values["accounts"], reason=values["reason"]
        )
    except ValidationError as e:
        status, failed = 422, {"id": request_id, "values": values, "errors": e.errors}
        error = _("La richiesta non è stata gestita: controlla il numero e il motivo.")
    except Conflict as e:
        status, error = 409, e.message
    else:
        if approve:
            notice = ngettext(
                "Approvata: %(cust)s ha ora %(num)d casella %(cls)s in più (limite: %(max)d).",
                "Approvata: %(cust)s ha ora %(num)d caselle %(cls)s in più (limite: %(max)d).",
                req.granted_accounts,
                cust=req.customer.name,
                cls=req.service_class.name,
                max=limits.allowance_for(req.customer_id, req.service_class_id),
            )
        else:
            notice = _(
                "Richiesta di %(cust)s rifiutata. Il cliente riceve il motivo per email.",
                cust=req.customer.name,
            )
        if not is_fragment_request():
            flash(notice, "ok")
            return redirect(url_for("admin.capacity_requests"))
    return render(
        "admin/capacity_requests.html",
        "admin/_capacity_requests.html",
        status,
        **_context(notice=notice, error=error, failed=failed),
    )
