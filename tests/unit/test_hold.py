"""A customer on hold (app.services.hold): who may put it on hold or lift it, and what each leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app.extensions import db
from app.models import AuditEvent, Customer, Mailbox
from app.services import hold, mailboxes
from app.services.access import Actor
from app.services.errors import NotFound, PermissionDenied, ValidationError
from tests.factories import SYSTEM


def login_allowed(address: str) -> int:
    return db.session.scalar(
        sa.text("SELECT login_allowed FROM mail_users WHERE address = :a"), {"a": address}
    )


def actions(customer_id: int) -> list[tuple[str, dict]]:
    return [
        (e.action, e.changes)
        for e in db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.customer_id == customer_id, AuditEvent.action.like("customer.hold%"))
            .order_by(AuditEvent.id)
        )
    ]


def test_put_on_hold_and_lift_are_audited_and_idempotent(make):
    c = make.customer(domain="saldo.example")
    at = datetime(2026, 12, 1, 23, 5, tzinfo=UTC)

    assert hold.put_on_hold(SYSTEM, c.id, "Credito esaurito", at=at) is True
    assert hold.put_on_hold(SYSTEM, c.id, "Di nuovo", at=datetime.now(UTC)) is False
    row = db.session.get(Customer, c.id)
    assert hold.is_on_hold(row) and row.on_hold
    # A second call keeps the first date and reason.
    assert (row.on_hold_since, row.on_hold_reason) == (at, "Credito esaurito")

    assert hold.lift_hold(SYSTEM, c.id) is True
    assert hold.lift_hold(SYSTEM, c.id) is False
    row = db.session.get(Customer, c.id)
    assert not hold.is_on_hold(row) and row.on_hold_reason is None
    assert actions(c.id) == [
        ("customer.hold", {"on_hold": [False, True], "on_hold_reason": [None, "Credito esaurito"]}),
        (
            "customer.hold_lift",
            {
                "on_hold": [True, False],
                "on_hold_since": [at.isoformat(), None],
                "on_hold_reason": ["Credito esaurito", None],
            },
        ),
    ]


def test_only_staff_and_the_system_put_on_hold_or_lift(make):
    c = make.customer(domain="proprio.example")
    other = make.customer(domain="altrui.example")
    admin = Actor.for_user(make.admin(c))
    with pytest.raises(PermissionDenied):
        hold.put_on_hold(admin, c.id, "Voglio bloccarmi")
    hold.put_on_hold(SYSTEM, c.id, "Credito esaurito")
    with pytest.raises(PermissionDenied):
        hold.lift_hold(admin, c.id)
    # Another customer's id is not even found.
    with pytest.raises(NotFound):
        hold.put_on_hold(admin, other.id, "x")
    assert hold.is_on_hold(db.session.get(Customer, c.id))
    staff = Actor.for_user(make.staff())
    assert hold.lift_hold(staff, c.id) is True


@pytest.mark.parametrize("reason", ["", "   ", "x" * 201, "riga\nnuova"])
def test_a_hold_needs_a_short_plain_reason(make, reason):
    c = make.customer()
    with pytest.raises(ValidationError) as refused:
        hold.put_on_hold(SYSTEM, c.id, reason)
    assert "reason" in refused.value.errors
    assert not hold.is_on_hold(db.session.get(Customer, c.id))


def test_without_commit_the_hold_goes_with_the_callers_transaction(make):
    c = make.customer()
    hold.put_on_hold(SYSTEM, c.id, "Credito esaurito", commit=False)
    db.session.rollback()
    assert not hold.is_on_hold(db.session.get(Customer, c.id))
    assert actions(c.id) == []


def test_reactivating_a_mailbox_on_hold_does_not_let_it_log_in(make):
    c = make.customer(domain="furbo.example")
    box = make.mailbox(c, "anna")
    mailboxes.update_mailbox(SYSTEM, box.id, status="suspended")
    hold.put_on_hold(SYSTEM, c.id, "Credito esaurito")

    admin = Actor.for_user(make.admin(c))
    mailboxes.update_mailbox(admin, box.id, status="active")
    # The status is what the customer chose; the view still refuses the login.
    assert db.session.get(Mailbox, box.id).status == "active"
    assert login_allowed(box.address) == 0
    hold.lift_hold(SYSTEM, c.id)
    assert login_allowed(box.address) == 1


def test_the_migration_downgrades_to_the_previous_view_and_back(make):
    c = make.customer(domain="migra.example")
    address = make.mailbox(c, "lia").address
    hold.put_on_hold(SYSTEM, c.id, "Credito esaurito")
    db.session.commit()
    db.session.close()
    downgrade(revision="0013_customer_hold-1")
    try:
        # Before the hold existed the view knew only the mailbox's status.
        assert login_allowed(address) == 1
        columns = db.session.execute(sa.text("SELECT * FROM mail_users")).keys()
        db.session.rollback()
    finally:
        db.session.close()
        upgrade()
    assert list(columns) == [
        "address", "local_part", "domain", "password", "home", "quota_mb",
        "quota_bytes", "quota_rule", "status", "login_allowed", "accepts_mail",
    ]  # fmt: skip
    assert list(db.session.execute(sa.text("SELECT * FROM mail_users")).keys()) == list(columns)
    # The columns are back, empty: nobody is on hold after a round trip.
    assert login_allowed(address) == 1
