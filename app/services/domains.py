"""A customer's mail domains. A domain belongs to one customer only.

Which names may be served at all is domain_names' business; here, who holds a name
and its state: a domain a customer adds stays pending (not served) until support
approves it, one support adds is active at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Alias, Customer, DistributionList, Domain, Mailbox, MailboxPeriod
from app.models.base import utcnow
from app.services import audit, clock, dkim, domain_names, fields, limits
from app.services.access import Actor, customer_for, get_scoped, require_manage, require_staff
from app.services.addresses import domain_to_ascii, idna_display
from app.services.domain_names import PublicProviderDomain
from app.services.errors import Conflict, FieldErrors, PermissionDenied, ValidationError

# A reason staff give to set a rule aside: long enough to say something to whoever reads the audit trail.
MIN_REASON = 10


def list_domains(actor: Actor, customer_id: int) -> list[Domain]:
    customer = customer_for(actor, customer_id)
    return list(
        db.session.scalars(
            sa.select(Domain)
            .where(Domain.customer_id == customer.id)
            .options(sa.orm.selectinload(Domain.check))
            .order_by(Domain.name)
        )
    )


def get_domain(actor: Actor, domain_id: object) -> Domain:
    return get_scoped(actor, Domain, domain_id, _("Dominio non trovato."))


@dataclass(frozen=True, eq=False)
class DomainDraft:
    """A name a customer may ask for, checked; whether it is still free is add_domain's to say under the lock."""

    customer: Customer
    name: str  # ASCII (IDNA)
    override_reason: str  # staff's reason to add a public mailbox provider's domain, or ""


def validate_domain(
    actor: Actor, customer_id: object, name: object, override_reason: object = None
) -> DomainDraft:
    """Check a new domain's name and override reason together; writes nothing.

    A public provider's name is refused with PublicProviderDomain (staff may then give a reason).
    """
    customer = customer_for(actor, customer_id)
    require_manage(actor, customer)
    if not actor.is_staff and override_reason not in (None, ""):
        raise PermissionDenied(_("Solo il supporto tecnico può aggiungere un dominio in deroga alle regole."))
    problems = FieldErrors()
    reason = problems.collect(_override_reason, override_reason)
    ascii_name = None
    with problems.catching():
        ascii_name = domain_to_ascii(name)
        try:
            # A reason was given, even one refused above: its message says what to fix, not the name's.
            asked = bool(reason) or "override_reason" in problems
            domain_names.check_claimable(ascii_name, override_public=asked)
        except PublicProviderDomain as e:
            if actor.is_staff:
                e.errors["name"] += " " + _("Per aggiungerlo comunque, scrivi il motivo della deroga.")
            raise
    problems.raise_if_any()
    return DomainDraft(customer, ascii_name, reason)


def apply_domain(actor: Actor, draft: DomainDraft) -> Domain:
    """Add a checked name: under the customer's lock it must still be free; active at once when staff add it."""
    customer, ascii_name, reason = draft.customer, draft.name, draft.override_reason
    limits.lock_customer(customer.id)
    _check_available(actor, customer.id, ascii_name)
    if not actor.is_staff:
        _check_pending_room(customer.id)
    domain = Domain(customer_id=customer.id, name=ascii_name, state="pending")
    if actor.is_staff:
        domain.state, domain.activated_at, domain.activated_by_id = "active", utcnow(), actor.user_id
        domain.verified_at, domain.verified_by = domain.activated_at, "staff"
    changes: dict = {"state": [None, domain.state]}
    provider = domain_names.public_provider(ascii_name) if reason else None
    if provider:
        changes["public_provider"] = [None, provider]
        changes["override_reason"] = [None, reason]
    db.session.add(domain)
    try:
        db.session.flush()
    except IntegrityError:
        # Another customer added the same name a moment ago (each locks only their own customer).
        db.session.rollback()
        raise Conflict(_not_available(ascii_name), field="name") from None
    audit.record(actor, "domain.create", customer_id=customer.id, target=ascii_name, changes=changes)
    dkim.ensure_key(domain)
    db.session.commit()
    return domain


def add_domain(actor: Actor, customer_id: int, name: object, override_reason: object = None) -> Domain:
    """Add a domain: active at once when staff add it, pending (not served) when a customer does.

    override_reason lets staff add a public mailbox provider's domain; it goes into the audit trail.
    """
    return apply_domain(actor, validate_domain(actor, customer_id, name, override_reason))


def _override_reason(value: object) -> str:
    reason = fields.text(value, "override_reason", max_len=500, required=False)
    if reason and len(reason) < MIN_REASON:
        raise ValidationError.one(
            "override_reason", _("Scrivi il motivo della deroga (almeno %(n)d caratteri).", n=MIN_REASON)
        )
    return reason


def _not_available(ascii_name: str) -> str:
    # The same words whoever holds it: a customer must not learn who else is served here.
    return _(
        "Il dominio %(d)s non è disponibile. Se è della tua azienda, contatta il supporto tecnico.",
        d=idna_display(ascii_name),
    )


def _check_available(actor: Actor, customer_id: int, ascii_name: str) -> None:
    """Refuse a name already served; a customer is also refused a parent or a subdomain of another's domain."""
    related = sa.or_(
        Domain.name.in_(domain_names.ancestors(ascii_name)),
        Domain.name.endswith("." + ascii_name, autoescape=True),
    )
    rows = db.session.scalars(
        sa.select(Domain).where(related).options(sa.orm.joinedload(Domain.customer)).order_by(Domain.name)
    ).all()
    same = next((d for d in rows if d.name == ascii_name), None)
    if same is not None and same.customer_id == customer_id:
        raise Conflict(
            _("Il dominio %(d)s è già tra i domini di questo cliente.", d=same.display_name), field="name"
        )
    others = [d for d in rows if d.customer_id != customer_id]
    if same is None and (actor.is_staff or not others):
        # Staff may serve a parent or a subdomain of another customer's domain: they check who owns what.
        return
    if not actor.is_staff:
        raise Conflict(_not_available(ascii_name), field="name")
    raise Conflict(
        _(
            "Il dominio %(d)s è già registrato sul servizio per il cliente «%(customer)s» (%(state)s).",
            d=same.display_name,
            customer=same.customer.name,
            state=state_label(same.state),
        ),
        field="name",
    )


def _check_pending_room(customer_id: int) -> None:
    """A customer's unproved claims are few: each holds a name another may own, and is checked daily."""
    most = int(current_app.config["MAX_PENDING_DOMAINS"])
    pending = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Domain)
        .where(Domain.customer_id == customer_id, Domain.state == "pending")
    )
    if pending >= most:
        raise Conflict(
            ngettext(
                "Hai già %(num)d dominio in attesa di verifica: attivalo (o toglilo) prima di aggiungerne altri.",
                "Hai già %(num)d domini in attesa di verifica: attivali (o toglili) prima di aggiungerne altri.",
                pending,
            ),
            field="name",
        )


def state_label(state: str) -> str:
    return _("attivo") if state == "active" else _("in attesa di verifica")


def approve_domain(actor: Actor, domain_id: int) -> Domain:
    """Support confirms the customer owns the domain: it becomes active and the mail servers serve it.

    Approving an active domain changes nothing and records nothing.
    """
    # Scope first: another customer's domain is a 404 for a customer, as everywhere.
    domain = get_domain(actor, domain_id)
    require_staff(actor)
    limits.lock_customer(domain.customer_id)
    db.session.refresh(domain)
    if domain.is_active:
        return domain
    # The provider's domains may have been configured since the customer added it.
    domain_names.check_claimable(domain.name, override_public=True)
    domain.state, domain.activated_at, domain.activated_by_id = "active", utcnow(), actor.user_id
    domain.verified_at, domain.verified_by = domain.activated_at, "staff"
    audit.record(
        actor,
        "domain.approve",
        customer_id=domain.customer_id,
        target=domain.name,
        changes={"state": ["pending", "active"]},
    )
    dkim.ensure_key(domain)
    db.session.commit()
    return domain


def verify_domain(domain: Domain, how: str) -> bool:
    """A pending domain's owner proved control in its DNS (how: "txt" or "mx"): it becomes active.

    The caller holds the customer's lock and commits. A name the provider keeps for itself
    (configured since the domain was added) is never activated this way. True: activated now.
    """
    if domain.is_active:
        return False
    try:
        domain_names.check_claimable(domain.name, override_public=True)
    except ValidationError:
        return False
    domain.state, domain.activated_at, domain.activated_by_id = "active", utcnow(), None
    domain.verified_at, domain.verified_by = domain.activated_at, how
    audit.record(
        Actor.system("dns", via="job"),
        "domain.verify",
        customer_id=domain.customer_id,
        target=domain.name,
        changes={"state": ["pending", "active"], "verified_by": [None, how]},
    )
    dkim.ensure_key(domain)
    return True


MAX_REJECT_REASON = 1000


@dataclass(frozen=True)
class Prepared:
    """What a customer prepared on a domain: the addresses a rejection removes with it."""

    mailboxes: list[str]
    aliases: list[str]  # on the domain, and elsewhere pointing to its mailboxes
    lists: list[str]

    @property
    def addresses(self) -> list[str]:
        return sorted({*self.mailboxes, *self.aliases, *self.lists})


def _prepared_on(domain: Domain) -> Prepared:
    mailbox_ids = sa.select(Mailbox.id).where(Mailbox.domain_id == domain.id)
    return Prepared(
        mailboxes=sorted(
            db.session.scalars(sa.select(Mailbox.address).where(Mailbox.domain_id == domain.id))
        ),
        aliases=sorted(
            db.session.scalars(
                sa.select(Alias.address).where(
                    sa.or_(Alias.domain_id == domain.id, Alias.target_id.in_(mailbox_ids))
                )
            )
        ),
        lists=sorted(
            db.session.scalars(
                sa.select(DistributionList.address).where(DistributionList.domain_id == domain.id)
            )
        ),
    )


def _pending_for_rejection(actor: Actor, domain_id: object) -> Domain:
    # Scope first: another customer's domain is a 404 for a customer, as everywhere.
    domain = get_domain(actor, domain_id)
    require_staff(actor)
    if domain.is_active:
        raise Conflict(
            _("Il dominio %(d)s è già attivo: non si può rifiutare, solo togliere.", d=domain.display_name)
        )
    return domain


def rejection_preview(actor: Actor, domain_id: object) -> tuple[Domain, Prepared]:
    """A pending domain and what rejecting it would remove (staff)."""
    domain = _pending_for_rejection(actor, domain_id)
    return domain, _prepared_on(domain)


def reject_domain(actor: Actor, domain_id: object, reason: object) -> Prepared:
    """Support refuses a pending domain (the customer does not own it): it goes, and with it every
    mailbox, alias and list prepared on it, so the real owner can add it. A reason is required.

    An active domain cannot be rejected (409): it is served, its mail is real.
    """
    domain = _pending_for_rejection(actor, domain_id)
    if isinstance(reason, str):
        reason = " ".join(reason.replace("\r", "\n").split("\n"))
    reason = fields.text(reason, "reason", max_len=MAX_REJECT_REASON)
    limits.lock_customer(domain.customer_id)
    db.session.refresh(domain)
    if domain.is_active:  # approved meanwhile
        raise Conflict(
            _("Il dominio %(d)s è già attivo: non si può rifiutare, solo togliere.", d=domain.display_name)
        )
    prepared = _prepared_on(domain)
    mailbox_ids = sa.select(Mailbox.id).where(Mailbox.domain_id == domain.id)
    db.session.execute(
        sa.update(MailboxPeriod)
        .where(MailboxPeriod.mailbox_id.in_(mailbox_ids), MailboxPeriod.valid_to.is_(None))
        .values(valid_to=clock.now())
        .execution_options(synchronize_session=False)
    )
    audit.record(
        actor,
        "domain.reject",
        customer_id=domain.customer_id,
        target=domain.name,
        changes={"state": ["pending", None], "note": [None, reason], "removed": prepared.addresses},
    )
    # List memberships and search words go with the mailboxes (ON DELETE CASCADE).
    db.session.execute(
        sa.delete(Alias)
        .where(sa.or_(Alias.domain_id == domain.id, Alias.target_id.in_(mailbox_ids)))
        .execution_options(synchronize_session=False)
    )
    for model in (DistributionList, Mailbox):
        db.session.execute(
            sa.delete(model).where(model.domain_id == domain.id).execution_options(synchronize_session=False)
        )
    db.session.delete(domain)
    db.session.commit()
    return prepared


def pending_domains(actor: Actor) -> list[Domain]:
    """Every customer's domains waiting for support, oldest first."""
    require_staff(actor)
    return list(
        db.session.scalars(
            sa.select(Domain)
            .where(Domain.state == "pending")
            .options(sa.orm.joinedload(Domain.customer), sa.orm.selectinload(Domain.check))
            .order_by(Domain.created_at, Domain.id)
        )
    )


def pending_names(customer_id: int) -> dict[int, str]:
    """{domain id: name to show} of the customer's pending domains, for marking addresses not served yet.

    The caller has already scoped customer_id to the actor.
    """
    rows = db.session.execute(
        sa.select(Domain.id, Domain.name)
        .where(Domain.customer_id == customer_id, Domain.state == "pending")
        .order_by(Domain.name)
    )
    return {domain_id: idna_display(name) for domain_id, name in rows}


def count_pending(actor: Actor) -> int:
    require_staff(actor)
    return db.session.scalar(sa.select(sa.func.count()).select_from(Domain).where(Domain.state == "pending"))


def delete_domain(actor: Actor, domain_id: int) -> None:
    domain = get_domain(actor, domain_id)
    require_manage(actor, domain.customer)
    limits.lock_customer(domain.customer_id)
    in_use = sum(
        db.session.scalar(sa.select(sa.func.count()).select_from(m).where(m.domain_id == domain.id))
        for m in (Mailbox, Alias, DistributionList)
    )
    if in_use:
        raise Conflict(
            ngettext(
                "Il dominio %(d)s ha ancora %(num)d indirizzo (casella, alias o lista): "
                "eliminalo prima di togliere il dominio.",
                "Il dominio %(d)s ha ancora %(num)d indirizzi (caselle, alias o liste): "
                "eliminali prima di togliere il dominio.",
                in_use,
                d=domain.display_name,
            )
        )
    audit.record(actor, "domain.delete", customer_id=domain.customer_id, target=domain.name)
    dkim.forget(domain)
    db.session.delete(domain)
    db.session.commit()
