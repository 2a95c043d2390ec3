"""JSON API /api/v1: bulk provisioning from a spreadsheet (app/services/imports.py).

Upload a file (the preview: every problem with its sheet, row and column; nothing else is
written), apply it as a job, then download the report and, once, the generated passwords.
The upload is the one request of the API whose body is not JSON: a multipart form with a
part named "file", or the file itself as the body (.xlsx or .csv, named by ?filename=).
"""

from __future__ import annotations

import io

from flask import current_app, jsonify, request, send_file, url_for
from flask_babel import gettext as _

from app.services import imports, jobs
from app.services.errors import DomainError, ValidationError
from app.web import accepts_upload
from app.web.api import body
from app.web.api import serializers as out
from app.web.api.auth import actor
from app.web.api.blueprint import bp
from app.web.api.body import Param, boolean, shape, text
from app.web.api.openapi import array_of, documented

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"
# The file's name when the body is the file itself and ?filename= is not given.
DEFAULT_NAMES = {XLSX: "foglio.xlsx", CSV: "foglio.csv"}


class UnsupportedUpload(DomainError):
    status = 415


APPLY_INPUT = shape(
    "ImportApply",
    valid_only=boolean(
        default=False,
        description="Apply the rows without problems and leave out the others; without it, "
        "a preview with problems is a 409.",
    ),
)
PASSWORD_CONFIRMATION = shape(
    "PasswordConfirmation",
    current_password=text(
        required=True,
        max_len=1024,
        write_only=True,
        description="The password of the token's user: the generated passwords are given once.",
    ),
)
FILENAME = Param(
    "filename",
    max_len=255,
    description="The file's name when the body is the file itself (its extension says .xlsx or .csv).",
)
IMPORT_LIMIT = Param(
    "limit", kind="integer", default=50, minimum=1, maximum=200, description="How many imports, newest first."
)


def _max_bytes() -> int:
    return current_app.config["IMPORT_MAX_BYTES"]


def _too_large():
    """The 413 of a file over IMPORT_MAX_BYTES, whether stopped while read or after."""
    mb = _max_bytes() / (1024 * 1024)
    shown = f"{mb:.0f}" if mb >= 1 else f"{mb:.2f}".replace(".", ",")
    return jsonify({"error": _("Il file è troppo grande: al massimo %(mb)s MB.", mb=shown)}), 413


def _uploaded() -> tuple[bytes, str]:
    """The file of the request (its bytes, up to one past the limit) and its name."""
    limit = _max_bytes()
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            raise ValidationError.one("file", _("Manca il file: invialo nella parte «file» del modulo."))
        return part.stream.read(limit + 1), part.filename or ""
    if request.mimetype in DEFAULT_NAMES:
        name = body.query()["filename"] or DEFAULT_NAMES[request.mimetype]
        return request.get_data(cache=False), name
    raise UnsupportedUpload(
        _(
            "Invia il file come multipart/form-data (nella parte «file») oppure come corpo "
            "con Content-Type %(xlsx)s o %(csv)s.",
            xlsx=XLSX,
            csv=CSV,
        )
    )


@bp.post("/customers/<id:customer_id>/imports")
@documented(
    "Upload a filled sheet (.xlsx or .csv) and check it in full: the preview lists what each row "
    "will do and every problem with its cell. Nothing but the import is written.",
    "imports",
    ok=out.IMPORT,
    status=201,
    upload=(XLSX, CSV),
    query=(FILENAME,),
    errors=(401, 403, 404, 413, 422),
)
@accepts_upload("IMPORT_MAX_BYTES", _too_large)
def import_create(customer_id: int):
    data, name = _uploaded()
    if len(data) > _max_bytes():
        return _too_large()
    imp = imports.preview(actor(), customer_id, data, name)
    response = jsonify(out.import_preview(imp))
    response.headers["Location"] = url_for("api.import_get", import_id=imp.id)
    return response, 201


@bp.get("/customers/<id:customer_id>/imports")
@documented(
    "A customer's imports, newest first: who, when, which file, what it did.",
    "imports",
    ok=array_of(out.IMPORT_SUMMARY),
    errors=(401, 404, 422),
    query=(IMPORT_LIMIT,),
)
def customer_imports(customer_id: int):
    limit = body.query()["limit"]
    return jsonify([out.import_summary(i) for i in imports.imports_for_customer(actor(), customer_id, limit)])


@bp.get("/imports/<id:import_id>")
@documented(
    "One import: its preview, its outcome once applied and the job applying it.",
    "imports",
    ok=out.IMPORT_DETAIL,
)
def import_get(import_id: int):
    who = actor()
    imp = imports.get_import(who, import_id)
    job = jobs.get_job(who, imp.job_id) if imp.job_id else None
    return jsonify(out.import_detail(imp, job))


@bp.post("/imports/<id:import_id>/apply")
@documented(
    "Apply a preview: a job creates what its rows say; answers with the job and its Location. "
    "A preview with problems is a 409 unless valid_only.",
    "imports",
    ok=out.JOB,
    status=202,
    body=APPLY_INPUT,
    body_required=False,
    errors=(401, 403, 404, 409, 422, 503),
)
def import_apply(import_id: int):
    data = body.read_optional()
    job = imports.start_apply(actor(), import_id, valid_only=data.get("valid_only", False))
    response = jsonify(out.job(job))
    response.headers["Location"] = url_for("api.job_get", job_id=job.id)
    return response, 202


@bp.post("/imports/<id:import_id>/resume")
@documented(
    "Run an interrupted import again (its job ended before the import did): what was created "
    "stays, the rest is done; answers with the new job. 409 when the import is not interrupted.",
    "imports",
    ok=out.JOB,
    status=202,
    errors=(401, 403, 404, 409, 503),
)
def import_resume(import_id: int):
    job = imports.resume(actor(), import_id)
    response = jsonify(out.job(job))
    response.headers["Location"] = url_for("api.job_get", job_id=job.id)
    return response, 202


@bp.get("/imports/<id:import_id>/report")
@documented(
    "The report of an ended import (.xlsx): the outcome of every row; 404 until it has ended.",
    "imports",
    ok_media=XLSX,
)
def import_report(import_id: int):
    filename, data = imports.report(actor(), import_id)
    return _file(data, filename)


@bp.post("/imports/<id:import_id>/generated-passwords")
@documented(
    "The passwords generated for rows that left the password empty (.xlsx), given once: the "
    "token's user confirms with their password; afterwards (or once expired) 404.",
    "imports",
    ok_media=XLSX,
    body=PASSWORD_CONFIRMATION,
    errors=(401, 403, 404, 422),
)
def import_generated_passwords(import_id: int):
    data = body.read()
    filename, content = imports.take_generated_passwords(actor(), import_id, data["current_password"])
    return _file(content, filename)


def _file(data: bytes, filename: str):
    response = send_file(io.BytesIO(data), mimetype=XLSX, as_attachment=True, download_name=filename)
    response.headers["Cache-Control"] = "no-store"
    return response
