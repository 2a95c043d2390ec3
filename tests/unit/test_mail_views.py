"""The SQL views Dovecot and Postfix read (0002_mail_views, 0021_sender_addresses): their shape and the
states' meaning."""

from __future__ import annotations

import idna
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.mailserver.render import POSTFIX_MAPS, SENDER_MAP
from app.services import mailboxes
from tests.factories import SYSTEM


def rows(sql: str, **params) -> list[dict]:
    return [dict(r) for r in db.session.execute(sa.text(sql), params).mappings()]


def test_mail_users_has_what_dovecot_and_postfix_need(make):
    c = make.customer(domain="rossi.example")
    box = make.mailbox(c, "mario", service_class="Business Mail 25.000 MB")

    (user,) = rows("SELECT * FROM mail_users")
    assert user == {
        "address": "mario@rossi.example",
        "local_part": "mario",
        "domain": "rossi.example",
        "password": box.password_hash,
        "home": "rossi.example/mario",
        "quota_mb": 25000,
        "quota_bytes": 25000 * 1024 * 1024,
        "quota_rule": "*:storage=25000M",
        "status": "active",
        "login_allowed": 1,
        "accepts_mail": 1,
    }
    assert user["password"].startswith("{ARGON2ID}$argon2id$")
    assert rows("SELECT domain FROM mail_domains") == [{"domain": "rossi.example"}]


def test_states_decide_login_and_delivery(make):
    c = make.customer()
    box = make.mailbox(c, "anna")
    seen = {}
    for status in ("suspended", "disabled", "active"):
        mailboxes.update_mailbox(SYSTEM, box.id, status=status)
        (seen[status],) = rows("SELECT login_allowed, accepts_mail FROM mail_users")
    assert seen == {
        "active": {"login_allowed": 1, "accepts_mail": 1},
        "suspended": {"login_allowed": 0, "accepts_mail": 1},
        "disabled": {"login_allowed": 0, "accepts_mail": 0},
    }
    mailboxes.update_mailbox(SYSTEM, box.id, service_class="Business Mail 200 MB")
    assert rows("SELECT quota_rule FROM mail_users") == [{"quota_rule": "*:storage=200M"}]
    mailboxes.delete_mailbox(SYSTEM, box.id)
    assert rows("SELECT * FROM mail_users") == []


def test_aliases_and_lists_expand_to_one_row_per_destination(make):
    c = make.customer(domain="bianchi.example")
    anna = make.mailbox(c, "anna")
    bruno = make.mailbox(c, "bruno")
    make.alias(c, "info", anna)
    make.dlist(c, "tutti", [anna.address, bruno.address, "esterno@altrove.example"])

    def expansion():
        return sorted(
            (r["address"], r["destination"], r["kind"])
            for r in rows("SELECT address, destination, kind FROM mail_aliases")
        )

    assert expansion() == [
        ("info@bianchi.example", "anna@bianchi.example", "alias"),
        ("tutti@bianchi.example", "anna@bianchi.example", "list"),
        ("tutti@bianchi.example", "bruno@bianchi.example", "list"),
        ("tutti@bianchi.example", "esterno@altrove.example", "list"),
    ]
    # A disabled mailbox refuses mail: it is no destination of an alias or a list.
    mailboxes.update_mailbox(SYSTEM, anna.id, status="disabled")
    assert expansion() == [
        ("tutti@bianchi.example", "bruno@bianchi.example", "list"),
        ("tutti@bianchi.example", "esterno@altrove.example", "list"),
    ]


def test_a_customer_on_hold_logs_in_nowhere_and_keeps_receiving_with_each_mailbox_status_untouched(make):
    from app.services import hold

    c = make.customer(domain="sospeso.example")
    other = make.customer(domain="pagante.example")
    active = make.mailbox(c, "attiva")
    suspended = make.mailbox(c, "sospesa")
    disabled = make.mailbox(c, "disattivata")
    make.mailbox(other, "paga")
    mailboxes.update_mailbox(SYSTEM, suspended.id, status="suspended")
    mailboxes.update_mailbox(SYSTEM, disabled.id, status="disabled")

    def view():
        return {
            r["address"]: (r["status"], r["login_allowed"], r["accepts_mail"])
            for r in rows("SELECT address, status, login_allowed, accepts_mail FROM mail_users")
        }

    before = view()
    assert before == {
        "attiva@sospeso.example": ("active", 1, 1),
        "sospesa@sospeso.example": ("suspended", 0, 1),
        "disattivata@sospeso.example": ("disabled", 0, 0),
        "paga@pagante.example": ("active", 1, 1),
    }
    hold.put_on_hold(SYSTEM, c.id, "Credito esaurito")
    assert view() == {
        "attiva@sospeso.example": ("active", 0, 1),  # as if suspended; its own status unchanged
        "sospesa@sospeso.example": ("suspended", 0, 1),
        "disattivata@sospeso.example": ("disabled", 0, 0),
        "paga@pagante.example": ("active", 1, 1),  # another customer is not touched
    }
    # The other views keep the mailboxes' own states: suspended mail is kept, disabled refused.
    make.alias(c, "info", active)
    assert rows("SELECT destination FROM mail_aliases WHERE address = 'info@sospeso.example'") == [
        {"destination": "attiva@sospeso.example"}
    ]
    hold.lift_hold(SYSTEM, c.id)
    assert view() == before


def test_sender_addresses_are_every_mailbox_alias_and_list_of_an_active_domain_whatever_leads_where(make):
    """mail_sender_addresses (0021): what port 25 refuses as envelope sender from a client that has
    not logged in. An empty list and an alias of a disabled mailbox are ours too, though
    mail_aliases (one row per destination) has no row for them; a pending domain is not ours yet."""
    from app.services import aliases, domains, hold, lists
    from app.services.access import Actor

    c = make.customer(domain="nostro.example")
    anna = make.mailbox(c, "anna")
    sospesa = make.mailbox(c, "sospesa")
    spenta = make.mailbox(c, "spenta")
    make.alias(c, "info", anna)
    make.alias(c, "vecchio", spenta)
    make.dlist(c, "vuota", [])
    make.dlist(c, "solo-spenta", [spenta.address])
    make.dlist(c, "esterni", ["socio@altrove.example"])
    mailboxes.update_mailbox(SYSTEM, sospesa.id, status="suspended")
    mailboxes.update_mailbox(SYSTEM, spenta.id, status="disabled")
    hold.put_on_hold(SYSTEM, c.id, "Credito esaurito")
    # A domain the customer claims is not ours until approved: a customer may claim anyone's name.
    attesa = domains.add_domain(Actor.for_user(make.admin(c)), c.id, "attesa.example")
    assert attesa.state == "pending"
    bruno = mailboxes.create_mailbox(
        SYSTEM,
        c.id,
        address="bruno@attesa.example",
        password="Correct-horse-9",
        service_class="Business Mail 100 MB",
    )
    aliases.create_alias(SYSTEM, c.id, address="info@attesa.example", target=anna.address)
    aliases.create_alias(SYSTEM, c.id, address="rinvio@nostro.example", target=bruno.address)
    lists.create_list(SYSTEM, c.id, address="tutti@attesa.example", members=[anna.address])

    def senders():
        return sorted(
            (r["address"], r["kind"]) for r in rows("SELECT address, kind FROM mail_sender_addresses")
        )

    ours = [
        ("anna@nostro.example", "mailbox"),
        ("esterni@nostro.example", "list"),
        ("info@nostro.example", "alias"),
        ("rinvio@nostro.example", "alias"),
        ("solo-spenta@nostro.example", "list"),
        ("sospesa@nostro.example", "mailbox"),
        ("spenta@nostro.example", "mailbox"),
        ("vecchio@nostro.example", "alias"),
        ("vuota@nostro.example", "list"),
    ]
    assert senders() == ours
    # What mail_aliases alone would have missed.
    routed = {r["address"] for r in rows("SELECT address FROM mail_aliases")}
    assert {"vecchio@nostro.example", "vuota@nostro.example", "solo-spenta@nostro.example"}.isdisjoint(routed)
    # No external member's address, and nothing of the pending domain, until it is approved.
    assert rows("SELECT * FROM mail_sender_addresses WHERE address = 'socio@altrove.example'") == []
    domains.approve_domain(SYSTEM, attesa.id)
    assert senders() == sorted(
        [
            *ours,
            ("bruno@attesa.example", "mailbox"),
            ("info@attesa.example", "alias"),
            ("tutti@attesa.example", "list"),
        ]
    )
    # Gone at once with what it names.
    mailboxes.delete_mailbox(SYSTEM, sospesa.id)
    assert ("sospesa@nostro.example", "mailbox") not in senders()


def test_sender_addresses_hold_an_idn_address_in_its_unicode_form_too(make):
    """A domain is stored in its ASCII form (xn--caff-8oa.example); a client speaking SMTPUTF8 may
    write the same address as anna@caffè.example. SQL cannot decode punycode: domains.unicode_name
    holds the Unicode form, lower case, and mail_sender_addresses has both forms of every address
    of such a domain. mail_users and mail_aliases keep the ASCII form only."""
    from app.models import Domain
    from app.services import domains
    from app.services.access import Actor

    c = make.customer(domain="Caffè.example")
    anna = make.mailbox(c, "anna")
    spenta = make.mailbox(c, "spenta")
    make.alias(c, "info", anna)
    make.alias(c, "vecchio", spenta)
    make.dlist(c, "vuota", [])
    mailboxes.update_mailbox(SYSTEM, spenta.id, status="disabled")
    plain = make.customer(domain="rossi.example")
    make.mailbox(plain, "mario")
    # Claimed, not approved: neither form is ours yet.
    attesa = domains.add_domain(Actor.for_user(make.admin(c)), c.id, "perché.example")
    mailboxes.create_mailbox(
        SYSTEM,
        c.id,
        address="bea@perché.example",
        password="Correct-horse-9",
        service_class="Business Mail 100 MB",
    )

    assert anna.address == "anna@xn--caff-8oa.example"
    names = {d.name: d.unicode_name for d in db.session.scalars(sa.select(Domain))}
    assert names == {
        "xn--caff-8oa.example": "caffè.example",
        "rossi.example": None,
        "xn--perch-fsa.example": "perché.example",
    }

    def senders():
        return sorted(
            (r["address"], r["kind"]) for r in rows("SELECT address, kind FROM mail_sender_addresses")
        )

    both = sorted(
        (f"{local}@{domain}", kind)
        for domain in ("xn--caff-8oa.example", "caffè.example")
        for local, kind in [
            ("anna", "mailbox"),
            ("spenta", "mailbox"),
            ("info", "alias"),
            ("vecchio", "alias"),
            ("vuota", "list"),
        ]
    )
    assert senders() == sorted([*both, ("mario@rossi.example", "mailbox")])
    # The views the servers deliver and log in with are as they were: ASCII only.
    assert {r["address"] for r in rows("SELECT address FROM mail_users")} == {
        "anna@xn--caff-8oa.example",
        "spenta@xn--caff-8oa.example",
        "mario@rossi.example",
    }
    assert all(r["address"].isascii() for r in rows("SELECT address FROM mail_aliases"))

    # Postfix casefolds a UTF-8 key itself before it asks (SMTPUTF8): "ANNA@CAFFÈ.EXAMPLE." reaches
    # the map as "anna@caffè.example.", found on both backends. Whether the database's LOWER folds
    # "È" (SQLite's folds ASCII only) does not matter for the refusal.
    query = POSTFIX_MAPS[SENDER_MAP].replace("'%s'", ":key")
    assert rows(query, key="ANNA@CAFFÈ.EXAMPLE.".casefold()) != []
    assert rows(query, key="Info@Caffè.Example") != []
    assert rows(query, key="nessuno@caffè.example") == []

    # Renamed (a name set again, whatever door does it): the Unicode form follows.
    domain = db.session.get(Domain, attesa.id)
    domain.name = idna.encode("città.example").decode()
    assert domain.unicode_name == "città.example"
    domain.name = "citta.example"
    assert domain.unicode_name is None
    db.session.rollback()

    # Approved: both forms of its addresses at once.
    domains.approve_domain(SYSTEM, attesa.id)
    assert {"bea@xn--perch-fsa.example", "bea@perché.example"} <= {a for a, _ in senders()}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_postgresql_sender_map_reads_the_key_in_either_client_encoding(make):
    """Postfix 3.7's pgsql client talks LATIN1 (a UTF-8 key arrives as its bytes read as LATIN1);
    3.8 and later talk UTF8. The rendered our_senders.cf finds the Unicode form of our address with
    either, and a quote in the key stays inside the literal."""
    from app.mailserver.render import POSTFIX_UTF8_KEY

    c = make.customer(domain="Caffè.example")
    make.mailbox(c, "anna")
    query = POSTFIX_MAPS[SENDER_MAP].replace("'%s'", POSTFIX_UTF8_KEY["pgsql"])
    db.session.commit()

    def ask(key: str, encoding: str) -> list:
        # What each client puts on the wire: the key's UTF-8 bytes, labelled with its encoding;
        # quotes doubled, as Postfix's PQescapeStringConn does.
        text = key.encode().decode("latin-1") if encoding == "LATIN1" else key
        escaped = text.replace("'", "''")
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(f"SET client_encoding = '{encoding}'")
            cur.execute(query.replace("%s", escaped).replace("%", "%%"))
            found = cur.fetchall()
            cur.execute("RESET client_encoding")
            return found
        finally:
            raw.close()

    for encoding in ("LATIN1", "UTF8"):
        assert ask("anna@caffè.example", encoding) != [], encoding
        assert ask("anna@xn--caff-8oa.example", encoding) != [], encoding
        assert ask("nessuno@caffè.example", encoding) == [], encoding
        assert ask("o'neil@caffè.example", encoding) == [], encoding
