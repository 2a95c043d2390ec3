"""Time and memory of the Pay-per-Use daily charge on PostgreSQL, against a hand-written set-based floor.

For each size (mailboxes; a customer per 20 mailboxes: 10,000 -> 500 customers,
100,000 -> 5,000), a fresh database gets Pay-per-Use customers since 1 January
2026 with their mailbox periods (one in ten changes class during 1 January, one in
twenty is suspended all along). Then, in the same run:

  charge one day   billing.charge_until(1 January): entries, lines, balances
  catch up N days  billing.charge_until(1 January + N) (BENCH_DAYS, default 30)
  floor, 1 day     one INSERT ... SELECT that makes the same charge lines (no entries,
                   no balances: the least the database can do), into a scratch table
  floor, N days    that statement once per day
  shaped floor     the same statement into a copy of charge_lines with its indexes and
                   foreign keys, taking the entries' ids (the lines alone, in the ledger's shape)

with the peak of Python memory (tracemalloc) of charging one more day and catching up
N more (measured after the timings: tracemalloc slows the code it watches). Goal: within 3x of the
floor, memory flat as the size grows (the charge works BILLING_BATCH customers at a time).

    python bench/billing.py
    BENCH_SIZES=10000 BENCH_DAYS=5 python bench/billing.py
"""

from __future__ import annotations

import os
import resource
import sys
import time
import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg  # noqa: F401  (the bench needs PostgreSQL)
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import ChargeLine, Customer, MailboxPeriod, ServiceClass  # noqa: E402
from app.services import billing, clock  # noqa: E402
from bench._postgres import drop_database, fresh_database  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "10000,100000").split(","))
DAYS = int(os.environ.get("BENCH_DAYS", "30"))
PER_CUSTOMER = 20
DB_BASE = "panel_bench_billing"
FIRST = date(2026, 1, 1)
ROME = ZoneInfo("Europe/Rome")
GOAL_RATIO = 3.0

FLOOR = sa.text(
    """
    INSERT INTO floor_lines (customer_id, day, mailbox_id, address, service_class_id, centipoints)
    SELECT DISTINCT ON (p.customer_id, p.mailbox_id)
           p.customer_id, :day, m.id, p.address, p.service_class_id, pr.price
      FROM mailbox_periods p
      JOIN customers c ON c.id = p.customer_id AND c.plan = 'payg'
      JOIN LATERAL (SELECT centipoints_per_day AS price FROM prices
                     WHERE service_class_id = p.service_class_id AND valid_from <= :day
                     ORDER BY valid_from DESC LIMIT 1) pr ON true
      LEFT JOIN mailboxes m ON m.id = p.mailbox_id
     WHERE p.status = 'active' AND p.valid_from < :end
       AND (p.valid_to IS NULL OR (p.valid_to > :start AND p.valid_to > p.valid_from))
     ORDER BY p.customer_id, p.mailbox_id, pr.price DESC
    """
)


# The same statement into a copy of charge_lines (its indexes and foreign keys), with the entries' ids:
# what the database must do for the lines alone, in the ledger's own shape.
FLOOR_SHAPED = sa.text(
    """
    INSERT INTO floor_shaped (entry_id, mailbox_id, address, service_class_id, class_name, centipoints)
    SELECT DISTINCT ON (p.customer_id, p.mailbox_id)
           e.id, m.id, p.address, p.service_class_id, sc.type || ' ' || sc.quota_mb, pr.price
      FROM mailbox_periods p
      JOIN customers c ON c.id = p.customer_id AND c.plan = 'payg'
      JOIN ledger_entries e ON e.customer_id = p.customer_id AND e.kind = 'charge' AND e.day = :day
      JOIN service_classes sc ON sc.id = p.service_class_id
      JOIN LATERAL (SELECT centipoints_per_day AS price FROM prices
                     WHERE service_class_id = p.service_class_id AND valid_from <= :day
                     ORDER BY valid_from DESC LIMIT 1) pr ON true
      LEFT JOIN mailboxes m ON m.id = p.mailbox_id
     WHERE p.status = 'active' AND p.valid_from < :end
       AND (p.valid_to IS NULL OR (p.valid_to > :start AND p.valid_to > p.valid_from))
     ORDER BY p.customer_id, p.mailbox_id, pr.price DESC
    """
)
SHAPED_TABLE = (
    "CREATE TABLE floor_shaped (LIKE charge_lines INCLUDING ALL)",
    "ALTER TABLE floor_shaped ADD FOREIGN KEY (entry_id) REFERENCES ledger_entries (id) ON DELETE CASCADE",
    "ALTER TABLE floor_shaped ADD FOREIGN KEY (mailbox_id) REFERENCES mailboxes (id) ON DELETE SET NULL",
    "ALTER TABLE floor_shaped ADD FOREIGN KEY (service_class_id) REFERENCES service_classes (id)",
)


def load(mailboxes: int) -> None:
    """Customers and their mailbox periods, bulk-inserted (the charge reads only the periods)."""

    opened = datetime(2026, 1, 1, 0, 0, tzinfo=ROME)  # the first day charged is 1 January
    start = opened - timedelta(days=1)
    change = datetime(2026, 1, 1, 10, 0, tzinfo=ROME)
    class_ids = [c.id for c in db.session.scalars(sa.select(ServiceClass).order_by(ServiceClass.id))]
    ids = list(
        db.session.scalars(
            sa.insert(Customer).returning(Customer.id),
            [
                {"name": f"Cliente {i}", "plan": "payg", "created_at": opened}
                for i in range(mailboxes // PER_CUSTOMER)
            ],
        )
    )
    rows = []
    for n in range(mailboxes):
        cid = ids[n % len(ids)]
        base = {"mailbox_id": 10_000_000 + n, "customer_id": cid, "address": f"u{n}@c{cid}.example"}
        cls = class_ids[n % len(class_ids)]
        if n % 20 == 7:
            rows.append(
                {
                    **base,
                    "service_class_id": cls,
                    "status": "suspended",
                    "valid_from": start,
                    "valid_to": None,
                }
            )
        elif n % 10 == 3:  # an upgrade on the first morning
            rows.append(
                {**base, "service_class_id": cls, "status": "active", "valid_from": start, "valid_to": change}
            )
            rows.append(
                {
                    **base,
                    "service_class_id": class_ids[-1],
                    "status": "active",
                    "valid_from": change,
                    "valid_to": None,
                }
            )
        else:
            rows.append(
                {**base, "service_class_id": cls, "status": "active", "valid_from": start, "valid_to": None}
            )
    for at in range(0, len(rows), 20_000):
        db.session.execute(sa.insert(MailboxPeriod), rows[at : at + 20_000])
    db.session.commit()
    # The tables just loaded (the ledger is left as a new installation has it: never analysed).
    db.session.execute(sa.text("ANALYZE customers, mailbox_periods, prices"))
    db.session.commit()


def timed(func):
    began = time.perf_counter()
    result = func()
    return result, time.perf_counter() - began


def peak_memory(func) -> int:
    """Peak Python allocation while func runs (tracemalloc slows it down: measured apart from the times)."""
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def floor(days: list[date], statement=FLOOR, table: str = "floor_lines") -> tuple[float, int]:
    db.session.execute(sa.text(f"TRUNCATE {table}"))
    db.session.commit()
    began = time.perf_counter()
    for day in days:
        begin, end = clock.day_bounds(day)
        db.session.execute(statement, {"day": day, "start": begin, "end": end})
        db.session.commit()
    seconds = time.perf_counter() - began
    return seconds, db.session.scalar(sa.text(f"SELECT count(*) FROM {table}"))


def run(mailboxes: int) -> dict:
    url = fresh_database(DB_BASE)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "ENV_NAME": "testing", "SECRET_KEY": "bench"})
    try:
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            load(mailboxes)
            db.session.execute(
                sa.text(
                    "CREATE TABLE floor_lines (customer_id int, day date, mailbox_id int, address text,"
                    " service_class_id int, centipoints bigint)"
                )
            )
            for statement in SHAPED_TABLE:
                db.session.execute(sa.text(statement))
            db.session.commit()
            clock.set_now(datetime(2026, 3, 1, tzinfo=ROME))
            one, one_s = timed(lambda: billing.charge_until(FIRST))
            lines_one = db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine))
            last = FIRST + timedelta(days=DAYS)
            more, more_s = timed(lambda: billing.charge_until(last))
            lines_all = db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine))
            one_peak = peak_memory(lambda: billing.charge_until(last + timedelta(days=1)))
            more_peak = peak_memory(lambda: billing.charge_until(last + timedelta(days=1 + DAYS)))
            floor_one_s, floor_one = floor([FIRST])
            floor_more_s, floor_more = floor([FIRST + timedelta(days=d) for d in range(1, DAYS + 1)])
            shaped_one_s, _n = floor([FIRST], FLOOR_SHAPED, "floor_shaped")
            shaped_more_s, _n = floor(
                [FIRST + timedelta(days=d) for d in range(1, DAYS + 1)], FLOOR_SHAPED, "floor_shaped"
            )
            problems = billing.verify()
            db.session.remove()
            db.engine.dispose()
    finally:
        drop_database(DB_BASE)
    assert (lines_one, lines_all - lines_one) == (floor_one, floor_more), (
        "the floor made other lines",
        lines_one,
        lines_all,
        floor_one,
        floor_more,
    )
    assert not problems, problems
    return {
        "customers": mailboxes // PER_CUSTOMER,
        "charged": (one.charged, more.charged),
        "lines": (lines_one, lines_all - lines_one),
        "seconds": (one_s, more_s),
        "floor": (floor_one_s, floor_more_s),
        "shaped": (shaped_one_s, shaped_more_s),
        "peak_mb": (one_peak / 2**20, more_peak / 2**20),
    }


def main() -> None:
    print(
        f"Pay-per-Use daily charge on PostgreSQL; catch-up of {DAYS} days; goal within {GOAL_RATIO}x of the floor"
    )
    header = f"{'mailboxes':>9} {'customers':>9} | {'what':<16} {'entries':>8} {'lines':>9} {'charge s':>9} {'floor s':>8} {'ratio':>6} {'shaped s':>8} {'ratio':>6} {'peak MB':>8}"
    print(header)
    print("-" * len(header))
    for size in SIZES:
        r = run(size)
        for i, what in enumerate(("one day", f"catch up {DAYS} days")):
            ratio = r["seconds"][i] / r["floor"][i] if r["floor"][i] else float("inf")
            shaped = r["seconds"][i] / r["shaped"][i] if r["shaped"][i] else float("inf")
            print(
                f"{size:>9,} {r['customers']:>9,} | {what:<16} {r['charged'][i]:>8,} {r['lines'][i]:>9,}"
                f" {r['seconds'][i]:>9.2f} {r['floor'][i]:>8.2f} {ratio:>5.1f}x"
                f" {r['shaped'][i]:>8.2f} {shaped:>5.1f}x {r['peak_mb'][i]:>8.1f}"
            )
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
