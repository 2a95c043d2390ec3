"""RQ entry points: thin functions that take ids, run in the app's context, and call services."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from flask import Flask
from rq import get_current_job

QUEUES = ("default",)
CRON_LAST_TICK_KEY = "panel:cron:last_tick"

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


@in_app_context
def heartbeat() -> str:
    """Record when the cron last ticked, for the health page."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    # The job's own connection: the cron, the workers and the panel share that Redis.
    get_current_job().connection.set(CRON_LAST_TICK_KEY, stamp)
    return stamp


@in_app_context
def refresh_quota_usage() -> dict:
    """Read every mailbox's usage from Dovecot (scheduled, and on demand from the mailbox list)."""
    from app.services import quota

    state = quota.refresh_usage()
    # The outcome is in the database (the pages show it); the job's result is for `rq info`.
    return {"mailboxes_read": state.mailboxes_read, "error": state.last_error}
