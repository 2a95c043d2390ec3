"""Login hardening: rate limit, cookie flags, safe redirects, POST-only logout."""

from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import TEST_CONFIG


def test_login_and_logout(client, make, auth):
    staff = make.staff()
    response = auth.login(staff.email)
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/customers")
    assert client.get("/logout").status_code == 405
    assert client.get("/admin/customers").status_code == 200
    assert auth.logout().status_code == 302
    assert client.get("/admin/customers").status_code == 302


def test_wrong_password_is_a_clear_message(make, auth):
    staff = make.staff()
    response = auth.login(staff.email, "sbagliata")
    assert response.status_code == 401
    assert "Email o password non corretti" in response.get_data(as_text=True)


def test_deactivated_user_cannot_log_in(make, auth):
    from app.services import users

    staff = make.staff()
    users.set_active(make.SYSTEM, staff.id, False)
    assert auth.login(staff.email).status_code == 401


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/admin/audit", "/admin/audit"),
        ("https://evil.example/x", "/admin/customers"),
        ("//evil.example/x", "/admin/customers"),
        ("/\\evil.example", "/admin/customers"),
        ("javascript:alert(1)", "/admin/customers"),
    ],
)
def test_next_is_never_an_open_redirect(client, make, auth, next_url, expected):
    staff = make.staff()
    # `next` travels through the code step.
    response = auth.login(staff.email, next=next_url)
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_login_post_without_csrf_is_refused(client, make):
    staff = make.staff()
    response = client.post("/login", data={"email": staff.email, "password": make.PASSWORD}, csrf=False)
    assert response.status_code == 400
    assert client.get("/admin/customers").status_code == 302


def test_session_cookie_flags(client, make, auth):
    response = auth.login(make.staff().email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_needs_secret_key_and_sets_secure_cookies():
    app = create_app(
        {
            "ENV_NAME": "production",
            "SECRET_KEY": "s3cret",
            "DATA_KEYS": TEST_CONFIG["DATA_KEYS"],
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
        }
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"ENV_NAME": "production", "SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
