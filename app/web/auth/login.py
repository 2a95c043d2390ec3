"""Login (password, then the second factor or its setup) and logout."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from markupsafe import Markup

from app.services import sessions, totp, users
from app.services.access import Actor
from app.services.attempts import TooManyAttempts
from app.services.errors import ValidationError
from app.web.auth import bp
from app.web.auth.forms import LoginForm
from app.web.respond import failed, field_errors, render


def home_url() -> str:
    if current_user.is_staff:
        return url_for("admin.customers")
    return url_for("portal.dashboard", customer_id=current_user.customer_id)


def safe_next(target: str | None) -> str | None:
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


def fresh_session() -> None:
    """Drop whatever the cookie held (no session fixation), keeping only the language."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _sign_in(user):
    fresh_session()
    token = sessions.start(user, request.remote_addr, request.user_agent.string)
    login_user(user)
    session["sid"] = token


def _pending_user():
    """The user who passed the password step and still owes a code; grants nothing by itself."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        return None
    user = users.get_user(pending.get("uid"))
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
            target = safe_next(request.args.get("next"))
            if not user.needs_totp:
                _sign_in(user)
                return redirect(target or home_url())
            fresh_session()
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
            return redirect(safe_next(target) or home_url())
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

    def signed_in(codes):
        target = safe_next(session[PENDING_KEY].get("next")) or None
        _sign_in(user)
        return render("auth/recovery_codes.html", codes=codes, next_url=target or home_url(), enrolled=True)

    return enrolment(_login_actor(user), user, "auth/login_enrol.html", signed_in)


def enrolment(actor: Actor, user, page: str, finish):
    """Setting the second factor up: GET shows the QR code; POST checks the first code from the
    app and, when it is right, answers with finish(recovery codes), which are shown once."""
    if request.method == "POST":
        try:
            codes = totp.confirm_enrolment(actor, user, request.form.get("code", ""))
        except (ValidationError, TooManyAttempts) as e:
            totp.begin_enrolment(user)
            return failed(e, page, **enrol_context(user, field_errors(e, "code")))
        return finish(codes)
    totp.begin_enrolment(user)
    return render(page, **enrol_context(user, {}))


def enrol_context(user, errors: dict) -> dict:
    uri = totp.provisioning_uri(user, current_app.config["BRAND_NAME"])
    return {"qr_svg": Markup(totp.qr_svg(uri)), "secret": totp.grouped(user.totp_secret), "errors": errors}


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    sessions.end(session.get("sid"))
    logout_user()
    fresh_session()
    return redirect(url_for("auth.login"))
