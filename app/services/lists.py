"""Distribution lists: one address, many recipients (mailboxes or outside addresses). Free."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from app.extensions import db
from app.models import Customer, DistributionList, Domain, ListMember, Mailbox
from app.models.mail import POST_POLICIES
from app.services import addresses, audit, fields, limits
from app.services.access import Actor, customer_for, require_manage, require_staff, scoped
from app.services.errors import ValidationError

MAX_MEMBERS = 1000
DEFAULT_POST_POLICY = "customer"


def parse_post_policy(value: object) -> str:
    if not isinstance(value, str) or value.strip() not in POST_POLICIES:
        raise ValidationError.one(
            "post_policy", _("Scegli chi può scrivere alla lista: anyone, customer o members.")
        )
    return value.strip()


def external_limits(customer: Customer) -> tuple[int, int]:
    """(external members per list, external members over all the customer's lists):
    the customer's staff-set override, else the configured default."""
    per_list = customer.list_external_per_list
    per_customer = customer.list_external_per_customer
    if per_list is None:
        per_list = current_app.config["LIST_EXTERNAL_PER_LIST"]
    if per_customer is None:
        per_customer = current_app.config["LIST_EXTERNAL_PER_CUSTOMER"]
    return per_list, per_customer


def external_count(customer_id: int, exclude_list_id: int | None = None) -> int:
    """External member rows over the customer's lists: each is one more copy of every message."""
    stmt = (
        sa.select(sa.func.count())
        .select_from(ListMember)
        .join(DistributionList, DistributionList.id == ListMember.list_id)
        .where(DistributionList.customer_id == customer_id, ListMember.external_address.is_not(None))
    )
    if exclude_list_id is not None:
        stmt = stmt.where(DistributionList.id != exclude_list_id)
    return db.session.scalar(stmt) or 0


def largest_external_list(customer_id: int) -> int:
    """External members of the customer's list that has the most (0 without any)."""
    per_list = (
        sa.select(sa.func.count().label("n"))
        .select_from(ListMember)
        .join(DistributionList, DistributionList.id == ListMember.list_id)
        .where(DistributionList.customer_id == customer_id, ListMember.external_address.is_not(None))
        .group_by(DistributionList.id)
        .subquery()
    )
    return db.session.scalar(sa.select(sa.func.max(per_list.c.n))) or 0


def _check_external(customer: Customer, members: list[ListMember], dlist: DistributionList | None) -> None:
    """Refuse more external members than the limits allow. A change that does not add
    any (removing members, after a limit was lowered) always passes."""
    new = sum(1 for m in members if m.external_address is not None)
    old = sum(1 for m in dlist.members if m.external_address is not None) if dlist else 0
    if new <= old:
        return
    per_list, per_customer = external_limits(customer)
    if new > per_list:
        raise ValidationError.one(
            "members",
            _(
                "Troppi indirizzi esterni: %(n)d in questa lista, il limite è %(limit)d per lista.",
                n=new,
                limit=per_list,
            ),
        )
    others = external_count(customer.id, dlist.id if dlist else None)
    if others + new > per_customer:
        raise ValidationError.one(
            "members",
            _(
                "Troppi indirizzi esterni: %(n)d in tutte le liste con questa modifica, "
                "il limite è %(limit)d per cliente.",
                n=others + new,
                limit=per_customer,
            ),
        )


def set_external_limits(
    actor: Actor, customer_id: int, *, per_list: object, per_customer: object
) -> Customer:
    """Staff override the limits on external list members for one customer (None: the default)."""
    require_staff(actor)
    customer = customer_for(actor, customer_id)
    values = {}
    errors: dict[str, str] = {}
    for name, value in (("list_external_per_list", per_list), ("list_external_per_customer", per_customer)):
        if value is None or (isinstance(value, str) and not value.strip()):
            values[name] = None
            continue
        try:
            values[name] = fields.integer(value, name, minimum=0, maximum=100_000)
        except ValidationError as e:
            errors.update(e.errors)
    if errors:
        raise ValidationError(errors)
    changes = {k: [getattr(customer, k), v] for k, v in values.items() if getattr(customer, k) != v}
    if changes:
        for k, v in values.items():
            setattr(customer, k, v)
        audit.record(
            actor, "customer.list_limits", customer_id=customer.id, target=customer.name, changes=changes
        )
        db.session.commit()
    return customer


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
    # A list of ours as a member would reach its members around its own rule on
    # who may post (Postfix expands aliases after the SMTP checks).
    other_lists = (
        set(
            db.session.scalars(
                sa.select(DistributionList.address).where(DistributionList.address.in_(parsed))
            )
        )
        if parsed
        else set()
    )
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
        if address in other_lists:
            raise ValidationError.one(
                "members",
                _("%(a)s è una lista di distribuzione: una lista non può contenerne un'altra.", a=address),
            )
        if address in mailboxes:
            out.append(ListMember(mailbox_id=mailboxes[address].id, mailbox=mailboxes[address]))
        elif address.partition("@")[2] in own_domains:
            raise ValidationError.one("members", _("%(a)s non è una casella di questo cliente.", a=address))
        else:
            out.append(ListMember(external_address=address))
    return out


def create_list(
    actor: Actor,
    customer_id: int,
    *,
    address: object,
    members: object = (),
    description: object = "",
    post_policy: object = DEFAULT_POST_POLICY,
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
        policy = parse_post_policy(post_policy)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        new_members = _members(customer.id, list(members) if isinstance(members, tuple) else members, full)
    except ValidationError as e:
        errors.update(e.errors)
    if errors:
        raise ValidationError(errors)
    limits.lock_customer(customer.id)
    _check_external(customer, new_members, None)
    addresses.ensure_free(full)
    dlist = DistributionList(
        customer_id=customer.id,
        domain_id=domain.id,
        local_part=local,
        address=full,
        description=desc,
        post_policy=policy,
    )
    dlist.members = new_members
    db.session.add(dlist)
    db.session.flush()
    audit.record(
        actor,
        "list.create",
        customer_id=customer.id,
        target=full,
        changes={"members": [None, [m.address for m in new_members]], "post_policy": [None, policy]},
    )
    db.session.commit()
    return dlist


def update_list(
    actor: Actor,
    list_id: object,
    *,
    members: object = None,
    description: object = None,
    post_policy: object = None,
) -> DistributionList:
    """Replace the members (and/or the description, who may post) of a list."""
    dlist = get_list(actor, list_id)
    customer = customer_for(actor, dlist.customer_id)
    require_manage(actor, customer)
    # Everything is checked before anything changes: a refused edit leaves the list as it was.
    desc = (
        fields.text(description, "description", max_len=200, required=False)
        if description is not None
        else None
    )
    policy = parse_post_policy(post_policy) if post_policy is not None else None
    new_members = None
    if members is not None:
        new_members = _members(customer.id, members, dlist.address)
        limits.lock_customer(customer.id)
        _check_external(customer, new_members, dlist)
    changes: dict = {}
    if desc is not None and desc != dlist.description:
        changes["description"] = [dlist.description, desc]
        dlist.description = desc
    if policy is not None and policy != dlist.post_policy:
        changes["post_policy"] = [dlist.post_policy, policy]
        dlist.post_policy = policy
    if new_members is not None:
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
