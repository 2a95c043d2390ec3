"""Capacity requests: a contract customer asks for more accounts; support approves or rejects."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import Allowance, CapacityRequest
from app.models.base import utcnow
from app.services import audit, classes, fields, limits
from app.services.access import Actor, customer_for, require_staff, scoped
from app.services.errors import Conflict, ValidationError


def request_capacity(
    actor: Actor, customer_id: int, *, service_class: object, extra_accounts: object = 1, note: object = ""
) -> CapacityRequest:
    customer = customer_for(actor, customer_id)
    errors: dict[str, str] = {}
    try:
        cls = classes.resolve(service_class)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        extra = fields.integer(extra_accounts, "extra_accounts", minimum=1, maximum=10_000)
    except ValidationError as e:
        errors.update(e.errors)
    try:
        text = fields.text(note, "note", max_len=1000, required=False)
    except ValidationError as e:
        errors.update(e.errors)
    if errors:
        raise ValidationError(errors)
    if customer.plan != "contract":
        raise Conflict(_("Le richieste di capacità riguardano solo i contratti a canone."))
    req = CapacityRequest(
        customer_id=customer.id,
        service_class_id=cls.id,
        extra_accounts=extra,
        note=text,
        requested_by_id=actor.user_id,
    )
    db.session.add(req)
    db.session.flush()
    audit.record(
        actor,
        "capacity.request",
        customer_id=customer.id,
        target=cls.name,
        changes={"extra_accounts": [None, extra], "note": [None, text]},
    )
    db.session.commit()
    return req


def get_request(actor: Actor, request_id: object) -> CapacityRequest:
    try:
        req = db.session.get(CapacityRequest, int(request_id))
    except (TypeError, ValueError):
        req = None
    return scoped(actor, req, _("Richiesta non trovata."))


def list_requests(
    actor: Actor, *, customer_id: int | None = None, status: str | None = None
) -> list[CapacityRequest]:
    stmt = sa.select(CapacityRequest).order_by(CapacityRequest.created_at.desc(), CapacityRequest.id.desc())
    if customer_id is not None:
        customer = customer_for(actor, customer_id)
        stmt = stmt.where(CapacityRequest.customer_id == customer.id)
    else:
        require_staff(actor)
    if status:
        stmt = stmt.where(CapacityRequest.status == status)
    return list(db.session.scalars(stmt.options(sa.orm.joinedload(CapacityRequest.customer))))


def decide(actor: Actor, request_id: object, *, approve: bool) -> CapacityRequest:
    """Approve (raise the allowance by the requested amount) or reject an open request."""
    # Scope first: someone else's request is a 404 for a customer, as everywhere.
    req = get_request(actor, request_id)
    require_staff(actor)
    limits.lock_customer(req.customer_id)
    db.session.refresh(req)
    if req.status != "open":
        raise Conflict(_("Questa richiesta è già stata gestita."))
    changes: dict = {"status": ["open", "approved" if approve else "rejected"]}
    if approve:
        allowance = db.session.scalar(
            sa.select(Allowance).where(
                Allowance.customer_id == req.customer_id, Allowance.service_class_id == req.service_class_id
            )
        )
        before = allowance.max_accounts if allowance else 0
        if allowance is None:
            allowance = Allowance(
                customer_id=req.customer_id, service_class_id=req.service_class_id, max_accounts=0
            )
            db.session.add(allowance)
        allowance.max_accounts = before + req.extra_accounts
        changes[req.service_class.name] = [before, allowance.max_accounts]
    req.status = "approved" if approve else "rejected"
    req.decided_by_id = actor.user_id
    req.decided_at = utcnow()
    audit.record(
        actor,
        "capacity.approve" if approve else "capacity.reject",
        customer_id=req.customer_id,
        target=req.service_class.name,
        changes=changes,
    )
    db.session.commit()
    return req
