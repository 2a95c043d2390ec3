"""The answers a page gives after a form: the change went through, or it was refused.

Every view of the portal, the back office and the account pages answers through here, so
that htmx and a browser without JavaScript always get the same pair of replies:

- done: htmx gets the fragment to swap in (and, if asked, the words of what was done in
  the page's status region); a plain browser gets the words flashed and a 303 to a page.
- failed: both get the form again with its messages and the error's 4xx status, as a
  fragment for htmx or inside its full page (base.html swaps 4xx replies in).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, make_response, render_template, request
from werkzeug.wrappers import Response

from app.services.errors import Conflict, DomainError, ValidationError

# What a form shows beside its fields. NotFound and PermissionDenied are left to the
# app-wide handler: a 404 or 403 page with its message.
FORM_ERRORS = (ValidationError, Conflict)


def is_fragment_request() -> bool:
    """htmx asked for a piece of a page (not a boosted full navigation)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render(page: str, fragment: str | None = None, /, status: int = 200, **context) -> Response:
    """Render the full page, or only its fragment for an htmx request.

    The page template includes the fragment template, so both always agree.
    """
    template = fragment if (fragment and is_fragment_request()) else page
    response = make_response(render_template(template, **context), status)
    response.headers.add("Vary", "HX-Request")
    return response


def fragment(
    template: str | None,
    /,
    status: int = 200,
    *,
    trigger: str | None = None,
    announce: str | None = None,
    **context,
) -> Response:
    """An htmx reply: the template (None: nothing, e.g. where a row was deleted), the events to
    fire (HX-Trigger) and `announce`, the words of what was done, for the status region."""
    body = render_template(template, **context) if template else ""
    if announce:
        # A removed row, or one briefly highlighted, says nothing by itself (base.html).
        body += render_template("_status_oob.html", text=announce, kind="ok")
    response = make_response(body, status)
    response.headers.add("Vary", "HX-Request")
    if trigger:
        response.headers["HX-Trigger"] = trigger
    return response


def see_other(url: str) -> Response:
    """After a POST, the page to load next (303: the browser GETs it)."""
    response = make_response("", 303)
    response.headers["Location"] = url
    response.headers.add("Vary", "HX-Request")
    return response


def go_to(url: str) -> Response:
    """Leave this page for `url`, whole: a 303, or for htmx an HX-Redirect (htmx would
    otherwise swap the next page into the element that asked). A message flashed before
    is shown there."""
    if not is_fragment_request():
        return see_other(url)
    response = fragment(None)
    response.headers["HX-Redirect"] = url
    return response


def done(
    message: str,
    redirect_to: str,
    fragment_template: str | None = None,
    context: Callable[[], dict] | None = None,
    *,
    announce: bool = False,
    trigger: str | None = None,
    navigate: bool = False,
) -> Response:
    """The change went through.

    htmx: `fragment_template` rendered with `context()` (built only here: a plain browser
    does not need it), `trigger` as HX-Trigger, and with `announce` the message in the
    page's status region; the fragment itself may show the message (pass it in context).
    With `navigate`, htmx too leaves for `redirect_to` (HX-Redirect) and finds the message
    there, for a change after which the current page no longer makes sense.
    A plain browser: the message flashed and a 303 to `redirect_to`.
    """
    if navigate or not is_fragment_request():
        flash(message, "ok")
        return go_to(redirect_to)
    return fragment(
        fragment_template,
        trigger=trigger,
        announce=message if announce else None,
        **(context() if context else {}),
    )


def failed(error: DomainError, page: str, fragment_template: str | None = None, /, **context) -> Response:
    """The service refused: the form again, with what the context says about it, and the
    error's own status (422 for bad fields, 409 for a clash with what exists)."""
    return render(page, fragment_template, status=error.status, **context)


def field_errors(error: DomainError, default_field: str = "_form") -> dict[str, str]:
    """The refusal as {field: message}; a message that names no field goes on `default_field`."""
    if isinstance(error, ValidationError):
        return dict(error.errors)
    if isinstance(error, Conflict) and error.field:
        return {error.field: error.message}
    return {default_field: error.message}


def error_text(error: DomainError) -> str:
    """The refusal in one line, for a notice above a table rather than beside a field."""
    return "; ".join(field_errors(error).values())
