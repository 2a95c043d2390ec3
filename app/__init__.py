"""The control panel of the business email service."""

from __future__ import annotations

from flask import Flask, g, has_request_context, request, session
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.config import INSTANCE_DIR, Config
from app.extensions import babel, csrf, db, limiter, login_manager, migrate


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
        instance_path=str(INSTANCE_DIR),
        template_folder="../templates",
        static_folder="../static",
    )
    mapping = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
    mapping.update(config or {})
    app.config.update(Config.finalize(mapping))
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir(), render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, default_translation_directories="../translations")
    limiter.init_app(app)

    from app import models

    @login_manager.user_loader
    def load_user(user_id: str):
        return db.session.get(models.User, int(user_id))

    from app.web import register_web

    register_web(app)

    from app.cli import register_cli

    register_cli(app)

    @app.before_request
    def _remember_lang():
        lang = request.args.get("lang")
        if lang in ("it", "en"):
            session["lang"] = lang
        g.request_started = True

    return app


def _migrations_dir() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "migrations")
