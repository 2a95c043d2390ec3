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
    assert sorted(p.name for p in instance.iterdir()) == ["data_key", "secret_key"]  # no temporary file left


def test_development_data_key_is_made_once_private_and_opens_what_it_sealed(instance):
    from app.services import vault

    app = _dev_app()
    path = instance / "data_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with app.app_context():
        sealed = vault.seal("Segreta-42")
    with _dev_app().app_context():  # a restart, or a worker: the same key
        assert vault.unseal_text(sealed) == "Segreta-42"
    os.chmod(path, 0o644)
    with pytest.raises(RuntimeError, match="read by other users"):
        _dev_app()


def test_outside_development_no_data_key_no_start(instance):
    for env in ("production", "staging"):
        with pytest.raises(RuntimeError, match="DATA_KEYS must be set"):
            create_app({"ENV_NAME": env, "SECRET_KEY": "s" * 40, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert not (instance / "data_key").exists()


def test_a_value_sealed_under_another_key_or_altered_is_refused(app):
    from app.services import vault

    sealed = vault.seal("Segreta-42")
    assert b"Segreta-42" not in sealed
    with pytest.raises(vault.VaultError):
        vault.unseal(sealed[:-2] + b"AA")
    saved = app.config["DATA_KEYS"]
    other = "Ke7bH1cQ9pq0oX0Xb2iD0Yw7g1c3Rk0w5m4JtG2n2aE="
    try:
        app.config["DATA_KEYS"] = other
        with pytest.raises(vault.VaultError):
            vault.unseal(sealed)
        app.config["DATA_KEYS"] = f"{other},{saved}"  # a new key first: the old one still opens
        assert vault.unseal_text(sealed) == "Segreta-42"
        assert vault.unseal_text(vault.seal("nuovo")) == "nuovo"
    finally:
        app.config["DATA_KEYS"] = saved


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
