"""Mailboxes, aliases and lists through the service layer."""

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from app.extensions import db
from app.models import Alias, AuditEvent, DistributionList, ListMember, Mailbox, MailboxPeriod
from app.services import aliases, domains, lists, mailboxes, passwords
from app.services.errors import Conflict, NotFound, ValidationError


def test_password_is_stored_in_the_form_dovecot_verifies(app, make):
    c = make.customer()
    box = make.mailbox(c, password="Segreta-123")
    assert box.password_hash.startswith("{ARGON2ID}$argon2id$")
    params = box.password_hash.split("$")[3]
    assert "p=1" in params.split(",")
    assert PasswordHasher().verify(box.password_hash[len("{ARGON2ID}") :], "Segreta-123")
    assert passwords.verify_mailbox_password(box.password_hash, "Segreta-123")
    assert not passwords.verify_mailbox_password(box.password_hash, "sbagliata-123")


def test_each_class_and_status_change_closes_a_period_and_opens_the_next(app, make):
    c = make.customer()
    box = make.mailbox(c, service_class="Business Mail 100 MB")
    mailboxes.update_mailbox(make.SYSTEM, box.id, service_class="Standard Suite 1.000 MB")
    mailboxes.update_mailbox(make.SYSTEM, box.id, status="suspended")
    mailboxes.update_mailbox(make.SYSTEM, box.id, display_name="Nuovo nome")  # not a period change
    address = box.address
    mailboxes.delete_mailbox(make.SYSTEM, box.id)
    periods = db.session.scalars(
        sa.select(MailboxPeriod).where(MailboxPeriod.address == address).order_by(MailboxPeriod.id)
    ).all()
    assert [(p.service_class.name, p.status) for p in periods] == [
        ("Business Mail 100 MB", "active"),
        ("Standard Suite 1.000 MB", "active"),
        ("Standard Suite 1.000 MB", "suspended"),
    ]
    assert all(p.valid_to is not None for p in periods)
    for earlier, later in zip(periods, periods[1:], strict=False):
        assert earlier.valid_to == later.valid_from


def test_an_address_is_unique_across_mailboxes_aliases_and_lists(app, make):
    c = make.customer()
    box = make.mailbox(c, "info")
    make.alias(c, "vendite", box)
    make.dlist(c, "tutti", [box.address])
    for local in ("info", "vendite", "tutti"):
        with pytest.raises(Conflict):
            make.mailbox(c, local)
        with pytest.raises(Conflict):
            make.alias(c, local, box)
        with pytest.raises(Conflict):
            make.dlist(c, local, [])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox)) == 1


def test_idn_domains_are_stored_as_punycode_and_shown_in_unicode(app, make):
    c = make.customer(domain="caffè-rossi.it")
    d = domains.list_domains(make.SYSTEM, c.id)[0]
    assert d.name == "xn--caff-rossi-26a.it"
    assert d.display_name == "caffè-rossi.it"
    box = mailboxes.create_mailbox(
        make.SYSTEM,
        c.id,
        address="Mario@CAFFÈ-rossi.it",
        password=make.PASSWORD,
        service_class="Business Mail 100 MB",
    )
    assert box.address == "mario@xn--caff-rossi-26a.it"
    assert box.display_address == "mario@caffè-rossi.it"


def test_a_domain_belongs_to_one_customer_only(app, make):
    make.customer(domain="unico.it")
    other = make.customer()
    with pytest.raises(Conflict):
        domains.add_domain(make.SYSTEM, other.id, "UNICO.it")


@pytest.mark.parametrize(
    "field, value",
    [
        ("address", ""),
        ("address", "senza-chiocciola"),
        ("address", "a@b@c.it"),
        ("address", "àccento@{domain}"),
        ("address", ("x" * 65) + "@{domain}"),
        ("address", "x@dominio-altrui.it"),
        ("address", 42),
        ("address", None),
        ("password", ""),
        ("password", "corta"),
        ("password", "x" * 200),
        ("password", 12345678),
        ("display_name", "x" * 201),
        ("display_name", ["lista"]),
        ("service_class", "Business Mail 300 MB"),
        ("service_class", ""),
        ("service_class", None),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(app, make, field, value):
    c = make.customer()
    data = {
        "address": "nuovo@{domain}",
        "password": make.PASSWORD,
        "display_name": "Nuovo",
        "service_class": "Business Mail 100 MB",
    }
    data[field] = value
    data = {k: v.replace("{domain}", make.domain_of(c)) if isinstance(v, str) else v for k, v in data.items()}
    before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    with pytest.raises(ValidationError) as err:
        mailboxes.create_mailbox(make.SYSTEM, c.id, **data)
    assert field in err.value.errors and err.value.errors[field]
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before


def test_deleting_a_mailbox_removes_its_aliases_and_list_memberships(app, make):
    c = make.customer()
    box, other = make.mailbox(c), make.mailbox(c)
    make.alias(c, "alias1", box)
    dl = make.dlist(c, "lista", [box.address, other.address, "esterno@example.org"])
    mailboxes.delete_mailbox(make.SYSTEM, box.id)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alias)) == 0
    members = db.session.scalars(sa.select(ListMember).where(ListMember.list_id == dl.id)).all()
    assert sorted(m.address for m in members) == sorted([other.address, "esterno@example.org"])


def test_list_members_on_own_domains_must_be_mailboxes(app, make):
    c = make.customer()
    box = make.mailbox(c)
    with pytest.raises(ValidationError) as err:
        make.dlist(c, "lista", [box.address, f"refuso@{make.domain_of(c)}"])
    assert "refuso@" in err.value.errors["members"]
    db.session.rollback()
    dl = make.dlist(c, "lista", [box.address, "Esterno@Example.org", box.address])
    assert [m.address for m in dl.members] == [box.address, "esterno@example.org"]
    lists.remove_member(make.SYSTEM, dl.id, dl.members[0].id)
    assert [m.address for m in lists.get_list(make.SYSTEM, dl.id).members] == ["esterno@example.org"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DistributionList)) == 1


def test_an_alias_must_target_a_mailbox_of_the_same_customer(app, make):
    a, b = make.customer(), make.customer()
    theirs = make.mailbox(b)
    with pytest.raises(ValidationError) as err:
        aliases.create_alias(make.SYSTEM, a.id, address=f"x@{make.domain_of(a)}", target=theirs.address)
    assert "target" in err.value.errors


def test_a_customer_admin_cannot_reach_another_customers_objects(app, make):
    from app.services.access import Actor

    a, b = make.customer(), make.customer()
    theirs = make.mailbox(b)
    actor = Actor.for_user(make.admin(a))
    with pytest.raises(NotFound):
        mailboxes.get_mailbox(actor, theirs.id)
    with pytest.raises(NotFound):
        mailboxes.update_mailbox(actor, theirs.id, status="disabled")
    with pytest.raises(NotFound):
        mailboxes.search_mailboxes(actor, b.id)
    db.session.rollback()
    assert db.session.get(Mailbox, theirs.id).status == "active"


def test_a_domain_with_addresses_cannot_be_removed(app, make):
    c = make.customer()
    make.mailbox(c)
    d = domains.list_domains(make.SYSTEM, c.id)[0]
    with pytest.raises(Conflict):
        domains.delete_domain(make.SYSTEM, d.id)


def test_every_change_is_audited_with_who_and_what(app, make):
    c = make.customer()
    box = make.mailbox(c)
    mailboxes.update_mailbox(
        make.SYSTEM, box.id, service_class="Business Mail 200 MB", password="Nuova-pass-1"
    )
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "mailbox.update")).one()
    assert event.actor == "tests" and event.target == box.address and event.customer_id == c.id
    assert event.changes["service_class"] == ["Business Mail 100 MB", "Business Mail 200 MB"]
    assert event.changes["password"] == ["***", "***"]
