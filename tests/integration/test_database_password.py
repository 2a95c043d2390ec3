"""Dovecot and Postfix reach PostgreSQL as a read-only role whose password has a space and quotes.

The rendered connect string goes to libpq through Dovecot (single-quoted, backslash
escapes) and the Postfix maps carry it verbatim. The test cluster trusts 127.0.0.1,
so what this proves is the syntax: a badly quoted string fails to parse and every
login and delivery would fail.
"""

from __future__ import annotations

import hashlib
import smtplib
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests import factories
from tests.factories import PASSWORD
from tests.integration.mailservers import HOST, OUTSIDE_HOST, missing_reason, start_mail_servers
from tests.integration.test_mailservers import refused_on_port_25, send, subject, wait_in_inbox

pytestmark = pytest.mark.integration

READER_PASSWORD = "lettore con spazio, 'apice' e \"virgolette\" \\ fine"
# Exactly what deploy/postgresql-mail-role.sql grants (the mail_* views): no table.
VIEWS = (
    "mail_domains",
    "mail_users",
    "mail_aliases",
    "mail_lists",
    "mail_list_senders",
    "mail_sender_addresses",
)


@pytest.fixture
def reader_url(database_url):
    if missing_reason():
        pytest.skip(missing_reason())
    checkout = hashlib.sha1(str(Path(__file__).resolve().parents[2]).encode()).hexdigest()[:8]
    role = f"panel_mail_reader_{checkout}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), READER_PASSWORD)
        )
        for view in VIEWS:
            conn.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(view), sql.Identifier(role))
            )
    url = make_url(database_url)
    yield f"postgresql://{role}:{quote(READER_PASSWORD, safe='')}@{url.host}:{url.port or 5432}/{url.database}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# A role with a password is a PostgreSQL thing: this test runs on that backend only.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_servers_log_in_and_deliver_through_a_role_with_a_spaced_quoted_password(_app, app, reader_url):
    servers = start_mail_servers(_app, reader_url)
    try:
        conf = (servers.conf / "dovecot-sql.conf.ext").read_text()
        assert "password='lettore con spazio, \\'apice\\' e \"virgolette\" \\\\ fine'" in conf
        assert f"password = {READER_PASSWORD}\n" in (servers.conf / "mail_users.cf").read_text()

        c = factories.customer(domain="ruolo.example")
        box = factories.mailbox(c, "anna")
        factories.dlist(c, "vuota", [], post_policy="anyone")
        sent = subject()
        send(servers, box.address, sent)
        wait_in_inbox(servers, box.address, sent, PASSWORD)
        # The port-25 sender check reads its view through the role too: our addresses as
        # envelope sender are refused (5xx, not 451 for a view the role may not read).
        for forged in (box.address, "vuota@ruolo.example"):
            code, text = refused_on_port_25(servers, forged, box.address)
            assert code == 554 and b"log in to send" in text, (forged, code, text)
        # An IDN's address written in Unicode (SMTPUTF8) is refused too: Postfix 3.7's pgsql
        # client sends the key as LATIN1, the map reads it back as UTF-8 (our_senders.cf).
        idn = factories.mailbox(factories.customer(domain="ruolò.example"), "bea")
        assert idn.address == "bea@xn--ruol-oqa.example"
        for forged in (idn.address, "bea@ruolò.example", "BEA@RUOLÒ.EXAMPLE"):
            code, text = refused_on_port_25(servers, forged, box.address)
            assert code == 554 and b"log in to send" in text, (forged, code, text)
        # A stranger in Unicode is neither refused nor met with a lookup error (451).
        with smtplib.SMTP(HOST, servers.ports["smtp"], timeout=20, source_address=(OUTSIDE_HOST, 0)) as smtp:
            smtp.ehlo()
            smtp.command_encoding = "utf-8"
            assert smtp.docmd("MAIL", "FROM:<bea@ruolò-altro.example> SMTPUTF8")[0] == 250
            code, text = smtp.docmd("RCPT", f"TO:<{box.address}>")
            assert code == 250, (code, text)
        warnings = [
            line for line in (servers.logs / "postfix.log").read_text().splitlines() if "warning" in line
        ]
        assert warnings == [], warnings
    finally:
        servers.stop()
