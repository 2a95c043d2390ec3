"""JSON API /api/v1: a customer's domains, mailboxes, aliases and distribution lists."""

from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _

from app.models.mail import STATUSES
from app.services import aliases, classes, domains, lists, mailboxes
from app.services.access import customer_for
from app.services.errors import ValidationError
from app.web.api import body
from app.web.api import serializers as out
from app.web.api.auth import actor
from app.web.api.blueprint import bp

MAILBOX_FIELDS = {
    "address": body.text,
    "password": body.text,
    "display_name": body.optional_text,
    "service_class": body.name_or_id,
    "status": body.text,
}
LIST_FIELDS = {
    "address": body.text,
    "members": body.text_list,
    "description": body.optional_text,
    "post_policy": body.text,
}


def _no_content():
    return "", 204


# Domains


@bp.get("/customers/<id:customer_id>/domains")
def domain_list(customer_id: int):
    return jsonify([out.domain(d) for d in domains.list_domains(actor(), customer_id)])


@bp.post("/customers/<id:customer_id>/domains")
def domain_create(customer_id: int):
    data = body.read({"name": body.text, "override_reason": body.optional_text}, required=("name",))
    domain = domains.add_domain(
        actor(), customer_id, data["name"], override_reason=data.get("override_reason")
    )
    return jsonify(out.domain(domain)), 201


@bp.get("/domains")
def domain_pending_list():
    if (request.args.get("state") or "pending") != "pending":
        raise ValidationError.one("state", _("Stato non valido: usa pending."))
    return jsonify([out.domain(d) for d in domains.pending_domains(actor())])


@bp.post("/domains/<id:domain_id>/approve")
def domain_approve(domain_id: int):
    return jsonify(out.domain(domains.approve_domain(actor(), domain_id)))


@bp.get("/domains/<id:domain_id>")
def domain_get(domain_id: int):
    return jsonify(out.domain(domains.get_domain(actor(), domain_id)))


@bp.delete("/domains/<id:domain_id>")
def domain_delete(domain_id: int):
    domains.delete_domain(actor(), domain_id)
    return _no_content()


# Mailboxes


def _mailbox_filters() -> dict:
    args = request.args
    filters: dict = {"q": body.query_text("q")}
    if args.get("service_class"):
        filters["service_class_id"] = classes.resolve(args["service_class"]).id
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError.one("status", _("Stato non valido: usa active, suspended o disabled."))
    filters["status"] = status
    filters["page"] = body.query_int("page", 1)
    filters["per_page"] = body.query_int("per_page", 50, maximum=200)
    return filters


@bp.get("/customers/<id:customer_id>/mailboxes")
def mailbox_list(customer_id: int):
    page = mailboxes.search_mailboxes(actor(), customer_id, **_mailbox_filters())
    return jsonify(out.page(page, out.mailbox))


@bp.post("/customers/<id:customer_id>/mailboxes")
def mailbox_create(customer_id: int):
    spec = {k: v for k, v in MAILBOX_FIELDS.items() if k != "status"}
    data = body.read(spec, required=("address", "password", "service_class"))
    mailbox = mailboxes.create_mailbox(
        actor(),
        customer_id,
        address=data["address"],
        password=data["password"],
        display_name=data.get("display_name") or "",
        service_class=data["service_class"],
    )
    return jsonify(out.mailbox(mailbox)), 201


@bp.get("/mailboxes/<id:mailbox_id>")
def mailbox_get(mailbox_id: int):
    return jsonify(out.mailbox(mailboxes.get_mailbox(actor(), mailbox_id)))


@bp.patch("/mailboxes/<id:mailbox_id>")
def mailbox_update(mailbox_id: int):
    spec = {k: v for k, v in MAILBOX_FIELDS.items() if k != "address"}
    data = body.read(spec)
    if "display_name" in data and data["display_name"] is None:
        data["display_name"] = ""
    return jsonify(out.mailbox(mailboxes.update_mailbox(actor(), mailbox_id, **data)))


@bp.delete("/mailboxes/<id:mailbox_id>")
def mailbox_delete(mailbox_id: int):
    mailboxes.delete_mailbox(actor(), mailbox_id)
    return _no_content()


# Aliases


@bp.get("/customers/<id:customer_id>/aliases")
def alias_list(customer_id: int):
    rows = aliases.list_aliases(actor(), customer_id, body.query_text("q"))
    return jsonify([out.alias(a) for a in rows])


@bp.post("/customers/<id:customer_id>/aliases")
def alias_create(customer_id: int):
    data = body.read({"address": body.text, "target": body.name_or_id}, required=("address", "target"))
    alias = aliases.create_alias(actor(), customer_id, address=data["address"], target=data["target"])
    return jsonify(out.alias(alias)), 201


@bp.get("/aliases/<id:alias_id>")
def alias_get(alias_id: int):
    return jsonify(out.alias(aliases.get_alias(actor(), alias_id)))


@bp.patch("/aliases/<id:alias_id>")
def alias_update(alias_id: int):
    data = body.read({"target": body.name_or_id}, required=("target",))
    return jsonify(out.alias(aliases.update_alias(actor(), alias_id, target=data["target"])))


@bp.delete("/aliases/<id:alias_id>")
def alias_delete(alias_id: int):
    aliases.delete_alias(actor(), alias_id)
    return _no_content()


# Distribution lists


@bp.get("/customers/<id:customer_id>/lists")
def list_list(customer_id: int):
    rows = lists.list_lists(actor(), customer_id, body.query_text("q"))
    return jsonify([out.distribution_list(d) for d in rows])


@bp.post("/customers/<id:customer_id>/lists")
def list_create(customer_id: int):
    data = body.read(LIST_FIELDS, required=("address",))
    dlist = lists.create_list(
        actor(),
        customer_id,
        address=data["address"],
        members=data.get("members", []),
        description=data.get("description") or "",
        post_policy=data.get("post_policy", lists.DEFAULT_POST_POLICY),
    )
    return jsonify(out.distribution_list(dlist)), 201


def _optional_count(v: object) -> str | None:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return None
    return _("Deve essere un numero intero (o null).")


def _list_limits(customer) -> dict:
    per_list, per_customer = lists.external_limits(customer)
    return {
        "per_list": per_list,
        "per_customer": per_customer,
        "per_list_override": customer.list_external_per_list,
        "per_customer_override": customer.list_external_per_customer,
        "external_members": lists.external_count(customer.id),
    }


@bp.get("/customers/<id:customer_id>/list-limits")
def list_limits_get(customer_id: int):
    return jsonify(_list_limits(customer_for(actor(), customer_id)))


@bp.put("/customers/<id:customer_id>/list-limits")
def list_limits_put(customer_id: int):
    # PUT replaces both: a missing or null value goes back to the default.
    data = body.read({"per_list": _optional_count, "per_customer": _optional_count})
    customer = lists.set_external_limits(
        actor(), customer_id, per_list=data.get("per_list"), per_customer=data.get("per_customer")
    )
    return jsonify(_list_limits(customer))


@bp.get("/lists/<id:list_id>")
def list_get(list_id: int):
    return jsonify(out.distribution_list(lists.get_list(actor(), list_id)))


@bp.patch("/lists/<id:list_id>")
def list_update(list_id: int):
    data = body.read({k: v for k, v in LIST_FIELDS.items() if k != "address"})
    description = data.get("description")
    if "description" in data and description is None:
        description = ""
    dlist = lists.update_list(
        actor(),
        list_id,
        members=data.get("members"),
        description=description,
        post_policy=data.get("post_policy"),
    )
    return jsonify(out.distribution_list(dlist))


@bp.delete("/lists/<id:list_id>")
def list_delete(list_id: int):
    lists.delete_list(actor(), list_id)
    return _no_content()
