"""The account page: own password, language, API tokens."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken, User
from app.services import users
from tests.factories import PASSWORD

NEW = "Un-altra-password-2"


@pytest.fixture
def admin(make, auth):
    user = make.admin(make.customer())
    auth.login(user.email)
    return user


def _field_error(page: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="f-{field}-error">([^<]+)</p>', page)
    return match.group(1) if match else ""


def test_account_page_for_staff_and_customer_admin(client, make, auth, admin):
    page = client.get("/account").get_data(as_text=True)
    assert "Cambia la password" in page and "Token API" in page and admin.email in page
    auth.logout()
    auth.login(make.staff().email)
    assert client.get("/account").status_code == 200


def test_account_needs_login(client):
    assert client.get("/account").status_code == 302


def test_change_password(client, make, auth, admin):
    response = client.post(
        "/account/password",
        data={"current_password": make.PASSWORD, "new_password": NEW, "confirm_password": NEW},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and "Password cambiata" in response.get_data(as_text=True)
    auth.logout()
    assert auth.login(admin.email, NEW).status_code == 302


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"current_password": "sbagliata", "new_password": NEW, "confirm_password": NEW},
            "current_password",
            "non è corretta",
        ),
        (
            {"current_password": "CUR", "new_password": "corta", "confirm_password": "corta"},
            "new_password",
            "almeno",
        ),
        (
            {"current_password": "CUR", "new_password": NEW, "confirm_password": NEW + "x"},
            "confirm_password",
            "non coincidono",
        ),
        (
            {"current_password": "CUR", "new_password": "", "confirm_password": ""},
            "new_password",
            "Inserisci",
        ),
        (
            {"current_password": "CUR", "new_password": "x" * 5000, "confirm_password": "x" * 5000},
            "new_password",
            "al massimo",
        ),
    ],
)
def test_change_password_bad_input(client, make, admin, data, field, message):
    data = {k: (make.PASSWORD if v == "CUR" else v) for k, v in data.items()}
    hash_before = admin.password_hash
    response = client.post("/account/password", data=data)
    assert response.status_code == 422
    assert message in _field_error(response.get_data(as_text=True), field)
    db.session.expire_all()
    assert db.session.get(User, admin.id).password_hash == hash_before


def test_language_switches_the_interface(client, admin, app):
    assert client.post("/account/language", data={"locale": "en"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(User, admin.id).locale == "en"
    # A fresh app context per request, as in a real server (the fixture's context caches the locale).
    with app.app_context():
        page = client.get("/account").get_data(as_text=True)
    assert '<html lang="en">' in page
    client.post("/account/language", data={"locale": "it"})
    with app.app_context():
        assert '<html lang="it">' in client.get("/account").get_data(as_text=True)


def test_unknown_language_is_refused(client, admin):
    page = client.post("/account/language", data={"locale": "xx"}, follow_redirects=True).get_data(
        as_text=True
    )
    assert "Lingua non disponibile" in page
    db.session.expire_all()
    assert db.session.get(User, admin.id).locale == "it"


def test_token_shown_once_then_listed_and_revoked(client, admin):
    response = client.post(
        "/account/tokens",
        data={"name": "gestionale", "current_password": PASSWORD},
        headers={"HX-Request": "true"},
    )
    text = response.get_data(as_text=True)
    token = re.search(r'id="new-token"[^>]*value="(cp_[^"]+)"', text).group(1)
    assert "non sarà più mostrato" in text
    assert users.user_for_token(token).id == admin.id
    page = client.get("/account").get_data(as_text=True)
    assert "gestionale" in page and token[:10] in page and token not in page
    row = db.session.scalar(sa.select(ApiToken))
    response = client.post(f"/account/tokens/{row.id}/revoke", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Token revocato" in response.get_data(as_text=True)
    assert users.user_for_token(token) is None


def test_token_name_too_long(client, admin):
    response = client.post("/account/tokens", data={"name": "n" * 101, "current_password": PASSWORD})
    assert response.status_code == 422
    assert "Al massimo 100" in _field_error(response.get_data(as_text=True), "name")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_cannot_revoke_someone_elses_token(client, make, admin):
    other = make.staff()
    token, _plain = users.create_token(make.SYSTEM, other, "suo")
    assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 1


def test_account_mutations_without_csrf_are_refused(client, make, admin):
    hash_before = admin.password_hash
    posts = [
        (
            "/account/password",
            {"current_password": make.PASSWORD, "new_password": NEW, "confirm_password": NEW},
        ),
        ("/account/language", {"locale": "en"}),
        ("/account/tokens", {"name": "x"}),
    ]
    for url, data in posts:
        assert client.post(url, data=data, csrf=False).status_code == 400
    db.session.expire_all()
    user = db.session.get(User, admin.id)
    assert user.password_hash == hash_before and user.locale == "it"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_the_footer_switch_saves_the_language_and_returns_to_the_page(client, make, auth):
    c = make.customer()
    admin = make.admin(c)
    auth.login(admin.email)
    page = f"/customers/{c.id}/mailboxes?q=x"
    body = client.get(page).get_data(as_text=True)
    assert 'action="/account/language"' in body and "English" in body
    response = client.post("/account/language", data={"locale": "en", "next": page})
    assert response.status_code == 303 and response.headers["Location"].endswith(page)
    assert "Mailboxes" in client.get(page).get_data(as_text=True)
    # Somewhere else entirely is refused as a destination.
    away = client.post("/account/language", data={"locale": "it", "next": "https://example.org/"})
    assert away.headers["Location"].endswith("/account")
