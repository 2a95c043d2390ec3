"""The panel's migrations: a mailbox filled from the old provider's IMAP server (one rule place).

Staff enter a migration (the old server and account, the old password sealed with
app/services/vault.py), run its preflight (both logins and the engine's dry run, compared with
the mailbox's free quota; nothing written on either side), then start it: the domain's gate
(domain_checks.migration_gate) must be open, and a `migration_copy` job on the `migration`
queue copies it with run_copy, our side through Dovecot's master user. The job alone unseals
the password (its only argument is the migration's id); the password is wiped when the
migration is done or cancelled. A failed migration may be started again: the engine copies
only what is missing. At most MIGRATION_PER_HOST copies run at once from one old server; a
copy that finds its server busy waits for its turn (cancellable meanwhile).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from app.extensions import db
from app.mailserver.imap import Endpoint
from app.models import Domain, Mailbox, Migration
from app.models.base import utcnow
from app.models.enums import ImapSecurity, MailboxStatus, MigrationState
from app.models.migrations import OPEN_STATES
from app.services import audit, domain_checks, domains, fields, limits, quota, vault
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
    problems.raise_if_any()
    return MigrationDraft(domain, mailbox, host, port, security, verify, username, password)


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
        changes={"source": [None, f"{draft.username}@{draft.host}:{draft.port} ({draft.security})"]},
    )
    db.session.commit()
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


# The preflight.


def free_bytes(mailbox: Mailbox) -> int | None:
    """The mailbox's class size less its last usage reading (None: no reading yet, counted as empty)."""
    limit = mailbox.service_class.quota_mb * MB
    usage = quota.usage_for([mailbox.id]).get(mailbox.id)
    return max(0, limit - (usage.used_bytes if usage else 0))


def preflight(actor: Actor, migration_id: object) -> Migration:
    """Log in on both sides and measure (the engine's dry run: nothing written); store the findings.

    Raises Conflict, the findings stored, when the destination is not active or the messages to
    copy do not fit the mailbox's free quota (with the numbers)."""
    row = get_migration(actor, migration_id)
    require_staff(actor)
    if row.state not in (MigrationState.DRAFT, MigrationState.PREFLIGHT_OK, MigrationState.FAILED):
        raise Conflict(_("La migrazione è già avviata o conclusa."))
    source, target = source_endpoint(row), target_endpoint(row)
    try:
        report = run_copy(source, target, dry_run=True, max_size=current_app.config["MIGRATION_MAX_SIZE"])
    except CopyFailed as e:
        _store_preflight(actor, row, {"ok": False, "problem": e.message})
        raise Conflict(e.message) from None
    findings = report.to_dict()
    skipped = sum(s["size"] for f in findings["folders"] for s in f["skipped_too_large"])
    needed = findings["totals"]["source_bytes"] - skipped
    free = free_bytes(row.mailbox)
    findings.update(needed_bytes=needed, free_bytes=free, ok=True, problem=None)
    problem = None
    if row.mailbox.status != MailboxStatus.ACTIVE:
        problem = _("La casella di destinazione %(address)s non è attiva.", address=row.mailbox.address)
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
    _store_preflight(actor, row, findings)
    if problem:
        raise Conflict(problem)
    return row


def _mb(n: int) -> str:
    return f"{n / MB:.1f}"


def _store_preflight(actor: Actor, row: Migration, findings: dict) -> None:
    row.preflight, row.preflight_at = findings, utcnow()
    if findings.get("ok"):
        row.state, row.error = MigrationState.PREFLIGHT_OK, None
    elif row.state == MigrationState.PREFLIGHT_OK:
        row.state = MigrationState.DRAFT
    audit.record(
        actor,
        "migration.preflight",
        customer_id=row.customer_id,
        target=row.mailbox.address,
        changes={"ok": [None, bool(findings.get("ok"))]},
    )
    db.session.commit()


# Start, cancel.


def start(actor: Actor, migration_id: object) -> Migration:
    """Queue the copy: after a good preflight (or again after a failure), once the domain's gate is open."""
    from app.services import jobs

    row = get_migration(actor, migration_id)
    require_staff(actor)
    if row.state not in (MigrationState.PREFLIGHT_OK, MigrationState.FAILED) and not _stuck(row):
        if row.state == MigrationState.DRAFT:
            raise Conflict(_("Esegui prima la verifica (preflight) della migrazione."))
        raise Conflict(_("La migrazione è già avviata o conclusa."))
    if row.secret is None:
        raise Conflict(
            _("La password della vecchia casella non è più conservata: inserisci di nuovo la migrazione.")
        )
    gate = domain_checks.migration_gate(row.domain)
    if not gate.open:
        raise Conflict(gate.reason)
    before = row.state
    moved = db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id, Migration.state == before)
        .values(state=MigrationState.QUEUED, started_by=actor.label[:254], started_at=utcnow(), error=None)
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
    try:
        job = jobs.enqueue(actor, "migration_copy", customer_id=row.customer_id, args=[row.id])
    except jobs.QueueUnavailable:
        _set(row.id, (MigrationState.QUEUED,), state=before)
        raise
    db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id)
        .values(job_id=job.id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(row)
    return row


def cancel(actor: Actor, migration_id: object) -> Migration:
    """Stop it: at once if not running (the password wiped), else at the running copy's next batch."""
    from app.services import jobs

    row = get_migration(actor, migration_id)
    require_staff(actor)
    if row.state in (MigrationState.DONE, MigrationState.CANCELLED):
        raise Conflict(_("La migrazione è già conclusa."))
    audit.record(actor, "migration.cancel", customer_id=row.customer_id, target=row.mailbox.address)
    db.session.commit()
    stuck = _stuck(row)
    if row.state in (MigrationState.QUEUED, MigrationState.RUNNING) and not stuck:
        jobs.cancel(actor, row.job_id)  # a queued job: on_job_cancelled marks the migration
    # A running copy stops at its next batch and marks the migration itself; one whose job
    # ended without doing so (its worker died for good) is cancelled here.
    _set(
        row.id,
        (MigrationState.DRAFT, MigrationState.PREFLIGHT_OK, MigrationState.FAILED, MigrationState.QUEUED)
        + ((MigrationState.RUNNING,) if stuck else ()),
        state=MigrationState.CANCELLED,
        secret=None,
        finished_at=utcnow(),
    )
    db.session.refresh(row)
    return row


def _stuck(row: Migration) -> bool:
    """Queued or running, but its job ended (a worker that died for good): neither copying nor waiting."""
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
            state=MigrationState.CANCELLED,
            secret=None,
            finished_at=utcnow(),
        )


def _set(migration_id: int, from_states: tuple, **values) -> bool:
    """One conditional UPDATE, committed: True if this caller made the move."""
    moved = db.session.execute(
        sa.update(Migration)
        .where(Migration.id == migration_id, Migration.state.in_([str(s) for s in from_states]))
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return moved == 1


# The job's body.


def running_from(host: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).where(Migration.host == host, Migration.state == MigrationState.RUNNING)
    )


def _lock_host(host: str) -> None:
    """Serialise the turn-taking of one old host until commit: on PostgreSQL an advisory lock (two
    copies would otherwise both count one running and both start); SQLite's UPDATE locks the database."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"migration-host:{host}"}
        )


def _take_turn(row: Migration, ctx) -> None:
    """queued -> running once fewer than MIGRATION_PER_HOST copies run from its old server; waits meanwhile."""
    from app.services.jobs import JobCancelled, JobFailed

    limit = max(1, current_app.config["MIGRATION_PER_HOST"])
    pause = current_app.config["MIGRATION_HOST_WAIT"]
    waiting = False
    while True:
        if ctx.should_stop():
            raise JobCancelled
        _lock_host(row.host)
        busy = (
            sa.select(sa.func.count())
            .where(Migration.host == row.host, Migration.state == MigrationState.RUNNING)
            .scalar_subquery()
        )
        moved = db.session.execute(
            sa.update(Migration)
            .where(Migration.id == row.id, Migration.state == MigrationState.QUEUED, busy < limit)
            .values(state=MigrationState.RUNNING)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if moved == 1:
            return
        db.session.refresh(row)
        if row.state != MigrationState.QUEUED:
            raise JobFailed(_("La migrazione non è più in coda."))
        if not waiting:
            ctx.progress(0, None, _("In attesa: altre copie dallo stesso server sono in corso."))
            waiting = True
        db.session.commit()  # no transaction left open while waiting
        time.sleep(pause)


def _adopt(row: Migration, job_id: int) -> None:
    """This job is the migration's: a retry of a job whose worker died finds it still running."""
    from app.models import Job

    if row.state == MigrationState.RUNNING and row.job_id != job_id:
        previous = db.session.get(Job, row.job_id) if row.job_id else None
        if previous is None or not previous.active:
            _set(row.id, (MigrationState.RUNNING,), state=MigrationState.QUEUED)
    db.session.execute(
        sa.update(Migration)
        .where(Migration.id == row.id)
        .values(job_id=job_id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(row)


def run_job(ctx, migration_id: int) -> dict:
    """Copy one migration (the `migration_copy` job): unseal, copy, report, wipe."""
    from app.services.jobs import JobCancelled, JobFailed

    row = db.session.get(Migration, migration_id)
    if row is None or row.customer_id != ctx.customer_id:
        raise JobFailed(_not_found())
    _adopt(row, ctx.job_id)
    _take_turn(row, ctx)
    total = (row.preflight or {}).get("totals", {}).get("source_count")
    seen: dict[int, object] = {}

    def progress(folder) -> None:
        seen[id(folder)] = folder
        done = sum(f.copied + f.already_present + len(f.skipped_too_large) for f in seen.values())
        ctx.progress(min(done, total) if total else done, total, folder.target)
        if ctx.should_stop():
            raise JobCancelled

    try:
        report = run_copy(
            source_endpoint(row),
            target_endpoint(row),
            max_size=current_app.config["MIGRATION_MAX_SIZE"],
            progress=progress,
        )
    except JobCancelled:
        db.session.rollback()
        _set(
            row.id,
            (MigrationState.RUNNING,),
            state=MigrationState.CANCELLED,
            secret=None,
            finished_at=utcnow(),
        )
        raise
    except (CopyFailed, Conflict) as e:
        db.session.rollback()
        _set(
            row.id,
            (MigrationState.RUNNING,),
            state=MigrationState.FAILED,
            error=e.message[:500],
            finished_at=utcnow(),
        )
        raise JobFailed(e.message) from None
    except Exception:
        db.session.rollback()
        _set(
            row.id,
            (MigrationState.RUNNING,),
            state=MigrationState.FAILED,
            error=_("Errore imprevisto durante la copia."),
            finished_at=utcnow(),
        )
        raise
    found = report.to_dict()
    totals = found["totals"]
    complete = not totals["errors"] and not totals["missing"]
    if complete:
        _set(
            row.id,
            (MigrationState.RUNNING,),
            state=MigrationState.DONE,
            report=found,
            secret=None,
            error=None,
            finished_at=utcnow(),
        )
    else:
        message = _(
            "Copia incompleta: %(errors)d errori, %(missing)d messaggi mancanti. Avviala di nuovo per "
            "copiare ciò che manca.",
            errors=totals["errors"],
            missing=totals["missing"] or 0,
        )
        _set(
            row.id,
            (MigrationState.RUNNING,),
            state=MigrationState.FAILED,
            report=found,
            error=message[:500],
            finished_at=utcnow(),
        )
        raise JobFailed(message)
    return {k: totals[k] for k in ("copied", "already_present", "skipped_too_large", "errors", "missing")}
