"""Recharges of a Pay-per-Use account: choose an amount, get the transfer instructions, follow the requests."""

from __future__ import annotations

from flask import g, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _

from app.services import billing, credit_warnings, recharges
from app.services.errors import NotFound
from app.web.portal import bp
from app.web.portal.common import customer_view, owned
from app.web.respond import FORM_ERRORS, failed, field_errors, go_to, render

PAGE = "portal/recharge.html"


def recharge_points(centipoints: int) -> str:
    """Centipoints as points with two decimals, in the reader's language: 123456 -> "1.234,56"."""
    return format_decimal(billing.points(centipoints), format="#,##0.00")


def recharge_eur(eur_cents: int) -> str:
    """EUR cents as EUR with two decimals, in the reader's language: 123450 -> "1.234,50"."""
    return format_decimal(billing.points(eur_cents), format="#,##0.00")  # hundredths, like centipoints


def recharge_balance_eur(centipoints: int) -> str:
    """A balance in centipoints as EUR, to the cent, in the reader's language."""
    return format_decimal(billing.eur(centipoints), format="#,##0.00")


def credit_banner(customer) -> dict | None:
    """The credit banner's words for this request (base.html shows it on every page): worked out once."""
    if customer is None:
        return None
    banners = g.setdefault("credit_banners", {})
    if customer.id not in banners:
        banners[customer.id] = credit_warnings.banner(customer)
    return banners[customer.id]


def _context(view, **more) -> dict:
    method = recharges.method()
    ctx = {
        "customer": view.customer,
        "presets": [(eur, eur * 100 * billing.CENTIPOINTS_PER_EUR_CENT) for eur in recharges.PRESETS_EUR],
        "points_per_eur": billing.CENTIPOINTS_PER_EUR // 100,
        "min_eur": recharges.MIN_EUR,
        "max_eur": recharges.MAX_EUR,
        "configured": method.configured(),
        "not_configured": method.not_configured_message(),
        "method_name": method.name(),
        "requests": recharges.list_for(view.actor, view.customer.id),
        "form": {},
        "errors": {},
        "shown": None,
        "instructions": None,
    }
    ctx.update(more)
    return ctx


def _payg(view):
    # As the wallet's pages: a contract has no point account to recharge.
    if view.customer.plan != "payg":
        raise NotFound(_("Il cliente ha un contratto a canone: non ha un conto a punti."))
    return view


@bp.route("/customers/<int:customer_id>/recharge", methods=["GET", "POST"])
def recharge(customer_id: int):
    view = _payg(customer_view(customer_id))
    if request.method == "GET":
        return render(PAGE, **_context(view))
    # A preset button sends its amount; the "other amount" button sends the typed one.
    form = {"eur": request.form.get("preset", "") or request.form.get("eur", "")}
    try:
        req = recharges.request_recharge(view.actor, view.customer.id, form["eur"])
    except FORM_ERRORS as e:
        return failed(e, PAGE, **_context(view, form=form, errors=field_errors(e, "eur")))
    return go_to(url_for("portal.recharge_request", customer_id=customer_id, request_id=req.id))


@bp.route("/customers/<int:customer_id>/recharge/<int:request_id>")
def recharge_request(customer_id: int, request_id: int):
    view = _payg(customer_view(customer_id))
    req = owned(recharges.get(view.actor, request_id), customer_id, _("Richiesta di ricarica non trovata."))
    instructions = recharges.method(req.method).instructions(req)
    return render(PAGE, **_context(view, shown=req, instructions=instructions))


@bp.route("/customers/<int:customer_id>/recharge/<int:request_id>/cancel", methods=["POST"])
def recharge_cancel(customer_id: int, request_id: int):
    view = _payg(customer_view(customer_id))
    req = owned(recharges.get(view.actor, request_id), customer_id, _("Richiesta di ricarica non trovata."))
    try:
        recharges.cancel(view.actor, req.id)
    except FORM_ERRORS as e:
        return failed(e, PAGE, **_context(view, errors=field_errors(e, "eur")))
    return go_to(url_for("portal.recharge", customer_id=customer_id))
