"""DKIM keys per domain: `dkim_keys`, one row per key (pending, active, retiring, retired), the private
key sealed with DATA_KEYS (never in clear), at most one active key per domain; a replaced key is
`retiring` (its TXT still needed) until `retire_after`, then `retired` without its private key.

Keys for the domains already active are made by `flask dkim ensure` (or the cron's `dkim_check`),
not here: a migration does not hold the vault's keys.

Revision ID: 0020_dkim_keys
Revises: 0019_migration_sync
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_dkim_keys"
down_revision = "0019_migration_sync"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.String(length=32), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dns_status", sa.String(length=9), nullable=True),
        sa.Column("dns_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retire_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'active', 'retiring', 'retired')", name=op.f("ck_dkim_keys_state")
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"], name=op.f("fk_dkim_keys_domain_id_domains"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("domain_id", "selector", name=op.f("uq_dkim_keys_domain_id")),
    )
    op.create_index(op.f("ix_dkim_keys_domain_id"), "dkim_keys", ["domain_id"])
    active = sa.text("state = 'active'")
    op.create_index(
        "ux_dkim_keys_active",
        "dkim_keys",
        ["domain_id"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )


def downgrade():
    op.drop_index("ux_dkim_keys_active", table_name="dkim_keys")
    op.drop_index(op.f("ix_dkim_keys_domain_id"), table_name="dkim_keys")
    op.drop_table("dkim_keys")
