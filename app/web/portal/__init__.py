"""The customer portal: one module per resource, each adding its routes to `bp`.

Every page is for a signed-in user; which customer they may see is checked per view
(common.customer_view), so another customer's URL is a 404.
"""

from __future__ import annotations

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("portal", __name__)


@bp.before_request
@login_required
def _signed_in():
    return None


# The resources register their routes on bp when imported.
from app.web.portal import (  # noqa: E402, F401
    aliases,
    capacity,
    dashboard,
    domains,
    help_pages,
    imports,
    jobs,
    lists,
    mailboxes,
    migrations,
    quota,
    recharge,
    wallet,
)
