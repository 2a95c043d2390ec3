"""Pay-per-Use point accounts: the price list, the ledger and its charge lines, the balance

`prices` is effective-dated (a class's price from valid_from until the next row of the
class); the default list (an example, app/data/price_list.py, frozen here) is in force
from 2020-01-01. `ledger_entries` are immutable movements of a customer's points in
centipoints (charges negative); a daily charge has its day, and a partial unique index
on (customer_id, day) WHERE kind = 'charge' makes a day impossible to charge twice.
`charge_lines` keep each charged mailbox's address and class name as they were (the
mailbox may be deleted later: its id becomes NULL). `customers.balance_centipoints` is
the sum of the customer's entries, written in the same transaction as each entry.

Revision ID: 0011_billing
Revises: 0010_mailbox_words
Create Date: 2026-12-01 18:45:00

"""

import datetime

import sqlalchemy as sa
from alembic import op

revision = "0011_billing"
down_revision = "0010_mailbox_words"
branch_labels = None
depends_on = None

CHARGE_ONLY = sa.text("kind = 'charge'")

# Frozen copy of the example list: (type, centipoints per day for 100 ... 25000 MB).
SIZES_MB = (100, 200, 500, 1000, 2000, 5000, 10000, 25000)
PRICES = {
    "business_mail": (100, 120, 150, 200, 280, 400, 550, 800),
    "business_mail_plus": (130, 150, 190, 250, 350, 500, 700, 1000),
    "standard_suite": (250, 290, 350, 450, 600, 850, 1150, 1700),
    "professional_suite": (500, 560, 650, 800, 1050, 1500, 2000, 3000),
}
DEFAULT_FROM = datetime.date(2020, 1, 1)


def upgrade():
    op.add_column(
        "customers", sa.Column("balance_centipoints", sa.BigInteger(), server_default="0", nullable=False)
    )

    prices = op.create_table(
        "prices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_class_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("centipoints_per_day", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("centipoints_per_day >= 0", name=op.f("ck_prices_centipoints_per_day")),
        sa.ForeignKeyConstraint(
            ["service_class_id"],
            ["service_classes.id"],
            name=op.f("fk_prices_service_class_id_service_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prices")),
        sa.UniqueConstraint("service_class_id", "valid_from", name="uq_prices_class_from"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("centipoints", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('charge', 'credit', 'adjustment', 'first_credit')", name=op.f("ck_ledger_entries_kind")
        ),
        sa.CheckConstraint(
            "(kind = 'charge') = (day IS NOT NULL)", name=op.f("ck_ledger_entries_charge_day")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_ledger_entries_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        "uq_ledger_entries_charge_day",
        "ledger_entries",
        ["customer_id", "day"],
        unique=True,
        sqlite_where=CHARGE_ONLY,
        postgresql_where=CHARGE_ONLY,
    )
    op.create_index("ix_ledger_entries_customer_created", "ledger_entries", ["customer_id", "created_at"])
    op.create_table(
        "charge_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("service_class_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(length=100), nullable=False),
        sa.Column("centipoints", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_charge_lines_entry_id_ledger_entries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_charge_lines_mailbox_id_mailboxes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_class_id"],
            ["service_classes.id"],
            name=op.f("fk_charge_lines_service_class_id_service_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_lines")),
    )
    op.create_index(op.f("ix_charge_lines_entry_id"), "charge_lines", ["entry_id"])
    op.create_index(op.f("ix_charge_lines_mailbox_id"), "charge_lines", ["mailbox_id"])

    classes = sa.table(
        "service_classes",
        sa.column("id", sa.Integer),
        sa.column("type", sa.String),
        sa.column("quota_mb", sa.Integer),
    )
    ids = {
        (t, q): i
        for i, t, q in op.get_bind().execute(sa.select(classes.c.id, classes.c.type, classes.c.quota_mb))
    }
    now = datetime.datetime.now(datetime.UTC)
    op.bulk_insert(
        prices,
        [
            {
                "service_class_id": ids[(type_code, size)],
                "valid_from": DEFAULT_FROM,
                "centipoints_per_day": price,
                "created_by": "default price list",
                "created_at": now,
            }
            for type_code, row in PRICES.items()
            for size, price in zip(SIZES_MB, row, strict=True)
        ],
    )


def downgrade():
    op.drop_index(op.f("ix_charge_lines_mailbox_id"), table_name="charge_lines")
    op.drop_index(op.f("ix_charge_lines_entry_id"), table_name="charge_lines")
    op.drop_table("charge_lines")
    op.drop_index("ix_ledger_entries_customer_created", table_name="ledger_entries")
    op.drop_index("uq_ledger_entries_charge_day", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("prices")
    op.execute("ALTER TABLE customers DROP COLUMN balance_centipoints")
