"""A customer's limits on outside addresses in distribution lists (a section of the customer page)."""

from __future__ import annotations

from flask import request
from flask_babel import format_decimal
from flask_babel import gettext as _

from app.services import lists
from app.services.access import customer_for
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.admin.customers import LIST_LIMIT_FIELDS, PAGE, customer_url, list_limits_context, page_context
from app.web.respond import FORM_ERRORS, done, failed, field_errors

FRAGMENT = "admin/_list_limits.html"


@bp.route("/customers/<int:customer_id>/list-limits", methods=["POST"])
@staff_required
def customer_list_limits(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    submitted = {k: request.form.get(k, "") for k in LIST_LIMIT_FIELDS}
    try:
        lists.set_external_limits(
            actor,
            record.id,
            per_list=submitted["list_external_per_list"],
            per_customer=submitted["list_external_per_customer"],
        )
    except FORM_ERRORS as e:
        ctx = page_context(record, list_limits=list_limits_context(record, submitted, field_errors(e)))
        return failed(e, PAGE, FRAGMENT, **ctx)
    per_list, per_customer = lists.external_limits(record)
    message = _(
        "Limiti delle liste salvati: al massimo %(per_list)s indirizzi esterni per lista "
        "e %(per_customer)s in tutto.",
        per_list=format_decimal(per_list, format="#,##0"),
        per_customer=format_decimal(per_customer, format="#,##0"),
    )
    return done(
        message,
        customer_url(record, "list-limits"),
        FRAGMENT,
        lambda: page_context(record, list_limits=list_limits_context(record, saved=message)),
    )
