"""Customer portal: dashboard, domains, capacity requests, help pages; mailboxes and addresses live beside."""

from __future__ import annotations

from flask import current_app, flash, request
from flask_babel import gettext as _
from flask_babel import ngettext

from app.services import capacity, domains, limits, overview
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
        usage=limits.usage_report(view.customer),
        counts=overview.customer_overview(view.actor, view.customer.id),
        requests=capacity.list_requests(view.actor, customer_id=view.customer.id, status="open"),
    )


# Domains


def _domains_context(view, form=None, errors=None, notice=None) -> dict:
    return {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "domains": domains.list_domains(view.actor, view.customer.id),
        "mx_host": current_app.config["PROVIDER_MX_HOST"],
        "form": form or {},
        "errors": errors or {},
        "notice": notice,
    }


def domains_page(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        return render("portal/domains.html", "portal/_domains.html", **_domains_context(view))
    form = {"name": request.form.get("name", "")}
    try:
        domain = domains.add_domain(view.actor, view.customer.id, form["name"])
    except FAILURES as e:
        ctx = _domains_context(view, form=form, errors=field_errors(e))
        return render("portal/domains.html", "portal/_domains.html", status=e.status, **ctx)
    message = _(
        "Dominio %(d)s aggiunto. Ora fai impostare il record MX indicato qui sotto.", d=domain.display_name
    )
    if is_fragment_request():
        return fragment_reply("portal/_domains.html", **_domains_context(view, notice=("ok", message)))
    flash(message, "ok")
    return back_to("portal.domains", customer_id=view.customer.id)


bp.add_url_rule("/customers/<int:customer_id>/domains", "domains", domains_page, methods=["GET", "POST"])


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


@bp.route("/customers/<int:customer_id>/capacity-requests", methods=["GET", "POST"])
def capacity_requests(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        return render(
            "portal/capacity_requests.html",
            customer=view.customer,
            can_manage=view.can_manage,
            requests=capacity.list_requests(view.actor, customer_id=view.customer.id),
        )
    form = {k: request.form.get(k, "") for k in ("service_class", "extra_accounts", "note")}
    try:
        req = capacity.request_capacity(
            view.actor,
            view.customer.id,
            service_class=form["service_class"],
            extra_accounts=form["extra_accounts"] or 1,
            note=form["note"],
        )
    except FAILURES as e:
        errors = field_errors(e)
        message = "; ".join(errors.values())
        if is_fragment_request():
            return fragment_reply("portal/_capacity_reply.html", status=e.status, ok=False, message=message)
        flash(message, "error")
        return back_to("portal.capacity_requests", customer_id=customer_id)
    message = ngettext(
        "Richiesta inviata al commerciale: %(num)d casella %(cls)s in più. Ti ricontatteremo a breve.",
        "Richiesta inviata al commerciale: %(num)d caselle %(cls)s in più. Ti ricontatteremo a breve.",
        req.extra_accounts,
        cls=req.service_class.name,
    )
    if is_fragment_request():
        return fragment_reply("portal/_capacity_reply.html", ok=True, message=message)
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
