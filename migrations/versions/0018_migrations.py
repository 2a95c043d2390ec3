"""IMAP migrations from the old provider: one row per mailbox to fill

`migrations`: the old server (host, port, security, certificate check) and account, the old
password sealed with DATA_KEYS until the migration is done or cancelled, the state, the last
preflight and report, the job copying it. At most one open migration per mailbox.

Revision ID: 0018_migrations
Revises: 0017_domain_checks
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_migrations"
down_revision = "0017_domain_checks"
branch_labels = None
depends_on = None

OPEN = sa.text("state IN ('draft', 'preflight_ok', 'queued', 'running', 'failed')")


def upgrade():
    op.create_table(
        "migrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("security", sa.String(length=8), nullable=False),
        sa.Column("verify_cert", sa.Boolean(), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("preflight", sa.JSON(), nullable=True),
        sa.Column("preflight_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=254), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'preflight_ok', 'queued', 'running', 'done', 'failed', 'cancelled')",
            name=op.f("ck_migrations_state"),
        ),
        sa.CheckConstraint("security IN ('ssl', 'starttls', 'none')", name=op.f("ck_migrations_security")),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name=op.f("ck_migrations_port")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_migrations_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"], name=op.f("fk_migrations_domain_id_domains"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_migrations_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_migrations_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_migrations_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migrations")),
    )
    op.create_index("ix_migrations_domain_created", "migrations", ["domain_id", "created_at"])
    op.create_index(
        "uq_migrations_open_mailbox",
        "migrations",
        ["mailbox_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade():
    op.drop_index("uq_migrations_open_mailbox", table_name="migrations")
    op.drop_index("ix_migrations_domain_created", table_name="migrations")
    op.drop_table("migrations")
