"""The SQL views Dovecot and Postfix read (0002_mail_views, 0021_sender_addresses): their shape and the
states' meaning."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
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
