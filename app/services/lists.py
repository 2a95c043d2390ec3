"""Distribution lists: one address, many recipients (mailboxes or outside addresses). Free."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from app.extensions import db
from app.models import Customer, DistributionList, Domain, ListMember, Mailbox
from app.models.mail import POST_POLICIES
from app.services import addresses, audit, fields, limits
from app.services.access import Actor, customer_for, get_scoped, require_manage, require_staff
from app.services.context import CustomerContext
from app.services.errors import FieldErrors, ValidationError

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


def _check_external(customer: Customer, new: int, dlist: DistributionList | None) -> None:
    """Refuse more external members (new: how many the list would have) than the limits allow.
    A change that does not add any (removing members, after a limit was lowered) always passes."""
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
    problems = FieldErrors()
    for name, value in (("list_external_per_list", per_list), ("list_external_per_customer", per_customer)):
        if value is None or (isinstance(value, str) and not value.strip()):
            values[name] = None
            continue
        values[name] = problems.collect(fields.integer, value, name, minimum=0, maximum=100_000)
    problems.raise_if_any()
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
    return get_scoped(actor, DistributionList, list_id, _("Lista non trovata."))


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


@dataclass(frozen=True, eq=False)
class Member:
    """A list member as validated: one of the customer's mailboxes, or an outside address."""

    address: str
    mailbox: Mailbox | None = None

    @property
    def is_external(self) -> bool:
        return self.mailbox is None

    def row(self) -> ListMember:
        if self.mailbox is not None:
            return ListMember(mailbox_id=self.mailbox.id, mailbox=self.mailbox)
        return ListMember(external_address=self.address)


def _members(context: CustomerContext, values: object, own_address: str | None = None) -> tuple[Member, ...]:
    """Members from addresses: a customer's mailbox, or any outside address.

    An address on one of the customer's own domains must be a mailbox: a
    typo there would silently lose mail, so it is refused.
    """
    customer_id = context.customer.id
    if isinstance(values, str):
        values = [v for v in values.replace(",", "\n").replace(";", "\n").splitlines()]
    if not isinstance(values, list):
        raise ValidationError.one("members", _("Deve essere un elenco di indirizzi."))
    values = [v for v in values if not (isinstance(v, str) and not v.strip())]
    if len(values) > MAX_MEMBERS:
        raise ValidationError.one("members", _("Al massimo %(n)d membri.", n=MAX_MEMBERS))
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
    out: list[Member] = []
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
            out.append(Member(address, mailboxes[address]))
        elif address.partition("@")[2] in context.domains:
            raise ValidationError.one("members", _("%(a)s non è una casella di questo cliente.", a=address))
        else:
            out.append(Member(address))
    return tuple(out)


def check_members(
    context: CustomerContext, values: list, list_address: str | None = None
) -> tuple[Member, ...]:
    """Would-be members of a list, checked together (two queries): ValidationError at the first refused."""
    return _members(context, list(values), list_address)


def check_member(context: CustomerContext, address: object, list_address: str | None = None) -> Member:
    """One would-be member of a list, checked as the list forms check each: ValidationError if refused."""
    return _members(context, [address], list_address)[0]


def _externals(members: tuple[Member, ...]) -> int:
    return sum(1 for m in members if m.is_external)


@dataclass(frozen=True, eq=False)
class ListDraft:
    """A new distribution list whose fields passed their checks; nothing written yet."""

    customer: Customer
    domain: Domain
    local_part: str
    address: str
    description: str
    post_policy: str
    members: tuple[Member, ...]


def validate_list(
    context: CustomerContext,
    *,
    address: object,
    members: object = (),
    description: object = "",
    post_policy: object = DEFAULT_POST_POLICY,
) -> ListDraft:
    """Check a new list against the customer; ValidationError names every bad field. Writes nothing.

    The limits on external members and whether the address is free are apply_list's to
    check, under the customer's lock.
    """
    problems = FieldErrors()
    local = domain = full = None
    with problems.catching():
        local, domain = context.address(address)
        full = f"{local}@{domain.name}"
    desc = problems.collect(fields.text, description, "description", max_len=200, required=False)
    policy = problems.collect(parse_post_policy, post_policy)
    new_members = problems.collect(
        _members, context, list(members) if isinstance(members, tuple) else members, full
    )
    problems.raise_if_any()
    return ListDraft(context.customer, domain, local, full, desc, policy, new_members)


def apply_list(actor: Actor, draft: ListDraft) -> DistributionList:
    """Write a validated list; under the customer's lock, the external-member limits and the free address."""
    customer = draft.customer
    limits.lock_customer(customer.id)
    _check_external(customer, _externals(draft.members), None)
    addresses.ensure_free(draft.address)
    dlist = DistributionList(
        customer_id=customer.id,
        domain_id=draft.domain.id,
        local_part=draft.local_part,
        address=draft.address,
        description=draft.description,
        post_policy=draft.post_policy,
    )
    dlist.members = [m.row() for m in draft.members]
    db.session.add(dlist)
    db.session.flush()
    audit.record(
        actor,
        "list.create",
        customer_id=customer.id,
        target=draft.address,
        changes={
            "members": [None, [m.address for m in dlist.members]],
            "post_policy": [None, draft.post_policy],
        },
    )
    db.session.commit()
    return dlist


def create_list(actor: Actor, customer_id: int, **values: object) -> DistributionList:
    """A new list; values are validate_list's (address, members, description, post_policy)."""
    return apply_list(actor, validate_list(CustomerContext.load(actor, customer_id), **values))


@dataclass(frozen=True, eq=False)
class ListChange:
    """A validated change to a list; None: that field was not asked to change."""

    dlist: DistributionList
    customer: Customer
    description: str | None = None
    post_policy: str | None = None
    members: tuple[Member, ...] | None = None


def validate_list_change(
    actor: Actor,
    list_id: object,
    *,
    members: object = None,
    description: object = None,
    post_policy: object = None,
) -> ListChange:
    """Check a change's fields (None: leave as is); ValidationError names every bad one. Writes nothing."""
    dlist = get_list(actor, list_id)
    customer = customer_for(actor, dlist.customer_id)
    require_manage(actor, customer)
    problems = FieldErrors()
    new: dict = {}
    if description is not None:
        new["description"] = problems.collect(
            fields.text, description, "description", max_len=200, required=False
        )
    if post_policy is not None:
        new["post_policy"] = problems.collect(parse_post_policy, post_policy)
    if members is not None:
        new["members"] = problems.collect(_members, CustomerContext(actor, customer), members, dlist.address)
    problems.raise_if_any()
    return ListChange(dlist, customer, **new)


def apply_list_change(actor: Actor, change: ListChange) -> DistributionList:
    """Write a validated change; new members are checked against the external limits under the lock."""
    dlist, customer = change.dlist, change.customer
    # Everything is checked before anything changes: a refused edit leaves the list as it was.
    if change.members is not None:
        limits.lock_customer(customer.id)
        _check_external(customer, _externals(change.members), dlist)
    changes: dict = {}
    if change.description is not None and change.description != dlist.description:
        changes["description"] = [dlist.description, change.description]
        dlist.description = change.description
    if change.post_policy is not None and change.post_policy != dlist.post_policy:
        changes["post_policy"] = [dlist.post_policy, change.post_policy]
        dlist.post_policy = change.post_policy
    if change.members is not None:
        before = [m.address for m in dlist.members]
        after = [m.address for m in change.members]
        if sorted(before) != sorted(after):
            changes["added"] = sorted(set(after) - set(before))
            changes["removed"] = sorted(set(before) - set(after))
            keep = {m.address: m for m in dlist.members}
            dlist.members = [keep.get(m.address) or m.row() for m in change.members]
    if changes:
        audit.record(actor, "list.update", customer_id=customer.id, target=dlist.address, changes=changes)
        db.session.commit()
    return dlist


def update_list(actor: Actor, list_id: object, **changes: object) -> DistributionList:
    """Replace the members (and/or the description, who may post) of a list; see validate_list_change."""
    return apply_list_change(actor, validate_list_change(actor, list_id, **changes))


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
