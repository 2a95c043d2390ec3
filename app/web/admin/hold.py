"""A customer's hold for exhausted credit (a section of the customer page): put it on hold, lift it."""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _

from app.services import hold
from app.services.access import customer_for
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.admin.customers import PAGE, customer_url, page_context
from app.web.respond import FORM_ERRORS, done, failed, field_errors

FRAGMENT = "admin/_hold.html"


def _card(customer, message: str):
    return done(
        message,
        customer_url(customer, "hold"),
        FRAGMENT,
        lambda: {"customer": customer, "hold_saved": message},
    )


@bp.route("/customers/<int:customer_id>/hold", methods=["POST"])
@staff_required
def customer_hold(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    reason = request.form.get("reason", "")
    try:
        changed = hold.put_on_hold(actor, record.id, reason)
    except FORM_ERRORS as e:
        ctx = page_context(record, hold_reason=reason, hold_errors=field_errors(e, "reason"))
        return failed(e, PAGE, FRAGMENT, **ctx)
    if changed:
        message = _("Cliente bloccato: nessuna sua casella può accedere, la posta in arrivo è conservata.")
    else:
        message = _("Il cliente era già bloccato.")
    return _card(record, message)


@bp.route("/customers/<int:customer_id>/hold/lift", methods=["POST"])
@staff_required
def customer_hold_lift(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    if hold.lift_hold(actor, record.id):
        message = _("Blocco tolto: le caselle sono tornate come prima.")
    else:
        message = _("Il cliente non era bloccato.")
    return _card(record, message)
