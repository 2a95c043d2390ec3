"""Server time of the portal's mailbox list and dashboard as a customer grows, on SQLite and PostgreSQL.

For each size (1,000, 10,000 and 100,000 mailboxes; aliases a fifth of that,
lists a twentieth with a few members each, a usage reading per mailbox) a
fresh database is bulk-loaded (executemany on SQLite, COPY on PostgreSQL);
then each page is requested BENCH_REQUESTS times through the Flask test
client, signed in as the customer's admin, the sizes in turn request by
request (so they share the machine's load alike). The table shows median / p95 in
ms per size and the ratio of the medians 100k / 1k. Goal: the list's first
page and the searches under 25 ms median at 10k, and at 100k within 1.3x of 1k.
Display names are "First Surname" (50 surnames), their words in mailbox_words.

    python bench/list_pages.py                      # both backends (PostgreSQL if reachable)
    BENCH_REQUESTS=50 BENCH_SIZES=1000,10000 python bench/list_pages.py
    BENCH_PROFILE=1 python bench/list_pages.py      # plus cProfile and the SQL (with timings) of each page
"""

from __future__ import annotations

import cProfile
import html
import io
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Alias, DistributionList, ListMember, Mailbox, MailboxPeriod, MailboxWord  # noqa: E402
from app.models.quota import MailboxUsage  # noqa: E402
from app.services import classes, customers, domains, passwords, users  # noqa: E402
from app.services.access import Actor  # noqa: E402
from app.services.search_words import words_for  # noqa: E402
from bench._postgres import drop_database, fresh_database  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "1000,10000,100000").split(","))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200"))
PROFILE = bool(os.environ.get("BENCH_PROFILE"))
MEMBERS_PER_LIST = 4
GOAL_MS, GOAL_RATIO = 25, 1.3
DB_BASE = "panel_bench"
DOMAIN = "grande-cliente.example"
ADMIN = ("admin@grande-cliente.example", "Bench-password-1")
# Display names "First Surname": each surname on one mailbox in 50, so ?q=rossi finds 20, 200 and 2,000.
FIRST_NAMES = ("Mario", "Anna", "Luca", "Giulia", "Marco", "Sara", "Paolo", "Chiara", "Nicolò", "Elena")
SURNAMES = (
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
    "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
    "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone",
    "Longo", "Gentile", "Martinelli", "Vitale", "Lombardo", "Serra", "Coppola", "De Santis", "D'Angelo", "Marchetti",
    "Parisi", "Villa", "Conte", "Ferraro", "Ferri", "Fabbri", "Bianco", "Marini", "Grasso", "Valentini",
)  # fmt: skip
CLASSES = ("Business Mail 1.000 MB", "Business Mail Plus 2.000 MB", "Professional Suite 5.000 MB")
SYSTEM = Actor.system("bench")
HX = {"HX-Request": "true"}
PAGES = (
    "list, first page",
    "list, next page",
    "list, next page (htmx)",
    "search ?q=utente1",
    "search (htmx)",
    "search, next page (htmx)",
    "search a surname ?q=rossi",
    "filter ?status=suspended (htmx)",
    "dashboard",
)


def make_bench_app(url: str):
    from flask_migrate import upgrade

    app = create_app(
        {
            "ENV_NAME": "testing",
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": url,
            "RATELIMIT_ENABLED": False,
            "WTF_CSRF_ENABLED": False,  # only the setup login posts
            "SESSION_COOKIE_SECURE": False,
        }
    )
    with app.app_context():
        upgrade()
    return app


def bulk(table: sa.Table, rows: list[dict]) -> None:
    """Insert many rows at once: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if db.engine.dialect.name != "postgresql":
        db.session.execute(sa.insert(table), rows)
        return
    columns = list(rows[0])
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


def load(size: int) -> int:
    """Bulk-load a customer with `size` mailboxes; returns its id."""
    n_aliases, n_lists = size // 5, size // 20
    now = datetime.now(UTC)
    customer = customers.create_customer(SYSTEM, name="Grande Cliente S.p.A.", plan="contract")
    customers.set_contract(
        SYSTEM, customer.id, [{"service_class": name, "max_accounts": size} for name in CLASSES], True
    )
    domain = domains.add_domain(SYSTEM, customer.id, DOMAIN)
    users.create_user(
        SYSTEM, email=ADMIN[0], password=ADMIN[1], role="customer_admin", customer_id=customer.id
    )
    class_ids = [classes.resolve(name).id for name in CLASSES]
    # One hash for every mailbox: hashing 100,000 passwords would measure argon2, not the pages.
    password_hash = passwords.hash_mailbox_password("Bench-mailbox-1")
    statuses = ["active"] * 18 + ["suspended", "disabled"]
    bulk(
        Mailbox.__table__,
        [
            {
                "customer_id": customer.id,
                "domain_id": domain.id,
                "local_part": f"utente{i}",
                "address": f"utente{i}@{DOMAIN}",
                "display_name": f"{FIRST_NAMES[i // len(SURNAMES) % len(FIRST_NAMES)]} {SURNAMES[i % len(SURNAMES)]}",
                "password_hash": password_hash,
                "service_class_id": class_ids[i % len(class_ids)],
                "status": statuses[i % len(statuses)],
                "created_at": now,
                "updated_at": now,
            }
            for i in range(size)
        ],
    )
    ids = db.session.execute(
        sa.select(Mailbox.id, Mailbox.address, Mailbox.service_class_id, Mailbox.status, Mailbox.display_name)
        .where(Mailbox.customer_id == customer.id)
        .order_by(Mailbox.id)
    ).all()
    bulk(
        MailboxPeriod.__table__,
        [
            {
                "mailbox_id": m.id,
                "customer_id": customer.id,
                "address": m.address,
                "service_class_id": m.service_class_id,
                "status": m.status,
                "valid_from": now,
                "valid_to": None,
            }
            for m in ids
        ],
    )
    bulk(
        MailboxWord.__table__,
        [
            {"mailbox_id": m.id, "customer_id": customer.id, "word": word}
            for m in ids
            for word in words_for(m.address.partition("@")[0], m.display_name)
        ],
    )
    bulk(
        MailboxUsage.__table__,
        [
            {
                "mailbox_id": m.id,
                "used_bytes": (n * 7919 % 900) * 1024 * 1024,
                "messages": n % 5000,
                "read_at": now,
            }
            for n, m in enumerate(ids)
        ],
    )
    bulk(
        Alias.__table__,
        [
            {
                "customer_id": customer.id,
                "domain_id": domain.id,
                "local_part": f"alias{i}",
                "address": f"alias{i}@{DOMAIN}",
                "target_id": ids[i * 5 % len(ids)].id,
                "created_at": now,
            }
            for i in range(n_aliases)
        ],
    )
    bulk(
        DistributionList.__table__,
        [
            {
                "customer_id": customer.id,
                "domain_id": domain.id,
                "local_part": f"lista{i}",
                "address": f"lista{i}@{DOMAIN}",
                "description": f"Lista {i}",
                "post_policy": "customer",
                "created_at": now,
            }
            for i in range(n_lists)
        ],
    )
    list_ids = db.session.scalars(
        sa.select(DistributionList.id).where(DistributionList.customer_id == customer.id)
    ).all()
    members = []
    for n, list_id in enumerate(list_ids):
        for k in range(MEMBERS_PER_LIST - 1):
            mailbox_id = ids[(n * 7 + k) % len(ids)].id
            members.append({"list_id": list_id, "mailbox_id": mailbox_id, "external_address": None})
        members.append(
            {"list_id": list_id, "mailbox_id": None, "external_address": f"esterno{n}@example.com"}
        )
    bulk(ListMember.__table__, members)
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load: statistics and the visibility map.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
    return customer.id


def next_link(page: str) -> str | None:
    """The href of the page's rel="next" link, if any."""
    for tag in re.findall(r"<a\b[^>]*>", page):
        if 'rel="next"' in tag:
            found = re.search(r'href="([^"]+)"', tag)
            return html.unescape(found.group(1)) if found else None
    return None


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def profile(app, client, name: str, url: str, headers: dict) -> None:
    """Where one page's time goes: the SQL statements with their times, then cProfile's top functions."""
    timings: list[tuple[float, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        spent = (time.perf_counter() - conn.info.pop("bench_started")) * 1000
        timings.append((spent, " ".join(statement.split())[:150]))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        client.get(url, headers=headers)
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)
    print(f"    -- {name}: {len(timings)} statements, {sum(t for t, _ in timings):.1f} ms in the database")
    for spent, statement in timings:
        print(f"       {spent:6.2f} ms  {statement}")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20):
        client.get(url, headers=headers)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(
        r"(app|templates|jinja2/runtime|flask_babel|sqlalchemy/orm/session)", 18
    )
    calls = {name: n for (_, _, name), (_, n, *_rest) in stats.stats.items()}
    print(f"       gettext calls per request: {calls.get('gettext', 0) // 20}")
    print("\n".join("       " + line for line in out.getvalue().splitlines()[-24:]))


def prepare(label: str, url: str, size: int):
    """A loaded database and a signed-in client: (app, client, {page: (url, headers)}), or a reason."""
    tag = f"[{label} {size // 1000}k]".ljust(18)
    app = make_bench_app(url)
    with app.app_context():
        started = time.perf_counter()
        customer_id = load(size)
        print(f"{tag} loaded {size} mailboxes in {time.perf_counter() - started:.1f} s", flush=True)
    client = app.test_client()
    response = client.post("/login", data={"email": ADMIN[0], "password": ADMIN[1]})
    if response.status_code != 302:
        return app, client, f"login HTTP {response.status_code}"
    base = f"/customers/{customer_id}/mailboxes"
    first = client.get(base).get_data(as_text=True)
    searched = client.get(base + "?q=utente1", headers=HX).get_data(as_text=True)
    urls = {
        "list, first page": (base, {}),
        "list, next page": (next_link(first), {}),
        "list, next page (htmx)": (next_link(first), HX),
        "search ?q=utente1": (base + "?q=utente1", {}),
        "search (htmx)": (base + "?q=utente1", HX),
        "search, next page (htmx)": (next_link(searched), HX),
        "search a surname ?q=rossi": (base + "?q=rossi", {}),
        "filter ?status=suspended (htmx)": (base + "?status=suspended", HX),
        "dashboard": (f"/customers/{customer_id}/", {}),
    }
    return app, client, urls


def run_backend(label: str, urls_by_size: dict[int, str]) -> dict[int, dict]:
    """Every page at every size, the sizes taken in turn request by request.

    Interleaved, the sizes share whatever else the machine is doing at each moment, so their
    ratio holds even when the load moves during the run.
    """
    setups = {size: prepare(label, url, size) for size, url in urls_by_size.items()}
    results: dict[int, dict] = {size: {} for size in setups}
    for page in PAGES:
        live = {}
        for size, (_app, client, urls) in setups.items():
            target = urls if isinstance(urls, str) else urls[page]
            if isinstance(target, str):
                results[size][page] = target
            elif target[0] is None:
                results[size][page] = "no next link"
            else:
                status = client.get(target[0], headers=target[1]).status_code  # warm-up
                if status == 200:
                    live[size] = (client, target)
                else:
                    results[size][page] = f"HTTP {status}"
        times: dict[int, list[float]] = {size: [] for size in live}
        for _ in range(REQUESTS):
            for size, (client, (url, headers)) in live.items():
                started = time.perf_counter()
                client.get(url, headers=headers)
                times[size].append((time.perf_counter() - started) * 1000)
        for size, values in times.items():
            results[size][page] = (statistics.median(values), p95(values))
        if PROFILE:
            for size, (client, (url, headers)) in live.items():
                tag = f"[{label} {size // 1000}k]".ljust(18)
                profile(setups[size][0], client, f"{tag} {page} {url}", url, headers)
    print(f"[{label}] measured; load average {os.getloadavg()[0]:.2f}", flush=True)
    for app, _client, _urls in setups.values():
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return results


def table(label: str, by_size: dict[int, dict]) -> list[str]:
    sizes = sorted(by_size)
    head = f"{label} (median / p95 ms)".ljust(34) + "".join(f"{size // 1000:>10}k    " for size in sizes)
    if len(sizes) > 1:
        head += f"  {sizes[-1] // 1000}k/{sizes[0] // 1000}k"
    lines = [head]
    for page in PAGES:
        cells, medians = [], []
        for size in sizes:
            value = by_size[size][page]
            if isinstance(value, str):
                cells.append(f"{value:>15}")
            else:
                cells.append(f"{value[0]:7.1f} /{value[1]:6.1f}")
                medians.append(value[0])
        line = f"  {page:<32}" + "".join(f"{c:<15}" for c in cells)
        if len(medians) == len(sizes) > 1:
            line += f"  {medians[-1] / medians[0]:5.2f}x"
        lines.append(line)
    return lines


def main() -> int:
    print(
        f"Goal: list first page < {GOAL_MS} ms median at 10k, 100k within {GOAL_RATIO}x of 1k. "
        f"{REQUESTS} requests per page. Load average at start: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = run_backend(
            "sqlite", {size: f"sqlite:///{Path(tmp) / f'bench{size}.sqlite3'}" for size in SIZES}
        )
    report += table("SQLite", sqlite)
    try:
        postgres = run_backend("postgresql", {size: fresh_database(f"{DB_BASE}_{size}") for size in SIZES})
    except psycopg.Error as e:
        report.append(f"PostgreSQL not measured, unreachable: {str(e).strip().splitlines()[0]}")
    else:
        report += table("PostgreSQL", postgres)
    finally:
        for size in SIZES:
            try:
                drop_database(f"{DB_BASE}_{size}")
            except psycopg.Error:
                pass
    # The figures, once each, after the loading progress above.
    print("\n".join(report))
    print(f"Load average at the end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
