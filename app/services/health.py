"""Is each part of the service up? What the staff health page shows.

Every check has a short timeout and turns any failure into a result with its
reason, so one component down never hangs the page nor hides the others.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError

from app.extensions import db
from app.mailserver.doveadm import Doveadm, DoveadmError
from app.redis import get_redis, redis_url
from app.services import jobs, quota


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    ms: float | None = None
    extra: dict = field(default_factory=dict)


def redis_connection(timeout: float) -> Redis:
    """The app's Redis, giving up after `timeout` seconds rather than waiting forever."""
    url = redis_url()
    if url:
        return Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    return get_redis()  # the embedded server of a laptop run: a local unix socket


def redact_url(url: str) -> str:
    """The URL with any password in its userinfo replaced by ***: what a page may show."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None and "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:***@{hostport}" if user else f":***@{hostport}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _secret_urls() -> list[str]:
    config = current_app.config
    return [
        u
        for u in (
            config.get("SQLALCHEMY_DATABASE_URI"),
            config.get("DATABASE_URL"),
            redis_url(),
            config.get("DOVEADM_URL"),
            config.get("RSPAMD_CONTROLLER_URL"),
            config.get("RSPAMD_REDIS_URL"),
        )
        if isinstance(u, str) and u
    ]


def scrub(text: str) -> str:
    """Take every configured URL's password out of a message (a URL, a driver's error)."""
    for url in _secret_urls():
        text = text.replace(url, redact_url(url))
        try:
            password = urllib.parse.urlsplit(url).password
        except ValueError:
            password = None
        for form in {password, password and urllib.parse.unquote(password)}:
            # A very short one would blank out ordinary words; URLs are redacted above anyway.
            if form and len(form) >= 4:
                text = text.replace(form, "***")
    return text


def _timed(func):
    started = time.monotonic()
    result = func()
    return result, (time.monotonic() - started) * 1000


def check_database() -> Check:
    try:
        _, ms = _timed(lambda: db.session.execute(sa.text("SELECT 1")).scalar_one())
    except sa.exc.SQLAlchemyError as e:
        db.session.rollback()
        return Check("database", False, str(e.__cause__ or e).splitlines()[0][:200])
    return Check("database", True, db.engine.dialect.name, ms)


def banner(host: str, port: int, timeout: float) -> tuple[str, float]:
    """Connect and read the server's greeting line (IMAP "* OK", SMTP "220")."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        line = s.recv(512).decode("ascii", "replace").splitlines()
    return (line[0] if line else ""), (time.monotonic() - started) * 1000


def check_banner(name: str, host: str, port: int, expect: str, timeout: float) -> Check:
    where = f"{host}:{port}"
    try:
        greeting, ms = banner(host, port, timeout)
    except OSError as e:
        return Check(name, False, f"{where}: {e.strerror or e}")
    if not greeting.startswith(expect):
        return Check(name, False, f"{where}: {greeting[:120] or 'no greeting'}", ms)
    return Check(name, True, f"{where}: {greeting[:120]}", ms)


def check_doveadm(timeout: float) -> Check | None:
    """doveadm's HTTP API (where quota usage is read): the key is accepted. None if not configured."""
    config = current_app.config
    url = config["DOVEADM_URL"]
    if not url:
        return None
    try:
        _, ms = _timed(Doveadm(url, config["DOVEADM_API_KEY"], timeout).commands)
    except DoveadmError as e:
        return Check("doveadm", False, str(e))
    return Check("doveadm", True, redact_url(url), ms)


def check_rspamd(timeout: float) -> Check | None:
    """rspamd (DKIM signing, checks, spam score: Postfix's milter): its controller answers
    /ping with "pong". None if not configured."""
    url = current_app.config.get("RSPAMD_CONTROLLER_URL", "")
    if not url:
        return None
    where = redact_url(url)
    ping = url.rstrip("/") + "/ping"
    if urllib.parse.urlsplit(ping).scheme not in ("http", "https"):
        return Check("rspamd", False, f"{where}: not an http(s) URL")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(ping, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            body = response.read(64).strip()
    except (OSError, ValueError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or type(e).__name__
        return Check("rspamd", False, f"{where}: {reason}")
    ms = (time.monotonic() - started) * 1000
    if body != b"pong":
        return Check("rspamd", False, f"{where}: {body[:40].decode('ascii', 'replace') or 'no answer'}", ms)
    return Check("rspamd", True, f"{where}: pong", ms)


def check_rspamd_milter(timeout: float) -> Check | None:
    """rspamd's milter, where Postfix hands it every message (main.cf: smtpd_milters): a
    connection is accepted on the Unix socket RSPAMD_MILTER_SOCKET (as rendered by default,
    `unix:<path>`), or at RSPAMD_MILTER_HOST:RSPAMD_MILTER_PORT when a port is set (the milter
    on TCP, `--milter-port`). Checked with rspamd (RSPAMD_CONTROLLER_URL set); neither a port
    nor a socket: not checked. The panel's user must be in Postfix's group to reach the socket
    (a refusal says "Permission denied")."""
    config = current_app.config
    port = int(config.get("RSPAMD_MILTER_PORT") or 0)
    path = config.get("RSPAMD_MILTER_SOCKET") or ""
    if not config.get("RSPAMD_CONTROLLER_URL") or not (port or path):
        return None
    if port:
        host = config.get("RSPAMD_MILTER_HOST") or "127.0.0.1"
        where = f"{host}:{port}"
    else:
        where = f"unix:{path}"
    started = time.monotonic()
    try:
        if port:
            socket.create_connection((host, port), timeout=timeout).close()
        else:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
                unix.settimeout(timeout)
                unix.connect(path)
    except (OSError, ValueError) as e:  # ValueError: a path with a NUL
        reason = getattr(e, "strerror", None) or type(e).__name__
        return Check("rspamd_milter", False, f"{where}: {reason}")
    return Check("rspamd_milter", True, f"{where}: connected", (time.monotonic() - started) * 1000)


def check_rspamd_redis(timeout: float) -> Check | None:
    """The Redis rspamd reads the DKIM keys from (RSPAMD_REDIS_URL) answers PING (with its
    password). None if not configured."""
    url = current_app.config.get("RSPAMD_REDIS_URL", "")
    if not url:
        return None
    where = redact_url(url)
    try:
        conn = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as e:
        return Check("rspamd_redis", False, f"{where}: {str(e)[:120]}")
    try:
        _, ms = _timed(conn.ping)
    except (RedisError, OSError) as e:
        return Check("rspamd_redis", False, f"{where}: {str(e)[:200]}")
    finally:
        conn.close()
    return Check("rspamd_redis", True, f"{where}: PONG", ms)


def check_redis(timeout: float) -> tuple[Check, Redis | None]:
    try:
        conn = redis_connection(timeout)
        _, ms = _timed(conn.ping)
    except (RedisError, OSError) as e:
        return Check("redis", False, str(e)[:200]), None
    return Check("redis", True, redact_url(redis_url()) if redis_url() else "embedded", ms), conn


def check_queues(conn: Redis | None) -> tuple[Check, list[dict]]:
    """RQ: jobs waiting and failed per queue, and how many workers are alive."""
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry

    from app.jobs import QUEUES

    if conn is None:
        return Check("workers", False, "Redis unreachable"), []
    try:
        queues = []
        for name in QUEUES:
            queue = Queue(name, connection=conn)
            queues.append(
                {"name": name, "waiting": queue.count, "failed": FailedJobRegistry(queue=queue).count}
            )
        workers = Worker.count(connection=conn)
    except (RedisError, OSError) as e:
        return Check("workers", False, str(e)[:200]), []
    return Check("workers", workers > 0, str(workers), extra={"count": workers}), queues


def last_cron_tick(conn: Redis | None) -> datetime | None:
    from app.jobs import CRON_LAST_TICK_KEY

    if conn is None:
        return None
    try:
        raw = conn.get(CRON_LAST_TICK_KEY)
        return datetime.fromisoformat(raw.decode()) if raw else None
    except (RedisError, OSError, ValueError):
        return None


@dataclass
class Report:
    checks: list[Check]
    queues: list[dict]
    cron_tick: datetime | None
    quota: quota.RefreshState | None
    jobs: dict[str, int] | None = None

    @property
    def all_ok(self) -> bool:
        return all(c.ok for c in self.checks)


def report() -> Report:
    config = current_app.config
    timeout = config["HEALTH_TIMEOUT"]
    checks = [check_database()]
    redis_check, conn = check_redis(timeout)
    checks.append(redis_check)
    checks.append(
        check_banner("dovecot", config["DOVECOT_IMAP_HOST"], config["DOVECOT_IMAP_PORT"], "* OK", timeout)
    )
    doveadm = check_doveadm(timeout)
    if doveadm is not None:
        checks.append(doveadm)
    checks.append(
        check_banner("postfix", config["POSTFIX_SMTP_HOST"], config["POSTFIX_SMTP_PORT"], "220", timeout)
    )
    for rspamd in (check_rspamd(timeout), check_rspamd_milter(timeout), check_rspamd_redis(timeout)):
        if rspamd is not None:
            checks.append(rspamd)
    workers, queues = check_queues(conn)
    checks.append(workers)
    # Whatever a check or a driver put in its message, no password reaches the page.
    for check in checks:
        check.detail = scrub(check.detail)
    state = quota.refresh_state() if checks[0].ok else None
    if state is not None and state.last_error:
        # Stored by the quota refresh, which names the doveadm URL it could not reach.
        state = dataclasses.replace(state, last_error=scrub(state.last_error))
    counts = jobs.state_counts() if checks[0].ok else None
    return Report(checks, queues, last_cron_tick(conn), state, counts)
