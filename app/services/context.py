"""What checking changes for one customer needs, read once: for one form or a sheet of 10,000 rows.

A CustomerContext is scoped and permission-checked when loaded; after that, resolving an
address's domain or a class of service costs no query, so validating many rows against
the same customer reads its domains and the catalogue once, not once per row.
"""

from __future__ import annotations

from functools import cached_property

import sqlalchemy as sa

from app.extensions import db
from app.models import Customer, Domain, ServiceClass
from app.services import addresses, classes
from app.services.access import Actor, customer_for, require_manage


class CustomerContext:
    def __init__(self, actor: Actor, customer: Customer):
        self.actor = actor
        self.customer = customer

    @classmethod
    def load(cls, actor: Actor, customer_id: object) -> CustomerContext:
        """The customer if the actor may see it (NotFound) and change its accounts (PermissionDenied)."""
        customer = customer_for(actor, customer_id)
        require_manage(actor, customer)
        return cls(actor, customer)

    @cached_property
    def domains(self) -> dict[str, Domain]:
        """The customer's domains by ASCII name."""
        rows = db.session.scalars(sa.select(Domain).where(Domain.customer_id == self.customer.id))
        return {d.name: d for d in rows}

    @cached_property
    def class_index(self) -> classes.ClassIndex:
        return classes.ClassIndex()

    def domain(self, ascii_name: str, field: str = "address") -> Domain:
        domain = self.domains.get(ascii_name)
        if domain is None:
            raise addresses.not_customer_domain(ascii_name, field)
        return domain

    def address(self, value: object, field: str = "address") -> tuple[str, Domain]:
        """(local part, domain) of an address on one of the customer's domains."""
        local, ascii_name = addresses.split_address(value, field)
        return local, self.domain(ascii_name, field)

    def service_class(self, value: object, field: str = "service_class") -> ServiceClass:
        return self.class_index.resolve(value, field)
