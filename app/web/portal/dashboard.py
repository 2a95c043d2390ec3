"""The customer's home page: counts, contract usage, open requests to sales."""

from __future__ import annotations

from app.services import capacity, limits, mailboxes, overview
from app.web.portal import bp
from app.web.portal.common import customer_view
from app.web.respond import render


@bp.route("/customers/<int:customer_id>/")
def dashboard(customer_id: int):
    view = customer_view(customer_id)
    return render(
        "portal/dashboard.html",
        customer=view.customer,
        can_manage=view.can_manage,
        usage=limits.usage_report(view.customer, used=mailboxes.class_counts(view.customer)),
        counts=overview.customer_overview(view.actor, view.customer.id),
        requests=capacity.list_requests(view.actor, customer_id=view.customer.id, status="open"),
    )
