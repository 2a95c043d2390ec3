"""The control panel of the business email service."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, g, has_request_context, request, session
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as settings
from app.config import Config
from app.extensions import babel, csrf, db, login_manager, migrate


def select_locale() -> str:
    if not has_request_context():
        return "it"
    if current_user and current_user.is_authenticated:
        return current_user.locale
    lang = session.get("lang")
    if lang in ("it", "en"):
        return lang
    return "it"


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(settings.INSTANCE_DIR),
        template_folder="../templates",
        static_folder="../static",
    )
    mapping = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
    mapping.update(config or {})
    app.config.update(Config.finalize(mapping))
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        settings.INSTANCE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_private_sqlite_file(uri)
    if (
        "APP_ENV" not in os.environ
        and app.config["ENV_NAME"] == "development"
        and uri.startswith("postgresql")
    ):
        app.logger.warning(
            "WARNING: APP_ENV is not set but the database is PostgreSQL: the panel is running with "
            "DEVELOPMENT settings (a generated secret key, cookies sent over plain HTTP). "
            "Set APP_ENV=production and SECRET_KEY on a real server."
        )
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops > 0:
        # Only as many X-Forwarded-* entries as there are proxies of ours are believed:
        # anything further left was written by the client.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir(), render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, default_translation_directories="../translations")

    from app import models  # noqa: F401 (every model registered before the first query)

    @login_manager.user_loader
    def load_user(user_id: str):
        # A signed cookie is not enough: its session must still be live on the server.
        from app.services import sessions

        live = sessions.resume(session.get("sid"), user_id)
        if live is None:
            return None
        g.user_session_id = live.id
        return live.user

    from app.web import register_web

    register_web(app)

    from app.cli import register_cli

    register_cli(app)

    @app.before_request
    def _remember_lang():
        lang = request.args.get("lang")
        if lang in ("it", "en"):
            session["lang"] = lang

    return app


def _migrations_dir() -> str:
    return str(Path(__file__).resolve().parent.parent / "migrations")


def _create_private_sqlite_file(uri: str) -> None:
    """Create the SQLite file readable by its owner only (SQLite gives its journals the same mode)."""
    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a missing directory or no permission: SQLite itself reports it on connect
    os.close(fd)
