from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class AuditEvent(db.Model):
    """Who changed what, when, from where. Written in the same transaction as the change."""

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_customer_at", "customer_id", "at"),
        # Who held a domain name before (app/services/domain_checks.py: the MX proof).
        sa.Index("ix_audit_events_target", "target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Kept as text too, so the trail survives the user's or customer's deletion.
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(sa.String(254))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    via: Mapped[str] = mapped_column(sa.String(16))
    customer_id: Mapped[int | None] = mapped_column(index=False)
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target: Mapped[str] = mapped_column(sa.String(320), default="")
    changes: Mapped[dict] = mapped_column(sa.JSON, default=dict)
