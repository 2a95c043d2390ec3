"""The signed-in user's own account: password, second factor, open sessions, language, API tokens."""

from __future__ import annotations

from flask import flash, g, redirect, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user

from app.services import sessions, totp, users
from app.services.attempts import TooManyAttempts
from app.services.errors import Conflict, ValidationError
from app.web import current_actor
from app.web.auth import bp
from app.web.auth.forms import password_change
from app.web.auth.login import enrolment, fresh_session, safe_next
from app.web.respond import done, failed, field_errors, go_to, render

PAGE = "auth/account.html"


def _account_context(**overrides) -> dict:
    ctx = {
        "password_errors": {},
        "password_saved": False,
        "tokens": users.list_tokens(current_user),
        "token_name": "",
        "token_errors": {},
        "new_token": None,
        "token_notice": None,
        "sessions": sessions.list_for(current_user),
        "current_session_id": g.get("user_session_id"),
        "recovery_left": totp.remaining_recovery_codes(current_user) if current_user.has_totp else 0,
        "twofactor_errors": {},
    }
    ctx.update(overrides)
    return ctx


def _account_url(section: str = "") -> str:
    return url_for("auth.account") + (f"#{section}" if section else "")


@bp.route("/account")
@login_required
def account():
    return render(PAGE, **_account_context())


@bp.route("/account/password", methods=["POST"])
@login_required
def account_password():
    try:
        password_change(current_actor(), current_user, request.form, g.get("user_session_id"))
    except (ValidationError, TooManyAttempts) as e:
        ctx = _account_context(password_errors=field_errors(e, "current_password"))
        return failed(e, PAGE, "auth/_password.html", **ctx)
    return done(
        _("Password cambiata. Gli altri accessi sono stati chiusi e i token API revocati."),
        _account_url(),
        "auth/_password.html",
        lambda: _account_context(password_saved=True),
    )


@bp.route("/account/sessions/end", methods=["POST"])
@login_required
def account_sessions_end():
    """Log out everywhere, this browser included."""
    users.end_sessions(current_actor(), current_user)
    logout_user()
    fresh_session()
    return done(
        _("Accesso chiuso su tutti i dispositivi. Accedi di nuovo per continuare."),
        url_for("auth.login"),
        navigate=True,
    )


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def account_twofactor():
    """Turn on the second factor from the account page (customer admins may; staff already have it)."""
    if current_user.has_totp:
        return redirect(_account_url("twofactor"))
    return enrolment(
        current_actor(),
        current_user,
        "auth/account_twofactor.html",
        lambda codes: render("auth/recovery_codes.html", codes=codes, next_url=_account_url(), enrolled=True),
    )


@bp.route("/account/two-factor/recovery-codes", methods=["POST"])
@login_required
def account_recovery_codes():
    try:
        codes = totp.regenerate_recovery_codes(
            current_actor(), current_user, request.form.get("current_password", "")
        )
    except (ValidationError, TooManyAttempts, Conflict) as e:
        return _twofactor_refused(e)
    return render("auth/recovery_codes.html", codes=codes, next_url=_account_url(), enrolled=False)


@bp.route("/account/two-factor/disable", methods=["POST"])
@login_required
def account_twofactor_disable():
    try:
        totp.disable(current_actor(), current_user, request.form.get("current_password", ""))
    except (ValidationError, TooManyAttempts, Conflict) as e:
        return _twofactor_refused(e)
    return done(_("Verifica in due passaggi disattivata."), _account_url("twofactor"), navigate=True)


def _twofactor_refused(e):
    errors = field_errors(e, "current_password")
    ctx = _account_context(twofactor_errors={"current_password": errors.get("current_password", e.message)})
    return failed(e, PAGE, "auth/_twofactor.html", **ctx)


@bp.route("/account/language", methods=["POST"])
@login_required
def account_language():
    locale = request.form.get("locale", "")
    # A full page load, so the whole interface (navigation too) switches at once; the
    # footer's switch comes back to the page it was on.
    target = safe_next(request.form.get("next")) or _account_url()
    try:
        users.set_locale(current_actor(), current_user, locale)
    except ValidationError as e:
        flash(e.errors.get("locale", e.message), "error")
        return go_to(target)
    with force_locale(locale):
        message = _("Lingua aggiornata.")
    return done(message, target, navigate=True)


@bp.route("/account/tokens", methods=["POST"])
@login_required
def account_token_new():
    name = request.form.get("name", "")
    try:
        _token, plaintext = users.create_token(
            current_actor(), current_user, name, request.form.get("current_password", "")
        )
    except (ValidationError, TooManyAttempts) as e:
        ctx = _account_context(token_name=name, token_errors=field_errors(e, "current_password"))
        return failed(e, PAGE, "auth/_tokens.html", **ctx)
    # Rendered, not redirected: the token is shown this once and never stored in clear.
    return render(PAGE, "auth/_tokens.html", **_account_context(new_token=plaintext))


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def account_token_revoke(token_id: int):
    users.revoke_token(current_actor(), current_user, token_id)
    notice = _("Token revocato: non funziona più.")
    return done(
        notice, _account_url("tokens"), "auth/_tokens.html", lambda: _account_context(token_notice=notice)
    )
