"""RQ entry points: thin functions that take ids, run in the app's context, and call services.

A job with a row in the `jobs` table (progress, outcome, retry) is a body
decorated with @job(kind): RQ calls it with the row's id, and `_run` marks
the row running, runs the body with a JobContext, and marks it done, failed
or cancelled. The rules of that life are in app/services/jobs.py.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, current_app, has_app_context
from flask_babel import gettext as _
from rq import get_current_job

# In the order a worker serves them: a charge never waits behind an import or a migration
# that is waiting too (a job already running is not interrupted: run billing workers apart).
QUEUES = ("billing", "default", "dns", "bulk", "migration")
DEFAULT_QUEUE = "default"
CRON_LAST_TICK_KEY = "panel:cron:last_tick"

log = logging.getLogger(__name__)
_app: Flask | None = None


def get_app() -> Flask:
    """The app of this worker process, created once (worker.py creates it before forking)."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def use_app(app: Flask | None) -> None:
    """Run jobs of this process in the given app (a test's app, for instance)."""
    global _app
    _app = app


def in_app_context(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with get_app().app_context():
            return func(*args, **kwargs)

    return wrapper


# Jobs with a row.


@dataclass(frozen=True)
class Kind:
    name: str
    entry: str  # the RQ function, by its dotted name
    queue: str
    timeout: int
    cancellable: bool  # the body checks for a cancel between steps
    # Changes the customer's accounts: only who may change them may cancel it (a read-only
    # customer admin may not stop an import support runs for it).
    manages: bool = False
    # Called with the row when the job is cancelled before any worker took it.
    on_cancel: Callable | None = None
    # Run by staff for a customer (a migration): only staff may cancel it, the customer only sees it.
    staff_only: bool = False


KINDS: dict[str, Kind] = {}


def kind_spec(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}") from None


class JobContext:
    """What a job's body sees of its row: progress, and whether to stop."""

    def __init__(self, row):
        from app.services.access import Actor

        self.job_id = row.id
        self.customer_id = row.customer_id
        self.attempt = row.attempt
        self.actor = Actor(row.requested_by_id, row.requested_by, "system", row.customer_id, None, "job")
        self.stopped = False

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        from app.services import jobs

        jobs.progress(self.job_id, done, total, message)

    def should_stop(self) -> bool:
        """True once a cancel was asked: the body returns, and the job ends cancelled."""
        from app.services import jobs

        self.stopped = self.stopped or jobs.cancel_requested(self.job_id)
        return self.stopped

    def raise_if_cancelled(self) -> None:
        from app.services.jobs import JobCancelled

        if self.should_stop():
            raise JobCancelled


def job(
    kind: str,
    *,
    queue: str = DEFAULT_QUEUE,
    timeout: int = 30 * 60,
    cancellable: bool = True,
    manages: bool = False,
    on_cancel: Callable | None = None,
    staff_only: bool = False,
):
    """Register body(ctx, *args) as the job `kind`; the decorated name is what RQ calls with the row id."""

    def decorate(body):
        @functools.wraps(body)
        def entry(job_id: int):
            return _run(job_id, body)

        KINDS[kind] = Kind(
            kind,
            f"{body.__module__}.{body.__qualname__}",
            queue,
            timeout,
            cancellable,
            manages,
            on_cancel,
            staff_only,
        )
        return entry

    return decorate


class _Heartbeat(threading.Thread):
    """Writes the row's heartbeat while the body runs: it stops when this process dies, which is the point."""

    def __init__(self, app: Flask, job_id: int):
        super().__init__(daemon=True, name=f"job-{job_id}-heartbeat")
        self.app, self.job_id = app, job_id
        self.interval = app.config["JOB_HEARTBEAT_SECONDS"]
        self.stopping = threading.Event()

    def run(self) -> None:
        from app.services import jobs

        while not self.stopping.wait(self.interval):
            with self.app.app_context():
                try:
                    jobs.beat(self.job_id)
                except Exception as e:  # a busy database: the next beat may pass
                    log.warning("job %s heartbeat not written: %s", self.job_id, e)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


def _run(job_id: int, body):
    from app.extensions import db
    from app.services import jobs
    from app.services.errors import DomainError

    # A worker's app; or the app already in use (a job run inline, a test's in-process worker).
    app = current_app._get_current_object() if has_app_context() else get_app()
    with app.app_context():
        row = jobs.start(job_id)
        if row is None:
            return None  # cancelled while queued, or settled by the sweep
        ctx = JobContext(row)
        args = list(row.args)
        beating = _Heartbeat(app, job_id)
        beating.start()
        try:
            result = body(ctx, *args)
        except jobs.JobCancelled:
            db.session.rollback()
            jobs.mark_cancelled(job_id)
            return None
        except jobs.JobLost:
            db.session.rollback()
            return None
        except DomainError as e:
            db.session.rollback()
            log.warning("job %s failed: %s", job_id, e.message)
            jobs.fail(job_id, e.message)
            return None
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", job_id)
            jobs.fail(
                job_id,
                _("Non riuscito per un errore imprevisto: il supporto tecnico può vederne i dettagli."),
            )
            raise  # RQ keeps the traceback (its failed registry), the row a message for people
        finally:
            beating.stop()
        if ctx.stopped:
            jobs.mark_cancelled(job_id)
        else:
            jobs.finish(job_id, result)
        return result


@job("quota_refresh", timeout=30 * 60, cancellable=False)
def refresh_quota_usage(ctx: JobContext) -> dict:
    """Read every mailbox's usage from Dovecot: one doveadm call (scheduled, and on demand)."""
    from app.services import quota
    from app.services.jobs import JobFailed

    state = quota.refresh_usage()
    if state.failed:
        raise JobFailed(_("Lettura dello spazio non riuscita: server di posta non raggiungibile."))
    return {"mailboxes_read": state.mailboxes_read}


@job("dns_recheck", queue="dns", timeout=2 * 60 * 60)
def recheck_domains(ctx: JobContext) -> dict:
    """Re-check every domain whose DNS check is due (app/services/domain_checks.py)."""
    from app.services import domain_checks

    return domain_checks.recheck_due(progress=ctx.progress, should_stop=ctx.should_stop)


@job("send_email", queue="default", timeout=10 * 60, cancellable=False)
def send_email(ctx: JobContext, *outbox_ids: int) -> dict:
    """Mails of the outbox (app/services/outbox.py), sent from here so that no page waits for the relay."""
    from app.services import outbox
    from app.services.jobs import JobFailed

    done = outbox.send_pending(limit=max(len(outbox_ids), 1), ids=outbox_ids)
    if done.retrying or done.failed:
        raise JobFailed(
            _(
                "Email non inviata: il server di posta in uscita non l'ha accettata. "
                "Resta nella coda d'uscita con il motivo; i nuovi tentativi sono automatici, se possibili."
            )
        )
    return {"sent": done.sent}


@job("billing_charge", queue="billing", timeout=2 * 60 * 60, cancellable=False)
def charge_days(ctx: JobContext) -> dict:
    """The Pay-per-Use daily charge: every day not yet charged up to yesterday (a no-op when none is)."""
    from app.services import billing

    run = billing.charge_and_review(progress=ctx.progress, label="job")
    return {"days": run.days, "charged": run.charged, "skipped": run.skipped}


# Plain RQ functions for the cron (no row: housekeeping).


def _import_cancelled(row) -> None:
    from app.services import imports

    imports.cancelled_before_start(row.args[0])


@job("bulk_import", queue="bulk", timeout=12 * 60 * 60, manages=True, on_cancel=_import_cancelled)
def bulk_import(ctx: JobContext, import_id: int) -> dict:
    """Create what a previewed spreadsheet import asks for (app/services/imports.py)."""
    from app.services import imports

    return imports.run_apply(ctx, import_id)


@job("bulk_import_part", queue="bulk", timeout=12 * 60 * 60, cancellable=False, manages=True)
def bulk_import_part(ctx: JobContext, import_id: int) -> dict:
    """Hash and create an import's mailboxes beside its bulk_import job."""
    from app.services import imports

    return imports.run_part(ctx, import_id)


@in_app_context
def heartbeat() -> str:
    """Record when the cron last ticked, for the health page."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    # The job's own connection: the cron, the workers and the panel share that Redis.
    get_current_job().connection.set(CRON_LAST_TICK_KEY, stamp)
    return stamp


@in_app_context
def schedule_quota_refresh() -> int:
    """The scheduled quota refresh, as a provider-wide job (none added while one is waiting or running)."""
    from app.services import jobs
    from app.services.access import Actor

    return jobs.enqueue(Actor.system("cron", via="job"), "quota_refresh", reuse_active=True).id


@in_app_context
def schedule_dns_checks() -> int | None:
    """Queue the domains' DNS re-check when one is due (none added while one is waiting or running)."""
    from app.services import clock, domain_checks, jobs
    from app.services.access import Actor

    if not domain_checks.due(clock.now(), limit=1):
        return None
    return jobs.enqueue(Actor.system("cron", via="job"), "dns_recheck", reuse_active=True).id


@in_app_context
def dkim_check() -> dict:
    """Domains' DKIM keys: made for active domains without one, pending records looked up (the key
    switches once published), old keys retired, rspamd's Redis in sync (app/services/dkim.py)."""
    from app.services import dkim

    return dkim.run()


@in_app_context
def send_pending_emails() -> int:
    """The outbox's mails that are due (new ones a job did not send, retries): sent, batch after batch."""
    from app.services import outbox

    sent = 0
    for _batch in range(20):  # at most 1,000 a minute; the next tick goes on
        done = outbox.send_pending()
        sent += done.sent
        if done.taken < outbox.BATCH or done.sent < done.taken:
            break  # all sent, or the relay is in trouble: the next tick tries again
    return sent


@in_app_context
def schedule_billing_charge() -> int | None:
    """Queue the daily charge when a Pay-per-Use day is left to charge (and none is queued or running)."""
    from app.services import billing, clock, jobs
    from app.services.access import Actor

    if not billing.first_uncharged_days(clock.yesterday()):
        return None
    return jobs.enqueue(Actor.system("cron", via="job"), "billing_charge", reuse_active=True).id


@in_app_context
def sweep_stale_jobs() -> list[int]:
    """Jobs whose worker died: failed, and retried (app/services/jobs.py)."""
    from app.services import jobs

    return [j.id for j in jobs.sweep_stale_jobs()]


@in_app_context
def expire_imports() -> dict:
    """Wipe the secrets of imports left waiting (previews, generated passwords) past IMPORT_TTL_HOURS."""
    from app.services import imports

    return imports.expire_abandoned()


def _migration_cancelled(row) -> None:
    from app.services.migration import migrations

    migrations.on_job_cancelled(row)


@job(
    "migration_copy",
    queue="migration",
    timeout=24 * 60 * 60,
    on_cancel=_migration_cancelled,
    staff_only=True,
)
def copy_migration(ctx: JobContext, migration_id: int) -> dict:
    """Copy one mailbox from the old provider, one pass (app/services/migration/migrations.py). A copy
    whose old server is busy ends at once, its migration left queued for a later job."""
    from app.services.migration import migrations

    return migrations.run_job(ctx, migration_id)


@job("migration_preflight", queue="migration", timeout=2 * 60 * 60, staff_only=True)
def preflight_migration(ctx: JobContext, migration_id: int) -> dict:
    """Check one migration: both logins and the dry run, its findings stored (app/services/migration/
    migrations.py). Nothing is written on either side."""
    from app.services.migration import migrations

    return migrations.run_preflight(ctx, migration_id)


@in_app_context
def schedule_migration_passes() -> dict:
    """Sync migrations' passes that are due, migrations waiting for a turn on their old server, and the
    end-of-migration mails a domain still owes (app/services/migration/migrations.py)."""
    from app.services.migration import migrations

    return migrations.run_due()
