"""The Pay-per-Use point accounts at a glance (staff): balance, daily cost, days left and state of every
customer, sortable and filterable, paged; each leads to the customer's own wallet page."""

from __future__ import annotations

from flask import request

from app.services import billing
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.portal.wallet import fmt_eur, fmt_points, state_label
from app.web.respond import render

PER_PAGE = 50


@bp.route("/billing")
@staff_required
def billing_overview():
    sort = request.args.get("sort", "name")
    sort = sort if sort in billing.OVERVIEW_SORTS else "name"
    state = request.args.get("state", "")
    state = state if state in billing.OVERVIEW_STATES else ""
    rows, total, page = billing.wallets_overview(
        current_actor(), sort=sort, state=state, page=request.args.get("page", 1), per_page=PER_PAGE
    )
    pages = max(1, -(-total // PER_PAGE))
    return render(
        "admin/billing.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        sort=sort,
        state=state,
        states=billing.OVERVIEW_STATES,
        fmt_points=fmt_points,
        fmt_eur=fmt_eur,
        state_label=state_label,
    )
