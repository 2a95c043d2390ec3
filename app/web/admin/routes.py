"""The support back office: customers and contracts, capacity requests, audit log, users.

Staff only: every view is wrapped in staff_required, so anyone else gets
the same 404 as for a page that does not exist.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.routing import BuildError

from app.services import catalog, classes, customers, limits, lists, users
from app.services.access import customer_for
from app.services.errors import Conflict, ValidationError
from app.web import current_actor, is_fragment_request, render, staff_required
from app.web.admin import forms

bp = Blueprint("admin", __name__)


def optional_url(endpoint: str, **values) -> str | None:
    # Pages of other areas are linked when that area provides them.
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


@bp.context_processor
def _helpers():
    return {"optional_url": optional_url, "change_lines": forms.change_lines, "readable": forms.readable}


PORTAL_PAGES = (
    ("portal.mailboxes", _l("Caselle")),
    ("portal.aliases", _l("Alias")),
    ("portal.lists", _l("Liste di distribuzione")),
    ("portal.domains", _l("Domini")),
    ("portal.capacity_requests", _l("Richieste al commerciale")),
)


@bp.route("/customers", endpoint="customers")
@staff_required
def customers_list():
    q = request.args.get("q", "").strip()[:200]
    results = customers.search_customers(
        current_actor(), q=q, page=request.args.get("page", 1), per_page=current_app.config["PAGE_SIZE"]
    )
    counts = customers.account_counts([c.id for c in results.items])
    return render("admin/customers.html", "admin/_customers_table.html", q=q, results=results, counts=counts)


@bp.route("/customers/new", methods=["GET", "POST"])
@staff_required
def customer_new():
    values = {"name": "", "vat_number": "", "contact_email": "", "plan": "contract"}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = forms.customer_fields(request.form)
        try:
            customer = customers.create_customer(current_actor(), **values)
        except ValidationError as e:
            errors, status = e.errors, 422
        except Conflict as e:
            errors, status = {e.field or "name": e.message}, 409
        else:
            if customer.plan == "contract":
                message = _("Cliente «%(n)s» creato. Ora imposta il contratto.", n=customer.name)
            else:
                message = _(
                    "Cliente «%(n)s» creato, Pay per Use: ora crea il suo amministratore.", n=customer.name
                )
            flash(message, "ok")
            return redirect(url_for("admin.customer", customer_id=customer.id))
    return render(
        "admin/customer_new.html",
        "admin/_customer_form.html",
        status=status,
        values=values,
        errors=errors,
        customer=None,
        vat_duplicate=status == 409 and "vat_number" in errors,
    )


def _customer_page(customer, status: int = 200, **overrides):
    """The customer page with its three forms; overrides carry one form's submitted values and errors."""
    ctx = {
        "customer": customer,
        "values": {k: getattr(customer, k) or "" for k in ("name", "vat_number", "contact_email", "plan")},
        "errors": {},
        "saved": None,
        "contract": _contract_ctx(customer),
        "admins": users.list_users(current_actor(), customer_id=customer.id),
        "admin_values": {"email": ""},
        "admin_errors": {},
        "admin_saved": None,
        "list_limits": _list_limits_ctx(customer),
        "portal_links": [
            (href, label)
            for endpoint, label in PORTAL_PAGES
            if (customer.plan == "contract" or endpoint != "portal.capacity_requests")
            and (href := optional_url(endpoint, customer_id=customer.id))
        ],
    }
    ctx.update(overrides)
    return ctx, status


LIST_LIMIT_FIELDS = ("list_external_per_list", "list_external_per_customer")


def _list_limits_ctx(customer, submitted=None, errors=None, saved=None) -> dict:
    """External list members in use, the limits in force (own or default) and the form to set them."""
    per_list, per_customer = lists.external_limits(customer)
    values = {k: "" if getattr(customer, k) is None else getattr(customer, k) for k in LIST_LIMIT_FIELDS}
    if submitted is not None:
        values = {k: submitted.get(k, "") for k in LIST_LIMIT_FIELDS}
    return {
        "rows": [
            (
                "list_external_per_list",
                lists.largest_external_list(customer.id),
                per_list,
                current_app.config["LIST_EXTERNAL_PER_LIST"],
            ),
            (
                "list_external_per_customer",
                lists.external_count(customer.id),
                per_customer,
                current_app.config["LIST_EXTERNAL_PER_CUSTOMER"],
            ),
        ],
        "own": {k: getattr(customer, k) is not None for k in LIST_LIMIT_FIELDS},
        "values": values,
        "errors": errors or {},
        "saved": saved,
    }


def _contract_ctx(customer, submitted=None, field_errors=None, general=None, saved=False) -> dict:
    """The contract as a matrix: a column per type of service, a row per mailbox size."""
    all_classes = classes.all_classes()
    current = {a.service_class_id: a.max_accounts for a in customer.allowances}
    types: list[dict] = []
    for c in all_classes:
        if not types or types[-1]["code"] != c.type:
            features = ", ".join(str(catalog.FEATURE_LABELS[f]) for f in c.features)
            types.append({"code": c.type, "name": c.type_name, "features": features})
    sizes = sorted({c.quota_mb for c in all_classes})
    values = {f"{forms.MAX_PREFIX}{c.id}": current.get(c.id, "") for c in all_classes}
    if submitted is not None:
        values.update({k: submitted.get(k, "") for k in values})
        self_service = bool(submitted.get("self_service"))
    else:
        self_service = customer.self_service
    in_force = sorted(customer.allowances, key=lambda a: all_classes.index(a.service_class))
    return {
        "types": types,
        "sizes": [(mb, catalog.format_mb(mb) + " MB") for mb in sizes],
        "cells": {(c.type, c.quota_mb): c for c in all_classes},
        "used": limits.usage_by_class(customer.id),
        "in_force": in_force,
        "values": values,
        "self_service": self_service,
        "errors": field_errors or {},
        "general": general or [],
        "saved": saved,
    }


@bp.route("/customers/<int:customer_id>", methods=["GET", "POST"])
@staff_required
def customer(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    if request.method == "GET":
        ctx, status = _customer_page(record)
        return render("admin/customer.html", None, status, **ctx)
    values = forms.customer_fields(request.form)
    plan_before = record.plan
    try:
        customers.update_customer(actor, record.id, **values)
    except ValidationError as e:
        ctx, status = _customer_page(record, 422, values=values, errors=e.errors)
    except Conflict as e:
        ctx, status = _customer_page(
            record,
            409,
            values=values,
            errors={e.field or "plan": e.message},
            vat_duplicate=e.field == "vat_number",
        )
    else:
        if not is_fragment_request():
            flash(_("Dati del cliente salvati."), "ok")
            return redirect(url_for("admin.customer", customer_id=record.id))
        ctx, status = _customer_page(record, saved=_("Dati del cliente salvati."))
        if record.plan != plan_before:
            # The rest of the page depends on the plan (contract grid or Pay per Use): reload it whole.
            flash(_("Dati del cliente salvati."), "ok")
            response = render("admin/customer.html", "admin/_customer_form.html", status, **ctx)
            response.headers["HX-Refresh"] = "true"
            return response
    return render("admin/customer.html", "admin/_customer_form.html", status, **ctx)


@bp.route("/customers/<int:customer_id>/contract", methods=["POST"])
@staff_required
def customer_contract(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    all_classes = classes.all_classes()
    items, keys = forms.contract_allowances(request.form, all_classes)
    status = 200
    try:
        customers.set_contract(actor, record.id, items, request.form.get("self_service", ""))
    except ValidationError as e:
        by_field, general = forms.contract_errors(e.errors, keys)
        contract, status = _contract_ctx(record, request.form, by_field, general), 422
    except Conflict as e:
        contract, status = _contract_ctx(record, request.form, general=[e.message]), 409
    else:
        if not is_fragment_request():
            flash(_("Contratto salvato."), "ok")
            return redirect(url_for("admin.customer", customer_id=record.id) + "#contract")
        contract = _contract_ctx(record, saved=True)
    ctx, status = _customer_page(record, status, contract=contract)
    return render("admin/customer.html", "admin/_contract.html", status, **ctx)


@bp.route("/customers/<int:customer_id>/admins", methods=["POST"])
@staff_required
def customer_admin_new(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    email = request.form.get("email", "")
    try:
        users.create_user(
            actor,
            email=email,
            password=request.form.get("password", ""),
            role="customer_admin",
            customer_id=record.id,
        )
    except ValidationError as e:
        ctx, status = _customer_page(record, 422, admin_values={"email": email}, admin_errors=e.errors)
    except Conflict as e:
        ctx, status = _customer_page(
            record, 409, admin_values={"email": email}, admin_errors={e.field or "email": e.message}
        )
    else:
        if not is_fragment_request():
            flash(_("Utente %(e)s creato.", e=email.strip().lower()), "ok")
            return redirect(url_for("admin.customer", customer_id=record.id) + "#admins")
        ctx, status = _customer_page(record, admin_saved=_("Utente %(e)s creato.", e=email.strip().lower()))
    return render("admin/customer.html", "admin/_customer_admins.html", status, **ctx)


@bp.route("/customers/<int:customer_id>/list-limits", methods=["POST"])
@staff_required
def customer_list_limits(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    submitted = {k: request.form.get(k, "") for k in LIST_LIMIT_FIELDS}
    try:
        lists.set_external_limits(
            actor,
            record.id,
            per_list=submitted["list_external_per_list"],
            per_customer=submitted["list_external_per_customer"],
        )
    except ValidationError as e:
        ctx, status = _customer_page(record, 422, list_limits=_list_limits_ctx(record, submitted, e.errors))
    else:
        per_list, per_customer = lists.external_limits(record)
        message = _(
            "Limiti delle liste salvati: al massimo %(per_list)s indirizzi esterni per lista "
            "e %(per_customer)s in tutto.",
            per_list=format_decimal(per_list, format="#,##0"),
            per_customer=format_decimal(per_customer, format="#,##0"),
        )
        if not is_fragment_request():
            flash(message, "ok")
            return redirect(url_for("admin.customer", customer_id=record.id) + "#list-limits")
        ctx, status = _customer_page(record, list_limits=_list_limits_ctx(record, saved=message))
    return render("admin/customer.html", "admin/_list_limits.html", status, **ctx)


# The other back-office pages register their routes on bp.
from app.web.admin import audit_views, capacity_views, domain_views, health_views, job_views, users_views  # noqa: E402, F401
