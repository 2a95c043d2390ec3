"""Dovecot 2.3, Postfix 3.7 and rspamd 3.4 (Debian 12) configuration from the templates in templates/.

The servers read only the views of migrations 0002_mail_views (mail_domains,
mail_users, mail_aliases) and 0007_list_policy (mail_lists, mail_list_senders,
read by Postfix and its list-policy service, mail_list_policy.py) and
0021_sender_addresses (mail_sender_addresses, read by our_senders.cf);
docs/mailserver.md describes that contract. The settings must have passed
app/services/mailserver.validate_settings first: no value reaching a template
may carry a newline or a control character. The result is a mapping file
name -> text.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from app.mailserver.settings import MailServerSettings

HERE = Path(__file__).resolve().parent

# Our own environment, not Flask's: these are configuration files, not HTML (no
# escaping), and a variable a template names but nobody passed is an error, never
# an empty string in a server's configuration.
environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

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

# Never refused for being ours: a client that has not logged in may not use one of our
# mailboxes', aliases' or lists' addresses as envelope sender (port 25, main.cf:
# smtpd_sender_restrictions). One row or none: the SELECT has no FROM of its own.
# mail_sender_addresses has every mailbox, alias and list of an active domain, whatever
# the state of the mailbox or of what the alias or list leads to (an empty list, an
# alias of a disabled mailbox): the mail role reads only the mail_* views.
# It has rows in Unicode too ("anna@caffè.example" for a domain stored as
# "xn--caff-8oa.example"): Postfix casefolds a UTF-8 key itself (SMTPUTF8) before it
# asks, so "CAFFÈ" arrives as "caffè" on either backend, whatever SQLite's LOWER does.
SENDER_MAP = "our_senders.cf"
POSTFIX_MAPS[SENDER_MAP] = (
    "SELECT 'REJECT 5.7.1 This sender address is a mailbox of ours: log in to send as it' "
    "WHERE EXISTS (SELECT 1 FROM mail_sender_addresses WHERE address = LOWER(RTRIM('%s', '.')))"
)
# Postfix 3.7's pgsql client always talks LATIN1: PostgreSQL reads the key's UTF-8 bytes
# "caffè" as "caffÃ¨". Back to LATIN1 bytes, read as UTF-8: the key as the client wrote it
# (an ASCII key is unchanged; Postfix refuses a key that is not UTF-8 before any query).
# Postfix 3.8 and later talk UTF8 (the map's `encoding`, UTF8 by default): the key is then
# taken as it is. The client's encoding decides, so one rendered map works with either.
# Only the maps whose views hold non-ASCII text need it.
# COLLATE "default": the text convert_from gives has no collation of the address column's,
# and without it PostgreSQL reads every mailbox instead of the address index.
POSTFIX_UTF8_KEY = {
    "pgsql": "(CASE WHEN pg_client_encoding() = 'LATIN1' "
    "THEN convert_from(convert_to('%s', 'LATIN1'), 'UTF8') ELSE '%s' END) COLLATE \"default\""
}
UTF8_KEY_MAPS = {SENDER_MAP}

LIST_POLICY_SCRIPT = "mail_list_policy.py"

# The Redis hashes rspamd's dkim_signing reads (docs/mailserver.md, "DKIM keys"):
# DKIM_SELECTORS_HASH[<domain>] = <selector>, DKIM_KEYS_HASH[<selector>.<domain>] = PEM.
DKIM_SELECTORS_HASH = "dkim_selectors"
DKIM_KEYS_HASH = "dkim_keys"
# A logged-in mailbox's sending-limit bucket in rspamd's Redis: <prefix><login, lower case>.
OUTBOUND_LIMIT_PREFIX = "outbound_limit:"
# The provider's spam thresholds (rspamd's score): marked from the first, refused from the second.
SPAM_ADD_HEADER_SCORE = 6
SPAM_REJECT_SCORE = 15
# The header rspamd's milter adds from the first threshold (rspamd.conf: spam_header), and
# the folder Dovecot files such a message into (a Sieve script run before any other).
SPAM_HEADER = "X-Spam"
JUNK_MAILBOX = "Junk"
SIEVE_BEFORE = "spam-to-junk.sieve"


def _context(s: MailServerSettings, message_size_limit: int) -> dict:
    """Every value the templates use, derived once from the settings."""
    interfaces = "all" if s.listen.strip() in {"*", "*, ::", "", "0.0.0.0"} else s.listen.replace(",", " ")
    protocols = "ipv4" if all(":" not in a for a in interfaces.split()) and interfaces != "all" else "all"
    log_dir = s.log_dir

    def postfix_map(name: str) -> str:
        return f"{s.database.postfix_type}:{os.path.join(s.postfix_config_dir, name)}"

    return {
        "s": s,
        "database": s.database,
        "mail_root": s.mail_root.rstrip("/"),
        "sql_conf": os.path.join(s.config_dir, "dovecot-sql.conf.ext"),
        "doveadm_conf": os.path.join(s.config_dir, "dovecot-doveadm.conf.ext"),
        "dovecot_log": os.path.join(log_dir, "dovecot.log") if log_dir else "",
        "dovecot_info_log": os.path.join(log_dir, "dovecot-info.log") if log_dir else "",
        "postfix_log": os.path.join(log_dir, "postfix.log") if log_dir else "",
        "inet_interfaces": interfaces,
        "inet_protocols": protocols,
        "message_size_limit": message_size_limit,
        "maps": {name: postfix_map(name) for name in POSTFIX_MAPS},
        "policy_script": os.path.join(s.postfix_config_dir, LIST_POLICY_SCRIPT),
        "policy_conf": os.path.join(s.postfix_config_dir, "list_policy.cf"),
        "sieve_before": os.path.join(s.config_dir, SIEVE_BEFORE),
        "spam_header": SPAM_HEADER,
        "junk": JUNK_MAILBOX,
    }


def render(template: str, **context) -> str:
    return environment.get_template(template).render(**context)


def dovecot_files(s: MailServerSettings, message_size_limit: int) -> dict[str, str]:
    context = _context(s, message_size_limit)
    files = {
        "dovecot.conf": render("dovecot.conf.j2", **context),
        "dovecot-sql.conf.ext": render("dovecot-sql.conf.ext.j2", **context),
        SIEVE_BEFORE: render("spam-to-junk.sieve.j2", **context),
    }
    if s.doveadm_port:
        files["dovecot-doveadm.conf.ext"] = render("dovecot-doveadm.conf.ext.j2", **context)
    return files


def list_policy_script() -> str:
    return (HERE / LIST_POLICY_SCRIPT).read_text(encoding="utf-8")


def postfix_files(s: MailServerSettings, message_size_limit: int) -> dict[str, str]:
    context = _context(s, message_size_limit)
    files = {
        "main.cf": render("main.cf.j2", **context),
        "master.cf": render("master.cf.j2", **context),
    }
    for name, query in POSTFIX_MAPS.items():
        key = POSTFIX_UTF8_KEY.get(s.database.postfix_type)
        if key and name in UTF8_KEY_MAPS:
            query = query.replace("'%s'", key)
        files[name] = render("postfix-map.cf.j2", name=name, query=query, **context)
    files["list_policy.cf"] = render("list_policy.cf.j2", **context)
    files[LIST_POLICY_SCRIPT] = list_policy_script()
    return files


def rspamd_context(s: MailServerSettings) -> dict:
    """Every value rspamd's templates use."""
    return {
        "s": s,
        "conf_dir": s.rspamd_config_dir,
        "rspamd_run": s.rspamd_run,
        "rspamd_state": s.rspamd_state,
        "rspamd_log": os.path.join(s.log_dir, "rspamd.log") if s.log_dir else "",
        "rspamd_dns": s.rspamd_dns.replace(",", " ").split(),
        "redis": s.rspamd_redis(),
        "dkim_selectors": DKIM_SELECTORS_HASH,
        "dkim_keys": DKIM_KEYS_HASH,
        "outbound_limit_prefix": OUTBOUND_LIMIT_PREFIX,
        "check_local": "true" if s.rspamd_check_local else "false",
        "test_patterns": s.rspamd_test_patterns,
        "spam_header": SPAM_HEADER,
        "add_header": SPAM_ADD_HEADER_SCORE,
        "reject": SPAM_REJECT_SCORE,
    }


def rspamd_files(s: MailServerSettings) -> dict[str, str]:
    context = rspamd_context(s)
    return {
        "rspamd.conf": render("rspamd.conf.j2", **context),
        "rspamd-modules.conf": render("rspamd-modules.conf.j2", **context),
        "rspamd-multimap.conf": render("rspamd-multimap.conf.j2", **context),
        "rspamd-outbound.lua": render("rspamd-outbound.lua.j2", **context),
    }
