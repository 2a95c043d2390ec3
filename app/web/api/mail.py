"""JSON API /api/v1: a customer's domains, mailboxes, aliases and distribution lists."""

from __future__ import annotations

from flask import jsonify
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models.enums import DomainState, MailboxStatus, PostPolicy
from app.services import aliases, classes, dkim, domain_checks, domains, lists, mailboxes, passwords
from app.services.access import customer_for
from app.services.context import CustomerContext
from app.web.api import body
from app.web.api import serializers as out
from app.web.api.auth import actor
from app.web.api.blueprint import bp
from app.web.api.body import Param, choice, integer, list_of, name_or_id, shape, text
from app.web.api.openapi import WRITE_ERRORS, array_of, documented

# What the routes read

MIGRATION_OVERRIDE = shape(
    "MigrationOverride",
    reason=text(
        required=True,
        min_len=1,
        max_len=1000,
        missing=_l("Scrivi il motivo (almeno 10 caratteri): resta nel registro delle modifiche."),
        description="Why migrations may start before the MX propagated (at least 10 characters).",
    ),
)

DOMAIN_INPUT = shape(
    "DomainInput",
    name=text(required=True, description="Unicode or punycode."),
    override_reason=text(
        nullable=True,
        max_len=500,
        description="Staff only: add a public mailbox provider's domain anyway, for this reason "
        "(at least 10 characters; kept in the audit trail).",
    ),
)
DOMAIN_REJECTION = shape(
    "DomainRejection",
    reason=text(
        required=True,
        min_len=1,
        max_len=domains.MAX_REJECT_REASON,
        missing=_l("Scrivi il motivo del rifiuto: resta nel registro delle modifiche."),
        description="Why the domain is refused (kept in the audit trail).",
    ),
)
MAILBOX_INPUT = shape(
    "MailboxInput",
    address=text(required=True),
    password=text(
        required=True,
        min_len=passwords.MIN_LENGTH,
        max_len=passwords.MAX_LENGTH,
        too_short=lambda n: _("La password deve avere almeno %(n)d caratteri.", n=n),
        write_only=True,
    ),
    display_name=text(nullable=True, max_len=200),
    service_class=body.CLASS_REF,
)
MAILBOX_PATCH = MAILBOX_INPUT.but(
    "MailboxPatch", drop=("address",), optional=True, status=choice(MailboxStatus)
)
ALIAS_INPUT = shape(
    "AliasInput",
    address=text(required=True),
    target=name_or_id(required=True, description="A mailbox of the same customer: address or id."),
)
ALIAS_PATCH = ALIAS_INPUT.but("AliasPatch", drop=("address",))
LIST_INPUT = shape(
    "DistributionListInput",
    address=text(required=True),
    members=list_of(text(), description="Mailboxes of the customer or outside addresses."),
    description=text(nullable=True, max_len=200),
    post_policy=choice(PostPolicy, default=lists.DEFAULT_POST_POLICY, description=out.POST_POLICY_WORDS),
)
LIST_PATCH = LIST_INPUT.but(
    "DistributionListPatch",
    drop=("address",),
    optional=True,
    members=list_of(text(), description="Replaces all members."),
    post_policy=choice(PostPolicy, description=out.POST_POLICY_WORDS),
)
LIST_LIMITS_INPUT = shape(
    "ListLimitsInput",
    per_list=integer(nullable=True, minimum=0, maximum=100_000),
    per_customer=integer(nullable=True, minimum=0, maximum=100_000),
)
SEARCH = Param("q", default="", description="Part of the address.")


def _checked_by(validate, customer_id: int):
    """A create's validation step (no writes) for body.read(meaning=...): one answer, every bad field."""
    return lambda values: validate(CustomerContext.load(actor(), customer_id), **values)


def _no_content():
    return "", 204


# Domains


@bp.get("/customers/<id:customer_id>/domains")
@documented("A customer's domains.", "domains", ok=array_of(out.DOMAIN))
def domain_list(customer_id: int):
    return jsonify(out.domains(domains.list_domains(actor(), customer_id)))


@bp.post("/customers/<id:customer_id>/domains")
@documented(
    "Add a domain (Unicode names are stored as punycode). A customer admin's domain is "
    "pending until support approves it; staff's is active at once. Refused: the provider's "
    "own domains, public mailbox providers (staff may give override_reason), names that are "
    "not registrable, and names already served (a customer hears only 'not available').",
    "domains",
    ok=out.DOMAIN,
    status=201,
    body=DOMAIN_INPUT,
    errors=WRITE_ERRORS,
)
def domain_create(customer_id: int):
    data = body.read()
    domain = domains.add_domain(
        actor(), customer_id, data["name"], override_reason=data.get("override_reason")
    )
    return jsonify(out.domain(domain)), 201


@bp.get("/domains")
@documented(
    "Every customer's domains in one state, oldest first (staff).",
    "domains",
    ok=array_of(out.DOMAIN),
    errors=(401, 403, 422),
    query=(
        Param(
            "state",
            enum=(DomainState.PENDING,),
            default=DomainState.PENDING.value,
            refusal=_l("Stato non valido: usa pending."),
            description="Only domains in this state.",
        ),
    ),
)
def domain_pending_list():
    body.query()
    return jsonify(out.domains(domains.pending_domains(actor())))


@bp.post("/domains/<id:domain_id>/approve")
@documented(
    "Approve a pending domain: it becomes active and the mail servers serve it (staff). "
    "Approving an active domain changes nothing.",
    "domains",
    ok=out.DOMAIN,
    errors=(401, 403, 404, 422),
)
def domain_approve(domain_id: int):
    return jsonify(out.domain(domains.approve_domain(actor(), domain_id)))


@bp.post("/domains/<id:domain_id>/reject")
@documented(
    "Reject a pending domain the customer does not own (staff): it is removed with every mailbox, "
    "alias and list prepared on it (and the aliases pointing to those mailboxes), so the real owner "
    "can add it; the reason is kept in the audit trail. An active domain cannot be rejected (409).",
    "domains",
    ok=out.DOMAIN_REJECTION,
    body=DOMAIN_REJECTION,
    errors=(401, 403, 404, 409, 422),
)
def domain_reject(domain_id: int):
    # A bodyless call is the service's to refuse, in the same words as a missing reason.
    data = body.read_optional()
    domain = domains.get_domain(actor(), domain_id)
    rejected = {"id": domain.id, "customer_id": domain.customer_id, "name": domain.name}  # the row goes
    removed = domains.reject_domain(actor(), domain_id, data.get("reason") or "")
    return jsonify(out.domain_rejection(rejected, removed))


@bp.post("/domains/<id:domain_id>/check")
@documented(
    "Check the domain's DNS now: the MX at each of its authoritative servers and at the resolver, the "
    "ownership TXT while pending (found: the domain becomes active), SPF, DMARC and the client "
    "autoconfiguration names. At most one check every few seconds per domain: a call within them "
    "answers the stored result with checked false.",
    "domains",
    ok=out.DOMAIN_CHECK,
    errors=(401, 404),
)
def domain_check(domain_id: int):
    domain, report, recorded = domain_checks.check_now(actor(), domain_id)
    return jsonify(out.domain_check(domain, report, recorded))


@bp.post("/domains/<id:domain_id>/dkim/rotate")
@documented(
    "Make a new DKIM key for the domain (staff). It is pending: publish its TXT record (the answer's "
    "name and txt, also in the domain's dkim); the DNS check switches signing to it once it sees the "
    "record at the domain's servers, and the old key is retired later. A domain without a key gets "
    "its first one, signing at once. One rotation at a time (409 while a new key waits).",
    "domains",
    ok=out.DKIM_KEY,
    status=201,
    errors=(401, 403, 404, 409),
)
def domain_dkim_rotate(domain_id: int):
    return jsonify(out.dkim_key(dkim.rotate(actor(), domain_id))), 201


@bp.post("/domains/<id:domain_id>/migration-override")
@documented(
    "Let the domain's migrations start before its MX has propagated (staff); the reason is kept in the "
    "audit trail.",
    "domains",
    ok=out.DOMAIN,
    body=MIGRATION_OVERRIDE,
    errors=(401, 403, 404, 422),
)
def domain_migration_override(domain_id: int):
    data = body.read_optional()
    return jsonify(out.domain(domain_checks.allow_migration(actor(), domain_id, data.get("reason") or "")))


@bp.get("/domains/<id:domain_id>")
@documented("One domain.", "domains", ok=out.DOMAIN)
def domain_get(domain_id: int):
    return jsonify(out.domain(domains.get_domain(actor(), domain_id)))


@bp.delete("/domains/<id:domain_id>")
@documented(
    "Remove a domain that no address uses any more.", "domains", status=204, errors=(401, 403, 404, 409)
)
def domain_delete(domain_id: int):
    domains.delete_domain(actor(), domain_id)
    return _no_content()


# Mailboxes


@bp.get("/customers/<id:customer_id>/mailboxes")
@documented(
    "Search a customer's mailboxes, one page at a time.",
    "mailboxes",
    ok=out.MAILBOX_PAGE,
    errors=(401, 404, 422),
    query=(
        Param("q", default="", description="Part of the address or display name."),
        Param("status", enum=MailboxStatus, description="Only mailboxes in this state."),
        Param("service_class", description="Only this class of service (name or id)."),
        *body.PAGING,
    ),
)
def mailbox_list(customer_id: int):
    args = body.query()
    if args["service_class"]:
        args["service_class_id"] = classes.resolve(args["service_class"]).id
    del args["service_class"]
    page = mailboxes.search_mailboxes(actor(), customer_id, **args)
    return jsonify(out.page(page, out.mailbox))


@bp.post("/customers/<id:customer_id>/mailboxes")
@documented(
    "Create a mailbox; refused with 409 when the contract's allowance is used up, or when a Pay-per-Use "
    "balance cannot pay one more day of the daily cost with it.",
    "mailboxes",
    ok=out.MAILBOX,
    status=201,
    body=MAILBOX_INPUT,
    errors=WRITE_ERRORS,
    limit=True,
)
def mailbox_create(customer_id: int):
    data = body.read(meaning=_checked_by(mailboxes.validate_mailbox, customer_id))
    mailbox = mailboxes.create_mailbox(
        actor(),
        customer_id,
        address=data["address"],
        password=data["password"],
        display_name=data.get("display_name") or "",
        service_class=data["service_class"],
    )
    return jsonify(out.mailbox(mailbox)), 201


@bp.get("/mailboxes/<id:mailbox_id>")
@documented("One mailbox.", "mailboxes", ok=out.MAILBOX)
def mailbox_get(mailbox_id: int):
    return jsonify(out.mailbox(mailboxes.get_mailbox(actor(), mailbox_id)))


@bp.patch("/mailboxes/<id:mailbox_id>")
@documented(
    "Change display name, password, class (within the contract) or status; a dearer class or a "
    "re-activation that a Pay-per-Use balance cannot pay for one more day is refused with 409.",
    "mailboxes",
    ok=out.MAILBOX,
    body=MAILBOX_PATCH,
    errors=WRITE_ERRORS,
    limit=True,
)
def mailbox_update(mailbox_id: int):
    data = body.read()
    if "display_name" in data and data["display_name"] is None:
        data["display_name"] = ""
    return jsonify(out.mailbox(mailboxes.update_mailbox(actor(), mailbox_id, **data)))


@bp.delete("/mailboxes/<id:mailbox_id>")
@documented(
    "Delete a mailbox with its aliases and list memberships.", "mailboxes", status=204, errors=(401, 403, 404)
)
def mailbox_delete(mailbox_id: int):
    mailboxes.delete_mailbox(actor(), mailbox_id)
    return _no_content()


# Aliases


@bp.get("/customers/<id:customer_id>/aliases")
@documented(
    "A customer's aliases.", "aliases", ok=array_of(out.ALIAS), errors=(401, 404, 422), query=(SEARCH,)
)
def alias_list(customer_id: int):
    rows = aliases.list_aliases(actor(), customer_id, body.query()["q"])
    return jsonify([out.alias(a) for a in rows])


@bp.post("/customers/<id:customer_id>/aliases")
@documented(
    "Create an alias to one of the customer's mailboxes.",
    "aliases",
    ok=out.ALIAS,
    status=201,
    body=ALIAS_INPUT,
    errors=WRITE_ERRORS,
)
def alias_create(customer_id: int):
    data = body.read(meaning=_checked_by(aliases.validate_alias, customer_id))
    alias = aliases.create_alias(actor(), customer_id, address=data["address"], target=data["target"])
    return jsonify(out.alias(alias)), 201


@bp.get("/aliases/<id:alias_id>")
@documented("One alias.", "aliases", ok=out.ALIAS)
def alias_get(alias_id: int):
    return jsonify(out.alias(aliases.get_alias(actor(), alias_id)))


@bp.patch("/aliases/<id:alias_id>")
@documented(
    "Point an alias to another mailbox.",
    "aliases",
    ok=out.ALIAS,
    body=ALIAS_PATCH,
    errors=(401, 403, 404, 422),
)
def alias_update(alias_id: int):
    return jsonify(out.alias(aliases.update_alias(actor(), alias_id, target=body.read()["target"])))


@bp.delete("/aliases/<id:alias_id>")
@documented("Delete an alias.", "aliases", status=204, errors=(401, 403, 404))
def alias_delete(alias_id: int):
    aliases.delete_alias(actor(), alias_id)
    return _no_content()


# Distribution lists


@bp.get("/customers/<id:customer_id>/lists")
@documented(
    "A customer's distribution lists.",
    "lists",
    ok=array_of(out.DISTRIBUTION_LIST),
    errors=(401, 404, 422),
    query=(SEARCH,),
)
def list_list(customer_id: int):
    rows = lists.list_lists(actor(), customer_id, body.query()["q"])
    return jsonify([out.distribution_list(d) for d in rows])


@bp.post("/customers/<id:customer_id>/lists")
@documented(
    "Create a distribution list.",
    "lists",
    ok=out.DISTRIBUTION_LIST,
    status=201,
    body=LIST_INPUT,
    errors=WRITE_ERRORS,
)
def list_create(customer_id: int):
    data = body.read(meaning=_checked_by(lists.validate_list, customer_id))
    dlist = lists.create_list(
        actor(),
        customer_id,
        address=data["address"],
        members=data.get("members", []),
        description=data.get("description") or "",
        post_policy=data.get("post_policy", lists.DEFAULT_POST_POLICY),
    )
    return jsonify(out.distribution_list(dlist)), 201


def _list_limits(customer) -> dict:
    return out.list_limits(customer, lists.external_limits(customer), lists.external_count(customer.id))


@bp.get("/customers/<id:customer_id>/list-limits")
@documented("Limits on external list members for a customer, and what is used.", "lists", ok=out.LIST_LIMITS)
def list_limits_get(customer_id: int):
    return jsonify(_list_limits(customer_for(actor(), customer_id)))


@bp.put("/customers/<id:customer_id>/list-limits")
@documented(
    "Staff: override the limits on external list members (null: the default).",
    "lists",
    ok=out.LIST_LIMITS,
    body=LIST_LIMITS_INPUT,
    errors=(401, 403, 404, 422),
)
def list_limits_put(customer_id: int):
    # PUT replaces both: a missing or null value goes back to the default.
    data = body.read()
    customer = lists.set_external_limits(
        actor(), customer_id, per_list=data.get("per_list"), per_customer=data.get("per_customer")
    )
    return jsonify(_list_limits(customer))


@bp.get("/lists/<id:list_id>")
@documented("One distribution list.", "lists", ok=out.DISTRIBUTION_LIST)
def list_get(list_id: int):
    return jsonify(out.distribution_list(lists.get_list(actor(), list_id)))


@bp.patch("/lists/<id:list_id>")
@documented(
    "Replace the members, the description and/or who may post.",
    "lists",
    ok=out.DISTRIBUTION_LIST,
    body=LIST_PATCH,
    errors=(401, 403, 404, 422),
)
def list_update(list_id: int):
    data = body.read()
    description = data.get("description")
    if "description" in data and description is None:
        description = ""
    dlist = lists.update_list(
        actor(),
        list_id,
        members=data.get("members"),
        description=description,
        post_policy=data.get("post_policy"),
    )
    return jsonify(out.distribution_list(dlist))


@bp.delete("/lists/<id:list_id>")
@documented("Delete a distribution list.", "lists", status=204, errors=(401, 403, 404))
def list_delete(list_id: int):
    lists.delete_list(actor(), list_id)
    return _no_content()
