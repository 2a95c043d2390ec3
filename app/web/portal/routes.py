"""Customer portal: dashboard, domains, capacity requests, help pages; mailboxes and addresses live beside."""

from __future__ import annotations

from flask import current_app, flash, g, request
from flask_babel import gettext as _
from flask_babel import ngettext

from app.services import capacity, classes, domains, limits, mailboxes, overview
from app.services.errors import Conflict, ValidationError
from app.web import render
from app.web.portal import address_views, mailbox_views, quota_views  # noqa: F401  (they add their routes to bp)
from app.web.portal.common import (
    back_to,
    bp,
    customer_view,
    field_errors,
    fragment_reply,
    is_fragment_request,
    owned,
)

# PermissionDenied is left to the app-wide handler: a 403 page with its message.
FAILURES = (ValidationError, Conflict)


@bp.route("/customers/<int:customer_id>/")
def dashboard(customer_id: int):
    view = customer_view(customer_id)
    return render(
        "portal/dashboard.html",
        customer=view.customer,
        can_manage=view.can_manage,
        usage=limits.usage_report(view.customer, used=mailboxes.class_counts(view.customer)),
        counts=overview.customer_overview(view.actor, view.customer.id),
        requests=capacity.list_requests(view.actor, customer_id=view.customer.id, status="open"),
    )


# Domains


def _domains_context(view, form=None, errors=None, notice=None, override=False) -> dict:
    return {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "is_staff": view.actor.is_staff,
        "domains": domains.list_domains(view.actor, view.customer.id),
        "mx_host": current_app.config["PROVIDER_MX_HOST"],
        "form": form or {},
        "errors": errors or {},
        "notice": notice,
        # Staff see the reason field once a name was refused as a public provider's, or when they filled it.
        "show_override": view.actor.is_staff and (override or bool((form or {}).get("override_reason"))),
    }


def domains_page(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        return render("portal/domains.html", "portal/_domains.html", **_domains_context(view))
    form = {k: request.form.get(k, "") for k in ("name", "override_reason")}
    try:
        domain = domains.add_domain(
            view.actor, view.customer.id, form["name"], override_reason=form["override_reason"] or None
        )
    except FAILURES as e:
        ctx = _domains_context(
            view, form=form, errors=field_errors(e), override=isinstance(e, domains.PublicProviderDomain)
        )
        return render("portal/domains.html", "portal/_domains.html", status=e.status, **ctx)
    if domain.is_active:
        message = _(
            "Dominio %(d)s aggiunto e attivo. Ora fai impostare il record MX indicato qui sotto.",
            d=domain.display_name,
        )
    else:
        message = _(
            "Dominio %(d)s aggiunto: è in attesa di verifica. Fai impostare il record MX indicato qui sotto; "
            "il supporto tecnico lo attiverà dopo aver verificato che il dominio è della tua azienda.",
            d=domain.display_name,
        )
    if is_fragment_request():
        return fragment_reply("portal/_domains.html", **_domains_context(view, notice=("ok", message)))
    flash(message, "ok")
    return back_to("portal.domains", customer_id=view.customer.id)


bp.add_url_rule("/customers/<int:customer_id>/domains", "domains", domains_page, methods=["GET", "POST"])


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/approve", methods=["POST"])
def domain_approve(customer_id: int, domain_id: int):
    """Staff approve a pending domain from the customer's domains page (the service refuses anyone else)."""
    view = customer_view(customer_id)
    domain = owned(domains.get_domain(view.actor, domain_id), view.customer.id, _("Dominio non trovato."))
    try:
        domains.approve_domain(view.actor, domain.id)
    except FAILURES as e:
        ctx = _domains_context(view, notice=("error", "; ".join(field_errors(e).values())))
        return render("portal/domains.html", "portal/_domains.html", status=e.status, **ctx)
    message = _("Dominio %(d)s attivato: ora i server di posta lo servono.", d=domain.display_name)
    if is_fragment_request():
        return fragment_reply("portal/_domains.html", **_domains_context(view, notice=("ok", message)))
    flash(message, "ok")
    return back_to("portal.domains", customer_id=customer_id)


@bp.app_template_global()
def pending_domains(customer_id: int, loaded=None) -> dict[int, str]:
    """The customer's domains not served yet ({id: name}), once per request: pages mark their addresses.

    loaded: the customer's domains when the page has them already, to spare a query.
    """
    cache = g.setdefault("pending_domains", {})
    if customer_id not in cache:
        if loaded is not None:
            cache[customer_id] = {d.id: d.display_name for d in loaded if not d.is_active}
        else:
            cache[customer_id] = domains.pending_names(customer_id)
    return cache[customer_id]


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/delete", methods=["GET", "POST"])
def domain_delete(customer_id: int, domain_id: int):
    from flask import url_for

    view = customer_view(customer_id)
    domain = owned(domains.get_domain(view.actor, domain_id), view.customer.id, _("Dominio non trovato."))
    if request.method == "GET":
        return render(
            "portal/confirm.html",
            customer=view.customer,
            title=_("Togliere il dominio %(d)s?", d=domain.display_name),
            text=_(
                "Il dominio non sarà più gestito dal servizio. Si può togliere solo quando non ha più indirizzi."
            ),
            action=url_for("portal.domain_delete", customer_id=customer_id, domain_id=domain.id),
            fields={},
            button=_("Togli dominio"),
            danger=True,
            cancel=url_for("portal.domains", customer_id=customer_id),
        )
    name = domain.display_name
    try:
        domains.delete_domain(view.actor, domain.id)
    except Conflict as e:
        ctx = _domains_context(view, notice=("error", e.message))
        return render("portal/domains.html", "portal/_domains.html", status=409, **ctx)
    message = _("Dominio %(d)s tolto.", d=name)
    if is_fragment_request():
        return fragment_reply("portal/_domains.html", **_domains_context(view, notice=("ok", message)))
    flash(message, "ok")
    return back_to("portal.domains", customer_id=customer_id)


# Capacity requests ("ask sales for more")

CAPACITY_FIELDS = ("service_class", "extra_accounts", "note")


def capacity_context(view, form=None, errors=None, fixed_class=None) -> dict:
    """What the request form needs: the classes to choose from (the contract's first) or one fixed class."""
    allowed = {row.service_class.id: row for row in limits.usage_report(view.customer)}
    in_contract, others = [], []
    for cls in classes.all_classes():
        (in_contract if cls.id in allowed else others).append(cls)
    return {
        "customer": view.customer,
        "capacity_form": form or {},
        "capacity_errors": errors or {},
        "capacity_choices": [(_("Nel contratto"), in_contract), (_("Altre classi"), others)],
        "capacity_usage": allowed,
        "capacity_open": capacity.open_by_class(view.actor, view.customer.id),
        "fixed_class": fixed_class,
    }


def _capacity_page(view, status=200, **form_ctx):
    return render(
        "portal/capacity_requests.html",
        status=status,
        can_manage=view.can_manage,
        requests=capacity.list_requests(view.actor, customer_id=view.customer.id),
        **capacity_context(view, **form_ctx),
    )


@bp.route("/customers/<int:customer_id>/capacity-requests", methods=["GET", "POST"])
def capacity_requests(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        wanted = request.args.get("class", "")
        form = (
            {"service_class": wanted, "extra_accounts": "1"} if wanted.isdigit() and len(wanted) < 10 else {}
        )
        return _capacity_page(view, form=form)
    form = {k: request.form.get(k, "") for k in CAPACITY_FIELDS}
    fixed = None
    if request.form.get("fixed"):
        # The form inside a limit notice asks for the class that hit the limit; it keeps it on errors.
        try:
            fixed = classes.resolve(form["service_class"])
        except ValidationError:
            fixed = None
    try:
        asked = capacity.request_capacity(
            view.actor,
            view.customer.id,
            service_class=form["service_class"],
            extra_accounts=form["extra_accounts"],
            note=form["note"],
        )
    except FAILURES as e:
        errors = field_errors(e)
        if is_fragment_request():
            ctx = capacity_context(view, form=form, errors=errors, fixed_class=fixed)
            return fragment_reply("portal/_capacity_form.html", status=e.status, **ctx)
        return _capacity_page(view, status=e.status, form=form, errors=errors)
    req = asked.request
    if asked.created:
        message = ngettext(
            "Richiesta inviata al commerciale: %(num)d casella %(cls)s in più. "
            "Riceverai la risposta per email e la vedrai in Richieste al commerciale.",
            "Richiesta inviata al commerciale: %(num)d caselle %(cls)s in più. "
            "Riceverai la risposta per email e la vedrai in Richieste al commerciale.",
            req.extra_accounts,
            cls=req.service_class.name,
        )
    else:
        message = ngettext(
            "Richiesta aggiornata: ora chiedi %(num)d casella %(cls)s in più. "
            "C'è una sola richiesta aperta per classe: il commerciale vede quella aggiornata.",
            "Richiesta aggiornata: ora chiedi %(num)d caselle %(cls)s in più. "
            "C'è una sola richiesta aperta per classe: il commerciale vede quella aggiornata.",
            req.extra_accounts,
            cls=req.service_class.name,
        )
    if is_fragment_request():
        response = fragment_reply(
            "portal/_capacity_reply.html", ok=True, message=message, customer=view.customer
        )
        if fixed:
            # Sent from a limit notice: the answer takes the notice's place.
            response.headers["HX-Retarget"] = "#limit-notice"
        return response
    flash(message, "ok")
    return back_to("portal.capacity_requests", customer_id=customer_id)


# Help pages: the same for every customer.


def tel_uri(phone: str) -> str | None:
    """A dialable tel: URI (RFC 3966) for a phone number written for people: "+39 010 5961255"."""
    digits = "".join(ch for ch in phone if ch.isdigit() and ch.isascii())
    if not digits:
        return None
    international = phone.strip().startswith("+")
    return f"tel:{'+' if international else ''}{digits}"


@bp.app_template_global("help_contacts")
def help_contacts() -> dict:
    """Support and sales contacts, for the footer of every page and the help pages (templates/_contacts.html).
    A template global, so macros imported without context see it too."""
    config = current_app.config
    phone = (config.get("SUPPORT_PHONE") or "").strip()
    return {
        "support_email": (config.get("SUPPORT_EMAIL") or "").strip(),
        "support_phone": phone,
        "support_tel": tel_uri(phone),
        "sales_email": (config.get("SALES_EMAIL") or "").strip(),
    }


def _help_context() -> dict:
    config = current_app.config
    host = config["PROVIDER_MAIL_HOST"]
    return {
        "mail_host": host,
        "mx_host": config["PROVIDER_MX_HOST"],
        "webmail_url": config.get("WEBMAIL_URL") or f"https://{host}",
        "sales_email": config.get("SALES_EMAIL"),
    }


@bp.route("/help/client-settings")
def client_settings():
    return render("portal/client_settings.html", **_help_context())


@bp.route("/help/faq")
def faq():
    return render("portal/faq.html", **_help_context())
