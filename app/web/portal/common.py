"""What the portal's views share: the customer in view, nested URLs, the confirmation page."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Customer
from app.services.access import Actor, customer_for
from app.services.errors import NotFound
from app.web import current_actor
from app.web.respond import render


@dataclass
class CustomerView:
    actor: Actor
    customer: Customer

    @property
    def can_manage(self) -> bool:
        return self.actor.is_staff or self.customer.can_self_manage


def customer_view(customer_id: int) -> CustomerView:
    """The customer in the URL, if the signed-in user may see it (404 otherwise)."""
    actor = current_actor()
    return CustomerView(actor, customer_for(actor, customer_id))


def owned(obj, customer_id: int, message: str):
    """Nested URLs are canonical: /customers/1/mailboxes/9 only if mailbox 9 is customer 1's."""
    if obj.customer_id != customer_id:
        raise NotFound(message)
    return obj


def address_from(form) -> str:
    """The address typed as a local part and a domain chosen from the customer's ("" if no local part)."""
    local = form.get("local_part", "").strip()
    return f"{local}@{form.get('domain', '')}" if local else ""


def local_part_errors(errors: dict) -> dict:
    """The service speaks of the address; the form's box for it is the local part."""
    if "address" in errors:
        errors["local_part"] = errors.pop("address")
    return errors


def confirm(
    view: CustomerView,
    *,
    title: str,
    text: str,
    action: str,
    button: str,
    cancel: str,
    fields=None,
    danger=True,
):
    """The page that asks before a change, for browsers without JavaScript (htmx asks with hx-confirm)."""
    return render(
        "portal/confirm.html",
        customer=view.customer,
        title=title,
        text=text,
        action=action,
        fields=fields or {},
        button=button,
        danger=danger,
        cancel=cancel,
    )


__all__ = [
    "CustomerView",
    "customer_view",
    "owned",
    "address_from",
    "local_part_errors",
    "confirm",
]
