"""Mailboxes: the searchable list, create, inline edit, suspend / reactivate / disable, delete."""

from __future__ import annotations

from flask import g, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from markupsafe import Markup

from app.models.enums import Plan
from app.models.mail import STATUSES, unicode_domain
from app.services import billing, classes, clock, domains, fields, labels, limits, mailboxes
from app.services.errors import CreditTooLow, LimitExceeded, ValidationError
from app.web.portal import bp
from app.web.portal.common import confirm, customer_view, owned
from app.web.portal.quota import usage_context
from app.web.respond import FORM_ERRORS, done, failed, field_errors, is_fragment_request, render

MAX_PER_PAGE = 100
CHANGED = "mailboxes-changed"
# A change that moves the per-class counts: the create panel re-reads them (and drops a stale limit notice).
USAGE_CHANGED = "mailbox-usage-changed"


def _action_label(status: str) -> str:
    return {"active": _("Riattiva"), "suspended": _("Sospendi"), "disabled": _("Disabilita")}.get(status, "")


def _done_message(status: str, address: str) -> str:
    if status == "active":
        return _("La casella %(a)s è di nuovo attiva.", a=address)
    if status == "suspended":
        return _("La casella %(a)s è sospesa: non può accedere, la posta continua ad arrivare.", a=address)
    return _("La casella %(a)s è disabilitata: non accede e non riceve posta.", a=address)


def _filters() -> dict:
    args = request.args
    try:
        per_page = min(MAX_PER_PAGE, max(1, int(args.get("per_page", 25))))
    except ValueError:
        per_page = 25
    return {
        "q": args.get("q", "")[:200],
        "service_class": args.get("class", ""),
        "status": args.get("status", ""),
        # Keyset paging: the page from the address `start` on, or the one ending before `before`.
        # Old ?page=N links (offset paging) show the first page.
        "start": args.get("start", ""),
        "before": args.get("before", ""),
        "per_page": per_page,
    }


def _class_groups(all_classes: list, customer=None, keep_class_id: int | None = None):
    """Classes grouped by type, in the guide's order, for <optgroup>s.

    With a contract customer: only the classes its contract provides (and
    keep_class_id, a mailbox's current class), so nobody picks a class that
    the contract refuses on submit. Pay per Use offers all of them.
    """
    offered = None
    if customer is not None and customer.plan == "contract":
        offered = {a.service_class_id for a in customer.allowances if a.max_accounts > 0}
        if keep_class_id is not None:
            offered.add(keep_class_id)
    groups: dict[str, list] = {}
    for cls in all_classes:
        if offered is None or cls.id in offered:
            groups.setdefault(cls.type_name, []).append(cls)
    return list(groups.items())


def _contract_usage(customer) -> dict:
    """{class id: UsageRow} for a contract customer (what is used and allowed), else {}."""
    if customer.plan != "contract":
        return {}
    rows = limits.usage_report(customer, used=mailboxes.class_counts(customer))
    return {row.service_class.id: row for row in rows}


# Cost before commitment (Pay per Use): what the chosen class costs a day, and the new total.


def money(centipoints: int) -> dict:
    """{"points": "4,00", "eur": "0,05"}: an amount for people, in the reader's number format."""
    return {
        "points": format_decimal(billing.points(centipoints), format="#,##0.00"),
        "eur": format_decimal(billing.eur(centipoints), format="#,##0.00"),
    }


def recharge_url(customer) -> str:
    """Where a Pay-per-Use customer tops the account up."""
    return url_for("portal.recharge", customer_id=customer.id)


def class_prices(customer) -> dict[int, str]:
    """{class id: "4,00 punti/giorno"} for a Pay-per-Use customer's class choices; {} for a contract."""
    if customer.plan != Plan.PAYG:
        return {}
    return {
        class_id: _("%(p)s punti/giorno", p=money(price)["points"])
        for class_id, price in billing.price_list(clock.today()).items()
    }


def cost_context(customer, service_class: object, mailbox=None) -> dict | None:
    """What _mailbox_cost.html shows for a class chosen in the create form (mailbox None) or the edit form."""
    if customer.plan != Plan.PAYG:
        return None
    class_id = None
    if service_class not in (None, ""):
        try:
            class_id = classes.resolve(service_class).id
        except ValidationError:  # no such class: the total as it is
            class_id = None
    preview = billing.preview_cost(customer, class_id, mailbox)
    return {
        "chosen": class_id is not None,
        "editing": mailbox is not None,
        "price": money(preview.price),
        "total": money(preview.total),
        "balance": money(preview.balance),
        "affordable": preview.affordable,
        "recharge_url": recharge_url(customer),
        "url": url_for(
            "portal.mailbox_cost",
            customer_id=customer.id,
            **({"mailbox_id": mailbox.id} if mailbox is not None else {}),
        ),
    }


def _list_context(
    view, form=None, errors=None, limit=None, created=None, results_only=False, credit=None
) -> dict:
    """What the list page needs; results_only: what its results fragment needs (htmx paging, search)."""
    f = _filters()
    page = mailboxes.list_page(
        view.actor,
        view.customer.id,
        q=f["q"],
        service_class_id=f["service_class"],
        status=f["status"],
        start=f["start"],
        before=f["before"],
        per_page=f["per_page"],
    )
    results = {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "filters": f,
        "results": page,
        "alias_counts": mailboxes.alias_counts([m.id for m in page.items]),
        **usage_context([m.id for m in page.items]),
    }
    if results_only:
        return results
    every_class = classes.all_classes()
    return {
        **results,
        "class_groups": _class_groups(every_class),
        "offer_groups": _class_groups(every_class, view.customer),
        "usage": _contract_usage(view.customer),
        "domains": domains.list_domains(view.actor, view.customer.id),
        "form": form or {},
        "errors": errors or {},
        "limit": limit,
        "credit": credit,
        "created": created,
        "class_prices": class_prices(view.customer),
        "cost": cost_context(view.customer, (form or {}).get("service_class", "")),
    }


def mailbox_page_url(customer_id: int, filters: dict, **override) -> str:
    """The list's URL with the filters; override sets start= or before= (one page key, never both)."""
    args = {"q": filters["q"], "class": filters["service_class"], "status": filters["status"]}
    if filters["per_page"] != 25:
        args["per_page"] = filters["per_page"]
    args.update(override)
    return url_for(
        "portal.mailboxes", customer_id=customer_id, **{k: v for k, v in args.items() if v not in ("", None)}
    )


# A mailbox id that no route has: its place in a URL made once is where each row's id goes.
_ID_SLOT = 987654321


def mailbox_row_kit(customer_id: int) -> dict:
    """What every row of the mailbox list says and links to, made once per request, not per row.

    Labels are translated once; those with an address are Markup, filled per row with
    `% {"a": address}` (as {{ _(..., a=address) }} does: the address is escaped). URLs are
    patterns with %d for the mailbox's id. Also the CSRF token, the customer's pending domains
    and `shown(m)`, a mailbox's display_address with each domain decoded once.
    """
    kits = g.setdefault("mailbox_row_kits", {})
    if customer_id not in kits:
        from flask_wtf.csrf import generate_csrf

        from app.web.templating import pending_domains

        domain_names: dict[str, str] = {}

        def shown(mailbox) -> str:
            """The address as people write it (Unicode domain), each domain decoded once a page."""
            local, _at, domain = mailbox.address.partition("@")
            if domain not in domain_names:
                domain_names[domain] = unicode_domain(domain)
            return f"{local}@{domain_names[domain]}"

        def pattern(endpoint: str) -> str:
            url = url_for(endpoint, customer_id=customer_id, mailbox_id=_ID_SLOT)
            return url.replace("%", "%%").replace(str(_ID_SLOT), "%d")

        kits[customer_id] = {
            "row": pattern("portal.mailbox"),
            "edit": pattern("portal.mailbox_edit"),
            "status": pattern("portal.mailbox_status"),
            "delete": pattern("portal.mailbox_delete"),
            "status_words": {code: labels.label("mailbox_status", code) for code in STATUSES},
            "csrf": generate_csrf(),
            "pending": pending_domains(customer_id),
            "shown": shown,
            "no_name": _("senza nome visualizzato"),
            "class": _("Classe"),
            "space": _("Spazio occupato"),
            "state": _("Stato"),
            "aliases": _("Alias"),
            "pending_title": _("Funzionerà quando il supporto tecnico avrà attivato il dominio."),
            "pending_text": _("Dominio in attesa"),
            "edit_label": _("Modifica"),
            "edit_aria": Markup(_("Modifica %(a)s")),
            "suspend_label": _("Sospendi"),
            "suspend_aria": Markup(_("Sospendi %(a)s")),
            "suspend_confirm": Markup(
                _(
                    "Sospendere la casella %(a)s? Non potrà accedere finché non la riattivi; "
                    "la posta in arrivo viene conservata."
                )
            ),
            "reactivate_label": _("Riattiva"),
            "reactivate_aria": Markup(_("Riattiva %(a)s")),
            "reactivate_confirm": Markup(_("Riattivare la casella %(a)s?")),
            "disable_label": _("Disabilita"),
            "disable_aria": Markup(_("Disabilita %(a)s")),
            "disable_confirm": Markup(
                _("Disabilitare la casella %(a)s? Non potrà accedere e la posta in arrivo verrà rifiutata.")
            ),
            "delete_label": _("Elimina"),
            "delete_aria": Markup(_("Elimina %(a)s")),
            "delete_confirm": Markup(
                _(
                    "Eliminare definitivamente la casella %(a)s con tutti i suoi messaggi? "
                    "L'operazione non si può annullare."
                )
            ),
        }
    return kits[customer_id]


@bp.route("/customers/<int:customer_id>/mailboxes", methods=["GET", "POST"], endpoint="mailboxes")
def mailboxes_page(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        ctx = _list_context(view, results_only=is_fragment_request())
        return render("portal/mailboxes.html", "portal/_mailbox_results.html", **ctx)
    form = {k: request.form.get(k, "") for k in ("local_part", "domain", "display_name", "service_class")}
    try:
        mailbox = mailboxes.create_mailbox(
            view.actor,
            view.customer.id,
            address=f"{form['local_part'].strip()}@{form['domain']}" if form["local_part"].strip() else "",
            password=request.form.get("password", ""),
            display_name=form["display_name"],
            service_class=form["service_class"],
        )
    except FORM_ERRORS as e:
        # A contract limit is a notice with the way out (ask sales), not a field's message;
        # a balance too low, one with the way out (recharge).
        limit = e if isinstance(e, LimitExceeded) else None
        credit = e if isinstance(e, CreditTooLow) else None
        errors = {} if limit or credit else field_errors(e)
        if "address" in errors:
            errors["local_part"] = errors.pop("address")
        ctx = _list_context(view, form=form, errors=errors, limit=limit, credit=credit)
        if "_form" in errors and not limit:
            ctx["form_error"] = errors["_form"]
        return failed(e, "portal/mailboxes.html", "portal/_mailbox_create.html", **ctx)
    message = _("Casella %(a)s creata.", a=mailbox.display_address)
    return done(
        message,
        url_for("portal.mailboxes", customer_id=view.customer.id),
        "portal/_mailbox_create.html",
        lambda: _list_context(view, created=message),
        trigger=CHANGED,
    )


def _mailbox(view, mailbox_id: int):
    return owned(mailboxes.get_mailbox(view.actor, mailbox_id), view.customer.id, _("Casella non trovata."))


def _row_context(view, mailbox, **extra) -> dict:
    space = usage_context([mailbox.id])
    return {
        "reading": space["space"].get(mailbox.id),
        "space_state": space["space_state"],
        "customer": view.customer,
        "can_manage": view.can_manage,
        "m": mailbox,
        "alias_count": mailboxes.alias_counts([mailbox.id]).get(mailbox.id, 0),
        "offer_groups": _class_groups(
            classes.all_classes(), view.customer, keep_class_id=mailbox.service_class_id
        ),
        "usage": _contract_usage(view.customer),
        "form": {},
        "errors": {},
        "class_prices": class_prices(view.customer),
        "cost": cost_context(
            view.customer, (extra.get("form") or {}).get("service_class") or mailbox.service_class_id, mailbox
        ),
        "credit": None,
        **extra,
    }


@bp.route("/customers/<int:customer_id>/mailboxes/new", endpoint="mailbox_new")
def mailbox_new(customer_id: int):
    """The create panel with fresh per-class counts (htmx), or the list page around it."""
    view = customer_view(customer_id)
    return render("portal/mailboxes.html", "portal/_mailbox_create.html", **_list_context(view))


def _saved(view, m, message: str, trigger: str | None = None):
    return done(
        message,
        url_for("portal.mailboxes", customer_id=view.customer.id),
        "portal/_mailbox_row.html",
        lambda: _row_context(view, m, saved=True),
        announce=True,
        trigger=trigger,
    )


@bp.route("/customers/<int:customer_id>/mailboxes/<int:mailbox_id>", methods=["GET", "POST"])
def mailbox(customer_id: int, mailbox_id: int):
    """GET: the mailbox's page (htmx: its row). POST: save the edit form."""
    view = customer_view(customer_id)
    m = _mailbox(view, mailbox_id)
    if request.method == "GET":
        return render("portal/mailbox.html", "portal/_mailbox_row.html", **_row_context(view, m))
    form = {k: request.form.get(k, "") for k in ("display_name", "service_class")}
    changes = {"display_name": form["display_name"], "service_class": form["service_class"]}
    if request.form.get("password"):
        changes["password"] = request.form["password"]
    try:
        m = mailboxes.update_mailbox(view.actor, m.id, **changes)
    except FORM_ERRORS as e:
        # A contract limit is a notice with the way out (ask sales), not a field's message.
        limit = e if isinstance(e, LimitExceeded) else None
        credit = e if isinstance(e, CreditTooLow) else None
        errors = {} if limit or credit else field_errors(e)
        ctx = _row_context(view, m, form=form, errors=errors, limit=limit, credit=credit, editing=True)
        return failed(e, "portal/mailbox.html", "portal/_mailbox_edit_row.html", **ctx)
    return _saved(view, m, _("Modifiche a %(a)s salvate.", a=m.display_address), trigger=USAGE_CHANGED)


@bp.route("/customers/<int:customer_id>/mailboxes/cost", endpoint="mailbox_cost")
def mailbox_cost(customer_id: int):
    """The cost line of the create or edit form for the class chosen (htmx, as the choice changes)."""
    view = customer_view(customer_id)
    mailbox_id = request.args.get("mailbox_id", "")
    m = _mailbox(view, fields.row_id(mailbox_id) or 0) if mailbox_id else None
    ctx = {
        "customer": view.customer,
        "cost": cost_context(view.customer, request.args.get("service_class", ""), m),
    }
    ctx["cost_id"] = f"edit-{m.id}-class-cost" if m is not None else "new-class-cost"
    ctx["select_id"] = f"edit-{m.id}-class" if m is not None else "new-class"
    return render("portal/_mailbox_cost.html", **ctx)


@bp.route("/customers/<int:customer_id>/mailboxes/<int:mailbox_id>/edit")
def mailbox_edit(customer_id: int, mailbox_id: int):
    view = customer_view(customer_id)
    m = _mailbox(view, mailbox_id)
    ctx = _row_context(view, m, editing=True)
    return render("portal/mailbox.html", "portal/_mailbox_edit_row.html", **ctx)


@bp.route("/customers/<int:customer_id>/mailboxes/<int:mailbox_id>/status", methods=["GET", "POST"])
def mailbox_status(customer_id: int, mailbox_id: int):
    """POST sets the status; GET is the confirmation page for browsers without JavaScript."""
    view = customer_view(customer_id)
    m = _mailbox(view, mailbox_id)
    wanted = request.values.get("status", "")
    if request.method == "GET":
        label = _action_label(wanted)
        return confirm(
            view,
            title=_("%(action)s la casella %(a)s?", action=label, a=m.display_address),
            text=_status_explanation(wanted),
            action=url_for("portal.mailbox_status", customer_id=customer_id, mailbox_id=m.id),
            fields={"status": wanted},
            button=label or _("Conferma"),
            danger=wanted == "disabled",
            cancel=url_for("portal.mailboxes", customer_id=customer_id),
        )
    try:
        m = mailboxes.update_mailbox(view.actor, m.id, status=wanted)
    except CreditTooLow as e:
        # Re-activating costs a day more than the balance pays: the form, with the way out.
        ctx = _row_context(view, m, credit=e, editing=True)
        return failed(e, "portal/mailbox.html", "portal/_mailbox_edit_row.html", **ctx)
    return _saved(view, m, _done_message(m.status, m.display_address))


def _status_explanation(status: str) -> str:
    return {
        "suspended": _("Non potrà accedere finché non la riattivi; la posta in arrivo viene conservata."),
        "disabled": _(
            "Non potrà accedere e la posta in arrivo verrà rifiutata. I messaggi già presenti restano "
            "conservati finché non elimini la casella."
        ),
        "active": _("La casella potrà di nuovo accedere e ricevere posta."),
    }.get(status, "")


@bp.route("/customers/<int:customer_id>/mailboxes/<int:mailbox_id>/delete", methods=["GET", "POST"])
def mailbox_delete(customer_id: int, mailbox_id: int):
    view = customer_view(customer_id)
    m = _mailbox(view, mailbox_id)
    if request.method == "GET":
        return confirm(
            view,
            title=_("Eliminare la casella %(a)s?", a=m.display_address),
            text=_(
                "La casella, i suoi messaggi e gli alias che puntano a essa verranno eliminati "
                "definitivamente. L'operazione non si può annullare."
            ),
            action=url_for("portal.mailbox_delete", customer_id=customer_id, mailbox_id=m.id),
            button=_("Elimina definitivamente"),
            cancel=url_for("portal.mailboxes", customer_id=customer_id),
        )
    message = _("Casella %(a)s eliminata.", a=m.display_address)
    mailboxes.delete_mailbox(view.actor, m.id)
    return done(
        message,
        url_for("portal.mailboxes", customer_id=view.customer.id),
        announce=True,
        trigger=f"{CHANGED}, {USAGE_CHANGED}",
    )
