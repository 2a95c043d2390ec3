"""What a customer has, at a glance: the counts the dashboard shows."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from app.extensions import db
from app.models import Alias, DistributionList, Domain, Mailbox
from app.models.mail import STATUSES
from app.services.access import Actor, customer_for


@dataclass
class Overview:
    mailboxes_by_status: dict[str, int] = field(default_factory=dict)
    aliases: int = 0
    lists: int = 0
    domains: int = 0

    @property
    def mailboxes(self) -> int:
        return sum(self.mailboxes_by_status.values())


def customer_overview(actor: Actor, customer_id: int) -> Overview:
    customer = customer_for(actor, customer_id)
    by_status = dict.fromkeys(STATUSES, 0)
    rows = db.session.execute(
        sa.select(Mailbox.status, sa.func.count())
        .where(Mailbox.customer_id == customer.id)
        .group_by(Mailbox.status)
    )
    by_status.update(dict(rows.all()))

    def count(model) -> int:
        return db.session.scalar(
            sa.select(sa.func.count()).select_from(model).where(model.customer_id == customer.id)
        )

    return Overview(by_status, count(Alias), count(DistributionList), count(Domain))
