"""Imports in the back office: staff run a customer's spreadsheet import on its behalf.

The pages and their rules are the portal's (app/web/portal/imports.py); here they carry the
back office's links, for staff only.
"""

from __future__ import annotations

from flask import request
from flask_login import current_user

from app.web import accepts_upload, staff_required
from app.web.admin import bp
from app.web.portal import imports as pages

BASE = "/customers/<int:customer_id>/imports"
ONE = BASE + "/<int:import_id>"


@bp.route(BASE, methods=["GET", "POST"], endpoint="imports")
@staff_required
@accepts_upload(
    "IMPORT_MAX_BYTES", lambda: pages.too_large("admin") if getattr(current_user, "is_staff", False) else None
)
def imports_page(customer_id: int):
    if request.method == "GET":
        return pages.list_page("admin", customer_id)
    return pages.upload("admin", customer_id)


@bp.route(BASE + "/modello.xlsx", endpoint="import_template")
@staff_required
def import_template(customer_id: int):
    return pages.template_download(customer_id)


@bp.route(ONE, endpoint="import_detail")
@staff_required
def import_detail(customer_id: int, import_id: int):
    return pages.detail("admin", customer_id, import_id)


@bp.route(ONE + "/rows", endpoint="import_rows")
@staff_required
def import_rows(customer_id: int, import_id: int):
    return pages.rows("admin", customer_id, import_id)


@bp.route(ONE + "/problems", endpoint="import_problems")
@staff_required
def import_problems(customer_id: int, import_id: int):
    return pages.problems("admin", customer_id, import_id)


@bp.route(ONE + "/apply", methods=["POST"], endpoint="import_apply")
@staff_required
def import_apply(customer_id: int, import_id: int):
    return pages.apply("admin", customer_id, import_id)


@bp.route(ONE + "/resume", methods=["POST"], endpoint="import_resume")
@staff_required
def import_resume(customer_id: int, import_id: int):
    return pages.resume("admin", customer_id, import_id)


@bp.route(ONE + "/resoconto.xlsx", endpoint="import_report")
@staff_required
def import_report(customer_id: int, import_id: int):
    return pages.report(customer_id, import_id)


@bp.route(ONE + "/passwords", methods=["POST"], endpoint="import_passwords")
@staff_required
def import_passwords(customer_id: int, import_id: int):
    return pages.passwords("admin", customer_id, import_id)
