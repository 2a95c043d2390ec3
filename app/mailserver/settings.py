"""What differs between mail hosts: the database the servers read, ports, paths, names.

One renderer (app/mailserver/render.py) makes a production configuration and a
throwaway test instance alike from these; which values are acceptable is a rule
of app/services/mailserver.py, checked before anything is rendered.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from flask_babel import gettext as _
from sqlalchemy.engine import make_url

from app.services.errors import ValidationError

# --rspamd-workers 0: one scanning process per core, up to this many.
RSPAMD_WORKERS_AUTO_MAX = 8
# More than this is a typing error, not a mail host.
RSPAMD_WORKERS_MAX = 64
# --outbound-limit: recipients an hour a logged-in mailbox may send to (0: no limit).
OUTBOUND_LIMIT_DEFAULT = 500
OUTBOUND_LIMIT_MAX = 1_000_000


def host_cores() -> int:
    """The cores this process may run on (its CPU affinity, a container's cpuset), else all."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def conninfo_value(value: str) -> str:
    """A value of a libpq connection string (PostgreSQL's "Connection Strings"):
    bare when it is plain, else single-quoted with backslash escapes."""
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Database:
    """Where the views live, in the two forms Dovecot and Postfix want."""

    kind: str  # "sqlite" or "postgresql"
    path: str = ""
    host: str = "127.0.0.1"
    port: int = 5432
    name: str = ""
    user: str = ""
    password: str = ""

    @classmethod
    def from_url(cls, url: str, kind: str | None = None) -> Database:
        try:
            parsed = make_url(url)
        except Exception as e:  # sqlalchemy raises ArgumentError and ValueError here
            raise ValidationError.one("database_url", _("URL del database non valido: %(e)s", e=e)) from e
        backend = parsed.get_backend_name()
        found = {"sqlite": "sqlite", "postgresql": "postgresql"}.get(backend)
        if found is None:
            raise ValidationError.one(
                "database_url", _("Database non supportato: %(b)s (usa sqlite o postgresql).", b=backend)
            )
        if kind and kind != found:
            raise ValidationError.one(
                "db",
                _("--db %(kind)s non corrisponde all'URL del database (%(found)s).", kind=kind, found=found),
            )
        if found == "sqlite":
            if not parsed.database or parsed.database == ":memory:":
                raise ValidationError.one(
                    "database_url", _("Serve un file SQLite, non un database in memoria.")
                )
            # The servers run from other directories: a relative path would point elsewhere.
            return cls(kind="sqlite", path=str(Path(parsed.database).resolve()))
        return cls(
            kind="postgresql",
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            name=parsed.database or "",
            user=parsed.username or "",
            password=parsed.password or "",
        )

    def dovecot_connect(self) -> str:
        """Dovecot hands this string to libpq (PQconnectdb): `key=value` pairs, a value
        with a space, a quote or a backslash in single quotes with `\\'` and `\\\\`."""
        if self.kind == "sqlite":
            return self.path
        parts = [
            f"host={conninfo_value(self.host)}",
            f"port={self.port}",
            f"dbname={conninfo_value(self.name)}",
        ]
        if self.user:
            parts.append(f"user={conninfo_value(self.user)}")
        if self.password:
            parts.append(f"password={conninfo_value(self.password)}")
        return " ".join(parts)

    def _key_value_lines(self, *lines: str) -> list[str]:
        """`name = value` lines (Postfix's maps and the list-policy service read the same form)."""
        if self.kind == "sqlite":
            return [f"dbpath = {self.path}"]
        credentials = [f"{k} = {v}" for k, v in (("user", self.user), ("password", self.password)) if v]
        return [*lines, f"dbname = {self.name}", *credentials]

    def policy_connection(self) -> list[str]:
        """The list-policy service's settings (mail_list_policy.py reads them)."""
        return self._key_value_lines(f"host = {self.host}", f"port = {self.port}")

    def postfix_connection(self) -> list[str]:
        return self._key_value_lines(f"hosts = inet:{self.host}:{self.port}")

    @property
    def postfix_type(self) -> str:
        return "sqlite" if self.kind == "sqlite" else "pgsql"

    @property
    def dovecot_driver(self) -> str:
        return "sqlite" if self.kind == "sqlite" else "pgsql"


@dataclass
class MailServerSettings:
    """What differs between hosts. Defaults are a Debian production host."""

    database: Database
    config_dir: str = "/etc/dovecot"  # where the rendered files will live (paths between them)
    postfix_config_dir: str = "/etc/postfix"
    rspamd_config_dir: str = "/etc/rspamd/panel"  # beside the package's /etc/rspamd, never over it
    mail_root: str = "/var/vmail"
    mail_user: str = "vmail"
    mail_group: str = "vmail"
    base_dir: str = "/run/dovecot"
    state_dir: str = "/var/lib/dovecot"
    log_dir: str = ""  # empty: syslog
    listen: str = "*"
    hostname: str = "mail.example.com"
    imap_port: int = 143
    pop3_port: int = 110
    imaps_port: int = 993
    pop3s_port: int = 995
    lmtp_port: int = 24
    smtp_port: int = 25
    submission_port: int = 587
    master_user_file: str = "/etc/dovecot/master-users"
    relayhost: str = ""
    mynetworks: str = "127.0.0.0/8 [::1]/128"
    tls_cert: str = ""
    tls_key: str = ""
    postfix_queue_dir: str = "/var/spool/postfix"
    postfix_data_dir: str = "/var/lib/postfix"
    instance_name: str = "dovecot"
    # Brute-force brakes; test instances turn them off (every client is 127.0.0.1).
    auth_failure_delay: int = 2
    auth_penalty: bool = True
    # doveadm's HTTP API, where the panel reads every mailbox's quota usage in one
    # call (docs/mailserver.md). Port 0: no listener.
    doveadm_port: int = 0
    doveadm_api_key: str = ""
    # The list-policy service (who may post to a list) runs as this user (spawn(8)
    # refuses root and postfix's user and group); list_policy.cf, with the database
    # password, is readable by root and this user's group only.
    policy_user: str = "nobody"
    policy_python: str = "/usr/bin/python3"
    # rspamd (DKIM signing, SPF/DKIM/DMARC checks, spam score) as Postfix's milter: its proxy
    # worker speaks milter on a Unix socket (milter_socket, empty: <rspamd run dir>/milter/
    # milter.sock), or on 127.0.0.1:milter_port when a port is given (0: the socket); the
    # normal worker scans on rspamd_normal_port, the controller (/ping, statistics) on
    # rspamd_controller_port, both on loopback.
    # milter: Postfix's smtpd hands every message to it (rendered together with --rspamd).
    milter: bool = False
    milter_port: int = 0
    milter_socket: str = ""
    # rspamd processes that scan mail: the milter's proxy workers, each scanning by itself
    # (0: one per core of the host rendering the configuration, at most RSPAMD_WORKERS_AUTO_MAX).
    rspamd_workers: int = 0
    # Recipients an hour a logged-in mailbox may send to (rspamd-outbound.lua, a bucket in
    # rspamd's Redis); beyond it submission answers 451 until there is room again, and a
    # message with more recipients than that is refused (554). 0: no limit.
    outbound_limit: int = OUTBOUND_LIMIT_DEFAULT
    rspamd_normal_port: int = 11333
    rspamd_controller_port: int = 11334
    # Where rspamd reads the DKIM keys and keeps its Redis-backed state (redis://[:pw@]host:port/db).
    rspamd_redis_url: str = ""
    # Empty: <base_dir>/rspamd and <state_dir>/rspamd.
    rspamd_run_dir: str = ""
    rspamd_state_dir: str = ""
    rspamd_user: str = "_rspamd"
    # host[:port] resolvers for rspamd's SPF/DKIM/DMARC lookups (empty: /etc/resolv.conf's).
    rspamd_dns: str = ""
    # SPF and DMARC also for clients on local networks (loopback included): test instances only.
    rspamd_check_local: bool = False
    # rspamd's test patterns (GTUBE variants that force "add header" or "no action"):
    # test instances only, never production (anyone could pass a message as clean).
    rspamd_test_patterns: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    def rspamd_redis(self) -> dict:
        """rspamd_redis_url as rspamd's redis section wants it: server, db, password.
        The URL has passed app/services/mailserver.validate_rspamd."""
        parts = urllib.parse.urlsplit(self.rspamd_redis_url)
        host = parts.hostname or "127.0.0.1"
        server = f"[{host}]" if ":" in host else host
        return {
            "server": f"{server}:{parts.port or 6379}",
            "db": (parts.path.strip("/") or "0"),
            "password": urllib.parse.unquote(parts.password or ""),
        }

    @property
    def rspamd_run(self) -> str:
        return self.rspamd_run_dir or os.path.join(self.base_dir, "rspamd")

    @property
    def rspamd_state(self) -> str:
        return self.rspamd_state_dir or os.path.join(self.state_dir, "rspamd")

    @property
    def rspamd_scan_workers(self) -> int:
        """How many proxy workers rspamd runs: scanning is CPU work, one process per core."""
        if self.rspamd_workers:
            return self.rspamd_workers
        return max(1, min(host_cores(), RSPAMD_WORKERS_AUTO_MAX))

    @property
    def milter_socket_path(self) -> str:
        """The milter's Unix socket (when no milter_port is given)."""
        return self.milter_socket or os.path.join(self.rspamd_run, "milter", "milter.sock")

    @property
    def milter_postfix(self) -> str:
        """Where Postfix finds the milter (main.cf: smtpd_milters)."""
        if self.milter_port:
            return f"inet:127.0.0.1:{self.milter_port}"
        return f"unix:{self.milter_socket_path}"

    @property
    def milter_bind(self) -> str:
        """rspamd's proxy worker's bind_socket: the socket read and written by its owner and its
        group only (its directory gives it Postfix's group: docs/deploy.md, rspamd)."""
        if self.milter_port:
            return f"127.0.0.1:{self.milter_port}"
        return f"{self.milter_socket_path} mode=0660"

    @property
    def lmtp_host(self) -> str:
        # Postfix connects to the address Dovecot listens on; a wildcard means this host.
        first = self.listen.replace(",", " ").split()[0] if self.listen.strip() else "*"
        return "127.0.0.1" if first in {"*", "0.0.0.0", "::", "[::]"} else first

    @property
    def auth_socket(self) -> str:
        # Dovecot names the socket relative to its base_dir; Postfix needs the full path.
        return os.path.join(self.base_dir, "auth-postfix")
