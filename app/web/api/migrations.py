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
    "Log in on both sides and measure what would be copied, writing nothing (staff). A 409 says why it "
    "cannot start (a refused login, an inactive mailbox, a quota too small: with the numbers); the "
    "findings are stored either way.",
    "migrations",
    ok=out.MIGRATION,
    errors=(401, 403, 404, 409),
)
def migration_preflight(migration_id: int):
    return _answer(migrations.preflight(actor(), migration_id))


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
