"""Login, logout, and the user's own account page."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app.extensions import limiter
from app.services import users
from app.services.errors import ValidationError
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


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_url())
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = users.authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or home_url())
        error = _("Email o password non corretti.")
    elif request.method == "POST":
        error = _("Inserisci email e password.")
    return render("auth/login.html", form=form, error=error, status=401 if error else 200)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


@bp.before_app_request
def _drop_deactivated_session():
    # Flask-Login checks `active` only at login: a user deactivated meanwhile is logged out here.
    if current_user.is_authenticated and not current_user.active:
        logout_user()


def _account_context(**overrides) -> dict:
    ctx = {
        "password_errors": {},
        "password_saved": False,
        "tokens": users.list_tokens(current_user),
        "token_name": "",
        "token_errors": {},
        "new_token": None,
        "token_notice": None,
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
        password_change(current_actor(), current_user, form)
    except ValidationError as e:
        ctx = _account_context(password_errors=e.errors)
        return render("auth/account.html", "auth/_password.html", 422, **ctx)
    if not is_fragment_request():
        flash(_("Password cambiata."), "ok")
        return redirect(url_for("auth.account"))
    return render("auth/account.html", "auth/_password.html", **_account_context(password_saved=True))


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
        _token, plaintext = users.create_token(current_actor(), current_user, name)
    except ValidationError as e:
        ctx = _account_context(token_name=name, token_errors=e.errors)
        return render("auth/account.html", "auth/_tokens.html", 422, **ctx)
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
