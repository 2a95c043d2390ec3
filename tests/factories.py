"""Test data built through the service layer, so tests see what users would make."""

from __future__ import annotations

import itertools

import sqlalchemy as sa

from app.extensions import db
from app.models import Customer
from app.services import aliases, customers, domains, lists, mailboxes, users
from app.services.access import Actor

PASSWORD = "Correct-horse-9"
SYSTEM = Actor.system("tests")
_seq = itertools.count(1)


def customer(
    plan: str = "payg",
    allowances: dict[str, int] | None = None,
    self_service: bool = True,
    domain: str | None = None,
    name: str | None = None,
):
    n = next(_seq)
    c = customers.create_customer(SYSTEM, name=name or f"Cliente {n}", plan=plan)
    if plan == "contract":
        customers.set_contract(
            SYSTEM,
            c.id,
            [{"service_class": k, "max_accounts": v} for k, v in (allowances or {}).items()],
            self_service,
        )
    domains.add_domain(SYSTEM, c.id, domain or f"cliente{n}.example")
    return c


def domain_of(c) -> str:
    return domains.list_domains(SYSTEM, c.id)[0].name


def admin(c, email: str | None = None):
    return users.create_user(
        SYSTEM,
        email=email or f"admin{next(_seq)}@{domain_of(c)}",
        password=PASSWORD,
        role="customer_admin",
        customer_id=c.id,
    )


def staff(email: str | None = None):
    return users.create_user(
        SYSTEM, email=email or f"staff{next(_seq)}@collabra.it", password=PASSWORD, role="staff"
    )


def mailbox(c, local: str | None = None, service_class: str = "Business Mail 100 MB", **kw):
    """A mailbox the customer has. Setup data, whatever the balance: a Pay-per-Use customer's balance is
    lifted for the moment of creation and put back (no ledger entry), so a test of the charge can start
    from mailboxes and a balance of 0. The rule itself (billing.check_affordable) is tested through the doors."""
    local = local or f"utente{next(_seq)}"
    lift = 10**12
    _lift_balance(c.id, lift)
    try:
        return mailboxes.create_mailbox(
            SYSTEM,
            c.id,
            address=f"{local}@{domain_of(c)}",
            password=kw.pop("password", PASSWORD),
            display_name=kw.pop("display_name", local.title()),
            service_class=service_class,
        )
    finally:
        _lift_balance(c.id, -lift)


def _lift_balance(customer_id: int, centipoints: int) -> None:
    db.session.execute(
        sa.update(Customer)
        .where(Customer.id == customer_id)
        .values(balance_centipoints=Customer.balance_centipoints + centipoints)
    )
    db.session.commit()


def alias(c, local: str, target):
    return aliases.create_alias(SYSTEM, c.id, address=f"{local}@{domain_of(c)}", target=target.address)


def dlist(c, local: str, members: list[str], **kw):
    return lists.create_list(SYSTEM, c.id, address=f"{local}@{domain_of(c)}", members=members, **kw)
