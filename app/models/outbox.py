"""The outbox: every email the panel sends, kept with its fate (app/services/outbox.py)."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.enums import Locale, OutboxState

PENDING = sa.text("state = 'pending'")


class Outbox(db.Model):
    """One email, written when it is decided and sent later, by a worker or the cron.

    pending -> sent, or pending -> failed once its attempts run out or the relay
    refuses it for good (staff may put a failed one back to pending). The body is
    rendered by the caller, in the recipient's language, and never changes.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.CheckConstraint(OutboxState.check("state"), name="state"),
        sa.CheckConstraint(Locale.check("locale"), name="locale"),
        sa.CheckConstraint("attempts >= 0", name="attempts_positive"),
        # A customer's mails, newest first (the staff card).
        sa.Index("ix_outbox_customer_created", "customer_id", "created_at"),
        # What the sender looks at: only the mails still to send, by when they are due.
        sa.Index("ix_outbox_pending", "next_attempt_at", sqlite_where=PENDING, postgresql_where=PENDING),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: a provider-wide mail, about no customer.
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(32))  # capacity_requested, capacity_decided, ...
    to_addresses: Mapped[str] = mapped_column(sa.Text)  # "a@x.example, b@y.example"
    subject: Mapped[str] = mapped_column(sa.String(500))
    body_text: Mapped[str] = mapped_column(sa.Text)
    locale: Mapped[str] = mapped_column(sa.String(8), default=Locale.IT.value)
    state: Mapped[str] = mapped_column(sa.String(16), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Why the last attempt did not go (short, for staff; never a secret).
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The sender that took it, and until when: another sender leaves it alone meanwhile.
    claimed_by: Mapped[str | None] = mapped_column(sa.String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by a caller that wants a mail once ("this warning level"): a second one is not queued.
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)

    @property
    def recipients(self) -> list[str]:
        return [a for a in (p.strip() for p in self.to_addresses.split(",")) if a]
