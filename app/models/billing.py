"""Pay-per-Use point accounts: the effective-dated price list and the immutable ledger.

Amounts are integers in centipoints (hundredths of a point; 1 EUR cent = 80 of them).
A customer's balance is `customers.balance_centipoints`, written in the same transaction
as each entry (app/services/billing.py); `flask billing verify` checks it equals the sum.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.enums import EntryKind, RechargeState

if TYPE_CHECKING:
    from app.models.customers import Customer

CHARGE_ONLY = f"kind = '{EntryKind.CHARGE}'"


class Price(db.Model):
    """The price of a class of service per day, in force from valid_from until the next row's date."""

    __tablename__ = "prices"
    __table_args__ = (
        sa.UniqueConstraint("service_class_id", "valid_from", name="uq_prices_class_from"),
        sa.CheckConstraint("centipoints_per_day >= 0", name="centipoints_per_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_class_id: Mapped[int] = mapped_column(sa.ForeignKey("service_classes.id"))
    valid_from: Mapped[date] = mapped_column(sa.Date)
    centipoints_per_day: Mapped[int] = mapped_column(sa.BigInteger)
    created_by: Mapped[str] = mapped_column(sa.String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(db.Model):
    """One movement of a customer's points; never changed nor deleted (a correction is a new entry).

    A daily charge carries its day, and the partial unique index on (customer, day) of the
    charges is what makes a day impossible to charge twice.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.CheckConstraint(EntryKind.check("kind"), name="kind"),
        sa.CheckConstraint(f"(kind = '{EntryKind.CHARGE}') = (day IS NOT NULL)", name="charge_day"),
        sa.Index(
            "uq_ledger_entries_charge_day",
            "customer_id",
            "day",
            unique=True,
            sqlite_where=sa.text(CHARGE_ONLY),
            postgresql_where=sa.text(CHARGE_ONLY),
        ),
        sa.Index("ix_ledger_entries_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    day: Mapped[date | None] = mapped_column(sa.Date)
    centipoints: Mapped[int] = mapped_column(sa.BigInteger)
    reference: Mapped[str] = mapped_column(sa.String(100), default="")
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    created_by: Mapped[str] = mapped_column(sa.String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    lines: Mapped[list[ChargeLine]] = relationship(order_by="ChargeLine.address", viewonly=True)


class ChargeLine(db.Model):
    """One mailbox of a daily charge: its address and class as they were that day, and its price."""

    __tablename__ = "charge_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_entries.id", ondelete="CASCADE"), index=True)
    mailbox_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="SET NULL"), index=True
    )
    address: Mapped[str] = mapped_column(sa.String(320))
    service_class_id: Mapped[int] = mapped_column(sa.ForeignKey("service_classes.id"))
    class_name: Mapped[str] = mapped_column(sa.String(100))
    centipoints: Mapped[int] = mapped_column(sa.BigInteger)


class RechargeRequest(db.Model):
    """A customer's request to recharge an amount in EUR, paid by bank transfer with its reference.

    Staff confirm the receipt (which writes one credit entry, `entry_id`) or cancel it.
    """

    __tablename__ = "recharge_requests"
    __table_args__ = (
        sa.CheckConstraint(RechargeState.check("state"), name="state"),
        sa.CheckConstraint("eur_cents > 0", name="eur_cents"),
        sa.Index("ix_recharge_requests_customer", "customer_id", "created_at"),
        sa.Index("ix_recharge_requests_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    eur_cents: Mapped[int] = mapped_column(sa.BigInteger)
    reference: Mapped[str] = mapped_column(sa.String(40), unique=True)
    state: Mapped[str] = mapped_column(sa.String(16), default=RechargeState.REQUESTED.value)
    method: Mapped[str] = mapped_column(sa.String(32), default="bank_transfer")
    requested_by: Mapped[str] = mapped_column(sa.String(254), default="")
    confirmed_by: Mapped[str | None] = mapped_column(sa.String(254))
    received_eur_cents: Mapped[int | None] = mapped_column(sa.BigInteger)
    entry_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_entries.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship()
