"""The customer's domains: add (pending until support approves), approve (staff), remove."""

from __future__ import annotations

from flask import current_app, request, url_for
from flask_babel import gettext as _

from app.services import domains
from app.web.portal import bp
from app.web.portal.common import confirm, customer_view, owned
from app.web.respond import FORM_ERRORS, done, error_text, failed, field_errors, render

PAGE, FRAGMENT = "portal/domains.html", "portal/_domains.html"


def _context(view, form=None, errors=None, notice=None, override=False) -> dict:
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


def _done(view, message: str):
    return done(
        message,
        url_for("portal.domains", customer_id=view.customer.id),
        FRAGMENT,
        lambda: _context(view, notice=("ok", message)),
    )


def _refused(view, error):
    return failed(error, PAGE, FRAGMENT, **_context(view, notice=("error", error_text(error))))


@bp.route("/customers/<int:customer_id>/domains", methods=["GET", "POST"], endpoint="domains")
def domains_page(customer_id: int):
    view = customer_view(customer_id)
    if request.method == "GET":
        return render(PAGE, FRAGMENT, **_context(view))
    form = {k: request.form.get(k, "") for k in ("name", "override_reason")}
    try:
        domain = domains.add_domain(
            view.actor, view.customer.id, form["name"], override_reason=form["override_reason"] or None
        )
    except FORM_ERRORS as e:
        override = isinstance(e, domains.PublicProviderDomain)
        return failed(
            e, PAGE, FRAGMENT, **_context(view, form=form, errors=field_errors(e), override=override)
        )
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
    return _done(view, message)


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/approve", methods=["POST"])
def domain_approve(customer_id: int, domain_id: int):
    """Staff approve a pending domain from the customer's domains page (the service refuses anyone else)."""
    view = customer_view(customer_id)
    domain = owned(domains.get_domain(view.actor, domain_id), view.customer.id, _("Dominio non trovato."))
    try:
        domains.approve_domain(view.actor, domain.id)
    except FORM_ERRORS as e:
        return _refused(view, e)
    return _done(view, _("Dominio %(d)s attivato: ora i server di posta lo servono.", d=domain.display_name))


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/delete", methods=["GET", "POST"])
def domain_delete(customer_id: int, domain_id: int):
    view = customer_view(customer_id)
    domain = owned(domains.get_domain(view.actor, domain_id), view.customer.id, _("Dominio non trovato."))
    if request.method == "GET":
        return confirm(
            view,
            title=_("Togliere il dominio %(d)s?", d=domain.display_name),
            text=_(
                "Il dominio non sarà più gestito dal servizio. Si può togliere solo quando non ha più indirizzi."
            ),
            action=url_for("portal.domain_delete", customer_id=customer_id, domain_id=domain.id),
            button=_("Togli dominio"),
            cancel=url_for("portal.domains", customer_id=customer_id),
        )
    name = domain.display_name
    try:
        domains.delete_domain(view.actor, domain.id)
    except FORM_ERRORS as e:
        return _refused(view, e)
    return _done(view, _("Dominio %(d)s tolto.", d=name))
