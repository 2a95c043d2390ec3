"""Capacity requests: a contract customer asks for more accounts of a class; support decides.

One open request per customer and class: asking again revises it (the
number and the reason), so staff never see the same need twice. Staff
approve (possibly a different number, which is what the allowance grows
by) or reject with a reason; the customer reads the outcome on the
requests page and by email.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import Allowance, CapacityRequest
from app.models.base import utcnow
from app.services import audit, classes, fields, limits, notify
from app.services.access import Actor, customer_for, get_scoped, require_staff
from app.services.errors import Conflict, FieldErrors

MAX_ACCOUNTS = 10_000
MAX_NOTE = 1000
# Sales hear of a revised request at most this often (a new one always).
REVISION_MAIL_GAP = timedelta(minutes=10)


@dataclass(frozen=True)
class Asked:
    request: CapacityRequest
    created: bool  # False: an open request for the class was revised


def _reason(value: object, field: str, *, required: bool) -> str:
    """A reason as people type it in a text area: line breaks kept, other control characters refused."""
    if isinstance(value, str):
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        fields.text(value.replace("\n", " "), field, max_len=MAX_NOTE, required=required)
        return "\n".join(line.rstrip() for line in value.strip().split("\n"))
    return fields.text(value, field, max_len=MAX_NOTE, required=required)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read(service_class: object, extra_accounts: object, note: object):
    """The validation step of a request: every bad field at once, nothing read but the catalogue."""
    problems = FieldErrors()
    cls = problems.collect(classes.resolve, service_class)
    extra = problems.collect(
        fields.integer, extra_accounts, "extra_accounts", minimum=1, maximum=MAX_ACCOUNTS
    )
    if _blank(note):
        problems.add("note", _("Scrivi perché ti servono: il commerciale decide anche in base al motivo."))
    text = problems.collect(_reason, note, "note", required=True)
    problems.raise_if_any()
    return cls, extra, text


def request_capacity(
    actor: Actor, customer_id: int, *, service_class: object, extra_accounts: object, note: object
) -> Asked:
    """Ask for extra_accounts more of a class, saying why; revises the open request for that class if any."""
    customer = customer_for(actor, customer_id)
    cls, extra, text = _read(service_class, extra_accounts, note)
    if customer.plan != "contract":
        raise Conflict(_("Le richieste al commerciale riguardano solo i contratti a canone."))
    # Serialises two requests for the same class, so the second finds the first and revises it.
    limits.lock_customer(customer.id)
    req = db.session.scalar(
        sa.select(CapacityRequest).where(
            CapacityRequest.customer_id == customer.id,
            CapacityRequest.service_class_id == cls.id,
            CapacityRequest.status == "open",
        )
    )
    if req is None:
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
        created = tell_sales = True
    else:
        changes = audit.diff(
            {"extra_accounts": req.extra_accounts, "note": req.note}, {"extra_accounts": extra, "note": text}
        )
        tell_sales = False
        if changes:
            now = utcnow()
            # A customer editing its request over and over must not flood sales' inbox.
            tell_sales = now - (req.updated_at or req.created_at) >= REVISION_MAIL_GAP
            req.extra_accounts, req.note = extra, text
            req.requested_by_id = actor.user_id or req.requested_by_id
            req.updated_at = now
            audit.record(actor, "capacity.revise", customer_id=customer.id, target=cls.name, changes=changes)
        created = False
    db.session.commit()
    if tell_sales:
        notify.capacity_requested(req, created=created)
    return Asked(req, created)


def get_request(actor: Actor, request_id: object) -> CapacityRequest:
    return get_scoped(actor, CapacityRequest, request_id, _("Richiesta non trovata."))


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


def open_by_class(actor: Actor, customer_id: int) -> dict[int, CapacityRequest]:
    """The customer's open requests, by class id (to show "asked: +3" beside a class)."""
    return {r.service_class_id: r for r in list_requests(actor, customer_id=customer_id, status="open")}


def decide(
    actor: Actor,
    request_id: object,
    *,
    approve: bool,
    accounts: object = None,
    reason: object = "",
) -> CapacityRequest:
    """Approve (the allowance grows by `accounts`, by default what was asked) or reject (a reason is required)."""
    # Scope first: someone else's request is a 404 for a customer, as everywhere.
    req = get_request(actor, request_id)
    require_staff(actor)
    if req.status != "open":  # checked again under the lock below
        raise Conflict(_("Questa richiesta è già stata gestita."))
    problems = FieldErrors()
    granted = None
    if approve:
        granted = (
            req.extra_accounts
            if accounts is None or accounts == ""
            else problems.collect(fields.integer, accounts, "accounts", minimum=1, maximum=MAX_ACCOUNTS)
        )
    elif _blank(reason):
        problems.add("reason", _("Scrivi il motivo del rifiuto: il cliente lo leggerà."))
    text = problems.collect(_reason, reason, "reason", required=not approve)
    problems.raise_if_any()
    limits.lock_customer(req.customer_id)
    db.session.refresh(req)
    if req.status != "open":
        raise Conflict(_("Questa richiesta è già stata gestita."))
    status = "approved" if approve else "rejected"
    changes: dict = {"status": ["open", status]}
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
        allowance.max_accounts = before + granted
        changes["granted_accounts"] = [req.extra_accounts, granted]
        changes[req.service_class.name] = [before, allowance.max_accounts]
    if text:
        changes["decision_note"] = [None, text]
    req.status = status
    req.granted_accounts = granted
    req.decision_note = text
    req.decided_by_id = actor.user_id
    req.decided_at = utcnow()
    audit.record(
        actor,
        f"capacity.{'approve' if approve else 'reject'}",
        customer_id=req.customer_id,
        target=req.service_class.name,
        changes=changes,
    )
    db.session.commit()
    notify.capacity_decided(req)
    return req


@dataclass(frozen=True)
class Board:
    """The staff page of requests: open ones with where the customer stands, and decided ones."""

    open: list[CapacityRequest]
    decided: list[CapacityRequest]
    people: dict[int, str]  # user id -> email, of who asked and who decided
    used: dict[tuple[int, int], int]  # (customer id, class id) -> mailboxes now, for the open requests
    allowed: dict[tuple[int, int], int]  # (customer id, class id) -> allowance now, for the open requests


def board(actor: Actor) -> Board:
    """Every request, newest first, in a fixed number of queries however many are open."""
    # Imported here: the functions above are the rules; this is a page's reading of them.
    from app.models import Mailbox
    from app.services import users

    require_staff(actor)
    requests = list(
        db.session.scalars(
            sa.select(CapacityRequest)
            .options(sa.orm.joinedload(CapacityRequest.customer))
            .order_by(CapacityRequest.created_at.desc(), CapacityRequest.id.desc())
        )
    )
    open_ = [r for r in requests if r.status == "open"]
    customer_ids = {r.customer_id for r in open_}
    used: dict[tuple[int, int], int] = {}
    allowed: dict[tuple[int, int], int] = {}
    if customer_ids:
        used = {
            (cid, class_id): n
            for cid, class_id, n in db.session.execute(
                sa.select(Mailbox.customer_id, Mailbox.service_class_id, sa.func.count())
                .where(Mailbox.customer_id.in_(customer_ids))
                .group_by(Mailbox.customer_id, Mailbox.service_class_id)
            )
        }
        allowed = {
            (cid, class_id): n
            for cid, class_id, n in db.session.execute(
                sa.select(Allowance.customer_id, Allowance.service_class_id, Allowance.max_accounts).where(
                    Allowance.customer_id.in_(customer_ids)
                )
            )
        }
    return Board(
        open=open_,
        decided=[r for r in requests if r.status != "open"],
        people=users.emails(i for r in requests for i in (r.requested_by_id, r.decided_by_id)),
        used=used,
        allowed=allowed,
    )
