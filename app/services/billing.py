"""Pay-per-Use point accounts: the price list, the daily charge, the ledger and the balance.

Money is integers: centipoints (hundredths of a point), 1 EUR = 80 points, so one EUR
cent is 80 centipoints. Charges are negative entries, credits positive.

**The daily charge.** A Pay-per-Use customer's day (a calendar day in PROVIDER_TIMEZONE,
23 or 25 hours when the clocks change; `clock.day_bounds`) is charged with one ledger
entry and one line per mailbox that was `active` at any moment of the day (its
`mailbox_periods`), at the highest-priced class it held while active that day, at the
price in force that day. A customer with no chargeable mailbox that day gets an entry
of 0 and no lines, so the day counts as charged. Aliases and lists are free; suspended
and disabled mailboxes are not charged; contract customers never.

**Never twice.** The entries of charges have a partial unique index on (customer_id,
day); each batch of customers of one day is one transaction that inserts their entries
with INSERT ... ON CONFLICT DO NOTHING RETURNING: only the entries it actually wrote get
lines and move the balance. A second process at the same time waits for the first's
rows and skips them; a process killed half-way leaves whole batches or nothing, and a
re-run charges only what is missing. Days are caught up in order, each customer from
its first uncharged day (the day after its last charge, or its creation day).

**Balance.** `customers.balance_centipoints` moves in the same transaction as each
entry; `verify()` checks it equals the sum of the entries (what `flask billing verify`
runs). Entries are never updated nor deleted: a correction is a new entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from flask import current_app
from flask_babel import format_decimal
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased, selectinload

from app.extensions import db
from app.models import ChargeLine, Customer, LedgerEntry, Mailbox, MailboxPeriod, Price, ServiceClass
from app.models.billing import CHARGE_ONLY
from app.models.enums import EntryKind, MailboxStatus, Plan, WalletState
from app.services import audit, classes, clock, fields, limits
from app.services.access import Actor, customer_for, require_staff
from app.services.errors import Conflict, CreditTooLow, ValidationError

CENTIPOINTS_PER_EUR_CENT = 80
CENTIPOINTS_PER_EUR = 100 * CENTIPOINTS_PER_EUR_CENT
WARNING_DAYS = 14
MAX_EUR_CENTS = 100_000_000  # one million EUR in one payment
MAX_PRICE = 1_000_000  # 10.000 points a day


# Formatting (for the API and the pages: exact decimals, never floats).


def points(centipoints: int) -> Decimal:
    """1234.56 points for 123456 centipoints."""
    return Decimal(centipoints).scaleb(-2)


def eur(centipoints: int) -> Decimal:
    """The amount in EUR, to the cent (half up): 123456 centipoints are 15.43 EUR."""
    return (Decimal(centipoints) / CENTIPOINTS_PER_EUR).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# The price list.


def price_list(day: date) -> dict[int, int]:
    """{service_class_id: centipoints per day} in force on day (each class's latest row from on or before it)."""
    rows = db.session.execute(
        sa.select(Price.service_class_id, Price.centipoints_per_day)
        .where(Price.valid_from <= day)
        .order_by(Price.service_class_id, Price.valid_from)
    )
    return {class_id: price for class_id, price in rows}


def price_since(day: date) -> dict[int, date]:
    """{service_class_id: the date the price in force on day applies from}."""
    rows = db.session.execute(
        sa.select(Price.service_class_id, sa.func.max(Price.valid_from))
        .where(Price.valid_from <= day)
        .group_by(Price.service_class_id)
    )
    return dict(rows.all())


def price_history() -> list[Price]:
    """Every price row, per class, newest first."""
    return list(
        db.session.scalars(sa.select(Price).order_by(Price.service_class_id, Price.valid_from.desc()))
    )


def set_price(
    actor: Actor, service_class: object, centipoints: object, valid_from: date | None = None
) -> Price:
    """A class's price per day from valid_from (today by default; never in the past: charged days keep
    theirs). A price set again for the same date replaces it until that day is charged."""
    require_staff(actor)
    cls = classes.resolve(service_class)
    amount = fields.integer(centipoints, "centipoints_per_day", minimum=0, maximum=MAX_PRICE)
    start = valid_from or clock.today()
    if start < clock.today():
        raise ValidationError.one(
            "valid_from",
            _("Un prezzo vale da oggi o da una data futura: i giorni passati restano come sono."),
        )
    row = db.session.scalar(
        sa.select(Price).where(Price.service_class_id == cls.id, Price.valid_from == start)
    )
    before = price_list(start).get(cls.id)
    if row is None:
        row = Price(service_class_id=cls.id, valid_from=start, created_at=clock.now())
        db.session.add(row)
    row.centipoints_per_day = amount
    row.created_by = actor.label
    audit.record(
        actor,
        "price.set",
        target=cls.name,
        changes={"centipoints_per_day": [before, amount], "valid_from": [None, start.isoformat()]},
    )
    db.session.commit()
    return row


def _class_names() -> dict[int, str]:
    return {c.id: c.name for c in db.session.scalars(sa.select(ServiceClass))}


# The daily charge.


def _day_prices(day: date):
    """(service_class_id, price) in force on day, as a subquery: each class's row with the latest valid_from."""
    later = aliased(Price)
    latest = (
        sa.select(sa.func.max(later.valid_from))
        .where(later.service_class_id == Price.service_class_id, later.valid_from <= day)
        .scalar_subquery()
    )
    return (
        sa.select(Price.service_class_id, Price.centipoints_per_day.label("price"))
        .where(Price.valid_from == latest)
        .subquery("day_prices")
    )


def _ranked_periods(day: date, customer_ids: list[int]):
    """The periods of these customers active at some moment of day, each with its class's price that day
    and its rank within its mailbox (1: the highest price; between equals, the latest period).

    A period of no length does not count; a class without a price costs 0 (and still makes a line)."""
    start, end = clock.day_bounds(day)
    period = MailboxPeriod
    prices = _day_prices(day)
    price = sa.func.coalesce(prices.c.price, 0)
    return (
        sa.select(
            period.customer_id,
            period.mailbox_id,
            period.address,
            period.service_class_id,
            price.label("price"),
            sa.func.row_number()
            .over(
                partition_by=(period.customer_id, period.mailbox_id),
                order_by=(price.desc(), period.valid_from.desc()),
            )
            .label("rank"),
        )
        .outerjoin(prices, prices.c.service_class_id == period.service_class_id)
        .where(
            period.customer_id.in_(customer_ids),
            period.status == MailboxStatus.ACTIVE,
            period.valid_from < end,
            sa.or_(
                period.valid_to.is_(None),
                sa.and_(period.valid_to > start, period.valid_to > period.valid_from),
            ),
        )
        .subquery("ranked")
    )


def _insert_charges(day: date, customer_ids: list[int], label: str):
    """INSERT ... SELECT the day's charge entry of each of these customers (the sum of its ranked lines),
    skipping any (customer, day) already charged; RETURNING (id, customer_id, centipoints) of those written."""
    ranked = _ranked_periods(day, customer_ids)
    totals = (
        sa.select(ranked.c.customer_id, sa.func.sum(ranked.c.price).label("total"))
        .where(ranked.c.rank == 1)
        .group_by(ranked.c.customer_id)
        .subquery("totals")
    )
    customers = Customer.__table__
    rows = (
        sa.select(
            customers.c.id,
            sa.literal(EntryKind.CHARGE.value),
            sa.literal(day, sa.Date),
            -sa.func.coalesce(totals.c.total, 0),
            sa.literal(f"charge-{day.isoformat()}"),
            sa.literal(""),
            sa.literal(label),
            sa.literal(clock.now(), LedgerEntry.created_at.type),
        )
        .outerjoin(totals, totals.c.customer_id == customers.c.id)
        .where(customers.c.id.in_(customer_ids))
        .order_by(customers.c.id)  # the same order in every process: rows are locked in one order
    )
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    table = LedgerEntry.__table__
    return (
        dialect.insert(table)
        .from_select(
            ["customer_id", "kind", "day", "centipoints", "reference", "reason", "created_by", "created_at"],
            rows,
        )
        .on_conflict_do_nothing(index_elements=["customer_id", "day"], index_where=sa.text(CHARGE_ONLY))
        .returning(table.c.id, table.c.customer_id, table.c.centipoints)
    )


def _charge_batch(day: date, customer_ids: list[int], label: str) -> int:
    """Charge day to these customers in one transaction; those charged already are skipped. How many charged.

    Set-based, three statements whatever the number of mailboxes: an INSERT ... SELECT of the
    entries (skipping the days already charged), an INSERT ... SELECT of the lines of the
    entries just written, an UPDATE ... FROM of their customers' balances."""
    ids = sorted(customer_ids)
    written = db.session.execute(_insert_charges(day, ids, label)).all()
    charged = sorted((cid, entry_id) for entry_id, cid, amount in written if amount)
    if charged:
        ledger = LedgerEntry.__table__
        mailboxes = Mailbox.__table__
        customers = Customer.__table__
        entry_ids = [entry_id for _cid, entry_id in charged]
        lines = _ranked_periods(day, [cid for cid, _entry_id in charged])
        names = sa.case(_class_names(), value=lines.c.service_class_id, else_="")
        db.session.execute(
            sa.insert(ChargeLine.__table__).from_select(
                ["entry_id", "mailbox_id", "address", "service_class_id", "class_name", "centipoints"],
                sa.select(
                    ledger.c.id,
                    mailboxes.c.id,
                    lines.c.address,
                    lines.c.service_class_id,
                    names,
                    lines.c.price,
                )
                .select_from(lines)
                .join(
                    ledger,
                    sa.and_(
                        ledger.c.customer_id == lines.c.customer_id,
                        ledger.c.kind == EntryKind.CHARGE.value,
                        ledger.c.day == day,
                    ),
                )
                .outerjoin(mailboxes, mailboxes.c.id == lines.c.mailbox_id)
                .where(lines.c.rank == 1, ledger.c.id.in_(entry_ids)),
            )
        )
        db.session.execute(
            sa.update(customers)
            .where(customers.c.id == ledger.c.customer_id, ledger.c.id.in_(entry_ids))
            .values(balance_centipoints=customers.c.balance_centipoints + ledger.c.centipoints)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return len(written)


def charge_day(customer: Customer, day: date, label: str = "system") -> LedgerEntry | None:
    """Charge one day to a Pay-per-Use customer: its entry (the existing one if the day was charged).

    None for a contract customer (never charged)."""
    if customer.plan != Plan.PAYG:
        return None
    customer_id = customer.id
    _charge_batch(day, [customer_id], label)
    return db.session.scalar(
        sa.select(LedgerEntry).where(
            LedgerEntry.customer_id == customer_id,
            LedgerEntry.kind == EntryKind.CHARGE,
            LedgerEntry.day == day,
        )
    )


def first_uncharged_days(until: date) -> dict[int, date]:
    """{customer_id: first day to charge} of the Pay-per-Use customers with a day to charge up to until."""
    last = (
        sa.select(LedgerEntry.customer_id, sa.func.max(LedgerEntry.day).label("last"))
        .where(LedgerEntry.kind == EntryKind.CHARGE)
        .group_by(LedgerEntry.customer_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(Customer.id, Customer.created_at, Customer.billing_since, last.c.last)
        .outerjoin(last, last.c.customer_id == Customer.id)
        .where(Customer.plan == Plan.PAYG)
    )
    due = {}
    for customer_id, created_at, since, last_day in rows:
        first = last_day + timedelta(days=1) if last_day is not None else clock.local_day(created_at)
        if since is not None and since > first:
            first = since  # moved to Pay per Use after a contract: from that day on
        if first <= until:
            due[customer_id] = first
    return due


@dataclass
class ChargeRun:
    days: int = 0  # calendar days looked at
    charged: int = 0  # entries written (customer-days)
    skipped: int = 0  # customer-days another process had charged meanwhile


def charge_until(
    until: date | None = None,
    progress: Callable[[int, int], None] | None = None,
    label: str = "system",
) -> ChargeRun:
    """Charge every Pay-per-Use customer every day not yet charged, up to until (yesterday by default),
    day after day in order. Safe to run again, and alongside another run."""
    until = until or clock.yesterday()
    due = first_uncharged_days(until)
    db.session.rollback()  # no transaction held while the batches run
    run = ChargeRun()
    if not due:
        return run
    batch_size = current_app.config["BILLING_BATCH"]  # customers per transaction: bounded work per commit
    total = sum((until - first).days + 1 for first in due.values())
    done = 0
    day = min(due.values())
    while day <= until:
        ids = sorted(cid for cid, first in due.items() if first <= day)
        for at in range(0, len(ids), batch_size):
            batch = ids[at : at + batch_size]
            written = _charge_batch(day, batch, label)
            run.charged += written
            run.skipped += len(batch) - written
            done += len(batch)
            if progress is not None:
                progress(done, total)
        run.days += 1
        day += timedelta(days=1)
    return run


def charge_and_review(
    until: date | None = None,
    progress: Callable[[int, int], None] | None = None,
    label: str = "system",
) -> ChargeRun:
    """What every door runs (the job, `flask billing charge`): the charge up to until, then the
    review of every account's warnings, grace and hold from the new balances."""
    from app.services import credit_warnings

    run = charge_until(until, progress=progress, label=label)
    credit_warnings.review_all(charged=True)
    return run


# What a customer pays now, and for how long the balance lasts.


def daily_cost(customer: Customer) -> int:
    """Today's cost in centipoints: the mailboxes active now, at today's prices."""
    prices = price_list(clock.today())
    rows = db.session.execute(
        sa.select(Mailbox.service_class_id, sa.func.count())
        .where(Mailbox.customer_id == customer.id, Mailbox.status == MailboxStatus.ACTIVE)
        .group_by(Mailbox.service_class_id)
    )
    return sum(prices.get(class_id, 0) * count for class_id, count in rows)


def days_left(customer: Customer, cost: int | None = None) -> int | None:
    """Whole days the balance pays at today's cost (0 when it is spent); None when nothing costs."""
    cost = daily_cost(customer) if cost is None else cost
    if cost <= 0:
        return None
    return max(0, customer.balance_centipoints // cost)


# Cost before commitment.
#
# A Pay-per-Use customer may not add to its daily cost (create a mailbox, move one to a dearer
# class, re-activate one) while the balance cannot pay one more day of the result:
#     refused when  added > 0  and  balance < daily cost after the change
# (daily cost after = today's cost of the active mailboxes + added). A change that costs the same
# or less (a downgrade, a suspension, a new name or password) is never refused. Staff acting for
# the customer meet the same rule; contract customers never.


def mailbox_cost(
    service_class_id: int | None, status: str | None, prices: dict[int, int] | None = None
) -> int:
    """What a mailbox of this class and status costs a day at today's prices (0 unless active)."""
    if service_class_id is None or status != MailboxStatus.ACTIVE:
        return 0
    prices = price_list(clock.today()) if prices is None else prices
    return prices.get(service_class_id, 0)


@dataclass(frozen=True)
class CostPreview:
    """What a change would cost a Pay-per-Use customer, in centipoints, at today's prices."""

    price: int  # the chosen class's price per day
    added: int  # how the daily cost moves (negative for a downgrade)
    total: int  # the customer's daily cost after the change
    balance: int

    @property
    def affordable(self) -> bool:
        return self.added <= 0 or self.balance >= self.total


def preview_cost(
    customer: Customer,
    service_class_id: int | None,
    mailbox: Mailbox | None = None,
    status: str | None = None,
) -> CostPreview | None:
    """The cost of a new mailbox of this class (mailbox None) or of a mailbox moved to it (and to status,
    when given); None for a contract customer. Reads only: check_affordable decides, under the lock."""
    if customer.plan != Plan.PAYG:
        return None
    prices = price_list(clock.today())
    now = daily_cost(customer)
    before = mailbox_cost(mailbox.service_class_id, mailbox.status, prices) if mailbox is not None else 0
    after_status = status or (mailbox.status if mailbox is not None else MailboxStatus.ACTIVE)
    price = prices.get(service_class_id, 0) if service_class_id is not None else 0
    added = mailbox_cost(service_class_id, after_status, prices) - before if service_class_id else 0
    return CostPreview(price, added, now + added, customer.balance_centipoints)


def check_affordable(customer: Customer, added: int) -> None:
    """Refuse (CreditTooLow) a change that adds `added` centipoints a day to a Pay-per-Use customer whose
    balance cannot pay one more day of the result. Call it under limits.lock_customer, before writing."""
    if customer.plan != Plan.PAYG or added <= 0:
        return
    balance = db.session.scalar(sa.select(Customer.balance_centipoints).where(Customer.id == customer.id))
    total = daily_cost(customer) + added
    if balance >= total:
        return
    raise CreditTooLow(
        _(
            "Credito insufficiente: con questa casella il costo giornaliero sarebbe di %(points)s punti "
            "(%(eur)s EUR) e il saldo è di %(balance)s punti. Ricarica il conto per continuare.",
            points=format_decimal(points(total), format="#,##0.00"),
            eur=format_decimal(eur(total), format="#,##0.00"),
            balance=format_decimal(points(balance), format="#,##0.00"),
        ),
        customer_id=customer.id,
        balance=balance,
        daily_cost=total,
    )


@dataclass(frozen=True)
class Wallet:
    customer: Customer
    balance: int
    daily_cost: int
    days_left: int | None
    state: str  # ok | warning | grace | on_hold


def _payg(customer: Customer) -> Customer:
    if customer.plan != Plan.PAYG:
        raise Conflict(_("Il cliente ha un contratto a canone: non ha un conto a punti."))
    return customer


def out_of_credit(balance: int, cost: int) -> bool:
    """The credit is exhausted: below zero, or at zero while something costs (the grace runs)."""
    return balance < 0 or (balance == 0 and cost > 0)


def wallet(actor: Actor, customer_id: object) -> Wallet:
    """The point account of a Pay-per-Use customer (a contract customer's is a Conflict).

    state: on_hold while the customer is on hold, grace while it is out of credit (out_of_credit),
    warning when it lasts 14 days or fewer, else ok."""
    customer = _payg(customer_for(actor, customer_id))
    cost = daily_cost(customer)
    left = days_left(customer, cost)
    if customer.on_hold_since is not None:
        state = WalletState.ON_HOLD
    elif out_of_credit(customer.balance_centipoints, cost):
        state = WalletState.GRACE
    elif left is not None and left <= WARNING_DAYS:
        state = WalletState.WARNING
    else:
        state = WalletState.OK
    return Wallet(customer, customer.balance_centipoints, cost, left, state)


# Entries other than charges.


def _add_entry(
    actor: Actor, customer: Customer, kind: EntryKind, centipoints: int, reference: str, reason: str
):
    customer_id = customer.id
    entry = LedgerEntry(
        customer_id=customer_id,
        kind=kind.value,
        day=None,
        centipoints=centipoints,
        reference=reference,
        reason=reason,
        created_by=actor.label,
        created_at=clock.now(),
    )
    db.session.add(entry)
    customers = Customer.__table__
    db.session.execute(
        sa.update(customers)
        .where(customers.c.id == customer_id)
        .values(balance_centipoints=customers.c.balance_centipoints + centipoints)
    )
    audit.record(
        actor,
        f"ledger.{kind.value}",
        customer_id=customer_id,
        target=reference or reason,
        changes={"centipoints": [None, centipoints]},
    )
    db.session.commit()
    db.session.refresh(customer)
    return entry


def record_credit(
    actor: Actor, customer_id: object, eur_cents: object, reference: object, *, first: bool = False
) -> LedgerEntry:
    """A received payment (or the first credit at signature) in EUR cents, credited as points (staff)."""
    require_staff(actor)
    customer = _payg(customer_for(actor, customer_id))
    cents = fields.integer(eur_cents, "eur_cents", minimum=1, maximum=MAX_EUR_CENTS)
    ref = fields.text(reference, "reference", max_len=100)
    kind = EntryKind.FIRST_CREDIT if first else EntryKind.CREDIT
    # One payment, one credit: under the customer's lock, a reference already credited is refused.
    limits.lock_customer(customer.id)
    credited = db.session.scalar(
        sa.select(LedgerEntry.id).where(
            LedgerEntry.customer_id == customer.id,
            LedgerEntry.kind.in_((EntryKind.CREDIT, EntryKind.FIRST_CREDIT)),
            LedgerEntry.reference == ref,
        )
    )
    if credited is not None:
        db.session.rollback()
        raise Conflict(_("Il pagamento %(ref)s è già stato accreditato.", ref=ref), field="reference")
    entry = _add_entry(actor, customer, kind, cents * CENTIPOINTS_PER_EUR_CENT, ref, "")
    _after_entry(customer)
    return entry


def record_adjustment(actor: Actor, customer_id: object, centipoints: object, reason: object) -> LedgerEntry:
    """A staff correction in centipoints (either sign), with its mandatory reason."""
    require_staff(actor)
    customer = _payg(customer_for(actor, customer_id))
    limit = MAX_EUR_CENTS * CENTIPOINTS_PER_EUR_CENT
    amount = fields.integer(centipoints, "centipoints", minimum=-limit, maximum=limit)
    if amount == 0:
        raise ValidationError.one("centipoints", _("Una rettifica di zero punti non cambia nulla."))
    why = fields.text(reason, "reason", max_len=500)
    entry = _add_entry(actor, customer, EntryKind.ADJUSTMENT, amount, "", why)
    _after_entry(customer)
    return entry


def _after_entry(customer: Customer) -> None:
    """Warnings, grace and a billing hold follow the new balance (a recharge lifts the hold at once)."""
    from app.services import credit_warnings

    credit_warnings.review(customer.id)
    db.session.refresh(customer)


def ledger(
    actor: Actor, customer_id: object, start: date | None = None, end: date | None = None
) -> list[LedgerEntry]:
    """A Pay-per-Use customer's entries from start to end (provider days, both included), in the order written:
    a charge by the day it charges, any other entry by the day it was made."""
    customer = _payg(customer_for(actor, customer_id))
    query = sa.select(LedgerEntry).where(LedgerEntry.customer_id == customer.id)
    if start is not None:
        query = query.where(
            sa.or_(
                LedgerEntry.day >= start,
                sa.and_(LedgerEntry.day.is_(None), LedgerEntry.created_at >= clock.day_bounds(start)[0]),
            )
        )
    if end is not None:
        query = query.where(
            sa.or_(
                LedgerEntry.day <= end,
                sa.and_(LedgerEntry.day.is_(None), LedgerEntry.created_at < clock.day_bounds(end)[1]),
            )
        )
    query = query.options(selectinload(LedgerEntry.lines)).order_by(LedgerEntry.id)
    return list(db.session.scalars(query))


# The checks of `flask billing verify`.


def verify() -> list[str]:
    """Every problem of the ledger, worded for an operator; empty when all is well."""
    problems: list[str] = []
    sums = (
        sa.select(LedgerEntry.customer_id, sa.func.sum(LedgerEntry.centipoints).label("total"))
        .group_by(LedgerEntry.customer_id)
        .subquery()
    )
    total = sa.func.coalesce(sums.c.total, 0)
    for cid, balance, expected in db.session.execute(
        sa.select(Customer.id, Customer.balance_centipoints, total)
        .outerjoin(sums, sums.c.customer_id == Customer.id)
        .where(Customer.balance_centipoints != total)
        .order_by(Customer.id)
    ):
        problems.append(
            _(
                "Cliente %(id)s: saldo %(balance)s, ma la somma dei movimenti è %(total)s.",
                id=cid,
                balance=balance,
                total=expected,
            )
        )
    for cid, day, count in db.session.execute(
        sa.select(LedgerEntry.customer_id, LedgerEntry.day, sa.func.count())
        .where(LedgerEntry.kind == EntryKind.CHARGE)
        .group_by(LedgerEntry.customer_id, LedgerEntry.day)
        .having(sa.func.count() > 1)
    ):
        problems.append(
            _("Cliente %(id)s: il giorno %(day)s è addebitato %(count)s volte.", id=cid, day=day, count=count)
        )
    lines = (
        sa.select(ChargeLine.entry_id, sa.func.sum(ChargeLine.centipoints).label("total"))
        .group_by(ChargeLine.entry_id)
        .subquery()
    )
    for entry_id, cid, amount, expected in db.session.execute(
        sa.select(
            LedgerEntry.id,
            LedgerEntry.customer_id,
            LedgerEntry.centipoints,
            -sa.func.coalesce(lines.c.total, 0),
        )
        .outerjoin(lines, lines.c.entry_id == LedgerEntry.id)
        .where(
            LedgerEntry.kind == EntryKind.CHARGE,
            LedgerEntry.centipoints != -sa.func.coalesce(lines.c.total, 0),
        )
    ):
        problems.append(
            _(
                "Cliente %(id)s: l'addebito %(entry)s vale %(amount)s, ma le sue righe sommano %(total)s.",
                id=cid,
                entry=entry_id,
                amount=amount,
                total=expected,
            )
        )
    db.session.rollback()
    return problems


# Consumption analysis: the series of the wallet pages and exports, and the staff overview.
# Each is a fixed number of set-based queries, whatever the number of days or customers.

MAX_RANGE_DAYS = 366


def _entry_rows(customer_id: int, start: date, end: date):
    """(day, kind, centipoints) of the entries of start..end: a charge by its day, any other by the
    provider day it was made (the others are few: fetched as rows, bucketed by their local day)."""
    first, _ = clock.day_bounds(start)
    _, last = clock.day_bounds(end)
    charges = db.session.execute(
        sa.select(LedgerEntry.day, sa.func.sum(LedgerEntry.centipoints))
        .where(
            LedgerEntry.customer_id == customer_id,
            LedgerEntry.kind == EntryKind.CHARGE,
            LedgerEntry.day >= start,
            LedgerEntry.day <= end,
        )
        .group_by(LedgerEntry.day)
    ).all()
    others = db.session.execute(
        sa.select(LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.centipoints).where(
            LedgerEntry.customer_id == customer_id,
            LedgerEntry.kind != EntryKind.CHARGE,
            LedgerEntry.created_at >= first,
            LedgerEntry.created_at < last,
        )
    ).all()
    rows = [(day, EntryKind.CHARGE.value, amount) for day, amount in charges]
    rows += [(clock.local_day(at), kind, amount) for at, kind, amount in others]
    return rows


def _opening_balance(customer_id: int, start: date) -> int:
    """The balance at the start of day start: the sum of the entries before it."""
    first, _ = clock.day_bounds(start)
    return int(
        db.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.centipoints), 0)).where(
                LedgerEntry.customer_id == customer_id,
                sa.or_(
                    sa.and_(LedgerEntry.kind == EntryKind.CHARGE, LedgerEntry.day < start),
                    sa.and_(LedgerEntry.kind != EntryKind.CHARGE, LedgerEntry.created_at < first),
                ),
            )
        )
    )


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def balance_series(customer: Customer, start: date, end: date) -> list[tuple[date, int]]:
    """[(day, balance at the end of day)] for every day of start..end (the charge of a day counts on that day)."""
    moves: dict[date, int] = {}
    for day, _kind, amount in _entry_rows(customer.id, start, end):
        moves[day] = moves.get(day, 0) + amount
    balance = _opening_balance(customer.id, start)
    series = []
    for day in _days(start, end):
        balance += moves.get(day, 0)
        series.append((day, balance))
    return series


@dataclass(frozen=True)
class ChargedDay:
    day: date
    cost: int  # centipoints taken that day (positive); 0 for a day charged with nothing, or not charged
    mailboxes: int
    charged: bool


def charges_by_day(customer: Customer, start: date, end: date) -> list[ChargedDay]:
    """Every day of start..end with what its charge took and how many mailboxes it charged (one query)."""
    lines = (
        sa.select(ChargeLine.entry_id, sa.func.count().label("n"))
        .join(LedgerEntry, LedgerEntry.id == ChargeLine.entry_id)
        .where(
            LedgerEntry.customer_id == customer.id,
            LedgerEntry.kind == EntryKind.CHARGE,
            LedgerEntry.day >= start,
            LedgerEntry.day <= end,
        )
        .group_by(ChargeLine.entry_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(LedgerEntry.day, LedgerEntry.centipoints, sa.func.coalesce(lines.c.n, 0))
        .outerjoin(lines, lines.c.entry_id == LedgerEntry.id)
        .where(
            LedgerEntry.customer_id == customer.id,
            LedgerEntry.kind == EntryKind.CHARGE,
            LedgerEntry.day >= start,
            LedgerEntry.day <= end,
        )
    ).all()
    found = {day: (-amount, n) for day, amount, n in rows}
    return [
        ChargedDay(day, *found[day], True) if day in found else ChargedDay(day, 0, 0, False)
        for day in _days(start, end)
    ]


def day_lines(customer: Customer, day: date) -> list[ChargeLine]:
    """The lines of a day's charge (mailbox, class as they were, price), by address; [] if not charged."""
    return list(
        db.session.scalars(
            sa.select(ChargeLine)
            .join(LedgerEntry, LedgerEntry.id == ChargeLine.entry_id)
            .where(
                LedgerEntry.customer_id == customer.id,
                LedgerEntry.kind == EntryKind.CHARGE,
                LedgerEntry.day == day,
            )
            .order_by(ChargeLine.address, ChargeLine.id)
        )
    )


def charge_lines(customer: Customer, start: date, end: date) -> list[tuple[date, ChargeLine]]:
    """[(day, line)] of the charges of start..end, by day and address (for the exports)."""
    rows = db.session.execute(
        sa.select(LedgerEntry.day, ChargeLine)
        .join(LedgerEntry, LedgerEntry.id == ChargeLine.entry_id)
        .where(
            LedgerEntry.customer_id == customer.id,
            LedgerEntry.kind == EntryKind.CHARGE,
            LedgerEntry.day >= start,
            LedgerEntry.day <= end,
        )
        .order_by(LedgerEntry.day, ChargeLine.address, ChargeLine.id)
    )
    return [(day, line) for day, line in rows]


@dataclass(frozen=True)
class MonthTotal:
    month: date  # its first day
    charged: int  # centipoints taken by the daily charges (positive)
    credited: int  # credits and first credits
    adjusted: int  # adjustments, either sign
    days: int  # days charged


def monthly_totals(customer: Customer, start: date, end: date) -> list[MonthTotal]:
    """Per calendar month of start..end, newest first: what the charges took, the credits, the adjustments."""
    months: dict[date, list[int]] = {}
    for day, kind, amount in _entry_rows(customer.id, start, end):
        total = months.setdefault(day.replace(day=1), [0, 0, 0, 0])
        if kind == EntryKind.CHARGE:
            total[0] -= amount
            total[3] += 1
        elif kind == EntryKind.ADJUSTMENT:
            total[2] += amount
        else:
            total[1] += amount
    return [MonthTotal(month, *months[month]) for month in sorted(months, reverse=True)]


@dataclass(frozen=True)
class WalletRow:
    customer_id: int
    name: str
    balance: int
    daily_cost: int
    days_left: int | None
    state: str


OVERVIEW_SORTS = ("name", "balance", "days_left")
OVERVIEW_STATES = WalletState.values()


def wallets_overview(
    actor: Actor, *, sort: str = "name", state: str = "", page: object = 1, per_page: int = 50
) -> tuple[list[WalletRow], int, int]:
    """Every Pay-per-Use customer's balance, daily cost, days left and state (staff): (rows, total, page).

    Two queries whatever the number of customers: the count and the page, each computing every
    customer's daily cost in one GROUP BY over the active mailboxes at today's prices."""
    require_staff(actor)
    prices = _day_prices(clock.today())
    costs = (
        sa.select(
            Mailbox.customer_id,
            sa.cast(sa.func.sum(sa.func.coalesce(prices.c.price, 0)), sa.BigInteger).label("cost"),
        )
        .outerjoin(prices, prices.c.service_class_id == Mailbox.service_class_id)
        .where(Mailbox.status == MailboxStatus.ACTIVE)
        .group_by(Mailbox.customer_id)
        .subquery("costs")
    )
    cost = sa.func.coalesce(costs.c.cost, sa.literal(0, sa.BigInteger))
    balance = Customer.balance_centipoints
    left = sa.case((cost <= 0, None), (balance < 0, 0), else_=balance // cost)
    state_expr = sa.case(
        (Customer.on_hold_since.is_not(None), WalletState.ON_HOLD.value),
        (sa.or_(balance < 0, sa.and_(balance == 0, cost > 0)), WalletState.GRACE.value),  # out_of_credit
        (sa.and_(cost > 0, balance // cost <= WARNING_DAYS), WalletState.WARNING.value),
        else_=WalletState.OK.value,
    )
    query = (
        sa.select(Customer.id, Customer.name, balance, cost, left, state_expr)
        .outerjoin(costs, costs.c.customer_id == Customer.id)
        .where(Customer.plan == Plan.PAYG)
    )
    if state in OVERVIEW_STATES:
        query = query.where(state_expr == state)
    order = {
        "balance": (balance, Customer.name),
        "days_left": (left.is_(None), left, Customer.name),
    }.get(sort, (Customer.name,))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    try:
        number = max(1, int(page))
    except (TypeError, ValueError, OverflowError):
        number = 1
    number = min(number, max(1, -(-total // per_page)))
    rows = db.session.execute(
        query.order_by(*order, Customer.id).limit(per_page).offset((number - 1) * per_page)
    ).all()
    items = [
        WalletRow(cid, name, int(bal), int(c), None if d is None else int(d), s)
        for cid, name, bal, c, d, s in rows
    ]
    return items, total, number
