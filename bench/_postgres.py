"""The benchmarks' PostgreSQL databases: named per checkout, so two checkouts never share one.

(Not a benchmark: `make bench` runs bench/*.py whose names do not start with "_".)
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import psycopg

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
)
CHECKOUT = Path(__file__).resolve().parent.parent


def database_name(base: str, checkout: Path = CHECKOUT) -> str:
    return f"{base}_{hashlib.sha1(str(checkout).encode()).hexdigest()[:8]}"


def fresh_database(base: str) -> str:
    """Drop (if a killed run left it) and create this checkout's database; its URL."""
    name = database_name(base)
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/]*$", f"/{name}", ADMIN_URL)


def drop_database(base: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name(base)}" WITH (FORCE)')
