"""Aliases: a further address delivering to one mailbox of the same customer. Always free."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import Alias, Customer, Domain, Mailbox
from app.services import addresses, audit, fields, limits
from app.services.access import Actor, customer_for, get_scoped, require_manage
from app.services.context import CustomerContext
from app.services.errors import Conflict, FieldErrors, ValidationError


def _target(customer_id: int, value: object) -> Mailbox:
    mailbox = None
    if fields.row_id(value) is not None:
        mailbox = db.session.get(Mailbox, fields.row_id(value))
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if not text.isdigit():
            try:
                local, domain = addresses.split_address(text, "target")
            except ValidationError:
                mailbox = None
            else:
                mailbox = db.session.scalar(sa.select(Mailbox).where(Mailbox.address == f"{local}@{domain}"))
    if mailbox is None or mailbox.customer_id != customer_id:
        raise ValidationError.one("target", _("Scegli una casella di questo cliente come destinazione."))
    return mailbox


def get_alias(actor: Actor, alias_id: object) -> Alias:
    return get_scoped(actor, Alias, alias_id, _("Alias non trovato."))


def list_aliases(actor: Actor, customer_id: int, q: str = "") -> list[Alias]:
    customer = customer_for(actor, customer_id)
    stmt = sa.select(Alias).where(Alias.customer_id == customer.id).order_by(Alias.address)
    if q and q.strip():
        stmt = stmt.where(Alias.address.contains(q.strip().lower(), autoescape=True))
    return list(db.session.scalars(stmt))


@dataclass(frozen=True, eq=False)
class AliasDraft:
    """A new alias whose fields passed their checks; nothing written yet."""

    customer: Customer
    domain: Domain
    local_part: str
    address: str
    target: Mailbox


def validate_alias(context: CustomerContext, *, address: object, target: object) -> AliasDraft:
    """Check a new alias against the customer; ValidationError names every bad field. Writes nothing."""
    problems = FieldErrors()
    local = domain = None
    with problems.catching():
        local, domain = context.address(address)
    mailbox = problems.collect(_target, context.customer.id, target)
    problems.raise_if_any()
    return AliasDraft(context.customer, domain, local, f"{local}@{domain.name}", mailbox)


def apply_alias(actor: Actor, draft: AliasDraft) -> Alias:
    """Write a validated alias; under the customer's lock, its address must still be free."""
    customer = draft.customer
    limits.lock_customer(customer.id)
    addresses.ensure_free(draft.address)
    alias = Alias(
        customer_id=customer.id,
        domain_id=draft.domain.id,
        local_part=draft.local_part,
        address=draft.address,
        target_id=draft.target.id,
    )
    db.session.add(alias)
    db.session.flush()
    audit.record(
        actor,
        "alias.create",
        customer_id=customer.id,
        target=draft.address,
        changes={"target": [None, draft.target.address]},
    )
    db.session.commit()
    return alias


def apply_aliases(actor: Actor, drafts: list[AliasDraft]) -> list[Alias]:
    """Write many validated aliases of one customer (a sheet's) in one transaction: one lock, one
    check of the addresses, one commit. Conflict, and nothing written, if any address is taken."""
    if not drafts:
        return []
    customer = drafts[0].customer
    if any(d.customer.id != customer.id for d in drafts):
        raise ValueError("aliases of one customer at a time")
    limits.lock_customer(customer.id)
    taken = addresses.in_use(d.address for d in drafts)
    if taken or len({d.address for d in drafts}) < len(drafts):
        raise Conflict(next(iter(taken.values()), _("Un indirizzo è ripetuto.")), field="address")
    rows = [
        Alias(
            customer_id=customer.id,
            domain_id=d.domain.id,
            local_part=d.local_part,
            address=d.address,
            target_id=d.target.id,
        )
        for d in drafts
    ]
    db.session.add_all(rows)
    db.session.flush()
    for d in drafts:
        audit.record(
            actor,
            "alias.create",
            customer_id=customer.id,
            target=d.address,
            changes={"target": [None, d.target.address]},
        )
    db.session.commit()
    return rows


def create_alias(actor: Actor, customer_id: int, *, address: object, target: object) -> Alias:
    draft = validate_alias(CustomerContext.load(actor, customer_id), address=address, target=target)
    return apply_alias(actor, draft)


@dataclass(frozen=True, eq=False)
class AliasChange:
    alias: Alias
    target: Mailbox


def validate_alias_change(actor: Actor, alias_id: object, *, target: object) -> AliasChange:
    alias = get_alias(actor, alias_id)
    customer = customer_for(actor, alias.customer_id)
    require_manage(actor, customer)
    return AliasChange(alias, _target(customer.id, target))


def apply_alias_change(actor: Actor, change: AliasChange) -> Alias:
    alias, mailbox = change.alias, change.target
    if mailbox.id != alias.target_id:
        audit.record(
            actor,
            "alias.update",
            customer_id=alias.customer_id,
            target=alias.address,
            changes={"target": [alias.target.address, mailbox.address]},
        )
        alias.target_id = mailbox.id
        alias.target = mailbox
        db.session.commit()
    return alias


def update_alias(actor: Actor, alias_id: object, *, target: object) -> Alias:
    return apply_alias_change(actor, validate_alias_change(actor, alias_id, target=target))


def delete_alias(actor: Actor, alias_id: object) -> None:
    alias = get_alias(actor, alias_id)
    customer = customer_for(actor, alias.customer_id)
    require_manage(actor, customer)
    audit.record(
        actor,
        "alias.delete",
        customer_id=customer.id,
        target=alias.address,
        changes={"target": [alias.target.address, None]},
    )
    db.session.delete(alias)
    db.session.commit()
