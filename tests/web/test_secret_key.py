"""The signing key: never a fixed one; in development a random key kept 0600 in the instance dir."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from flask.sessions import SecureCookieSessionInterface

from app import config as settings
from app import create_app
from tests.conftest import make_app

OLD_PUBLIC_KEY = "dev-only-not-secret"


@pytest.fixture
def instance(tmp_path, monkeypatch):
    directory = tmp_path / "instance"
    monkeypatch.setattr(settings, "INSTANCE_DIR", directory)
    return directory


def _dev_app(database_url="sqlite://", **overrides):
    return create_app(
        {"ENV_NAME": "development", "SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": database_url, **overrides}
    )


def _cookie(secret_key: str, data: dict) -> str:
    class Signer:
        pass

    fake = Signer()
    fake.secret_key = secret_key
    fake.config = {"SECRET_KEY_FALLBACKS": None}
    return SecureCookieSessionInterface().get_signing_serializer(fake).dumps(data)


def test_development_key_is_random_private_and_kept(instance):
    key = _dev_app().secret_key
    assert key != OLD_PUBLIC_KEY and len(key) >= 32
    path = instance / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    # A restart (or a second process) signs with the same key: sessions survive it.
    assert _dev_app().secret_key == key
    assert [p.name for p in instance.iterdir()] == ["secret_key"]  # no temporary file left


def test_a_key_file_others_can_read_is_refused(instance):
    _dev_app()
    os.chmod(instance / "secret_key", 0o640)
    with pytest.raises(RuntimeError, match="read by other users"):
        _dev_app()


def test_a_symlinked_key_file_is_refused(instance, tmp_path):
    instance.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("k" * 64)
    os.chmod(target, 0o600)
    (instance / "secret_key").symlink_to(target)
    with pytest.raises(RuntimeError, match="symbolic link"):
        _dev_app()


def test_outside_development_no_key_no_start(instance):
    for env in ("production", "staging", ""):
        with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
            create_app({"ENV_NAME": env, "SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert not (instance / "secret_key").exists()


def test_postgresql_without_app_env_warns(instance, monkeypatch, caplog):
    monkeypatch.delenv("APP_ENV", raising=False)
    with caplog.at_level(logging.WARNING):
        _dev_app("postgresql://panel@db.invalid/panel")
    assert "APP_ENV is not set" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _dev_app()
    assert "APP_ENV" not in caplog.text


def test_sqlite_file_is_created_private(instance, tmp_path):
    database = tmp_path / "data" / "panel.sqlite3"
    database.parent.mkdir()
    _dev_app(f"sqlite:///{database}")
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_cookie_forged_with_the_old_public_key_is_refused(database_url, instance, make, app):
    staff = make.staff()
    dev = make_app(database_url, ENV_NAME="development", SECRET_KEY=None)
    client = dev.test_client()
    forged = {"_user_id": str(staff.id), "_fresh": True, "sid": "anything"}
    client.set_cookie("session", _cookie(OLD_PUBLIC_KEY, forged))
    with dev.app_context():
        response = client.get("/admin/customers")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_cookie_signed_with_the_real_key_but_no_live_session_is_refused(app, make):
    staff = make.staff()
    client = app.test_client()
    client.set_cookie("session", _cookie(app.secret_key, {"_user_id": str(staff.id), "_fresh": True}))
    response = client.get("/admin/customers")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
