"""Mailboxes: create, change, suspend, delete; each change keeps the effective-dated history.

Creating and changing go in two steps: validate (every problem at once, nothing written,
no lock, no hashing) and apply (hash, lock the customer, check the contract, write). A
sheet of rows is checked with check_mailbox_rows against one CustomerContext.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import Customer, Domain, Mailbox, MailboxPeriod, MailboxWord, ServiceClass
from app.models.enums import Plan
from app.models.mail import STATUSES
from app.services import addresses, audit, billing, classes, clock, fields, limits, passwords, search_words
from app.services.access import Actor, customer_for, get_scoped, require_manage
from app.services.context import CustomerContext
from app.services.errors import FieldErrors, ValidationError
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
    return get_scoped(actor, Mailbox, mailbox_id, _("Casella non trovata."))


@dataclass(frozen=True, eq=False)
class MailboxDraft:
    """A new mailbox whose every field passed its checks; nothing written yet."""

    customer: Customer
    domain: Domain
    service_class: ServiceClass
    local_part: str
    address: str  # local_part@domain, lower case, the domain in ASCII (IDNA)
    display_name: str
    password: str = field(repr=False)


def validate_mailbox(
    context: CustomerContext,
    *,
    address: object,
    password: object,
    display_name: object = "",
    service_class: object,
) -> MailboxDraft:
    """Check a new mailbox's fields against the customer; ValidationError names every bad field.

    Reads only (the context's domains and classes): nothing is written, locked or hashed.
    Whether the address is free and the contract has room is apply_mailbox's to say, under
    the customer's lock (check_mailbox_rows previews both for a sheet).
    """
    problems = FieldErrors()
    local = domain = None
    with problems.catching():
        local, domain = context.address(address)
    name = problems.collect(fields.text, display_name, "display_name", max_len=200, required=False)
    cls = problems.collect(context.service_class, service_class)
    problems.collect(passwords.check_strength, password, address=address)
    problems.raise_if_any()
    return MailboxDraft(
        customer=context.customer,
        domain=domain,
        service_class=cls,
        local_part=local,
        address=f"{local}@{domain.name}",
        display_name=name,
        password=password,
    )


def apply_mailbox(actor: Actor, draft: MailboxDraft) -> Mailbox:
    """Write a validated mailbox: hash, then under the customer's lock check the address and the room."""
    customer, cls = draft.customer, draft.service_class
    # Hash before taking the lock: it is the slow part (~0.2 s of one core).
    hashed = passwords.hash_mailbox_password(draft.password, customer.id)
    limits.lock_customer(customer.id)
    addresses.ensure_free(draft.address)
    limits.check_room(customer, cls)
    billing.check_affordable(customer, billing.mailbox_cost(cls.id, "active"))
    now = clock.now()
    mailbox = Mailbox(
        customer_id=customer.id,
        domain_id=draft.domain.id,
        local_part=draft.local_part,
        address=draft.address,
        display_name=draft.display_name,
        password_hash=hashed,
        service_class_id=cls.id,
        status="active",
        created_at=now,
        updated_at=now,
    )
    db.session.add(mailbox)
    db.session.flush()
    _open_period(mailbox, now)
    search_words.reindex(mailbox)
    audit.record(
        actor,
        "mailbox.create",
        customer_id=customer.id,
        target=draft.address,
        changes={
            "service_class": [None, cls.name],
            "display_name": [None, draft.display_name],
            "status": [None, "active"],
        },
    )
    db.session.commit()
    return mailbox


def create_mailbox(actor: Actor, customer_id: int, **values: object) -> Mailbox:
    """A new mailbox; values are validate_mailbox's (address, password, display_name, service_class)."""
    return apply_mailbox(actor, validate_mailbox(CustomerContext.load(actor, customer_id), **values))


@dataclass(frozen=True)
class MailboxRows:
    """Many new mailboxes checked at once (a sheet's rows), nothing written."""

    drafts: list[MailboxDraft | None]  # per row, None where the row has problems
    errors: dict[int, dict[str, str]]  # row index -> field -> message
    room: dict[int, limits.Room]  # per class id: the room for the rows without problems

    @property
    def shortfalls(self) -> list[limits.Room]:
        return [r for r in self.room.values() if not r.fits]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.shortfalls


ROW_FIELDS = ("address", "password", "display_name", "service_class")


def check_mailbox_rows(context: CustomerContext, rows: Sequence[Mapping[str, object]]) -> MailboxRows:
    """Validate every row, then, for all of them together, the addresses already taken (or
    repeated in the rows) and the contract's room per class: a bounded number of queries
    whatever the number of rows; nothing written or locked, no password hashed.

    What it finds can change before the rows are applied: apply_mailbox checks again.
    """
    drafts: list[MailboxDraft | None] = []
    errors: dict[int, dict[str, str]] = {}
    for i, row in enumerate(rows):
        try:
            drafts.append(validate_mailbox(context, **{k: row.get(k, "") for k in ROW_FIELDS}))
        except ValidationError as e:
            drafts.append(None)
            errors[i] = e.errors
    taken = addresses.in_use(d.address for d in drafts if d is not None)
    seen: set[str] = set()
    for i, draft in enumerate(drafts):
        if draft is None:
            continue
        problem = taken.get(draft.address)
        if problem is None and draft.address in seen:
            problem = _("L'indirizzo %(a)s è ripetuto: compare già in un'altra riga.", a=draft.address)
        seen.add(draft.address)
        if problem is not None:
            drafts[i] = None
            errors[i] = {"address": problem}
    wanted = Counter(d.service_class.id for d in drafts if d is not None)
    return MailboxRows(drafts, errors, limits.room_for(context.customer, wanted))


@dataclass(frozen=True, eq=False)
class MailboxChange:
    """A validated change to a mailbox; None: that field was not asked to change."""

    mailbox: Mailbox
    customer: Customer
    display_name: str | None = None
    service_class: ServiceClass | None = None
    status: str | None = None
    password: str | None = field(default=None, repr=False)


def validate_mailbox_change(
    actor: Actor,
    mailbox_id: object,
    *,
    display_name: object = UNSET,
    password: object = UNSET,
    service_class: object = UNSET,
    status: object = UNSET,
) -> MailboxChange:
    """Check a change's fields (UNSET: leave as is); ValidationError names every bad one. Writes nothing."""
    mailbox = get_mailbox(actor, mailbox_id)
    customer = mailbox.domain.customer
    require_manage(actor, customer)
    problems = FieldErrors()
    new: dict = {}
    readers = (
        ("display_name", display_name, lambda v: fields.text(v, "display_name", max_len=200, required=False)),
        ("service_class", service_class, classes.resolve),
        ("status", status, _status),
        ("password", password, lambda v: passwords.check_strength(v, address=mailbox.address)),
    )
    for name, value, reader in readers:
        if value is not UNSET:
            new[name] = problems.collect(reader, value)
    problems.raise_if_any()
    return MailboxChange(mailbox, customer, **new)


def apply_mailbox_change(actor: Actor, change: MailboxChange) -> Mailbox:
    """Write a validated change: hash, then under the customer's lock check the room of a new class."""
    mailbox, customer = change.mailbox, change.customer
    hashed = passwords.hash_mailbox_password(change.password, customer.id) if change.password else None

    limits.lock_customer(customer.id)
    db.session.refresh(mailbox)
    changes: dict = {}
    cls = change.service_class
    if cls is not None and cls.id != mailbox.service_class_id:
        limits.check_room(customer, cls)
        changes["service_class"] = [mailbox.service_class.name, cls.name]
    if change.status is not None and change.status != mailbox.status:
        changes["status"] = [mailbox.status, change.status]
    if change.display_name is not None and change.display_name != mailbox.display_name:
        changes["display_name"] = [mailbox.display_name, change.display_name]
        mailbox.display_name = change.display_name
        search_words.reindex(mailbox)
    if hashed:
        changes["password"] = ["***", "***"]
        mailbox.password_hash = hashed
    if not changes:
        db.session.rollback()
        return mailbox
    if customer.plan == Plan.PAYG and ("service_class" in changes or "status" in changes):
        # A dearer class or a re-activation: the balance must pay one more day of the result.
        prices = billing.price_list(clock.today())
        before = billing.mailbox_cost(mailbox.service_class_id, mailbox.status, prices)
        after = billing.mailbox_cost(
            cls.id if cls is not None else mailbox.service_class_id, change.status or mailbox.status, prices
        )
        billing.check_affordable(customer, after - before)
    now = clock.now()
    if "service_class" in changes or "status" in changes:
        _close_period(mailbox, now)
        if cls is not None:
            mailbox.service_class_id = cls.id
            mailbox.service_class = cls
        if change.status is not None:
            mailbox.status = change.status
        db.session.flush()
        _open_period(mailbox, now)
    mailbox.updated_at = now
    audit.record(actor, "mailbox.update", customer_id=customer.id, target=mailbox.address, changes=changes)
    db.session.commit()
    return mailbox


def update_mailbox(actor: Actor, mailbox_id: object, **changes: object) -> Mailbox:
    """Change a mailbox; changes are validate_mailbox_change's (display_name, password, service_class, status)."""
    return apply_mailbox_change(actor, validate_mailbox_change(actor, mailbox_id, **changes))


def delete_mailbox(actor: Actor, mailbox_id: object) -> None:
    """Delete a mailbox; its aliases and list memberships go with it."""
    mailbox = get_mailbox(actor, mailbox_id)
    customer = mailbox.domain.customer
    require_manage(actor, customer)
    limits.lock_customer(customer.id)
    _close_period(mailbox, clock.now())
    audit.record(
        actor,
        "mailbox.delete",
        customer_id=customer.id,
        target=mailbox.address,
        changes={"service_class": [mailbox.service_class.name, None], "status": [mailbox.status, None]},
    )
    db.session.delete(mailbox)  # its search words go with it (ON DELETE CASCADE)
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

    q finds the mailboxes whose address starts with it (case aside), and those with a word (of
    the local part or the display name, accents aside) starting with each word typed: "rossi"
    finds mario.rossi@… and "Mario Rossi", "nicolo" finds "Nicolò", "mario ros" finds "Mario
    Rossi". The longest word typed is read as a range of the customer's words, at most
    WORD_MATCH_CAP of them (`capped` says the cap was reached: some may not show); the other
    words are checked on those mailboxes' own words. Text without a letter or digit lists all.
    Keys that are not plausible addresses are ignored (the first page). The count is exact
    without a search or status filter (from class_counts), else counted up to LIST_COUNT_BOUND.
    """
    customer = customer_for(actor, customer_id)
    postgres = db.session.get_bind().dialect.name == "postgresql"
    # Byte order on both databases (PostgreSQL's default collation may not be): what the
    # prefix ranges need, and what the indexes of migrations 0009 and 0010 hold.
    key = Mailbox.address.collate("C") if postgres else Mailbox.address
    where = [Mailbox.customer_id == customer.id]
    class_id = None
    if service_class_id not in (None, ""):
        # Not an id (a word, or past the integer range): no class has it, no mailbox matches.
        class_id = fields.row_id(service_class_id)
        where.append(Mailbox.service_class_id == class_id if class_id else sa.false())
    if status in STATUSES:
        where.append(Mailbox.status == status)
    text = search_text(q)
    words = search_words.query_words(text)
    if not words:
        text = ""  # nothing to look for ("...", "@"): the whole list
    # One index range per way of matching; a search is their union: the address's start, and
    # the mailboxes (at most WORD_MATCH_CAP) with a word starting with the longest word typed,
    # checked for the other words on their own words (the words' primary key). That way's query
    # starts from the words' matches (joined to the mailboxes by their primary key), so it reads
    # at most WORD_MATCH_CAP mailboxes, not the list in address order.
    # A typed word matches a mailbox whose address starts with it too (the local part's first word
    # is not among the stored words: the address's index finds it).
    ways = [(None, [])]
    if text:
        others = [sa.or_(_has_word(word, postgres), sa.and_(*_prefix(key, word))) for word in words[1:]]
        matches = _word_matches(customer.id, words[0], postgres).subquery()
        ways = [(None, _prefix(key, text)), (matches, others)]
        if words[0] != text:
            ways.append((None, [*_prefix(key, words[0]), *others]))

    def matching(bound, limit):
        """Per way of matching, the ids of the first `limit` matches from `bound` on."""
        for source, extra in ways:
            stmt = sa.select(Mailbox.id)
            if source is not None:
                # A mailbox with two such words comes twice from the words: once here.
                stmt = sa.select(Mailbox.id, key.label("key")).distinct()
                stmt = stmt.select_from(source).join(Mailbox, Mailbox.id == source.c.mailbox_id)
            stmt = stmt.where(*where, *extra)
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
    capped = False
    if text:
        capped = bounded_count(_word_matches(customer.id, words[0], postgres), WORD_MATCH_CAP)[1]
    if text or status in STATUSES:
        total, more = bounded_count(sa.select(ids(None, LIST_COUNT_BOUND + 1).subquery()), LIST_COUNT_BOUND)
    else:
        counts = class_counts(customer)
        more = False
        if service_class_id in (None, ""):
            total = sum(counts.values())
        else:
            total = counts.get(class_id, 0) if class_id else 0
    return KeysetPage(items, per_page, next_key, prev_key, total, more, capped)


# A search reads at most this many of the customer's words starting with the longest word typed
# (a page costs the same at 1,000 mailboxes or 100,000); past it the page asks for more letters.
WORD_MATCH_CAP = 2000


def _word_key(table, postgres: bool):
    return table.c.word.collate("C") if postgres else table.c.word


def _word_matches(customer_id: int, word: str, postgres: bool):
    """The ids of the customer's mailboxes with a word starting with `word`: the first
    WORD_MATCH_CAP words of that range of the index (ix_mailbox_words_search), in word order."""
    words = MailboxWord.__table__
    wkey = _word_key(words, postgres)
    return (
        sa.select(words.c.mailbox_id)
        .where(words.c.customer_id == customer_id, *_prefix(wkey, word))
        .order_by(wkey)
        .limit(WORD_MATCH_CAP)
    )


def _has_word(word: str, postgres: bool):
    """The mailbox has a word starting with `word` (read from its own words, by the primary key)."""
    words = MailboxWord.__table__.alias()
    return sa.exists().where(words.c.mailbox_id == Mailbox.id, *_prefix(_word_key(words, postgres), word))
