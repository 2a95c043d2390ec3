"""The panel's migrations: a mailbox filled from the old provider's IMAP server (one rule place).

Staff enter a migration (the old server and account, the old password sealed with
app/services/vault.py), run its preflight (a `migration_preflight` job: both logins and the
engine's dry run, compared with the mailbox's free quota; nothing written on either side), then
start it after a good one: the domain's gate
(domain_checks.migration_gate) must be open, and a `migration_copy` job on the `migration`
queue copies it with run_copy, our side through Dovecot's master user. The job alone unseals
the password (its only argument is the migration's id); the password is wiped when the
migration is done or cancelled. A failed migration may be started again: the engine copies
only what is missing. At most MIGRATION_PER_HOST copies run at once from one old server (under a
live job); a copy that finds its server busy ends its job at once and stays queued ("waiting for
its turn"): a copy ending from that server, or the cron (run_due), queues a job for it again.
Every write at a pass's end is conditioned on the migration still being that job's (a job the
stale-job sweep replaced writes nothing) and ends it cancelled when a cancel was asked
(cancel_requested_at); the cron reconciles a copy whose job ended without moving it.

Sync until the switch: a migration entered with `sync` may start once the domain is active
(before its MX has propagated). After each pass it rests in `syncing` (the password kept) and
the cron queues the next pass MIGRATION_SYNC_HOURS later, copying only what is new; once the
domain's MX has propagated (the DNS verdict: staff's override of the gate does not end a sync)
or staff finish it, the next pass runs at once and is the final one: then done. Each pass is gated
again (the domain and the mailbox still active: else skipped, the reason shown); after
MIGRATION_SYNC_MAX_FAILURES failed or skipped passes in a row, or MIGRATION_SYNC_MAX_DAYS in sync,
the migration fails for good, its password wiped.

When a domain's last open migration ends (done or cancelled, at least one done) the customer
gets one mail with each mailbox's figures, the cancelled ones said not migrated
(notify.migrations_done).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from app.extensions import db
from app.mailserver.imap import MASTER_SEPARATOR, Endpoint
from app.models import Domain, Job, Mailbox, Migration
from app.models.base import utcnow
from app.models.enums import ImapSecurity, MailboxStatus, MigrationState
from app.models.jobs import ACTIVE_STATES
from app.models.migrations import OPEN_STATES
from app.services import audit, clock, domain_checks, domains, fields, limits, quota, vault
from app.services.access import Actor, get_scoped, require_staff
from app.services.errors import Conflict, FieldErrors, ValidationError
from app.services.migration.copy import CopyFailed, run_copy

log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_PASSWORD = 1000
LIST_LIMIT = 500
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _not_found() -> str:
    return _("Migrazione non trovata.")


def get_migration(actor: Actor, migration_id: object) -> Migration:
    """A migration the actor may see (staff, or the customer it belongs to: read-only)."""
    return get_scoped(actor, Migration, migration_id, _not_found())


def list_migrations(actor: Actor, domain_id: object) -> list[Migration]:
    domain = domains.get_domain(actor, domain_id)
    return list(
        db.session.scalars(
            sa.select(Migration)
            .where(Migration.domain_id == domain.id)
            .order_by(Migration.created_at.desc(), Migration.id.desc())
            .limit(LIST_LIMIT)
        )
    )


# Entering a migration.


def _host(value: object) -> str:
    text = fields.text(value, "host", max_len=253).lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    labels = text.split(".")
    if not text or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValidationError.one(
            "host", _("Scrivi il nome del server IMAP (es. imap.esempio.it) o il suo IP.")
        )
    return text


def _port(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return fields.integer(value, "port", minimum=1, maximum=65535)


def _security(value: object) -> str:
    if not ImapSecurity.has(value):
        raise ValidationError.one("security", _("Scegli la sicurezza: ssl, starttls o none."))
    return str(value)


def _password(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError.one("password", _("Scrivi la password della vecchia casella."))
    if len(value) > MAX_PASSWORD:
        raise ValidationError.one("password", _("Al massimo %(n)d caratteri.", n=MAX_PASSWORD))
    if any(ch in value for ch in "\r\n\x00"):  # would end the IMAP command: nobody's password holds them
        raise ValidationError.one(
            "password",
            _("Contiene caratteri non ammessi: di controllo, invisibili o che invertono il testo."),
        )
    return value


@dataclass(frozen=True, eq=False)
class MigrationDraft:
    domain: Domain
    mailbox: Mailbox
    host: str
    port: int
    security: str
    verify_cert: bool
    username: str
    password: str  # only until apply_create seals it
    sync: bool = False

    def __repr__(self) -> str:  # never the password
        return f"MigrationDraft({self.username}@{self.host}:{self.port} -> {self.mailbox.address})"


def validate_create(actor: Actor, domain_id: object, data: dict) -> MigrationDraft:
    """Check a new migration's fields together; writes nothing. Staff only."""
    domain = domains.get_domain(actor, domain_id)
    require_staff(actor)
    problems = FieldErrors()
    host = problems.collect(_host, data.get("host"))
    port = problems.collect(_port, data.get("port", 993))
    security = problems.collect(_security, data.get("security", ImapSecurity.SSL.value))
    verify = problems.collect(fields.boolean, data.get("verify_cert", True), "verify_cert")
    username = problems.collect(fields.text, data.get("username"), "username", max_len=320)
    password = problems.collect(_password, data.get("password"))
    mailbox = problems.collect(_mailbox_of, domain, data.get("mailbox"))
    sync = problems.collect(fields.boolean, data.get("sync", False), "sync")
    problems.raise_if_any()
    return MigrationDraft(domain, mailbox, host, port, security, verify, username, password, sync)


def _mailbox_of(domain: Domain, value: object) -> Mailbox:
    """The destination: a mailbox of this domain (so of the domain's customer), by id or address."""
    stmt = sa.select(Mailbox).where(Mailbox.domain_id == domain.id, Mailbox.customer_id == domain.customer_id)
    if isinstance(value, int) and not isinstance(value, bool):
        stmt = stmt.where(Mailbox.id == value)
    elif isinstance(value, str) and value.strip():
        stmt = stmt.where(Mailbox.address == value.strip().lower())
    else:
        raise ValidationError.one("mailbox", _("Scegli la casella di destinazione."))
    mailbox = db.session.scalar(stmt)
    if mailbox is None:
        raise ValidationError.one("mailbox", _("Nessuna casella con questo indirizzo nel dominio."))
    return mailbox


def apply_create(actor: Actor, draft: MigrationDraft) -> Migration:
    limits.lock_customer(draft.domain.customer_id)
    if _open_for(draft.mailbox.id) is not None:
        raise Conflict(_("Questa casella ha già una migrazione aperta."), field="mailbox")
    row = add(actor, draft)
    db.session.commit()
    return row


def add(actor: Actor, draft: MigrationDraft, **changes) -> Migration:
    """The row (password sealed) and its audit event, not committed: apply_create, and the sheet's
    all-or-nothing batch, commit. The caller holds the customer's lock and checked the open one."""
    row = Migration(
        customer_id=draft.domain.customer_id,
        domain_id=draft.domain.id,
        mailbox_id=draft.mailbox.id,
        host=draft.host,
        port=draft.port,
        security=draft.security,
        verify_cert=draft.verify_cert,
        username=draft.username,
        secret=vault.seal(draft.password),
        state=MigrationState.DRAFT,
        sync=draft.sync,
        created_by_id=actor.user_id,
        created_by=actor.label[:254],
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        actor,
        "migration.create",
        customer_id=row.customer_id,
        target=draft.mailbox.address,
        changes={
            "source": [None, f"{draft.username}@{draft.host}:{draft.port} ({draft.security})"],
            "sync": [None, draft.sync],
            **changes,
        },
    )
    return row


def create(actor: Actor, domain_id: object, data: dict) -> Migration:
    return apply_create(actor, validate_create(actor, domain_id, data))


def _open_for(mailbox_id: int) -> Migration | None:
    return db.session.scalar(
        sa.select(Migration).where(Migration.mailbox_id == mailbox_id, Migration.state.in_(OPEN_STATES))
    )


# The two sides.


def source_endpoint(row: Migration) -> Endpoint:
    """The old server, with the unsealed password: only inside a preflight or the job."""
    if row.secret is None:
        raise Conflict(
            _("La password della vecchia casella non è più conservata: inserisci di nuovo la migrazione.")
        )
    return Endpoint(
        row.host,
        row.port,
        row.username,
        vault.unseal_text(row.secret),
        security=row.security,
        verify=row.verify_cert,
        timeout=60.0,
    )


def target_endpoint(row: Migration) -> Endpoint:
    """Our side: the mailbox through Dovecot's master user (the customer's password is not needed)."""
    config = current_app.config
    if not config.get("DOVECOT_MASTER_USER") or not config.get("DOVECOT_MASTER_PASSWORD"):
        raise Conflict(
            _("Il server di posta non ha un utente master configurato: la migrazione non può scrivere.")
        )
    return Endpoint(
        config["DOVECOT_IMAP_HOST"],
        config["DOVECOT_IMAP_PORT"],
        row.mailbox.address,
        config["DOVECOT_MASTER_PASSWORD"],
        security=config.get("MIGRATION_DEST_SECURITY", "starttls"),
        master_user=config["DOVECOT_MASTER_USER"],
        ca_file=config.get("MIGRATION_DEST_CA_FILE"),
    )


# The preflight: a `migration_preflight` job (both logins and a read of every message's metadata can
# take longer than a web request may), its only argument the migration's id.

CHECKABLE = (MigrationState.DRAFT, MigrationState.PREFLIGHT_OK, MigrationState.FAILED)
PREFLIGHT_JOB = "migration_preflight"
# The unreadable folders a refusal names (then "e altre N").
NAMED_FOLDERS = 3


def free_bytes(mailbox: Mailbox) -> int | None:
    """The mailbox's class size less its last usage reading (None: no reading yet, counted as empty)."""
    limit = mailbox.service_class.quota_mb * MB
    usage = quota.usage_for([mailbox.id]).get(mailbox.id)
    return max(0, limit - (usage.used_bytes if usage else 0))


def checking(row: Migration):
    """The preflight job at work on it (queued or running), or None."""
    from app.models import Job

    job = db.session.get(Job, row.job_id) if row.job_id else None
    if job is None or job.kind != PREFLIGHT_JOB or not job.active or row.state not in CHECKABLE:
        return None
    return job


def preflight(actor: Actor, migration_id: object) -> Migration:
    """Queue the preflight (a `migration_preflight` job: run_preflight); the row, its job_id the job's.

    While the job is at work checking(row) says so. A job that already ended (JOBS_INLINE) answers as
    the check itself: the row when good, else Conflict with the refusal (the findings stored either
    way). Conflict at once when it is started or ended, or a check is already at work."""
    from app.models import Job
    from app.services import jobs

    row = get_migration(actor, migration_id)
    require_staff(actor)
    if row.state not in CHECKABLE:
        raise Conflict(_("La migrazione è già avviata o conclusa."))
    if checking(row) is not None:
        raise Conflict(_("Una verifica è già in corso: attendi che finisca."))
    if not row.password_kept:
        raise Conflict(
            _("La password della vecchia casella non è più conservata: inserisci di nuovo la migrazione.")
        )
    target_endpoint(row)  # our side configured: a Conflict otherwise, before any job
    previous = row.job_id
    job = jobs.enqueue(actor, PREFLIGHT_JOB, customer_id=row.customer_id, args=[row.id])
    # Recorded unless another check took the migration meanwhile (the job itself records it too).
    before = Migration.job_id.is_(None) if previous is None else Migration.job_id == previous
    mine = sa.or_(Migration.job_id == job.id, before)
    moved = db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id, mine)
        .values(job_id=job.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if moved != 1:
        if db.session.get(Job, job.id).active:
            jobs.cancel(actor, job.id)
        raise Conflict(_("Una verifica è già in corso: attendi che finisca."))
    audit.record(
        actor,
        "migration.preflight",
        customer_id=row.customer_id,
        target=row.mailbox.address,
        changes={"job": [previous, job.id]},
    )
    db.session.commit()
    db.session.refresh(row)
    db.session.refresh(job)
    if job.active:
        return row
    findings = row.preflight or {}
    if job.state == "done" and findings.get("ok"):
        return row
    raise Conflict(findings.get("problem") or job.message or _("La verifica non è riuscita."))


def run_preflight(ctx, migration_id: int) -> dict:
    """The `migration_preflight` job: log in on both sides and measure (the engine's dry run: nothing
    written on either side), then store the findings, refused with the reason when it cannot start.
    A migration cancelled meanwhile keeps nothing of it, and the job ends cancelled."""
    from app.services.jobs import JobCancelled, JobFailed

    row = db.session.get(Migration, migration_id)
    if row is None or row.customer_id != ctx.customer_id:
        raise JobFailed(_not_found())
    if not _set(row.id, CHECKABLE, job_id=ctx.job_id):
        raise JobCancelled  # cancelled before its check began
    ctx.progress(0, None, _("Verifica in corso…"))
    db.session.refresh(row)
    findings = _measure(row)
    if ctx.should_stop() or not _store_preflight(row, findings, ctx.job_id):
        raise JobCancelled
    return {"ok": bool(findings.get("ok"))}


def _measure(row: Migration) -> dict:
    """The preflight's findings: the dry run's report with needed_bytes, free_bytes, ok and problem."""
    try:
        source, target = source_endpoint(row), target_endpoint(row)
    except Conflict as e:
        return {"ok": False, "problem": e.message}
    try:
        report = run_copy(source, target, dry_run=True, max_size=current_app.config["MIGRATION_MAX_SIZE"])
    except CopyFailed as e:
        return {"ok": False, "problem": customer_message(row, e.message)}
    except Exception:  # noqa: BLE001  (stored as a refusal; the detail in the log)
        log.exception("migration %s: the preflight failed", row.id)
        return {
            "ok": False,
            "problem": _("Errore imprevisto durante la verifica: l'assistenza può vederne i dettagli."),
        }
    findings = scrub_report(row, report.to_dict())
    needed = findings["totals"].get("to_copy_bytes")
    if needed is None:  # an engine that does not measure what is already on our side
        skipped = sum(s["size"] for f in findings["folders"] for s in f["skipped_too_large"])
        needed = findings["totals"]["source_bytes"] - skipped
    free = free_bytes(row.mailbox)
    findings.update(needed_bytes=needed, free_bytes=free, ok=True, problem=None)
    unreadable = [f["source"] for f in findings["folders"] if f["errors"]]
    problem = None
    if row.mailbox.status != MailboxStatus.ACTIVE:
        problem = _("La casella di destinazione %(address)s non è attiva.", address=row.mailbox.address)
    elif unreadable or findings["errors"]:
        problem = _unreadable(unreadable)
    elif needed > free:
        problem = _(
            "I messaggi da copiare occupano %(needed)s MB ma la casella %(address)s ha solo %(free)s MB "
            "liberi (%(quota)d MB in tutto): aumenta prima la sua classe.",
            needed=_mb(needed),
            free=_mb(free),
            quota=row.mailbox.service_class.quota_mb,
            address=row.mailbox.address,
        )
    if problem:
        findings.update(ok=False, problem=problem)
    return findings


def _unreadable(folders: list[str]) -> str:
    """Why a dry run with errors cannot start: the folders it could not read (a few named)."""
    if not folders:
        return _("La verifica non è riuscita a leggere tutta la vecchia casella: ripetila più tardi.")
    names = ", ".join(folders[:NAMED_FOLDERS])
    if len(folders) > NAMED_FOLDERS:
        names = _("%(names)s e altre %(n)d", names=names, n=len(folders) - NAMED_FOLDERS)
    return _(
        "Alcune cartelle della vecchia casella non si possono leggere: %(names)s. Controllale sul vecchio "
        "server e ripeti la verifica.",
        names=names,
    )


def _mb(n: int) -> str:
    return f"{n / MB:.1f}"


def _store_preflight(row: Migration, findings: dict, job_id: int) -> bool:
    """The findings of the check `job_id`, unless the migration left it meanwhile (cancelled, or
    another check took it): True if stored."""
    ok = bool(findings.get("ok"))
    values: dict = {"preflight": findings, "preflight_at": utcnow()}
    if ok:
        values.update(state=MigrationState.PREFLIGHT_OK, error=None)
    else:  # a good check no longer holds
        values["state"] = sa.case(
            (Migration.state == MigrationState.PREFLIGHT_OK, MigrationState.DRAFT.value),
            else_=Migration.state,
        )
    moved = db.session.execute(
        sa.update(Migration)
        .where(
            Migration.id == row.id,
            Migration.state.in_([str(s) for s in CHECKABLE]),
            Migration.job_id == job_id,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return moved == 1


# What the customer reads of a failure.


def customer_message(row: Migration, message: str) -> str:
    """A failure as the customer may read it (Migration.error, the preflight's problem): one on our
    side (the destination: our server, its master user) becomes a neutral sentence, its detail
    logged for support; one of the old server stays as it is (it names the old account only)."""
    try:
        ours = target_endpoint(row)
    except Conflict:
        ours = None
    marks = [f"{ours.host}:{ours.port}", f"{MASTER_SEPARATOR}{ours.master_user}"] if ours else []
    if not message.startswith(_("Destinazione: %(error)s", error="")) and not any(
        mark in message for mark in marks
    ):
        return message
    detail = message.replace(ours.password, "***") if ours and ours.password else message
    log.warning("migration %s: our mail server refused: %s", row.id, detail)
    return _("Il nostro server di posta non ha accettato la migrazione: l'assistenza può vederne i dettagli.")


def scrub_report(row: Migration, report: dict) -> dict:
    """A report's error lines as the customer may read them (customer_message)."""
    report["errors"] = [customer_message(row, e) for e in report.get("errors", [])]
    for folder in report.get("folders", []):
        folder["errors"] = [customer_message(row, e) for e in folder.get("errors", [])]
    return report


# Start, finish, cancel.


def mx_propagated(domain: Domain) -> bool:
    """The domain's DNS verdict says its MX points to us and has propagated (staff's override does not count)."""
    row = domain.check
    return row is not None and row.verdict == "propagated"


def start_gate(row: Migration) -> domain_checks.Gate:
    """May it start now? A one-shot copy needs the domain's gate (the MX propagated, or staff's
    override); a sync migration only an active domain: its passes go on until the switch."""
    if not row.sync:
        return domain_checks.migration_gate(row.domain)
    if not row.domain.is_active:
        return domain_checks.Gate(False, _("Il dominio non è ancora attivo."))
    return domain_checks.Gate(True, _("In sincronia fino al passaggio del record MX."))


def start(actor: Actor, migration_id: object) -> Migration:
    """Queue the copy once start_gate is open: after a good preflight (the last one: a failed migration
    whose new check was refused waits for a good one), or again after a failure."""
    row = get_migration(actor, migration_id)
    require_staff(actor)
    if row.state not in (MigrationState.PREFLIGHT_OK, MigrationState.FAILED) and not _stuck(row):
        if row.state == MigrationState.DRAFT:
            raise Conflict(_("Esegui prima la verifica (preflight) della migrazione."))
        raise Conflict(_("La migrazione è già avviata o conclusa."))
    if checking(row) is not None:
        raise Conflict(_("Una verifica è in corso: attendi che finisca."))
    if not (row.preflight and row.preflight.get("ok")):  # a refused check is not bypassed by Riprova
        raise Conflict(_("Esegui di nuovo la verifica: l'ultima non è riuscita."))
    if row.secret is None:
        raise Conflict(
            _("La password della vecchia casella non è più conservata: inserisci di nuovo la migrazione.")
        )
    gate = start_gate(row)
    if not gate.open:
        raise Conflict(gate.reason)
    before = row.state
    moved = db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id, Migration.state == before)
        .values(
            state=MigrationState.QUEUED,
            started_by=actor.label[:254],
            started_at=utcnow(),
            error=None,
            next_pass_at=None,
            failed_passes=0,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.rollback()
        raise Conflict(_("La migrazione è già avviata o conclusa."))
    audit.record(
        actor,
        "migration.start",
        customer_id=row.customer_id,
        target=row.mailbox.address,
        changes={"state": [before, MigrationState.QUEUED.value], "gate": [None, gate.reason]},
    )
    db.session.commit()
    _enqueue(actor, row, back_to=before)
    db.session.refresh(row)
    return row


def _enqueue(actor: Actor, row: Migration, back_to: str | None = None):
    """A `migration_copy` job for a queued migration (its only argument the id)."""
    from app.services import jobs

    previous = row.job_id
    try:
        job = jobs.enqueue(actor, "migration_copy", customer_id=row.customer_id, args=[row.id])
    except jobs.QueueUnavailable:
        if back_to is not None:
            _set(row.id, (MigrationState.QUEUED,), state=back_to)
        raise
    # Unless the job (run at once) or another one already took the migration.
    taken = Migration.job_id.is_(None) if previous is None else Migration.job_id == previous
    db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id, Migration.state == MigrationState.QUEUED, taken)
        .values(job_id=job.id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return job


def finish(actor: Actor, migration_id: object) -> Migration:
    """Staff end a sync migration now: its next pass is the final one, queued at once when it rests
    between passes (a pass running goes on, and the final one follows it at once)."""
    row = get_migration(actor, migration_id)
    require_staff(actor)
    passing = (MigrationState.SYNCING, MigrationState.QUEUED, MigrationState.RUNNING)
    if not row.sync or row.state not in passing:
        raise Conflict(_("Solo una migrazione in sincronia può essere conclusa con un passaggio finale."))
    moved = db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id, Migration.state.in_([str(s) for s in passing]))
        .values(final_pass=True)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.rollback()
        raise Conflict(_("Solo una migrazione in sincronia può essere conclusa con un passaggio finale."))
    audit.record(
        actor,
        "migration.finish",
        customer_id=row.customer_id,
        target=row.mailbox.address,
        changes={"final_pass": [bool(row.final_pass), True]},
    )
    db.session.commit()
    if _queue_pass(row.id, final=True):
        wake_waiting(row.host)
    db.session.refresh(row)
    return row


def cancel(actor: Actor, migration_id: object) -> Migration:
    """Stop it, in every open state: at once if not running (the password wiped), else when the
    running copy next looks (after a batch) or ends its pass, whatever the pass's outcome."""
    from app.services import jobs

    row = get_migration(actor, migration_id)
    require_staff(actor)
    if row.state in (MigrationState.DONE, MigrationState.CANCELLED):
        raise Conflict(_("La migrazione è già conclusa."))
    # Recorded on the migration: every end of the running pass reads it and ends it cancelled.
    db.session.execute(
        sa.update(Migration)
        .where(
            Migration.id == row.id,
            Migration.state.in_([str(s) for s in OPEN_STATES]),
            Migration.cancel_requested_at.is_(None),
        )
        .values(cancel_requested_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    audit.record(actor, "migration.cancel", customer_id=row.customer_id, target=row.mailbox.address)
    db.session.commit()
    stuck = _stuck(row)
    if row.state in (MigrationState.QUEUED, MigrationState.RUNNING) and not stuck:
        try:
            jobs.cancel(actor, row.job_id)  # a queued job: on_job_cancelled marks the migration
        except Conflict:  # its job ended meanwhile: settled below
            db.session.rollback()
            db.session.refresh(row)
            stuck = _stuck(row)
    if checking(row) is not None:
        with contextlib.suppress(Conflict):  # its preflight stops too (unless it ended meanwhile)
            jobs.cancel(actor, row.job_id)
    # A running copy stops at its next batch (or its pass's end) and marks the migration itself;
    # one waiting for its turn (no job on it) or whose job ended without doing so (its worker
    # died) is cancelled here.
    _set(
        row.id,
        (
            MigrationState.DRAFT,
            MigrationState.PREFLIGHT_OK,
            MigrationState.FAILED,
            MigrationState.QUEUED,
            MigrationState.SYNCING,
        )
        + ((MigrationState.RUNNING,) if stuck else ()),
        **_ENDED,
        state=MigrationState.CANCELLED,
        finished_at=utcnow(),
    )
    _after_end(row.id)
    db.session.refresh(row)
    return row


# Columns wiped when a migration ends (done or cancelled).
_ENDED = {"secret": None, "next_pass_at": None}


def _stuck(row: Migration) -> bool:
    """Queued or running, but no job on it: waiting for its turn, or a worker that died for good."""
    from app.models import Job

    if row.state not in (MigrationState.QUEUED, MigrationState.RUNNING):
        return False
    job = db.session.get(Job, row.job_id) if row.job_id else None
    return job is None or not job.active


def on_job_cancelled(job) -> None:
    """A migration_copy job cancelled before any worker took it."""
    if job.args:
        _set(
            job.args[0],
            (MigrationState.QUEUED,),
            **_ENDED,
            state=MigrationState.CANCELLED,
            finished_at=utcnow(),
        )
        _after_end(job.args[0])


def _set(migration_id: int, from_states: tuple, *, job: int | None = None, **values) -> bool:
    """One conditional UPDATE, committed: True if this caller made the move. job: only while the
    migration is that job's (a job the stale-job sweep gave to a retry writes nothing)."""
    stmt = sa.update(Migration).where(
        Migration.id == migration_id, Migration.state.in_([str(s) for s in from_states])
    )
    if job is not None:
        stmt = stmt.where(Migration.job_id == job)
    moved = db.session.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return moved == 1


def _end_pass(
    migration_id: int, from_state, values: dict, *, job: int | None = None, same=None
) -> str | None:
    """The end of a pass (or of a stuck or skipped one): `values`, or cancelled (the password wiped)
    when a cancel was asked meanwhile. job / same: only while the migration is that job's. The state
    it moved to, or None when it was no longer this caller's to move."""
    base = sa.update(Migration).where(Migration.id == migration_id, Migration.state == from_state)
    if job is not None:
        base = base.where(Migration.job_id == job)
    if same is not None:
        base = base.where(same)
    moved = db.session.execute(
        base.where(Migration.cancel_requested_at.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    state = values["state"]
    if not moved:
        kept = {k: values[k] for k in ("report", "passes", "last_pass_at") if k in values}
        moved = db.session.execute(
            base.where(Migration.cancel_requested_at.is_not(None))
            .values(**kept, **_ENDED, state=MigrationState.CANCELLED, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        state = MigrationState.CANCELLED
    db.session.commit()
    return str(state) if moved else None


def _failed_values(row: Migration, message: str, *, keeps_syncing: bool) -> dict:
    """A pass that failed or was skipped: a sync migration goes back to syncing, its next pass
    scheduled from now, until MIGRATION_SYNC_MAX_FAILURES in a row: then failed, its password wiped;
    any other is failed, its password kept (it may be started again)."""
    config = current_app.config
    count = (row.failed_passes or 0) + 1
    values: dict = {"failed_passes": count, "error": message[:500]}
    if keeps_syncing and count < config["MIGRATION_SYNC_MAX_FAILURES"]:
        now = clock.now()
        values.update(
            state=MigrationState.SYNCING, next_pass_at=now + timedelta(hours=config["MIGRATION_SYNC_HOURS"])
        )
        return values
    values.update(state=MigrationState.FAILED, next_pass_at=None, finished_at=utcnow())
    if keeps_syncing:
        values.update(secret=None, error=_gave_up(_("%(n)d passaggi di fila non riusciti", n=count), message))
    return values


def _gave_up(why: str, last: str | None) -> str:
    text = _(
        "Sincronia interrotta: %(why)s. La password della vecchia casella è stata cancellata: annulla "
        "la migrazione e inseriscila di nuovo.",
        why=why,
    )
    if last:
        text += " " + _("Ultimo errore: %(error)s", error=last)
    return text[:500]


def pass_blocked(row: Migration) -> str | None:
    """Why a sync migration's pass may not run now (the domain no longer active, the mailbox not
    active), or None."""
    if not row.domain.is_active:
        return _("Il dominio %(domain)s non è attivo.", domain=row.domain.display_name)
    gate = start_gate(row)
    if not gate.open:
        return gate.reason
    if row.mailbox.status != MailboxStatus.ACTIVE:
        return _("La casella di destinazione %(address)s non è attiva.", address=row.mailbox.address)
    return None


# Turns, passes and the cron.


def _system() -> Actor:
    return Actor.system("cron", via="job")


def _copying_from(host: str):
    """Running from this old server with a live job (one whose job ended is stuck, not copying)."""
    live = sa.select(Job.id).where(Job.state.in_(ACTIVE_STATES))
    return (Migration.host == host, Migration.state == MigrationState.RUNNING, Migration.job_id.in_(live))


def running_from(host: str) -> int:
    return db.session.scalar(sa.select(sa.func.count()).where(*_copying_from(host)))


def _lock_host(host: str) -> None:
    """Serialise the turn-taking of one old host until commit: on PostgreSQL an advisory lock (two
    copies would otherwise both count one running and both start); SQLite's UPDATE locks the database."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"migration-host:{host}"}
        )


def _queue_pass(migration_id: int, *, final: bool = False) -> bool:
    """syncing -> queued: its next pass waits for a turn on its old server (wake_waiting gives it a job)."""
    values: dict = {"state": MigrationState.QUEUED, "next_pass_at": None}
    if final:
        values["final_pass"] = True
    return _set(migration_id, (MigrationState.SYNCING,), **values)


def wake_waiting(host: str | None = None, finished_job: int | None = None) -> list[int]:
    """Queue a job for each queued migration that has none (waiting for its turn), as far as its old
    server has turns free (MIGRATION_PER_HOST less those running or with a job queued). The ids.

    finished_job: a job ending now (its copy over), counted as ended."""
    from app.models import Job

    limit = max(1, current_app.config["MIGRATION_PER_HOST"])
    stmt = sa.select(Migration.host).where(Migration.state == MigrationState.QUEUED).distinct()
    hosts = [host] if host is not None else list(db.session.scalars(stmt))
    woken: list[int] = []
    for name in hosts:
        tried: set[int] = set()
        while True:
            db.session.expire_all()
            rows = list(
                db.session.scalars(
                    sa.select(Migration)
                    .where(Migration.host == name, Migration.state == MigrationState.QUEUED)
                    .order_by(Migration.started_at.asc().nulls_first(), Migration.id)
                )
            )
            jobs_of = {r.job_id for r in rows if r.job_id}
            active = set(
                db.session.scalars(
                    sa.select(Job.id).where(Job.id.in_(jobs_of), Job.state.in_(("queued", "running")))
                )
            ) - {finished_job}
            waiting = [r for r in rows if r.job_id not in active and r.id not in tried]
            busy = running_from(name) + (len(rows) - len([r for r in rows if r.job_id not in active]))
            db.session.commit()
            if not waiting or busy >= limit:
                break
            row = waiting[0]
            tried.add(row.id)
            _enqueue(_system(), row)
            woken.append(row.id)
    return woken


def run_due(now=None) -> dict:
    """The cron's look (every few minutes): queue the passes of sync migrations that are due (at once
    when the domain's MX has propagated or staff asked to finish: the final pass), give the waiting
    migrations a job when their old server has a turn free, and send the end-of-migration mails a
    finished domain still owes."""
    from app.services import jobs

    now = now or clock.now()
    reconciled = reconcile_stuck()
    passes, skipped = [], []
    max_age = timedelta(days=current_app.config["MIGRATION_SYNC_MAX_DAYS"])
    for row in db.session.scalars(
        sa.select(Migration).where(Migration.state == MigrationState.SYNCING)
    ).all():
        final = row.final_pass or mx_propagated(row.domain)
        if not final and row.started_at is not None and row.started_at + max_age <= now:
            days = current_app.config["MIGRATION_SYNC_MAX_DAYS"]
            why = _("in sincronia da più di %(n)s giorni senza il passaggio del record MX", n=f"{days:g}")
            values = {**_ENDED, "state": MigrationState.FAILED, "finished_at": utcnow()}
            if _end_pass(row.id, MigrationState.SYNCING, {**values, "error": _gave_up(why, None)}):
                skipped.append(row.id)
            continue
        if not (final or row.next_pass_at is None or row.next_pass_at <= now):
            continue
        blocked = pass_blocked(row)
        if blocked:  # the pass is skipped, the reason shown; it counts as a failed one
            values = _failed_values(
                row, _("Passaggio saltato: %(why)s", why=blocked), keeps_syncing=not final
            )
            if _end_pass(row.id, MigrationState.SYNCING, values):
                skipped.append(row.id)
            continue
        if _queue_pass(row.id, final=final):
            passes.append(row.id)
    try:
        woken = wake_waiting()
    except jobs.QueueUnavailable:
        woken = []  # the next look tries again
    owing = db.session.scalars(
        sa.select(Migration.domain_id)
        .where(
            Migration.state.in_([MigrationState.DONE.value, MigrationState.CANCELLED.value]),
            Migration.notified_at.is_(None),
        )
        .distinct()
    ).all()
    notified = [d for d in owing if notify_if_finished(d)]
    return {
        "passes": passes,
        "skipped": skipped,
        "reconciled": reconciled,
        "woken": woken,
        "notified": notified,
    }


def reconcile_stuck() -> list[int]:
    """Migrations left running by a job that ended without moving them (its worker died for good,
    no retry on its way): a sync migration's pass that was not the final one goes back to syncing
    (a failed pass), any other is failed, with the reason. The ids."""
    from app.services import jobs

    moved = []
    for row in db.session.scalars(
        sa.select(Migration).where(Migration.state == MigrationState.RUNNING)
    ).all():
        job = db.session.get(Job, row.job_id) if row.job_id else None
        if job is not None and job.active:
            continue
        retry = jobs.retried_as(job) if job is not None else None
        if retry is not None and retry.active:
            continue  # the retry adopts it
        message = _("La copia si è interrotta: il processo che la eseguiva si è fermato.")
        values = _failed_values(row, message, keeps_syncing=row.sync and not row.final_pass)
        same = Migration.job_id.is_(None) if row.job_id is None else Migration.job_id == row.job_id
        if _end_pass(row.id, MigrationState.RUNNING, values, same=same):
            moved.append(row.id)
    return moved


def _after_end(migration_id: int, finished_job: int | None = None) -> None:
    """A migration left its copy (or ended): the next on its old server gets the turn; a domain whose
    last open migration ended gets its mail; a sync migration due for its final pass has it queued."""
    from app.services import jobs

    row = db.session.get(Migration, migration_id)
    if row is None:
        return
    db.session.refresh(row)
    host, domain_id = row.host, row.domain_id
    if row.state == MigrationState.SYNCING and (row.final_pass or mx_propagated(row.domain)):
        _queue_pass(row.id, final=True)
    try:
        wake_waiting(host, finished_job=finished_job)
    except jobs.QueueUnavailable:
        log.warning("migrations waiting on %s not queued: the cron will", host)
    notify_if_finished(domain_id)


def notify_if_finished(domain_id: int) -> bool:
    """Once the domain's last open migration ended: one mail to the customer about those not yet told
    of (at least one done; a batch only cancelled is settled without a mail). True if a mail left."""
    from app.services import notify, outbox

    still_open = db.session.scalar(
        sa.select(sa.func.count()).where(
            Migration.domain_id == domain_id, Migration.state.in_([str(s) for s in OPEN_STATES])
        )
    )
    rows = list(
        db.session.scalars(
            sa.select(Migration)
            .where(
                Migration.domain_id == domain_id,
                Migration.state.in_([MigrationState.DONE.value, MigrationState.CANCELLED.value]),
                Migration.notified_at.is_(None),
            )
            .order_by(Migration.id)
        )
    )
    if still_open or not rows:
        db.session.commit()
        return False
    moved = db.session.execute(
        sa.update(Migration)
        .where(Migration.id.in_([r.id for r in rows]), Migration.notified_at.is_(None))
        .values(notified_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != len(rows):  # another process is settling this batch
        db.session.rollback()
        return False
    done = [r for r in rows if r.state == MigrationState.DONE]
    if done:  # the cancelled ones of the batch too: the mail hides no mailbox left behind
        notify.migrations_done(rows[0].domain, rows)
    db.session.commit()
    outbox.send_queued()
    return bool(done)


# The job's body.


def _take_turn(row: Migration, ctx) -> bool | None:
    """queued -> running if fewer than MIGRATION_PER_HOST copies run from its old server: True; False
    when the server is busy (the job ends, the migration stays queued); None if it is no longer queued."""
    from app.services.jobs import JobCancelled

    if ctx.should_stop():
        raise JobCancelled
    limit = max(1, current_app.config["MIGRATION_PER_HOST"])
    _lock_host(row.host)
    busy = sa.select(sa.func.count()).where(*_copying_from(row.host)).scalar_subquery()
    moved = db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id, Migration.state == MigrationState.QUEUED, busy < limit)
        .values(state=MigrationState.RUNNING, job_id=ctx.job_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    db.session.refresh(row)
    if moved == 1:
        return True
    return False if row.state == MigrationState.QUEUED else None


def _adopt(row: Migration, job_id: int) -> None:
    """A retry of a job whose worker died finds its migration still running under the dead job: it
    goes back to queued, and this job takes the turn."""
    from app.models import Job

    if row.state != MigrationState.RUNNING or row.job_id == job_id:
        return
    previous = db.session.get(Job, row.job_id) if row.job_id else None
    if previous is not None and previous.active:
        return  # another job is copying it: this one will find it not queued, and end
    same = Migration.job_id.is_(None) if row.job_id is None else Migration.job_id == row.job_id
    db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id, Migration.state == MigrationState.RUNNING, same)
        .values(state=MigrationState.QUEUED)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(row)


def _all_passes(row: Migration, totals: dict) -> dict:
    """Copied over every pass of this migration (a sync's later passes copy only what is new)."""
    before = row.report or {}
    earlier = before.get("all_passes") or {
        "copied": before.get("totals", {}).get("copied", 0),
        "copied_bytes": before.get("totals", {}).get("copied_bytes", 0),
    }
    return {
        "copied": earlier.get("copied", 0) + totals.get("copied", 0),
        "copied_bytes": earlier.get("copied_bytes", 0) + totals.get("copied_bytes", 0),
    }


def run_job(ctx, migration_id: int) -> dict:
    """Copy one migration (the `migration_copy` job): unseal, copy, report; wipe when done."""
    from app.services.jobs import JobFailed, JobLost

    row = db.session.get(Migration, migration_id)
    if row is None or row.customer_id != ctx.customer_id:
        raise JobFailed(_not_found())
    _adopt(row, ctx.job_id)
    turn = _take_turn(row, ctx)
    if turn is None:
        return {"state": row.state}
    if not turn:
        ctx.progress(0, None, _("In attesa del turno: altre copie dallo stesso server sono in corso."))
        # A copy that ended meanwhile counted this job as queued and woke nobody: look again.
        wake_waiting(row.host, finished_job=ctx.job_id)
        return {"state": MigrationState.QUEUED.value, "waiting": True}
    try:
        result = _copy(ctx, row)
    except JobLost:
        raise  # the sweep gave the migration to a retry: its row and its turn are the retry's
    except BaseException:
        _follow_up(migration_id, ctx.job_id)
        raise
    _follow_up(migration_id, ctx.job_id)
    return result


def _follow_up(migration_id: int, job_id: int) -> None:
    try:
        _after_end(migration_id, finished_job=job_id)
    except Exception:  # noqa: BLE001  (the copy's outcome stands; the cron catches up)
        db.session.rollback()
        log.exception("migration %s: the follow-up of its copy failed", migration_id)


def _copy(ctx, row: Migration) -> dict:
    """One pass. Every write at its end is conditioned on the migration still being this job's, and
    ends it cancelled when a cancel was asked meanwhile (on the migration, or on the job)."""
    from app.services.jobs import JobCancelled, JobFailed, JobLost

    final = not row.sync or row.final_pass or mx_propagated(row.domain)
    if row.sync and final and not row.final_pass:
        _set(row.id, (MigrationState.RUNNING,), job=ctx.job_id, final_pass=True)
    total = (row.preflight or {}).get("totals", {}).get("source_count")
    seen: dict[int, object] = {}

    def progress(folder) -> None:
        seen[id(folder)] = folder
        done = sum(f.copied + f.already_present + len(f.skipped_too_large) for f in seen.values())
        ctx.progress(min(done, total) if total else done, total, folder.target)
        if ctx.should_stop():
            raise JobCancelled

    keeps_syncing = row.sync and not final
    hours = current_app.config["MIGRATION_SYNC_HOURS"]

    def cancel_asked() -> None:
        _set(
            row.id,
            (MigrationState.RUNNING,),
            job=ctx.job_id,
            cancel_requested_at=sa.func.coalesce(Migration.cancel_requested_at, utcnow()),
        )

    def end(values: dict) -> str | None:
        if ctx.should_stop():  # a cancel asked on the job (the jobs page): the migration's too
            cancel_asked()
        return _end_pass(row.id, MigrationState.RUNNING, values, job=ctx.job_id)

    def stopped_half_way() -> dict:
        """A pass that stopped before its end: counted, and what it had copied in the figures."""
        values: dict = {"passes": Migration.passes + 1, "last_pass_at": clock.now()}
        copied = sum(f.copied for f in seen.values())
        if copied:
            part = {"copied": copied, "copied_bytes": sum(f.copied_bytes for f in seen.values())}
            values["report"] = {**(row.report or {}), "all_passes": _all_passes(row, part)}
        return values

    def failed(message: str, ran: bool = True) -> str | None:
        db.session.rollback()
        values = _failed_values(row, message, keeps_syncing=keeps_syncing)
        if ran:
            values.update(stopped_half_way())
        return end(values)

    blocked = pass_blocked(row) if row.sync else None
    if blocked:  # the domain or the mailbox went off since the pass was queued
        message = _("Passaggio saltato: %(why)s", why=blocked)
        failed(message, ran=False)
        raise JobFailed(message)
    try:
        report = run_copy(
            source_endpoint(row),
            target_endpoint(row),
            max_size=current_app.config["MIGRATION_MAX_SIZE"],
            progress=progress,
            parallel=current_app.config["MIGRATION_PARALLEL"],
        )
    except JobLost:
        db.session.rollback()
        raise  # no longer this job's: nothing written
    except JobCancelled:
        db.session.rollback()
        cancel_asked()
        _end_pass(
            row.id,
            MigrationState.RUNNING,
            {**stopped_half_way(), **_ENDED, "state": MigrationState.CANCELLED, "finished_at": utcnow()},
            job=ctx.job_id,
        )
        raise
    except (CopyFailed, Conflict) as e:
        message = customer_message(row, e.message)  # our side's failure: not its detail
        failed(message)
        raise JobFailed(message) from None
    except Exception:
        failed(_("Errore imprevisto durante la copia."))
        raise
    now = clock.now()  # the pass ends now: the next one is due MIGRATION_SYNC_HOURS from here
    found = scrub_report(row, report.to_dict())
    found["all_passes"] = _all_passes(row, found["totals"])
    totals = found["totals"]
    complete = not totals["errors"] and not totals["missing"]
    outcome = {k: totals[k] for k in ("copied", "already_present", "skipped_too_large", "errors", "missing")}
    ran = {"report": found, "passes": Migration.passes + 1, "last_pass_at": now}
    message = _(
        "Copia incompleta: %(errors)d errori, %(missing)d messaggi mancanti. Avviala di nuovo per "
        "copiare ciò che manca.",
        errors=totals["errors"],
        missing=totals["missing"] or 0,
    )
    if keeps_syncing:
        values = {
            **ran,
            "state": MigrationState.SYNCING,
            "next_pass_at": now + timedelta(hours=hours),
            "error": None,
            "failed_passes": 0,
        }
        if not complete:
            message = _(
                "Passaggio incompleto: %(errors)d errori, %(missing)d messaggi mancanti. Il prossimo "
                "passaggio copia ciò che manca.",
                errors=totals["errors"],
                missing=totals["missing"] or 0,
            )
            values.update(error=message[:500])
        state = end(values)
        return {**outcome, "state": state or MigrationState.SYNCING.value}
    if complete:
        state = end(
            {
                **ran,
                **_ENDED,
                "state": MigrationState.DONE,
                "error": None,
                "failed_passes": 0,
                "finished_at": utcnow(),
            }
        )
        return {**outcome, "state": state or MigrationState.DONE.value}
    state = end({**ran, "state": MigrationState.FAILED, "error": message[:500], "finished_at": utcnow()})
    if state == MigrationState.CANCELLED:
        return {**outcome, "state": state}
    raise JobFailed(message)
