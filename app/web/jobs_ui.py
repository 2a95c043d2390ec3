"""The job component (templates/_job.html) for the portal's and the back office's job views.

Each kind of job may add, for its final state, a sentence (`summary`) and an
htmx event the page listens to (`event`): the quota refresh says when the
usage was read and has the mailbox list reload its bars.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models import Job
from app.models.base import utcnow
from app.services import jobs
from app.services.errors import Conflict
from app.web import is_fragment_request, render

STATE_BADGES = {
    "queued": "open",
    "running": "open",
    "done": "active",
    "failed": "rejected",
    "cancelled": "disabled",
}
KIND_LABELS = {
    "quota_refresh": _l("Aggiornamento dello spazio occupato"),
    "billing_charge": _l("Addebito giornaliero dei punti"),
    "send_email": _l("Invio di email"),
    "bulk_import": _l("Importazione da Excel"),
    "bulk_import_part": _l("Importazione da Excel (parte)"),
    "dns_recheck": _l("Verifica DNS dei domini"),
    "migration_copy": _l("Migrazione di una casella dal vecchio provider"),
    "migration_preflight": _l("Verifica di una migrazione dal vecchio provider"),
}
# A queued job nobody took for this long: the component says the workers are stopped or busy.
WAITING_LONG = timedelta(minutes=2)

SUMMARIES: dict[str, Callable[[Job], str]] = {}
FINISHED_EVENTS: dict[str, str] = {}


def summary(kind: str, event: str | None = None):
    """Register what the component says of a finished job of this kind, and the event it sends."""

    def decorate(func):
        SUMMARIES[kind] = func
        if event:
            FINISHED_EVENTS[kind] = event
        return func

    return decorate


def job_urls(job: Job) -> dict:
    """The component's own URL and its cancel URL (None when it cannot be cancelled now), in the area
    the page belongs to: the back office for staff pages and provider-wide jobs, else the portal."""
    from app.jobs import KINDS

    admin = request.blueprint == "admin" or job.customer_id is None
    if admin:
        show = url_for("admin.job", job_id=job.id)
        cancel = url_for("admin.job_cancel", job_id=job.id)
    else:
        show = url_for("portal.job", customer_id=job.customer_id, job_id=job.id)
        cancel = url_for("portal.job_cancel", customer_id=job.customer_id, job_id=job.id)
    spec = KINDS.get(job.kind)
    cancellable = job.state == "queued" or (
        job.state == "running" and spec is not None and spec.cancellable and not job.cancel_requested
    )
    if spec is not None and spec.staff_only and not admin:
        cancellable = False  # staff's job on the customer's behalf: the portal only shows it
    return {"show": show, "cancel": cancel if cancellable else None}


def job_summary(job: Job) -> str:
    func = SUMMARIES.get(job.kind)
    return func(job) if func and not job.active else ""


def waiting_long(job: Job) -> bool:
    return job.state == "queued" and utcnow() - job.created_at > WAITING_LONG


def shown(job: Job) -> dict:
    """What the component shows for a job: a job failed because its worker died is followed by its retry."""
    after = jobs.retried_as(job) if job.state == "failed" else None
    return {"job": after or job, "previous": job if after else None}


def job_reply(job: Job, status: int = 200, **context):
    """The component for an htmx request (with the kind's event once final), else the job's page."""
    ctx = {**shown(job), **context}
    response = render("job.html", "_job.html", status, **ctx)
    final = ctx["job"]
    if is_fragment_request() and not final.active and final.kind in FINISHED_EVENTS:
        response.headers["HX-Trigger"] = FINISHED_EVENTS[final.kind]
    return response


def cancel_reply(actor, job: Job, **context):
    try:
        job = jobs.cancel(actor, job.id)
    except Conflict as e:
        if not is_fragment_request():
            flash(e.message, "error")
            return redirect(job_urls(job)["show"], 303)
        return job_reply(job, 409, notice=e.message, **context)
    if not is_fragment_request():
        flash(_("Annullamento richiesto."), "ok")
        return redirect(job_urls(job)["show"], 303)
    return job_reply(job, **context)
