"""Signed-in sessions, kept server-side so that they can be listed and ended.

The session cookie carries a random id; the table keeps its SHA-256. A session
ends when its row goes: at logout, on a password change (every other one), on
"log out everywhere", when the user is disabled, or after an idle time.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import User, UserSession
from app.models.base import utcnow

# A page view does not write: last_seen_at moves at most once a minute.
TOUCH_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User, ip: str | None, user_agent: str | None) -> str:
    """A new session for `user`; returns the id for the cookie (never stored in clear)."""
    token = secrets.token_urlsafe(32)
    # Rows of sessions left to idle out are swept here, so the table does not grow forever.
    db.session.execute(
        sa.delete(UserSession).where(
            UserSession.user_id == user.id, UserSession.last_seen_at < utcnow() - idle_limit(user)
        )
    )
    db.session.add(
        UserSession(
            user_id=user.id,
            token_hash=_hash(token),
            ip=(ip or "")[:45] or None,
            user_agent=(user_agent or "")[:255],
        )
    )
    db.session.commit()
    return token


def idle_limit(user: User) -> timedelta:
    hours = current_app.config["SESSION_IDLE_STAFF_HOURS" if user.is_staff else "SESSION_IDLE_CUSTOMER_HOURS"]
    return timedelta(hours=float(hours))


def resume(token: object, user_id: object) -> UserSession | None:
    """The live session the cookie names, or None (ended, idle too long, user disabled)."""
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    # One query for the session and its user: this runs on every request.
    row = db.session.scalar(
        sa.select(UserSession)
        .options(sa.orm.joinedload(UserSession.user))
        .where(UserSession.token_hash == _hash(token))
    )
    if row is None or str(row.user_id) != str(user_id):
        return None
    now = utcnow()
    if not row.user.active or now - row.last_seen_at > idle_limit(row.user):
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return row


def end(token: object) -> None:
    if isinstance(token, str) and token:
        db.session.execute(sa.delete(UserSession).where(UserSession.token_hash == _hash(token)))
        db.session.commit()


def end_all(user_id: int, keep_id: int | None = None) -> int:
    """End the user's sessions but `keep_id`; the caller commits (with its audit row)."""
    stmt = sa.delete(UserSession).where(UserSession.user_id == user_id)
    if keep_id is not None:
        stmt = stmt.where(UserSession.id != keep_id)
    return db.session.execute(stmt).rowcount or 0


def list_for(user: User) -> list[UserSession]:
    stmt = (
        sa.select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.last_seen_at >= utcnow() - idle_limit(user))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )
    return list(db.session.scalars(stmt))
