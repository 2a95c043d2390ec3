from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.catalog import ServiceClass
from app.models.enums import Plan, RequestStatus

PLANS = Plan.values()


class Customer(db.Model):
    __tablename__ = "customers"
    __table_args__ = (
        sa.CheckConstraint(Plan.check("plan"), name="plan"),
        sa.CheckConstraint("list_external_per_list >= 0", name="list_external_per_list"),
        sa.CheckConstraint("list_external_per_customer >= 0", name="list_external_per_customer"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    vat_number: Mapped[str | None] = mapped_column(sa.String(32))
    contact_email: Mapped[str | None] = mapped_column(sa.String(254))
    plan: Mapped[str] = mapped_column(sa.String(16))
    # Contract customers may change their own mailboxes only when support enables it.
    self_service: Mapped[bool] = mapped_column(default=False)
    # Bumped by every write that must be serialised per customer (limits, addresses).
    lock_version: Mapped[int] = mapped_column(default=0)
    # Staff overrides of LIST_EXTERNAL_PER_LIST / LIST_EXTERNAL_PER_CUSTOMER (NULL: the default).
    list_external_per_list: Mapped[int | None] = mapped_column(sa.Integer)
    list_external_per_customer: Mapped[int | None] = mapped_column(sa.Integer)
    # On hold (out of credit): no mailbox logs in, mail is still kept; NULL when not.
    # The mail_users view reads it (docs/mailserver.md); app.services.hold sets it.
    on_hold_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_hold_reason: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Pay-per-Use: the point account's balance in centipoints, the sum of its ledger entries
    # (app/services/billing.py writes both in one transaction; `flask billing verify` checks).
    balance_centipoints: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Warnings in time (app/services/credit_warnings.py): the lowest level (days) already mailed
    # in this epoch; the epoch grows when a recharge lifts the balance above it again.
    warned_level: Mapped[int | None] = mapped_column(sa.Integer)
    warning_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    # Since when the credit is exhausted (NULL: it is not): the grace period counts from here.
    negative_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first day the daily charge may charge (NULL: the day the customer was created); set
    # when a contract customer moves to Pay per Use, so its contract days are never charged.
    billing_since: Mapped[date | None] = mapped_column(sa.Date)

    allowances: Mapped[list["Allowance"]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )

    @property
    def can_self_manage(self) -> bool:
        return self.plan == Plan.PAYG or self.self_service

    @property
    def on_hold(self) -> bool:
        return self.on_hold_since is not None


class Allowance(db.Model):
    """Contract: at most max_accounts mailboxes of one class of service."""

    __tablename__ = "allowances"
    __table_args__ = (
        sa.UniqueConstraint("customer_id", "service_class_id", name="uq_allowances_customer_class"),
        sa.CheckConstraint("max_accounts >= 0", name="max_accounts_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    service_class_id: Mapped[int] = mapped_column(sa.ForeignKey("service_classes.id"))
    max_accounts: Mapped[int]

    customer: Mapped[Customer] = relationship(back_populates="allowances")
    service_class: Mapped[ServiceClass] = relationship(lazy="joined")


class CapacityRequest(db.Model):
    """A customer asks sales for more accounts of a class; staff approve or reject."""

    __tablename__ = "capacity_requests"
    __table_args__ = (
        sa.CheckConstraint(RequestStatus.check("status"), name="status"),
        # One open request per customer and class: asking again revises it (capacity.request_capacity).
        sa.Index(
            "uq_capacity_requests_open_class",
            "customer_id",
            "service_class_id",
            unique=True,
            sqlite_where=sa.text(f"status = '{RequestStatus.OPEN}'"),
            postgresql_where=sa.text(f"status = '{RequestStatus.OPEN}'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    service_class_id: Mapped[int] = mapped_column(sa.ForeignKey("service_classes.id"))
    extra_accounts: Mapped[int]
    # The customer's reason for asking.
    note: Mapped[str] = mapped_column(sa.String(1000), default="")
    status: Mapped[str] = mapped_column(sa.String(16), default=RequestStatus.OPEN.value)
    # What staff granted (may differ from what was asked) and why, shown to the customer.
    granted_accounts: Mapped[int | None]
    decision_note: Mapped[str] = mapped_column(sa.String(1000), default="")
    requested_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the customer last revised the open request (number or reason).
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship()
    service_class: Mapped[ServiceClass] = relationship(lazy="joined")
