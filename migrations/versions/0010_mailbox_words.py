"""Search words of mailboxes: the list finds a mailbox by the start of any word of its address or name

`mailbox_words` holds, per mailbox, the words of its address's local part (but
the first: the address's own index finds it) and of its display name, folded (lower case, accents removed: "Nicolò" is
"nicolo"), at most 32 per mailbox and 64 characters each
(app.services.search_words.words_for). The portal's list reads them as an
index range of the customer's words ("rossi" finds mario.rossi@… and
"Mario Rossi"), so a search stays a range, not a scan of every name; on
PostgreSQL the index is in byte order (COLLATE "C") like those of 0009.

Existing mailboxes get their words here, in batches. The display-name index of
0009 (three case variants of a prefix) is dropped: the words replace it.

Revision ID: 0010_mailbox_words
Revises: 0009_mailbox_list_indexes
Create Date: 2026-12-01 18:20:00

"""

import sqlalchemy as sa
from alembic import op

from app.services.search_words import words_for

revision = "0010_mailbox_words"
down_revision = "0009_mailbox_list_indexes"
branch_labels = None
depends_on = None

BATCH = 2000


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    words = op.create_table(
        "mailbox_words",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("word", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailboxes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailbox_id", "word"),
    )
    word = 'word COLLATE "C"' if _postgres() else "word"
    op.execute(f"CREATE INDEX ix_mailbox_words_search ON mailbox_words (customer_id, {word}, mailbox_id)")
    op.execute("DROP INDEX ix_mailboxes_list_name")

    # The words of the mailboxes already there, a batch at a time in id order.
    conn = op.get_bind()
    mailboxes = sa.table(
        "mailboxes",
        sa.column("id", sa.Integer),
        sa.column("customer_id", sa.Integer),
        sa.column("local_part", sa.String),
        sa.column("display_name", sa.String),
    )
    last = 0
    while True:
        batch = conn.execute(
            sa.select(
                mailboxes.c.id, mailboxes.c.customer_id, mailboxes.c.local_part, mailboxes.c.display_name
            )
            .where(mailboxes.c.id > last)
            .order_by(mailboxes.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            break
        rows = [
            {"mailbox_id": m.id, "customer_id": m.customer_id, "word": w}
            for m in batch
            for w in words_for(m.local_part, m.display_name)
        ]
        if rows:
            conn.execute(sa.insert(words), rows)
        last = batch[-1].id


def downgrade():
    name = '(display_name COLLATE "C")' if _postgres() else "display_name"
    op.execute(f"CREATE INDEX ix_mailboxes_list_name ON mailboxes (customer_id, {name})")
    op.drop_table("mailbox_words")
