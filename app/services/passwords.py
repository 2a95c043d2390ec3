"""Password hashing: argon2id, one core per hash, in the form Dovecot verifies itself."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _

from app.services.errors import ValidationError

DOVECOT_SCHEME = "{ARGON2ID}"
MIN_LENGTH = 8
MAX_LENGTH = 128


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(
        time_cost=cfg["ARGON2_TIME_COST"], memory_cost=cfg["ARGON2_MEMORY_COST"], parallelism=1
    )


def check_strength(password: object, field: str = "password") -> str:
    if not isinstance(password, str) or not password:
        raise ValidationError.one(field, _("Inserisci una password."))
    if len(password) < MIN_LENGTH:
        raise ValidationError.one(field, _("La password deve avere almeno %(n)d caratteri.", n=MIN_LENGTH))
    if len(password) > MAX_LENGTH:
        raise ValidationError.one(field, _("La password può avere al massimo %(n)d caratteri.", n=MAX_LENGTH))
    if any(ord(c) < 32 for c in password):
        raise ValidationError.one(field, _("La password contiene caratteri non ammessi."))
    return password


def hash_mailbox_password(password: str) -> str:
    return DOVECOT_SCHEME + _hasher().hash(password)


def hash_user_password(password: str) -> str:
    return _hasher().hash(password)


def verify_user_password(stored: str, password: str) -> bool:
    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_mailbox_password(stored: str, password: str) -> bool:
    if not stored.startswith(DOVECOT_SCHEME):
        return False
    return verify_user_password(stored[len(DOVECOT_SCHEME) :], password)
