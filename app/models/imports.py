"""Bulk provisioning from a spreadsheet: the import (one uploaded file) and its rows.

An import is checked in full when uploaded (its rows and problems stored, nothing else
written), then applied by a job that creates what its rows say and records each row's
outcome in the same transaction as what it created, so a re-run never creates twice.
Passwords from the file are kept sealed (app/services/vault.py) only until the import
ends, and generated ones until their single download.
"""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.enums import ImportOp, ImportState, RowOutcome


class Import(db.Model):
    __tablename__ = "imports"
    __table_args__ = (
        sa.CheckConstraint(ImportState.check("state"), name="state"),
        sa.Index("ix_imports_customer_created", "customer_id", "created_at"),
        sa.Index("ix_imports_state_expires", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    # As the audit trail keeps them: the user (gone with the user) and a label that stays.
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    filename: Mapped[str] = mapped_column(sa.String(255))
    size_bytes: Mapped[int] = mapped_column(sa.Integer, default=0)
    state: Mapped[str] = mapped_column(sa.String(16), default=ImportState.PREVIEWED)
    # The preview: {op: {"create": n, "present": n, "error": n}}, and the problems found
    # (sheet, row, column, message), at most MAX_PROBLEMS of them kept; problem_count counts all.
    counts: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    problems: Mapped[list] = mapped_column(sa.JSON, default=list)
    problem_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Applying: only the rows without problems (the customer chose so), by whom, which job.
    valid_only: Mapped[bool] = mapped_column(default=False)
    applied_by: Mapped[str | None] = mapped_column(sa.String(254))
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    # The outcome: {op: {outcome: n}}, the report (.xlsx, no secrets) and when it ended.
    result: Mapped[dict | None] = mapped_column(sa.JSON)
    report: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Until then the sealed secrets wait for "apply" (then they are wiped: state expired).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Generated passwords: a sealed .xlsx, downloadable once, wiped after it or at expiry.
    generated: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    generated_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    generated_taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    generated_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def finished(self) -> bool:
        return self.state not in (ImportState.PREVIEWED, ImportState.APPLYING)


class ImportRow(db.Model):
    """One thing the file asks for: a mailbox, an alias, a list or a list member, with where it
    was written (sheet, row, column) and what became of it."""

    __tablename__ = "import_rows"
    __table_args__ = (
        sa.CheckConstraint(ImportOp.check("op"), name="op"),
        sa.CheckConstraint(RowOutcome.check("outcome"), name="outcome"),
        sa.UniqueConstraint("import_id", "seq", name="uq_import_rows_seq"),
        # What the apply job claims and counts: an import's rows of one kind by outcome.
        sa.Index("ix_import_rows_work", "import_id", "op", "outcome", "claimed_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(sa.ForeignKey("imports.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(sa.Integer)
    op: Mapped[str] = mapped_column(sa.String(8))
    sheet: Mapped[str] = mapped_column(sa.String(100))
    row: Mapped[int] = mapped_column(sa.Integer)
    column: Mapped[str | None] = mapped_column(sa.String(8))
    # The mailbox, alias or list address; for a member, the list's address and the member.
    address: Mapped[str] = mapped_column(sa.String(320))
    member: Mapped[str | None] = mapped_column(sa.String(320))
    # Non-secret fields: display_name, service_class (id) for a mailbox, target for an alias,
    # description for a list.
    data: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # The password, sealed; NULL once the import ended (or when one is to be generated).
    secret: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    generate: Mapped[bool] = mapped_column(default=False)
    # The preview's verdict ("create", "present", "error") and the outcome once applied.
    action: Mapped[str] = mapped_column(sa.String(8))
    outcome: Mapped[str] = mapped_column(sa.String(8), default=RowOutcome.PENDING)
    message: Mapped[str] = mapped_column(sa.String(500), default="")
    # The job working on it (several share one import's mailboxes), and since when.
    claimed_by: Mapped[int | None] = mapped_column(sa.Integer)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
