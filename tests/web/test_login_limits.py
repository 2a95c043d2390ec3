"""Login limits: per account and per client address, sliding windows in the real Redis."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import User, UserSession
from app.services import users
from tests import twofactor
from tests.conftest import Auth, make_app
from tests.factories import PASSWORD
from tests.integration.conftest import REDIS_URL, connection  # noqa: F401 (the Redis fixture)

NEW = "Un-altra-password-2"


@pytest.fixture
def limited(app, database_url, connection):  # noqa: F811
    """An app with the limits on, counting in the test Redis: 3 failures per account, 5 per address."""

    def build(**overrides):
        settings = {
            "RATELIMIT_ENABLED": True,
            "REDIS_URL": REDIS_URL,
            "LOGIN_ACCOUNT_RATE_LIMIT": "3 per 10 minutes",
            "LOGIN_RATE_LIMIT": "5 per 10 minutes",
            **overrides,
        }
        return make_app(database_url, **settings)

    return build


def _client(app, address: str = "203.0.113.1", **environ):
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=address, **environ)
    return client


def _login(client, email: str, password: str, **kwargs):
    return client.post("/login", data={"email": email, "password": password}, **kwargs)


def test_limit_per_account_across_addresses(limited, make):
    app = limited()
    victim = make.admin(make.customer())
    for i in range(3):
        assert _login(_client(app, f"198.51.100.{i}"), victim.email, "sbagliata").status_code == 401
    # Even the right password, from yet another address, is refused now: guessing learns nothing.
    response = _login(_client(app, "198.51.100.99"), victim.email, PASSWORD)
    assert response.status_code == 429
    assert "Troppi tentativi non riusciti" in response.text and "Riprova tra 10 minuti" in response.text
    assert int(response.headers["Retry-After"]) > 500
    # Another account from those addresses is not affected.
    other = make.admin(make.customer())
    assert _login(_client(app, "198.51.100.1"), other.email, PASSWORD).status_code == 302


def test_limit_per_address_across_accounts(limited, make):
    app = limited()
    attacker = _client(app, "192.0.2.66")
    for i in range(5):
        assert _login(attacker, f"utente{i}@example.com", "sbagliata").status_code == 401
    real = make.admin(make.customer())
    assert _login(attacker, real.email, PASSWORD).status_code == 429
    assert _login(_client(app, "192.0.2.67"), real.email, PASSWORD).status_code == 302


def test_counts_are_shared_in_redis_and_the_window_slides(limited, make, connection):  # noqa: F811
    first, second = limited(), limited()  # two processes of the panel
    victim = make.admin(make.customer())
    for _ in range(3):
        _login(_client(first), victim.email, "sbagliata")
    assert _login(_client(second), victim.email, PASSWORD).status_code == 429
    assert connection.keys("panel:attempts:*")
    # Move the clock: the oldest failure leaves the 10-minute window, one more try is allowed.
    key = next(k for k in connection.keys("panel:attempts:account:*"))
    oldest, score = connection.zrange(key, 0, 0, withscores=True)[0]
    connection.zadd(key, {oldest: score - 601})
    assert _login(_client(second), victim.email, PASSWORD).status_code == 302


def test_successful_logins_do_not_count(limited, make):
    app = limited()
    admin = make.admin(make.customer())
    client = _client(app)
    for _ in range(6):
        assert _login(client, admin.email, PASSWORD).status_code == 302
        client.post("/logout")
        client._csrf_token = None


def test_the_current_password_check_is_limited(limited, make):
    app = limited()
    admin = make.admin(make.customer())
    client = _client(app)
    with app.app_context():
        Auth(client).login(admin.email)
    for _ in range(3):
        response = client.post(
            "/account/password", data={"current_password": "x", "new_password": NEW, "confirm_password": NEW}
        )
        assert response.status_code == 422
    response = client.post(
        "/account/password",
        data={"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW},
    )
    assert response.status_code == 429 and "Troppi tentativi" in response.text
    response = client.post("/account/tokens", data={"name": "x", "current_password": PASSWORD})
    assert response.status_code == 429
    db.session.expire_all()
    assert users.passwords.verify_user_password(db.session.get(User, admin.id).password_hash, PASSWORD)


def test_the_code_step_is_limited(limited, make):
    app = limited()
    staff = make.staff()
    twofactor.enrol(staff)
    client = _client(app)
    assert _login(client, staff.email, PASSWORD).headers["Location"].endswith("/login/code")
    client._csrf_token = None
    for _ in range(3):
        assert client.post("/login/code", data={"code": "000000"}).status_code == 401
    response = client.post("/login/code", data={"code": twofactor.next_code(staff)})
    assert response.status_code == 429 and "Troppi tentativi" in response.text


def _session_ip() -> str:
    return db.session.scalar(sa.select(UserSession.ip).order_by(UserSession.id.desc()))


def test_forwarded_for_is_ignored_without_trusted_proxies(limited, make):
    app = limited(TRUSTED_PROXY_HOPS=0)
    admin = make.admin(make.customer())
    # A client cannot pick a fresh address per guess by writing the header itself.
    for i in range(5):
        client = _client(app, "192.0.2.10", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
        _login(client, f"altro{i}@example.com", "sbagliata")
    client = _client(app, "192.0.2.10", HTTP_X_FORWARDED_FOR="10.0.0.200")
    assert _login(client, admin.email, PASSWORD).status_code == 429
    assert _login(_client(app, "192.0.2.11"), admin.email, PASSWORD).status_code == 302
    assert _session_ip() == "192.0.2.11"


def test_forwarded_for_is_honoured_for_the_configured_hops_only(limited, make):
    app = limited(TRUSTED_PROXY_HOPS=1)
    admin = make.admin(make.customer())
    # Our proxy appends the real client; what the client wrote before it is not believed.
    client = _client(app, "127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9, 198.51.100.23")
    assert _login(client, admin.email, PASSWORD).status_code == 302
    assert _session_ip() == "198.51.100.23"
    # Each real client is limited on its own address, not on the proxy's.
    for i in range(5):
        _login(_client(app, "127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.50"), f"x{i}@example.com", "no")
    blocked = _client(app, "127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.50")
    assert _login(blocked, admin.email, PASSWORD).status_code == 429
    fine = _client(app, "127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.51")
    assert _login(fine, admin.email, PASSWORD).status_code == 302


def test_one_ipv6_subscriber_counts_as_one_address(limited, make):
    app = limited()
    for i in range(5):
        _login(_client(app, f"2001:db8:1:2::{i + 1}"), f"y{i}@example.com", "no")
    admin = make.admin(make.customer())
    assert _login(_client(app, "2001:db8:1:2:ffff::9"), admin.email, PASSWORD).status_code == 429
    assert _login(_client(app, "2001:db8:1:3::1"), admin.email, PASSWORD).status_code == 302


def test_without_redis_sign_in_waits_with_a_clear_message(limited, make):
    app = limited(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    admin = make.admin(make.customer())
    response = _login(_client(app), admin.email, PASSWORD)
    assert response.status_code == 503
    assert "temporaneamente non disponibile" in response.text
