"""Aliases: free addresses that deliver to one of the customer's mailboxes."""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _

from app.services import aliases, domains, mailboxes
from app.web.portal import bp
from app.web.portal.common import address_from, confirm, customer_view, local_part_errors, owned
from app.web.respond import FORM_ERRORS, done, failed, field_errors, render

CHANGED = "aliases-changed"
# A <datalist> of targets helps up to this many mailboxes; past it, typing the address is quicker.
DATALIST_MAX = 500


def _context(view, form=None, errors=None, created=None) -> dict:
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


@bp.route("/customers/<int:customer_id>/aliases", methods=["GET", "POST"], endpoint="aliases")
def aliases_page(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        return render("portal/aliases.html", "portal/_alias_table.html", **_context(view))
    form = {k: request.form.get(k, "") for k in ("local_part", "domain", "target")}
    try:
        alias = aliases.create_alias(
            view.actor, view.customer.id, address=address_from(form), target=form["target"]
        )
    except FORM_ERRORS as e:
        ctx = _context(view, form=form, errors=local_part_errors(field_errors(e)))
        return failed(e, "portal/aliases.html", "portal/_alias_create.html", **ctx)
    message = _(
        "Alias %(a)s creato: la posta arriva a %(t)s.",
        a=alias.display_address,
        t=alias.target.display_address,
    )
    return done(
        message,
        url_for("portal.aliases", customer_id=view.customer.id),
        "portal/_alias_create.html",
        lambda: _context(view, created=message),
        trigger=CHANGED,
    )


def _alias(view, alias_id: int):
    return owned(aliases.get_alias(view.actor, alias_id), view.customer.id, _("Alias non trovato."))


def _row_context(view, alias, **extra) -> dict:
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
        return render("portal/alias.html", "portal/_alias_row.html", **_row_context(view, a))
    form = {"target": request.form.get("target", "")}
    try:
        a = aliases.update_alias(view.actor, a.id, target=form["target"])
    except FORM_ERRORS as e:
        ctx = _row_context(view, a, form=form, errors=field_errors(e), editing=True)
        return failed(e, "portal/alias.html", "portal/_alias_edit_row.html", **ctx)
    return done(
        _(
            "Alias %(a)s aggiornato: la posta arriva a %(t)s.",
            a=a.display_address,
            t=a.target.display_address,
        ),
        url_for("portal.aliases", customer_id=view.customer.id),
        "portal/_alias_row.html",
        lambda: _row_context(view, a),
        announce=True,
    )


@bp.route("/customers/<int:customer_id>/aliases/<int:alias_id>/edit")
def alias_edit(customer_id: int, alias_id: int):
    view = customer_view(customer_id)
    a = _alias(view, alias_id)
    ctx = _row_context(view, a, editing=True)
    return render("portal/alias.html", "portal/_alias_edit_row.html", **ctx)


@bp.route("/customers/<int:customer_id>/aliases/<int:alias_id>/delete", methods=["GET", "POST"])
def alias_delete(customer_id: int, alias_id: int):
    view = customer_view(customer_id)
    a = _alias(view, alias_id)
    if request.method == "GET":
        return confirm(
            view,
            title=_("Eliminare l'alias %(a)s?", a=a.display_address),
            text=_(
                "La posta inviata a questo indirizzo non arriverà più a %(t)s.", t=a.target.display_address
            ),
            action=url_for("portal.alias_delete", customer_id=customer_id, alias_id=a.id),
            button=_("Elimina alias"),
            cancel=url_for("portal.aliases", customer_id=customer_id),
        )
    message = _("Alias %(a)s eliminato.", a=a.display_address)
    aliases.delete_alias(view.actor, a.id)
    return done(
        message, url_for("portal.aliases", customer_id=view.customer.id), announce=True, trigger=CHANGED
    )
