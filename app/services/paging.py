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
