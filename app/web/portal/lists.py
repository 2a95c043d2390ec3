"""Distribution lists: one address that delivers to several mailboxes and outside addresses."""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _

from app.services import domains, lists
from app.web.portal import bp
from app.web.portal.common import address_from, confirm, customer_view, local_part_errors, owned
from app.web.respond import FORM_ERRORS, done, failed, field_errors, render

CHANGED = "lists-changed"
PAGE = "portal/list.html"


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


@bp.route("/customers/<int:customer_id>/lists", methods=["GET", "POST"], endpoint="lists")
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
            address=address_from(form),
            description=form["description"],
            members=form["members"],
            post_policy=form["post_policy"] or lists.DEFAULT_POST_POLICY,
        )
    except FORM_ERRORS as e:
        ctx = _lists_context(view, form=form, errors=local_part_errors(field_errors(e)))
        return failed(e, "portal/lists.html", "portal/_list_create.html", **ctx)
    message = _("Lista %(a)s creata con %(n)d membri.", a=dlist.display_address, n=len(dlist.members))
    return done(
        message,
        url_for("portal.list_detail", customer_id=view.customer.id, list_id=dlist.id),
        "portal/_list_create.html",
        lambda: _lists_context(view, created=message),
        trigger=CHANGED,
    )


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


def _detail_url(view, dlist) -> str:
    return url_for("portal.list_detail", customer_id=view.customer.id, list_id=dlist.id)


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>", methods=["GET", "POST"])
def list_detail(customer_id: int, list_id: int):
    """GET: the list with its members. POST: save the description."""
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    if request.method == "GET":
        return render(PAGE, "portal/_list_members.html", **_detail_context(view, d))
    description = request.form.get("description", "")
    return _update(
        view, d, "portal/_list_description.html", _("Descrizione salvata."), description=description
    )


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/policy", methods=["POST"])
def list_policy(customer_id: int, list_id: int):
    """Who may post to the list."""
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    saved = _("Salvato: la regola vale dal prossimo messaggio.")
    return _update(
        view, d, "portal/_list_policy.html", saved, post_policy=request.form.get("post_policy", "")
    )


def _update(view, dlist, template: str, message: str, **change):
    """One setting of the list, saved from its own section of the list page."""
    try:
        dlist = lists.update_list(view.actor, dlist.id, **change)
    except FORM_ERRORS as e:
        return failed(e, PAGE, template, **_detail_context(view, dlist, form=change, errors=field_errors(e)))
    return done(
        message, _detail_url(view, dlist), template, lambda: _detail_context(view, dlist, saved=message)
    )


def _members_done(view, dlist, message: str):
    # Said where the person is looking: the members' own notice line.
    return done(
        message,
        _detail_url(view, dlist),
        "portal/_list_members.html",
        lambda: _detail_context(view, dlist, added=message),
    )


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/members", methods=["POST"])
def list_member_add(customer_id: int, list_id: int):
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    address = request.form.get("member", "")
    try:
        d = lists.add_member(view.actor, d.id, address)
    except FORM_ERRORS as e:
        ctx = _detail_context(view, d, form={"member": address}, errors=field_errors(e))
        return failed(e, PAGE, "portal/_list_members.html", **ctx)
    return _members_done(view, d, _("%(a)s aggiunto alla lista.", a=address.strip()))


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/members/<int:member_id>/remove", methods=["POST"])
def list_member_remove(customer_id: int, list_id: int, member_id: int):
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    member = next((m for m in d.members if m.id == member_id), None)
    name = (member.mailbox.display_address if member.mailbox else member.address) if member else ""
    d = lists.remove_member(view.actor, d.id, member_id)
    return _members_done(
        view, d, _("%(a)s tolto dalla lista.", a=name) if name else _("Membro tolto dalla lista.")
    )


@bp.route("/customers/<int:customer_id>/lists/<int:list_id>/delete", methods=["GET", "POST"])
def list_delete(customer_id: int, list_id: int):
    view = customer_view(customer_id)
    d = _dlist(view, list_id)
    if request.method == "GET":
        return confirm(
            view,
            title=_("Eliminare la lista %(a)s?", a=d.display_address),
            text=_(
                "La posta inviata a questo indirizzo non verrà più distribuita ai %(n)d membri.",
                n=len(d.members),
            ),
            action=url_for("portal.list_delete", customer_id=customer_id, list_id=d.id),
            button=_("Elimina lista"),
            cancel=url_for("portal.lists", customer_id=customer_id),
        )
    address = d.display_address
    lists.delete_list(view.actor, d.id)
    # Deleted from its own page too: the only sensible place to land is the lists page.
    return done(
        _("Lista %(a)s eliminata.", a=address),
        url_for("portal.lists", customer_id=customer_id),
        navigate=True,
    )
