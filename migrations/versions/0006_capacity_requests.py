"""Capacity requests: one open request per customer and class; what staff granted and why

Before this, asking again created another identical request. Open
duplicates are merged into the oldest one (the largest number asked, the
reasons joined) so that the unique partial index can be built.

Revision ID: 0006_capacity_requests
Revises: 0005_sessions_totp
Create Date: 2026-12-01 15:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0006_capacity_requests"
down_revision = "0005_sessions_totp"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def _merge_open_duplicates() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, customer_id, service_class_id, extra_accounts, note FROM capacity_requests "
            "WHERE status = 'open' ORDER BY customer_id, service_class_id, created_at, id"
        )
    ).all()
    groups: dict[tuple[int, int], list] = {}
    for row in rows:
        groups.setdefault((row.customer_id, row.service_class_id), []).append(row)
    for group in groups.values():
        if len(group) < 2:
            continue
        keep, others = group[0], group[1:]
        notes = []
        for row in group:
            if row.note and row.note not in notes:
                notes.append(row.note)
        conn.execute(
            sa.text("UPDATE capacity_requests SET extra_accounts = :n, note = :note WHERE id = :id"),
            {"n": max(r.extra_accounts for r in group), "note": " / ".join(notes)[:1000], "id": keep.id},
        )
        conn.execute(
            sa.text("DELETE FROM capacity_requests WHERE id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": [r.id for r in others]},
        )


def upgrade():
    _merge_open_duplicates()
    with op.batch_alter_table("capacity_requests") as batch:
        batch.add_column(sa.Column("granted_accounts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("decision_note", sa.String(length=1000), nullable=False, server_default=""))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("capacity_requests") as batch:
        batch.alter_column("decision_note", server_default=None)
    op.execute("UPDATE capacity_requests SET granted_accounts = extra_accounts WHERE status = 'approved'")
    op.create_index(
        "uq_capacity_requests_open_class",
        "capacity_requests",
        ["customer_id", "service_class_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade():
    op.drop_index("uq_capacity_requests_open_class", table_name="capacity_requests")
    with op.batch_alter_table("capacity_requests") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("decision_note")
        batch.drop_column("granted_accounts")
