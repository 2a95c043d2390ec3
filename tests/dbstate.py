"""What is in the database, for tests that check a refusal wrote nothing."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db


def row_counts() -> dict[str, int]:
    """Rows per table (the catalogue aside)."""
    return {
        t.name: db.session.scalar(sa.select(sa.func.count()).select_from(t))
        for t in db.metadata.sorted_tables
        if t.name != "service_classes"
    }
