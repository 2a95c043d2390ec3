"""Contract limits: one rule, held under concurrency on both databases."""

import threading

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Mailbox
from app.services import capacity, customers, limits, mailboxes
from app.services.errors import Conflict, LimitExceeded, PermissionDenied


def count_mailboxes(customer_id):
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Mailbox).where(Mailbox.customer_id == customer_id)
    )


def test_the_refusal_names_the_class_the_allowance_and_the_count(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 2})
    make.mailbox(c)
    make.mailbox(c)
    with pytest.raises(LimitExceeded) as err:
        make.mailbox(c)
    e = err.value
    assert (e.service_class, e.allowance, e.used) == ("Business Mail 100 MB", 2, 2)
    assert "Business Mail 100 MB" in e.message and "2" in e.message
    assert count_mailboxes(c.id) == 2


def test_a_class_not_in_the_contract_is_refused(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 5})
    with pytest.raises(LimitExceeded) as err:
        make.mailbox(c, service_class="Professional Suite 1.000 MB")
    assert err.value.allowance == 0
    assert "Professional Suite 1.000 MB" in err.value.message


def test_suspended_and_disabled_mailboxes_still_count(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 2})
    a, b = make.mailbox(c), make.mailbox(c)
    mailboxes.update_mailbox(make.SYSTEM, a.id, status="suspended")
    mailboxes.update_mailbox(make.SYSTEM, b.id, status="disabled")
    with pytest.raises(LimitExceeded):
        make.mailbox(c)


def test_aliases_and_lists_are_free_and_never_counted(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    box = make.mailbox(c)
    for i in range(5):
        make.alias(c, f"alias{i}", box)
    make.dlist(c, "tutti", [box.address, "fuori@example.org"])
    rows = limits.usage_report(c)
    assert [(r.service_class.name, r.used, r.allowance) for r in rows] == [("Business Mail 100 MB", 1, 1)]


def test_changing_class_respects_the_target_allowance(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 3, "Business Mail Plus 100 MB": 1})
    a, b = make.mailbox(c), make.mailbox(c)
    mailboxes.update_mailbox(make.SYSTEM, a.id, service_class="Business Mail Plus 100 MB")
    with pytest.raises(LimitExceeded) as err:
        mailboxes.update_mailbox(make.SYSTEM, b.id, service_class="Business Mail Plus 100 MB")
    assert err.value.used == 1
    db.session.rollback()
    assert db.session.get(Mailbox, b.id).service_class.name == "Business Mail 100 MB"


def test_pay_per_use_has_no_allowance(app, make):
    c = make.customer("payg")
    for _ in range(3):
        make.mailbox(c, service_class="Professional Suite 25.000 MB")
    assert count_mailboxes(c.id) == 3


def test_contract_without_self_service_is_read_only_for_the_customer(app, make):
    from app.services.access import Actor

    c = make.customer("contract", {"Business Mail 100 MB": 5}, self_service=False)
    admin = make.admin(c)
    actor = Actor.for_user(admin)
    with pytest.raises(PermissionDenied):
        mailboxes.create_mailbox(
            actor,
            c.id,
            address=f"x@{make.domain_of(c)}",
            password=make.PASSWORD,
            service_class="Business Mail 100 MB",
        )
    # Support can still act for them.
    make.mailbox(c)
    assert mailboxes.search_mailboxes(actor, c.id).total == 1


def test_the_contract_cannot_drop_below_what_is_in_use(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 3})
    make.mailbox(c)
    make.mailbox(c)
    with pytest.raises(Conflict):
        customers.set_contract(
            make.SYSTEM, c.id, [{"service_class": "Business Mail 100 MB", "max_accounts": 1}], True
        )
    customers.set_contract(
        make.SYSTEM, c.id, [{"service_class": "Business Mail 100 MB", "max_accounts": 2}], True
    )
    assert limits.allowance_for(c.id, c.allowances[0].service_class_id) == 2


def test_an_approved_capacity_request_raises_the_allowance(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    make.mailbox(c)
    with pytest.raises(LimitExceeded):
        make.mailbox(c)
    req = capacity.request_capacity(
        make.SYSTEM, c.id, service_class="Business Mail 100 MB", extra_accounts=2, note="Due assunti"
    ).request
    capacity.decide(make.SYSTEM, req.id, approve=True)
    make.mailbox(c)
    make.mailbox(c)
    with pytest.raises(LimitExceeded):
        make.mailbox(c)
    with pytest.raises(Conflict):
        capacity.decide(make.SYSTEM, req.id, approve=True)


def _race(app, n, work):
    """Run work(i) in n threads released at once; return the outcomes."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = work(i)
            except Exception as e:  # the outcome is what we assert on
                results[i] = e
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_creates_never_exceed_the_allowance(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 3})
    make.mailbox(c)
    domain = make.domain_of(c)
    results = _race(
        app,
        6,
        lambda i: (
            mailboxes.create_mailbox(
                make.SYSTEM,
                c.id,
                address=f"corsa{i}@{domain}",
                password=make.PASSWORD,
                service_class="Business Mail 100 MB",
            ).id
        ),
    )
    made = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(made) == 2 and len(refused) == 4, results
    assert count_mailboxes(c.id) == 3


def test_concurrent_class_changes_never_exceed_the_allowance(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 4, "Business Mail Plus 100 MB": 1})
    boxes = [make.mailbox(c).id for _ in range(4)]
    results = _race(
        app,
        4,
        lambda i: (
            mailboxes.update_mailbox(make.SYSTEM, boxes[i], service_class="Business Mail Plus 100 MB").id
        ),
    )
    assert sum(isinstance(r, int) for r in results) == 1, results
    assert sum(isinstance(r, LimitExceeded) for r in results) == 3
    plus = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Mailbox)
        .where(
            Mailbox.customer_id == c.id, Mailbox.service_class.has(quota_mb=100, type="business_mail_plus")
        )
    )
    assert plus == 1
