"""Quota usage in the portal: the bars' helpers, and "Aggiorna spazio occupato" with its polling partial.

The button enqueues the RQ job refresh_quota_usage (one doveadm call reads
every mailbox); the partial then polls until the last refresh's time
changes and renders a final state without hx-trigger, which stops polling.
Without Redis the button says the queue is unreachable; without a worker
the partial stops after POLL_LIMIT and says no reading arrived.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app, flash, request, url_for
from flask_babel import format_decimal, to_user_timezone
from flask_babel import gettext as _
from redis.exceptions import RedisError

from app.models.base import utcnow
from app.services import labels, quota
from app.web.portal.common import back_to, bp, customer_view, fragment_reply, is_fragment_request

MB = 1024 * 1024
POLL_LIMIT = timedelta(minutes=2)
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


@bp.record_once
def _register_globals(state) -> None:
    state.app.jinja_env.globals.update(
        size_label=size_label,
        usage_percent=usage_percent,
        nearly_full=nearly_full,
        reading_time=reading_time,
        clock_time=clock_time,
    )


def usage_context(mailbox_ids: list[int]) -> dict:
    """What the list and the mailbox page need: the readings (one query) and the last refresh."""
    return {"space": quota.usage_for(mailbox_ids), "space_state": quota.refresh_state()}


def _stamp(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _parse(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _refresh_reply(view, **context):
    return fragment_reply(
        "portal/_usage_refresh.html",
        customer=view.customer,
        space_state=context.pop("space_state", None) or quota.refresh_state(),
        **context,
    )


@bp.route("/customers/<int:customer_id>/mailboxes/usage/refresh", methods=["POST"])
def usage_refresh(customer_id: int):
    view = customer_view(customer_id)
    before = quota.refresh_state()
    try:
        quota.request_refresh()
    except (RedisError, OSError) as e:
        current_app.logger.warning("quota refresh not queued: %s", e)
        message = _(
            "Impossibile avviare l'aggiornamento: la coda dei lavori non è raggiungibile. Riprova più tardi."
        )
        if is_fragment_request():
            return _refresh_reply(view, space_state=before, refresh_error=message)
        flash(message, "error")
        return back_to("portal.mailboxes", customer_id=view.customer.id)
    if not is_fragment_request():
        flash(_("Aggiornamento dello spazio occupato avviato: ricarica la pagina tra qualche istante."), "ok")
        return back_to("portal.mailboxes", customer_id=view.customer.id)
    return _refresh_reply(
        view,
        space_state=before,
        poll_url=url_for(
            "portal.usage_status",
            customer_id=view.customer.id,
            since=_stamp(before.last_attempt_at if before else None),
            requested=_stamp(utcnow()),
        ),
    )


@bp.route("/customers/<int:customer_id>/mailboxes/usage/status")
def usage_status(customer_id: int):
    """The refresh component: polling while the reading has not changed, final once it has."""
    view = customer_view(customer_id)
    state = quota.refresh_state()
    since = _parse(request.args.get("since"))
    requested = _parse(request.args.get("requested"))
    attempt = state.last_attempt_at if state else None
    arrived = attempt is not None and (since is None or attempt > since)
    if arrived:
        # The list reloads (HX-Trigger) so that every bar shows the new reading.
        return fragment_reply(
            "portal/_usage_refresh.html",
            trigger=CHANGED,
            customer=view.customer,
            space_state=state,
            done=True,
        )
    if requested is None or utcnow() - requested > POLL_LIMIT:
        return _refresh_reply(
            view,
            space_state=state,
            refresh_error=_(
                "Nessuna nuova lettura dello spazio occupato: il servizio di aggiornamento non ha risposto. "
                "Riprova più tardi."
            ),
        )
    return _refresh_reply(view, space_state=state, poll_url=request.full_path)
