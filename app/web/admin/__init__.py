"""The support back office: one module per resource, each adding its routes to `bp`.

Staff only: every view is wrapped in staff_required, so anyone else gets
the same 404 as for a page that does not exist.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__)

# The resources register their routes on bp when imported.
from app.web.admin import (  # noqa: E402, F401
    audit,
    billing,
    capacity,
    customers,
    domains,
    health,
    hold,
    imports,
    jobs,
    list_limits,
    migration_sheet,
    migrations,
    prices,
    recharges,
    users,
)
