"""Quota usage read from Dovecot: one reading per mailbox, and how the last refresh went."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime


class MailboxUsage(db.Model):
    """The last reading of a mailbox's usage. Gone with the mailbox."""

    __tablename__ = "mailbox_usage"

    mailbox_id: Mapped[int] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # BIGINT: a 25.000 MB mailbox holds more bytes than 32 bits count.
    used_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    messages: Mapped[int] = mapped_column(sa.Integer)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsageRefresh(db.Model):
    """How the last refresh of every mailbox's usage went: one row (id 1), kept up to date.

    last_success_at is when the readings were last taken; last_error is set
    when the latest attempt failed (the readings are then older than it).
    """

    __tablename__ = "usage_refreshes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    mailboxes_read: Mapped[int] = mapped_column(sa.Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(sa.Integer, default=0)
