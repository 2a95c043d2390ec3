"""JSON API /api/v1: Pay-per-Use point accounts (the wallet, credits received, the ledger) and the price list.

A contract customer has no point account: its wallet and ledger answer 409.
Amounts are integers in centipoints (1 EUR cent = 80); points and EUR are given
as exact decimal strings besides.
"""

from __future__ import annotations

from datetime import date

from flask import jsonify
from flask_babel import gettext as _

from app.models import LedgerEntry
from app.models.enums import EntryKind, WalletState
from app.services import billing, classes, clock
from app.services.errors import ValidationError
from app.web.api import body
from app.web.api.auth import actor
from app.web.api.blueprint import bp
from app.web.api.body import Param, choice, integer, list_of, object_of, response, shape, text
from app.web.api.openapi import WRITE_ERRORS, array_of, documented

WALLET = response(
    "Wallet",
    balance_centipoints=integer(),
    balance_points=text(examples=("1234.56",), description="The balance in points, two decimals."),
    balance_eur=text(examples=("15.43",), description="The balance in EUR (1 EUR = 80 points)."),
    daily_cost_centipoints=integer(description="Today's cost: the active mailboxes at today's prices."),
    days_left=integer(
        nullable=True, description="Whole days the balance pays at today's cost; null when nothing costs."
    ),
    state=choice(WalletState, description="warning: 14 days or fewer; grace: below zero."),
)
CHARGE_LINE = response(
    "ChargeLine",
    mailbox=text(description="The mailbox's address that day."),
    service_class=text(examples=("Business Mail 5.000 MB",)),
    centipoints=integer(),
)
LEDGER_ENTRY = response(
    "LedgerEntry",
    id=integer(read_only=True),
    kind=choice(EntryKind),
    day=text(
        nullable=True, description="The day a daily charge charges (YYYY-MM-DD); null for other entries."
    ),
    centipoints=integer(description="Negative for a charge."),
    points=text(examples=("-12.50",)),
    reference=text(),
    reason=text(),
    created_by=text(),
    created_at=body.datetime(),
    lines=list_of(object_of(CHARGE_LINE), description="A daily charge's mailboxes; empty for other entries."),
)
PRICE = response(
    "Price",
    service_class=text(examples=("Business Mail 5.000 MB",)),
    service_class_id=integer(),
    centipoints_per_day=integer(),
    points_per_day=text(examples=("1.00",)),
    valid_from=text(description="The day it is in force from (YYYY-MM-DD)."),
)
CREDIT_INPUT = shape(
    "CreditInput",
    eur_cents=integer(
        required=True, minimum=1, maximum=billing.MAX_EUR_CENTS, description="The amount received."
    ),
    reference=text(
        required=True, min_len=1, max_len=100, description="The payment's reference (the transfer's)."
    ),
)
DAY_RANGE = (
    Param("from", max_len=10, description="First day (YYYY-MM-DD), included."),
    Param("to", max_len=10, description="Last day (YYYY-MM-DD), included."),
)


def _day(args: dict, name: str) -> date | None:
    value = args[name]
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError.one(name, _("Data non valida: scrivi AAAA-MM-GG.")) from None


def wallet_json(w: billing.Wallet) -> dict:
    return {
        "balance_centipoints": w.balance,
        "balance_points": str(billing.points(w.balance)),
        "balance_eur": str(billing.eur(w.balance)),
        "daily_cost_centipoints": w.daily_cost,
        "days_left": w.days_left,
        "state": w.state,
    }


def entry_json(e: LedgerEntry) -> dict:
    return {
        "id": e.id,
        "kind": e.kind,
        "day": e.day.isoformat() if e.day else None,
        "centipoints": e.centipoints,
        "points": str(billing.points(e.centipoints)),
        "reference": e.reference,
        "reason": e.reason,
        "created_by": e.created_by,
        "created_at": e.created_at.isoformat(),
        "lines": [
            {"mailbox": line.address, "service_class": line.class_name, "centipoints": line.centipoints}
            for line in e.lines
        ],
    }


@bp.get("/customers/<id:customer_id>/wallet")
@documented(
    "A Pay-per-Use customer's point account: balance, today's cost, days left (409 for a contract customer).",
    "billing",
    ok=WALLET,
    errors=(401, 404, 409),
)
def wallet_get(customer_id: int):
    return jsonify(wallet_json(billing.wallet(actor(), customer_id)))


@bp.post("/customers/<id:customer_id>/wallet/credits")
@documented(
    "Record a payment received, in EUR cents, credited as points (staff).",
    "billing",
    ok=LEDGER_ENTRY,
    status=201,
    body=CREDIT_INPUT,
    errors=WRITE_ERRORS,
)
def wallet_credit(customer_id: int):
    data = body.read()
    entry = billing.record_credit(actor(), customer_id, data["eur_cents"], data["reference"])
    return jsonify(entry_json(entry)), 201


@bp.get("/customers/<id:customer_id>/ledger")
@documented(
    "A Pay-per-Use customer's ledger entries in a range of days, in the order written; "
    "a daily charge carries its day and its mailboxes.",
    "billing",
    ok=array_of(LEDGER_ENTRY),
    errors=(401, 404, 409, 422),
    query=DAY_RANGE,
)
def ledger_get(customer_id: int):
    args = body.query()
    start, end = _day(args, "from"), _day(args, "to")
    return jsonify([entry_json(e) for e in billing.ledger(actor(), customer_id, start, end)])


@bp.get("/price-list")
@documented(
    "The prices in force today, per class of service, in catalogue order.",
    "billing",
    ok=array_of(PRICE),
    errors=(401,),
)
def price_list():
    today = clock.today()
    prices = billing.price_list(today)
    since = billing.price_since(today)
    return jsonify(
        [
            {
                "service_class": c.name,
                "service_class_id": c.id,
                "centipoints_per_day": prices[c.id],
                "points_per_day": str(billing.points(prices[c.id])),
                "valid_from": since[c.id].isoformat(),
            }
            for c in classes.all_classes()
            if c.id in prices
        ]
    )
