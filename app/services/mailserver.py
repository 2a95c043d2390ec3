"""Configuration of Dovecot 2.3 and Postfix 3.7 (Debian 12) on the panel's database.

The servers read only the views of migrations 0002_mail_views (mail_domains,
mail_users, mail_aliases) and 0007_list_policy (mail_lists, mail_list_senders,
read by Postfix and its list-policy service, app/mail_list_policy.py);
docs/mailserver.md describes that contract. What
differs between hosts comes in as MailServerSettings, so one renderer makes a
production configuration and a throwaway test instance alike. The result is
a mapping file name -> text; the CLI (`flask mailserver config`) writes it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from flask_babel import gettext as _
from sqlalchemy.engine import make_url

from app.services.errors import ValidationError

# 29 MB, the guide's limit on a message (migration rule 7), in bytes: 29 * 1024 * 1024.
MESSAGE_SIZE_LIMIT = 29 * 1024 * 1024

# Files that hold the database password: written readable by their owner only.
SECRET_FILES = {
    "dovecot-sql.conf.ext",
    "mail_domains.cf",
    "mail_users.cf",
    "mail_aliases.cf",
    "sender_login_maps.cf",
    "mail_lists.cf",
    "list_policy.cf",
    # doveadm's HTTP API key: whoever holds it can read and change every mailbox.
    "dovecot-doveadm.conf.ext",
}


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

    def policy_connection(self) -> list[str]:
        """The list-policy service's settings (app/mail_list_policy.py reads them)."""
        if self.kind == "sqlite":
            return [f"dbpath = {self.path}"]
        lines = [f"host = {self.host}", f"port = {self.port}", f"dbname = {self.name}"]
        if self.user:
            lines.append(f"user = {self.user}")
        if self.password:
            lines.append(f"password = {self.password}")
        return lines

    def postfix_connection(self) -> list[str]:
        if self.kind == "sqlite":
            return [f"dbpath = {self.path}"]
        lines = [f"hosts = inet:{self.host}:{self.port}", f"dbname = {self.name}"]
        if self.user:
            lines.append(f"user = {self.user}")
        if self.password:
            lines.append(f"password = {self.password}")
        return lines

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
    extra: dict = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    @property
    def lmtp_host(self) -> str:
        # Postfix connects to the address Dovecot listens on; a wildcard means this host.
        first = self.listen.replace(",", " ").split()[0] if self.listen.strip() else "*"
        return "127.0.0.1" if first in {"*", "0.0.0.0", "::", "[::]"} else first

    @property
    def auth_socket(self) -> str:
        # Dovecot names the socket relative to its base_dir; Postfix needs the full path.
        return os.path.join(self.base_dir, "auth-postfix")


def _header(what: str) -> str:
    return (
        f"# {what}\n"
        "# Rendered by `flask mailserver config`: deploy unchanged, re-render to change.\n"
        "# The servers read the panel's database through its views (docs/mailserver.md).\n"
    )


# --- Dovecot ---------------------------------------------------------------


def dovecot_sql(s: MailServerSettings) -> str:
    root = s.mail_root.rstrip("/")
    return (
        _header("Dovecot passdb/userdb on the panel's views (dovecot-sql.conf.ext)")
        + f"""
driver = {s.database.dovecot_driver}
connect = {s.database.dovecot_connect()}

# The stored hashes carry their scheme ("{{ARGON2ID}}$argon2id$..."); this is only
# the fallback for a hash without a prefix.
default_pass_scheme = ARGON2ID

# Only active mailboxes log in: suspended and disabled ones are not found, so
# IMAP, POP3 and SMTP AUTH (Postfix asks this passdb) all refuse them.
password_query = SELECT password FROM mail_users WHERE address = '%u' AND login_allowed = 1

# LMTP delivers to active and suspended mailboxes (nothing is lost while a
# customer tops up); Postfix refuses disabled ones before this is asked.
# IMAP and POP3 get here only after the passdb said yes; doveadm (support
# tools, quota readings) reaches every mailbox whatever its state.
user_query = SELECT '{root}/' || home AS home, quota_rule FROM mail_users \\
  WHERE address = '%u' AND ('%s' <> 'lmtp' OR accepts_mail = 1)

# For `doveadm ... -A` (every user), e.g. quota readings.
iterate_query = SELECT local_part AS username, domain FROM mail_users
"""
    )


def check_doveadm(s: MailServerSettings) -> None:
    if s.doveadm_port and not s.doveadm_api_key:
        raise ValidationError.one(
            "doveadm_api_key",
            _("--doveadm-port richiede una chiave: imposta DOVEADM_API_KEY o --doveadm-api-key."),
        )
    if s.doveadm_api_key and any(c.isspace() or c in "\"'\\" for c in s.doveadm_api_key):
        raise ValidationError.one(
            "doveadm_api_key", _("La chiave dell'API di doveadm non può contenere spazi o virgolette.")
        )


def dovecot_doveadm(s: MailServerSettings) -> str:
    return (
        _header("Dovecot: the key of doveadm's HTTP API (dovecot-doveadm.conf.ext)")
        + '\n# The panel sends it as "Authorization: X-Dovecot-API <base64 of the key>".\n'
        + f"doveadm_api_key = {s.doveadm_api_key}\n"
    )


def _doveadm_service(s: MailServerSettings) -> str:
    if not s.doveadm_port:
        return ""
    key_conf = os.path.join(s.config_dir, "dovecot-doveadm.conf.ext")
    return f"""
# doveadm's HTTP API: the panel reads every mailbox's quota usage in one call
# (POST /doveadm/v1 quotaGet allUsers). The key sits in its own file, readable
# by root and dovecot only, like the database password.
!include {key_conf}
service doveadm {{
  inet_listener http {{
    port = {s.doveadm_port}
  }}
}}
"""


def dovecot_conf(s: MailServerSettings) -> str:
    sql_conf = os.path.join(s.config_dir, "dovecot-sql.conf.ext")
    logs = ""
    if s.log_dir:
        logs = (
            f"log_path = {os.path.join(s.log_dir, 'dovecot.log')}\n"
            f"info_log_path = {os.path.join(s.log_dir, 'dovecot-info.log')}\n"
        )
    if s.tls:
        tls = (
            "# Clients must start TLS before sending a password; connections from this\n"
            "# host itself count as secured (Dovecot's rule), so local tools need no TLS.\n"
            "ssl = yes\n"
            f"ssl_cert = <{s.tls_cert}\n"
            f"ssl_key = <{s.tls_key}\n"
            "ssl_min_protocol = TLSv1.2\n"
            "disable_plaintext_auth = yes\n"
        )
        imaps = f"  inet_listener imaps {{\n    port = {s.imaps_port}\n    ssl = yes\n  }}\n"
        pop3s = f"  inet_listener pop3s {{\n    port = {s.pop3s_port}\n    ssl = yes\n  }}\n"
    else:
        tls = (
            "# No certificate given: passwords travel in clear. Only for an instance\n"
            "# on loopback (tests); production passes --tls-cert and --tls-key.\n"
            "ssl = no\n"
            "disable_plaintext_auth = no\n"
        )
        imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
        pop3s = "  inet_listener pop3s {\n    port = 0\n  }\n"
    penalty = ""
    if not s.auth_penalty:
        penalty = (
            "# No growing per-IP delay after failed logins (--no-auth-penalty: a test instance).\n"
            "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
        )
    return (
        _header("Dovecot 2.3 main configuration (dovecot.conf)")
        + f"""
instance_name = {s.instance_name}
protocols = imap pop3 lmtp
listen = {s.listen}
base_dir = {s.base_dir}
state_dir = {s.state_dir}
{logs}
{tls}
auth_mechanisms = plain login
auth_username_format = %Lu
# Support logs in as "mailbox@domain*masteruser" with the master user's password.
auth_master_user_separator = *
# A failed login waits this long before the answer (Dovecot's default: 2 s).
auth_failure_delay = {s.auth_failure_delay} secs
# No auth cache: a suspension, a deletion or a new password must hold at the
# very next login. The argon2 check costs far more than the SQL lookup anyway.
auth_cache_size = 0

# Every mailbox lives under one system user; home is <mail_root>/<domain>/<local>.
mail_uid = {s.mail_user}
mail_gid = {s.mail_group}
mail_location = maildir:~/Maildir
mailbox_list_index = yes

namespace inbox {{
  inbox = yes
  separator = /
}}

# Quota: the limit comes from each user's quota_rule (mail_users.quota_rule, the
# class of service); usage is counted in Dovecot's indexes (the "count" backend,
# Dovecot's recommendation since 2.2.19).
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
protocol lmtp {{
  postmaster_address = postmaster@{s.hostname}
}}
# A message that would go over quota is refused at RCPT time, not bounced later.
lmtp_rcpt_check_quota = yes
plugin {{
  quota = count:User quota
  quota_vsizes = yes
}}

# Master users (support): a passwd-file written by `flask mailserver master-user`
# from DOVECOT_MASTER_USER / DOVECOT_MASTER_PASSWORD. pass = yes: the mailbox
# must also pass the normal passdb, so a master login follows the mailbox's
# state (only active mailboxes), exactly like the mailbox's own login.
passdb {{
  driver = passwd-file
  args = {s.master_user_file}
  master = yes
  pass = yes
}}
passdb {{
  driver = sql
  args = {sql_conf}
}}
userdb {{
  driver = sql
  args = {sql_conf}
}}

service imap-login {{
  inet_listener imap {{
    port = {s.imap_port}
  }}
{imaps}}}
service pop3-login {{
  inet_listener pop3 {{
    port = {s.pop3_port}
  }}
{pop3s}}}
# Postfix delivers over LMTP (virtual_transport in main.cf).
service lmtp {{
  inet_listener lmtp {{
    port = {s.lmtp_port}
  }}
}}
{penalty}{_doveadm_service(s)}# Postfix asks this socket to check SMTP AUTH passwords (smtpd_sasl_path).
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""
    )


# --- Postfix ----------------------------------------------------------------

POSTFIX_MAPS = {
    # Every customer domain is ours: unknown users on it are rejected.
    "mail_domains.cf": "SELECT domain FROM mail_domains WHERE domain = LOWER('%s')",
    # Only mailboxes that accept mail: a disabled one is absent, so
    # reject_unlisted_recipient answers 550 at RCPT time.
    "mail_users.cf": "SELECT home FROM mail_users WHERE address = LOWER('%s') AND accepts_mail = 1",
    # One row per destination; Postfix joins them (a list expands to every member).
    "mail_aliases.cf": "SELECT destination FROM mail_aliases WHERE address = LOWER('%s')",
    # Who may send as an address: its own mailbox, and the mailbox an alias points to.
    "sender_login_maps.cf": (
        "SELECT address FROM mail_users WHERE address = LOWER('%s') AND login_allowed = 1 "
        "UNION ALL SELECT destination FROM mail_aliases WHERE address = LOWER('%s') AND kind = 'alias'"
    ),
    # Lists closed to strangers: the answer is a restriction class (main.cf) that asks
    # the list-policy service whether this sender may post. The key is the address as
    # the client wrote it: "list@domain." (trailing dot) reaches the list as well.
    "mail_lists.cf": (
        "SELECT 'list_senders_only' FROM mail_lists WHERE address = LOWER(RTRIM('%s', '.')) "
        "AND post_policy <> 'anyone'"
    ),
}

LIST_POLICY_SCRIPT = "mail_list_policy.py"


def postfix_map(s: MailServerSettings, name: str) -> str:
    return (
        _header(f"Postfix {s.database.postfix_type} lookup table ({name})")
        + "\n"
        + "\n".join(s.database.postfix_connection())
        + f"\nquery = {POSTFIX_MAPS[name]}\n"
    )


def list_policy_conf(s: MailServerSettings) -> str:
    return (
        _header("the list-policy service's database (list_policy.cf)")
        + "\n"
        + "\n".join(s.database.policy_connection())
        + "\n"
    )


def list_policy_script() -> str:
    return (Path(__file__).resolve().parent.parent / LIST_POLICY_SCRIPT).read_text(encoding="utf-8")


def _map(s: MailServerSettings, name: str) -> str:
    return f"{s.database.postfix_type}:{os.path.join(s.postfix_config_dir, name)}"


def postfix_main_cf(s: MailServerSettings) -> str:
    interfaces = "all" if s.listen.strip() in {"*", "*, ::", "", "0.0.0.0"} else s.listen.replace(",", " ")
    protocols = "ipv4" if all(":" not in a for a in interfaces.split()) and interfaces != "all" else "all"
    log = ""
    if s.log_dir:
        # Postfix writes its log only under the allowed prefixes (default /var, /dev/stdout).
        log = (
            f"maillog_file_prefixes = /var, /dev/stdout, {s.log_dir}\n"
            f"maillog_file = {os.path.join(s.log_dir, 'postfix.log')}\n"
        )
    if s.tls:
        tls = (
            f"smtpd_tls_cert_file = {s.tls_cert}\n"
            f"smtpd_tls_key_file = {s.tls_key}\n"
            "smtpd_tls_security_level = may\n"
            "smtpd_tls_mandatory_protocols = >=TLSv1.2\n"
            "# Passwords only inside TLS.\n"
            "smtpd_tls_auth_only = yes\n"
        )
    else:
        tls = (
            "# No certificate given: only for an instance on loopback (tests);\n"
            "# production passes --tls-cert and --tls-key.\n"
            "smtpd_tls_security_level = none\n"
        )
    return (
        _header("Postfix 3.7 main.cf")
        + f"""
compatibility_level = 3.6
queue_directory = {s.postfix_queue_dir}
data_directory = {s.postfix_data_dir}
mail_owner = postfix
setgid_group = postdrop
{log}
myhostname = {s.hostname}
myorigin = $myhostname
inet_interfaces = {interfaces}
inet_protocols = {protocols}
mynetworks = {s.mynetworks}
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP

# Nothing is delivered to local Unix users: every address of ours is virtual.
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled
alias_maps =
alias_database =

# The guide's limit: messages over 29 MB are not handled (rule 7 of the
# product), so Postfix refuses them at SMTP time with a clear 552 instead of
# accepting mail that the rest of the service would not keep or migrate.
message_size_limit = {MESSAGE_SIZE_LIMIT}
mailbox_size_limit = 0

# Our domains, mailboxes and aliases/lists, read live from the panel's views.
virtual_mailbox_domains = {_map(s, "mail_domains.cf")}
virtual_mailbox_maps = {_map(s, "mail_users.cf")}
virtual_alias_maps = {_map(s, "mail_aliases.cf")}
smtpd_sender_login_maps = {_map(s, "sender_login_maps.cf")}
# Dovecot stores the mail (and enforces the quota) over LMTP.
virtual_transport = lmtp:inet:{s.lmtp_host}:{s.lmtp_port}

# Mail to the outside world (external members of distribution lists).
relayhost = {s.relayhost}

# SMTP AUTH is checked by Dovecot (the same passdb as IMAP: only active mailboxes).
smtpd_sasl_type = dovecot
smtpd_sasl_path = {s.auth_socket}
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
{tls}smtp_tls_security_level = may

# Port 25: unknown and disabled recipients are refused first (5xx at RCPT);
# then only our domains are accepted from the outside world.
smtpd_reject_unlisted_recipient = yes
smtpd_recipient_restrictions = reject_unlisted_recipient, $list_post_restrictions

# No address rewriting tricks: "domain!list" (UUCP bang path) and "list%domain@host"
# would be rewritten into the list's address after the SMTP checks, around the rule
# on who may post. Nobody sends such addresses today.
swap_bangpath = no
allow_percent_hack = no

# Who may post to a distribution list (its post_policy). A list open to anyone is
# not in the answer of mail_lists.cf; a restricted one answers the restriction
# class list_senders_only, which asks the list-policy service (master.cf) whether
# the SMTP AUTH login or the envelope sender may post (view mail_list_senders).
# Applied on port 25 and on submission alike.
list_post_restrictions = check_recipient_access {_map(s, "mail_lists.cf")}
smtpd_restriction_classes = list_senders_only
list_senders_only = check_policy_service unix:private/list-policy
# spawn(8) would stop the service after 1000 s; it must live as long as the smtpd that uses it.
list-policy_time_limit = 3600s
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
"""
    )


def postfix_master_cf(s: MailServerSettings) -> str:
    def inet(port: int) -> str:
        # A bare port binds on every address of inet_interfaces (main.cf: --listen).
        return str(port)

    submission_tls = "  -o smtpd_tls_security_level=encrypt\n" if s.tls else ""
    policy = os.path.join(s.postfix_config_dir, LIST_POLICY_SCRIPT)
    policy_conf = os.path.join(s.postfix_config_dir, "list_policy.cf")
    return (
        _header("Postfix 3.7 master.cf")
        + f"""
# Nothing runs chrooted: the lookups read the panel's database (a SQLite file
# or a PostgreSQL socket) and SMTP AUTH talks to Dovecot's socket, both outside
# any chroot.
# service type  private unpriv  chroot  wakeup  maxproc command + args
{inet(s.smtp_port)} inet  n       -       n       -       -       smtpd
# Submission (the guide's port 587, STARTTLS): only authenticated mailboxes,
# sending as their own address or one of their aliases.
{inet(s.submission_port)} inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
{submission_tls}  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_sender_restrictions=reject_sender_login_mismatch
  -o smtpd_recipient_restrictions=$list_post_restrictions
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o milter_macro_daemon_name=ORIGINATING
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
# Who may post to a restricted distribution list (main.cf: list_senders_only).
list-policy unix  -       n       n       -       0       spawn
  user={s.policy_user} argv={s.policy_python} {policy} {policy_conf}
"""
    )


_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_SYSTEM_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_INSTANCE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PORT_FIELDS = (
    "imap_port",
    "pop3_port",
    "imaps_port",
    "pop3s_port",
    "lmtp_port",
    "smtp_port",
    "submission_port",
)
_PATH_FIELDS = (
    "config_dir",
    "postfix_config_dir",
    "mail_root",
    "base_dir",
    "state_dir",
    "master_user_file",
    "postfix_queue_dir",
    "postfix_data_dir",
    "policy_python",
)
_OPTIONAL_PATH_FIELDS = ("log_dir", "tls_cert", "tls_key")


def _has_control(value: str) -> bool:
    return any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in value)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def _is_host(value: str) -> bool:
    return _is_ip(value) or bool(_HOSTNAME.fullmatch(value))


def _option(name: str) -> str:
    return "--" + name.replace("postfix_", "").replace("_", "-")


def validate_settings(s: MailServerSettings) -> None:
    """Every value that lands in a configuration line: one line each, of the shape the
    server expects. Raised before anything is rendered, one message per option."""
    errors: dict[str, str] = {}

    def bad(name: str, message: str) -> None:
        errors.setdefault(_option(name), message)

    for name, value in vars(s).items():
        if isinstance(value, str) and _has_control(value):
            bad(name, _("Non può contenere a capo o caratteri di controllo."))
    db_values = {
        "database_url": [
            s.database.path,
            s.database.host,
            s.database.name,
            s.database.user,
            s.database.password,
        ]
    }
    if any(_has_control(v) for v in db_values["database_url"]):
        errors["--database-url"] = _("L'URL del database non può contenere a capo o caratteri di controllo.")
    if s.database.password != s.database.password.strip():
        errors["--database-url"] = _("La password del database non può iniziare o finire con uno spazio.")
    if s.database.kind == "sqlite" and not _PATH.fullmatch(s.database.path):
        errors["--database-url"] = _(
            "Il percorso del file SQLite può contenere solo lettere, cifre e . _ + @ - /: %(p)s",
            p=s.database.path,
        )
    if s.database.kind == "postgresql":
        if not (_is_host(s.database.host) or _PATH.fullmatch(s.database.host)):
            errors["--database-url"] = _("Host del database non valido: %(h)s", h=s.database.host)
        if not 1 <= s.database.port <= 65535:
            errors["--database-url"] = _("La porta del database deve essere tra 1 e 65535.")
    for name in _PORT_FIELDS:
        if not 1 <= getattr(s, name) <= 65535:
            bad(name, _("La porta deve essere tra 1 e 65535 (indicata: %(p)s).", p=getattr(s, name)))
    if not 0 <= s.doveadm_port <= 65535:
        bad("doveadm_port", _("La porta deve essere tra 1 e 65535, o 0 per nessuna."))
    ports = [getattr(s, n) for n in _PORT_FIELDS if n not in {"imaps_port", "pop3s_port"} or s.tls]
    if s.doveadm_port:
        ports.append(s.doveadm_port)
    if len(set(ports)) != len(ports):
        errors["--port"] = _("Due servizi non possono usare la stessa porta.")
    if not 0 <= s.auth_failure_delay <= 60:
        bad("auth_failure_delay", _("Il ritardo deve essere tra 0 e 60 secondi."))
    for name in _PATH_FIELDS + _OPTIONAL_PATH_FIELDS:
        value = getattr(s, name)
        if name in _OPTIONAL_PATH_FIELDS and not value:
            continue
        if not _PATH.fullmatch(value) or "/../" in value + "/":
            bad(
                name,
                _(
                    "Serve un percorso assoluto fatto di lettere, cifre e . _ + @ - / (indicato: %(p)s).",
                    p=value,
                ),
            )
    if not _HOSTNAME.fullmatch(s.hostname) or _is_ip(s.hostname):
        bad("hostname", _("Nome host non valido: %(h)s (es. mail.azienda.it).", h=s.hostname))
    for name in ("mail_user", "mail_group", "policy_user"):
        if not _SYSTEM_NAME.fullmatch(getattr(s, name)):
            bad(name, _("Nome utente o gruppo di sistema non valido: %(n)s", n=getattr(s, name)))
    if not _INSTANCE.fullmatch(s.instance_name):
        bad("instance_name", _("Può contenere solo lettere, cifre, . _ -"))
    listen = s.listen.replace(",", " ").split()
    if not listen or not all(a == "*" or _is_ip(a) for a in listen):
        bad("listen", _("Indirizzi non validi: indica * o indirizzi IP separati da virgole."))
    for network in s.mynetworks.split():
        address, _slash, bits = network.partition("/")
        try:
            ipaddress.ip_network(address.strip("[]") + ("/" + bits if bits else ""), strict=False)
        except ValueError:
            bad("mynetworks", _("Rete non valida: %(n)s (es. 127.0.0.0/8 [::1]/128).", n=network))
            break
    if s.relayhost:
        match = re.fullmatch(
            r"(\[(?P<bracketed>[^\]]+)\]|(?P<host>[^:\[\]]+))(:(?P<port>\d{1,5}))?", s.relayhost
        )
        host = match and (match["bracketed"] or match["host"])
        if not match or not _is_host(host) or (match["port"] and not 1 <= int(match["port"]) <= 65535):
            bad("relayhost", _("Relayhost non valido: %(r)s (es. [smtp.relay.example]:587).", r=s.relayhost))
    if bool(s.tls_cert) != bool(s.tls_key):
        bad("tls_cert", _("Indica sia --tls-cert sia --tls-key, o nessuno dei due."))
    if errors:
        raise ValidationError(errors)


def render_dovecot(s: MailServerSettings) -> dict[str, str]:
    validate_settings(s)
    check_doveadm(s)
    files = {"dovecot.conf": dovecot_conf(s), "dovecot-sql.conf.ext": dovecot_sql(s)}
    if s.doveadm_port:
        files["dovecot-doveadm.conf.ext"] = dovecot_doveadm(s)
    return files


def render_postfix(s: MailServerSettings) -> dict[str, str]:
    validate_settings(s)
    files = {"main.cf": postfix_main_cf(s), "master.cf": postfix_master_cf(s)}
    for name in POSTFIX_MAPS:
        files[name] = postfix_map(s, name)
    files["list_policy.cf"] = list_policy_conf(s)
    files[LIST_POLICY_SCRIPT] = list_policy_script()
    return files


# The master password opens every mailbox: longer than any mailbox's minimum.
MASTER_PASSWORD_MIN = 16


def check_master_password(password: str) -> None:
    if len(password) < MASTER_PASSWORD_MIN:
        raise ValidationError.one(
            "DOVECOT_MASTER_PASSWORD",
            _(
                "La password dell'utente master deve avere almeno %(n)d caratteri: apre ogni casella.",
                n=MASTER_PASSWORD_MIN,
            ),
        )


def master_user_line(user: str, password_hash: str) -> str:
    """One line of Dovecot's passwd-file: "name:{ARGON2ID}$argon2id$..."."""
    if not user or ":" in user or "*" in user or any(c.isspace() for c in user) or _has_control(user):
        raise ValidationError.one(
            "master_user", _("Nome dell'utente master non valido (niente spazi, ':' o '*').")
        )
    return f"{user}:{password_hash}\n"


def _group_id(group: str) -> int:
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValidationError.one(
            "group", _("Il gruppo %(g)s non esiste su questo sistema.", g=group)
        ) from None


def user_group(user: str) -> str:
    """The primary group of a system user (the list-policy service's, for its settings file)."""
    import grp
    import pwd

    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        raise ValidationError.one(
            "policy_user", _("L'utente %(u)s non esiste su questo sistema.", u=user)
        ) from None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_output_dir(out_dir: str) -> None:
    """The directory must exist, belong to whoever writes (root writes only into its own
    directories too) and be writable by no one else: otherwise another local user could
    swap a file for a symlink, or read the secrets while they are written."""
    import stat

    try:
        st = os.stat(out_dir)
    except FileNotFoundError:
        raise ValidationError.one(
            "out", _("La cartella %(d)s non esiste: creala prima (con i permessi giusti).", d=out_dir)
        ) from None
    except OSError as e:
        raise ValidationError.one(
            "out", _("Cartella %(d)s non accessibile: %(e)s", d=out_dir, e=e.strerror)
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ValidationError.one("out", _("%(d)s non è una cartella.", d=out_dir))
    if st.st_uid != os.geteuid():
        raise ValidationError.one(
            "out", _("La cartella %(d)s appartiene a un altro utente: scrivi in una cartella tua.", d=out_dir)
        )
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != 0):
        raise ValidationError.one(
            "out",
            _(
                "La cartella %(d)s è scrivibile da altri utenti (permessi %(m)s): usa una cartella protetta.",
                d=out_dir,
                m=oct(stat.S_IMODE(st.st_mode)),
            ),
        )


def _write_one(directory: str, name: str, text: str, mode: int, gid: int) -> str:
    """Write a file atomically: a new file, created exclusively (never through a link)
    with its final mode and group before any content, then renamed over the target.
    An existing symlink at the target is replaced, never followed."""
    import secrets

    path = os.path.join(directory, name)
    if os.path.isdir(path) and not os.path.islink(path):
        raise ValidationError.one("out", _("%(p)s è una cartella, non un file.", p=path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, mode)
    except OSError as e:
        raise ValidationError.one(
            "out", _("Impossibile scrivere %(p)s: %(e)s", p=path, e=e.strerror)
        ) from None
    try:
        # The umask may have narrowed the mode, never widened it: set it exactly.
        os.fchmod(fd, mode)
        if gid != -1:
            os.fchown(fd, 0, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ValidationError.one(
            "out", _("Impossibile scrivere %(p)s: %(e)s", p=path, e=e.strerror)
        ) from None
    return path


def write_files(
    files: dict[str, str],
    out_dir: str,
    group: str | None = None,
    private: set[str] = SECRET_FILES,
    groups: dict[str, str] | None = None,
) -> list[str]:
    """Write the rendered files into an existing, safe directory. The private ones
    (database password, master user's hash) are readable by root and `group` (the
    daemon's: dovecot or postfix; `groups` names another for some files) only."""
    out_dir = os.path.abspath(out_dir)
    check_output_dir(out_dir)
    for name in files:
        if not name or "/" in name or name in {".", ".."}:
            raise ValidationError.one("out", _("Nome di file non valido: %(n)s", n=name))
    root = os.geteuid() == 0
    gids = {}
    for name in files:
        wanted = (groups or {}).get(name, group)
        gids[name] = _group_id(wanted) if (root and wanted and name in private) else -1
    written = []
    for name, text in files.items():
        mode = 0o640 if name in private else 0o644
        written.append(_write_one(out_dir, name, text, mode, gids[name]))
    with contextlib.suppress(OSError):
        dir_fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return written
