"""Aliases and distribution lists: free addresses that deliver to the customer's mailboxes."""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _

from app.services import aliases, domains, lists, mailboxes
from app.services.errors import Conflict, ValidationError
from app.web import render
from app.web.portal.common import (
    back_to,
    bp,
    customer_view,
    empty_reply,
    field_errors,
    fragment_reply,
    is_fragment_request,
    owned,
)

# PermissionDenied is left to the app-wide handler: a 403 page with its message.
FAILURES = (ValidationError, Conflict)
# A <datalist> of targets helps up to this many mailboxes; past it, typing the address is quicker.
DATALIST_MAX = 500


def _address(form) -> str:
    local = form.get("local_part", "").strip()
    return f"{local}@{form.get('domain', '')}" if local else ""


def _local_errors(errors: dict) -> dict:
    if "address" in errors:
        errors["local_part"] = errors.pop("address")
    return errors


# Aliases


def _alias_context(view, form=None, errors=None, created=None) -> dict:
    q = request.args.get("q", "")[:200]
    targets = mailboxes.search_mailboxes(view.actor, view.customer.id, per_page=DATALIST_MAX + 1)
    return {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "q": q,
        "aliases": aliases.list_aliases(view.actor, view.customer.id, q),
        "domains": domains.list_domains(view.actor, view.customer.id),
        "targets": targets.items if targets.total <= DATALIST_MAX else [],
        "form": form or {},
        "errors": errors or {},
        "created": created,
    }


def aliases_page(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        return render("portal/aliases.html", "portal/_alias_table.html", **_alias_context(view))
    form = {k: request.form.get(k, "") for k in ("local_part", "domain", "target")}
    try:
        alias = aliases.create_alias(
            view.actor, view.customer.id, address=_address(form), target=form["target"]
        )
    except FAILURES as e:
        ctx = _alias_context(view, form=form, errors=_local_errors(field_errors(e)))
        return render("portal/aliases.html", "portal/_alias_create.html", status=e.status, **ctx)
    message = _(
        "Alias %(a)s creato: la posta arriva a %(t)s.",
        a=alias.display_address,
        t=alias.target.display_address,
    )
    if is_fragment_request():
        return fragment_reply(
            "portal/_alias_create.html", trigger="aliases-changed", **_alias_context(view, created=message)
        )
    flash(message, "ok")
    return back_to("portal.aliases", customer_id=view.customer.id)


bp.add_url_rule("/customers/<int:customer_id>/aliases", "aliases", aliases_page, methods=["GET", "POST"])


def _alias(view, alias_id: int):
    return owned(aliases.get_alias(view.actor, alias_id), view.customer.id, _("Alias non trovato."))


def _alias_row_context(view, alias, **extra) -> dict:
    return {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "a": alias,
        "form": {},
        "errors": {},
        **extra,
    }


@bp.route("/customers/<int:customer_id>/aliases/<int:alias_id>", methods=["GET", "POST"])
def alias(customer_id: int, alias_id: int):
    view = customer_view(customer_id)
    a = _alias(view, alias_id)
    if request.method == "GET":
        return render("portal/alias.html", "portal/_alias_row.html", **_alias_row_context(view, a))
    form = {"target": request.form.get("target", "")}
    try:
        a = aliases.update_alias(view.actor, a.id, target=form["target"])
    except FAILURES as e:
        ctx = _alias_row_context(view, a, form=form, errors=field_errors(e), editing=True)
        return render("portal/alias.html", "portal/_alias_edit_row.html", status=e.status, **ctx)
    message = _(
        "Alias %(a)s aggiornato: la posta arriva a %(t)s.", a=a.display_address, t=a.target.display_address
    )
    if is_fragment_request():
        return fragment_reply("portal/_alias_row.html", announce=message, **_alias_row_context(view, a))
    flash(message, "ok")
    return back_to("portal.aliases", customer_id=view.customer.id)


@bp.route("/customers/<int:customer_id>/aliases/<int:alias_id>/edit")
def alias_edit(customer_id: int, alias_id: int):
    view = customer_view(customer_id)
    a = _alias(view, alias_id)
    ctx = _alias_row_context(view, a, editing=True)
    return render("portal/alias.html", "portal/_alias_edit_row.html", **ctx)


@bp.route("/customers/<int:customer_id>/aliases/<int:alias_id>/delete", methods=["GET", "POST"])
def alias_delete(customer_id: int, alias_id: int):
    view = customer_view(customer_id)
    a = _alias(view, alias_id)
    if request.method == "GET":
        return render(
            "portal/confirm.html",
            customer=view.customer,
            title=_("Eliminare l'alias %(a)s?", a=a.display_address),
            text=_(
                "La posta inviata a questo indirizzo non arriverà più a %(t)s.", t=a.target.display_address
            ),
            action=url_for("portal.alias_delete", customer_id=customer_id, alias_id=a.id),
            fields={},
            button=_("Elimina alias"),
            danger=True,
            cancel=url_for("portal.aliases", customer_id=customer_id),
        )
    message = _("Alias %(a)s eliminato.", a=a.display_address)
    aliases.delete_alias(view.actor, a.id)
    if is_fragment_request():
        return empty_reply(trigger="aliases-changed", announce=message)
    flash(message, "ok")
    return back_to("portal.aliases", customer_id=view.customer.id)


# Distribution lists


def _lists_context(view, form=None, errors=None, created=None) -> dict:
    q = request.args.get("q", "")[:200]
    rows = lists.list_lists(view.actor, view.customer.id, q)
    return {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "q": q,
        "lists": rows,
        "member_counts": lists.member_counts([d.id for d in rows]),
        "external_limits": lists.external_limits(view.customer),
        "external_used": lists.external_count(view.customer.id),
        "domains": domains.list_domains(view.actor, view.customer.id),
        "form": form or {},
        "errors": errors or {},
        "created": created,
    }


def lists_page(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        return render("portal/lists.html", "portal/_list_table.html", **_lists_context(view))
    form = {
        k: request.form.get(k, "") for k in ("local_part", "domain", "description", "members", "post_policy")
    }
    try:
        dlist = lists.create_list(
            view.actor,
            view.customer.id,
            address=_address(form),
            description=form["description"],
            members=form["members"],
            post_policy=form["post_policy"] or lists.DEFAULT_POST_POLICY,
        )
    except FAILURES as e:
        ctx = _lists_context(view, form=form, errors=_local_errors(field_errors(e)))
        return render("portal/lists.html", "portal/_list_create.html", status=e.status, **ctx)
    message = _("Lista %(a)s creata con %(n)d membri.", a=dlist.display_address, n=len(dlist.members))
    if is_fragment_request():
        return fragment_reply(
            "portal/_list_create.html", trigger="lists-changed", **_lists_context(view, created=message)
        )
    flash(message, "ok")
    return back_to("portal.list_detail", customer_id=view.customer.id, list_id=dlist.id)


bp.add_url_rule("/customers/<int:customer_id>/lists", "lists", lists_page, methods=["GET", "POST"])


def _dlist(view, list_id: int):
    return owned(lists.get_list(view.actor, list_id), view.customer.id, _("Lista non trovata."))


def _detail_context(view, dlist, **extra) -> dict:
    per_list, per_customer = lists.external_limits(view.customer)
    return {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "dlist": dlist,
        "external": {
            "here": sum(1 for m in dlist.members if m.external_address is not None),
            "per_list": per_list,
            "all": lists.external_count(view.customer.id),
            "per_customer": per_customer,
        },
        "form": {},
        "errors": {},
        **extra,
    }


def _detail_reply(view, dlist, status=200, **extra):
    return render(
        "portal/list.html",
        "portal/_list_members.html",
        status=status,
        **_detail_context(view, dlist, **extra),
    )


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>", methods=["GET", "POST"])
def list_detail(customer_id: int, list_id: int):
    """GET: the list with its members. POST: save the description."""
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    if request.method == "GET":
        return _detail_reply(view, d)
    description = request.form.get("description", "")
    try:
        d = lists.update_list(view.actor, d.id, description=description)
    except FAILURES as e:
        ctx = _detail_context(view, d, form={"description": description}, errors=field_errors(e))
        return render("portal/list.html", "portal/_list_description.html", status=e.status, **ctx)
    if is_fragment_request():
        return fragment_reply(
            "portal/_list_description.html", **_detail_context(view, d, saved=_("Descrizione salvata."))
        )
    flash(_("Descrizione salvata."), "ok")
    return back_to("portal.list_detail", customer_id=customer_id, list_id=d.id)


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/policy", methods=["POST"])
def list_policy(customer_id: int, list_id: int):
    """Who may post to the list."""
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    policy = request.form.get("post_policy", "")
    try:
        d = lists.update_list(view.actor, d.id, post_policy=policy)
    except FAILURES as e:
        ctx = _detail_context(view, d, form={"post_policy": policy}, errors=field_errors(e))
        return render("portal/list.html", "portal/_list_policy.html", status=e.status, **ctx)
    saved = _("Salvato: la regola vale dal prossimo messaggio.")
    if is_fragment_request():
        return fragment_reply("portal/_list_policy.html", **_detail_context(view, d, saved=saved))
    flash(saved, "ok")
    return back_to("portal.list_detail", customer_id=customer_id, list_id=d.id)


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/members", methods=["POST"])
def list_member_add(customer_id: int, list_id: int):
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    address = request.form.get("member", "")
    try:
        d = lists.add_member(view.actor, d.id, address)
    except FAILURES as e:
        return _detail_reply(view, d, status=e.status, form={"member": address}, errors=field_errors(e))
    if is_fragment_request():
        return _detail_reply(view, d, added=_("%(a)s aggiunto alla lista.", a=address.strip()))
    flash(_("%(a)s aggiunto alla lista.", a=address.strip()), "ok")
    return back_to("portal.list_detail", customer_id=customer_id, list_id=d.id)


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/members/<int:member_id>/remove", methods=["POST"])
def list_member_remove(customer_id: int, list_id: int, member_id: int):
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    member = next((m for m in d.members if m.id == member_id), None)
    name = (member.mailbox.display_address if member.mailbox else member.address) if member else ""
    d = lists.remove_member(view.actor, d.id, member_id)
    message = _("%(a)s tolto dalla lista.", a=name) if name else _("Membro tolto dalla lista.")
    if is_fragment_request():
        # Said where the person is looking: the members' own notice line.
        return _detail_reply(view, d, added=message)
    flash(message, "ok")
    return back_to("portal.list_detail", customer_id=customer_id, list_id=d.id)


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/delete", methods=["GET", "POST"])
def list_delete(customer_id: int, list_id: int):
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    if request.method == "GET":
        return render(
            "portal/confirm.html",
            customer=view.customer,
            title=_("Eliminare la lista %(a)s?", a=d.display_address),
            text=_(
                "La posta inviata a questo indirizzo non verrà più distribuita ai %(n)d membri.",
                n=len(d.members),
            ),
            action=url_for("portal.list_delete", customer_id=customer_id, list_id=d.id),
            fields={},
            button=_("Elimina lista"),
            danger=True,
            cancel=url_for("portal.lists", customer_id=customer_id),
        )
    address = d.display_address
    lists.delete_list(view.actor, d.id)
    flash(_("Lista %(a)s eliminata.", a=address), "ok")
    if is_fragment_request():
        # Deleted from its own page too: the only sensible place to land is the lists page.
        response = empty_reply()
        response.headers["HX-Redirect"] = url_for("portal.lists", customer_id=customer_id)
        return response
    return back_to("portal.lists", customer_id=customer_id)
