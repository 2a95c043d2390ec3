from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa

from app.extensions import db


@dataclass
class Page:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(stmt, page: object, per_page: int) -> Page:
    """Two queries whatever the page size: the count and the page.

    Any page past the last is the empty one just after it: the answer stays "nothing more"
    (so a client paging until an empty page stops), its "previous" link leads to the last
    page, and no OFFSET goes past the databases' integer range.
    """
    try:
        page = int(page)
    except (TypeError, ValueError, OverflowError):
        page = 1
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))
    page = min(max(1, page), max(1, math.ceil(total / per_page)) + 1)
    items = list(db.session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).unique())
    return Page(items, total, page, per_page)


# Keyset paging: the cost of a page does not grow with the rows before it.

MAX_KEY_LEN = 320


@dataclass
class KeysetPage:
    """One page in key order; `start` / `before` are the keys the next / previous page are asked with.

    next_key: the first key of the next page (None on the last page); prev_key: the first key of
    this page, the exclusive bound of the previous one (None on the first page).
    total: the rows that match, counted up to `bound`; `more` is True when there are more than that.
    capped: a search read only part of what matches (the page asks for a more precise one).
    """

    items: list
    per_page: int
    next_key: str | None
    prev_key: str | None
    total: int
    more: bool
    capped: bool = False

    @property
    def has_next(self) -> bool:
        return self.next_key is not None

    @property
    def has_prev(self) -> bool:
        return self.prev_key is not None


def page_key(value: object) -> str | None:
    """A key from a URL: None (the first page) unless it is a plausible one (no control characters)."""
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LEN:
        return None
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        return None
    return value


def keyset(fetch, *, start: str | None, before: str | None, per_page: int, key_of) -> tuple:
    """(items, next_key, prev_key) of the page from `start` (inclusive) or ending before `before`.

    fetch(bound, limit) returns rows in key order (a unique key): bound None (from the first row),
    (">=", key) (from key on) or ("<", key) (the rows before key, nearest first, i.e. descending).
    At most two fetches a page (three past the end): a page "before" that reaches the first row is
    the first page (full, with no previous one), however the keys fall; a `start` past the last row
    gives the last page.
    """
    if before is not None and start is None:
        rows = fetch(("<", before), per_page + 1)
        if len(rows) > per_page:
            items = rows[:per_page][::-1]
            after = fetch((">=", before), 1)  # `before` may be no row's key: the next page's own
            return items, key_of(after[0]) if after else None, key_of(items[0])
    elif start is not None:
        rows = fetch((">=", start), per_page + 1)
        if not rows:
            # Past the last row (it was deleted, or a made-up key): the last page instead.
            items, _next, prev_key = keyset(fetch, start=None, before=start, per_page=per_page, key_of=key_of)
            return items, None, prev_key
        items = rows[:per_page]
        next_key = key_of(rows[per_page]) if len(rows) > per_page else None
        return items, next_key, key_of(items[0]) if fetch(("<", start), 1) else None
    rows = fetch(None, per_page + 1)
    items = rows[:per_page]
    return items, key_of(rows[per_page]) if len(rows) > per_page else None, None


def bounded_count(stmt, bound: int) -> tuple[int, bool]:
    """(rows, more): the rows stmt selects counted up to bound; more is True past it. Reads at most bound+1."""
    n = db.session.scalar(
        sa.select(sa.func.count()).select_from(stmt.order_by(None).limit(bound + 1).subquery())
    )
    return min(n, bound), n > bound
