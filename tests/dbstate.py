"""What is in the database, for tests that check a refusal wrote nothing."""

from __future__ import annotations

import re
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa

from app.extensions import db
from tests.conftest import PG_ADMIN_URL


def row_counts() -> dict[str, int]:
    """Rows per table (the catalogue aside)."""
    return {
        t.name: db.session.scalar(sa.select(sa.func.count()).select_from(t))
        for t in db.metadata.sorted_tables
        if t.name != "service_classes"
    }


@contextmanager
def fresh_database(backend: str, tmp_path):
    """An empty database of its own (for tests that walk the migrations), dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'migration.sqlite3'}"
        return
    name = f"panel_test_migration_{abs(hash(str(tmp_path))) % 10**8}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield re.sub(r"/[^/]*$", f"/{name}", PG_ADMIN_URL)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
