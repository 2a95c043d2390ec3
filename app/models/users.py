from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.customers import Customer
from app.models.enums import Locale, Role

ROLES = Role.values()


class User(UserMixin, db.Model):
    """A person who logs in to the panel (not a mailbox)."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(Role.check("role"), name="role"),
        sa.CheckConstraint(
            f"(role = '{Role.STAFF}' AND customer_id IS NULL) OR "
            f"(role = '{Role.CUSTOMER_ADMIN}' AND customer_id IS NOT NULL)",
            name="role_customer",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    customer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    locale: Mapped[str] = mapped_column(sa.String(8), default=Locale.IT.value)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Second factor (TOTP, RFC 6238). A secret without totp_enabled_at is an enrolment
    # in progress; totp_last_step is the time step of the last code accepted, so that
    # no code is accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)

    customer: Mapped[Customer | None] = relationship()

    @property
    def is_staff(self) -> bool:
        return self.role == Role.STAFF

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    @property
    def has_totp(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def needs_totp(self) -> bool:
        """Staff always sign in with a second factor; customer admins once they enable it."""
        return self.is_staff or self.has_totp


class ApiToken(db.Model):
    """A bearer token for /api/v1; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    prefix: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class UserSession(db.Model):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored,
    so deleting the row ends the session even for a copy of the cookie."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str] = mapped_column(sa.String(255), default="")

    user: Mapped[User] = relationship()


class RecoveryCode(db.Model):
    """A one-time code that stands in for a TOTP code (a lost phone); stored hashed."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
