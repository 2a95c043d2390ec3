"""Models as the API shows them. Password hashes never leave the database.

Each serializer's shape is declared above it (body.response); the OpenAPI document's
response schemas are those shapes, and the API tests check real answers against them.
"""

from __future__ import annotations

from datetime import datetime

from flask import url_for

from app.data import catalog
from app.models import (
    Alias,
    CapacityRequest,
    Customer,
    DistributionList,
    Domain,
    Import,
    Job,
    Mailbox,
    Migration,
    ServiceClass,
)
from app.models.enums import (
    DomainState,
    ImapSecurity,
    ImportOp,
    ImportState,
    JobState,
    MailboxStatus,
    MigrationState,
    Plan,
    PostPolicy,
    RequestStatus,
)
from app.services import clock, dkim, dnscheck, domain_checks, imports
from app.services.paging import Page
from app.web.api.body import (
    any_json,
    boolean,
    choice,
    integer,
    list_of,
    object_of,
    page_of,
    response,
    text,
)
from app.web.api.body import (
    datetime as when,
)

ID = integer(read_only=True)


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


SERVICE_CLASS = response(
    "ServiceClass",
    id=ID,
    name=text(examples=("Business Mail 5.000 MB",)),
    type=choice(tuple(name for _code, name, _features in catalog.TYPES)),
    quota_mb=integer(enum=catalog.SIZES_MB),
    features=list_of(choice(tuple(catalog.FEATURE_LABELS))),
)


def service_class(c: ServiceClass) -> dict:
    return {
        "id": c.id,
        "name": c.name,
        "type": c.type_name,
        "quota_mb": c.quota_mb,
        "features": list(c.features),
    }


ALLOWANCE = response("Allowance", service_class=text(), max_accounts=integer())
CUSTOMER = response(
    "Customer",
    id=ID,
    name=text(),
    plan=choice(Plan),
    vat_number=text(nullable=True),
    contact_email=text(nullable=True),
    self_service=boolean(),
    allowances=list_of(object_of(ALLOWANCE)),
    on_hold=boolean(
        read_only=True,
        description="Out of credit: no mailbox logs in, incoming mail is still kept. Each mailbox keeps its own status.",
    ),
    created_at=when(),
)
CUSTOMER_PAGE = page_of(CUSTOMER)


def customer(c: Customer) -> dict:
    return {
        "id": c.id,
        "name": c.name,
        "plan": c.plan,
        "vat_number": c.vat_number,
        "contact_email": c.contact_email,
        "self_service": c.self_service,
        "allowances": [
            {"service_class": a.service_class.name, "max_accounts": a.max_accounts}
            for a in sorted(c.allowances, key=lambda a: a.service_class_id)
        ],
        "on_hold": c.on_hold,
        "created_at": _when(c.created_at),
    }


CONTRACT_ALLOWANCE = response(
    "ContractAllowance",
    service_class=text(),
    max_accounts=integer(nullable=True, description="null for Pay per Use customers."),
    used=integer(),
)
CONTRACT = response(
    "Contract",
    customer_id=integer(),
    plan=choice(Plan),
    self_service=boolean(),
    allowances=list_of(object_of(CONTRACT_ALLOWANCE)),
)


def contract(c: Customer, usage: list) -> dict:
    """usage: limits.usage_report rows (classes allowed or in use)."""
    return {
        "customer_id": c.id,
        "plan": c.plan,
        "self_service": c.self_service,
        "allowances": [
            {"service_class": row.service_class.name, "max_accounts": row.allowance, "used": row.used}
            for row in usage
        ],
    }


DKIM_RECORD = response(
    "DkimRecord",
    selector=text(description="The selector: the record's name is <selector>._domainkey.<domain>."),
    txt=text(description="The TXT record's exact value: v=DKIM1; k=rsa; p=<public key>."),
)

DKIM_KEY = response(
    "DkimKey",
    selector=text(),
    state=choice(
        ("pending", "active"),
        description="pending: published first, it signs once the DNS check sees its record; active: it "
        "signs now (a domain's first key).",
    ),
    name=text(description="Where to publish it: <selector>._domainkey.<domain>."),
    txt=text(description="The TXT record's exact value."),
    domain=object_of(response("DkimDomain", id=ID, name=text(description="ASCII (punycode) form."))),
)


def dkim_key(key) -> dict:
    return {
        "selector": key.selector,
        "state": key.state,
        "name": dkim.record_name(key.domain.name, key.selector),
        "txt": key.txt,
        "domain": {"id": key.domain.id, "name": key.domain.name},
    }


DOMAIN = response(
    "Domain",
    id=ID,
    customer_id=integer(),
    name=text(description="ASCII (punycode) form, as stored."),
    unicode_name=text(),
    state=choice(
        DomainState,
        description="pending: added by a customer, not served until support approves it; "
        "active: the mail servers serve it.",
    ),
    created_at=when(),
    activated_at=when(nullable=True),
    verified_by=choice(
        ("txt", "mx", "staff"),
        nullable=True,
        description="How the domain was proved the customer's: its TXT record, an MX already pointing "
        "to us, or staff's approval (null while pending).",
    ),
    verification_txt=text(
        nullable=True,
        description="While pending: the exact TXT record value to publish at the domain to prove it is "
        "the customer's (the domain then becomes active by itself). Null once verified.",
    ),
    dns=object_of(
        response(
            "DomainDns",
            verdict=choice(
                dnscheck.VERDICTS,
                nullable=True,
                description="The last certain MX verdict (null: never checked). missing: no MX; wrong: "
                "the lowest-preference MX is not exactly ours; published: every authoritative server "
                "answers our MX; propagated: the rest of the Internet sees it too.",
            ),
            checked_at=when(nullable=True),
            problem=text(
                nullable=True,
                description="Set when the last check could not tell (timeouts, SERVFAIL): the verdict "
                "is the previous one.",
            ),
            reason=text(description="The verdict in plain words, in the caller's language."),
            first_seen=any_json(description="{verdict: when it was first seen}, since the MX last changed."),
            next_check_at=when(nullable=True),
            migration_allowed=boolean(
                description="Migrations may start: the MX has propagated, or staff allowed it."
            ),
        )
    ),
    dkim=object_of(
        DKIM_RECORD,
        nullable=True,
        description="The DKIM record to publish at <selector>._domainkey.<name>: the signing key's, or "
        "during a rotation the new key's (it signs once the DNS check sees it). Null: no key yet.",
    ),
)


_READ = object()


def domain(d: Domain, dkim_record: dict | None | object = _READ) -> dict:
    """A domain's JSON; `dkim_record` when the caller read it already (domains(): one query for all)."""
    row = d.check
    record = dkim.dkim_record(d) if dkim_record is _READ else dkim_record
    return {
        "id": d.id,
        "customer_id": d.customer_id,
        "name": d.name,
        "unicode_name": d.display_name,
        "state": d.state,
        "created_at": _when(d.created_at),
        "activated_at": _when(d.activated_at),
        "verified_by": d.verified_by,
        "verification_txt": domain_checks.verification_txt(d),
        "dns": {
            "verdict": row.verdict if row else None,
            "checked_at": _when(row.checked_at) if row else None,
            "problem": row.problem if row else None,
            "reason": domain_checks.describe(row),
            "first_seen": dict(row.first_seen or {}) if row else {},
            "next_check_at": _when(row.next_check_at) if row else None,
            "migration_allowed": domain_checks.migration_gate(d).open,
        },
        "dkim": {"selector": record["selector"], "txt": record["txt"]} if record else None,
    }


def domains(items: list[Domain]) -> list[dict]:
    """A list of domains' JSON: their DKIM records read in one query, not one per domain."""
    records = dkim.dkim_records(items)
    return [domain(d, records[d.id]) for d in items]


DOMAIN_CHECK = response(
    "DomainCheckResult",
    domain=object_of(DOMAIN),
    checked=boolean(
        description="False when the domain was checked a few seconds ago: the stored result stands."
    ),
    activated=boolean(description="This check found the ownership proof and activated the domain."),
    verdict=choice(
        dnscheck.ALL_VERDICTS,
        description="What this check saw (unknown: the servers could not tell; the domain keeps its "
        "previous verdict).",
    ),
    report=any_json(
        nullable=True,
        description="Every server's answer: zone, mx (each authoritative server), resolver, ttl, advice.",
    ),
)


def domain_check(d: Domain, report, recorded) -> dict:
    verdict = d.check.verdict if d.check else None
    if report is not None:
        verdict = recorded.verdict if report.verdict != dnscheck.UNKNOWN else dnscheck.UNKNOWN
    return {
        "domain": domain(d),
        "checked": report is not None,
        "activated": bool(recorded and recorded.activated),
        "verdict": verdict or dnscheck.UNKNOWN,
        "report": report.as_dict() if report is not None else None,
    }


DOMAIN_REJECTION = response(
    "RejectedDomain",
    id=ID,
    customer_id=integer(),
    name=text(description="ASCII (punycode) form, as it was stored."),
    mailboxes=list_of(text(), description="The mailboxes removed with it."),
    aliases=list_of(text(), description="The aliases removed: on the domain, or pointing to its mailboxes."),
    lists=list_of(text(), description="The distribution lists removed with it."),
)


def domain_rejection(d: dict, removed) -> dict:
    """d: the rejected domain's id, customer_id and name, read before it went."""
    return {
        **d,
        "mailboxes": removed.mailboxes,
        "aliases": removed.aliases,
        "lists": removed.lists,
    }


MAILBOX = response(
    "Mailbox",
    id=ID,
    customer_id=integer(),
    address=text(),
    unicode_address=text(),
    display_name=text(),
    service_class=text(),
    status=choice(MailboxStatus),
    created_at=when(),
    updated_at=when(),
)
MAILBOX_PAGE = page_of(MAILBOX)


def mailbox(m: Mailbox) -> dict:
    return {
        "id": m.id,
        "customer_id": m.customer_id,
        "address": m.address,
        "unicode_address": m.display_address,
        "display_name": m.display_name,
        "service_class": m.service_class.name,
        "status": m.status,
        "created_at": _when(m.created_at),
        "updated_at": _when(m.updated_at),
    }


ALIAS = response(
    "Alias",
    id=ID,
    customer_id=integer(),
    address=text(),
    unicode_address=text(),
    target=text(description="Address of the mailbox it delivers to."),
    target_id=integer(),
    created_at=when(),
)


def alias(a: Alias) -> dict:
    return {
        "id": a.id,
        "customer_id": a.customer_id,
        "address": a.address,
        "unicode_address": a.display_address,
        "target": a.target.address,
        "target_id": a.target_id,
        "created_at": _when(a.created_at),
    }


POST_POLICY_WORDS = "Who may post: anyone; only the customer's own mailboxes, logged in; only the members."
DISTRIBUTION_LIST = response(
    "DistributionList",
    id=ID,
    customer_id=integer(),
    address=text(),
    unicode_address=text(),
    description=text(),
    members=list_of(text()),
    post_policy=choice(PostPolicy, description=POST_POLICY_WORDS),
    created_at=when(),
)


def distribution_list(d: DistributionList) -> dict:
    return {
        "id": d.id,
        "customer_id": d.customer_id,
        "address": d.address,
        "unicode_address": d.display_address,
        "description": d.description,
        "members": [m.address for m in d.members],
        "post_policy": d.post_policy,
        "created_at": _when(d.created_at),
    }


CAPACITY_REQUEST = response(
    "CapacityRequest",
    id=ID,
    customer_id=integer(),
    service_class=text(),
    extra_accounts=integer(description="How many more accounts the customer asks for."),
    note=text(description="Why the customer asks."),
    status=choice(RequestStatus),
    granted_accounts=integer(
        nullable=True, description="What staff granted (the allowance grew by it); null unless approved."
    ),
    decision_note=text(description="Staff's reason, shown to the customer; empty if none."),
    created_at=when(),
    updated_at=when(nullable=True, description="When the customer last revised the open request."),
    decided_at=when(nullable=True),
)


def capacity_request(r: CapacityRequest) -> dict:
    return {
        "id": r.id,
        "customer_id": r.customer_id,
        "service_class": r.service_class.name,
        "extra_accounts": r.extra_accounts,
        "note": r.note,
        "status": r.status,
        "granted_accounts": r.granted_accounts,
        "decision_note": r.decision_note,
        "created_at": _when(r.created_at),
        "updated_at": _when(r.updated_at),
        "decided_at": _when(r.decided_at),
    }


def page(p: Page, item) -> dict:
    return {
        "items": [item(x) for x in p.items],
        "total": p.total,
        "page": p.page,
        "per_page": p.per_page,
        "pages": p.pages,
    }


LIST_LIMITS = response(
    "ListLimits",
    per_list=integer(description="External members allowed in one list."),
    per_customer=integer(description="External members allowed over all the customer's lists."),
    per_list_override=integer(nullable=True, description="Staff's override; null: the default."),
    per_customer_override=integer(nullable=True),
    external_members=integer(description="External members now, over all lists."),
)


def list_limits(customer: Customer, limits: tuple[int, int], external_members: int) -> dict:
    per_list, per_customer = limits
    return {
        "per_list": per_list,
        "per_customer": per_customer,
        "per_list_override": customer.list_external_per_list,
        "per_customer_override": customer.list_external_per_customer,
        "external_members": external_members,
    }


JOB = response(
    "Job",
    id=ID,
    kind=text(examples=("quota_refresh",)),
    state=choice(JobState),
    done=integer(),
    total=integer(nullable=True),
    message=text(),
    result=any_json(nullable=True),
)


def job(j: Job) -> dict:
    return {
        "id": j.id,
        "kind": j.kind,
        "state": j.state,
        "done": j.done,
        "total": j.total,
        "message": j.message,
        "result": j.result,
    }


OP_COUNTS = response(
    "ImportOpCounts",
    create=integer(description="Rows that will be created."),
    present=integer(description="Rows already there (nothing to do)."),
    error=integer(description="Rows with a problem."),
)
IMPORT_COUNTS = response("ImportCounts", **{op.value: object_of(OP_COUNTS) for op in ImportOp})
IMPORT_PROBLEM = response(
    "ImportProblem",
    sheet=text(nullable=True, examples=("Caselle",)),
    row=integer(nullable=True, description="The row's number in the sheet, as the spreadsheet shows it."),
    column=text(nullable=True, examples=("B",)),
    message=text(examples=("La password è troppo corta: almeno 8 caratteri.",)),
)
IMPORT_LINKS = response(
    "ImportLinks",
    self=text(),
    apply=text(nullable=True, description="While the preview waits to be applied."),
    report=text(nullable=True, description="Once the import has ended: the outcome of every row (.xlsx)."),
    generated_passwords=text(
        nullable=True, description="While generated passwords wait for their one download."
    ),
    job=text(nullable=True),
)
_IMPORT_FIELDS = {
    "id": ID,
    "state": choice(ImportState),
    "filename": text(),
    "size_bytes": integer(),
    "created_by": text(),
    "created_at": when(),
    "expires_at": when(nullable=True, description="A preview not applied by then is discarded."),
    "valid_only": boolean(description="Applied to the rows without problems only."),
    "applied_by": text(nullable=True),
    "applied_at": when(nullable=True),
    "finished_at": when(nullable=True),
    "counts": object_of(IMPORT_COUNTS, description="The preview: per kind of row, what it will do."),
    "problem_count": integer(description="Every problem found (errors lists the first 5000)."),
    "to_create": integer(description="Rows that applying will create."),
    "generated_count": integer(description="Passwords generated for rows that left the password empty."),
    "links": object_of(IMPORT_LINKS),
}
_ERRORS = list_of(object_of(IMPORT_PROBLEM), description="Every problem with its cell, in file order.")
_RESULT = any_json(
    nullable=True,
    description="Once applied: per kind of row, how many rows had each outcome "
    "(pending, created, present, error, skipped).",
    examples=({"mailbox": {"created": 9, "present": 1, "error": 1}},),
)
IMPORT_SUMMARY = response("ImportSummary", **_IMPORT_FIELDS, result=_RESULT)
IMPORT = response("Import", **_IMPORT_FIELDS, errors=_ERRORS)
IMPORT_DETAIL = response(
    "ImportDetail",
    **_IMPORT_FIELDS,
    errors=_ERRORS,
    result=_RESULT,
    job=object_of(JOB, nullable=True, description="The job applying it (the last one, if resumed)."),
)


def _generated_waiting(i: Import) -> bool:
    return bool(
        i.generated_count
        and i.generated_taken_at is None
        and (i.generated_expires_at is None or i.generated_expires_at > clock.now())
    )


def _import_fields(i: Import) -> dict:
    counts = {
        op.value: {"create": 0, "present": 0, "error": 0, **(i.counts or {}).get(op.value, {})}
        for op in ImportOp
    }
    ended = i.finished_at is not None and i.state != ImportState.EXPIRED
    return {
        "id": i.id,
        "state": i.state,
        "filename": i.filename,
        "size_bytes": i.size_bytes,
        "created_by": i.created_by,
        "created_at": _when(i.created_at),
        "expires_at": _when(i.expires_at) if i.state == ImportState.PREVIEWED else None,
        "valid_only": i.valid_only,
        "applied_by": i.applied_by,
        "applied_at": _when(i.applied_at),
        "finished_at": _when(i.finished_at),
        "counts": counts,
        "problem_count": i.problem_count,
        "to_create": imports.to_create(i),
        "generated_count": i.generated_count,
        "links": {
            "self": url_for("api.import_get", import_id=i.id),
            "apply": url_for("api.import_apply", import_id=i.id)
            if i.state == ImportState.PREVIEWED
            else None,
            "report": url_for("api.import_report", import_id=i.id) if ended else None,
            "generated_passwords": url_for("api.import_generated_passwords", import_id=i.id)
            if _generated_waiting(i)
            else None,
            "job": url_for("api.job_get", job_id=i.job_id) if i.job_id else None,
        },
    }


def import_summary(i: Import) -> dict:
    return {**_import_fields(i), "result": i.result}


def import_preview(i: Import) -> dict:
    return {**_import_fields(i), "errors": imports.errors_json(i)}


def import_detail(i: Import, j: Job | None) -> dict:
    return {**import_preview(i), "result": i.result, "job": job(j) if j is not None else None}


MIGRATION = response(
    "Migration",
    id=ID,
    customer_id=integer(),
    domain_id=integer(),
    mailbox=text(description="Our mailbox, filled from the old account."),
    host=text(),
    port=integer(minimum=1, maximum=65535),
    security=choice(ImapSecurity),
    verify_cert=boolean(),
    username=text(description="The old account's user name (its password never leaves the panel)."),
    password_kept=boolean(
        description="Whether the old password is still kept (wiped once done or cancelled)."
    ),
    state=choice(MigrationState),
    waiting=boolean(
        description="Queued with no job on it: waiting for a turn on its old server (MIGRATION_PER_HOST)."
    ),
    sync=boolean(
        description="Kept in sync until the MX switch: a pass every MIGRATION_SYNC_HOURS (state syncing "
        "between passes), then a final pass once the domain's MX has propagated or staff finish it."
    ),
    final_pass=boolean(description="The next pass (or the one running) is the final one."),
    passes=integer(description="Passes run so far (failed ones too)."),
    last_pass_at=when(nullable=True),
    next_pass_at=when(nullable=True, description="When the cron queues the next pass of a sync migration."),
    preflight=any_json(
        nullable=True,
        description="The last preflight: the dry run's folders and totals, needed_bytes, free_bytes, ok, problem.",
    ),
    preflight_at=when(nullable=True),
    report=any_json(
        nullable=True,
        description="The last pass's report: totals and per folder counts; all_passes: copied over every pass.",
    ),
    job=object_of(JOB, nullable=True, description="The job copying it (the last one)."),
    error=text(nullable=True),
    created_by=text(),
    created_at=when(),
    started_at=when(nullable=True),
    finished_at=when(nullable=True),
)


def migration(m: Migration, j: Job | None = None) -> dict:
    return {
        "id": m.id,
        "customer_id": m.customer_id,
        "domain_id": m.domain_id,
        "mailbox": m.mailbox.address,
        "host": m.host,
        "port": m.port,
        "security": m.security,
        "verify_cert": m.verify_cert,
        "username": m.username,
        "password_kept": m.password_kept,
        "state": m.state,
        "waiting": m.waiting_turn,
        "sync": m.sync,
        "final_pass": m.final_pass,
        "passes": m.passes,
        "last_pass_at": _when(m.last_pass_at),
        "next_pass_at": _when(m.next_pass_at),
        "preflight": m.preflight,
        "preflight_at": _when(m.preflight_at),
        "report": m.report,
        "job": job(j) if j is not None else None,
        "error": m.error,
        "created_by": m.created_by,
        "created_at": _when(m.created_at),
        "started_at": _when(m.started_at),
        "finished_at": _when(m.finished_at),
    }
