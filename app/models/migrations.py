"""IMAP migrations from the old provider: one row per mailbox to fill (app/services/migration/).

The old password is kept sealed (app/services/vault.py) only until the migration is done or
cancelled; the job unseals it, never its arguments nor the logs.
"""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.enums import ImapSecurity, MigrationState
from app.models.mail import Domain, Mailbox

OPEN_STATES = (
    MigrationState.DRAFT,
    MigrationState.PREFLIGHT_OK,
    MigrationState.QUEUED,
    MigrationState.RUNNING,
    MigrationState.SYNCING,
    MigrationState.FAILED,
)
OPEN = sa.text(f"state IN ({', '.join(repr(str(s)) for s in OPEN_STATES)})")


class Migration(db.Model):
    __tablename__ = "migrations"
    __table_args__ = (
        sa.CheckConstraint(MigrationState.check("state"), name="state"),
        sa.CheckConstraint(ImapSecurity.check("security"), name="security"),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name="port"),
        sa.Index("ix_migrations_domain_created", "domain_id", "created_at"),
        sa.Index("ix_migrations_state_next_pass", "state", "next_pass_at"),
        # One open migration per mailbox (done and cancelled ones stay as history).
        sa.Index(
            "uq_migrations_open_mailbox",
            "mailbox_id",
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    domain_id: Mapped[int] = mapped_column(sa.ForeignKey("domains.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"))
    # The old provider's IMAP server and account.
    host: Mapped[str] = mapped_column(sa.String(253))
    port: Mapped[int] = mapped_column(sa.Integer)
    security: Mapped[str] = mapped_column(sa.String(8))
    verify_cert: Mapped[bool] = mapped_column(default=True)
    username: Mapped[str] = mapped_column(sa.String(320))
    # The old password, sealed; NULL once done or cancelled.
    secret: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    state: Mapped[str] = mapped_column(sa.String(16), default=MigrationState.DRAFT)
    # The last preflight's findings and the last copy's report (CopyReport.to_dict(), no secrets).
    preflight: Mapped[dict | None] = mapped_column(sa.JSON)
    preflight_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report: Mapped[dict | None] = mapped_column(sa.JSON)
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(sa.String(500))
    # As the audit trail keeps them: the user (gone with the user) and a label that stays.
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Sync until the switch: copied again every MIGRATION_SYNC_HOURS (resting in `syncing` between
    # passes) until the domain's MX has propagated or staff finish it; then a final pass, and done.
    sync: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The next pass (or the one running, if it started so) is the last one.
    final_pass: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    passes: Mapped[int] = mapped_column(default=0, server_default="0")
    last_pass_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_pass_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Passes failed (or skipped) in a row; MIGRATION_SYNC_MAX_FAILURES of them fail the migration.
    failed_passes: Mapped[int] = mapped_column(default=0, server_default="0")
    # Staff asked to cancel it: whatever ends the running pass ends it cancelled.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The domain's end-of-migration mail was settled for this row (sent, or none due).
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_by: Mapped[str | None] = mapped_column(sa.String(254))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    domain: Mapped[Domain] = relationship()
    mailbox: Mapped[Mailbox] = relationship()

    @property
    def password_kept(self) -> bool:
        """Whether the sealed old password is still there (read without loading it)."""
        return (
            db.session.scalar(sa.select(Migration.secret.is_not(None)).where(Migration.id == self.id))
            or False
        )

    @property
    def waiting_turn(self) -> bool:
        """Queued with no job on it: waiting for a free turn on its old server (a job comes for it)."""
        from app.models import Job

        if self.state != MigrationState.QUEUED:
            return False
        job = db.session.get(Job, self.job_id) if self.job_id else None
        return job is None or not job.active

    @property
    def finished(self) -> bool:
        return self.state in (MigrationState.DONE, MigrationState.CANCELLED)
