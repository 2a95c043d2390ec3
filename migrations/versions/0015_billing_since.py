"""The day a customer's point account starts: a customer that moves to Pay per Use is charged from that day

`customers.billing_since`: the first day the daily charge may charge (NULL: the day the
customer was created). Set to today when a contract customer moves to Pay per Use, so
the days it spent on a contract are never charged.

Revision ID: 0015_billing_since
Revises: 0014_recharges
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_billing_since"
down_revision = "0014_recharges"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("customers", sa.Column("billing_since", sa.Date(), nullable=True))


def downgrade():
    op.execute("ALTER TABLE customers DROP COLUMN billing_since")
