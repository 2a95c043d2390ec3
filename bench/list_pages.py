"""Server time of the portal's busiest pages for a large customer, on SQLite and PostgreSQL.

A customer with 10,000 mailboxes, 2,000 aliases and 500 lists (a few members
each) is bulk-loaded; then the mailbox list (first page and a search) and the
dashboard are requested 200 times each through the Flask test client, signed
in as the customer's admin. Goal: median under 50 ms.

    python bench/list_pages.py            # both backends (PostgreSQL if reachable)
    BENCH_REQUESTS=50 python bench/list_pages.py
"""

from __future__ import annotations

import os
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
from app.models import Alias, DistributionList, ListMember, Mailbox, MailboxPeriod  # noqa: E402
from app.services import classes, customers, domains, passwords, users  # noqa: E402
from app.services.access import Actor  # noqa: E402
from bench._postgres import drop_database, fresh_database  # noqa: E402

MAILBOXES, ALIASES, LISTS, MEMBERS_PER_LIST = 10_000, 2_000, 500, 4
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200"))
GOAL_MS = 50
DB_BASE = "panel_bench"
DOMAIN = "grande-cliente.example"
ADMIN = ("admin@grande-cliente.example", "Bench-password-1")
CLASSES = ("Business Mail 1.000 MB", "Business Mail Plus 2.000 MB", "Professional Suite 5.000 MB")
SYSTEM = Actor.system("bench")


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


def load(app) -> int:
    """Bulk-load the large customer; returns its id."""
    now = datetime.now(UTC)
    customer = customers.create_customer(SYSTEM, name="Grande Cliente S.p.A.", plan="contract")
    customers.set_contract(
        SYSTEM,
        customer.id,
        [{"service_class": name, "max_accounts": MAILBOXES} for name in CLASSES],
        True,
    )
    domain = domains.add_domain(SYSTEM, customer.id, DOMAIN)
    users.create_user(
        SYSTEM, email=ADMIN[0], password=ADMIN[1], role="customer_admin", customer_id=customer.id
    )
    class_ids = [classes.resolve(name).id for name in CLASSES]
    # One hash for every mailbox: hashing 10,000 passwords would measure argon2, not the pages.
    password_hash = passwords.hash_mailbox_password("Bench-mailbox-1")
    statuses = ["active"] * 18 + ["suspended", "disabled"]
    rows = [
        {
            "customer_id": customer.id,
            "domain_id": domain.id,
            "local_part": f"utente{i}",
            "address": f"utente{i}@{DOMAIN}",
            "display_name": f"Utente {i}",
            "password_hash": password_hash,
            "service_class_id": class_ids[i % len(class_ids)],
            "status": statuses[i % len(statuses)],
            "created_at": now,
            "updated_at": now,
        }
        for i in range(MAILBOXES)
    ]
    db.session.execute(sa.insert(Mailbox.__table__), rows)
    ids = db.session.execute(
        sa.select(Mailbox.id, Mailbox.address, Mailbox.service_class_id, Mailbox.status)
        .where(Mailbox.customer_id == customer.id)
        .order_by(Mailbox.id)
    ).all()
    db.session.execute(
        sa.insert(MailboxPeriod.__table__),
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
    db.session.execute(
        sa.insert(Alias.__table__),
        [
            {
                "customer_id": customer.id,
                "domain_id": domain.id,
                "local_part": f"alias{i}",
                "address": f"alias{i}@{DOMAIN}",
                "target_id": ids[i * 5 % len(ids)].id,
                "created_at": now,
            }
            for i in range(ALIASES)
        ],
    )
    db.session.execute(
        sa.insert(DistributionList.__table__),
        [
            {
                "customer_id": customer.id,
                "domain_id": domain.id,
                "local_part": f"lista{i}",
                "address": f"lista{i}@{DOMAIN}",
                "description": f"Lista {i}",
                "created_at": now,
            }
            for i in range(LISTS)
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
    db.session.execute(sa.insert(ListMember.__table__), members)
    db.session.commit()
    return customer.id


def measure(client, url: str) -> tuple[int, list[float]]:
    first = client.get(url)  # warm-up, and the status to report
    if first.status_code != 200:
        return first.status_code, []
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return first.status_code, times


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def run_backend(label: str, url: str) -> list[str]:
    tag = f"[{label}]".ljust(12)
    app = make_bench_app(url)
    with app.app_context():
        started = time.perf_counter()
        customer_id = load(app)
        print(
            f"{tag} loaded {MAILBOXES} mailboxes, {ALIASES} aliases, {LISTS} lists in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
    client = app.test_client()
    response = client.post("/login", data={"email": ADMIN[0], "password": ADMIN[1]})
    if response.status_code != 302:
        return [f"{tag} login failed (HTTP {response.status_code}); nothing measured"]
    pages = [
        ("mailbox list, first page", f"/customers/{customer_id}/mailboxes"),
        ("mailbox search ?q=utente12", f"/customers/{customer_id}/mailboxes?q=utente12"),
        ("dashboard", f"/customers/{customer_id}/"),
    ]
    lines = []
    for name, page_url in pages:
        status, times = measure(client, page_url)
        if status != 200:
            why = "page not there" if status == 404 else "the page fails"
            lines.append(f"{tag} {name:<28} HTTP {status} on {page_url}: {why}, nothing measured")
            continue
        median = statistics.median(times)
        verdict = "ok" if median < GOAL_MS else f"OVER the {GOAL_MS} ms goal"
        lines.append(
            f"{tag} {name:<28} median {median:6.1f} ms  p95 {p95(times):6.1f} ms  "
            f"over {REQUESTS} requests: {verdict}"
        )
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return lines


def postgres_url() -> tuple[str | None, str]:
    try:
        return fresh_database(DB_BASE), ""
    except psycopg.Error as e:
        return None, str(e).strip().splitlines()[0]


def main() -> int:
    print(f"Goal: median < {GOAL_MS} ms per page. {REQUESTS} requests per page.", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += run_backend("sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
    url, problem = postgres_url()
    if url:
        try:
            results += run_backend("postgresql", url)
        finally:
            drop_database(DB_BASE)
    else:
        results.append(f"[postgresql] not measured, PostgreSQL unreachable: {problem}")
    # The figures, once each, after the loading progress above.
    print("\n".join(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
