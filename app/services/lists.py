"""Distribution lists: one address, many recipients (mailboxes or outside addresses). Free."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import DistributionList, Domain, ListMember, Mailbox
from app.services import addresses, audit, fields, limits
from app.services.access import Actor, customer_for, require_manage, scoped
from app.services.errors import ValidationError

MAX_MEMBERS = 1000


def get_list(actor: Actor, list_id: object) -> DistributionList:
    try:
        dlist = db.session.get(DistributionList, int(list_id))
    except (TypeError, ValueError):
        dlist = None
    return scoped(actor, dlist, _("Lista non trovata."))


def list_lists(actor: Actor, customer_id: int, q: str = "") -> list[DistributionList]:
    customer = customer_for(actor, customer_id)
    stmt = (
        sa.select(DistributionList)
        .where(DistributionList.customer_id == customer.id)
        .order_by(DistributionList.address)
    )
    if q and q.strip():
        stmt = stmt.where(DistributionList.address.contains(q.strip().lower(), autoescape=True))
    return list(db.session.scalars(stmt))


def member_counts(list_ids: list[int]) -> dict[int, int]:
    if not list_ids:
        return {}
    rows = db.session.execute(
        sa.select(ListMember.list_id, sa.func.count())
        .where(ListMember.list_id.in_(list_ids))
        .group_by(ListMember.list_id)
    )
    return dict(rows.all())


def _members(customer_id: int, values: object, own_address: str | None = None) -> list[ListMember]:
    """Members from addresses: a customer's mailbox, or any outside address.

    An address on one of the customer's own domains must be a mailbox: a
    typo there would silently lose mail, so it is refused.
    """
    if isinstance(values, str):
        values = [v for v in values.replace(",", "\n").replace(";", "\n").splitlines()]
    if not isinstance(values, list):
        raise ValidationError.one("members", _("Deve essere un elenco di indirizzi."))
    values = [v for v in values if not (isinstance(v, str) and not v.strip())]
    if len(values) > MAX_MEMBERS:
        raise ValidationError.one("members", _("Al massimo %(n)d membri.", n=MAX_MEMBERS))
    own_domains = set(db.session.scalars(sa.select(Domain.name).where(Domain.customer_id == customer_id)))
    parsed: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValidationError.one("members", _("Ogni membro deve essere un indirizzo email."))
        try:
            local, domain = addresses.split_address(value, "members")
            parsed.append(f"{local}@{domain}")
        except ValidationError:
            parsed.append(addresses.external_address(value, "members"))
    mailboxes = (
        {
            m.address: m
            for m in db.session.scalars(
                sa.select(Mailbox).where(Mailbox.customer_id == customer_id, Mailbox.address.in_(parsed))
            )
        }
        if parsed
        else {}
    )
    seen: set[str] = set()
    out: list[ListMember] = []
    for address in parsed:
        if address in seen:
            continue
        seen.add(address)
        if address == own_address:
            raise ValidationError.one("members", _("Una lista non può contenere sé stessa."))
        if address in mailboxes:
            out.append(ListMember(mailbox_id=mailboxes[address].id, mailbox=mailboxes[address]))
        elif address.partition("@")[2] in own_domains:
            raise ValidationError.one("members", _("%(a)s non è una casella di questo cliente.", a=address))
        else:
            out.append(ListMember(external_address=address))
    return out


def create_list(
    actor: Actor, customer_id: int, *, address: object, members: object = (), description: object = ""
) -> DistributionList:
    customer = customer_for(actor, customer_id)
    require_manage(actor, customer)
    errors: dict[str, str] = {}
    full = domain = None
    try:
        local, domain_name = addresses.split_address(address)
        domain = addresses.customer_domain(customer.id, domain_name)
        full = f"{local}@{domain.name}"
    except ValidationError as e:
        errors.update(e.errors)
    try:
        desc = fields.text(description, "description", max_len=200, required=False)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        new_members = _members(customer.id, list(members) if isinstance(members, tuple) else members, full)
    except ValidationError as e:
        errors.update(e.errors)
    if errors:
        raise ValidationError(errors)
    limits.lock_customer(customer.id)
    addresses.ensure_free(full)
    dlist = DistributionList(
        customer_id=customer.id, domain_id=domain.id, local_part=local, address=full, description=desc
    )
    dlist.members = new_members
    db.session.add(dlist)
    db.session.flush()
    audit.record(
        actor,
        "list.create",
        customer_id=customer.id,
        target=full,
        changes={"members": [None, [m.address for m in new_members]]},
    )
    db.session.commit()
    return dlist


def update_list(
    actor: Actor, list_id: object, *, members: object = None, description: object = None
) -> DistributionList:
    """Replace the members (and/or the description) of a list."""
    dlist = get_list(actor, list_id)
    customer = customer_for(actor, dlist.customer_id)
    require_manage(actor, customer)
    changes: dict = {}
    if description is not None:
        desc = fields.text(description, "description", max_len=200, required=False)
        if desc != dlist.description:
            changes["description"] = [dlist.description, desc]
            dlist.description = desc
    if members is not None:
        new_members = _members(customer.id, members, dlist.address)
        before = [m.address for m in dlist.members]
        after = [m.address for m in new_members]
        if sorted(before) != sorted(after):
            changes["added"] = sorted(set(after) - set(before))
            changes["removed"] = sorted(set(before) - set(after))
            keep = {m.address: m for m in dlist.members}
            dlist.members = [keep.get(m.address, m) for m in new_members]
    if changes:
        audit.record(actor, "list.update", customer_id=customer.id, target=dlist.address, changes=changes)
        db.session.commit()
    return dlist


def add_member(actor: Actor, list_id: object, address: object) -> DistributionList:
    dlist = get_list(actor, list_id)
    return update_list(actor, dlist.id, members=[m.address for m in dlist.members] + [address])


def remove_member(actor: Actor, list_id: object, member_id: object) -> DistributionList:
    dlist = get_list(actor, list_id)
    remaining = [m.address for m in dlist.members if str(m.id) != str(member_id)]
    return update_list(actor, dlist.id, members=remaining)


def delete_list(actor: Actor, list_id: object) -> None:
    dlist = get_list(actor, list_id)
    customer = customer_for(actor, dlist.customer_id)
    require_manage(actor, customer)
    audit.record(
        actor,
        "list.delete",
        customer_id=customer.id,
        target=dlist.address,
        changes={"members": [[m.address for m in dlist.members], None]},
    )
    db.session.delete(dlist)
    db.session.commit()
