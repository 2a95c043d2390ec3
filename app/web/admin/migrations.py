"""Migrations from the old provider in the back office: per domain, enter a mailbox's migration,
check it (preflight), start it, cancel it, start a failed one again; follow the progress live; the
report and its download; and support's working list of every customer's migrations under way.

The pages share their templates and helpers with the portal's read-only ones
(app/web/portal/migrations.py). Every rule is in app/services/migration/.
"""

from __future__ import annotations

from flask import request, url_for
from flask_babel import gettext as _

from app.services import domains
from app.services.migration import migrations, progress
from app.services.migration.migrations import get_migration
from app.web import current_actor, staff_required
from app.web.admin import bp
from app.web.portal import migrations as pages
from app.web.portal.common import CustomerView, confirm
from app.web.respond import FORM_ERRORS, done, failed, field_errors, render

LIST_PAGE, LIST_FRAGMENT = "admin/migrations.html", "portal/_migration_list.html"
DETAIL_PAGE, DETAIL_FRAGMENT = "admin/migration.html", "portal/_migration_detail.html"
FORM_FIELDS = ("mailbox", "host", "port", "security", "username")


def _form_values(form) -> dict:
    """The form's fields as the service takes them (the password only here, never sent back)."""
    values = {k: form.get(k, "") for k in FORM_FIELDS}
    values["verify_cert"] = form.get("verify_cert") == "1"
    values["sync"] = form.get("sync") == "1"
    values["password"] = form.get("password", "")
    return values


def _blank_form(again=None) -> dict:
    """A new entry: the defaults, or a finished migration's server and account to enter it again."""
    if again is not None:
        return {
            "mailbox": again.mailbox.address,
            "host": again.host,
            "port": again.port,
            "security": again.security,
            "verify_cert": again.verify_cert,
            "sync": again.sync,
            "username": again.username,
        }
    return {
        "mailbox": "",
        "host": "",
        "port": 993,
        "security": "ssl",
        "verify_cert": True,
        "sync": False,
        "username": "",
    }


def _list_ctx(actor, domain, form=None, errors=None, **extra) -> dict:
    return pages.list_context(
        "admin",
        actor,
        domain,
        form=form or _blank_form(),
        errors=errors or {},
        mailboxes=progress.mailbox_choices(actor, domain.id),
        **extra,
    )


@bp.route("/domains/<int:domain_id>/migrations", methods=["GET", "POST"], endpoint="migrations")
@staff_required
def migrations_page(domain_id: int):
    """The domain's migrations and the form to enter one; for htmx (polling) the list only."""
    actor = current_actor()
    domain = domains.get_domain(actor, domain_id)
    if request.method == "GET":
        form = None
        again_id = request.args.get("again", "")
        if again_id.isdigit() and len(again_id) < 10:
            earlier = get_migration(actor, int(again_id))
            if earlier.domain_id == domain.id:
                form = _blank_form(earlier)
        return render(LIST_PAGE, LIST_FRAGMENT, **_list_ctx(actor, domain, form))
    values = _form_values(request.form)
    try:
        row = migrations.create(actor, domain.id, values)
    except FORM_ERRORS as e:
        shown = {k: v for k, v in values.items() if k != "password"}
        return failed(e, LIST_PAGE, **_list_ctx(actor, domain, shown, field_errors(e, "_form")))
    message = _("Migrazione di %(a)s inserita: ora verificala.", a=row.mailbox.address)
    return done(message, url_for("admin.migration", migration_id=row.id), navigate=True)


@bp.route("/migrations", endpoint="migrations_working")
@staff_required
def migrations_working():
    """Every customer's migrations queued, running or failed: support's working list."""
    actor = current_actor()
    limit = progress.WORKING_LIMIT
    rows = progress.working_list(actor, limit + 1)  # one more: whether the list is cut
    ctx = {**pages.kit("admin", 0), "rows": rows[:limit], "live_url": url_for("admin.migrations_working")}
    ctx["active"] = any(p.active for p in rows[:limit])
    ctx["cut"] = len(rows) > limit
    return render("admin/migrations_working.html", "admin/_migrations_working.html", **ctx)


def _detail(actor, migration_id: int, status: int = 200, **extra):
    m = get_migration(actor, migration_id)
    return render(
        DETAIL_PAGE, DETAIL_FRAGMENT, status=status, **pages.detail_context("admin", actor, m, **extra)
    )


@bp.route("/migrations/<int:migration_id>", endpoint="migration")
@staff_required
def migration_page(migration_id: int):
    return _detail(current_actor(), migration_id)


def _act(migration_id: int, action, message):
    """Run a service action; the detail page again, with the outcome or the refusal's reason."""
    actor = current_actor()
    try:
        row = action(actor, migration_id)
    except FORM_ERRORS as e:
        m = get_migration(actor, migration_id)
        return failed(
            e, DETAIL_PAGE, DETAIL_FRAGMENT, **pages.detail_context("admin", actor, m, notice=e.message)
        )
    return done(message(row), url_for("admin.migration", migration_id=row.id), navigate=True)


@bp.route("/migrations/<int:migration_id>/preflight", methods=["POST"], endpoint="migration_preflight")
@staff_required
def migration_preflight(migration_id: int):
    def outcome(row) -> str:
        if migrations.checking(row) is not None:  # the job at work: the page polls until it ends
            return _("Verifica di %(a)s in corso: l'esito appare qui appena pronto.", a=row.mailbox.address)
        return _("Verifica riuscita: la migrazione di %(a)s può partire.", a=row.mailbox.address)

    return _act(migration_id, migrations.preflight, outcome)


@bp.route("/migrations/<int:migration_id>/start", methods=["POST"], endpoint="migration_start")
@staff_required
def migration_start(migration_id: int):
    return _act(
        migration_id,
        migrations.start,
        lambda row: _("Migrazione di %(a)s avviata.", a=row.mailbox.address),
    )


@bp.route("/migrations/<int:migration_id>/finish", methods=["POST"], endpoint="migration_finish")
@staff_required
def migration_finish(migration_id: int):
    return _act(
        migration_id,
        migrations.finish,
        lambda row: _("Ultima copia di %(a)s chiesta: poi la migrazione si conclude.", a=row.mailbox.address),
    )


@bp.route("/migrations/<int:migration_id>/cancel", methods=["GET", "POST"], endpoint="migration_cancel")
@staff_required
def migration_cancel(migration_id: int):
    """GET asks first (browsers without JavaScript; htmx asks with hx-confirm), POST cancels."""
    actor = current_actor()
    if request.method == "GET":
        m = get_migration(actor, migration_id)
        return confirm(
            CustomerView(actor, m.domain.customer),
            title=_("Annullare la migrazione di %(a)s?", a=m.mailbox.address),
            text=_(
                "Una copia in corso si ferma al prossimo gruppo di messaggi; quanto già copiato resta nella "
                "casella. La password della vecchia casella viene cancellata."
            ),
            action=url_for("admin.migration_cancel", migration_id=m.id),
            button=_("Annulla la migrazione"),
            cancel=url_for("admin.migration", migration_id=m.id),
        )
    return _act(
        migration_id,
        migrations.cancel,
        lambda row: _("Migrazione di %(a)s annullata.", a=row.mailbox.address),
    )


@bp.route("/migrations/<int:migration_id>/resoconto.<fmt>", endpoint="migration_report")
@staff_required
def migration_report(migration_id: int, fmt: str):
    return pages.report_download(current_actor(), migration_id, fmt)
