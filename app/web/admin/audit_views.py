"""The audit log: every change, filterable, newest first, 50 a page."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask import request
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models import Customer
from app.services import audit
from app.web import current_actor, render, staff_required
from app.web.admin import forms
from app.web.admin.routes import bp

PER_PAGE = 50
EARLIEST, LATEST = date(1970, 1, 1), date(9000, 12, 31)
VIA_LABELS = {"web": "Web", "api": "API", "cli": _l("riga di comando"), "job": _l("attività pianificata")}
# Unknown actions (new ones) show their code, so nothing is ever hidden.
ACTION_LABELS = {
    "customer.create": _l("Cliente creato"),
    "customer.update": _l("Dati cliente modificati"),
    "contract.update": _l("Contratto modificato"),
    "domain.create": _l("Dominio aggiunto"),
    "domain.delete": _l("Dominio eliminato"),
    "mailbox.create": _l("Casella creata"),
    "mailbox.update": _l("Casella modificata"),
    "mailbox.delete": _l("Casella eliminata"),
    "alias.create": _l("Alias creato"),
    "alias.update": _l("Alias modificato"),
    "alias.delete": _l("Alias eliminato"),
    "list.create": _l("Lista creata"),
    "list.update": _l("Lista modificata"),
    "list.delete": _l("Lista eliminata"),
    "capacity.request": _l("Capacità richiesta"),
    "capacity.approve": _l("Capacità approvata"),
    "capacity.reject": _l("Capacità rifiutata"),
    "user.create": _l("Utente creato"),
    "user.password": _l("Password cambiata"),
    "user.locale": _l("Lingua cambiata"),
    "user.activate": _l("Utente riattivato"),
    "user.deactivate": _l("Utente disattivato"),
    "token.create": _l("Token API creato"),
    "token.revoke": _l("Token API revocato"),
}


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
    customer_id = forms.int_or_none(filters["customer_id"])
    results = audit.search_events(
        actor,
        customer_id=customer_id,
        action=filters["action"],
        actor_text=filters["actor"],
        target_text=filters["target"],
        since=forms.day_start_utc(since) if since else None,
        until=forms.day_after_utc(until) if until else None,
        page=args.get("page", 1),
        per_page=PER_PAGE,
    )
    customers = db.session.execute(sa.select(Customer.id, Customer.name).order_by(Customer.name)).all()
    names = dict(customers)
    return render(
        "admin/audit.html",
        "admin/_audit_table.html",
        status=422 if errors else 200,
        results=results,
        filters=filters,
        errors=errors,
        customers=customers,
        customer_names=names,
        actions=audit.actions_present(actor),
        via_labels=VIA_LABELS,
        action_labels=ACTION_LABELS,
        query={k: v for k, v in filters.items() if v},
    )
