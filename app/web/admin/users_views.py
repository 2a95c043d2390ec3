"""Panel users: staff and customer admins; create, deactivate, reactivate."""

from __future__ import annotations

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask_babel import gettext as _

from app.extensions import db
from app.models import Customer
from app.services import totp, users
from app.services.errors import Conflict, ValidationError
from app.web import current_actor, is_fragment_request, render, staff_required
from app.web.admin.routes import bp


def _context(**overrides) -> dict:
    ctx = {
        "all_users": users.list_users(current_actor()),
        "customers": db.session.execute(sa.select(Customer.id, Customer.name).order_by(Customer.name)).all(),
        "values": {"email": "", "role": "customer_admin", "customer_id": ""},
        "errors": {},
        "notice": None,
        "error": None,
    }
    ctx.update(overrides)
    return ctx


@bp.route("/users", methods=["GET", "POST"], endpoint="users")
@staff_required
def users_list():
    if request.method == "GET":
        return render("admin/users.html", None, **_context())
    values = {k: request.form.get(k, "") for k in ("email", "role", "customer_id")}
    try:
        user = users.create_user(
            current_actor(),
            email=values["email"],
            password=request.form.get("password", ""),
            role=values["role"],
            customer_id=values["customer_id"] if values["role"] == "customer_admin" else None,
        )
    except ValidationError as e:
        return render(
            "admin/users.html", "admin/_users.html", 422, **_context(values=values, errors=e.errors)
        )
    except Conflict as e:
        errors = {e.field or "email": e.message}
        return render("admin/users.html", "admin/_users.html", 409, **_context(values=values, errors=errors))
    notice = _("Utente %(e)s creato.", e=user.email)
    if not is_fragment_request():
        flash(notice, "ok")
        return redirect(url_for("admin.users"))
    return render("admin/users.html", "admin/_users.html", **_context(notice=notice))


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@staff_required
def user_active(user_id: int):
    active = request.form.get("active") == "1"
    status, notice, error = 200, None, None
    try:
        user = users.set_active(current_actor(), user_id, active)
    except Conflict as e:
        status, error = 409, e.message
    else:
        notice = (
            _("%(e)s può di nuovo accedere.", e=user.email)
            if active
            else _("%(e)s non può più accedere.", e=user.email)
        )
        if not is_fragment_request():
            flash(notice, "ok")
            return redirect(url_for("admin.users"))
    return render("admin/users.html", "admin/_users.html", status, **_context(notice=notice, error=error))


@bp.route("/users/<int:user_id>/two-factor/reset", methods=["POST"])
@staff_required
def user_totp_reset(user_id: int):
    """A lost phone: the user sets the second factor up again at the next login (audited)."""
    status, notice, error = 200, None, None
    try:
        user = totp.reset(current_actor(), user_id)
    except Conflict as e:
        status, error = 409, e.message
    else:
        notice = _(
            "Verifica in due passaggi di %(e)s azzerata: al prossimo accesso dovrà configurarla di nuovo.",
            e=user.email,
        )
        if not is_fragment_request():
            flash(notice, "ok")
            return redirect(url_for("admin.users"))
    return render("admin/users.html", "admin/_users.html", status, **_context(notice=notice, error=error))
