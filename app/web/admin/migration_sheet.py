"""A domain's migrations from a sheet, in the back office: upload, preview, create.

"Anteprima" reads and checks the whole file (app/services/migration/sheet.py) and shows the rows
that will be created and every problem at its row and column; nothing is written. When the
sheet is clean the page carries the checked rows sealed with the vault (the passwords encrypted,
bound to this user, this domain and half an hour) in its confirmation form, so "Crea" creates
exactly what was shown without the file being picked again and without the sheet being kept
on the server. The rules are the service's.
"""

from __future__ import annotations

from flask import current_app, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.models.enums import ImapSecurity
from app.models.migrations import OPEN_STATES
from app.services import domains
from app.services.errors import DomainError, ValidationError
from app.services.migration import migrations, sheet
from app.web import accepts_upload, current_actor, staff_required
from app.web.admin import bp
from app.web.respond import FORM_ERRORS, done, failed, field_errors, render

PAGE = "admin/migration_sheet.html"
DEFAULT_FIELDS = ("host", "port", "security")


def _form() -> dict:
    values = {k: (request.form.get(k) or "").strip() for k in DEFAULT_FIELDS}
    values["verify_cert"] = request.form.get("verify_cert") == "1"
    values["sync"] = request.form.get("sync") == "1"
    return values


def _context(domain, form: dict | None = None, **more) -> dict:
    mb = current_app.config["IMPORT_MAX_BYTES"] / (1024 * 1024)
    open_states = {str(s) for s in OPEN_STATES}
    open_count = sum(
        1 for m in migrations.list_migrations(current_actor(), domain.id) if m.state in open_states
    )
    return {
        "domain": domain,
        "customer": domain.customer,
        "form": form or {"host": "", "port": "", "security": "ssl", "verify_cert": True, "sync": False},
        "securities": [s.value for s in ImapSecurity],
        "errors": {},
        "preview": None,
        "token": None,
        "several_sheets": False,
        "where": sheet.where,
        "max_rows": f"{sheet.row_limit():,}".replace(",", "."),
        "max_mb": f"{mb:.0f}",
        "open_count": open_count,
        **more,
    }


def too_large():
    """A request past the upload's size is refused before the view (and its login and staff checks)
    runs: what the view would answer someone else (sign in; a customer the 404 of a missing page),
    and to staff the page with the limit beside the file field."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not current_user.is_staff:
        return render("error.html", "_error.html", status=404, message=_("Pagina non trovata."))
    try:
        domain = domains.get_domain(current_actor(), request.view_args["domain_id"])
    except DomainError:
        return None
    mb = current_app.config["IMPORT_MAX_BYTES"] / (1024 * 1024)
    message = _("Il file è troppo grande: al massimo %(mb)s MB.", mb=f"{mb:.0f}")
    return render(PAGE, status=413, **_context(domain, errors={"file": message}))


@bp.route("/domains/<int:domain_id>/migrations/sheet", methods=["GET", "POST"], endpoint="migration_sheet")
@staff_required
@accepts_upload("IMPORT_MAX_BYTES", too_large)
def migration_sheet(domain_id: int):
    actor = current_actor()
    domain = sheet.check_allowed(actor, domain_id)
    if request.method == "GET":
        return render(PAGE, **_context(domain))
    if request.form.get("token"):
        return _confirm(domain)
    form = _form()
    file = request.files.get("file")
    try:
        if file is None or not file.filename:
            raise ValidationError.one("file", _("Scegli il file da caricare (.xlsx o .csv)."))
        data = file.stream.read(current_app.config["IMPORT_MAX_BYTES"] + 1)
        preview = sheet.check(actor, domain.id, data, file.filename, form)
    except FORM_ERRORS as e:
        return failed(e, PAGE, **_context(domain, form, errors=field_errors(e, "file")))
    context = _context(
        domain,
        form,
        preview=preview,
        errors=dict(preview.form_errors),
        several_sheets=len(preview.sheet_names) > 1,
        token=sheet.seal_preview(actor, preview) if preview.ok else None,
    )
    return render(PAGE, status=200 if preview.ok else 422, **context)


def _confirm(domain):
    try:
        created = sheet.confirm(current_actor(), domain.id, request.form.get("token"))
    except sheet.SheetInvalid as e:
        preview = e.preview
        context = _context(
            domain,
            _form(),
            preview=preview,
            errors=dict(preview.form_errors),
            several_sheets=len(preview.sheet_names) > 1,
        )
        return render(PAGE, status=422, **context)
    except FORM_ERRORS as e:
        return failed(e, PAGE, **_context(domain, _form(), errors=field_errors(e, "file")))
    message = ngettext(
        "Creata %(num)d migrazione in bozza per %(domain)s: ora esegui la verifica di ciascuna.",
        "Create %(num)d migrazioni in bozza per %(domain)s: ora esegui la verifica di ciascuna.",
        len(created),
        domain=domain.display_name,
    )
    return done(message, url_for("admin.migrations", domain_id=domain.id))
