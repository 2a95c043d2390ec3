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


def test_capacity_migration_merges_duplicate_open_requests(app):
    """Before 0007, asking again made another identical request; the unique index needs them merged."""
    import sqlalchemy as sa
    from flask_migrate import downgrade, upgrade

    from app.models import CapacityRequest

    downgrade(revision="0006_capacity_requests-1")
    try:
        with db.engine.begin() as conn:
            customer_id = conn.execute(
                sa.text(
                    "INSERT INTO customers (name, plan, self_service, lock_version, created_at) "
                    "VALUES ('Vecchio', 'contract', true, 0, CURRENT_TIMESTAMP) RETURNING id"
                )
            ).scalar_one()
            bm100, plus = conn.execute(
                sa.text("SELECT id FROM service_classes ORDER BY id LIMIT 2")
            ).scalars()
            rows = [
                (bm100, 1, "", "open", "2026-11-01 10:00:00"),
                (bm100, 1, "Un collega", "open", "2026-11-01 10:00:01"),
                (bm100, 2, "", "open", "2026-11-01 10:00:02"),
                (bm100, 4, "vecchia", "approved", "2026-10-01 10:00:00"),
                (plus, 3, "altra classe", "open", "2026-11-02 10:00:00"),
            ]
            for cls, n, note, status, at in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO capacity_requests (customer_id, service_class_id, extra_accounts, note, status, "
                        "created_at) VALUES (:c, :s, :n, :note, :status, :at)"
                    ),
                    {"c": customer_id, "s": cls, "n": n, "note": note, "status": status, "at": at},
                )
    finally:
        upgrade()
    got = db.session.execute(
        sa.select(
            CapacityRequest.service_class_id,
            CapacityRequest.extra_accounts,
            CapacityRequest.note,
            CapacityRequest.status,
            CapacityRequest.granted_accounts,
        ).order_by(CapacityRequest.created_at)
    ).all()
    assert got == [
        (bm100, 4, "vecchia", "approved", 4),
        (bm100, 2, "Un collega", "open", None),
        (plus, 3, "altra classe", "open", None),
    ]
