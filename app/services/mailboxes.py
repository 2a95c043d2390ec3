"""Mailboxes: create, change, suspend, delete; each change keeps the effective-dated history."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import Mailbox, MailboxPeriod
from app.models.base import utcnow
from app.models.mail import STATUSES
from app.services import addresses, audit, classes, fields, limits, passwords
from app.services.access import Actor, customer_for, require_manage, scoped
from app.services.errors import ValidationError
from app.services.paging import KeysetPage, Page, bounded_count, keyset, page_key, paginate

UNSET = object()


def _status(value: object) -> str:
    if value not in STATUSES:
        raise ValidationError.one("status", _("Stato non valido: usa active, suspended o disabled."))
    return value


def _open_period(mailbox: Mailbox, at) -> None:
    db.session.add(
        MailboxPeriod(
            mailbox_id=mailbox.id,
            customer_id=mailbox.customer_id,
            address=mailbox.address,
            service_class_id=mailbox.service_class_id,
            status=mailbox.status,
            valid_from=at,
        )
    )


def _close_period(mailbox: Mailbox, at) -> None:
    db.session.execute(
        sa.update(MailboxPeriod)
        .where(MailboxPeriod.mailbox_id == mailbox.id, MailboxPeriod.valid_to.is_(None))
        .values(valid_to=at)
        .execution_options(synchronize_session=False)
    )


def get_mailbox(actor: Actor, mailbox_id: object) -> Mailbox:
    try:
        mailbox = db.session.get(Mailbox, int(mailbox_id))
    except (TypeError, ValueError):
        mailbox = None
    return scoped(actor, mailbox, _("Casella non trovata."))


def create_mailbox(
    actor: Actor,
    customer_id: int,
    *,
    address: object,
    password: object,
    display_name: object = "",
    service_class: object,
) -> Mailbox:
    customer = customer_for(actor, customer_id)
    require_manage(actor, customer)
    errors: dict[str, str] = {}
    local = domain_name = cls = name = None
    try:
        local, domain_name = addresses.split_address(address)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        name = fields.text(display_name, "display_name", max_len=200, required=False)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        cls = classes.resolve(service_class)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        passwords.check_strength(password, address=address)
    except ValidationError as e:
        errors.update(e.errors)
    if domain_name and "address" not in errors:
        try:
            domain = addresses.customer_domain(customer.id, domain_name)
        except ValidationError as e:
            errors.update(e.errors)
    if errors:
        raise ValidationError(errors)
    # Hash before taking the lock: it is the slow part (~0.2 s of one core).
    hashed = passwords.hash_mailbox_password(password, customer.id)
    full = f"{local}@{domain.name}"
    limits.lock_customer(customer.id)
    addresses.ensure_free(full)
    limits.check_room(customer, cls)
    now = utcnow()
    mailbox = Mailbox(
        customer_id=customer.id,
        domain_id=domain.id,
        local_part=local,
        address=full,
        display_name=name,
        password_hash=hashed,
        service_class_id=cls.id,
        status="active",
        created_at=now,
        updated_at=now,
    )
    db.session.add(mailbox)
    db.session.flush()
    _open_period(mailbox, now)
    audit.record(
        actor,
        "mailbox.create",
        customer_id=customer.id,
        target=full,
        changes={"service_class": [None, cls.name], "display_name": [None, name], "status": [None, "active"]},
    )
    db.session.commit()
    return mailbox


def update_mailbox(
    actor: Actor,
    mailbox_id: object,
    *,
    display_name: object = UNSET,
    password: object = UNSET,
    service_class: object = UNSET,
    status: object = UNSET,
) -> Mailbox:
    mailbox = get_mailbox(actor, mailbox_id)
    customer = mailbox.domain.customer
    require_manage(actor, customer)
    errors: dict[str, str] = {}
    new: dict = {}
    readers = (
        ("display_name", display_name, lambda v: fields.text(v, "display_name", max_len=200, required=False)),
        ("service_class", service_class, classes.resolve),
        ("status", status, _status),
        ("password", password, lambda v: passwords.check_strength(v, address=mailbox.address)),
    )
    for field, value, reader in readers:
        if value is UNSET:
            continue
        try:
            new[field] = reader(value)
        except ValidationError as e:
            errors.update(e.errors)
    if errors:
        raise ValidationError(errors)
    hashed = passwords.hash_mailbox_password(new["password"], customer.id) if "password" in new else None

    limits.lock_customer(customer.id)
    db.session.refresh(mailbox)
    changes: dict = {}
    cls = new.get("service_class")
    if cls is not None and cls.id != mailbox.service_class_id:
        limits.check_room(customer, cls)
        changes["service_class"] = [mailbox.service_class.name, cls.name]
    if "status" in new and new["status"] != mailbox.status:
        changes["status"] = [mailbox.status, new["status"]]
    if "display_name" in new and new["display_name"] != mailbox.display_name:
        changes["display_name"] = [mailbox.display_name, new["display_name"]]
        mailbox.display_name = new["display_name"]
    if hashed:
        changes["password"] = ["***", "***"]
        mailbox.password_hash = hashed
    if not changes:
        db.session.rollback()
        return mailbox
    now = utcnow()
    if "service_class" in changes or "status" in changes:
        _close_period(mailbox, now)
        if cls is not None:
            mailbox.service_class_id = cls.id
            mailbox.service_class = cls
        if "status" in new:
            mailbox.status = new["status"]
        db.session.flush()
        _open_period(mailbox, now)
    mailbox.updated_at = now
    audit.record(actor, "mailbox.update", customer_id=customer.id, target=mailbox.address, changes=changes)
    db.session.commit()
    return mailbox


def delete_mailbox(actor: Actor, mailbox_id: object) -> None:
    """Delete a mailbox; its aliases and list memberships go with it."""
    mailbox = get_mailbox(actor, mailbox_id)
    customer = mailbox.domain.customer
    require_manage(actor, customer)
    limits.lock_customer(customer.id)
    _close_period(mailbox, utcnow())
    audit.record(
        actor,
        "mailbox.delete",
        customer_id=customer.id,
        target=mailbox.address,
        changes={"service_class": [mailbox.service_class.name, None], "status": [mailbox.status, None]},
    )
    db.session.delete(mailbox)
    db.session.commit()


def search_mailboxes(
    actor: Actor,
    customer_id: int,
    *,
    q: str = "",
    service_class_id: object = None,
    status: str | None = None,
    page: object = 1,
    per_page: int = 25,
) -> Page:
    """One page of a customer's mailboxes: a count and a page query, whatever the size."""
    customer = customer_for(actor, customer_id)
    stmt = sa.select(Mailbox).where(Mailbox.customer_id == customer.id).order_by(Mailbox.address)
    q = (q or "").strip().lower()
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            sa.or_(
                Mailbox.address.like(like, escape="\\"),
                sa.func.lower(Mailbox.display_name).like(like, escape="\\"),
            )
        )
    if service_class_id not in (None, ""):
        # Not an id (a word, or past the integer range): no class has it, no mailbox matches.
        class_id = fields.row_id(service_class_id)
        stmt = stmt.where(Mailbox.service_class_id == class_id if class_id else sa.false())
    if status in STATUSES:
        stmt = stmt.where(Mailbox.status == status)
    return paginate(stmt, page, per_page)


def alias_counts(mailbox_ids: list[int]) -> dict[int, int]:
    from app.models import Alias

    if not mailbox_ids:
        return {}
    rows = db.session.execute(
        sa.select(Alias.target_id, sa.func.count())
        .where(Alias.target_id.in_(mailbox_ids))
        .group_by(Alias.target_id)
    )
    return dict(rows.all())


# The portal's list: keyset paging in address order, prefix search, bounded counts.
# Every query reads an index range (migration 0009) and stops after a page, so a page costs the
# same for a customer of 1,000 mailboxes or 100,000.

LIST_COUNT_BOUND = 1000
# {(database, customer id): ((lock_version, created_at), {class id: mailboxes})}: see class_counts.
_class_counts: dict[tuple[str, int], tuple[tuple, dict[int, int]]] = {}
_CLASS_COUNTS_MAX = 10_000


def class_counts(customer) -> dict[int, int]:
    """{class id: mailboxes} of a customer, counted once per change.

    Every write that adds, removes or moves a mailbox takes limits.lock_customer, which bumps
    the customer's lock_version in the same transaction: a version seen again means the same
    mailboxes, so the count (a scan of the customer's mailboxes) is kept per process until the
    version moves. (The database's URL and created_at tell apart the same id in another database,
    or reused by an emptied one.)
    Display only: limits.check_room counts afresh under the lock.
    """
    where = (str(db.engine.url), customer.id)
    stamp = (customer.lock_version, customer.created_at)
    hit = _class_counts.get(where)
    if hit is not None and hit[0] == stamp:
        return dict(hit[1])
    counts = limits.usage_by_class(customer.id)
    if len(_class_counts) >= _CLASS_COUNTS_MAX:
        _class_counts.clear()
    _class_counts[where] = (stamp, counts)
    return dict(counts)


def _prefix(expr, text: str) -> list:
    """expr starts with text, as an index range: [text, text with its last character's successor)."""
    last = ord(text[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:
        last = 0xE000
    if last > 0x10FFFF:
        return [expr >= text]
    return [expr >= text, expr < text[:-1] + chr(last)]


def search_text(q: object) -> str:
    """What the list's search looks for: lower case, no control characters, at most 200 characters."""
    text = q if isinstance(q, str) else ""
    return (
        "".join(ch for ch in text if ord(ch) >= 32 and not 0xD800 <= ord(ch) <= 0xDFFF).strip().lower()[:200]
    )


def list_page(
    actor: Actor,
    customer_id: int,
    *,
    q: object = "",
    service_class_id: object = None,
    status: object = None,
    start: object = None,
    before: object = None,
    per_page: int = 25,
) -> KeysetPage:
    """One page of a customer's mailboxes in address order, from `start` or before `before`.

    q finds the mailboxes whose address starts with it (case aside), or whose display name does
    in lower case, Capitalised or in CAPITALS (three index ranges; "mcd" misses "McDonald"). Keys that
    are not plausible addresses are ignored (the first page). The count is exact without a
    search or status filter (from class_counts), else counted up to LIST_COUNT_BOUND.
    """
    customer = customer_for(actor, customer_id)
    postgres = db.session.get_bind().dialect.name == "postgresql"
    # Byte order on both databases (PostgreSQL's default collation may not be): what the
    # prefix ranges need, and what the indexes of migration 0009 hold.
    key = Mailbox.address.collate("C") if postgres else Mailbox.address
    name = Mailbox.display_name.collate("C") if postgres else Mailbox.display_name
    where = [Mailbox.customer_id == customer.id]
    class_id = None
    if service_class_id not in (None, ""):
        # Not an id (a word, or past the integer range): no class has it, no mailbox matches.
        class_id = fields.row_id(service_class_id)
        where.append(Mailbox.service_class_id == class_id if class_id else sa.false())
    if status in STATUSES:
        where.append(Mailbox.status == status)
    text = search_text(q)
    # One index range per way of matching; a search is their union. Addresses are lower case;
    # a name is found as typed in lower case, Capitalised or in CAPITALS ("mario": "Mario Rossi").
    ways = [[]]
    if text:
        ways = [_prefix(key, text)]
        ways += [_prefix(name, form) for form in dict.fromkeys((text, text.capitalize(), text.upper()))]

    def matching(bound, limit):
        """Per way of matching, the ids of the first `limit` matches from `bound` on."""
        for extra in ways:
            stmt = sa.select(Mailbox.id).where(*where, *extra)
            if bound is not None:
                stmt = stmt.where(key >= bound[1] if bound[0] == ">=" else key < bound[1])
            yield stmt.order_by(key.desc() if bound and bound[0] == "<" else key).limit(limit)

    def ids(bound, limit):
        parts = list(matching(bound, limit))
        return parts[0] if len(parts) == 1 else sa.union(*(sa.select(p.subquery().c.id) for p in parts))

    def fetch(bound, limit):
        order = key.desc() if bound and bound[0] == "<" else key
        stmt = sa.select(Mailbox).where(Mailbox.id.in_(ids(bound, limit))).order_by(order).limit(limit)
        return list(db.session.scalars(stmt))

    items, next_key, prev_key = keyset(
        fetch,
        start=page_key(start),
        before=page_key(before),
        per_page=per_page,
        key_of=lambda m: m.address,
    )
    if text or status in STATUSES:
        total, more = bounded_count(sa.select(ids(None, LIST_COUNT_BOUND + 1).subquery()), LIST_COUNT_BOUND)
    else:
        counts = class_counts(customer)
        more = False
        if service_class_id in (None, ""):
            total = sum(counts.values())
        else:
            total = counts.get(class_id, 0) if class_id else 0
    return KeysetPage(items, per_page, next_key, prev_key, total, more)
