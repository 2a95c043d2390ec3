"""What the migrations' pages show: one migration's progress, a domain's totals, support's working
list, and the report as a download (CSV and JSON). Reads only: every change is in migrations.py.

Progress while a copy runs comes from its job (messages done of the preflight's count, the folder
being copied, since when); bytes and the count of messages come from the preflight; once the copy
ended, from its report (copied, already present, skipped, errors, missing).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models import Job, Migration
from app.models.base import utcnow
from app.models.enums import MigrationState
from app.services import domains
from app.services.access import Actor, require_staff
from app.services.errors import Conflict
from app.services.migration.migrations import get_migration

STATE_LABELS = {
    MigrationState.DRAFT: _l("Da verificare"),
    MigrationState.PREFLIGHT_OK: _l("Verificata"),
    MigrationState.QUEUED: _l("In coda"),
    MigrationState.RUNNING: _l("In corso"),
    MigrationState.SYNCING: _l("In sincronia"),
    MigrationState.DONE: _l("Completata"),
    MigrationState.FAILED: _l("Non riuscita"),
    MigrationState.CANCELLED: _l("Annullata"),
}
ACTIVE = (MigrationState.QUEUED, MigrationState.RUNNING)
# Support's working list: what is moving or waits for someone.
WORKING = (MigrationState.QUEUED, MigrationState.RUNNING, MigrationState.SYNCING, MigrationState.FAILED)
WORKING_LIMIT = 500
# A spreadsheet program runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Progress:
    """One migration as its row on the pages shows it."""

    migration: Migration
    job: Job | None
    done: int = 0  # messages dealt with (copied, already present, skipped)
    total: int | None = None  # messages on the old server (the preflight's count, or the report's)
    bytes_total: int | None = None  # bytes to copy (the preflight's, less the too-large ones)
    bytes_copied: int | None = None  # once the copy ended
    rate: float | None = None  # messages a second
    folder: str = ""  # the folder being copied, on our side
    errors: int = 0
    missing: int | None = None
    skipped: int = 0

    @property
    def active(self) -> bool:
        return self.migration.state in ACTIVE

    @property
    def percent(self) -> int | None:
        """Done of the total, at most 100; none while a copy runs and its count reached the total
        (the preflight's count is older than the copy: "100%" would say it is over)."""
        if not self.total:
            return None
        if self.active and self.done >= self.total:
            return None
        return min(100, self.done * 100 // self.total)

    @property
    def bar_percent(self) -> int:
        """The progress bar's width: never past 100."""
        return min(100, self.done * 100 // self.total) if self.total else 0


def progress(row: Migration, job: Job | None = None) -> Progress:
    if job is None and row.job_id:
        job = db.session.get(Job, row.job_id)
    found = Progress(row, job)
    pre = row.preflight or {}
    pre_totals = pre.get("totals") or {}
    if pre.get("ok"):
        found.total = pre_totals.get("source_count")
        found.bytes_total = pre.get("needed_bytes")
    report = row.report
    if report and row.state not in ACTIVE:
        totals = report.get("totals") or {}
        found.total = totals.get("source_count", 0)
        found.done = (
            totals.get("copied", 0) + totals.get("already_present", 0) + totals.get("skipped_too_large", 0)
        )
        found.bytes_copied = copied_of(report)[1]
        found.errors = totals.get("errors", 0)
        found.missing = totals.get("missing")
        found.skipped = totals.get("skipped_too_large", 0)
        seconds = report.get("seconds") or 0
        if seconds > 0:
            found.rate = (totals.get("copied", 0) + totals.get("already_present", 0)) / seconds
    elif job is not None and job.active and row.state in ACTIVE:
        # Only a job queued or running: while a pass waits for its turn the row may still name the
        # previous pass's job, whose counts are over.
        found.done = job.done or 0
        if job.total:
            found.total = job.total
        if row.state == MigrationState.RUNNING:
            found.folder = job.message or ""
            if job.started_at and found.done:
                seconds = (utcnow() - job.started_at).total_seconds()
                if seconds > 0:
                    found.rate = found.done / seconds
    return found


def copied_of(report: dict) -> tuple[int, int]:
    """(messages, bytes) copied by every pass of the migration (a sync's later passes copy only
    what is new; their own report counts only that pass): the report's all_passes, else its totals."""
    totals = report.get("totals") or {}
    every = report.get("all_passes") or {}
    return (
        every.get("copied", totals.get("copied", 0)),
        every.get("copied_bytes", totals.get("copied_bytes", 0)),
    )


def progress_of(actor: Actor, migration_id: object) -> Progress:
    return progress(get_migration(actor, migration_id))


@dataclass
class DomainTotals:
    migrations: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    done: int = 0
    total: int = 0
    bytes_total: int = 0
    bytes_copied: int = 0
    errors: int = 0
    active: bool = False

    @property
    def percent(self) -> int | None:
        """As Progress.percent: at most 100, none while copies run and the count reached the total."""
        if not self.total or (self.active and self.done >= self.total):
            return None
        return min(100, self.done * 100 // self.total)

    @property
    def bar_percent(self) -> int:
        return min(100, self.done * 100 // self.total) if self.total else 0


def domain_progress(actor: Actor, domain_id: object) -> tuple[list[Progress], DomainTotals]:
    """A domain's migrations (newest first) with their progress, and the domain's totals.

    The totals count each mailbox's latest migration that is not cancelled (an earlier one entered
    again would count its messages twice)."""
    from app.services.migration.migrations import list_migrations

    rows = list_migrations(actor, domain_id)
    jobs = _jobs_of(rows)
    shown = [progress(r, jobs.get(r.job_id)) for r in rows]
    totals = DomainTotals(migrations=len(rows))
    counted: set[int] = set()
    for p in shown:
        state = p.migration.state
        totals.by_state[state] = totals.by_state.get(state, 0) + 1
        totals.active = totals.active or p.active
        if state == MigrationState.CANCELLED or p.migration.mailbox_id in counted:
            continue
        counted.add(p.migration.mailbox_id)
        totals.done += p.done
        totals.total += p.total or 0
        if not p.migration.finished:  # what is still to copy: a finished one has nothing left
            totals.bytes_total += p.bytes_total or 0
        totals.bytes_copied += p.bytes_copied or 0
        totals.errors += p.errors
    return shown, totals


def working_list(actor: Actor, limit: int | None = None) -> list[Progress]:
    """Every customer's migrations queued, running or failed (staff): support's working list, the
    newest `limit` (WORKING_LIMIT) of them."""
    require_staff(actor)
    rows = list(
        db.session.scalars(
            sa.select(Migration)
            .where(Migration.state.in_([str(s) for s in WORKING]))
            .order_by(Migration.started_at.desc().nulls_last(), Migration.id.desc())
            .limit(limit or WORKING_LIMIT)
        )
    )
    jobs = _jobs_of(rows)
    return [progress(r, jobs.get(r.job_id)) for r in rows]


def _jobs_of(rows: list[Migration]) -> dict[int, Job]:
    ids = {r.job_id for r in rows if r.job_id}
    if not ids:
        return {}
    return {j.id: j for j in db.session.scalars(sa.select(Job).where(Job.id.in_(ids)))}


def mailbox_choices(actor: Actor, domain_id: object) -> list[tuple[int, str]]:
    """The domain's mailboxes a migration may fill (id, address), for the form's list."""
    from app.models import Mailbox

    domain = domains.get_domain(actor, domain_id)
    return [
        (m.id, m.address)
        for m in db.session.scalars(
            sa.select(Mailbox)
            .where(Mailbox.domain_id == domain.id, Mailbox.customer_id == domain.customer_id)
            .order_by(Mailbox.address)
        )
    ]


def skipped_of(findings: dict) -> list[tuple[str, dict]]:
    """The messages over the size limit of a preflight's findings or a report: (folder here, message)."""
    return [
        (f.get("target", ""), s)
        for f in findings.get("folders") or []
        for s in f.get("skipped_too_large") or []
    ]


def errors_of(report: dict) -> list[tuple[str, str]]:
    """A report's errors: (folder here, or "" for the copy's own, message)."""
    found = [(f.get("target", ""), e) for f in report.get("folders") or [] for e in f.get("errors") or []]
    return found + [("", e) for e in report.get("errors") or []]


# The report as a download.


def _report_of(actor: Actor, migration_id: object) -> Migration:
    row = get_migration(actor, migration_id)
    if not row.report:
        raise Conflict(_("Questa migrazione non ha ancora un resoconto: la copia non è finita."))
    return row


def _file_name(row: Migration, ext: str) -> str:
    return f"migrazione-{row.mailbox.address}-{row.id}.{ext}"


def csv_cell(value: object) -> object:
    """A cell a spreadsheet program will show as text, never run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def report_csv(actor: Actor, migration_id: object) -> tuple[str, bytes]:
    """The copy's report as CSV (file name, bytes): the folders with their counts and the totals,
    then the messages skipped as too large, then the errors."""
    row = _report_of(actor, migration_id)
    report = row.report
    out = io.StringIO()
    w = csv.writer(out)

    def put(*cells):
        w.writerow([csv_cell(c) for c in cells])

    put(_("Migrazione"), row.mailbox.address, f"{row.username}@{row.host}:{row.port}")
    put(
        _("Stato"),
        str(STATE_LABELS.get(row.state, row.state)),
        (row.finished_at.isoformat(sep=" ", timespec="seconds") if row.finished_at else ""),
    )
    if (row.passes or 0) > 1:  # a sync's copies: the folders below are the last one's
        copied, copied_bytes = copied_of(report)
        put(_("Copie eseguite"), row.passes, _("Copiati in tutte le copie"), copied, copied_bytes)
        put(_("Per cartella, l'ultima copia"))
    put()
    put(
        _("Cartella di origine"),
        _("Cartella da noi"),
        _("Messaggi all'origine"),
        _("Byte all'origine"),
        _("Copiati"),
        _("Già presenti"),
        _("Saltati perché troppo grandi"),
        _("Errori"),
        _("Mancanti"),
    )
    for f in report.get("folders", []):
        put(
            f.get("source", ""),
            f.get("target", ""),
            f.get("source_count", 0),
            f.get("source_bytes", 0),
            f.get("copied", 0),
            f.get("already_present", 0),
            len(f.get("skipped_too_large") or []),
            len(f.get("errors") or []),
            "" if f.get("missing") is None else f["missing"],
        )
    t = report.get("totals", {})
    put(
        _("Totale"),
        "",
        t.get("source_count", 0),
        t.get("source_bytes", 0),
        t.get("copied", 0),
        t.get("already_present", 0),
        t.get("skipped_too_large", 0),
        t.get("errors", 0),
        "" if t.get("missing") is None else t["missing"],
    )
    skipped = skipped_of(report)
    if skipped:
        put()
        put(_("Messaggi saltati perché troppo grandi"))
        put(_("Cartella da noi"), _("Oggetto"), _("Data"), _("Dimensione (byte)"))
        for target, s in skipped:
            put(target, s.get("subject", ""), s.get("date", ""), s.get("size", 0))
    errors = errors_of(report)
    if errors:
        put()
        put(_("Errori"))
        put(_("Cartella da noi"), _("Errore"))
        for target, e in errors:
            put(target, e)
    return _file_name(row, "csv"), out.getvalue().encode("utf-8-sig")  # the BOM: spreadsheets read UTF-8


def report_json(actor: Actor, migration_id: object) -> tuple[str, bytes]:
    """The copy's report as JSON (file name, bytes): the engine's report with whose it is."""
    row = _report_of(actor, migration_id)
    body = {
        "migration": row.id,
        "mailbox": row.mailbox.address,
        "source": {"host": row.host, "port": row.port, "username": row.username},
        "state": row.state,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "report": row.report,
    }
    return _file_name(row, "json"), json.dumps(body, ensure_ascii=False, indent=2).encode()
