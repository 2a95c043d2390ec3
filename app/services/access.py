"""Who acts, and what they may touch. Tenant scoping lives here, nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from flask_babel import gettext as _

from app.extensions import db
from app.models import Customer, User
from app.services import fields
from app.services.errors import NotFound, PermissionDenied

M = TypeVar("M")


@dataclass(frozen=True)
class Actor:
    """The author of a change, as the audit trail records it."""

    user_id: int | None
    label: str
    role: str  # staff | customer_admin | system
    customer_id: int | None = None
    ip: str | None = None
    via: str = "web"  # web | api | cli | job

    @classmethod
    def for_user(cls, user: User, ip: str | None = None, via: str = "web") -> Actor:
        return cls(user.id, user.email, user.role, user.customer_id, ip, via)

    @classmethod
    def system(cls, label: str = "system", via: str = "cli") -> Actor:
        return cls(None, label, "system", None, None, via)

    @property
    def is_staff(self) -> bool:
        return self.role in {"staff", "system"}


def can_see(actor: Actor, customer_id: int | None) -> bool:
    return actor.is_staff or (customer_id is not None and actor.customer_id == customer_id)


def customer_for(actor: Actor, customer_id: object) -> Customer:
    """The customer, if the actor may see it; NotFound otherwise (never 403: no probing)."""
    cid = fields.row_id(customer_id)
    customer = db.session.get(Customer, cid) if cid is not None and can_see(actor, cid) else None
    if customer is None:
        raise NotFound(_("Cliente non trovato."))
    return customer


def scoped(actor: Actor, obj, message: str):
    """Return obj if it exists and belongs to a customer the actor may see."""
    if obj is None or not can_see(actor, obj.customer_id):
        raise NotFound(message)
    return obj


def get_scoped(actor: Actor, model: type[M], row_id: object, not_found_message: str) -> M:
    """The row of model with this id, if it belongs to a customer the actor may see.

    An id that cannot name a row (a word, a number past the database's integer range)
    is refused like one that matches nothing: NotFound with the message, never a 500.
    """
    rid = fields.row_id(row_id)
    return scoped(actor, db.session.get(model, rid) if rid is not None else None, not_found_message)


def require_staff(actor: Actor) -> None:
    if not actor.is_staff:
        raise PermissionDenied(_("Operazione riservata al supporto tecnico."))


def require_manage(actor: Actor, customer: Customer) -> None:
    """Contract customers change their accounts only when self-administration is on."""
    if actor.is_staff:
        return
    if not customer.can_self_manage:
        raise PermissionDenied(
            _(
                "L'amministrazione autonoma non è abilitata per il tuo contratto: "
                "chiedi al supporto tecnico di abilitarla o di fare la modifica per te."
            )
        )
