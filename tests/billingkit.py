"""What the billing tests share: the default price list, a mailbox's timeline, local times, the ledger check."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.data.price_list import default_prices
from app.extensions import db
from app.models import Customer, MailboxPeriod, Price, ServiceClass
from app.services import billing, clock

ROME = ZoneInfo("Europe/Rome")
DEFAULT_FROM = date(2020, 1, 1)


def rome(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=ROME)


def seed_prices() -> None:
    """The example list, as the migration loads it (the harness empties every table between tests)."""
    db.session.execute(sa.delete(Price))
    ids = {(c.type, c.quota_mb): c.id for c in db.session.scalars(sa.select(ServiceClass))}
    for key, price in default_prices().items():
        db.session.add(Price(service_class_id=ids[key], valid_from=DEFAULT_FROM, centipoints_per_day=price))
    db.session.commit()


def class_id(name: str) -> int:
    return next(c.id for c in db.session.scalars(sa.select(ServiceClass)) if c.name == name)


def price(name: str) -> int:
    return billing.price_list(date.today())[class_id(name)]


def timeline(mailbox, *periods: tuple[str, str, datetime, datetime | None]) -> None:
    """Replace a mailbox's history with (status, class name, from, to) periods."""
    db.session.execute(sa.delete(MailboxPeriod).where(MailboxPeriod.mailbox_id == mailbox.id))
    for status, name, start, end in periods:
        db.session.add(
            MailboxPeriod(
                mailbox_id=mailbox.id,
                customer_id=mailbox.customer_id,
                address=mailbox.address,
                service_class_id=class_id(name),
                status=status,
                valid_from=start,
                valid_to=end,
            )
        )
    db.session.commit()


def created(customer, at: datetime) -> None:
    db.session.execute(sa.update(Customer).where(Customer.id == customer.id).values(created_at=at))
    db.session.commit()


@pytest.fixture
def ledger_checked(app):
    """The default prices in, the clock running; after the test, `flask billing verify`'s check passes."""
    seed_prices()
    yield
    clock.reset()
    db.session.rollback()
    assert billing.verify() == []
