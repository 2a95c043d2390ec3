"""A customer's mail domains. A domain belongs to one customer only."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext

from app.extensions import db
from app.models import Alias, DistributionList, Domain, Mailbox
from app.models.base import utcnow
from app.services import audit, limits
from app.services.access import Actor, customer_for, require_manage, scoped
from app.services.addresses import domain_to_ascii
from app.services.errors import Conflict


def list_domains(actor: Actor, customer_id: int) -> list[Domain]:
    customer = customer_for(actor, customer_id)
    return list(
        db.session.scalars(sa.select(Domain).where(Domain.customer_id == customer.id).order_by(Domain.name))
    )


def get_domain(actor: Actor, domain_id: int) -> Domain:
    return scoped(actor, db.session.get(Domain, domain_id), _("Dominio non trovato."))


def add_domain(actor: Actor, customer_id: int, name: object) -> Domain:
    customer = customer_for(actor, customer_id)
    require_manage(actor, customer)
    ascii_name = domain_to_ascii(name)
    limits.lock_customer(customer.id)
    if db.session.scalar(sa.select(Domain.id).where(Domain.name == ascii_name)) is not None:
        raise Conflict(_("Il dominio %(d)s è già registrato sul servizio.", d=ascii_name), field="name")
    domain = Domain(customer_id=customer.id, name=ascii_name)
    if actor.is_staff:
        domain.state, domain.activated_at, domain.activated_by_id = "active", utcnow(), actor.user_id
    db.session.add(domain)
    db.session.flush()
    audit.record(actor, "domain.create", customer_id=customer.id, target=ascii_name)
    db.session.commit()
    return domain


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
    db.session.delete(domain)
    db.session.commit()
