"""The second factor in tests: codes made from the user's secret, as an authenticator app would."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import User
from app.services import totp
from tests import factories


def user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))


def enrol(user: User) -> list[str]:
    """Set up the user's authenticator (scan, then type the code shown); returns the recovery codes."""
    totp.begin_enrolment(user)
    code = totp.code_at(user.totp_secret, totp.current_step())
    return totp.confirm_enrolment(factories.SYSTEM, user, code)


def next_code(user: User) -> str:
    """The code the app shows now, or the next one when this one was already used."""
    db.session.refresh(user)
    now = totp.current_step()
    for step in (now, now + 1):
        if user.totp_last_step is None or step > user.totp_last_step:
            return totp.code_at(user.totp_secret, step)
    # A test signed in twice within one 30-second step, which nobody can with a real app
    # (a code is accepted once): forget the last step rather than wait for the next one.
    user.totp_last_step = None
    db.session.commit()
    return totp.code_at(user.totp_secret, now)
