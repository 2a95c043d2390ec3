"""The audit log: every change, filterable, newest first, 50 a page."""

from __future__ import annotations

from datetime import date

from flask import request

from app.services import audit, customers
from app.web import current_actor, staff_required
from app.web.admin import bp, forms
from app.web.respond import render

PER_PAGE = 50
EARLIEST, LATEST = date(1970, 1, 1), date(9000, 12, 31)


@bp.route("/audit", endpoint="audit")
@staff_required
def audit_log():
    actor = current_actor()
    args = request.args
    errors: dict[str, str] = {}
    filters = {
        "customer_id": args.get("customer_id", ""),
        "action": args.get("action", "")[:64],
        "actor": args.get("actor", "").strip()[:254],
        "target": args.get("target", "").strip()[:320],
        "date_from": args.get("date_from", "").strip()[:10],
        "date_to": args.get("date_to", "").strip()[:10],
    }
    since = forms.local_date(filters["date_from"], "date_from", errors)
    until = forms.local_date(filters["date_to"], "date_to", errors)
    # Nothing happened before the first or after the last day a date can hold in every
    # timezone (0001-01-01 or 9999-12-31 would overflow in UTC): such a bound is no bound.
    since = since if since and since > EARLIEST else None
    until = until if until and until < LATEST else None
    results = audit.search_events(
        actor,
        customer_id=forms.int_or_none(filters["customer_id"]),
        action=filters["action"],
        actor_text=filters["actor"],
        target_text=filters["target"],
        since=forms.day_start_utc(since) if since else None,
        until=forms.day_after_utc(until) if until else None,
        page=args.get("page", 1),
        per_page=PER_PAGE,
    )
    names = customers.names(actor)
    return render(
        "admin/audit.html",
        "admin/_audit_table.html",
        status=422 if errors else 200,
        results=results,
        filters=filters,
        errors=errors,
        customers=names,
        customer_names=dict(names),
        actions=audit.actions_present(actor),
        query={k: v for k, v in filters.items() if v},
    )
