"""The audit trail: one row per change, in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent
from app.services.access import Actor, require_staff
from app.services.paging import Page, paginate


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


def search_events(
    actor: Actor,
    *,
    customer_id: int | None = None,
    action: str = "",
    actor_text: str = "",
    target_text: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    page: object = 1,
    per_page: int = 50,
) -> Page:
    """The trail, newest first; since/until are aware datetimes (until exclusive)."""
    require_staff(actor)
    stmt = sa.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if customer_id is not None:
        stmt = stmt.where(AuditEvent.customer_id == customer_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if actor_text:
        stmt = stmt.where(sa.func.lower(AuditEvent.actor).contains(actor_text.lower(), autoescape=True))
    if target_text:
        stmt = stmt.where(sa.func.lower(AuditEvent.target).contains(target_text.lower(), autoescape=True))
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    return paginate(stmt, page, per_page)


def actions_present(actor: Actor) -> list[str]:
    require_staff(actor)
    return list(db.session.scalars(sa.select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def added_by(actor: Actor, domains: list) -> dict[int, str]:
    """{domain id: who added it}, from the trail (the latest 'domain.create' of its name for its customer)."""
    require_staff(actor)
    by_name = {d.name: d for d in domains}
    if not by_name:
        return {}
    rows = db.session.execute(
        sa.select(AuditEvent.target, AuditEvent.customer_id, AuditEvent.actor)
        .where(AuditEvent.action == "domain.create", AuditEvent.target.in_(by_name))
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    added: dict[int, str] = {}
    for target, customer_id, who in rows:
        domain = by_name[target]
        if customer_id == domain.customer_id:
            added[domain.id] = who
    return added
