"""Background jobs: the row and the RQ job made in one place, their progress, their end.

A job moves queued -> running -> done | failed | cancelled (and queued ->
cancelled | failed); every move is a conditional UPDATE from the state the
mover saw, so a worker, a cancel and the stale-job sweep never overwrite
each other: whoever moves first wins, and a final state never changes.

A job whose worker died (killed, machine restarted) stops writing its
heartbeat; `sweep_stale_jobs` (every minute, app/cron.py) marks it failed and
queues a new row for it (retry_of, attempt + 1) up to MAX_ATTEMPTS in all.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from redis.exceptions import RedisError

from app.extensions import db
from app.models import Job
from app.models.base import utcnow
from app.models.jobs import ACTIVE_STATES
from app.services import audit
from app.services.access import Actor, customer_for, require_manage, require_staff, scoped
from app.services.errors import Conflict, DomainError

log = logging.getLogger(__name__)

# The first run and two retries after a worker died.
MAX_ATTEMPTS = 3
# Arguments are ids and short codes: they are stored in Redis and in the row.
MAX_ARG_LENGTH = 64
LIST_LIMIT = 200
# What RQ says of a job that no worker is running any more.
RQ_ENDED = {"finished", "failed", "stopped", "canceled"}


class QueueUnavailable(DomainError):
    """Redis cannot be reached: the job was not started (its row says failed)."""

    status = 503


class JobFailed(DomainError):
    """Raised by a job's body: the job ends failed with this message (for people: no details)."""


class JobCancelled(Exception):
    """Raised between steps when a cancel was asked: the job ends cancelled."""


class JobLost(Exception):
    """The row is no longer this run's (the sweep took it for dead): stop without writing."""


def redis_connection():
    from app.services.health import redis_connection as connect

    return connect(current_app.config["HEALTH_TIMEOUT"])


def _checked_args(args) -> list:
    checked = []
    for value in args:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and len(value) <= MAX_ARG_LENGTH
        )
        if not ok:
            raise ValueError(f"job arguments are ids and short codes, not {type(value).__name__}")
        checked.append(value)
    return checked


def _may_ask(actor: Actor, customer_id: int | None) -> None:
    if customer_id is None:
        require_staff(actor)
    else:
        customer_for(actor, customer_id)


def enqueue(
    actor: Actor,
    kind: str,
    *,
    customer_id: int | None = None,
    queue: str | None = None,
    args=(),
    total: int | None = None,
    reuse_active: bool = False,
    retry_of: Job | None = None,
) -> Job:
    """Create the job's row and its RQ job; the row, committed.

    reuse_active: a queued or running job of this kind for this customer is
    returned instead of a second one. Raises QueueUnavailable (the row then
    says failed) when Redis cannot be reached. Commits the session.
    """
    from rq import Queue

    from app.jobs import QUEUES, kind_spec

    spec = kind_spec(kind)
    queue = queue or spec.queue
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    args = _checked_args(args)
    _may_ask(actor, customer_id)
    if reuse_active:
        running = active_job(kind, customer_id)
        if running is not None:
            return running
    row = Job(
        kind=kind,
        queue=queue,
        customer_id=customer_id,
        requested_by_id=actor.user_id,
        requested_by=actor.label[:254],
        args=args,
        state="queued",
        done=0,
        total=total,
        message="",
        cancel_requested=False,
        attempt=retry_of.attempt + 1 if retry_of else 1,
        retry_of=retry_of.id if retry_of else None,
        rq_id=uuid.uuid4().hex,
        created_at=utcnow(),
    )
    inline = current_app.config.get("JOBS_INLINE", False)
    if inline:
        row.rq_id = None
    db.session.add(row)
    # Committed before RQ has it: a worker that takes the job at once finds its row.
    db.session.commit()
    if inline:
        return _run_inline(spec, row)
    try:
        Queue(queue, connection=redis_connection()).enqueue(
            spec.entry,
            row.id,
            job_id=row.rq_id,
            job_timeout=spec.timeout,
            result_ttl=3600,
            failure_ttl=7 * 86400,
        )
    except (RedisError, OSError) as e:
        log.warning("job %s (%s) not queued: %s", row.id, kind, e)
        _move(
            row.id,
            ("queued",),
            state="failed",
            finished_at=utcnow(),
            message=_("Non avviato: la coda dei lavori non è raggiungibile."),
        )
        raise QueueUnavailable(
            _("Impossibile avviare il lavoro: la coda dei lavori non è raggiungibile. Riprova più tardi.")
        ) from None
    return row


def _run_inline(spec, row: Job) -> Job:
    """JOBS_INLINE (tests of the doors that start jobs): run it here and now, as a worker would."""
    from rq.utils import import_attribute

    try:
        import_attribute(spec.entry)(row.id)
    except Exception:  # noqa: BLE001  (logged, and the row says failed: the door goes on)
        pass
    db.session.refresh(row)
    return row


def _move(job_id: int, from_states: tuple[str, ...], **values) -> bool:
    """One conditional UPDATE, committed: True if this caller made the move."""
    moved = db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.state.in_(from_states))
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return moved == 1


def _id(job: Job | int) -> int:
    return job if isinstance(job, int) else job.id


# What a running job calls (through app.jobs.JobContext).


def start(job_id: int) -> Job | None:
    """queued -> running; None if the job was cancelled or settled meanwhile (then it must not run)."""
    now = utcnow()
    if not _move(job_id, ("queued",), state="running", started_at=now, heartbeat_at=now):
        return None
    return db.session.get(Job, job_id)


def progress(job: Job | int, done: int, total: int | None = None, message: str | None = None) -> None:
    """How far it got (and a heartbeat). Commits: call it between steps. JobLost if the job was taken away."""
    values: dict = {"done": max(0, int(done)), "heartbeat_at": utcnow()}
    if total is not None:
        values["total"] = max(0, int(total))
    if message is not None:
        values["message"] = message[:500]
    if not _move(_id(job), ("running",), **values):
        raise JobLost


def beat(job: Job | int) -> bool:
    return _move(_id(job), ("running",), heartbeat_at=utcnow())


def cancel_requested(job: Job | int) -> bool:
    return bool(db.session.scalar(sa.select(Job.cancel_requested).where(Job.id == _id(job))))


def finish(job: Job | int, result: dict | None = None, message: str | None = None) -> bool:
    values: dict = {"state": "done", "finished_at": utcnow(), "result": result}
    if message is not None:
        values["message"] = message[:500]
    return _move(_id(job), ("running",), **values)


def fail(job: Job | int, message: str) -> bool:
    return _move(_id(job), ACTIVE_STATES, state="failed", finished_at=utcnow(), message=message[:500])


def mark_cancelled(job: Job | int) -> bool:
    return _move(
        _id(job), ACTIVE_STATES, state="cancelled", finished_at=utcnow(), message=_("Annullato su richiesta.")
    )


# What people do with jobs.


def get_job(actor: Actor, job_id: object) -> Job:
    """The job, if the actor may see it: its customer's, or any for staff (provider-wide ones too)."""
    try:
        row = db.session.get(Job, int(job_id))
    except (TypeError, ValueError):
        row = None
    return scoped(actor, row, _("Lavoro non trovato."))


def jobs_for_customer(actor: Actor, customer_id: object, limit: int = 50) -> list[Job]:
    """A customer's jobs, newest first, at most `limit` (and never more than LIST_LIMIT)."""
    customer = customer_for(actor, customer_id)
    stmt = (
        sa.select(Job)
        .where(Job.customer_id == customer.id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(max(1, min(int(limit), LIST_LIMIT)))
    )
    return list(db.session.scalars(stmt))


def active_job(kind: str, customer_id: int | None) -> Job | None:
    """The newest queued or running job of this kind for this customer (None: provider-wide)."""
    owner = Job.customer_id.is_(None) if customer_id is None else Job.customer_id == customer_id
    stmt = (
        sa.select(Job)
        .where(Job.kind == kind, owner, Job.state.in_(ACTIVE_STATES))
        .order_by(Job.id.desc())
        .limit(1)
    )
    return db.session.scalars(stmt).first()


def retried_as(job: Job) -> Job | None:
    """The newest job in the line of retries that replaced this one (None if it was not retried)."""
    current, seen = job, 0
    while seen < MAX_ATTEMPTS:
        after = db.session.scalars(
            sa.select(Job).where(Job.retry_of == current.id).order_by(Job.id.desc())
        ).first()
        if after is None:
            break
        current, seen = after, seen + 1
    return current if current is not job else None


def cancel(actor: Actor, job_id: object) -> Job:
    """A queued job is cancelled at once (and taken off its queue); a running one stops at its next step."""
    from app.jobs import KINDS

    job = get_job(actor, job_id)
    if not job.active:
        raise Conflict(_("Il lavoro è già terminato."))
    spec = KINDS.get(job.kind)
    if spec is not None and spec.staff_only:
        require_staff(actor)  # a customer sees a migration support runs, and may not stop it
    if spec is not None and spec.manages and job.customer_id is not None:
        require_manage(actor, customer_for(actor, job.customer_id))
    if job.state == "running" and spec is not None and not spec.cancellable:
        raise Conflict(_("Questo lavoro non si può fermare a metà: attendi che finisca."))
    audit.record(actor, "job.cancel", customer_id=job.customer_id, target=f"{job.kind} #{job.id}")
    if _move(
        job.id,
        ("queued",),
        state="cancelled",
        cancel_requested=True,
        finished_at=utcnow(),
        message=_("Annullato prima di iniziare."),
    ):
        _drop_from_queue(job.rq_id)
        if spec is not None and spec.on_cancel is not None:
            spec.on_cancel(job)
    else:
        _move(
            job.id,
            ("running",),
            cancel_requested=True,
            message=_("Annullamento richiesto: il lavoro si ferma al prossimo passo."),
        )
    return db.session.get(Job, job.id)


def _drop_from_queue(rq_id: str | None) -> None:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    if not rq_id:
        return
    try:
        RQJob.fetch(rq_id, connection=redis_connection()).cancel()
    except (NoSuchJobError, RedisError, OSError) as e:
        # The row says cancelled: a worker that still takes it finds that and does nothing.
        log.info("job %s not taken off its queue: %s", rq_id, e)


# Jobs whose worker died.


def _rq_status(conn, rq_id: str | None) -> str | None:
    """RQ's status of the job, or None when RQ no longer has it."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    if not rq_id:
        return None
    try:
        status = RQJob.fetch(rq_id, connection=conn).get_status(refresh=False)
    except NoSuchJobError:
        return None
    return str(getattr(status, "value", status))


def why_stale(job: Job, rq_status: str | None, now, stale_after: timedelta) -> str | None:
    """Why this unfinished job has nobody working on it, or None if it may still be alive.

    running: its heartbeat (written every JOB_HEARTBEAT_SECONDS by the process
    running it) is older than stale_after, or RQ has ended or lost the job.
    queued: older than stale_after and RQ has ended or lost it (a job merely
    waiting for a worker stays queued).
    """
    if job.state == "running":
        if rq_status is None or rq_status in RQ_ENDED:
            return "rq"
        if (job.heartbeat_at or job.started_at or job.created_at) < now - stale_after:
            return "heartbeat"
        return None
    if job.state == "queued" and job.created_at < now - stale_after:
        if rq_status is None or rq_status in RQ_ENDED:
            return "rq"
    return None


def sweep_stale_jobs() -> list[Job]:
    """Mark failed every job whose worker died, and queue a retry where attempts remain; the retries."""
    stale_after = timedelta(seconds=current_app.config["JOB_STALE_SECONDS"])
    now = utcnow()
    conn = redis_connection()
    retries = []
    # populate_existing: the heartbeats as the database has them now, not as this session last saw them.
    active = sa.select(Job).where(Job.state.in_(ACTIVE_STATES)).order_by(Job.id)
    for job in db.session.scalars(active.execution_options(populate_existing=True)).all():
        reason = why_stale(job, _rq_status(conn, job.rq_id), now, stale_after)
        if reason is None:
            continue
        retry = job.attempt < MAX_ATTEMPTS and not job.cancel_requested
        if retry:
            message = _(
                "Interrotto: il worker che lo eseguiva si è fermato. Avviato un nuovo tentativo (%(n)d di %(max)d).",
                n=job.attempt + 1,
                max=MAX_ATTEMPTS,
            )
        else:
            message = _(
                "Interrotto: il worker che lo eseguiva si è fermato. Nessun altro tentativo automatico."
            )
        log.warning("job %s (%s) found stale (%s), attempt %s", job.id, job.kind, reason, job.attempt)
        # From the state seen: a worker that was alive after all and finished meanwhile wins.
        kind, customer_id, args, total, attempt_of = job.kind, job.customer_id, job.args, job.total, job
        who = Actor(job.requested_by_id, job.requested_by, "system", customer_id, None, "job")
        if not _move(job.id, (job.state,), state="failed", finished_at=now, message=message):
            continue
        if retry:
            try:
                retries.append(
                    enqueue(
                        who,
                        kind,
                        customer_id=customer_id,
                        queue=job.queue,
                        args=args,
                        total=total,
                        retry_of=attempt_of,
                    )
                )
            except QueueUnavailable:
                pass
    return retries


def state_counts() -> dict[str, int]:
    """Jobs queued and running now, and failed in the last 24 hours: what the health page shows."""
    counts = dict(
        db.session.execute(
            sa.select(Job.state, sa.func.count()).where(Job.state.in_(ACTIVE_STATES)).group_by(Job.state)
        ).all()
    )
    counts["failed"] = db.session.scalar(
        sa.select(sa.func.count()).where(
            Job.state == "failed", Job.finished_at >= utcnow() - timedelta(days=1)
        )
    )
    return {state: counts.get(state, 0) for state in ("queued", "running", "failed")}


def last_finished(kind: str) -> Job | None:
    stmt = (
        sa.select(Job).where(Job.kind == kind, Job.finished_at.is_not(None)).order_by(Job.finished_at.desc())
    )
    return db.session.scalars(stmt.limit(1)).first()
