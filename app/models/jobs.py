"""Background work: one row per job, mirroring its RQ job, with the progress the pages show."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.enums import JobState

ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
ACTIVE = sa.text(f"state IN ({', '.join(repr(str(s)) for s in ACTIVE_STATES)})")


class Job(db.Model):
    """A piece of background work: who asked, for which customer, how far it got, how it ended.

    queued -> running -> done | failed | cancelled, and queued -> cancelled | failed.
    A final state never changes: a job retried after its worker died is a new
    row pointing at the one it replaces (retry_of), with attempt one higher.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(JobState.check("state"), name="state"),
        sa.CheckConstraint("done >= 0", name="done_positive"),
        sa.CheckConstraint("total IS NULL OR total >= 0", name="total_positive"),
        # A customer's jobs, newest first (its pages, the API list).
        sa.Index("ix_jobs_customer_created", "customer_id", "created_at"),
        # What the stale-job sweep and the health page look at: only the unfinished ones.
        sa.Index("ix_jobs_active", "state", "heartbeat_at", sqlite_where=ACTIVE, postgresql_where=ACTIVE),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    queue: Mapped[str] = mapped_column(sa.String(16))
    # NULL: provider-wide work (the scheduled quota refresh), seen by staff only.
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    # As the audit trail keeps them: the user (gone with the user) and a label that stays.
    requested_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    requested_by: Mapped[str] = mapped_column(sa.String(254))
    # Ids and short codes only (services/jobs.py refuses anything else): they sit in Redis too.
    args: Mapped[list] = mapped_column(sa.JSON, default=list)
    state: Mapped[str] = mapped_column(sa.String(16), default=JobState.QUEUED)
    done: Mapped[int] = mapped_column(sa.Integer, default=0)
    total: Mapped[int | None] = mapped_column(sa.Integer)
    message: Mapped[str] = mapped_column(sa.String(500), default="")
    result: Mapped[dict | None] = mapped_column(sa.JSON)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    retry_of: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    rq_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return min(100, self.done * 100 // self.total)
