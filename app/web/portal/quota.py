"""Quota usage in the portal: the bars' helpers, and "Aggiorna spazio occupato".

The button starts a `quota_refresh` job (one doveadm call reads every
mailbox), shown by the job component (templates/_job.html), which polls
itself until the job ends; then the mailbox list and this line reload
(the `mailboxes-changed` event). Without Redis the button says so.
"""

from __future__ import annotations

from datetime import datetime

from flask import flash, url_for
from flask_babel import format_decimal, to_user_timezone
from flask_babel import gettext as _

from app.models.base import utcnow
from app.services import jobs, labels, quota
from app.web import jobs_ui
from app.web.portal import bp
from app.web.portal.common import customer_view
from app.web.respond import done, fragment, go_to, is_fragment_request

MB = 1024 * 1024
CHANGED = "mailboxes-changed"


def size_label(used_bytes: int) -> str:
    """ "50 KB", "3,4 MB", "1.234 MB": MB like the classes' sizes ("Business Mail 1.000 MB")."""
    if used_bytes < MB:
        return _("%(n)s KB", n=format_decimal(-(-used_bytes // 1024), format="#,##0"))
    mb = used_bytes / MB
    return _("%(n)s MB", n=format_decimal(mb, format="#,##0.0" if mb < 10 else "#,##0"))


def usage_percent(used_bytes: int, quota_mb: int) -> int:
    limit = quota_mb * MB
    return round(used_bytes * 100 / limit) if limit else 0


def nearly_full(used_bytes: int, quota_mb: int) -> bool:
    """Over 90% of the class's size: the bar turns red."""
    return used_bytes * 10 > quota_mb * MB * 9


def reading_time(moment: datetime | None) -> str:
    """ "aggiornato alle 10:42" today, "aggiornato il 27/11/2026 alle 10:42" before."""
    if moment is None:
        return ""
    local = to_user_timezone(moment)
    time = labels.when(moment, "time")
    if local.date() == to_user_timezone(utcnow()).date():
        return _("aggiornato alle %(t)s", t=time)
    return _("aggiornato il %(d)s alle %(t)s", d=labels.when(moment, "date"), t=time)


def clock_time(moment: datetime | None) -> str:
    """ "10:42" today, "27/11/2026 10:42" before: for sentences that say what happened."""
    if moment is None:
        return ""
    if to_user_timezone(moment).date() == to_user_timezone(utcnow()).date():
        return labels.when(moment, "time")
    return labels.when(moment)


def usage_context(mailbox_ids: list[int]) -> dict:
    """What the list and the mailbox page need: the readings (one query) and the last refresh."""
    return {"space": quota.usage_for(mailbox_ids), "space_state": quota.refresh_state()}


@jobs_ui.summary("quota_refresh", event=CHANGED)
def _refresh_summary(job) -> str:
    if job.state != "done":
        return ""
    return _("Spazio occupato %(when)s.", when=reading_time(job.finished_at))


def _refresh_reply(view, **context):
    return fragment(
        "portal/_usage_refresh.html", customer=view.customer, space_state=quota.refresh_state(), **context
    )


@bp.route("/customers/<int:customer_id>/mailboxes/usage/refresh", methods=["POST"])
def usage_refresh(customer_id: int):
    view = customer_view(customer_id)
    mailboxes_url = url_for("portal.mailboxes", customer_id=view.customer.id)
    try:
        quota.request_refresh(view.actor, view.customer.id)
    except jobs.QueueUnavailable as e:
        if is_fragment_request():
            return _refresh_reply(view, refresh_error=e.message)
        flash(e.message, "error")
        return go_to(mailboxes_url)
    return done(
        _("Aggiornamento dello spazio occupato avviato: ricarica la pagina tra qualche istante."),
        mailboxes_url,
        "portal/_usage_refresh.html",
        lambda: {"customer": view.customer, "space_state": quota.refresh_state()},
    )


@bp.route("/customers/<int:customer_id>/mailboxes/usage/status")
def usage_status(customer_id: int):
    """The refresh line: the last reading, and the refresh job while one is queued or running."""
    return _refresh_reply(customer_view(customer_id))
