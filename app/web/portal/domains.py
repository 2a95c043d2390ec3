"""The customer's domains: add (pending until support approves), approve (staff), remove."""

from __future__ import annotations

from flask import current_app, flash, request, url_for
from flask_babel import gettext as _

from app.services import dkim, dnscheck, domain_checks, domains
from app.web.portal import bp
from app.web.portal.common import confirm, customer_view, owned
from app.web.respond import (
    FORM_ERRORS,
    done,
    error_text,
    failed,
    field_errors,
    fragment,
    is_fragment_request,
    render,
    see_other,
)

PAGE, FRAGMENT = "portal/domains.html", "portal/_domains.html"
DOMAIN_PAGE = "portal/domain.html"


def _context(view, form=None, errors=None, notice=None, override=False) -> dict:
    return {
        "customer": view.customer,
        "can_manage": view.can_manage,
        "is_staff": view.actor.is_staff,
        "domains": domains.list_domains(view.actor, view.customer.id),
        "mx_host": current_app.config["PROVIDER_MX_HOST"],
        "verdict_labels": {v: domain_checks.verdict_label(v) for v in (None, *dnscheck.VERDICTS)},
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
            "Dominio %(d)s aggiunto: è in attesa di verifica. Apri il dominio e pubblica il record TXT "
            "indicato: si attiva da solo appena lo troviamo nel DNS.",
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


# One domain: its DNS, the records to publish, "check now", the migration gate (staff).


def _domain(view, domain_id: int):
    return owned(domains.get_domain(view.actor, domain_id), view.customer.id, _("Dominio non trovato."))


def _domain_context(view, domain, **extra) -> dict:
    row = domain.check
    advice = {a["record"]: a for a in (row.details.get("advice") or [])} if row and row.details else {}
    spf = advice.get("spf") or {}
    own_spf = spf["found"][0] if spf.get("status") == "wrong" and spf.get("found") else None
    txt = domain_checks.verification_txt(domain)
    dkim_records = dkim.published_records(domain)
    records = dnscheck.records_to_publish(
        domain.name, domain.verification_token if txt else None, own_spf, dkim_records
    )
    return {
        "customer": view.customer,
        "domain": domain,
        "can_manage": view.can_manage,
        "is_staff": view.actor.is_staff,
        "check": row,
        "verdict": row.verdict if row else None,
        "verdict_label": domain_checks.verdict_label(row.verdict if row else None),
        "reason": domain_checks.describe(row),
        "verification_txt": txt,
        "records": records,
        "snippet": dnscheck.zone_snippet(records),
        "gate": domain_checks.migration_gate(domain),
        "mx_host": current_app.config["PROVIDER_MX_HOST"],
        "advice_records": dnscheck.ADVICE,
        "dkim_records": dkim_records,
        "dkim_state_label": dkim.state_label,
        "dkim_dns_label": dkim.dns_status_label,
        "status_label": dnscheck.status_label,
        "errors": {},
        "form": {},
        **extra,
    }


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>", endpoint="domain")
def domain_page(customer_id: int, domain_id: int):
    view = customer_view(customer_id)
    return render(DOMAIN_PAGE, **_domain_context(view, _domain(view, domain_id)))


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/check", methods=["POST"])
def domain_check(customer_id: int, domain_id: int):
    """Check now. htmx: each record's row, which then loads its own result; a plain browser: the
    whole check, then the page."""
    view = customer_view(customer_id)
    domain = _domain(view, domain_id)
    if is_fragment_request():
        return fragment("portal/_dns_results.html", **_domain_context(view, domain))
    domain, report, recorded = domain_checks.check_now(view.actor, domain.id)
    if report is not None:
        dkim.check_domain(view.actor, domain.id)
    if recorded is not None and recorded.activated:
        flash(_("Dominio %(d)s attivato: la prova è nel DNS.", d=domain.display_name), "ok")
    elif report is None:
        flash(_("Il dominio è appena stato verificato: ecco l'ultimo esito."), "ok")
    else:
        flash(_("Verifica fatta: %(state)s.", state=domain_checks.verdict_label(recorded.verdict)), "ok")
    return see_other(url_for("portal.domain", customer_id=customer_id, domain_id=domain.id))


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/check/mx", methods=["POST"])
def domain_check_mx(customer_id: int, domain_id: int):
    view = customer_view(customer_id)
    # The page asks each advice record on its own: the MX row does not wait for them.
    domain, report, recorded = domain_checks.check_now(view.actor, _domain(view, domain_id).id, advice=False)
    return fragment(
        "portal/_dns_mx_result.html",
        report=report,
        recorded=recorded,
        **_domain_context(view, domain),
    )


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/check/dkim", methods=["POST"])
def domain_check_dkim(customer_id: int, domain_id: int):
    """The DKIM records looked up now (a rotation's new key starts signing once its record is seen)."""
    view = customer_view(customer_id)
    domain = _domain(view, domain_id)
    dkim.check_domain(view.actor, domain.id)
    return fragment("portal/_dns_dkim_row.html", **_domain_context(view, domain))


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/check/<record>", methods=["POST"])
def domain_check_advice(customer_id: int, domain_id: int, record: str):
    view = customer_view(customer_id)
    domain, advice = domain_checks.advice_now(view.actor, _domain(view, domain_id).id, record)
    return fragment(
        "portal/_dns_advice_row.html",
        advice=advice,
        domain=domain,
        customer=view.customer,
        advice_label=dnscheck.advice_label,
    )


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/dkim/rotate", methods=["POST"])
def domain_dkim_rotate(customer_id: int, domain_id: int):
    """Staff: a new DKIM key, signing once its record is seen (the service refuses anyone else)."""
    view = customer_view(customer_id)
    domain = _domain(view, domain_id)
    try:
        key = dkim.rotate(view.actor, domain.id)
    except FORM_ERRORS as e:
        return failed(
            e,
            DOMAIN_PAGE,
            "portal/_domain_dkim.html",
            **_domain_context(view, domain, notice=("error", error_text(e))),
        )
    if key.state == "active":
        message = _("Chiave DKIM %(s)s creata: firma da ora.", s=key.selector)
    else:
        message = _(
            "Nuova chiave DKIM %(s)s: pubblica il suo record, firmerà quando la verifica DNS lo trova.",
            s=key.selector,
        )
    return done(
        message,
        url_for("portal.domain", customer_id=customer_id, domain_id=domain.id),
        "portal/_domain_dkim.html",
        lambda: _domain_context(view, domain, notice=("ok", message)),
    )


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/migration", methods=["POST"])
def domain_migration_override(customer_id: int, domain_id: int):
    """Staff let the domain's migrations start before its MX propagated (the service refuses anyone else)."""
    view = customer_view(customer_id)
    domain = _domain(view, domain_id)
    form = {"reason": request.form.get("reason", "")}
    try:
        domain_checks.allow_migration(view.actor, domain.id, form["reason"])
    except FORM_ERRORS as e:
        return failed(
            e,
            DOMAIN_PAGE,
            "portal/_domain_gate.html",
            **_domain_context(view, domain, form=form, errors=field_errors(e)),
        )
    message = _("Migrazioni del dominio %(d)s consentite.", d=domain.display_name)
    return done(
        message,
        url_for("portal.domain", customer_id=customer_id, domain_id=domain.id),
        "portal/_domain_gate.html",
        lambda: _domain_context(view, domain, notice=("ok", message)),
    )
