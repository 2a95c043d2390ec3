"""The second factor: TOTP codes (RFC 6238: SHA-1, 30 s, 6 digits) and recovery codes.

Staff must have it; a customer admin may turn it on. A code is accepted one
step either side of now (clocks drift) and never twice; a recovery code once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

import segno
import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import RecoveryCode, User
from app.models.base import utcnow
from app.services import attempts, audit, sessions, users
from app.services.access import Actor, require_staff
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationError

STEP_SECONDS = 30
DIGITS = 6
RECOVERY_CODES = 10
# No 0/O or 1/I/L: a code copied from paper is read back right.
_RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


def code_at(secret: str, step: int) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def _matching_step(secret: str, code: str, after: int | None) -> int | None:
    now = current_step()
    for step in (now - 1, now, now + 1):
        if (after is None or step > after) and hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def provisioning_uri(user: User, issuer: str) -> str:
    label = quote(f"{issuer}:{user.email}", safe="@:")
    # Percent-encoded as RFC 3986 wants (a space is %20: some apps show a "+" as a plus).
    query = urlencode(
        {"secret": user.totp_secret, "issuer": issuer, "digits": DIGITS, "period": STEP_SECONDS},
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """The QR code as inline SVG, drawn here: the secret never leaves for a chart service."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff")


def grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _clean(code: object) -> str:
    return "".join(str(code or "").split()).replace("-", "").upper()[:32]


def _code_hash(code: str) -> str:
    return hashlib.sha256(_clean(code).encode()).hexdigest()


def begin_enrolment(user: User) -> User:
    """Give the user a secret to scan (kept until confirmed, so a reload shows the same one)."""
    if user.has_totp:
        raise Conflict(_("La verifica in due passaggi è già attiva."))
    if not user.totp_secret:
        user.totp_secret = new_secret()
        db.session.commit()
    return user


def confirm_enrolment(actor: Actor, user: User, code: object) -> list[str]:
    """Turn the second factor on once a code from the new secret checks; returns the recovery codes."""
    if user.has_totp or not user.totp_secret:
        raise Conflict(_("Nessuna attivazione in corso: ricarica la pagina."))
    attempt = attempts.begin(user.email, actor.ip)
    step = _matching_step(user.totp_secret, _clean(code), None)
    if step is None:
        raise ValidationError.one(
            "code", _("Il codice non è corretto: controlla l'ora del telefono e inserisci il codice attuale.")
        )
    attempt.succeeded()
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    codes = _replace_recovery_codes(user)
    audit.record(actor, "user.totp_enable", customer_id=user.customer_id, target=user.email)
    db.session.commit()
    return codes


def verify(actor: Actor, user: User, code: object) -> bool:
    """A code from the app (not used before) or an unused recovery code; a recovery code is spent."""
    if not user.has_totp:
        return False
    attempt = attempts.begin(user.email, actor.ip)
    cleaned = _clean(code)
    if cleaned.isdigit() and len(cleaned) == DIGITS:
        step = _matching_step(user.totp_secret, cleaned, user.totp_last_step)
        if step is None:
            return False
        # Taken in one UPDATE, so two requests racing with the same code cannot both pass.
        taken = db.session.execute(
            sa.update(User)
            .where(User.id == user.id, sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
        ).rowcount
        db.session.commit()
        if taken:
            attempt.succeeded()
        return bool(taken)
    used = db.session.execute(
        sa.update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _code_hash(cleaned),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    ).rowcount
    if not used:
        db.session.rollback()
        return False
    attempt.succeeded()
    audit.record(
        actor,
        "user.recovery_code",
        customer_id=user.customer_id,
        target=user.email,
        changes={"left": [None, remaining_recovery_codes(user)]},
    )
    db.session.commit()
    return True


def remaining_recovery_codes(user: User) -> int:
    stmt = sa.select(sa.func.count()).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    return db.session.scalar(stmt) or 0


def _replace_recovery_codes(user: User) -> list[str]:
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _i in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _j in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_code_hash(raw)))
    return codes


def regenerate_recovery_codes(actor: Actor, user: User, current_password: object) -> list[str]:
    """New recovery codes (the old ones stop working); shown once."""
    if actor.user_id != user.id:
        raise PermissionDenied(_("Puoi gestire solo la tua verifica in due passaggi."))
    if not user.has_totp:
        raise Conflict(_("La verifica in due passaggi non è attiva."))
    users.check_current_password(actor, user, current_password)
    codes = _replace_recovery_codes(user)
    audit.record(actor, "user.recovery_codes", customer_id=user.customer_id, target=user.email)
    db.session.commit()
    return codes


def disable(actor: Actor, user: User, current_password: object) -> None:
    """A customer admin turns the second factor off; staff cannot (it is required for them)."""
    if actor.user_id != user.id:
        raise PermissionDenied(_("Puoi gestire solo la tua verifica in due passaggi."))
    if user.is_staff:
        raise PermissionDenied(_("Per il supporto tecnico la verifica in due passaggi è obbligatoria."))
    if not user.has_totp:
        raise Conflict(_("La verifica in due passaggi non è attiva."))
    users.check_current_password(actor, user, current_password)
    _clear(user)
    audit.record(actor, "user.totp_disable", customer_id=user.customer_id, target=user.email)
    db.session.commit()


def reset(actor: Actor, user_id: object) -> User:
    """Support clears another user's enrolment (a lost phone): they enrol again at next login.

    Their sessions end too: whoever holds the lost phone may hold a session.
    """
    require_staff(actor)
    user = db.session.get(User, int(user_id)) if str(user_id).isdigit() and len(str(user_id)) < 12 else None
    if user is None:
        raise NotFound(_("Utente non trovato."))
    if user.id == actor.user_id:
        raise Conflict(_("Non puoi azzerare la tua stessa verifica in due passaggi: chiedi a un collega."))
    if not user.totp_secret:
        raise Conflict(_("%(e)s non ha la verifica in due passaggi attiva.", e=user.email))
    _clear(user)
    sessions.end_all(user.id)
    audit.record(actor, "user.totp_reset", customer_id=user.customer_id, target=user.email)
    db.session.commit()
    return user


def _clear(user: User) -> None:
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
