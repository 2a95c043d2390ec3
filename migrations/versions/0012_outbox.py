"""Outbox: every email the panel sends, kept with its state, attempts and last error

Mails are written here in the transaction that decides them and sent later by
a worker or the cron (app/services/outbox.py), so none is lost while the
relay is down or not configured. `dedupe_key` (unique, NULL allowed) lets a
caller queue a mail once; `claimed_by`/`claimed_until` keep two senders from
taking the same mail.

Revision ID: 0012_outbox
Revises: 0011_billing
Create Date: 2026-12-01 18:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0012_outbox"
down_revision = "0011_billing"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade():
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("to_addresses", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name=op.f("ck_outbox_state")),
        sa.CheckConstraint("locale IN ('it', 'en')", name=op.f("ck_outbox_locale")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_attempts_positive")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_outbox_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_dedupe_key")),
    )
    op.create_index("ix_outbox_customer_created", "outbox", ["customer_id", "created_at"])
    op.create_index(
        "ix_outbox_pending", "outbox", ["next_attempt_at"], sqlite_where=PENDING, postgresql_where=PENDING
    )


def downgrade():
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_index("ix_outbox_customer_created", table_name="outbox")
    op.drop_table("outbox")
