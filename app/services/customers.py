"""Customers, their plan and their contract (allowances per class of service)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext
from stdnum.eu import vat as eu_vat
from stdnum.it import iva

from app.extensions import db
from app.models import Allowance, Customer, Domain, Mailbox, ServiceClass
from app.models.customers import PLANS
from app.models.enums import Plan
from app.services import audit, classes, clock, fields, limits
from app.services.access import Actor, customer_for, require_staff
from app.services.addresses import external_address
from app.services.errors import Conflict, FieldErrors, ValidationError
from app.services.paging import Page, paginate


def _vat(value: object) -> str | None:
    value = fields.text(value, "vat_number", max_len=32, required=False)
    if not value:
        return None
    compact = value.replace(" ", "").replace(".", "").upper()
    if compact.isdigit() and iva.is_valid(compact):
        return iva.compact(compact)
    if compact.startswith("IT") and iva.is_valid(compact[2:]):
        return iva.compact(compact[2:])
    if compact[:2].isalpha() and eu_vat.is_valid(compact):
        return eu_vat.compact(compact)
    raise ValidationError.one(
        "vat_number",
        _(
            "Partita IVA non valida: 11 cifre con il controllo corretto (o una partita IVA UE con il prefisso del paese)."
        ),
    )


def _plan(value: object) -> str:
    if value not in PLANS:
        raise ValidationError.one(
            "plan", _("Il piano deve essere «payg» (Pay per Use) o «contract» (canone).")
        )
    return value


def _read(data: dict, partial: bool) -> dict:
    out: dict = {}
    problems = FieldErrors()
    readers = {
        "name": lambda v: fields.text(v, "name", max_len=200),
        "plan": _plan,
        "vat_number": _vat,
        "contact_email": lambda v: external_address(v, "contact_email") if v else None,
    }
    for key, reader in readers.items():
        if partial and key not in data:
            continue
        out[key] = problems.collect(reader, data.get(key))
    problems.raise_if_any()
    return out


def _check_vat_unique(values: dict, reason: object, customer_id: int | None = None) -> dict:
    """Refuse a VAT number another customer has, unless staff give a reason (kept in the audit trail).

    Returns the audit entry for an accepted duplicate ({} otherwise).
    """
    vat = values.get("vat_number")
    if not vat:
        return {}
    stmt = sa.select(Customer.name).where(Customer.vat_number == vat).order_by(Customer.id)
    if customer_id is not None:
        stmt = stmt.where(Customer.id != customer_id)
    holder = db.session.scalar(stmt.limit(1))
    if holder is None:
        return {}
    why = fields.text(reason, "vat_duplicate_reason", max_len=500, required=False)
    if not why:
        raise Conflict(
            _(
                "La partita IVA %(vat)s è già del cliente «%(name)s». Se è voluto (ad esempio due sedi con "
                "contratti separati), scrivi il motivo e salva di nuovo.",
                vat=vat,
                name=holder,
            ),
            field="vat_number",
        )
    return {"vat_duplicate_reason": [None, why]}


@dataclass(frozen=True, eq=False)
class CustomerDraft:
    """A customer's fields, read and checked; customer is None for a new one."""

    customer: Customer | None
    values: dict  # name, plan, vat_number, contact_email (only those given, for a change)
    override: dict  # the audit entry of an accepted duplicate VAT number, or {}


def validate_customer(actor: Actor, vat_duplicate_reason: object = "", **data) -> CustomerDraft:
    """Staff only. Every bad field at once, then a VAT number already in use (Conflict); writes nothing."""
    require_staff(actor)
    values = _read(data, partial=False)
    return CustomerDraft(None, values, _check_vat_unique(values, vat_duplicate_reason))


def apply_customer(actor: Actor, draft: CustomerDraft) -> Customer:
    customer = Customer(**draft.values)
    db.session.add(customer)
    db.session.flush()
    audit.record(
        actor,
        "customer.create",
        customer_id=customer.id,
        target=customer.name,
        changes={k: [None, v] for k, v in draft.values.items()} | draft.override,
    )
    db.session.commit()
    return customer


def create_customer(actor: Actor, vat_duplicate_reason: object = "", **data) -> Customer:
    """Staff only. A VAT number already in use is refused unless vat_duplicate_reason says why."""
    return apply_customer(actor, validate_customer(actor, vat_duplicate_reason, **data))


def validate_customer_change(
    actor: Actor, customer_id: int, vat_duplicate_reason: object = "", **data
) -> CustomerDraft:
    customer = customer_for(actor, customer_id)  # scope first: another customer's id is a 404
    require_staff(actor)
    values = _read(data, partial=True)
    override = {}
    if values.get("vat_number") and values["vat_number"] != customer.vat_number:
        override = _check_vat_unique(values, vat_duplicate_reason, customer.id)
    return CustomerDraft(customer, values, override)


def apply_customer_change(actor: Actor, draft: CustomerDraft) -> Customer:
    """Write a checked change; under the lock, a switch to a contract must cover the mailboxes in use."""
    customer, values = draft.customer, draft.values
    limits.lock_customer(customer.id)
    if values.get("plan") == "contract" and customer.plan != "contract":
        _check_covers_usage(customer, {a.service_class_id: a.max_accounts for a in customer.allowances})
    before = {k: getattr(customer, k) for k in values}
    if values.get("plan") == Plan.PAYG and customer.plan != Plan.PAYG:
        # Its point account starts today: the days on a contract are never charged.
        customer.billing_since = clock.today()
    for k, v in values.items():
        setattr(customer, k, v)
    audit.record(
        actor,
        "customer.update",
        customer_id=customer.id,
        target=customer.name,
        changes=audit.diff(before, values) | draft.override,
    )
    db.session.commit()
    return customer


def update_customer(actor: Actor, customer_id: int, vat_duplicate_reason: object = "", **data) -> Customer:
    return apply_customer_change(
        actor, validate_customer_change(actor, customer_id, vat_duplicate_reason, **data)
    )


def _check_covers_usage(customer: Customer, wanted: dict[int, int]) -> None:
    used = limits.usage_by_class(customer.id)
    for class_id, n in used.items():
        if n > wanted.get(class_id, 0):
            cls = db.session.get(ServiceClass, class_id)
            raise Conflict(
                ngettext(
                    "Il cliente ha già %(num)d casella %(cls)s: il contratto deve prevederne almeno una.",
                    "Il cliente ha già %(num)d caselle %(cls)s: il contratto deve prevederne almeno altrettante.",
                    n,
                    cls=cls.name,
                ),
                field="allowances",
            )


@dataclass(frozen=True, eq=False)
class ContractDraft:
    customer: Customer
    allowances: dict[int, int]  # service class id -> accounts (0: none)
    self_service: bool


def validate_contract(
    actor: Actor, customer_id: int, allowances: object, self_service: object
) -> ContractDraft:
    """Read a contract's allowances and self-administration flag, every bad entry at once; writes nothing."""
    customer = customer_for(actor, customer_id)  # scope first: another customer's id is a 404
    require_staff(actor)
    if not isinstance(allowances, list):
        raise ValidationError.one("allowances", _("Deve essere un elenco di classi e quantità."))
    wanted: dict[int, int] = {}
    problems = FieldErrors()
    for i, item in enumerate(allowances):
        key = f"allowances.{i}"
        if not isinstance(item, dict):
            problems.add(key, _("Ogni voce deve indicare service_class e max_accounts."))
            continue
        cls = problems.collect(classes.resolve, item.get("service_class"), f"{key}.service_class")
        n = problems.collect(fields.integer, item.get("max_accounts"), f"{key}.max_accounts", maximum=100_000)
        if cls is None or n is None:
            continue
        if cls.id in wanted:
            problems.add(f"{key}.service_class", _("Classe ripetuta: %(cls)s.", cls=cls.name))
            continue
        wanted[cls.id] = n
    flag = problems.collect(fields.boolean, self_service, "self_service")
    problems.raise_if_any()
    return ContractDraft(customer, wanted, flag)


def apply_contract(actor: Actor, draft: ContractDraft) -> Customer:
    """Write a checked contract; under the lock, a contract customer's allowances must cover its mailboxes."""
    customer, wanted, flag = draft.customer, draft.allowances, draft.self_service
    limits.lock_customer(customer.id)
    if customer.plan == "contract":
        _check_covers_usage(customer, wanted)
    before = {a.service_class.name: a.max_accounts for a in customer.allowances}
    existing = {a.service_class_id: a for a in customer.allowances}
    for class_id, allowance in existing.items():
        if class_id not in wanted or wanted[class_id] == 0:
            customer.allowances.remove(allowance)
    for class_id, n in wanted.items():
        if n == 0:
            continue
        if class_id in existing:
            existing[class_id].max_accounts = n
        else:
            customer.allowances.append(Allowance(service_class_id=class_id, max_accounts=n))
    db.session.flush()
    db.session.expire(customer, ["allowances"])
    after = {a.service_class.name: a.max_accounts for a in customer.allowances}
    changes = audit.diff(before, after) | {k: [v, None] for k, v in before.items() if k not in after}
    if customer.self_service != flag:
        changes["self_service"] = [customer.self_service, flag]
        customer.self_service = flag
    audit.record(actor, "contract.update", customer_id=customer.id, target=customer.name, changes=changes)
    db.session.commit()
    return customer


def set_contract(actor: Actor, customer_id: int, allowances: object, self_service: object) -> Customer:
    """Replace the contract's allowances and the self-administration flag (support only)."""
    return apply_contract(actor, validate_contract(actor, customer_id, allowances, self_service))


def search_customers(actor: Actor, q: str = "", page: int = 1, per_page: int = 25) -> Page:
    require_staff(actor)
    stmt = sa.select(Customer).order_by(Customer.name, Customer.id)
    q = (q or "").strip()
    if q:
        # autoescape: a search for "%" or "_" finds those characters, not everything.
        q = q.lower()
        stmt = stmt.where(
            sa.or_(
                sa.func.lower(Customer.name).contains(q, autoescape=True),
                sa.func.lower(sa.func.coalesce(Customer.vat_number, "")).contains(q, autoescape=True),
                sa.func.lower(sa.func.coalesce(Customer.contact_email, "")).contains(q, autoescape=True),
            )
        )
    return paginate(stmt, page, per_page)


def account_counts(customer_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{customer_id: (mailboxes, domains)}: two grouped queries for a whole page of customers."""
    if not customer_ids:
        return {}
    out = {cid: [0, 0] for cid in customer_ids}
    for i, model in enumerate((Mailbox, Domain)):
        rows = db.session.execute(
            sa.select(model.customer_id, sa.func.count())
            .where(model.customer_id.in_(customer_ids))
            .group_by(model.customer_id)
        )
        for cid, n in rows:
            out[cid][i] = n
    return {cid: (m, d) for cid, (m, d) in out.items()}


def names(actor: Actor) -> list[tuple[int, str]]:
    """Every customer as (id, name), by name: the choices of a back-office form or filter."""
    require_staff(actor)
    return [
        tuple(row)
        for row in db.session.execute(sa.select(Customer.id, Customer.name).order_by(Customer.name))
    ]
