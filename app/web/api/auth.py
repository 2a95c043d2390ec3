"""Bearer-token authentication for the API: the token is the only credential it accepts.

A browser session cookie never authenticates an API call, which is why the
blueprint can be exempt from CSRF checks.
"""

from __future__ import annotations

from flask import g, jsonify, request
from flask_babel import gettext as _

from app.services import users
from app.services.access import Actor


def _challenge(message: str, error: str | None = None):
    response = jsonify({"error": message})
    response.status_code = 401
    header = "Bearer" if error is None else f'Bearer error="{error}"'
    response.headers["WWW-Authenticate"] = header
    return response


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate():
    """before_request hook: sets g.api_actor, or answers 401."""
    token = bearer_token()
    if token is None:
        return _challenge(_("Autenticazione richiesta: invia l'intestazione Authorization: Bearer <token>."))
    user = users.user_for_token(token)
    if user is None:
        return _challenge(_("Token non valido o revocato."), "invalid_token")
    g.api_actor = Actor.for_user(user, ip=request.remote_addr, via="api")
    # The token's owner is this request's user (so messages come in their language);
    # any session cookie is ignored and the session is not written.
    g._login_user = user
    return None


def actor() -> Actor:
    return g.api_actor
