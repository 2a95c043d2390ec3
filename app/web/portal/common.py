"""The portal blueprint and what its views share: the customer in view, form errors, htmx replies."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, make_response, redirect, render_template, url_for
from flask_login import login_required

from app.models import Customer
from app.services.access import Actor, customer_for
from app.services.errors import Conflict, ValidationError
from app.web import current_actor, is_fragment_request

bp = Blueprint("portal", __name__)


def has_endpoint(name: str) -> bool:
    """Lets shared templates link to pages that may not be installed in every build."""
    return name in current_app.view_functions


def url_if(name: str, **values) -> str | None:
    return url_for(name, **values) if has_endpoint(name) else None


@bp.record_once
def _register_globals(state) -> None:
    state.app.jinja_env.globals.update(has_endpoint=has_endpoint, url_if=url_if)


@bp.before_request
@login_required
def _signed_in():
    return None


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
    from app.services.errors import NotFound

    if obj.customer_id != customer_id:
        raise NotFound(message)
    return obj


def field_errors(error: Exception) -> dict[str, str]:
    if isinstance(error, ValidationError):
        return dict(error.errors)
    if isinstance(error, Conflict):
        return {error.field or "_form": error.message}
    return {"_form": str(error)}


def fragment_reply(
    template: str, status: int = 200, trigger: str | None = None, announce: str | None = None, **context
):
    """An htmx fragment; `announce` says in words what was done (see `announced`)."""
    response = make_response(render_template(template, **context), status)
    response.headers.add("Vary", "HX-Request")
    if trigger:
        response.headers["HX-Trigger"] = trigger
    return announced(response, announce)


def empty_reply(trigger: str | None = None, announce: str | None = None):
    """Nothing to swap in where the request came from (a deleted row), but maybe words to show."""
    response = make_response("", 200)
    response.headers.add("Vary", "HX-Request")
    if trigger:
        response.headers["HX-Trigger"] = trigger
    return announced(response, announce)


def announced(response, text: str | None, kind: str = "ok"):
    """Adds to an htmx reply what the action did, in words, for the page's status region (base.html):
    a removed row or a briefly highlighted one says nothing by itself."""
    if text:
        oob = render_template("_status_oob.html", text=text, kind=kind)
        response.set_data(response.get_data() + oob.encode())
    return response


def back_to(endpoint: str, **values):
    response = redirect(url_for(endpoint, **values), 303)
    response.headers.add("Vary", "HX-Request")
    return response


__all__ = [
    "bp",
    "CustomerView",
    "customer_view",
    "owned",
    "field_errors",
    "fragment_reply",
    "empty_reply",
    "announced",
    "back_to",
    "is_fragment_request",
]
