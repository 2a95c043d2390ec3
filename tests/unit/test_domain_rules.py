"""Which domains can be claimed, by whom, and in which state (the squatting rules)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Domain
from app.services import aliases, domain_names, domains, lists, mailboxes
from app.services.access import Actor
from app.services.addresses import domain_to_ascii
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from tests.factories import SYSTEM


def customer_actor(make, c) -> Actor:
    return Actor.for_user(make.admin(c))


def staff_actor(make) -> Actor:
    return Actor.for_user(make.staff())


def refusal(fn, *args, **kwargs) -> str:
    """The message beside the name field, and nothing written."""
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Domain))
    with pytest.raises((ValidationError, Conflict)) as refused:
        fn(*args, **kwargs)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Domain)) == before
    error = refused.value
    if isinstance(error, ValidationError):
        assert set(error.errors) == {"name"}, error.errors
        return error.errors["name"]
    assert error.field == "name"
    return error.message


PROVIDER_NAMES = ["collabra.it", "COLLABRA.IT", "collabra.it.", "mx.collabra.it", "clienti.mail.collabra.it"]
PUBLIC_NAMES = [
    "gmail.com",
    "GMail.Com.",
    "googlemail.com",
    "hotmail.it",
    "hotmail.co.uk",
    "outlook.com",
    "live.it",
    "yahoo.it",
    "yahoo.com.br",
    "libero.it",
    "virgilio.it",
    "tiscali.it",
    "alice.it",
    "tim.it",
    "icloud.com",
    "pec.it",
    "legalmail.it",
    "posta.pec.aruba.it",
    "smtp.gmail.com",
]
NOT_REGISTRABLE = ["co.uk", "CO.UK.", "com.br", "blogspot.com", "a.b", "rossi.nonesiste"]


@pytest.mark.parametrize("name", PROVIDER_NAMES)
def test_the_providers_own_domains_and_subdomains_are_refused_to_everyone_even_with_a_reason(make, name):
    c = make.customer()
    for actor in (customer_actor(make, c), SYSTEM):
        assert "dominio del fornitore" in refusal(domains.add_domain, actor, c.id, name)
    assert "dominio del fornitore" in refusal(
        domains.add_domain, staff_actor(make), c.id, name, override_reason="Il cliente insiste molto"
    )


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_mailbox_providers_and_their_subdomains_are_refused(make, name):
    c = make.customer()
    message = refusal(domains.add_domain, customer_actor(make, c), c.id, name)
    assert "servizio di posta pubblico" in message
    # Staff hear the same, and how to go ahead anyway.
    message = refusal(domains.add_domain, staff_actor(make), c.id, name)
    assert "servizio di posta pubblico" in message and "motivo della deroga" in message


@pytest.mark.parametrize("name", NOT_REGISTRABLE)
def test_names_that_are_not_registrable_domains_are_refused_to_everyone(make, name):
    c = make.customer()
    for actor in (customer_actor(make, c), SYSTEM):
        message = refusal(domains.add_domain, actor, c.id, name)
        assert "suffisso pubblico" in message or "non è un dominio registrabile" in message, message
    assert "«co.uk» è un suffisso pubblico" in refusal(domains.add_domain, SYSTEM, c.id, "co.uk")
    assert "«.b» non è un dominio di primo livello" in refusal(domains.add_domain, SYSTEM, c.id, "a.b")


def test_idn_variants_are_checked_in_their_ascii_form(make):
    c = make.customer()
    # Unicode TLD that exists (.рф) and one that does not.
    assert domains.add_domain(SYSTEM, c.id, "пример.рф").name == "xn--e1afmkfd.xn--p1ai"
    assert "non è un dominio registrabile" in refusal(domains.add_domain, SYSTEM, c.id, "caffè.nonesiste")
    # The same public provider written with a fullwidth dot and capitals (UTS 46 maps both).
    assert "servizio di posta pubblico" in refusal(
        domains.add_domain, customer_actor(make, c), c.id, "GMAIL\uff0ecom"
    )


def test_staff_may_add_a_public_providers_domain_with_a_reason_kept_in_the_audit_trail(make):
    c = make.customer()
    staff = staff_actor(make)
    for too_short in ("  breve  ", "perché"):
        with pytest.raises(ValidationError) as short:
            domains.add_domain(staff, c.id, "libero.it", override_reason=too_short)
        assert short.value.errors == {
            "override_reason": "Scrivi il motivo della deroga (almeno 10 caratteri)."
        }
        db.session.rollback()

    reason = "Italiaonline S.p.A. ci ha affidato la posta del dominio (contratto 2026/14)"
    domain = domains.add_domain(staff, c.id, "Libero.it", override_reason=reason)
    assert (domain.name, domain.state) == ("libero.it", "active")
    event = db.session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "domain.create", AuditEvent.target == "libero.it")
    )
    assert event.target == "libero.it"
    assert event.changes["override_reason"] == [None, reason]
    assert event.changes["public_provider"] == [None, "libero.it"]


def test_a_customer_cannot_override_the_public_provider_rule(make):
    c = make.customer()
    with pytest.raises(PermissionDenied):
        domains.add_domain(
            customer_actor(make, c), c.id, "gmail.com", override_reason="È nostro da anni, davvero"
        )
    db.session.rollback()
    assert db.session.scalar(sa.select(Domain.id).where(Domain.name == "gmail.com")) is None


def test_a_customers_domain_is_pending_and_staffs_is_active(make):
    c = make.customer()
    mine = domains.add_domain(customer_actor(make, c), c.id, "Rossi-Caffe.IT.")
    assert (mine.name, mine.state, mine.activated_at, mine.activated_by_id) == (
        "rossi-caffe.it",
        "pending",
        None,
        None,
    )
    staff = staff_actor(make)
    theirs = domains.add_domain(staff, c.id, "bianchi.it")
    assert theirs.state == "active" and theirs.activated_by_id == staff.user_id and theirs.activated_at
    assert domains.add_domain(SYSTEM, c.id, "verdi.it").state == "active"
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "domain.create")).all()
    assert {e.target: e.changes["state"] for e in events}.items() >= {
        "rossi-caffe.it": [None, "pending"],
        "bianchi.it": [None, "active"],
    }.items()


def test_a_domain_already_served_is_only_not_available_to_a_customer_and_names_the_holder_to_staff(make):
    make.customer(name="Torrefazione Rossi", domain="rossi.it")
    pending_holder = make.customer(name="Ottica Verdi")
    domains.add_domain(customer_actor(make, pending_holder), pending_holder.id, "verdi.it")
    other = make.customer(name="Altro Cliente")
    me = customer_actor(make, other)

    # Another customer's active domain, a pending one, a parent and a subdomain of one: one sentence.
    messages = {
        refusal(domains.add_domain, me, other.id, name)
        for name in ("rossi.it", "ROSSI.IT.", "verdi.it", "posta.rossi.it", "negozio.verdi.it")
    }
    assert messages == {
        "Il dominio rossi.it non è disponibile. Se è della tua azienda, contatta il supporto tecnico.",
        "Il dominio verdi.it non è disponibile. Se è della tua azienda, contatta il supporto tecnico.",
        "Il dominio posta.rossi.it non è disponibile. Se è della tua azienda, contatta il supporto tecnico.",
        "Il dominio negozio.verdi.it non è disponibile. Se è della tua azienda, contatta il supporto tecnico.",
    }
    assert all("Rossi" not in m and "Verdi" not in m for m in messages)

    staff = staff_actor(make)
    told = refusal(domains.add_domain, staff, other.id, "rossi.it")
    assert "«Torrefazione Rossi»" in told and "attivo" in told
    told = refusal(domains.add_domain, staff, other.id, "verdi.it")
    assert "«Ottica Verdi»" in told and "in attesa di verifica" in told
    # Staff decide about related names themselves (a group's companies, say).
    assert domains.add_domain(staff, other.id, "posta.rossi.it").state == "active"


def test_a_customer_may_add_a_subdomain_of_its_own_domain_and_hears_when_it_has_a_name_already(make):
    c = make.customer(domain="rossi.it")
    me = customer_actor(make, c)
    assert domains.add_domain(me, c.id, "negozio.rossi.it").state == "pending"
    assert "è già tra i domini di questo cliente" in refusal(domains.add_domain, me, c.id, "rossi.it")


def test_provider_domains_come_from_the_environment_and_the_providers_hosts(app, make):
    c = make.customer()
    app.config.update(
        PROVIDER_DOMAINS=" collabra.com, Caffè-Provider.IT ",
        PROVIDER_MX_HOST="mx1.collabra-mx.net",
        PROVIDER_MAIL_HOST="imap.collabra.co.uk",
        SALES_EMAIL="vendite@collabra-vendite.it",
    )
    try:
        assert domain_names.provider_domains() == {
            "collabra.com",
            domain_to_ascii("caffè-provider.it"),
            "collabra-mx.net",
            "collabra.co.uk",
            "collabra-vendite.it",
        }
        for name in ("collabra.com", "posta.caffè-provider.it", "collabra-mx.net", "x.collabra.co.uk"):
            assert "dominio del fornitore" in refusal(domains.add_domain, SYSTEM, c.id, name)
        # collabra.it is no longer the provider's here.
        assert domains.add_domain(SYSTEM, c.id, "collabra.it").state == "active"
    finally:
        app.config.update(
            PROVIDER_DOMAINS="",
            PROVIDER_MX_HOST="mx.collabra.it",
            PROVIDER_MAIL_HOST="mail.collabra.it",
            SALES_EMAIL="commerciale@collabra.it",
        )


def test_reserved_test_names_are_accepted_only_outside_production(app, make):
    c = make.customer()
    assert domains.add_domain(customer_actor(make, c), c.id, "negozio.example").state == "pending"
    assert domains.add_domain(SYSTEM, c.id, "prova.test").state == "active"
    app.config["ENV_NAME"] = "production"
    try:
        for name in ("altro.example", "prova2.test", "x.invalid", "y.localhost"):
            assert "non è un dominio registrabile" in refusal(domains.add_domain, SYSTEM, c.id, name)
    finally:
        app.config["ENV_NAME"] = "testing"
    # A brand listed as "hotmail.*" is refused under a reserved name too.
    assert "servizio di posta pubblico" in refusal(domains.add_domain, SYSTEM, c.id, "hotmail.example")


def test_approving_makes_a_pending_domain_active_once_audited_and_is_staff_only(make):
    c = make.customer()
    admin = customer_actor(make, c)
    pending = domains.add_domain(admin, c.id, "bianchi.it")
    with pytest.raises(PermissionDenied):
        domains.approve_domain(admin, pending.id)
    db.session.rollback()
    outsider = customer_actor(make, make.customer())
    with pytest.raises(NotFound):
        domains.approve_domain(outsider, pending.id)
    db.session.rollback()
    assert db.session.get(Domain, pending.id).state == "pending"

    staff = staff_actor(make)
    approved = domains.approve_domain(staff, pending.id)
    assert approved.state == "active" and approved.activated_by_id == staff.user_id
    first_at = approved.activated_at
    again = domains.approve_domain(staff, pending.id)
    assert again.activated_at == first_at
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "domain.approve")).all()
    assert [(e.target, e.customer_id, e.changes) for e in events] == [
        ("bianchi.it", c.id, {"state": ["pending", "active"]})
    ]


def test_the_pending_list_is_every_customers_oldest_first_and_staff_only(make):
    a, b = make.customer(), make.customer()
    first = domains.add_domain(customer_actor(make, a), a.id, "primo.it")
    second = domains.add_domain(customer_actor(make, b), b.id, "secondo.it")
    staff = staff_actor(make)
    assert [d.id for d in domains.pending_domains(staff)] == [first.id, second.id]
    assert domains.count_pending(staff) == 2
    with pytest.raises(PermissionDenied):
        domains.pending_domains(customer_actor(make, a))
    domains.approve_domain(staff, first.id)
    assert [d.name for d in domains.pending_domains(staff)] == ["secondo.it"]


def test_a_pending_domain_is_absent_from_the_mail_views_until_approved(make):
    c = make.customer(domain="attivo.it")
    pending = domains.add_domain(customer_actor(make, c), c.id, "attesa.it")
    mailboxes.create_mailbox(
        SYSTEM,
        c.id,
        address="anna@attivo.it",
        password="Correct-horse-9",
        service_class="Business Mail 100 MB",
    )

    box = mailboxes.create_mailbox(
        SYSTEM,
        c.id,
        address="bruno@attesa.it",
        password="Correct-horse-9",
        service_class="Business Mail 100 MB",
    )
    aliases.create_alias(SYSTEM, c.id, address="info@attesa.it", target=box.address)
    lists.create_list(SYSTEM, c.id, address="tutti@attesa.it", members=[box.address, "fuori@esterno.example"])

    def served():
        return {
            "domains": set(db.session.scalars(sa.text("SELECT domain FROM mail_domains"))),
            "users": set(db.session.scalars(sa.text("SELECT address FROM mail_users"))),
            "aliases": set(db.session.scalars(sa.text("SELECT address FROM mail_aliases"))),
        }

    assert served() == {"domains": {"attivo.it"}, "users": {"anna@attivo.it"}, "aliases": set()}
    domains.approve_domain(SYSTEM, pending.id)
    assert served() == {
        "domains": {"attivo.it", "attesa.it"},
        "users": {"anna@attivo.it", "bruno@attesa.it"},
        "aliases": {"info@attesa.it", "tutti@attesa.it"},
    }
