"""The rules of the mail servers' configuration: which settings are acceptable.

Every value that lands in a configuration line is checked here, one message
per option, before app/mailserver/render.py puts it in a template; the CLI
(`flask mailserver config`, app/cli/mailserver.py) then writes the files with
app/mailserver/files.py.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import urllib.parse

from flask_babel import gettext as _

from app.mailserver import render
from app.mailserver.settings import OUTBOUND_LIMIT_MAX, RSPAMD_WORKERS_MAX, MailServerSettings
from app.services.errors import ValidationError

# 29 MB, the guide's limit on a message (migration rule 7), in bytes: 29 * 1024 * 1024.
MESSAGE_SIZE_LIMIT = 29 * 1024 * 1024


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
    "rspamd_normal_port",
    "rspamd_controller_port",
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
    "rspamd_config_dir",
)
_OPTIONAL_PATH_FIELDS = (
    "log_dir",
    "tls_cert",
    "tls_key",
    "rspamd_run_dir",
    "rspamd_state_dir",
    "milter_socket",
)
# A Unix socket's path fits sockaddr_un's sun_path (108 bytes with its final NUL, Linux).
UNIX_SOCKET_PATH_MAX = 107


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
    if type(s.rspamd_workers) is not int or not 0 <= s.rspamd_workers <= RSPAMD_WORKERS_MAX:
        bad(
            "rspamd_workers",
            _(
                "Da 1 a %(max)s processi, o 0 per uno per core (indicato: %(n)s).",
                max=RSPAMD_WORKERS_MAX,
                n=s.rspamd_workers,
            ),
        )
    if type(s.outbound_limit) is not int or not 0 <= s.outbound_limit <= OUTBOUND_LIMIT_MAX:
        bad(
            "outbound_limit",
            _(
                "Da 1 a %(max)s destinatari l'ora, o 0 per nessun limite (indicato: %(n)s).",
                max=OUTBOUND_LIMIT_MAX,
                n=s.outbound_limit,
            ),
        )
    if not 0 <= s.milter_port <= 65535:
        bad("milter_port", _("La porta deve essere tra 1 e 65535, o 0 per nessuna."))
    if s.milter_port and s.milter_socket:
        bad(
            "milter_socket",
            _("Indica --milter-socket (socket Unix) o --milter-port (TCP su 127.0.0.1), non entrambi."),
        )
    if not s.milter_port and len(s.milter_socket_path.encode()) > UNIX_SOCKET_PATH_MAX:
        bad(
            "milter_socket",
            _(
                "Il percorso del socket del milter supera %(n)s byte: %(p)s",
                n=UNIX_SOCKET_PATH_MAX,
                p=s.milter_socket_path,
            ),
        )
    ports = [getattr(s, n) for n in _PORT_FIELDS if n not in {"imaps_port", "pop3s_port"} or s.tls]
    for optional in (s.doveadm_port, s.milter_port):
        if optional:
            ports.append(optional)
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
    for name in ("mail_user", "mail_group", "policy_user", "rspamd_user"):
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
    return render.dovecot_files(s, MESSAGE_SIZE_LIMIT)


def render_postfix(s: MailServerSettings) -> dict[str, str]:
    validate_settings(s)
    return render.postfix_files(s, MESSAGE_SIZE_LIMIT)


def validate_rspamd(s: MailServerSettings) -> None:
    """rspamd's own settings: its Redis (where the DKIM keys are) and its resolvers."""
    errors: dict[str, str] = {}
    url = s.rspamd_redis_url
    if not url:
        errors["--rspamd-redis-url"] = _(
            "rspamd legge le chiavi DKIM da Redis: indica --rspamd-redis-url (es. redis://127.0.0.1:6379/2)."
        )
    else:
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, None
        password = urllib.parse.unquote(parts.password or "") if parts else ""
        db = parts.path.strip("/") if parts else ""
        if (
            parts is None
            or parts.scheme != "redis"
            or not parts.hostname
            or not _is_host(parts.hostname)
            or (port is not None and not 1 <= port <= 65535)
            or (db and not db.isdigit())
            or parts.query
            or parts.fragment
        ):
            errors["--rspamd-redis-url"] = _(
                "URL di Redis non valido: usa redis://[:password@]host[:porta][/db] (es. redis://127.0.0.1:6379/2)."
            )
        elif parts.username not in (None, "", "default"):
            errors["--rspamd-redis-url"] = _("rspamd 3.4 non accetta un utente Redis: solo la password.")
        elif any(c.isspace() or c in '"\\$' for c in password) or _has_control(password):
            errors["--rspamd-redis-url"] = _(
                "La password di Redis per rspamd non può contenere spazi, virgolette, \\ o $."
            )
    for server in s.rspamd_dns.replace(",", " ").split():
        host, _colon, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
        if not _is_ip(host) or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
            errors["--rspamd-dns"] = _("Resolver non valido: %(r)s (es. 127.0.0.1 o 127.0.0.1:53).", r=server)
            break
    if errors:
        raise ValidationError(errors)


def render_rspamd(s: MailServerSettings) -> dict[str, str]:
    validate_settings(s)
    validate_rspamd(s)
    return render.rspamd_files(s)


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
