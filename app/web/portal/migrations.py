"""A domain's migrations from the old provider, read-only for the customer: each mailbox's progress
(live while a copy runs), the domain's totals, and a migration's report with its download.

Staff enter, check, start and cancel migrations in the back office (app/web/admin/migrations.py),
whose pages share these templates and helpers. Every rule is in app/services/migration/.
"""

from __future__ import annotations

from flask import Response, send_file, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models.enums import MigrationState
from app.services import domain_checks, domains
from app.services.errors import NotFound
from app.services.migration import progress
from app.services.migration.migrations import get_migration, start_gate
from app.web.portal import bp
from app.web.portal.common import customer_view, owned
from app.web.respond import render

STATE_LABELS = progress.STATE_LABELS
STATE_BADGES = {
    MigrationState.DRAFT: "disabled",
    MigrationState.PREFLIGHT_OK: "open",
    MigrationState.QUEUED: "open",
    MigrationState.RUNNING: "open",
    MigrationState.SYNCING: "open",
    MigrationState.DONE: "active",
    MigrationState.FAILED: "rejected",
    MigrationState.CANCELLED: "disabled",
}
SECURITY_LABELS = {
    "ssl": _l("SSL/TLS (dal primo byte)"),
    "starttls": "STARTTLS",
    "none": _l("Nessuna (in chiaro)"),
}
FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def state_label(state: str) -> str:
    return str(STATE_LABELS.get(state, state))


def rate_label(rate: float | None) -> str:
    if not rate:
        return ""
    return _("%(n)s messaggi/s", n=format_decimal(rate, format="#,##0.#" if rate < 10 else "#,##0"))


def kit(area: str, customer_id: int) -> dict:
    """What the shared templates need to speak of migrations and link them in `area`."""

    def one(m) -> str:
        if area == "admin":
            return url_for("admin.migration", migration_id=m.id)
        return url_for("portal.migration", customer_id=customer_id, migration_id=m.id)

    def report_url(m, fmt: str) -> str:
        if area == "admin":
            return url_for("admin.migration_report", migration_id=m.id, fmt=fmt)
        return url_for("portal.migration_report", customer_id=customer_id, migration_id=m.id, fmt=fmt)

    return {
        "area": area,
        "staff_actions": area == "admin",
        "state_label": state_label,
        "state_badges": STATE_BADGES,
        "security_labels": SECURITY_LABELS,
        "rate_label": rate_label,
        "migration_url": one,
        "report_url": report_url,
        "skipped_of": progress.skipped_of,
        "errors_of": progress.errors_of,
    }


def list_context(area: str, actor, domain, **extra) -> dict:
    rows, totals = progress.domain_progress(actor, domain.id)
    if area == "admin":
        live_url = url_for("admin.migrations", domain_id=domain.id)
    else:
        live_url = url_for("portal.migrations", customer_id=domain.customer_id, domain_id=domain.id)
    return {
        **kit(area, domain.customer_id),
        "customer": domain.customer,
        "domain": domain,
        "rows": rows,
        "totals": totals,
        "live_url": live_url,
        "gate": domain_checks.migration_gate(domain),
        **extra,
    }


def detail_context(area: str, actor, m, **extra) -> dict:
    live_url = (
        url_for("admin.migration", migration_id=m.id)
        if area == "admin"
        else url_for("portal.migration", customer_id=m.customer_id, migration_id=m.id)
    )
    return {
        **kit(area, m.customer_id),
        "customer": m.domain.customer,
        "domain": m.domain,
        "m": m,
        "p": progress.progress(m),
        "live_url": live_url,
        "gate": start_gate(m),
        "notice": None,
        **extra,
    }


def report_download(actor, migration_id: int, fmt: str) -> Response:
    if fmt not in FORMATS:
        raise NotFound(_("Resoconto non trovato."))
    maker = progress.report_csv if fmt == "csv" else progress.report_json
    name, data = maker(actor, migration_id)
    import io

    response = send_file(io.BytesIO(data), mimetype=FORMATS[fmt], as_attachment=True, download_name=name)
    response.headers["Cache-Control"] = "no-store"
    return response


# The portal's routes: read-only.


def _domain(view, domain_id: int):
    return owned(domains.get_domain(view.actor, domain_id), view.customer.id, _("Dominio non trovato."))


def _migration(view, migration_id: int):
    return owned(get_migration(view.actor, migration_id), view.customer.id, _("Migrazione non trovata."))


@bp.route("/customers/<int:customer_id>/domains/<int:domain_id>/migrations", endpoint="migrations")
def migrations_page(customer_id: int, domain_id: int):
    """The domain's migrations; for htmx (the page polls while a copy runs) the list only."""
    view = customer_view(customer_id)
    ctx = list_context("portal", view.actor, _domain(view, domain_id))
    return render("portal/migrations.html", "portal/_migration_list.html", **ctx)


@bp.route("/customers/<int:customer_id>/migrations/<int:migration_id>", endpoint="migration")
def migration_page(customer_id: int, migration_id: int):
    """One migration: progress, report; for htmx (polling) its live part only."""
    view = customer_view(customer_id)
    ctx = detail_context("portal", view.actor, _migration(view, migration_id))
    return render("portal/migration.html", "portal/_migration_detail.html", **ctx)


@bp.route(
    "/customers/<int:customer_id>/migrations/<int:migration_id>/resoconto.<fmt>", endpoint="migration_report"
)
def migration_report(customer_id: int, migration_id: int, fmt: str):
    view = customer_view(customer_id)
    return report_download(view.actor, _migration(view, migration_id).id, fmt)
