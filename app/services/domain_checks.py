"""A domain's DNS over time: its verdict, its activation by proof, re-checks, warnings, the migration gate.

dnscheck says what the DNS holds now; here is what the panel does with it:

- a pending domain becomes active by itself once its owner proves control: the TXT record
  with its token at the domain's authoritative servers, or an MX already pointing to us
  (not for a name another customer held here before: its MX may still point to us from
  then). A verified domain stays verified; a released and claimed again domain has a new
  token and must prove it again;
- a verdict is kept until a check is sure of another (a check that could not tell keeps it
  and says why); `published` becomes `propagated` when the resolver sees our MX, or when
  the old record's TTL (at most 48 hours) has passed since ours was first seen published;
- checks come back every 10 minutes in a domain's first hours (or after its MX changed),
  hourly until it has propagated, then daily (daily too for a claim nobody proved in a
  month); a check the servers did not answer comes back soon; an active domain whose MX moves away warns
  the customer and support, once until it comes back;
- a domain's migrations may start only once its MX has propagated, or when staff let them
  (a reason, audited).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import AuditEvent, Domain, DomainCheck
from app.redis import get_redis
from app.services import audit, clock, dnscheck, domain_names, domains, fields, limits, notify
from app.services.access import Actor, require_staff
from app.services.addresses import domain_to_ascii
from app.services.errors import Conflict, NotFound, ValidationError

log = logging.getLogger(__name__)

MAX_PROPAGATION = timedelta(hours=48)
EARLY = timedelta(hours=2)  # a new domain's, or a changed MX's, first hours: checked more often
EARLY_EVERY = timedelta(minutes=10)
PENDING_EVERY = timedelta(hours=1)
ACTIVE_EVERY = timedelta(days=1)
ABANDONED = timedelta(days=30)
MIN_REASON = 10
BATCH = 500
RUN_LIMIT = 100_000  # domains one re-check job takes; the next run takes the rest


def verification_txt(domain: Domain) -> str | None:
    """The TXT record to publish while the domain waits for its proof (None once verified)."""
    return _txt(domain.state, domain.verified_at, domain.verification_token)


def _iso(at: datetime) -> str:
    return at.isoformat()


@dataclass
class Recorded:
    """What a check changed."""

    verdict: str | None  # the verdict kept (the previous one when the check could not tell)
    activated: bool = False
    warned: bool = False


def record(domain: Domain, report: dnscheck.Report, now: datetime | None = None) -> Recorded:
    """Keep a check's outcome on the domain (its row in domain_checks): the caller commits."""
    now = now or clock.now()
    row = domain.check
    if row is None:
        row = DomainCheck(domain_id=domain.id, first_seen={}, details={})
        domain.check = row
    previous = row.verdict
    row.checked_at = now
    seen = dict(row.first_seen or {})
    result = Recorded(previous)
    if report.verdict == dnscheck.UNKNOWN:
        row.problem = report.code
        row.details = {**(row.details or {}), "last_unknown": report.as_dict()}
    else:
        verdict, code = report.verdict, report.code
        if verdict in ("missing", "wrong"):
            if previous != verdict:
                seen = {verdict: _iso(now)}  # a new story of this MX begins
            else:
                seen.setdefault(verdict, _iso(now))
            # What resolvers may hold until ours replaces it: the old MX's TTL, or the zone's negative TTL.
            row.old_ttl = report.ttl
        else:
            if previous not in ("published", "propagated"):
                seen["published"] = _iso(now)  # ours appears: how long it has been there counts from now
            if verdict == "published" and previous == "propagated":
                verdict, code = "propagated", "kept"
            elif verdict == "published":
                wait = (
                    min(timedelta(seconds=row.old_ttl), MAX_PROPAGATION)
                    if row.old_ttl is not None
                    else MAX_PROPAGATION
                )
                if now - datetime.fromisoformat(seen["published"]) >= wait:
                    verdict, code = "propagated", "ttl"
            if verdict == "propagated":
                seen.setdefault("propagated", _iso(now))
        row.verdict, row.problem, row.first_seen = verdict, None, seen
        row.details = {**report.as_dict(), "verdict": verdict, "code": code}
        result.verdict = verdict
        if verdict in ("published", "propagated"):
            row.warned_at = None
        elif domain.is_active and previous in ("published", "propagated") and row.warned_at is None:
            row.warned_at = now
            result.warned = True
            notify.mx_moved(domain, lambda: describe(row))
    if not domain.is_active:
        how = _proof(domain, report, result.verdict)
        if how:
            result.activated = domains.verify_domain(domain, how)
    row.next_check_at = now + _interval(domain, row, now)
    return result


def _proof(domain: Domain, report: dnscheck.Report, verdict: str | None) -> str | None:
    if report.txt_found:
        return "txt"
    if report.verdict in ("published", "propagated") and verdict in ("published", "propagated"):
        return "mx" if mx_proof_allowed(domain) else None
    return None


def mx_proof_allowed(domain: Domain) -> bool:
    """An MX to us proves the domain only when no other customer held the name here: a name
    released by one customer may still point to us, and must not hand its mail to the next."""
    # The name itself, and the domains above it (a wildcard MX of a released parent answers for it too).
    held = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.target.in_(domain_names.ancestors(domain.name)[:-1]),
            AuditEvent.action.like("domain.%"),
            sa.or_(AuditEvent.customer_id.is_(None), AuditEvent.customer_id != domain.customer_id),
        )
    )
    return not held


def _interval(domain: Domain, row: DomainCheck, now: datetime) -> timedelta:
    changed = max(
        [domain.created_at, *(datetime.fromisoformat(v) for v in (row.first_seen or {}).values())],
        default=domain.created_at,
    )
    recent = changed is not None and now - changed < EARLY
    if row.problem:  # the servers did not answer: soon again, whatever the verdict kept
        return EARLY_EVERY if recent else PENDING_EVERY
    if row.verdict == "propagated" and domain.is_active:
        return ACTIVE_EVERY
    if recent:
        return EARLY_EVERY
    if not domain.is_active and changed is not None and now - changed > ABANDONED:
        return ACTIVE_EVERY  # a claim nobody proved for a month: once a day is enough
    return PENDING_EVERY


def describe(row: DomainCheck | None) -> str:
    """The last check's words for people (in the current locale)."""
    if row is None or not row.details:
        return _("Il dominio non è ancora stato verificato.")
    details = row.details
    if row.problem and details.get("last_unknown"):
        unknown = details["last_unknown"]
        return dnscheck.describe(dnscheck.UNKNOWN, unknown["code"], unknown["facts"], unknown["expected"])
    code = details.get("code", "")
    if code == "kept":
        code = "resolver"
    return dnscheck.describe(
        details.get("verdict", ""), code, details.get("facts", {}), details.get("expected", "")
    )


def verdict_label(verdict: str | None) -> str:
    return {
        "missing": _("MX mancante"),
        "wrong": _("MX da correggere"),
        "published": _("MX pubblicato"),
        "propagated": _("MX propagato"),
        "unknown": _("Esito incerto"),
        None: _("Non ancora verificato"),
    }.get(verdict, verdict or "")


# The doors.


class TooSoon(Conflict):
    """The domain was checked a moment ago: its last result stands."""


def check_now(
    actor: Actor, domain_id: object, *, advice: bool = True
) -> tuple[Domain, dnscheck.Report | None, Recorded | None]:
    """Check one of the actor's domains now ("check now", the API): at most every DNS_CHECK_COOLDOWN seconds.

    Returns the domain, the report and what changed; (domain, None, None) when it was checked a
    moment ago (the stored result stands).
    """
    domain = domains.get_domain(actor, domain_id)
    if not _first_within_cooldown(domain, "mx"):
        return domain, None, None
    return (domain, *_check_and_record(domain, advice=advice))


def advice_now(actor: Actor, domain_id: object, record: str) -> tuple[Domain, dict]:
    """One advice record of one of the actor's domains (SPF, DMARC, autoconfig, autodiscover), checked
    now; asked again within DNS_CHECK_COOLDOWN seconds, the same answer (from Redis) without asking the DNS."""
    if record not in dnscheck.ADVICE:
        raise NotFound(_("Record non trovato."))
    domain = domains.get_domain(actor, domain_id)
    seconds = _cooldown()
    if seconds and not _first_within_cooldown(domain, record):
        # Asked a moment ago (maybe still being asked): that answer, once there.
        key = _cooldown_key(domain, record) + ":answer"
        for _wait in range(50):
            cached = get_redis().get(key)
            if cached:
                return domain, json.loads(cached)
            time.sleep(0.1)
        return domain, {"record": record, "status": dnscheck.UNKNOWN, "found": [], "suggested": ""}
    advice = dnscheck.check_advice(domain.name, record)
    if seconds:
        get_redis().set(_cooldown_key(domain, record) + ":answer", json.dumps(advice), ex=seconds)
    _keep_advice(domain, advice)
    return domain, advice


def _keep_advice(domain: Domain, advice: dict) -> None:
    """The advice record's latest answer on the domain's check (the page's records use it: the
    customer's own SPF, say)."""
    if advice["status"] == dnscheck.UNKNOWN:
        return
    limits.lock_customer(domain.customer_id)
    row = db.session.get(DomainCheck, domain.id, populate_existing=True)
    if row is None:
        db.session.rollback()
        return
    kept = [a for a in (row.details or {}).get("advice", []) if a.get("record") != advice["record"]]
    row.details = {**(row.details or {}), "advice": [*kept, advice]}
    db.session.commit()


def _cooldown() -> int:
    return int(current_app.config["DNS_CHECK_COOLDOWN"])


def _cooldown_key(domain: Domain, what: str) -> str:
    # The token too: a domain removed and claimed again (a new row, maybe the same id) starts afresh.
    return f"panel:dnscheck:{domain.id}:{domain.verification_token}:{what}"


def _first_within_cooldown(domain: Domain, what: str) -> bool:
    seconds = _cooldown()
    return not seconds or bool(get_redis().set(_cooldown_key(domain, what), 1, nx=True, ex=seconds))


def _check_and_record(domain: Domain, *, advice: bool = True) -> tuple[dnscheck.Report, Recorded]:
    token = verification_txt(domain)
    report = dnscheck.check_name(domain.name, token_txt=token, advice=advice)
    limits.lock_customer(domain.customer_id)
    db.session.refresh(domain)
    if not report.advice and domain.check is not None and domain.check.details.get("advice"):
        report.advice = domain.check.details["advice"]  # asked on its own (advice_now): kept
    recorded = record(domain, report)
    db.session.commit()
    return report, recorded


def check_any(name: object) -> tuple[dnscheck.Report, Domain | None, Recorded | None]:
    """`flask domains check NAME`: any name; a domain of the panel keeps the result (and may activate)."""
    ascii_name = domain_to_ascii(name)
    domain = db.session.scalar(sa.select(Domain).where(Domain.name == ascii_name))
    if domain is None:
        return dnscheck.check_name(ascii_name, advice=True), None, None
    report, recorded = _check_and_record(domain)
    return report, domain, recorded


def due(now: datetime, limit: int = BATCH) -> list[int]:
    """Domains whose check is due (never checked first), oldest due first."""
    return list(
        db.session.scalars(
            sa.select(Domain.id)
            .outerjoin(DomainCheck, DomainCheck.domain_id == Domain.id)
            .where(sa.or_(DomainCheck.next_check_at.is_(None), DomainCheck.next_check_at <= now))
            .order_by(DomainCheck.next_check_at.is_not(None), DomainCheck.next_check_at, Domain.id)
            .limit(limit)
        )
    )


def recheck_due(progress=None, should_stop=None, now: datetime | None = None) -> dict:
    """Re-check every domain that is due (at most RUN_LIMIT in one run; the next run goes on).

    The DNS questions flow without pause (DNS_CONCURRENCY domains in flight, in a thread of
    their own), so a domain whose servers never answer holds up only itself; the outcomes are
    written as they come, BATCH at a time, with no transaction open while the DNS answers.
    """
    totals = {"checked": 0, "activated": 0, "warned": 0, "unknown": 0, "failed": 0}
    at = now or clock.now()
    ids = due(at, limit=RUN_LIMIT)
    asked = []
    for chunk in range(0, len(ids), BATCH):
        rows = db.session.execute(
            sa.select(
                Domain.id, Domain.name, Domain.state, Domain.verified_at, Domain.verification_token
            ).where(Domain.id.in_(ids[chunk : chunk + BATCH]))
        )
        asked += [
            (domain_id, name, _txt(state, verified_at, token))
            for domain_id, name, state, verified_at, token in rows
        ]
    db.session.commit()  # no transaction is held while the DNS answers
    stop = threading.Event()
    outcomes: list = []
    for index, report in dnscheck.stream([(name, txt) for _i, name, txt in asked], stop=stop):
        outcomes.append((asked[index][0], asked[index][1], report))
        if len(outcomes) >= BATCH:
            _write(outcomes, at, totals)
            outcomes = []
            if progress:
                progress(totals["checked"], len(asked))
            if should_stop and should_stop():
                stop.set()
                break
    _write(outcomes, at, totals)
    if progress:
        progress(totals["checked"], len(asked))
    return totals


def _txt(state: str, verified_at, token: str | None) -> str | None:
    if verified_at is not None or state == "active" or not token:
        return None
    return dnscheck.verification_txt(token)


def _write(outcomes: list, at: datetime, totals: dict) -> None:
    """Keep a batch of outcomes, under each customer's lock (in id order, as the pages take
    one), on the rows as they are now: a domain removed, approved or checked meanwhile is seen
    as it is; one domain's failure is logged and skipped, not the batch's."""
    if not outcomes:
        return
    current = {
        d.id: d
        for d in db.session.scalars(
            sa.select(Domain)
            .where(Domain.id.in_([domain_id for domain_id, _n, _r in outcomes]))
            .options(sa.orm.selectinload(Domain.check))
            .execution_options(populate_existing=True)
        )
    }
    for customer_id in sorted({d.customer_id for d in current.values()}):
        limits.lock_customer(customer_id)
    kept = [(current[i], report) for i, name, report in outcomes if i in current and current[i].name == name]
    for domain, report in kept:
        # Advice is asked for on the page only: keep the last one seen there.
        if domain.check is not None and domain.check.details.get("advice") and not report.advice:
            report.advice = domain.check.details["advice"]
    try:
        # The whole batch in one go (one flush); should it fail, each domain on its own.
        with db.session.begin_nested():
            done = [record(domain, report, at) for domain, report in kept]
    except SQLAlchemyError:
        done = []
        for domain, report in kept:
            try:
                with db.session.begin_nested():
                    db.session.refresh(domain)
                    done.append(record(domain, report, at))
            except SQLAlchemyError:
                log.exception("keeping the DNS check of %s failed", domain.name)
                totals["failed"] += 1
                done.append(None)
    for (_domain, report), one in zip(kept, done, strict=True):
        if one is None:
            continue
        totals["checked"] += 1
        totals["activated"] += one.activated
        totals["warned"] += one.warned
        totals["unknown"] += report.verdict == dnscheck.UNKNOWN
    db.session.commit()


def moved_away(actor: Actor) -> list[Domain]:
    """Active domains whose MX no longer points to us (their customer was warned), oldest first (staff)."""
    require_staff(actor)
    return list(
        db.session.scalars(
            sa.select(Domain)
            .join(DomainCheck, DomainCheck.domain_id == Domain.id)
            .where(Domain.state == "active", DomainCheck.warned_at.is_not(None))
            .options(sa.orm.joinedload(Domain.customer), sa.orm.contains_eager(Domain.check))
            .order_by(DomainCheck.warned_at)
            .limit(500)
        )
    )


# The migration gate.


@dataclass(frozen=True)
class Gate:
    open: bool
    reason: str
    override: str | None = None


def migration_gate(domain: Domain) -> Gate:
    """May the domain's mailboxes be migrated now? Only once its MX has propagated, or by staff's leave."""
    row = domain.check
    if not domain.is_active:
        return Gate(False, _("Il dominio non è ancora attivo."))
    if row is not None and row.migration_override:
        return Gate(
            True,
            _("Consentita dal supporto tecnico: %(reason)s", reason=row.migration_override),
            row.migration_override,
        )
    if row is not None and row.verdict == "propagated":
        return Gate(True, _("Il record MX punta a noi ed è propagato."))
    return Gate(
        False,
        _(
            "La migrazione può partire quando il record MX punta a noi ed è propagato (ora: %(state)s).",
            state=verdict_label(row.verdict if row else None),
        ),
    )


def allow_migration(actor: Actor, domain_id: object, reason: object) -> Domain:
    """Staff let a domain's migrations start before its MX propagated (audited, with the reason)."""
    domain = domains.get_domain(actor, domain_id)
    require_staff(actor)
    text = fields.text(reason, "reason", max_len=1000)
    if len(text) < MIN_REASON:
        raise ValidationError.one("reason", _("Scrivi il motivo (almeno %(n)d caratteri).", n=MIN_REASON))
    limits.lock_customer(domain.customer_id)
    db.session.refresh(domain)
    row = domain.check
    if row is None:
        row = DomainCheck(domain_id=domain.id, first_seen={}, details={})
        domain.check = row
    before = row.migration_override
    row.migration_override, row.migration_override_by, row.migration_override_at = (
        text,
        actor.label,
        clock.now(),
    )
    audit.record(
        actor,
        "domain.migration_override",
        customer_id=domain.customer_id,
        target=domain.name,
        changes={"migration_override": [before, text]},
    )
    db.session.commit()
    return domain
