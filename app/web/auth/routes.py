"""Login, logout, and the user's own account page."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, request, session, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from markupsafe import Markup

from app.extensions import db
from app.models import User
from app.services import sessions, totp, users
from app.services.access import Actor
from app.services.attempts import TooManyAttempts
from app.services.errors import Conflict, ValidationError
from app.web import current_actor, is_fragment_request, render
from app.web.auth.forms import LoginForm, password_change

bp = Blueprint("auth", __name__)


def home_url() -> str:
    if current_user.is_staff:
        return url_for("admin.customers")
    return url_for("portal.dashboard", customer_id=current_user.customer_id)


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    # Browsers read a backslash as a slash, so "/\\evil.example" would leave the site.
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(home_url())


PENDING_KEY = "pending_login"
# The password step is good for this long while the code is asked for.
PENDING_SECONDS = 600


def _fresh_session() -> None:
    """Drop whatever the cookie held (no session fixation), keeping only the language."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _sign_in(user):
    _fresh_session()
    token = sessions.start(user, request.remote_addr, request.user_agent.string)
    login_user(user)
    session["sid"] = token


def _pending_user():
    """The user who passed the password step and still owes a code; grants nothing by itself."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        return None
    user = db.session.get(User, int(pending.get("uid", 0)))
    if user is None or not user.active or not user.needs_totp:
        return None
    return user


def _back_to_login():
    if PENDING_KEY in session:
        session.pop(PENDING_KEY)
        flash(_("Il tempo per inserire il codice è scaduto: accedi di nuovo."), "warn")
    return redirect(url_for("auth.login"))


def _login_actor(user) -> Actor:
    return Actor.for_user(user, ip=request.remote_addr)


def _too_many(page: str, error: TooManyAttempts, **context):
    response = render(page, error=error.message, status=429, **context)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_url())
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = users.authenticate(form.email.data, form.password.data, request.remote_addr)
        except TooManyAttempts as e:
            return _too_many("auth/login.html", e, form=form)
        if user is not None:
            target = _safe_next(request.args.get("next"))
            if not user.needs_totp:
                _sign_in(user)
                return redirect(target or home_url())
            _fresh_session()
            session[PENDING_KEY] = {"uid": user.id, "at": time.time(), "next": target}
            return redirect(url_for("auth.login_code" if user.has_totp else "auth.login_enrol"))
        error = _("Email o password non corretti.")
    elif request.method == "POST":
        error = _("Inserisci email e password.")
    return render("auth/login.html", form=form, error=error, status=401 if error else 200)


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    user = _pending_user()
    if user is None:
        return _back_to_login()
    if not user.has_totp:
        return redirect(url_for("auth.login_enrol"))
    error = None
    if request.method == "POST":
        try:
            ok = totp.verify(_login_actor(user), user, request.form.get("code", ""))
        except TooManyAttempts as e:
            return _too_many("auth/login_code.html", e)
        if ok:
            target = session[PENDING_KEY].get("next")
            _sign_in(user)
            return redirect(_safe_next(target) or home_url())
        error = _("Codice non valido o già usato: inserisci il codice che l'app mostra ora.")
    return render("auth/login_code.html", error=error, status=401 if error else 200)


@bp.route("/login/enrol", methods=["GET", "POST"])
def login_enrol():
    """Staff without a second factor set it up here, between the password and the panel."""
    user = _pending_user()
    if user is None:
        return _back_to_login()
    if user.has_totp:
        return redirect(url_for("auth.login_code"))
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            codes = totp.confirm_enrolment(_login_actor(user), user, request.form.get("code", ""))
        except TooManyAttempts as e:
            errors, status = {"code": e.message}, 429
        except ValidationError as e:
            errors, status = e.errors, 422
        else:
            target = _safe_next(session[PENDING_KEY].get("next")) or None
            _sign_in(user)
            return render(
                "auth/recovery_codes.html", codes=codes, next_url=target or home_url(), enrolled=True
            )
    totp.begin_enrolment(user)
    return render("auth/login_enrol.html", status=status, **_enrol_context(user, errors))


def _enrol_context(user, errors: dict) -> dict:
    uri = totp.provisioning_uri(user, current_app.config["BRAND_NAME"])
    return {"qr_svg": Markup(totp.qr_svg(uri)), "secret": totp.grouped(user.totp_secret), "errors": errors}


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    sessions.end(session.get("sid"))
    logout_user()
    _fresh_session()
    return redirect(url_for("auth.login"))


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


@bp.route("/account")
@login_required
def account():
    return render("auth/account.html", None, **_account_context())


@bp.route("/account/password", methods=["POST"])
@login_required
def account_password():
    form = request.form
    try:
        password_change(current_actor(), current_user, form, g.get("user_session_id"))
    except ValidationError as e:
        ctx = _account_context(password_errors=e.errors)
        return render("auth/account.html", "auth/_password.html", 422, **ctx)
    except TooManyAttempts as e:
        ctx = _account_context(password_errors={"current_password": e.message})
        return render("auth/account.html", "auth/_password.html", 429, **ctx)
    if not is_fragment_request():
        flash(_("Password cambiata. Gli altri accessi sono stati chiusi e i token API revocati."), "ok")
        return redirect(url_for("auth.account"))
    return render("auth/account.html", "auth/_password.html", **_account_context(password_saved=True))


@bp.route("/account/sessions/end", methods=["POST"])
@login_required
def account_sessions_end():
    """Log out everywhere, this browser included."""
    users.end_sessions(current_actor(), current_user)
    logout_user()
    _fresh_session()
    flash(_("Accesso chiuso su tutti i dispositivi. Accedi di nuovo per continuare."), "ok")
    response = redirect(url_for("auth.login"))
    if is_fragment_request():
        response.headers["HX-Redirect"] = url_for("auth.login")
    return response


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def account_twofactor():
    """Turn on the second factor from the account page (customer admins may; staff already have it)."""
    if current_user.has_totp:
        return redirect(url_for("auth.account") + "#twofactor")
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            codes = totp.confirm_enrolment(current_actor(), current_user, request.form.get("code", ""))
        except TooManyAttempts as e:
            errors, status = {"code": e.message}, 429
        except ValidationError as e:
            errors, status = e.errors, 422
        else:
            return render(
                "auth/recovery_codes.html", codes=codes, next_url=url_for("auth.account"), enrolled=True
            )
    totp.begin_enrolment(current_user)
    return render("auth/account_twofactor.html", status=status, **_enrol_context(current_user, errors))


@bp.route("/account/two-factor/recovery-codes", methods=["POST"])
@login_required
def account_recovery_codes():
    try:
        codes = totp.regenerate_recovery_codes(
            current_actor(), current_user, request.form.get("current_password", "")
        )
    except (ValidationError, TooManyAttempts, Conflict) as e:
        return _twofactor_error(e)
    return render("auth/recovery_codes.html", codes=codes, next_url=url_for("auth.account"), enrolled=False)


@bp.route("/account/two-factor/disable", methods=["POST"])
@login_required
def account_twofactor_disable():
    try:
        totp.disable(current_actor(), current_user, request.form.get("current_password", ""))
    except (ValidationError, TooManyAttempts, Conflict) as e:
        return _twofactor_error(e)
    flash(_("Verifica in due passaggi disattivata."), "ok")
    return redirect(url_for("auth.account") + "#twofactor")


def _twofactor_error(e):
    message = e.errors.get("current_password", e.message) if isinstance(e, ValidationError) else e.message
    ctx = _account_context(twofactor_errors={"current_password": message})
    return render("auth/account.html", "auth/_twofactor.html", e.status, **ctx)


@bp.route("/account/language", methods=["POST"])
@login_required
def account_language():
    locale = request.form.get("locale", "")
    try:
        users.set_locale(current_actor(), current_user, locale)
    except ValidationError as e:
        flash(e.errors.get("locale", e.message), "error")
    else:
        with force_locale(locale):
            flash(_("Lingua aggiornata."), "ok")
    # A full page load, so the whole interface (navigation too) switches at once; the
    # footer's switch comes back to the page it was on.
    target = _safe_next(request.form.get("next")) or url_for("auth.account")
    response = redirect(target)
    if is_fragment_request():
        response.headers["HX-Redirect"] = target
    return response


@bp.route("/account/tokens", methods=["POST"])
@login_required
def account_token_new():
    name = request.form.get("name", "")
    try:
        _token, plaintext = users.create_token(
            current_actor(), current_user, name, request.form.get("current_password", "")
        )
    except ValidationError as e:
        ctx = _account_context(token_name=name, token_errors=e.errors)
        return render("auth/account.html", "auth/_tokens.html", 422, **ctx)
    except TooManyAttempts as e:
        ctx = _account_context(token_name=name, token_errors={"current_password": e.message})
        return render("auth/account.html", "auth/_tokens.html", 429, **ctx)
    # Rendered, not redirected: the token is shown this once and never stored in clear.
    return render("auth/account.html", "auth/_tokens.html", **_account_context(new_token=plaintext))


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def account_token_revoke(token_id: int):
    users.revoke_token(current_actor(), current_user, token_id)
    notice = _("Token revocato: non funziona più.")
    if not is_fragment_request():
        flash(notice, "ok")
        return redirect(url_for("auth.account") + "#tokens")
    return render("auth/account.html", "auth/_tokens.html", **_account_context(token_notice=notice))
