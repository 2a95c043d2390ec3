"""Requests to sales for more mailboxes of a class (contract customers): the page and the form.

The same form sits inside a limit notice (one fixed class): there its answer takes the notice's place.
"""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from app.services import capacity, classes, limits
from app.services.errors import ValidationError
from app.web.portal import bp
from app.web.portal.common import customer_view
from app.web.respond import FORM_ERRORS, done, failed, field_errors, is_fragment_request, render

FIELDS = ("service_class", "extra_accounts", "note")


def capacity_context(view, form=None, errors=None, fixed_class=None) -> dict:
    """What the request form needs: the classes to choose from (the contract's first) or one fixed class."""
    allowed = {row.service_class.id: row for row in limits.usage_report(view.customer)}
    in_contract, others = [], []
    for cls in classes.all_classes():
        (in_contract if cls.id in allowed else others).append(cls)
    return {
        "customer": view.customer,
        "capacity_form": form or {},
        "capacity_errors": errors or {},
        "capacity_choices": [(_("Nel contratto"), in_contract), (_("Altre classi"), others)],
        "capacity_usage": allowed,
        "capacity_open": capacity.open_by_class(view.actor, view.customer.id),
        "fixed_class": fixed_class,
    }


def _page_context(view, **form_ctx) -> dict:
    return {
        "can_manage": view.can_manage,
        "requests": capacity.list_requests(view.actor, customer_id=view.customer.id),
        **capacity_context(view, **form_ctx),
    }


def _message(asked) -> str:
    req = asked.request
    if asked.created:
        return ngettext(
            "Richiesta inviata al commerciale: %(num)d casella %(cls)s in più. "
            "Riceverai la risposta per email e la vedrai in Richieste al commerciale.",
            "Richiesta inviata al commerciale: %(num)d caselle %(cls)s in più. "
            "Riceverai la risposta per email e la vedrai in Richieste al commerciale.",
            req.extra_accounts,
            cls=req.service_class.name,
        )
    return ngettext(
        "Richiesta aggiornata: ora chiedi %(num)d casella %(cls)s in più. "
        "C'è una sola richiesta aperta per classe: il commerciale vede quella aggiornata.",
        "Richiesta aggiornata: ora chiedi %(num)d caselle %(cls)s in più. "
        "C'è una sola richiesta aperta per classe: il commerciale vede quella aggiornata.",
        req.extra_accounts,
        cls=req.service_class.name,
    )


@bp.route("/customers/<int:customer_id>/capacity-requests", methods=["GET", "POST"])
def capacity_requests(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        wanted = request.args.get("class", "")
        form = (
            {"service_class": wanted, "extra_accounts": "1"} if wanted.isdigit() and len(wanted) < 10 else {}
        )
        return render("portal/capacity_requests.html", **_page_context(view, form=form))
    form = {k: request.form.get(k, "") for k in FIELDS}
    fixed = None
    if request.form.get("fixed"):
        # The form inside a limit notice asks for the class that hit the limit; it keeps it on errors.
        try:
            fixed = classes.resolve(form["service_class"])
        except ValidationError:
            fixed = None
    try:
        asked = capacity.request_capacity(
            view.actor,
            view.customer.id,
            service_class=form["service_class"],
            extra_accounts=form["extra_accounts"],
            note=form["note"],
        )
    except FORM_ERRORS as e:
        errors = field_errors(e)
        if is_fragment_request():
            ctx = capacity_context(view, form=form, errors=errors, fixed_class=fixed)
            return failed(e, "portal/_capacity_form.html", **ctx)
        return failed(e, "portal/capacity_requests.html", **_page_context(view, form=form, errors=errors))
    message = _message(asked)
    response = done(
        message,
        url_for("portal.capacity_requests", customer_id=customer_id),
        "portal/_capacity_reply.html",
        lambda: {"message": message, "customer": view.customer},
    )
    if fixed and is_fragment_request():
        # Sent from a limit notice: the answer takes the notice's place.
        response.headers["HX-Retarget"] = "#limit-notice"
    return response
