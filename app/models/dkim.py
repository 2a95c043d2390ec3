"""A domain's DKIM keys: the one signing, the one waiting for its DNS record, the retired ones."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.mail import Domain

DKIM_STATES = ("pending", "active", "retiring", "retired")
DNS_STATUSES = ("missing", "wrong", "published")
_ACTIVE = sa.text("state = 'active'")


class DkimKey(db.Model):
    """An RSA key of a domain under its selector. The private key is kept sealed (app/services/vault.py)
    and only while the key may still sign: NULL once retired."""

    __tablename__ = "dkim_keys"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'active', 'retiring', 'retired')", name="state"),
        sa.UniqueConstraint("domain_id", "selector"),
        # One key signs for a domain at a time.
        sa.Index(
            "ux_dkim_keys_active", "domain_id", unique=True, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    domain_id: Mapped[int] = mapped_column(sa.ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    selector: Mapped[str] = mapped_column(sa.String(32))
    # Fernet token of the PEM (PKCS#8): never read unless a key is written to rspamd's Redis.
    private_key_sealed: Mapped[bytes | None] = deferred(mapped_column(sa.LargeBinary))
    # The public key, base64 of its DER (SubjectPublicKeyInfo): the p= of the TXT record.
    public_key: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(8), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the last look at the TXT record at the domain's servers found, and when.
    dns_status: Mapped[str | None] = mapped_column(sa.String(9))
    dns_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A key replaced by a newer one still has signatures on the way: kept until then.
    retire_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    domain: Mapped[Domain] = relationship()

    @property
    def txt(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_key}"
