"""The audit trail: one row per change, in the same transaction as the change."""

from __future__ import annotations

from app.extensions import db
from app.models import AuditEvent
from app.services.access import Actor


def record(
    actor: Actor,
    action: str,
    *,
    customer_id: int | None = None,
    target: str = "",
    changes: dict | None = None,
) -> None:
    db.session.add(
        AuditEvent(
            user_id=actor.user_id,
            actor=actor.label,
            ip=actor.ip,
            via=actor.via,
            customer_id=customer_id,
            action=action,
            target=target[:320],
            changes=changes or {},
        )
    )


def diff(before: dict, after: dict) -> dict:
    """{"field": [old, new]} for the fields that changed."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
