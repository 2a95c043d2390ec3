"""The migrations build exactly the schema the models describe (`flask db check`), on each backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], (
        "models and migrations differ; add a migration (flask db migrate -m ...):\n"
        + "\n".join(map(str, diff))
    )
