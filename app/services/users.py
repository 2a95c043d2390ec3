"""Panel users (staff and customer admins) and their API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import ApiToken, Customer, User
from app.models.base import utcnow
from app.models.users import ROLES
from app.services import attempts, audit, fields, passwords, sessions
from app.services.access import Actor, get_scoped, require_staff
from app.services.addresses import external_address
from app.services.errors import Conflict, FieldErrors, NotFound, PermissionDenied, ValidationError

TOKEN_PREFIX = "cp_"


@dataclass(frozen=True, eq=False)
class UserDraft:
    """A new panel user whose fields passed their checks; the password is hashed when applied."""

    email: str
    password: str = field(repr=False)
    role: str
    customer_id: int | None
    locale: str


def validate_user(
    actor: Actor,
    *,
    email: object,
    password: object,
    role: object,
    customer_id: object = None,
    locale: str = "it",
) -> UserDraft:
    """Staff only. Every bad field at once, then an email already in use (Conflict); writes nothing."""
    require_staff(actor)
    problems = FieldErrors()
    address = problems.collect(external_address, email, "email")
    problems.collect(
        passwords.check_strength,
        password,
        address=email if address is None else address,
        staff=role == "staff",
    )
    if role not in ROLES:
        problems.add("role", _("Il ruolo deve essere staff o customer_admin."))
    elif role == "customer_admin":
        if customer_id in (None, ""):
            problems.add("customer_id", _("Indica il cliente che questo utente amministra."))
        elif (
            fields.row_id(customer_id) is None or db.session.get(Customer, fields.row_id(customer_id)) is None
        ):
            problems.add("customer_id", _("Il cliente %(c)s non esiste.", c=str(customer_id)[:20]))
    elif customer_id not in (None, ""):
        problems.add("customer_id", _("Un utente dello staff non appartiene a un cliente."))
    problems.raise_if_any()
    if db.session.scalar(sa.select(User.id).where(User.email == address)) is not None:
        raise Conflict(_("Esiste già un utente con email %(e)s.", e=address), field="email")
    return UserDraft(
        email=address,
        password=password,
        role=role,
        customer_id=fields.row_id(customer_id) if role == "customer_admin" else None,
        locale=locale if locale in ("it", "en") else "it",
    )


def apply_user(actor: Actor, draft: UserDraft) -> User:
    user = User(
        email=draft.email,
        password_hash=passwords.hash_user_password(draft.password, draft.customer_id),
        role=draft.role,
        customer_id=draft.customer_id,
        locale=draft.locale,
    )
    db.session.add(user)
    db.session.flush()
    audit.record(
        actor,
        "user.create",
        customer_id=user.customer_id,
        target=draft.email,
        changes={"role": [None, draft.role]},
    )
    db.session.commit()
    return user


def create_user(actor: Actor, **values: object) -> User:
    """Staff only; values are validate_user's (email, password, role, customer_id, locale)."""
    return apply_user(actor, validate_user(actor, **values))


def authenticate(email: object, password: object, ip: str | None = None) -> User | None:
    """The user whose password this is, or None; TooManyAttempts after too many failures
    for this account or from this address (checked before the password is)."""
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        return None
    attempt = attempts.begin(email, ip)
    user = db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        # Same work either way, so timing does not tell which emails exist.
        passwords.verify_user_password(_DUMMY_HASH(), password)
        return None
    if not passwords.verify_user_password(user.password_hash, password):
        return None
    attempt.succeeded()
    return user


_dummy: list[str] = []


def _DUMMY_HASH() -> str:
    if not _dummy:
        _dummy.append(passwords.hash_user_password(secrets.token_hex(8)))
    return _dummy[0]


def password_matches(actor: Actor, user: User, current: object) -> bool:
    """The current-password check before a sensitive change, limited like a login."""
    attempt = attempts.begin(user.email, actor.ip)
    if isinstance(current, str) and current and passwords.verify_user_password(user.password_hash, current):
        attempt.succeeded()
        return True
    return False


def check_current_password(actor: Actor, user: User, current: object) -> None:
    if not password_matches(actor, user, current):
        raise ValidationError.one("current_password", _("La password attuale non è corretta."))


def change_password(
    actor: Actor, user: User, current: object, new: object, keep_session_id: int | None = None
) -> None:
    """Change one's own password (see _replace_password for what else ends)."""
    if actor.user_id != user.id:
        raise PermissionDenied(_("Puoi cambiare solo la tua password."))
    problems = FieldErrors()
    problems.collect(passwords.check_strength, new, "new_password", address=user.email, staff=user.is_staff)
    if not password_matches(actor, user, current):
        problems.add("current_password", _("La password attuale non è corretta."))
    problems.raise_if_any()
    _replace_password(actor, user, new, keep_session_id)


def _replace_password(actor: Actor, user: User, new: str, keep_session_id: int | None = None) -> None:
    """A new password ends the user's other sessions and revokes every API token:
    whoever learnt the old password may have used it to open them."""
    user.password_hash = passwords.hash_user_password(new, user.customer_id)
    ended = sessions.end_all(user.id, keep_id=keep_session_id)
    revoked = db.session.execute(sa.delete(ApiToken).where(ApiToken.user_id == user.id)).rowcount or 0
    audit.record(
        actor,
        "user.password",
        customer_id=user.customer_id,
        target=user.email,
        changes={"sessions_ended": [None, ended], "tokens_revoked": [None, revoked]},
    )
    db.session.commit()


def end_sessions(actor: Actor, user: User) -> int:
    """Log out everywhere: every session of the user ends, this one included."""
    if actor.user_id != user.id:
        require_staff(actor)
    ended = sessions.end_all(user.id)
    audit.record(
        actor,
        "user.sessions_end",
        customer_id=user.customer_id,
        target=user.email,
        changes={"ended": [None, ended]},
    )
    db.session.commit()
    return ended


def set_locale(actor: Actor, user: User, locale: object) -> None:
    if locale not in ("it", "en"):
        raise ValidationError.one("locale", _("Lingua non disponibile."))
    if user.locale != locale:
        audit.record(
            actor,
            "user.locale",
            customer_id=user.customer_id,
            target=user.email,
            changes={"locale": [user.locale, locale]},
        )
        user.locale = locale
        db.session.commit()


def find_user(email: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        raise NotFound(_("Nessun utente con email %(e)s.", e=email))
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    actor: Actor, user: User, name: object = "", current_password: object = None
) -> tuple[ApiToken, str]:
    """Make a bearer token; the plaintext is returned once and never stored.

    Users making their own token confirm their password first: a token outlives the
    session, so a borrowed browser must not be enough to get one.
    """
    if actor.user_id != user.id:
        require_staff(actor)
    label = fields.text(name, "name", max_len=100, required=False)
    if actor.user_id == user.id:
        check_current_password(actor, user, current_password)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=label, prefix=plaintext[:10], token_hash=_token_hash(plaintext))
    db.session.add(token)
    db.session.flush()
    audit.record(
        actor,
        "token.create",
        customer_id=user.customer_id,
        target=user.email,
        changes={"token": [None, token.prefix + "…"]},
    )
    db.session.commit()
    return token, plaintext


def user_for_token(plaintext: str) -> User | None:
    if not plaintext or not plaintext.startswith(TOKEN_PREFIX):
        return None
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _token_hash(plaintext)))
    if token is None or not token.user.active:
        return None
    now = utcnow()
    # Write at most once a minute per token: the API should not write on every read.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
        db.session.commit()
    return token.user


def list_tokens(user: User) -> list[ApiToken]:
    return list(
        db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(actor: Actor, user: User, token_id: object) -> None:
    rid = fields.row_id(token_id)
    token = db.session.get(ApiToken, rid) if rid is not None else None
    if token is None or token.user_id != user.id or (actor.user_id != user.id and not actor.is_staff):
        raise NotFound(_("Token non trovato."))
    audit.record(
        actor,
        "token.revoke",
        customer_id=user.customer_id,
        target=user.email,
        changes={"token": [token.prefix + "…", None]},
    )
    db.session.delete(token)
    db.session.commit()


def list_users(actor: Actor, customer_id: int | None = None) -> list[User]:
    require_staff(actor)
    stmt = sa.select(User).options(sa.orm.joinedload(User.customer)).order_by(User.role.desc(), User.email)
    if customer_id is not None:
        stmt = stmt.where(User.customer_id == customer_id)
    return list(db.session.scalars(stmt))


def set_active(actor: Actor, user_id: object, active: bool) -> User:
    """Deactivate (no login, no API) or reactivate a panel user; support only."""
    require_staff(actor)
    user = get_scoped(actor, User, user_id, _("Utente non trovato."))
    if user.id == actor.user_id and not active:
        raise Conflict(_("Non puoi disattivare il tuo stesso utente."))
    if user.active != active:
        audit.record(
            actor,
            "user.activate" if active else "user.deactivate",
            customer_id=user.customer_id,
            target=user.email,
            changes={"active": [user.active, active]},
        )
        user.active = active
        if not active:
            sessions.end_all(user.id)
        db.session.commit()
    return user


# --- Operators: a password set by support or the CLI ---------------------------------------
# (Kept apart from the self-service functions above.)


def set_password(actor: Actor, user: User, new: object) -> None:
    """Support sets a panel user's password without the old one (forgotten, or a first login)."""
    require_staff(actor)
    passwords.check_strength(new, "password", address=user.email, staff=user.is_staff)
    _replace_password(actor, user, new)


def get_user(user_id: object) -> User | None:
    """The user with this id, or None: for the login steps after the password, before anyone is signed in."""
    user_id = fields.row_id(user_id)
    return db.session.get(User, user_id) if user_id else None


def emails(user_ids) -> dict[int, str]:
    """{user id: email} in one query, for pages that name who did what."""
    ids = {i for i in user_ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(sa.select(User.id, User.email).where(User.id.in_(ids))).all())
