"""Recharges, warnings in time and the grace period of Pay-per-Use point accounts

`recharge_requests`: a customer asks to recharge an amount in EUR cents and gets a
unique reference (`RIC-<customer id>-<6 characters>`) that its bank transfer carries;
staff confirm the receipt, which writes one credit entry (`entry_id`), or cancel it.

`customers.warned_level`: the lowest warning level (14, 7, 3, 1 days, 0) already
mailed in the current `warning_epoch`; the epoch grows when a recharge lifts the
balance above that level again, so each level is mailed once per epoch (the outbox's
dedupe key carries it). `customers.negative_since`: since when the credit is
exhausted (NULL when it is not), what the grace period counts from.

Revision ID: 0014_recharges
Revises: 0013_customer_hold
Create Date: 2026-12-01 19:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0014_recharges"
down_revision = "0013_customer_hold"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "recharge_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("eur_cents", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=False),
        sa.Column("confirmed_by", sa.String(length=254), nullable=True),
        sa.Column("received_eur_cents", sa.BigInteger(), nullable=True),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('requested', 'confirmed', 'cancelled')", name=op.f("ck_recharge_requests_state")
        ),
        sa.CheckConstraint("eur_cents > 0", name=op.f("ck_recharge_requests_eur_cents")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_recharge_requests_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_recharge_requests_entry_id_ledger_entries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recharge_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_recharge_requests_reference")),
    )
    op.create_index("ix_recharge_requests_customer", "recharge_requests", ["customer_id", "created_at"])
    op.create_index("ix_recharge_requests_state", "recharge_requests", ["state"])
    op.add_column("customers", sa.Column("warned_level", sa.Integer(), nullable=True))
    op.add_column(
        "customers", sa.Column("warning_epoch", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("customers", sa.Column("negative_since", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.execute("ALTER TABLE customers DROP COLUMN negative_since")
    op.execute("ALTER TABLE customers DROP COLUMN warning_epoch")
    op.execute("ALTER TABLE customers DROP COLUMN warned_level")
    op.drop_index("ix_recharge_requests_state", table_name="recharge_requests")
    op.drop_index("ix_recharge_requests_customer", table_name="recharge_requests")
    op.drop_table("recharge_requests")
