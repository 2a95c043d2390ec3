"""Migrations kept in sync until the MX switch; the domain's end-of-migration mail

`migrations`: `sync` (copy again every MIGRATION_SYNC_HOURS until the domain's MX has
propagated, then a final pass), `final_pass` (the next or running pass is the last),
`passes`, `failed_passes` (in a row), `last_pass_at`, `next_pass_at`, `cancel_requested_at`
(a cancel asked while a pass runs: the pass ends it cancelled), and `notified_at` (the domain's end-of-migration mail
settled for this row). The new open state `syncing` (between two passes) joins the CHECK
constraint and the one-open-migration-per-mailbox index. Migrations already finished when this
runs count as notified: no mail about an old batch.

Revision ID: 0019_migration_sync
Revises: 0018_migrations
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_migration_sync"
down_revision = "0018_migrations"
branch_labels = None
depends_on = None

STATES = "'draft', 'preflight_ok', 'queued', 'running', 'syncing', 'done', 'failed', 'cancelled'"
OLD_STATES = "'draft', 'preflight_ok', 'queued', 'running', 'done', 'failed', 'cancelled'"
OPEN = sa.text("state IN ('draft', 'preflight_ok', 'queued', 'running', 'syncing', 'failed')")
OLD_OPEN = sa.text("state IN ('draft', 'preflight_ok', 'queued', 'running', 'failed')")


def _index(where) -> None:
    op.create_index(
        "uq_migrations_open_mailbox",
        "migrations",
        ["mailbox_id"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade():
    op.drop_index("uq_migrations_open_mailbox", table_name="migrations")
    with op.batch_alter_table("migrations") as batch:
        batch.add_column(sa.Column("sync", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("final_pass", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("passes", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_pass_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failed_passes", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(batch.f("ck_migrations_state"), type_="check")
        batch.create_check_constraint(batch.f("ck_migrations_state"), f"state IN ({STATES})")
    op.execute(
        "UPDATE migrations SET notified_at = COALESCE(finished_at, created_at) "
        "WHERE state IN ('done', 'cancelled')"
    )
    op.execute("UPDATE migrations SET passes = 1, last_pass_at = finished_at WHERE report IS NOT NULL")
    _index(OPEN)
    op.create_index("ix_migrations_state_next_pass", "migrations", ["state", "next_pass_at"])


def downgrade():
    op.drop_index("ix_migrations_state_next_pass", table_name="migrations")
    op.drop_index("uq_migrations_open_mailbox", table_name="migrations")
    # A migration between two passes goes back to failed: open, its password kept, startable again.
    op.execute("UPDATE migrations SET state = 'failed' WHERE state = 'syncing'")
    with op.batch_alter_table("migrations") as batch:
        batch.drop_constraint(batch.f("ck_migrations_state"), type_="check")
        batch.create_check_constraint(batch.f("ck_migrations_state"), f"state IN ({OLD_STATES})")
        for column in (
            "notified_at",
            "cancel_requested_at",
            "failed_passes",
            "next_pass_at",
            "last_pass_at",
            "passes",
            "final_pass",
            "sync",
        ):
            batch.drop_column(column)
    _index(OLD_OPEN)
