"""What the portal's mailbox list searches: the words of each mailbox (app.services.search_words)."""

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class MailboxWord(db.Model):
    """One word a mailbox is found by (folded: lower case, no accents), for a range search.

    customer_id is the mailbox's, so a search reads only its customer's words; the index is in
    byte order on PostgreSQL (COLLATE "C"), which makes a word's start exactly a range.
    """

    __tablename__ = "mailbox_words"
    __table_args__ = (
        sa.Index(
            "ix_mailbox_words_search",
            "customer_id",
            "word",
            "mailbox_id",
            postgresql_ops={"word": 'COLLATE "C"'},
        ),
    )

    mailbox_id: Mapped[int] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True
    )
    word: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
