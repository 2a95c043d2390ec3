"""Validation before writing: every problem at once, nothing written, and the room for N more accounts."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Mailbox, MailboxPeriod, ServiceClass
from app.services import aliases, classes, customers, limits, lists, mailboxes, passwords
from app.services.access import Actor
from app.services.context import CustomerContext
from app.services.domain_names import PublicProviderDomain
from app.services.errors import Conflict, FieldErrors, LimitExceeded, NotFound, ValidationError

BASIC = "Business Mail 100 MB"
WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b|\bFOR UPDATE\b", re.IGNORECASE)


@contextmanager
def statements():
    """Every SQL statement sent to the database inside the block."""
    seen: list[str] = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", remember)


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def assert_nothing_written(sent: list[str]) -> None:
    assert [s for s in sent if WRITES.search(s)] == []
    assert not (db.session.new or db.session.dirty or db.session.deleted)


def class_id(name: str) -> int:
    key = classes.parse_class_name(name)
    return db.session.scalar(
        sa.select(ServiceClass.id).where(ServiceClass.type == key.type, ServiceClass.quota_mb == key.quota_mb)
    )


# --- Every problem at once, nothing written ------------------------------------------------


def test_a_bad_mailbox_row_gets_every_problem_at_once_and_writes_nothing(app, make):
    c = make.customer(domain="rossi.example")
    make.customer(domain="bianchi.example")
    before = (count(Mailbox), count(MailboxPeriod), count(AuditEvent))
    context = CustomerContext.load(make.SYSTEM, c.id)
    with statements() as sent, pytest.raises(ValidationError) as refused:
        mailboxes.validate_mailbox(
            context,
            address="mario@bianchi.example",  # another customer's domain
            password="password",
            display_name="Mario\u202eRossi",
            service_class="Gold 5 GB",
        )
    errors = refused.value.errors
    assert errors["address"] == "Il dominio bianchi.example non è tra i domini di questo cliente."
    assert errors["password"] == (
        "È una delle password più usate, la prima che un attaccante prova: scegline un'altra."
    )
    assert errors["service_class"].startswith("«Gold 5 GB» non è una classe di servizio. Valori ammessi: ")
    assert errors["display_name"].startswith("Contiene caratteri non ammessi")
    assert set(errors) == {"address", "password", "service_class", "display_name"}
    assert_nothing_written(sent)
    assert (count(Mailbox), count(MailboxPeriod), count(AuditEvent)) == before


def test_a_malformed_address_and_a_short_password_are_reported_together(app, make):
    c = make.customer()
    with pytest.raises(ValidationError) as refused:
        mailboxes.create_mailbox(make.SYSTEM, c.id, address="mario@@x", password="corta", service_class=BASIC)
    assert refused.value.errors == {
        "address": "Un indirizzo email ha la forma nome@dominio.",
        "password": "La password deve avere almeno 8 caratteri.",
    }
    assert count(Mailbox) == 0


def test_a_good_row_becomes_a_draft_without_hashing_or_writing(app, make):
    c = make.customer(domain="caffè.example")
    context = CustomerContext.load(make.SYSTEM, c.id)
    with statements() as sent:
        draft = mailboxes.validate_mailbox(
            context,
            address="Mario.Rossi@Caffè.example",
            password="Correct-horse-9",
            display_name=" Mario Rossi ",
            service_class="business mail 100mb",
        )
    assert_nothing_written(sent)
    assert (draft.address, draft.local_part, draft.display_name) == (
        "mario.rossi@xn--caff-8oa.example",
        "mario.rossi",
        "Mario Rossi",
    )
    assert draft.domain.customer_id == c.id and draft.service_class.name == BASIC
    assert "Correct-horse-9" not in repr(draft)  # the plain password never shows in a log line
    assert count(Mailbox) == 0


def test_apply_after_validation_writes_what_create_mailbox_writes(app, make):
    c = make.customer(domain="rossi.example")
    one = mailboxes.create_mailbox(
        make.SYSTEM, c.id, address="uno@rossi.example", password="Correct-horse-9", service_class=BASIC
    )
    draft = mailboxes.validate_mailbox(
        CustomerContext.load(make.SYSTEM, c.id),
        address="due@rossi.example",
        password="Correct-horse-9",
        service_class=BASIC,
    )
    two = mailboxes.apply_mailbox(make.SYSTEM, draft)
    columns = ("customer_id", "domain_id", "display_name", "service_class_id", "status")
    assert [getattr(two, k) for k in columns] == [getattr(one, k) for k in columns]
    assert passwords.verify_mailbox_password(two.password_hash, "Correct-horse-9")
    periods = db.session.scalars(sa.select(MailboxPeriod).order_by(MailboxPeriod.id)).all()
    assert [(p.address, p.status, p.valid_to) for p in periods] == [
        ("uno@rossi.example", "active", None),
        ("due@rossi.example", "active", None),
    ]
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "mailbox.create").order_by(AuditEvent.id)
    ).all()
    assert [(e.target, e.changes) for e in events] == [
        (box, {"service_class": [None, BASIC], "display_name": [None, ""], "status": [None, "active"]})
        for box in ("uno@rossi.example", "due@rossi.example")
    ]


def test_apply_checks_again_what_may_have_changed_since_validation(app, make):
    c = make.customer("contract", {BASIC: 1}, domain="rossi.example")
    context = CustomerContext.load(make.SYSTEM, c.id)
    first, second = (
        mailboxes.validate_mailbox(context, address=a, password="Correct-horse-9", service_class=BASIC)
        for a in ("info@rossi.example", "info@rossi.example")
    )
    mailboxes.apply_mailbox(make.SYSTEM, first)
    with pytest.raises(Conflict) as taken:
        mailboxes.apply_mailbox(make.SYSTEM, second)
    assert taken.value.message == "L'indirizzo info@rossi.example è già usato da una casella."
    db.session.rollback()
    third = mailboxes.validate_mailbox(
        context, address="vendite@rossi.example", password="Correct-horse-9", service_class=BASIC
    )
    with pytest.raises(LimitExceeded):
        mailboxes.apply_mailbox(make.SYSTEM, third)
    db.session.rollback()
    assert count(Mailbox) == 1


def test_a_change_is_validated_whole_before_anything_is_written(app, make):
    c = make.customer()
    box = make.mailbox(c)
    with statements() as sent, pytest.raises(ValidationError) as refused:
        mailboxes.validate_mailbox_change(
            make.SYSTEM, box.id, display_name="x" * 201, service_class="Gold", status="gone", password="abc"
        )
    assert set(refused.value.errors) == {"display_name", "service_class", "status", "password"}
    assert_nothing_written(sent)


def test_aliases_and_lists_report_every_bad_field_at_once(app, make):
    c = make.customer(domain="rossi.example")
    make.customer(domain="bianchi.example")
    context = CustomerContext.load(make.SYSTEM, c.id)
    with statements() as sent:
        with pytest.raises(ValidationError) as alias:
            aliases.validate_alias(context, address="info@bianchi.example", target="nessuno@rossi.example")
        with pytest.raises(ValidationError) as dlist:
            lists.validate_list(context, address="tutti@", members=["chi@rossi.example"], post_policy="tutti")
    assert alias.value.errors == {
        "address": "Il dominio bianchi.example non è tra i domini di questo cliente.",
        "target": "Scegli una casella di questo cliente come destinazione.",
    }
    assert dlist.value.errors == {
        "address": "Inserisci un nome di dominio.",
        "post_policy": "Scegli chi può scrivere alla lista: anyone, customer o members.",
        "members": "chi@rossi.example non è una casella di questo cliente.",
    }
    assert_nothing_written(sent)


def test_a_contract_with_two_bad_entries_names_both(app, make):
    c = make.customer("contract", {BASIC: 1})
    with pytest.raises(ValidationError) as refused:
        customers.set_contract(
            make.SYSTEM,
            c.id,
            [
                {"service_class": "Gold", "max_accounts": "tanti"},
                {"service_class": BASIC, "max_accounts": -1},
            ],
            "maybe",
        )
    assert set(refused.value.errors) == {
        "allowances.0.service_class",
        "allowances.0.max_accounts",
        "allowances.1.max_accounts",
        "self_service",
    }
    assert refused.value.errors["allowances.1.max_accounts"] == "Deve essere tra 0 e 100000."


# --- A sheet of rows against one customer --------------------------------------------------


def test_a_thousand_rows_are_checked_with_a_bounded_number_of_queries_and_no_lock(app, make):
    c = make.customer("contract", {BASIC: 900}, domain="rossi.example")
    make.mailbox(c, "esistente")
    rows = [
        {"address": f"utente{i}@rossi.example", "password": "Correct-horse-9", "service_class": BASIC}
        for i in range(1000)
    ]
    rows[10]["address"] = "esistente@rossi.example"  # taken already
    rows[20]["address"] = "utente0@rossi.example"  # twice in the sheet
    rows[30]["service_class"] = "Gold"
    rows[40]["address"] = "utente40@altro.example"
    db.session.expire_all()
    started = time.perf_counter()
    with statements() as sent:
        context = CustomerContext.load(make.SYSTEM, c.id)
        result = mailboxes.check_mailbox_rows(context, rows)
    elapsed = time.perf_counter() - started
    assert len(sent) <= 10, sent
    assert_nothing_written(sent)
    assert elapsed < 10
    assert result.errors == {
        10: {"address": "L'indirizzo esistente@rossi.example è già usato da una casella."},
        20: {"address": "L'indirizzo utente0@rossi.example è ripetuto: compare già in un'altra riga."},
        30: {"service_class": result.errors[30]["service_class"]},
        40: {"address": "Il dominio altro.example non è tra i domini di questo cliente."},
    }
    assert result.errors[30]["service_class"].startswith("«Gold» non è una classe di servizio.")
    assert sum(d is not None for d in result.drafts) == 996
    # 1 in use + 996 wanted against 900: 97 short.
    [room] = result.shortfalls
    assert (room.allowance, room.used, room.wanted, room.missing) == (900, 1, 996, 97)
    assert not result.ok
    assert count(Mailbox) == 1


# --- The room for N more accounts ------------------------------------------------------------


def test_room_for_n_more_answers_how_many_are_missing(app, make):
    c = make.customer("contract", {BASIC: 5})
    for _ in range(3):
        make.mailbox(c)
    x = class_id(BASIC)
    plus = class_id("Business Mail Plus 100 MB")
    db.session.refresh(c)
    with statements() as sent:
        room = limits.room_for(c, {x: 2, plus: 1})
    assert len(sent) == 2
    assert (room[x].allowance, room[x].used, room[x].wanted, room[x].missing, room[x].fits) == (
        5,
        3,
        2,
        0,
        True,
    )
    assert (room[plus].allowance, room[plus].missing) == (0, 1)
    four = limits.room_for(c, {x: 4})[x]
    assert (four.missing, four.fits) == (2, False)

    limits.check_room(c, db.session.get(ServiceClass, x), n=2)  # fits: nothing raised
    with pytest.raises(LimitExceeded) as refused:
        limits.check_room(c, db.session.get(ServiceClass, x), n=4)
    e = refused.value
    assert (e.allowance, e.used, e.wanted, e.missing) == (5, 3, 4, 2)
    assert e.message == (
        "Limite del contratto per Business Mail 100 MB: 3 caselle su 5 già in uso, ne servono altre 4: "
        "mancano 2 caselle. Puoi chiedere al commerciale di aumentarlo."
    )


def test_one_more_keeps_the_one_more_message(app, make):
    c = make.customer("contract", {BASIC: 2})
    make.mailbox(c)
    make.mailbox(c)
    with pytest.raises(LimitExceeded) as refused:
        limits.check_room(c, db.session.get(ServiceClass, class_id(BASIC)))
    assert refused.value.message == (
        "Limite del contratto raggiunto per Business Mail 100 MB: 2 caselle su 2 già in uso. "
        "Puoi chiedere al commerciale di aumentarlo."
    )
    assert (refused.value.wanted, refused.value.missing) == (1, 1)


def test_pay_per_use_has_room_for_any_number(app, make):
    c = make.customer("payg")
    make.mailbox(c)
    x = class_id(BASIC)
    room = limits.room_for(c, {x: 10_000})[x]
    assert (room.allowance, room.used, room.missing, room.fits) == (None, 1, 0, True)
    limits.check_room(c, db.session.get(ServiceClass, x), n=10_000)


# --- One collector, one scoped getter --------------------------------------------------------


def test_the_collector_keeps_the_first_message_per_field_and_the_kind_of_a_lone_refusal():
    problems = FieldErrors()
    problems.add("name", "primo")
    problems.add("name", "secondo")
    problems.collect(lambda: (_ for _ in ()).throw(ValidationError.one("name", "terzo")))
    with pytest.raises(ValidationError) as refused:
        problems.raise_if_any()
    assert refused.value.errors == {"name": "primo"}

    alone = FieldErrors()
    with alone.catching():
        raise PublicProviderDomain("name", "pubblico")
    with pytest.raises(PublicProviderDomain):
        alone.raise_if_any()
    FieldErrors().raise_if_any()  # nothing collected: nothing raised


@pytest.mark.parametrize("bad_id", ["abc", -1, 0, 2**31, "99999999999999999999", None, True])
def test_an_id_that_names_nothing_is_not_found(app, make, bad_id):
    with pytest.raises(NotFound):
        mailboxes.get_mailbox(make.SYSTEM, bad_id)
    with pytest.raises(NotFound):
        lists.get_list(make.SYSTEM, bad_id)


def test_another_customers_rows_are_not_found(app, make):
    a, b = make.customer(), make.customer()
    box = make.mailbox(b)
    alias = make.alias(b, "vendite", box)
    dlist = make.dlist(b, "tutti", [box.address])
    stranger = Actor.for_user(make.admin(a))
    for getter, row in (
        (mailboxes.get_mailbox, box),
        (aliases.get_alias, alias),
        (lists.get_list, dlist),
    ):
        with pytest.raises(NotFound):
            getter(stranger, row.id)
        assert getter(make.SYSTEM, str(row.id)).id == row.id
