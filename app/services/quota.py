"""Quota usage: every mailbox's usage read from Dovecot in one call, kept in our database.

Why doveadm's HTTP API (docs/mailserver.md): one POST of `quotaGet` with
`allUsers` returns every mailbox's STORAGE and MESSAGE values, over the
network (the panel need not run on the mail host), without a login per
mailbox. The pages read only our table, so they stay fast and keep working
when Dovecot is down; they then say when the last good reading was taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.mailserver.doveadm import Doveadm, DoveadmError
from app.models import Mailbox, MailboxUsage, UsageRefresh
from app.models.base import utcnow

STATE_ID = 1
# Rows per upsert statement: far under SQLite's limit of bound parameters.
CHUNK = 500


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    messages: int
    read_at: datetime


@dataclass(frozen=True)
class RefreshState:
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    mailboxes_read: int
    duration_ms: int

    @property
    def failed(self) -> bool:
        """The latest attempt failed: readings, if any, are those of last_success_at."""
        return self.last_error is not None


@dataclass(frozen=True)
class Reading:
    address: str
    used_bytes: int
    messages: int


def read_dovecot_usage(client: Doveadm) -> list[Reading]:
    """Every mailbox's usage, from doveadm's HTTP API (`doveadm quota get -A`)."""
    return parse_quota_get(client.run("quotaGet", {"allUsers": True}))


def parse_quota_get(rows: list) -> list[Reading]:
    """[{"username", "type": "STORAGE"|"MESSAGE", "value"}, ...], one row per user and kind."""
    found: dict[str, dict[str, int]] = {}
    try:
        for row in rows:
            values = found.setdefault(row["username"].lower(), {})
            # STORAGE comes in KiB (IMAP QUOTA's unit), MESSAGE in messages.
            if row["type"] == "STORAGE":
                values["bytes"] = values.get("bytes", 0) + int(row["value"]) * 1024
            elif row["type"] == "MESSAGE":
                values["messages"] = values.get("messages", 0) + int(row["value"])
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise DoveadmError(f"doveadm gave an unexpected row: {e}") from e
    return [Reading(a, v.get("bytes", 0), v.get("messages", 0)) for a, v in found.items()]


def _upsert(model, rows: list[dict], key: str) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, on SQLite and PostgreSQL alike."""
    if not rows:
        return
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    for start in range(0, len(rows), CHUNK):
        stmt = insert(model).values(rows[start : start + CHUNK])
        stmt = stmt.on_conflict_do_update(
            index_elements=[key], set_={c: stmt.excluded[c] for c in rows[0] if c != key}
        )
        db.session.execute(stmt)


def _record(values: dict) -> None:
    _upsert(UsageRefresh, [{"id": STATE_ID, **values}], "id")


def refresh_usage() -> RefreshState:
    """Read every mailbox's usage from Dovecot and store it; record how it went.

    A Dovecot that cannot be reached is not an exception here: it is recorded
    (last_error) and shown by the pages; the readings of the last good
    refresh stay.
    """
    config = current_app.config
    started = utcnow()
    clock = time.monotonic()
    try:
        readings = read_dovecot_usage(
            Doveadm(config["DOVEADM_URL"], config["DOVEADM_API_KEY"], config["QUOTA_READ_TIMEOUT"])
        )
    except DoveadmError as e:
        _record(
            {
                "last_attempt_at": started,
                "last_error": str(e)[:500],
                "duration_ms": int((time.monotonic() - clock) * 1000),
            }
        )
        db.session.commit()
        current_app.logger.warning("quota refresh failed: %s", e)
        return refresh_state()
    read_at = utcnow()
    ids = dict(db.session.execute(sa.select(Mailbox.address, Mailbox.id)).all())
    rows = [
        {"mailbox_id": ids[r.address], "used_bytes": r.used_bytes, "messages": r.messages, "read_at": read_at}
        for r in readings
        if r.address in ids
    ]
    _upsert(MailboxUsage, rows, "mailbox_id")
    _record(
        {
            "last_attempt_at": started,
            "last_success_at": read_at,
            "last_error": None,
            "mailboxes_read": len(rows),
            "duration_ms": int((time.monotonic() - clock) * 1000),
        }
    )
    db.session.commit()
    return refresh_state()


def refresh_state() -> RefreshState | None:
    """How the last refresh went; None before the first one."""
    row = db.session.execute(sa.select(UsageRefresh).where(UsageRefresh.id == STATE_ID)).scalar_one_or_none()
    if row is None:
        return None
    return RefreshState(
        row.last_attempt_at,
        row.last_success_at,
        row.last_error,
        row.mailboxes_read or 0,
        row.duration_ms or 0,
    )


def usage_for(mailbox_ids: list[int]) -> dict[int, Usage]:
    """The last readings of these mailboxes, in one query (a page of the list)."""
    if not mailbox_ids:
        return {}
    rows = db.session.scalars(sa.select(MailboxUsage).where(MailboxUsage.mailbox_id.in_(mailbox_ids)))
    return {r.mailbox_id: Usage(r.used_bytes, r.messages, r.read_at) for r in rows}


def request_refresh(actor, customer_id: int):
    """A refresh asked from a customer's pages or the API: a `quota_refresh` job, or the one already
    queued or running for that customer. It reads every mailbox (one doveadm call reads them all);
    the job is the customer's so that it sees it. Raises jobs.QueueUnavailable without Redis."""
    from app.services import jobs

    return jobs.enqueue(actor, "quota_refresh", customer_id=customer_id, reuse_active=True)
