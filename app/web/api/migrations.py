"""JSON API /api/v1: a domain's migrations from the old provider (app/services/migration/migrations.py).

Staff enter a migration per mailbox, run its preflight (both logins and a dry run, nothing
written; refused with the numbers when the mailbox's free quota cannot hold it), start it
(once the domain's MX has propagated, or staff allowed it) and may cancel it. The customer
may read its own. The old password is taken once and never shown again.
"""

from __future__ import annotations

from flask import jsonify, url_for
from flask_babel import lazy_gettext as _l

from app.models import Job
from app.models.enums import ImapSecurity
from app.services.migration import migrations
from app.web.api import body
from app.web.api import serializers as out
from app.web.api.auth import actor
from app.web.api.blueprint import bp
from app.web.api.body import boolean, choice, integer, name_or_id, shape, text
from app.web.api.openapi import WRITE_ERRORS, array_of, documented

MIGRATION_INPUT = shape(
    "MigrationInput",
    mailbox=name_or_id(required=True, description="Our mailbox to fill, of this domain: address or id."),
    host=text(
        required=True, max_len=253, description="The old provider's IMAP server: a host name or an IP."
    ),
    port=integer(minimum=1, maximum=65535, default=993),
    security=choice(
        ImapSecurity,
        default="ssl",
        refusal=_l("Scegli la sicurezza: ssl, starttls o none."),
        description="ssl (from the first byte), starttls or none.",
    ),
    verify_cert=boolean(default=True, description="Verify the old server's certificate."),
    username=text(required=True, max_len=320, description="The old account's user name."),
    sync=boolean(
        default=False,
        description="Keep it in sync until the MX switch: it may start once the domain is active, is copied "
        "again every MIGRATION_SYNC_HOURS, and ends with a final pass once the domain's MX has propagated.",
    ),
    password=text(
        required=True,
        max_len=migrations.MAX_PASSWORD,
        write_only=True,
        description="The old account's password: kept encrypted until the migration is done or cancelled.",
    ),
)


def _answer(row, status: int = 200):
    from app.extensions import db

    job = db.session.get(Job, row.job_id) if row.job_id else None
    return jsonify(out.migration(row, job)), status


@bp.get("/domains/<id:domain_id>/migrations")
@documented("A domain's migrations, newest first.", "migrations", ok=array_of(out.MIGRATION))
def migration_list(domain_id: int):
    rows = migrations.list_migrations(actor(), domain_id)
    return jsonify([out.migration(r) for r in rows])


@bp.post("/domains/<id:domain_id>/migrations")
@documented(
    "Enter a mailbox's migration from the old provider (staff). One open migration per mailbox.",
    "migrations",
    ok=out.MIGRATION,
    status=201,
    body=MIGRATION_INPUT,
    errors=WRITE_ERRORS,
)
def migration_create(domain_id: int):
    data = body.read(meaning=lambda values: migrations.validate_create(actor(), domain_id, values))
    row = migrations.apply_create(actor(), migrations.validate_create(actor(), domain_id, data))
    response, status = _answer(row, 201)
    response.headers["Location"] = url_for("api.migration_get", migration_id=row.id)
    return response, status


@bp.get("/migrations/<id:migration_id>")
@documented("One migration, with its last preflight and report.", "migrations", ok=out.MIGRATION)
def migration_get(migration_id: int):
    return _answer(migrations.get_migration(actor(), migration_id))


@bp.post("/migrations/<id:migration_id>/preflight")
@documented(
    "Check it (staff): a migration_preflight job on the migration queue logs in on both sides and "
    "measures what would be copied, writing nothing; the findings are stored (preflight, preflight_at) "
    "either way. 202 with the migration while the job is at work (its job): poll GET /migrations/{id} "
    "until that job has ended, then read preflight (ok, problem). When the job has already ended, the "
    "check's own answer: 200, or 409 saying why it cannot start (a refused login, folders of the old "
    "mailbox that cannot be read, an inactive mailbox, a quota too small: with the numbers). 409 also "
    "while a check is at work or once the migration has started or ended.",
    "migrations",
    ok=out.MIGRATION,
    also={202: (out.MIGRATION, "The check is queued or at work: the migration, with its job.")},
    errors=(401, 403, 404, 409, 503),
)
def migration_preflight(migration_id: int):
    row = migrations.preflight(actor(), migration_id)
    return _answer(row, 202 if migrations.checking(row) is not None else 200)


@bp.post("/migrations/<id:migration_id>/start")
@documented(
    "Start the copy as a job on the migration queue (staff), after a good preflight or again after a "
    "failure (only what is missing is copied). 409 until the domain's MX has propagated, unless staff "
    "allowed it (POST /domains/{domain_id}/migration-override); a sync migration needs only an active "
    "domain.",
    "migrations",
    ok=out.MIGRATION,
    errors=(401, 403, 404, 409, 503),
)
def migration_start(migration_id: int):
    return _answer(migrations.start(actor(), migration_id))


@bp.post("/migrations/<id:migration_id>/finish")
@documented(
    "End a sync migration now (staff): its next pass is the final one, queued at once when it rests "
    "between passes (after the running one otherwise); then done. 409 when it is not in sync.",
    "migrations",
    ok=out.MIGRATION,
    errors=(401, 403, 404, 409, 503),
)
def migration_finish(migration_id: int):
    return _answer(migrations.finish(actor(), migration_id))


@bp.post("/migrations/<id:migration_id>/cancel")
@documented(
    "Cancel (staff): at once when not running (waiting, queued, or between two sync passes), else at the "
    "copy's next batch. The old password is wiped.",
    "migrations",
    ok=out.MIGRATION,
    errors=(401, 403, 404, 409),
)
def migration_cancel(migration_id: int):
    return _answer(migrations.cancel(actor(), migration_id))


# A whole domain's migrations from a sheet (app/services/migration/sheet.py).

from app.web import accepts_upload  # noqa: E402
from app.web.api.body import Param, any_json, list_of, object_of, response  # noqa: E402

_SHEET_ROW = response(
    "MigrationSheetRow",
    sheet=text(),
    row=integer(description="The row's number as the spreadsheet shows it (the header is row 1)."),
    mailbox=text(),
    username=text(),
    host=text(),
    port=integer(minimum=1, maximum=65535),
    security=choice(ImapSecurity),
    verify_cert=boolean(),
    sync=boolean(),
)
_SHEET_PROBLEM = response(
    "MigrationSheetProblem",
    sheet=text(nullable=True),
    row=integer(nullable=True, description="The row's number as the spreadsheet shows it."),
    column=text(nullable=True, examples=("C",)),
    field=text(nullable=True, examples=("password",)),
    message=text(),
)
MIGRATION_SHEET = response(
    "MigrationSheet",
    domain=text(),
    filename=text(),
    ok=boolean(description="No problem: every row can be created (or was)."),
    dry_run=boolean(),
    rows=list_of(object_of(_SHEET_ROW), description="The migrations the sheet creates (never a password)."),
    errors=list_of(object_of(_SHEET_PROBLEM), description="Empty when ok."),
    form_errors=any_json(description="A default's problem, by field (host, port, security, verify_cert)."),
    created=list_of(object_of(out.MIGRATION), description="The migrations created (empty in a dry run)."),
)
_TRUE_FALSE = ("true", "false", "1", "0")


def _sheet_field(name: str) -> str | None:
    from flask import request

    value = request.form.get(name)
    return value if value not in (None, "") else request.args.get(name)


@bp.post("/domains/<id:domain_id>/migrations/sheet")
@documented(
    "Enter a domain's migrations from a sheet (staff): .xlsx or .csv with the columns mailbox (the "
    "address or its local part), old username, old password, and optionally host, port, security "
    "(Italian headers too: casella, vecchio utente, vecchia password, server, porta, sicurezza). "
    "The defaults for rows without them come as these parameters (in the query string or as fields of "
    "the multipart form). All or nothing: a 422 names every wrong row and column (keys rows.N.field) "
    "and nothing is written; otherwise every row becomes a draft migration. dry_run=true: the preview, "
    "nothing written.",
    "migrations",
    ok=MIGRATION_SHEET,
    status=201,
    also={200: (MIGRATION_SHEET, "dry_run: what would be created.")},
    upload=("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "text/csv"),
    query=(
        Param("host", max_len=253, description="The old IMAP server for rows without one."),
        Param(
            "port", kind="integer", minimum=1, maximum=65535, description="Default: 993 for ssl, else 143."
        ),
        Param("security", enum=ImapSecurity, refusal=_l("Scegli la sicurezza: ssl, starttls o none.")),
        Param(
            "verify_cert",
            enum=_TRUE_FALSE,
            refusal=_l("Deve essere vero o falso."),
            description="Verify the old server's certificate (default true).",
        ),
        Param(
            "sync",
            enum=_TRUE_FALSE,
            refusal=_l("Deve essere vero o falso."),
            description="Keep every migration in sync until the domain's MX switch (default false).",
        ),
        Param(
            "dry_run",
            enum=_TRUE_FALSE,
            refusal=_l("Deve essere vero o falso."),
            description="Check and preview only.",
        ),
        Param("filename", max_len=255, description="The file's name when the body is the file itself."),
    ),
    errors=(401, 403, 404, 409, 413, 422),
)
@accepts_upload("IMPORT_MAX_BYTES", lambda: _sheet_too_large())
def migration_sheet(domain_id: int):
    from app.services import fields
    from app.services.migration import sheet
    from app.web.api import imports as api_imports

    who = actor()
    sheet.check_allowed(who, domain_id)  # another tenant's: 404, a customer: 403, before the file
    data, name = api_imports._uploaded()
    if len(data) > api_imports._max_bytes():
        return api_imports._too_large()
    dry_run = fields.boolean(_sheet_field("dry_run") or False, "dry_run")
    defaults = {k: _sheet_field(k) for k in ("host", "port", "security", "verify_cert", "sync")}
    preview, created = sheet.import_sheet(who, domain_id, data, name, defaults, dry_run=dry_run)
    if not preview.ok:
        raise sheet.SheetInvalid(preview)
    answer = {**preview.to_dict(), "dry_run": dry_run, "created": [out.migration(m) for m in created]}
    return jsonify(answer), 200 if dry_run else 201


def _sheet_too_large():
    from app.web.api import imports as api_imports

    return api_imports._too_large()
