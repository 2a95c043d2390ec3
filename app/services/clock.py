"""The time the billing rules read: the real clock, or one a test sets.

`now()` is an aware UTC datetime; `today()` the calendar day in the provider's
timezone (PROVIDER_TIMEZONE); `day_bounds(day)` that day's [local midnight, next local
midnight) in UTC, 23 or 25 hours long when the clocks change. Tests call `set_now`
(and `reset`) instead of patching datetime.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

_fixed: datetime | None = None


def set_now(at: datetime | None) -> None:
    """Stop the clock at `at` (aware), or let it run again with None."""
    global _fixed
    if at is not None and at.tzinfo is None:
        raise ValueError("naive datetime")
    _fixed = at.astimezone(UTC) if at is not None else None


def reset() -> None:
    set_now(None)


def now() -> datetime:
    return _fixed if _fixed is not None else datetime.now(UTC)


def provider_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["PROVIDER_TIMEZONE"])


def local_day(at: datetime) -> date:
    """The provider's calendar day of an instant."""
    return at.astimezone(provider_tz()).date()


def today() -> date:
    return local_day(now())


def yesterday() -> date:
    return today() - timedelta(days=1)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of the provider's calendar day, in UTC."""
    tz = provider_tz()
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end
