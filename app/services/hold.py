"""A customer on hold: none of its mailboxes logs in, mail sent to them is still delivered and kept.

The hold is a state of the customer (`customers.on_hold_since`), never written
into its mailboxes: the `mail_users` view refuses login to every mailbox of a
customer on hold whatever the mailbox's own status (docs/mailserver.md), so
lifting the hold restores exactly what was there, and nothing the customer
does to a mailbox (re-activating it, say) lets it log in while the hold lasts.

Billing puts a customer on hold when its credit is exhausted and lifts it when
a recharge brings the balance back above zero; staff can do either from the
back office. Customers cannot.
"""

from __future__ import annotations

from datetime import datetime

from app.extensions import db
from app.models import Customer
from app.models.base import utcnow
from app.services import audit, fields, limits
from app.services.access import Actor, customer_for, require_staff

REASON_MAX = 200


def is_on_hold(customer: Customer) -> bool:
    return customer.on_hold_since is not None


def _allowed(actor: Actor, customer_id: object) -> Customer:
    customer = customer_for(actor, customer_id)  # scope first: another customer's id is a 404
    require_staff(actor)
    return customer


def _lock(customer: Customer) -> None:
    limits.lock_customer(customer.id)
    # Read again under the lock: another process may have just put it on hold or lifted it.
    db.session.refresh(customer, ["on_hold_since", "on_hold_reason"])


def put_on_hold(
    actor: Actor, customer_id: object, reason: object, *, at: datetime | None = None, commit: bool = True
) -> bool:
    """Staff or the system only. True if the customer was put on hold, False if it already was.

    A customer already on hold keeps its first date and reason. With commit=False the
    change is flushed and left to the caller's transaction (billing, with its ledger).
    """
    customer = _allowed(actor, customer_id)
    why = fields.text(reason, "reason", max_len=REASON_MAX)
    _lock(customer)
    if is_on_hold(customer):
        _finish(commit)
        return False
    customer.on_hold_since = at or utcnow()
    customer.on_hold_reason = why
    audit.record(
        actor,
        "customer.hold",
        customer_id=customer.id,
        target=customer.name,
        changes={"on_hold": [False, True], "on_hold_reason": [None, why]},
    )
    _finish(commit)
    return True


def lift_hold(actor: Actor, customer_id: object, *, commit: bool = True) -> bool:
    """Staff or the system only. True if the hold was lifted, False if there was none."""
    customer = _allowed(actor, customer_id)
    _lock(customer)
    if not is_on_hold(customer):
        _finish(commit)
        return False
    since, why = customer.on_hold_since, customer.on_hold_reason
    customer.on_hold_since = None
    customer.on_hold_reason = None
    audit.record(
        actor,
        "customer.hold_lift",
        customer_id=customer.id,
        target=customer.name,
        changes={
            "on_hold": [True, False],
            "on_hold_since": [since.isoformat(), None],
            "on_hold_reason": [why, None],
        },
    )
    _finish(commit)
    return True


def _finish(commit: bool) -> None:
    if commit:
        db.session.commit()
    else:
        db.session.flush()
