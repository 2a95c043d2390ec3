"""Indexes for the portal's mailbox list: keyset pages and prefix search that read a range, not a scan

The list pages in address order from a key (`start` / `before`) and finds
mailboxes whose address or display name starts with the search text; a status
or class filter narrows either. Each of these is one index range here, so a
page costs the same for a customer of 1,000 mailboxes or 100,000.

On PostgreSQL the keys are in byte order (COLLATE "C"), whatever the
database's collation: the list's queries compare in that order, which makes a
prefix exactly a range. SQLite compares bytes already (BINARY).
A name is found when it starts with the text as typed in lower case,
Capitalised or in CAPITALS ("mario" finds "Mario Rossi"): three ranges of the
same index.

Revision ID: 0009_mailbox_list_indexes
Revises: 0008_jobs
Create Date: 2026-12-01 17:45:00

"""

from alembic import op

revision = "0009_mailbox_list_indexes"
down_revision = "0008_jobs"
branch_labels = None
depends_on = None

POSTGRESQL = {
    "ix_mailboxes_list_address": '(customer_id, (address COLLATE "C"))',
    "ix_mailboxes_list_status": '(customer_id, status, (address COLLATE "C"))',
    "ix_mailboxes_list_class": '(customer_id, service_class_id, (address COLLATE "C"))',
    "ix_mailboxes_list_name": '(customer_id, (display_name COLLATE "C"))',
}
SQLITE = {
    # ix_mailboxes_customer_address (0001) holds the same on SQLite; kept alike for the models.
    "ix_mailboxes_list_address": "(customer_id, address)",
    "ix_mailboxes_list_status": "(customer_id, status, address)",
    "ix_mailboxes_list_class": "(customer_id, service_class_id, address)",
    "ix_mailboxes_list_name": "(customer_id, display_name)",
}


def _indexes() -> dict[str, str]:
    return POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE


def upgrade():
    for name, columns in _indexes().items():
        op.execute(f"CREATE INDEX {name} ON mailboxes {columns}")


def downgrade():
    for name in _indexes():
        op.execute(f"DROP INDEX {name}")
