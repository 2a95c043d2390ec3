"""Panel users: list, create, deactivate and reactivate."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import User


def test_list_and_create_users(client, make, auth):
    c = make.customer(name="Cliente Utenti")
    admin = make.admin(c)
    auth.login(make.staff().email)
    page = client.get("/admin/users").get_data(as_text=True)
    assert admin.email in page and "Cliente Utenti" in page and "Amministratore cliente" in page
    response = client.post(
        "/admin/users",
        data={
            "email": "nuovo@collabra.it",
            "password": "Una-password-lunga-1",
            "role": "staff",
            "customer_id": "",
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and "nuovo@collabra.it" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(User.role).where(User.email == "nuovo@collabra.it")) == "staff"


def test_create_user_bad_input(client, make, auth):
    auth.login(make.staff().email)
    response = client.post(
        "/admin/users", data={"email": "", "password": "x", "role": "customer_admin", "customer_id": "zzz"}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for field in ("email", "password", "customer_id"):
        assert f'id="f-{field}-error"' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_deactivate_then_reactivate(client, make, auth):
    c = make.customer()
    admin = make.admin(c)
    staff = make.staff()
    auth.login(staff.email)
    response = client.post(
        f"/admin/users/{admin.id}/active", data={"active": "0"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and "non può più accedere" in response.get_data(as_text=True)
    assert "Disattivato" in response.get_data(as_text=True)
    auth.logout()
    assert auth.login(admin.email).status_code == 401
    auth.login(staff.email)
    client.post(f"/admin/users/{admin.id}/active", data={"active": "1"})
    auth.logout()
    assert auth.login(admin.email).status_code == 302


def test_cannot_deactivate_yourself(client, make, auth):
    me = make.staff()
    auth.login(me.email)
    response = client.post(f"/admin/users/{me.id}/active", data={"active": "0"})
    assert response.status_code == 409
    assert "tuo stesso utente" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, me.id).active


def test_deactivated_user_is_logged_out(client, make, auth, app):
    c = make.customer()
    admin = make.admin(c)
    auth.login(admin.email)
    assert client.get("/account").status_code == 200
    from app.services import users

    users.set_active(make.SYSTEM, admin.id, False)
    response = client.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_deactivate_without_csrf_is_refused(client, make, auth):
    c = make.customer()
    admin = make.admin(c)
    auth.login(make.staff().email)
    assert client.post(f"/admin/users/{admin.id}/active", data={"active": "0"}, csrf=False).status_code == 400
    db.session.expire_all()
    assert db.session.get(User, admin.id).active
