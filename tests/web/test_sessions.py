"""Sessions live on the server: logout, a password change, "log out everywhere", an idle
time and disabling the user end them, for every copy of the cookie."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken, AuditEvent, UserSession
from app.models.base import utcnow
from app.services import users
from tests.conftest import Auth
from tests.factories import PASSWORD

NEW = "Un-altra-password-2"


@pytest.fixture
def admin(make):
    return make.admin(make.customer())


def _browser(app, email: str):
    """Another browser signed in as `email`."""
    client = app.test_client()
    Auth(client).login(email)
    return client


def _copy_of(client, app):
    """A second client carrying the same session cookie (a stolen or copied cookie)."""
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    return copy


def _signed_in(client) -> bool:
    return client.get("/account").status_code == 200


def test_a_cookie_copied_before_logout_stops_working(app, client, auth, admin):
    auth.login(admin.email)
    copy = _copy_of(client, app)
    assert _signed_in(copy)
    auth.logout()
    assert not _signed_in(copy)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 0


def test_password_change_ends_other_sessions_and_revokes_tokens(app, client, auth, admin):
    auth.login(admin.email)
    other = _browser(app, admin.email)
    copy = _copy_of(client, app)
    _token, plaintext = users.create_token(users.Actor.system(), admin, "gestionale")
    response = client.post(
        "/account/password",
        data={"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Gli altri accessi sono stati chiusi e i token API revocati" in page
    assert _signed_in(client)  # this browser stays in
    assert _signed_in(copy)  # (the copy is this same session)
    assert not _signed_in(other)
    assert users.user_for_token(plaintext) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.password"))
    assert event.changes == {"sessions_ended": [None, 1], "tokens_revoked": [None, 1]}


def test_a_cookie_copied_before_a_password_change_elsewhere_stops_working(app, client, auth, admin):
    auth.login(admin.email)
    copy = _copy_of(client, app)
    owner = _browser(app, admin.email)
    owner.post(
        "/account/password", data={"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW}
    )
    assert not _signed_in(client) and not _signed_in(copy)
    assert _signed_in(owner)


def test_log_out_everywhere(app, client, auth, admin):
    auth.login(admin.email)
    other = _browser(app, admin.email)
    page = client.get("/account").get_data(as_text=True)
    assert "Esci da tutti i dispositivi" in page and "questo browser" in page
    response = client.post("/account/sessions/end", follow_redirects=True)
    assert "Accesso chiuso su tutti i dispositivi" in response.get_data(as_text=True)
    assert not _signed_in(client) and not _signed_in(other)
    assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action == "user.sessions_end"))


def _age_session(hours: float) -> None:
    """Move the clock: the session was last seen `hours` ago."""
    db.session.execute(sa.update(UserSession).values(last_seen_at=utcnow() - timedelta(hours=hours)))
    db.session.commit()


@pytest.mark.parametrize(
    ("who", "idle", "live"),
    [("staff", 7.9, True), ("staff", 8.1, False), ("admin", 23.9, True), ("admin", 24.1, False)],
)
def test_idle_timeout(client, auth, make, admin, who, idle, live):
    user = make.staff() if who == "staff" else admin
    auth.login(user.email)
    _age_session(idle)
    assert _signed_in(client) is live


def test_idle_timeout_is_configurable(app, client, auth, admin, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_IDLE_CUSTOMER_HOURS", 1)
    auth.login(admin.email)
    _age_session(1.1)
    assert not _signed_in(client)


def test_a_page_view_writes_last_seen_at_most_once_a_minute(client, auth, admin):
    auth.login(admin.email)
    _age_session(30 / 3600)
    before = db.session.scalar(sa.select(UserSession.last_seen_at))
    client.get("/account")
    assert db.session.scalar(sa.select(UserSession.last_seen_at)) == before
    _age_session(2 / 60)
    client.get("/account")
    assert (utcnow() - db.session.scalar(sa.select(UserSession.last_seen_at))).total_seconds() < 10


def test_disabling_a_user_ends_their_sessions(app, client, auth, make, admin):
    other = _browser(app, admin.email)
    auth.login(make.staff().email)
    client.post(f"/admin/users/{admin.id}/active", data={"active": "0"})
    assert not _signed_in(other)
    assert db.session.scalar(sa.select(sa.func.count()).where(UserSession.user_id == admin.id)) == 0


def test_token_creation_asks_for_the_password(client, auth, admin):
    auth.login(admin.email)
    for wrong in ("", "sbagliata"):
        response = client.post("/account/tokens", data={"name": "x", "current_password": wrong})
        assert response.status_code == 422
        assert re.search(r'id="f-current_password-error">La password attuale non è corretta', response.text)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0
    response = client.post("/account/tokens", data={"name": "x", "current_password": PASSWORD})
    assert response.status_code == 200 and 'id="new-token"' in response.text


def test_sessions_are_listed_on_the_account_page(app, client, auth, admin):
    auth.login(admin.email)
    phone = app.test_client()
    phone.environ_base.update(
        HTTP_USER_AGENT="Mozilla/5.0 (iPhone) Telefono-di-prova", REMOTE_ADDR="192.0.2.7"
    )
    Auth(phone).login(admin.email)
    page = client.get("/account").text
    assert "Telefono-di-prova" in page and "192.0.2.7" in page and "questo browser" in page
