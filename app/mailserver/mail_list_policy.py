#!/usr/bin/python3
"""Postfix policy service: who may post to a distribution list (docs/mailserver.md).

`flask mailserver config --postfix` copies this file next to main.cf; Postfix's
spawn(8) runs it once per SMTP server process that asks (master.cf entry
`list-policy`), so there is no daemon to deploy. Postfix asks it only for
recipients that `check_recipient_access` found in the view `mail_lists` with a
post_policy other than `anyone`. It answers from the view `mail_list_senders`:

* a row with authenticated = 1 admits a client logged in (SMTP AUTH) as that
  mailbox: Postfix's `sasl_username`, empty on port 25, so a forged MAIL FROM
  from outside never passes;
* a row with authenticated = 0 (an external member of a `members` list) admits
  that envelope sender.

Standalone on purpose: the Python 3 standard library, plus psycopg (3) or
psycopg2 (Debian: python3-psycopg2) for PostgreSQL. Usage:
    python3 mail_list_policy.py /etc/postfix/list_policy.cf
where the file holds `dbpath = ...` (SQLite) or host, port, dbname, user,
password (PostgreSQL), one `name = value` a line, like Postfix's maps.
"""

from __future__ import annotations

import os
import sys
import syslog

SENDER_QUERY = (
    "SELECT 1 FROM mail_list_senders WHERE list = {p} "
    "AND ((authenticated = 1 AND sender = {p}) OR (authenticated = 0 AND sender = {p}))"
)
POLICY_QUERY = "SELECT post_policy FROM mail_lists WHERE address = {p}"

REFUSALS = {
    "customer": "only the mailboxes of the list's owner may post to this list (log in to send)",
    "members": "only the members of this list may post to it",
}


def read_config(path: str) -> dict[str, str]:
    conf = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            name, value = line.split("=", 1)
            conf[name.strip()] = value.strip()
    return conf


def connect(conf: dict[str, str]):
    """A connection and its parameter placeholder."""
    if "dbpath" in conf:
        import sqlite3

        # A wrong path must fail, not create an empty database (SQLite would).
        if not os.path.isfile(conf["dbpath"]):
            raise FileNotFoundError(conf["dbpath"])
        return sqlite3.connect(conf["dbpath"], timeout=10), "?"
    params = {k: conf[k] for k in ("host", "port", "dbname", "user", "password") if conf.get(k)}
    try:
        import psycopg

        return psycopg.connect(connect_timeout=10, autocommit=True, **params), "%s"
    except ImportError:
        import psycopg2

        connection = psycopg2.connect(connect_timeout=10, **params)
        connection.autocommit = True
        return connection, "%s"


def decide(connection, placeholder: str, attrs: dict[str, str]) -> str:
    """The action for one request: DUNNO (let the other restrictions decide) or a refusal."""
    # As mail_lists.cf does: "list@domain." is delivered to the list too.
    recipient = attrs.get("recipient", "").strip().lower().rstrip(".")
    sender = attrs.get("sender", "").strip().lower()
    login = attrs.get("sasl_username", "").strip().lower()
    cursor = connection.cursor()
    try:
        cursor.execute(POLICY_QUERY.format(p=placeholder), (recipient,))
        row = cursor.fetchone()
        if row is None or row[0] not in REFUSALS:
            return "DUNNO"
        cursor.execute(SENDER_QUERY.format(p=placeholder), (recipient, login or None, sender or None))
        if cursor.fetchone() is not None:
            return "DUNNO"
    finally:
        cursor.close()
    return f"REJECT 5.7.1 <{recipient}>: {REFUSALS[row[0]]}"


def read_request(stream) -> dict[str, str] | None:
    """One policy request (name=value lines up to an empty line); None at end of input."""
    attrs: dict[str, str] = {}
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.rstrip("\r\n")
        if not line:
            return attrs
        name, _, value = line.partition("=")
        attrs[name] = value


def serve(config_path: str, stdin=sys.stdin, stdout=sys.stdout) -> None:
    conf = read_config(config_path)
    connection = placeholder = None
    while True:
        attrs = read_request(stdin)
        if attrs is None:
            return
        try:
            if connection is None:
                connection, placeholder = connect(conf)
            action = decide(connection, placeholder, attrs)
        except Exception as e:  # the database is away: ask the client to retry, never let it through
            syslog.syslog(syslog.LOG_MAIL | syslog.LOG_WARNING, f"list-policy: {type(e).__name__}: {e}")
            connection = None
            action = "DEFER_IF_PERMIT 4.3.0 list policy temporarily unavailable"
        stdout.write(f"action={action}\n\n")
        stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: mail_list_policy.py CONFIG")
    # spawn(8) connects stderr to Postfix's socket too: nothing but answers may go there.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    syslog.openlog("postfix/list-policy", 0, syslog.LOG_MAIL)
    serve(sys.argv[1])
