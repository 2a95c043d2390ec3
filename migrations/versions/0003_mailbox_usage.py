"""Quota usage: mailbox_usage (one reading per mailbox from Dovecot), usage_refreshes (the last refresh)

Only new tables: the views of 0002_mail_views read none of them and keep
their shape. The mail servers' lookups already go through unique indexes
(mailboxes.address, domains.name, aliases.address, distribution_lists.address;
EXPLAIN in bench/imap_login.py), so no index is added here.

Revision ID: 0003_mailbox_usage
Revises: 0002_mail_views
Create Date: 2026-11-28 02:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0003_mailbox_usage"
down_revision = "0002_mail_views"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mailbox_usage",
        sa.Column("mailbox_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_mailbox_usage_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_mailbox_usage")),
    )
    op.create_table(
        "usage_refreshes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("mailboxes_read", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_refreshes")),
    )


def downgrade():
    op.drop_table("usage_refreshes")
    op.drop_table("mailbox_usage")
