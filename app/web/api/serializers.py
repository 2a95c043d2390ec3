"""Models as the API shows them. Password hashes never leave the database."""

from __future__ import annotations

from datetime import datetime

from app.models import Alias, CapacityRequest, Customer, DistributionList, Domain, Mailbox, ServiceClass
from app.services.paging import Page


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def service_class(c: ServiceClass) -> dict:
    return {
        "id": c.id,
        "name": c.name,
        "type": c.type_name,
        "quota_mb": c.quota_mb,
        "features": list(c.features),
    }


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
        "created_at": _when(c.created_at),
    }


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


def domain(d: Domain) -> dict:
    return {
        "id": d.id,
        "customer_id": d.customer_id,
        "name": d.name,
        "unicode_name": d.display_name,
        "state": d.state,
        "created_at": _when(d.created_at),
        "activated_at": _when(d.activated_at),
    }


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
