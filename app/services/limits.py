"""Contract limits: the one place that says whether mailboxes fit the contract.

Callers take the customer lock first (lock_customer), then check, then
write, all in one transaction: two requests at once serialise on the
customer's row, so they can never both take the last account of a class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext

from app.data import catalog
from app.extensions import db
from app.models import Allowance, Customer, Mailbox, ServiceClass
from app.services.errors import LimitExceeded


def lock_customer(customer_id: int) -> None:
    """Serialise writes for one customer.

    An UPDATE takes PostgreSQL's row lock and SQLite's write lock alike, so
    the count that follows cannot change under us until we commit.
    """
    db.session.execute(
        sa.update(Customer)
        .where(Customer.id == customer_id)
        .values(lock_version=Customer.lock_version + 1)
        .execution_options(synchronize_session=False)
    )


def usage_by_class(customer_id: int) -> dict[int, int]:
    rows = db.session.execute(
        sa.select(Mailbox.service_class_id, sa.func.count())
        .where(Mailbox.customer_id == customer_id)
        .group_by(Mailbox.service_class_id)
    )
    return {cid: n for cid, n in rows}


def allowance_for(customer_id: int, service_class_id: int) -> int:
    value = db.session.scalar(
        sa.select(Allowance.max_accounts).where(
            Allowance.customer_id == customer_id, Allowance.service_class_id == service_class_id
        )
    )
    return value or 0


@dataclass(frozen=True)
class Room:
    """Whether `wanted` more accounts of one class fit the contract, and by how much they do not."""

    service_class_id: int
    allowance: int | None  # None: no contract limit (Pay per Use)
    used: int
    wanted: int

    @property
    def missing(self) -> int:
        """Accounts the contract lacks for what is wanted (0: they fit)."""
        if self.allowance is None:
            return 0
        return max(0, self.used + self.wanted - self.allowance)

    @property
    def fits(self) -> bool:
        return self.missing == 0


def room_for(customer: Customer, wanted: Mapping[int, int]) -> dict[int, Room]:
    """For {service class id: how many more}, the room per class: two queries whatever the count.

    Pay per Use customers have no class allowance: everything fits. Under the customer
    lock (lock_customer) the answer holds until commit; without it, it is a preview.
    """
    ids = [class_id for class_id, n in wanted.items() if n > 0]
    if not ids:
        return {}
    used = dict(
        db.session.execute(
            sa.select(Mailbox.service_class_id, sa.func.count())
            .where(Mailbox.customer_id == customer.id, Mailbox.service_class_id.in_(ids))
            .group_by(Mailbox.service_class_id)
        ).all()
    )
    allowances: dict[int, int] = {}
    if customer.plan == "contract":
        allowances = dict(
            db.session.execute(
                sa.select(Allowance.service_class_id, Allowance.max_accounts).where(
                    Allowance.customer_id == customer.id, Allowance.service_class_id.in_(ids)
                )
            ).all()
        )
    return {
        i: Room(
            i,
            (allowances.get(i) or 0) if customer.plan == "contract" else None,
            used.get(i, 0),
            wanted[i],
        )
        for i in ids
    }


def check_room(customer: Customer, service_class: ServiceClass, n: int = 1) -> None:
    """Raise LimitExceeded if n more mailboxes of this class break the contract."""
    if customer.plan != "contract":
        return
    room = room_for(customer, {service_class.id: n})[service_class.id]
    if not room.fits:
        raise limit_exceeded(customer, service_class, room)


def limit_exceeded(customer: Customer, service_class: ServiceClass, room: Room) -> LimitExceeded:
    """The refusal for a class without room, with the numbers a person needs to ask for more."""
    allowance, used = room.allowance or 0, room.used
    if allowance == 0:
        message = _(
            "Il contratto non prevede caselle %(cls)s. Puoi chiedere al commerciale di aggiungerle.",
            cls=service_class.name,
        )
    elif room.wanted == 1:
        message = ngettext(
            "Limite del contratto raggiunto per %(cls)s: %(num)d casella su %(max)d "
            "già in uso. Puoi chiedere al commerciale di aumentarlo.",
            "Limite del contratto raggiunto per %(cls)s: %(num)d caselle su %(max)d "
            "già in uso. Puoi chiedere al commerciale di aumentarlo.",
            used,
            cls=service_class.name,
            max=allowance,
        )
    else:
        message = ngettext(
            "Limite del contratto per %(cls)s: %(used)d caselle su %(max)d già in uso, "
            "ne servono altre %(wanted)d: manca %(num)d casella. Puoi chiedere al commerciale di aumentarlo.",
            "Limite del contratto per %(cls)s: %(used)d caselle su %(max)d già in uso, "
            "ne servono altre %(wanted)d: mancano %(num)d caselle. Puoi chiedere al commerciale di aumentarlo.",
            room.missing,
            cls=service_class.name,
            used=used,
            max=allowance,
            wanted=room.wanted,
        )
    return LimitExceeded(
        message,
        service_class=service_class.name,
        allowance=allowance,
        used=used,
        service_class_id=service_class.id,
        customer_id=customer.id,
        wanted=room.wanted,
    )


@dataclass(frozen=True)
class UsageRow:
    service_class: ServiceClass
    used: int
    allowance: int | None  # None: no contract limit (Pay per Use)

    @property
    def percent(self) -> int:
        if not self.allowance:
            return 100 if self.used else 0
        return min(100, round(100 * self.used / self.allowance))

    @property
    def full(self) -> bool:
        return self.allowance is not None and self.used >= self.allowance


def usage_report(customer: Customer, used: dict[int, int] | None = None) -> list[UsageRow]:
    """Per class: what is used and what the contract allows (classes in use or allowed).

    used: the per-class counts when the caller has them (usage_by_class's shape), to spare the count.
    """
    used = usage_by_class(customer.id) if used is None else used
    allowances = {a.service_class_id: a for a in customer.allowances}
    ids = set(used) | set(allowances)
    if not ids:
        return []
    classes = {c.id: c for c in db.session.scalars(sa.select(ServiceClass).where(ServiceClass.id.in_(ids)))}
    rows = [
        UsageRow(
            classes[i],
            used.get(i, 0),
            (allowances[i].max_accounts if i in allowances else 0) if customer.plan == "contract" else None,
        )
        for i in ids
    ]
    type_order = [code for code, _, _ in catalog.TYPES]
    return sorted(rows, key=lambda r: (type_order.index(r.service_class.type), r.service_class.quota_mb))
