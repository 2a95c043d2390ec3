"""Signing in and out, and the signed-in user's own account page."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__)

# The pages register their routes on bp when imported.
from app.web.auth import account, login  # noqa: E402, F401
