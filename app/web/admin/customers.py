"""A customer in the back office: the list, a new one, and its page (data, contract, administrators, emails).

The customer page holds several forms; each posts on its own and answers with its own
section (htmx) or the whole page (without JavaScript, or with the form's errors).
"""

from __future__ import annotations

from flask import current_app, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.data import catalog
from app.services import classes, customers, domains, limits, lists, outbox, users
from app.services.access import customer_for
from app.services.errors import ValidationError
from app.web import current_actor, staff_required
from app.web.admin import bp, forms
from app.web.respond import FORM_ERRORS, done, failed, field_errors, render

PAGE = "admin/customer.html"
OUTBOX = "admin/_outbox.html"
PORTAL_PAGES = (
    ("portal.mailboxes", _l("Caselle")),
    ("portal.aliases", _l("Alias")),
    ("portal.lists", _l("Liste di distribuzione")),
    ("portal.domains", _l("Domini")),
    ("portal.capacity_requests", _l("Richieste al commerciale")),
)
LIST_LIMIT_FIELDS = ("list_external_per_list", "list_external_per_customer")


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
    if request.method == "GET":
        return render(
            "admin/customer_new.html", "admin/_customer_form.html", values=values, errors={}, customer=None
        )
    values = forms.customer_fields(request.form)
    try:
        customer = customers.create_customer(current_actor(), **values)
    except FORM_ERRORS as e:
        errors = field_errors(e, "name")
        return failed(
            e,
            "admin/customer_new.html",
            "admin/_customer_form.html",
            values=values,
            errors=errors,
            customer=None,
            vat_duplicate=getattr(e, "field", None) == "vat_number",
        )
    if customer.plan == "contract":
        message = _("Cliente «%(n)s» creato. Ora imposta il contratto.", n=customer.name)
    else:
        message = _("Cliente «%(n)s» creato, Pay per Use: ora crea il suo amministratore.", n=customer.name)
    return done(message, url_for("admin.customer", customer_id=customer.id))


def page_context(customer, **overrides) -> dict:
    """The customer page with its forms; overrides carry one form's submitted values and errors."""
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
        "customer_domains": domains.list_domains(current_actor(), customer.id),
        "list_limits": list_limits_context(customer),
        "outbox": outbox.for_customer(current_actor(), customer.id),
        "outbox_limit": outbox.CARD_LIMIT,
        "portal_links": [
            (url_for(endpoint, customer_id=customer.id), label)
            for endpoint, label in PORTAL_PAGES
            if customer.plan == "contract" or endpoint != "portal.capacity_requests"
        ],
    }
    ctx.update(overrides)
    return ctx


def customer_url(customer, section: str = "") -> str:
    return url_for("admin.customer", customer_id=customer.id) + (f"#{section}" if section else "")


def list_limits_context(customer, submitted=None, errors=None, saved=None) -> dict:
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
        return render(PAGE, **page_context(record))
    values = forms.customer_fields(request.form)
    plan_before = record.plan
    try:
        customers.update_customer(actor, record.id, **values)
    except FORM_ERRORS as e:
        errors = field_errors(e, "plan")
        vat_duplicate = getattr(e, "field", None) == "vat_number"
        ctx = page_context(record, values=values, errors=errors, vat_duplicate=vat_duplicate)
        return failed(e, PAGE, "admin/_customer_form.html", **ctx)
    message = _("Dati del cliente salvati.")
    return done(
        message,
        customer_url(record),
        "admin/_customer_form.html",
        lambda: page_context(record, saved=message),
        # The rest of the page depends on the plan (contract grid or Pay per Use): load it whole.
        navigate=record.plan != plan_before,
    )


@bp.route("/customers/<int:customer_id>/contract", methods=["POST"])
@staff_required
def customer_contract(customer_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    all_classes = classes.all_classes()
    items, keys = forms.contract_allowances(request.form, all_classes)
    try:
        customers.set_contract(actor, record.id, items, request.form.get("self_service", ""))
    except FORM_ERRORS as e:
        if isinstance(e, ValidationError):
            by_field, general = forms.contract_errors(e.errors, keys)
            contract = _contract_ctx(record, request.form, by_field, general)
        else:
            contract = _contract_ctx(record, request.form, general=[e.message])
        return failed(e, PAGE, "admin/_contract.html", **page_context(record, contract=contract))
    return done(
        _("Contratto salvato."),
        customer_url(record, "contract"),
        "admin/_contract.html",
        lambda: page_context(record, contract=_contract_ctx(record, saved=True)),
    )


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
    except FORM_ERRORS as e:
        ctx = page_context(record, admin_values={"email": email}, admin_errors=field_errors(e, "email"))
        return failed(e, PAGE, "admin/_customer_admins.html", **ctx)
    message = _("Utente %(e)s creato.", e=email.strip().lower())
    return done(
        message,
        customer_url(record, "admins"),
        "admin/_customer_admins.html",
        lambda: page_context(record, admin_saved=message),
    )


@bp.route("/customers/<int:customer_id>/outbox/<int:outbox_id>/retry", methods=["POST"])
@staff_required
def customer_outbox_retry(customer_id: int, outbox_id: int):
    actor = current_actor()
    record = customer_for(actor, customer_id)
    try:
        mail = outbox.retry(actor, record.id, outbox_id)
    except FORM_ERRORS as e:
        return failed(e, PAGE, OUTBOX, **page_context(record, outbox_error=e.message))
    if mail.state == "sent":
        message = _("Email «%(s)s» inviata.", s=mail.subject)
    else:
        message = _("Email «%(s)s» rimessa in coda: sarà inviata appena possibile.", s=mail.subject)
    return done(
        message,
        customer_url(record, "outbox"),
        OUTBOX,
        lambda: page_context(record, outbox_notice=message),
    )
