"""Job rows in a given state, for the tests of the pages and the API that show them (no worker needed)."""

from __future__ import annotations

from app.extensions import db
from app.models import Job
from app.models.base import utcnow


def job_row(customer_id: int | None, state: str = "running", kind: str = "quota_refresh", **values) -> Job:
    row = Job(
        kind=kind,
        queue="default",
        customer_id=customer_id,
        requested_by="anna@esempio.example",
        args=[],
        state=state,
        done=values.pop("done", 0),
        total=values.pop("total", None),
        message=values.pop("message", ""),
        cancel_requested=False,
        attempt=1,
        created_at=values.pop("created_at", utcnow()),
        **values,
    )
    db.session.add(row)
    db.session.commit()
    return row
