"""Capacity requests: open ones first, approved (possibly a different number) or rejected with a reason, in place."""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from app.services import capacity, limits
from app.services.errors import ValidationError
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.respond import FORM_ERRORS, done, failed, render

PAGE, FRAGMENT = "admin/capacity_requests.html", "admin/_capacity_requests.html"


def _context(notice: str | None = None, error: str | None = None, refused: dict | None = None) -> dict:
    """refused: {"id": request id, "values": submitted, "errors": by field}, the row whose decision failed."""
    return {
        "board": capacity.board(current_actor()),
        "notice": notice,
        "error": error,
        "failed": refused or {},
    }


@bp.route("/capacity-requests")
@staff_required
def capacity_requests():
    return render(PAGE, FRAGMENT, **_context())


def _decided(req, approve: bool) -> str:
    if approve:
        return ngettext(
            "Approvata: %(cust)s ha ora %(num)d casella %(cls)s in più (limite: %(max)d).",
            "Approvata: %(cust)s ha ora %(num)d caselle %(cls)s in più (limite: %(max)d).",
            req.granted_accounts,
            cust=req.customer.name,
            cls=req.service_class.name,
            max=limits.allowance_for(req.customer_id, req.service_class_id),
        )
    return _(
        "Richiesta di %(cust)s rifiutata. Il cliente riceve il motivo per email.", cust=req.customer.name
    )


@bp.route("/capacity-requests/<int:request_id>/decision", methods=["POST"])
@staff_required
def capacity_decide(request_id: int):
    approve = request.form.get("decision") == "approve"
    values = {"accounts": request.form.get("accounts", ""), "reason": request.form.get("reason", "")}
    try:
        req = capacity.decide(
            current_actor(), request_id, approve=approve, accounts=values["accounts"], reason=values["reason"]
        )
    except FORM_ERRORS as e:
        if isinstance(e, ValidationError):
            row = {"id": request_id, "values": values, "errors": e.errors}
            message = _("La richiesta non è stata gestita: controlla il numero e il motivo.")
            return failed(e, PAGE, FRAGMENT, **_context(error=message, refused=row))
        return failed(e, PAGE, FRAGMENT, **_context(error=e.message))
    notice = _decided(req, approve)
    return done(notice, url_for("admin.capacity_requests"), FRAGMENT, lambda: _context(notice=notice))
