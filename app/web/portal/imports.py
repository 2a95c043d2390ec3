"""Bulk provisioning from a spreadsheet: the imports page (template, upload, history), one import's
page (preview with every problem at its cell, then the apply job's progress, then the outcome with
the report and the generated passwords), and their downloads.

The same views serve the back office (app/web/admin/imports.py, staff acting for a customer): each
takes the area whose endpoints its links use. Every rule is in app/services/imports.py.
"""

from __future__ import annotations

import io

from flask import Response, current_app, request, send_file, url_for
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from flask_login import current_user

from app.models.enums import ImportOp, ImportState, RowOutcome
from app.services import imports, jobs, labels
from app.services.errors import DomainError, ValidationError
from app.web import accepts_upload, jobs_ui
from app.web.portal import bp
from app.web.portal.common import customer_view, owned
from app.web.respond import FORM_ERRORS, failed, field_errors, go_to, render

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# The job component's event when an apply ends: the import's page reloads its outcome.
FINISHED = "import-finished"
PROBLEMS_PAGE = 100
ROWS_PAGE = 50
OPS = (ImportOp.MAILBOX, ImportOp.ALIAS, ImportOp.LIST, ImportOp.MEMBER)
OP_TITLES = {
    ImportOp.MAILBOX: lambda: _("Caselle"),
    ImportOp.ALIAS: lambda: _("Alias"),
    ImportOp.LIST: lambda: _("Liste di distribuzione"),
    ImportOp.MEMBER: lambda: _("Membri delle liste"),
}


def page_template(area: str, name: str) -> str:
    """The page's template: shared by both areas, whose links it builds from `area`."""
    return f"imports/{name}_page.html"


def where(problem: dict) -> str:
    """ "Foglio Caselle, riga 14, colonna B": where a problem is, as far as it is known."""
    parts = []
    if problem.get("sheet"):
        parts.append(_("Foglio %(s)s", s=problem["sheet"]))
    if problem.get("row"):
        parts.append(_("riga %(n)d", n=problem["row"]) if parts else _("Riga %(n)d", n=problem["row"]))
    if problem.get("column"):
        parts.append(
            _("colonna %(c)s", c=problem["column"]) if parts else _("Colonna %(c)s", c=problem["column"])
        )
    return ", ".join(parts)


def counts_line(imp) -> str:
    """The history's short account of an import: what it would create, or what it did."""
    if imp.result:
        total = {o: sum((per or {}).get(o, 0) for per in imp.result.values()) for o in RowOutcome}
        parts = [
            ngettext("%(num)s creato", "%(num)s creati", total[RowOutcome.CREATED]),
            ngettext("%(num)s già presente", "%(num)s già presenti", total[RowOutcome.PRESENT]),
            ngettext("%(num)s errore", "%(num)s errori", total[RowOutcome.ERROR]),
        ]
    else:
        parts = [
            ngettext("%(num)s da creare", "%(num)s da creare", imports.to_create(imp)),
            ngettext("%(num)s problema", "%(num)s problemi", imp.problem_count),
        ]
    return " · ".join(parts)


def _max_mb() -> str:
    return format_decimal(current_app.config["IMPORT_MAX_BYTES"] / (1024 * 1024), format="#,##0.#")


def _list_context(area: str, view, errors=None) -> dict:
    return {
        "area": area,
        "customer": view.customer,
        "can_manage": view.can_manage,
        "history": imports.imports_for_customer(view.actor, view.customer.id),
        "errors": errors or {},
        "max_mb": _max_mb(),
        "max_rows": labels.number(current_app.config["IMPORT_MAX_ROWS"]),
        "ttl_hours": format_decimal(current_app.config["IMPORT_TTL_HOURS"], format="#,##0.#"),
        "counts_line": counts_line,
    }


def list_page(area: str, customer_id: int):
    view = customer_view(customer_id)
    return render(page_template(area, "index"), **_list_context(area, view))


def upload(area: str, customer_id: int):
    """Read the file and check it in full: the preview's page, or the form again with why not."""
    view = customer_view(customer_id)
    file = request.files.get("file")
    try:
        if file is None or not file.filename:
            raise ValidationError.one("file", _("Scegli il file da caricare (.xlsx o .csv)."))
        data = file.stream.read(current_app.config["IMPORT_MAX_BYTES"] + 1)
        imp = imports.preview(view.actor, view.customer.id, data, file.filename)
    except FORM_ERRORS as e:
        ctx = _list_context(area, view, errors=field_errors(e, "file"))
        return failed(e, page_template(area, "index"), **ctx)
    return go_to(url_for(f"{area}.import_detail", customer_id=view.customer.id, import_id=imp.id))


def too_large(area: str):
    """A request past the upload's size: the imports page, the limit said beside the file field
    (None, for the plain 413 page, to someone who may not see it)."""
    if not current_user.is_authenticated:
        return None
    try:
        view = customer_view(request.view_args["customer_id"])
    except DomainError:
        return None
    message = _("Il file è troppo grande: al massimo %(mb)s MB.", mb=_max_mb())
    return render(page_template(area, "index"), status=413, **_list_context(area, view, {"file": message}))


def template_download(customer_id: int):
    view = customer_view(customer_id)
    name, data = imports.template_for(view.actor, view.customer.id)
    return _attachment(name, data)


def _attachment(name: str, data: bytes) -> Response:
    """An .xlsx download: the name as RFC 6266 wants it (an ASCII fallback and filename* in UTF-8),
    whatever the uploaded file was called."""
    response = send_file(io.BytesIO(data), mimetype=XLSX, as_attachment=True, download_name=name)
    response.headers["Cache-Control"] = "no-store"
    return response


def _import(view, import_id: int):
    return owned(imports.get_import(view.actor, import_id), view.customer.id, _("Importazione non trovata."))


def _job_of(view, imp):
    if not imp.job_id:
        return None
    return jobs_ui.shown(jobs.get_job(view.actor, imp.job_id))


def _sections(imp) -> list[dict]:
    """Per kind present in the file: its counts and the first rows (file order)."""
    out = []
    for op in OPS:
        counts = (imp.counts or {}).get(op, {})
        if not sum(counts.values()):
            continue
        out.append({"op": op, "title": OP_TITLES[op](), "counts": counts})
    return out


def detail_context(area: str, view, imp, **extra) -> dict:
    ctx = {
        "area": area,
        "customer": view.customer,
        "can_manage": view.can_manage,
        "imp": imp,
        "sections": _sections(imp),
        "problems": (imp.problems or [])[:PROBLEMS_PAGE],
        "problems_next": PROBLEMS_PAGE if len(imp.problems or []) > PROBLEMS_PAGE else None,
        "problems_unlisted": max(0, imp.problem_count - len(imp.problems or [])),
        "where": where,
        "to_create": imports.to_create(imp),
        "resumable": imports.resumable(imp),
        "generated_available": imports.generated_available(imp),
        "errors": {},
        "reload_url": url_for(f"{area}.import_detail", customer_id=view.customer.id, import_id=imp.id),
        **extra,
    }
    shown = _job_of(view, imp)
    ctx.update(shown or {"job": None, "previous": None})
    if imp.state == ImportState.PREVIEWED:
        ctx["first_rows"] = {s["op"]: _rows(imp, op=s["op"]) for s in ctx["sections"]}
    elif imp.finished:
        found = _rows(imp, only_problems=True)
        ctx["failed_rows"] = found if found[0] else None
        ctx["outcomes"] = _outcomes(imp)
    return ctx


def _rows(imp, **kw) -> tuple[list, bool]:
    """A page of the import's rows, and whether more follow."""
    found = imports.rows_page(imp, limit=ROWS_PAGE + 1, **kw)
    return found[:ROWS_PAGE], len(found) > ROWS_PAGE


def _outcomes(imp) -> list[dict]:
    result = imp.result or {}
    return [
        {"op": op, "title": OP_TITLES[op](), "counts": result.get(op, {})}
        for op in OPS
        if sum(result.get(op, {}).values())
    ]


def detail(area: str, customer_id: int, import_id: int):
    """The import's page; for htmx (the job ended) its state section only."""
    view = customer_view(customer_id)
    imp = _import(view, import_id)
    return render(page_template(area, "detail"), "imports/_state.html", **detail_context(area, view, imp))


def _after(name: str) -> int:
    try:
        return max(-1, min(int(request.args.get(name, -1)), 2**31 - 1))
    except ValueError:
        return -1


def rows(area: str, customer_id: int, import_id: int):
    """More rows of one kind ("Mostra altre", htmx), or of those with problems; a plain page without JavaScript."""
    view = customer_view(customer_id)
    imp = _import(view, import_id)
    op = request.args.get("op", "")
    only_problems = request.args.get("problems") == "1"
    if op not in OPS:
        op = None
    found, more = _rows(imp, op=op, only_problems=only_problems, after=_after("after"))
    ctx = {
        "area": area,
        "customer": view.customer,
        "imp": imp,
        "op": op,
        "only_problems": only_problems,
        "title": OP_TITLES[op]() if op else _("Righe con errore"),
        "rows": found,
        "more": more,
        "finished": imp.finished,
    }
    return render(page_template(area, "rows"), "imports/_rows_more.html", **ctx)


def problems(area: str, customer_id: int, import_id: int):
    """More problems of the preview ("Mostra altri", htmx), or a plain page of them."""
    view = customer_view(customer_id)
    imp = _import(view, import_id)
    kept = imp.problems or []
    try:
        start = max(0, min(int(request.args.get("start", 0)), len(kept)))
    except ValueError:
        start = 0
    ctx = {
        "area": area,
        "customer": view.customer,
        "imp": imp,
        "problems": kept[start : start + PROBLEMS_PAGE],
        "problems_next": start + PROBLEMS_PAGE if len(kept) > start + PROBLEMS_PAGE else None,
        "problems_unlisted": max(0, imp.problem_count - len(kept)),
        "where": where,
    }
    return render(page_template(area, "problems"), "imports/_problems_more.html", **ctx)


def apply(area: str, customer_id: int, import_id: int):
    """Start the job: every row, or (scope=valid) only the rows without problems."""
    view = customer_view(customer_id)
    imp = _import(view, import_id)
    try:
        imports.start_apply(view.actor, imp.id, valid_only=request.form.get("scope") == "valid")
    except FORM_ERRORS as e:
        ctx = detail_context(area, view, imp, notice=e.message)
        return failed(e, page_template(area, "detail"), **ctx)
    return go_to(url_for(f"{area}.import_detail", customer_id=view.customer.id, import_id=imp.id))


def resume(area: str, customer_id: int, import_id: int):
    view = customer_view(customer_id)
    imp = _import(view, import_id)
    try:
        imports.resume(view.actor, imp.id)
    except FORM_ERRORS as e:
        ctx = detail_context(area, view, imp, notice=e.message)
        return failed(e, page_template(area, "detail"), **ctx)
    return go_to(url_for(f"{area}.import_detail", customer_id=view.customer.id, import_id=imp.id))


def report(customer_id: int, import_id: int):
    view = customer_view(customer_id)
    imp = _import(view, import_id)
    name, data = imports.report(view.actor, imp.id)
    return _attachment(name, data)


def passwords(area: str, customer_id: int, import_id: int):
    """The generated passwords, once, for the user's own current password."""
    view = customer_view(customer_id)
    imp = _import(view, import_id)
    try:
        name, data = imports.take_generated_passwords(
            view.actor, imp.id, request.form.get("current_password", "")
        )
    except FORM_ERRORS as e:
        ctx = detail_context(area, view, imp, errors=field_errors(e, "current_password"))
        return failed(e, page_template(area, "detail"), **ctx)
    return _attachment(name, data)


@jobs_ui.summary("bulk_import", event=FINISHED)
def import_summary(job) -> str:
    """What an ended apply did, in one sentence: created, already there, errors."""
    result = job.result or {}
    totals = {RowOutcome.CREATED: 0, RowOutcome.PRESENT: 0, RowOutcome.ERROR: 0, RowOutcome.SKIPPED: 0}
    for op in OPS:
        for outcome, n in (result.get(op) or {}).items():
            if outcome in totals:
                totals[outcome] += n
    parts = [
        ngettext("%(num)d elemento creato", "%(num)d elementi creati", totals[RowOutcome.CREATED]),
        ngettext("%(num)d già presente", "%(num)d già presenti", totals[RowOutcome.PRESENT]),
        ngettext("%(num)d errore", "%(num)d errori", totals[RowOutcome.ERROR]),
    ]
    if totals[RowOutcome.SKIPPED]:
        parts.append(
            ngettext("%(num)d riga non applicata", "%(num)d righe non applicate", totals[RowOutcome.SKIPPED])
        )
    return _("Importazione finita: %(what)s.", what=", ".join(parts))


# The portal's routes.

BASE = "/customers/<int:customer_id>/imports"
ONE = BASE + "/<int:import_id>"


@bp.route(BASE, methods=["GET", "POST"], endpoint="imports")
@accepts_upload("IMPORT_MAX_BYTES", lambda: too_large("portal"))
def imports_page(customer_id: int):
    if request.method == "GET":
        return list_page("portal", customer_id)
    return upload("portal", customer_id)


@bp.route(BASE + "/modello.xlsx", endpoint="import_template")
def import_template(customer_id: int):
    return template_download(customer_id)


@bp.route(ONE, endpoint="import_detail")
def import_detail(customer_id: int, import_id: int):
    return detail("portal", customer_id, import_id)


@bp.route(ONE + "/rows", endpoint="import_rows")
def import_rows(customer_id: int, import_id: int):
    return rows("portal", customer_id, import_id)


@bp.route(ONE + "/problems", endpoint="import_problems")
def import_problems(customer_id: int, import_id: int):
    return problems("portal", customer_id, import_id)


@bp.route(ONE + "/apply", methods=["POST"], endpoint="import_apply")
def import_apply(customer_id: int, import_id: int):
    return apply("portal", customer_id, import_id)


@bp.route(ONE + "/resume", methods=["POST"], endpoint="import_resume")
def import_resume(customer_id: int, import_id: int):
    return resume("portal", customer_id, import_id)


@bp.route(ONE + "/resoconto.xlsx", endpoint="import_report")
def import_report(customer_id: int, import_id: int):
    return report(customer_id, import_id)


@bp.route(ONE + "/passwords", methods=["POST"], endpoint="import_passwords")
def import_passwords(customer_id: int, import_id: int):
    return passwords("portal", customer_id, import_id)
