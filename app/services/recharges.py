"""Recharges of Pay-per-Use point accounts: the customer asks, pays by bank transfer, staff confirm.

A request is an amount in EUR (10 to 5.000, to the cent) and a unique reference
(`RIC-<customer id>-<6 characters>`) that the transfer carries as its causale. Staff
confirm the receipt (the amount actually received, by default the one asked), which
credits the points through `billing.record_credit` with the reference, once only: the
request moves from requested to confirmed with a conditional UPDATE in the credit's
own transaction, so a second confirmation (even a concurrent one) is a Conflict.

Payment methods plug in behind `PaymentMethod`; the bank transfer is the real one,
its details from the environment (BANK_IBAN, BANK_BENEFICIARY, BANK_NAME).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

import sqlalchemy as sa
from flask import current_app
from flask_babel import format_decimal
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import RechargeRequest
from app.models.enums import RechargeState
from app.services import audit, billing, clock, fields, limits
from app.services.access import Actor, customer_for, get_scoped, require_staff
from app.services.errors import Conflict, ValidationError

MIN_EUR = 10
MAX_EUR = 5_000
PRESETS_EUR = (20, 50, 100, 200)
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O nor 1/I: read aloud or typed by hand


@dataclass(frozen=True)
class Instructions:
    """What the customer needs to pay: one labelled value per line, the reference among them."""

    method: str
    lines: list[tuple[str, str]]
    reference: str
    eur: Decimal


class PaymentMethod(Protocol):
    code: str

    def name(self) -> str: ...

    def configured(self) -> bool: ...

    def not_configured_message(self) -> str: ...

    def instructions(self, req: RechargeRequest) -> Instructions: ...


class BankTransfer:
    """A SEPA bank transfer to the provider's account, with the request's reference as causale."""

    code = "bank_transfer"

    def name(self) -> str:
        return _("Bonifico bancario")

    def _config(self) -> tuple[str, str, str]:
        config = current_app.config
        return (
            (config.get("BANK_IBAN") or "").replace(" ", ""),
            config.get("BANK_BENEFICIARY") or "",
            config.get("BANK_NAME") or "",
        )

    def configured(self) -> bool:
        iban, beneficiary, _bank = self._config()
        return bool(iban and beneficiary)

    def not_configured_message(self) -> str:
        return _(
            "Le coordinate bancarie per le ricariche non sono configurate (BANK_IBAN, BANK_BENEFICIARY): "
            "contatta il supporto."
        )

    def instructions(self, req: RechargeRequest) -> Instructions:
        iban, beneficiary, bank = self._config()
        amount = Decimal(req.eur_cents).scaleb(-2)
        lines = [(_("Beneficiario"), beneficiary), (_("IBAN"), iban)]
        if bank:
            lines.append((_("Banca"), bank))
        lines += [
            (_("Importo"), f"{format_decimal(amount, format='#,##0.00')} EUR"),
            (_("Causale"), req.reference),
        ]
        return Instructions(self.code, lines, req.reference, amount)


METHODS: dict[str, PaymentMethod] = {BankTransfer.code: BankTransfer()}


def method(code: str = BankTransfer.code) -> PaymentMethod:
    return METHODS[code]


def eur_cents(
    value: object, field: str = "eur", *, minimum: int = 1, maximum: int = billing.MAX_EUR_CENTS
) -> int:
    """An amount in EUR as people type it ("50", "50,5", "1.234,50", 50) as EUR cents, in [minimum, maximum]."""
    if isinstance(value, bool):
        value = None
    text = str(value).strip() if value is not None else ""
    if "," in text:  # the Italian way: dots group thousands, the comma is the decimal point
        text = text.replace(".", "").replace(",", ".")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise ValidationError.one(field, _("Indica un importo in euro, per esempio 50 o 50,00."))
    if amount != amount.quantize(Decimal("0.01")):
        raise ValidationError.one(field, _("L'importo ha al massimo due decimali (i centesimi)."))
    cents = int(amount * 100)
    if not minimum <= cents <= maximum:
        raise ValidationError.one(
            field,
            _(
                "L'importo va da %(min)s a %(max)s EUR.",
                min=_show_eur(minimum),
                max=_show_eur(maximum),
            ),
        )
    return cents


def _show_eur(cents: int) -> str:
    return format_decimal(Decimal(cents).scaleb(-2), format="#,##0.##")


def parse_eur(value: object) -> int:
    """The amount of a recharge request, MIN_EUR to MAX_EUR, as EUR cents."""
    return eur_cents(value, "eur", minimum=MIN_EUR * 100, maximum=MAX_EUR * 100)


def _new_reference(customer_id: int) -> str:
    while True:
        ref = f"RIC-{customer_id}-" + "".join(secrets.choice(_ALPHABET) for _i in range(6))
        if db.session.scalar(sa.select(RechargeRequest.id).where(RechargeRequest.reference == ref)) is None:
            return ref


# Requests waiting for their transfer, per customer: enough for any real need, never a flood.
MAX_OPEN_REQUESTS = 5


def request_recharge(actor: Actor, customer_id: object, eur: object) -> RechargeRequest:
    """A customer (or staff for it) asks to recharge eur; the answer carries the reference to pay with."""
    customer = billing._payg(customer_for(actor, customer_id))
    cents = parse_eur(eur)
    transfer = method()
    if not transfer.configured():
        raise Conflict(transfer.not_configured_message())
    limits.lock_customer(customer.id)  # two requests at once count each other
    waiting = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(RechargeRequest)
        .where(RechargeRequest.customer_id == customer.id, RechargeRequest.state == RechargeState.REQUESTED)
    )
    if waiting >= MAX_OPEN_REQUESTS:
        raise Conflict(
            _(
                "Ci sono già %(n)d ricariche in attesa del bonifico: annullane una o attendi che il "
                "supporto le confermi.",
                n=waiting,
            )
        )
    req = RechargeRequest(
        customer_id=customer.id,
        eur_cents=cents,
        reference=_new_reference(customer.id),
        state=RechargeState.REQUESTED.value,
        method=BankTransfer.code,
        requested_by=actor.label,
        created_at=clock.now(),
    )
    db.session.add(req)
    db.session.flush()
    audit.record(
        actor,
        "recharge.request",
        customer_id=customer.id,
        target=req.reference,
        changes={"eur_cents": [None, cents]},
    )
    db.session.commit()
    return req


def get(actor: Actor, request_id: object) -> RechargeRequest:
    """A request the actor may see (another customer's is a 404, like one that does not exist)."""
    return get_scoped(actor, RechargeRequest, request_id, _("Richiesta di ricarica non trovata."))


def list_for(actor: Actor, customer_id: object) -> list[RechargeRequest]:
    """A customer's requests, newest first."""
    customer = customer_for(actor, customer_id)
    return list(
        db.session.scalars(
            sa.select(RechargeRequest)
            .where(RechargeRequest.customer_id == customer.id)
            .order_by(RechargeRequest.id.desc())
        )
    )


def open_requests(actor: Actor) -> list[RechargeRequest]:
    """Every customer's requests waiting for their transfer, oldest first (staff)."""
    require_staff(actor)
    return list(
        db.session.scalars(
            sa.select(RechargeRequest)
            .where(RechargeRequest.state == RechargeState.REQUESTED)
            .options(joinedload(RechargeRequest.customer))  # the page names each one's customer
            .order_by(RechargeRequest.id)
        )
    )


def _decide(req: RechargeRequest, state: RechargeState, actor: Actor, **values) -> None:
    """Move a requested request to state, or Conflict if it was decided already (by anyone, even now)."""
    done = db.session.execute(
        sa.update(RechargeRequest)
        .where(RechargeRequest.id == req.id, RechargeRequest.state == RechargeState.REQUESTED)
        .values(state=state.value, confirmed_by=actor.label, decided_at=clock.now(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not done:
        db.session.rollback()
        raise Conflict(_("La richiesta di ricarica %(ref)s è già stata gestita.", ref=req.reference))


def confirm(actor: Actor, request_id: object, received_eur_cents: object = None) -> RechargeRequest:
    """Staff: the transfer arrived; credit the points of the amount received (the one asked by default)."""
    req = get(actor, request_id)
    require_staff(actor)
    cents = (
        req.eur_cents
        if received_eur_cents in (None, "")
        else fields.integer(
            received_eur_cents, "received_eur_cents", minimum=1, maximum=billing.MAX_EUR_CENTS
        )
    )
    customer_id, reference = req.customer_id, req.reference
    _decide(req, RechargeState.CONFIRMED, actor, received_eur_cents=cents)
    audit.record(
        actor,
        "recharge.confirm",
        customer_id=customer_id,
        target=reference,
        changes={"received_eur_cents": [None, cents]},
    )
    # The credit's commit is the confirmation's: both or neither.
    entry = billing.record_credit(actor, customer_id, cents, reference)
    db.session.execute(
        sa.update(RechargeRequest).where(RechargeRequest.id == req.id).values(entry_id=entry.id)
    )
    db.session.commit()
    db.session.refresh(req)
    return req


def cancel(actor: Actor, request_id: object) -> RechargeRequest:
    """Cancel a request not yet confirmed: staff, or the customer that asked."""
    req = get(actor, request_id)
    _decide(req, RechargeState.CANCELLED, actor)
    audit.record(actor, "recharge.cancel", customer_id=req.customer_id, target=req.reference)
    db.session.commit()
    db.session.refresh(req)
    return req


def points_for(eur_cents: int) -> Decimal:
    """The points eur_cents buys."""
    return billing.points(eur_cents * billing.CENTIPOINTS_PER_EUR_CENT)
