"""Recharges in the back office: the open requests of every customer (confirm what was received, or
cancel), and on the customer page the wallet card (the first credit at signature, credits, adjustments)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import request, url_for
from flask_babel import gettext as _

from app.services import billing, recharges
from app.services.access import customer_for
from app.services.errors import ValidationError
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.admin.customers import PAGE, customer_url, page_context
from app.web.respond import FORM_ERRORS, done, error_text, failed, field_errors, render

LIST_PAGE = "admin/recharges.html"
CARD = "admin/_wallet_card.html"


def _list_context(**more) -> dict:
    ctx = {
        "open_requests": recharges.open_requests(current_actor()),
        "recharge_error": None,
        "recharge_saved": None,
    }
    ctx.update(more)
    return ctx


@bp.route("/recharges")
@staff_required
def recharges_list():
    return render(LIST_PAGE, **_list_context())


@bp.route("/recharges/<int:request_id>/confirm", methods=["POST"])
@staff_required
def recharge_confirm(request_id: int):
    actor = current_actor()
    received = request.form.get("received_eur", "").strip()
    try:
        req = recharges.get(actor, request_id)
        cents = recharges.eur_cents(received, "received_eur") if received else None
        req = recharges.confirm(actor, req.id, cents)
    except FORM_ERRORS as e:
        return failed(e, LIST_PAGE, **_list_context(recharge_error=error_text(e)))
    message = _(
        "Ricarica %(ref)s confermata: %(points)s punti accreditati a %(name)s.",
        ref=req.reference,
        points=_points((req.received_eur_cents or 0) * billing.CENTIPOINTS_PER_EUR_CENT),
        name=req.customer.name,
    )
    return done(message, url_for("admin.recharges_list"), navigate=True)


@bp.route("/recharges/<int:request_id>/cancel", methods=["POST"])
@staff_required
def recharge_staff_cancel(request_id: int):
    actor = current_actor()
    try:
        req = recharges.cancel(actor, request_id)
    except FORM_ERRORS as e:
        return failed(e, LIST_PAGE, **_list_context(recharge_error=error_text(e)))
    message = _("Richiesta di ricarica %(ref)s annullata.", ref=req.reference)
    return done(message, url_for("admin.recharges_list"), navigate=True)


def _points(centipoints: int) -> str:
    from app.web.portal.recharge import recharge_points

    return recharge_points(centipoints)


def _centipoints(value: str) -> int:
    """Points as staff type them ("-12,50", "100") as centipoints."""
    text = value.strip().replace(" ", "")
    if "," in text:
        text = text.replace(".", "").replace(",", ".")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise ValidationError.one(
            "points", _("Indica i punti con al massimo due decimali, per esempio -12,50.")
        )
    return int(amount * 100)


@bp.route("/customers/<int:customer_id>/wallet/credit", methods=["POST"])
@staff_required
def customer_wallet_credit(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    form = {k: request.form.get(k, "") for k in ("eur", "reference", "first")}
    try:
        cents = recharges.eur_cents(form["eur"], "eur")
        billing.record_credit(actor, record.id, cents, form["reference"], first=bool(form["first"]))
    except FORM_ERRORS as e:
        ctx = page_context(record, wallet_form=form, wallet_errors=field_errors(e, "eur"))
        return failed(e, PAGE, CARD, **ctx)
    message = _(
        "Accreditati %(points)s punti (%(eur)s EUR).",
        points=_points(cents * billing.CENTIPOINTS_PER_EUR_CENT),
        eur=recharges._show_eur(cents),
    )
    return done(
        message, customer_url(record, "wallet"), CARD, lambda: page_context(record, wallet_saved=message)
    )


@bp.route("/customers/<int:customer_id>/wallet/adjustment", methods=["POST"])
@staff_required
def customer_wallet_adjustment(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    form = {k: request.form.get(k, "") for k in ("points", "reason")}
    try:
        centipoints = _centipoints(form["points"])
        billing.record_adjustment(actor, record.id, centipoints, form["reason"])
    except FORM_ERRORS as e:
        errors = field_errors(e, "points")
        if "centipoints" in errors:
            errors["points"] = errors.pop("centipoints")
        ctx = page_context(record, wallet_form=form, wallet_errors=errors)
        return failed(e, PAGE, CARD, **ctx)
    message = _("Rettifica di %(points)s punti registrata.", points=_points(centipoints))
    return done(
        message, customer_url(record, "wallet"), CARD, lambda: page_context(record, wallet_saved=message)
    )
