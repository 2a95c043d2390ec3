"""Panel users: staff and customer admins; create, deactivate, reactivate, reset the second factor."""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _

from app.services import customers, totp, users
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.respond import FORM_ERRORS, done, failed, field_errors, render

PAGE, FRAGMENT = "admin/users.html", "admin/_users.html"


def _context(**overrides) -> dict:
    actor = current_actor()
    ctx = {
        "all_users": users.list_users(actor),
        "customers": customers.names(actor),
        "values": {"email": "", "role": "customer_admin", "customer_id": ""},
        "errors": {},
        "notice": None,
        "error": None,
    }
    ctx.update(overrides)
    return ctx


def _done(notice: str):
    return done(notice, url_for("admin.users"), FRAGMENT, lambda: _context(notice=notice))


@bp.route("/users", methods=["GET", "POST"], endpoint="users")
@staff_required
def users_list():
    if request.method == "GET":
        return render(PAGE, **_context())
    values = {k: request.form.get(k, "") for k in ("email", "role", "customer_id")}
    try:
        user = users.create_user(
            current_actor(),
            email=values["email"],
            password=request.form.get("password", ""),
            role=values["role"],
            customer_id=values["customer_id"] if values["role"] == "customer_admin" else None,
        )
    except FORM_ERRORS as e:
        return failed(e, PAGE, FRAGMENT, **_context(values=values, errors=field_errors(e, "email")))
    return _done(_("Utente %(e)s creato.", e=user.email))


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@staff_required
def user_active(user_id: int):
    active = request.form.get("active") == "1"
    try:
        user = users.set_active(current_actor(), user_id, active)
    except FORM_ERRORS as e:
        return failed(e, PAGE, FRAGMENT, **_context(error=e.message))
    if active:
        return _done(_("%(e)s può di nuovo accedere.", e=user.email))
    return _done(_("%(e)s non può più accedere.", e=user.email))


@bp.route("/users/<int:user_id>/two-factor/reset", methods=["POST"])
@staff_required
def user_totp_reset(user_id: int):
    """A lost phone: the user sets the second factor up again at the next login (audited)."""
    try:
        user = totp.reset(current_actor(), user_id)
    except FORM_ERRORS as e:
        return failed(e, PAGE, FRAGMENT, **_context(error=e.message))
    return _done(
        _(
            "Verifica in due passaggi di %(e)s azzerata: al prossimo accesso dovrà configurarla di nuovo.",
            e=user.email,
        )
    )
