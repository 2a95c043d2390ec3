"""Aliases: a further address delivering to one mailbox of the same customer. Always free."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import Alias, Mailbox
from app.services import addresses, audit, fields, limits
from app.services.access import Actor, customer_for, require_manage, scoped
from app.services.errors import ValidationError


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
    try:
        alias = db.session.get(Alias, int(alias_id))
    except (TypeError, ValueError):
        alias = None
    return scoped(actor, alias, _("Alias non trovato."))


def list_aliases(actor: Actor, customer_id: int, q: str = "") -> list[Alias]:
    customer = customer_for(actor, customer_id)
    stmt = sa.select(Alias).where(Alias.customer_id == customer.id).order_by(Alias.address)
    if q and q.strip():
        stmt = stmt.where(Alias.address.contains(q.strip().lower(), autoescape=True))
    return list(db.session.scalars(stmt))


def create_alias(actor: Actor, customer_id: int, *, address: object, target: object) -> Alias:
    customer = customer_for(actor, customer_id)
    require_manage(actor, customer)
    errors: dict[str, str] = {}
    domain = mailbox = None
    try:
        local, domain_name = addresses.split_address(address)
        domain = addresses.customer_domain(customer.id, domain_name)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        mailbox = _target(customer.id, target)
    except ValidationError as e:
        errors.update(e.errors)
    if errors:
        raise ValidationError(errors)
    full = f"{local}@{domain.name}"
    limits.lock_customer(customer.id)
    addresses.ensure_free(full)
    alias = Alias(
        customer_id=customer.id, domain_id=domain.id, local_part=local, address=full, target_id=mailbox.id
    )
    db.session.add(alias)
    db.session.flush()
    audit.record(
        actor,
        "alias.create",
        customer_id=customer.id,
        target=full,
        changes={"target": [None, mailbox.address]},
    )
    db.session.commit()
    return alias


def update_alias(actor: Actor, alias_id: object, *, target: object) -> Alias:
    alias = get_alias(actor, alias_id)
    customer = customer_for(actor, alias.customer_id)
    require_manage(actor, customer)
    mailbox = _target(customer.id, target)
    if mailbox.id != alias.target_id:
        audit.record(
            actor,
            "alias.update",
            customer_id=customer.id,
            target=alias.address,
            changes={"target": [alias.target.address, mailbox.address]},
        )
        alias.target_id = mailbox.id
        alias.target = mailbox
        db.session.commit()
    return alias


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
