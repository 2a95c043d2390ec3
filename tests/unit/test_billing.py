"""The daily charge, the price list and the balance: each rule of the point account."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ChargeLine, Customer, LedgerEntry
from app.services import billing, clock, customers, mailboxes
from app.services.access import Actor
from app.services.errors import Conflict, PermissionDenied, ValidationError
from tests.billingkit import class_id, created, ledger_checked, rome, timeline  # noqa: F401

pytestmark = pytest.mark.usefixtures("ledger_checked")

BM100 = "Business Mail 100 MB"
PS25 = "Professional Suite 25.000 MB"


def charges(customer) -> dict[date, int]:
    rows = db.session.execute(
        sa.select(LedgerEntry.day, LedgerEntry.centipoints)
        .where(LedgerEntry.customer_id == customer.id, LedgerEntry.kind == "charge")
        .order_by(LedgerEntry.id)
    )
    return dict(rows.all())


def lines(customer, day: date) -> list[tuple[str, str, int]]:
    rows = db.session.execute(
        sa.select(ChargeLine.address, ChargeLine.class_name, ChargeLine.centipoints)
        .join(LedgerEntry, LedgerEntry.id == ChargeLine.entry_id)
        .where(LedgerEntry.customer_id == customer.id, LedgerEntry.day == day)
        .order_by(ChargeLine.address)
    )
    return [tuple(r) for r in rows]


def balance(customer) -> int:
    return db.session.scalar(sa.select(Customer.balance_centipoints).where(Customer.id == customer.id))


def test_a_mailbox_active_from_2359_to_0001_is_charged_for_both_days(make):
    c = make.customer()
    box = make.mailbox(c, local="anna")
    timeline(
        box,
        ("active", BM100, rome(2026, 5, 10, 23, 59), rome(2026, 5, 11, 0, 1)),
        ("disabled", BM100, rome(2026, 5, 11, 0, 1), None),
    )
    for day in (date(2026, 5, 10), date(2026, 5, 11), date(2026, 5, 12)):
        billing.charge_day(c, day)
    assert charges(c) == {date(2026, 5, 10): -100, date(2026, 5, 11): -100, date(2026, 5, 12): 0}
    assert lines(c, date(2026, 5, 11)) == [(box.address, BM100, 100)]
    assert lines(c, date(2026, 5, 12)) == []
    assert balance(c) == -200


def test_the_mailbox_services_write_their_history_at_the_clock_s_time(make):
    # The same night through the services a person uses: created at 23:59, disabled at 00:01.
    c = make.customer()
    created(c, rome(2026, 5, 10, 8))
    try:
        clock.set_now(rome(2026, 5, 10, 23, 59))
        box = make.mailbox(c, local="bruno")
        clock.set_now(rome(2026, 5, 11, 0, 1))
        mailboxes.update_mailbox(Actor.system(), box.id, status="disabled")
    finally:
        clock.reset()
    for day in (date(2026, 5, 10), date(2026, 5, 11), date(2026, 5, 12)):
        billing.charge_day(c, day)
    assert charges(c) == {date(2026, 5, 10): -100, date(2026, 5, 11): -100, date(2026, 5, 12): 0}


def test_a_contract_customer_moving_to_pay_per_use_is_charged_from_that_day_only(make):
    c = make.customer(plan="contract", allowances={BM100: 5})
    created(c, rome(2026, 5, 1, 8))
    box = make.mailbox(c, local="carla")
    timeline(box, ("active", BM100, rome(2026, 5, 1, 8), None))
    try:
        clock.set_now(rome(2026, 5, 10, 9))
        customers.update_customer(Actor.system(), c.id, plan="payg")
    finally:
        clock.reset()
    billing.charge_until(date(2026, 5, 12))
    # Nine days on a contract cost nothing; 10, 11 and 12 May are charged.
    assert charges(c) == {date(2026, 5, 10): -100, date(2026, 5, 11): -100, date(2026, 5, 12): -100}


def test_an_upgrade_then_a_downgrade_the_same_day_is_charged_at_the_higher_price(make):
    c = make.customer()
    box = make.mailbox(c)
    timeline(
        box,
        ("active", BM100, rome(2026, 5, 1), rome(2026, 5, 10, 9)),
        ("active", PS25, rome(2026, 5, 10, 9), rome(2026, 5, 10, 10)),
        ("active", BM100, rome(2026, 5, 10, 10), None),
    )
    billing.charge_day(c, date(2026, 5, 10))
    billing.charge_day(c, date(2026, 5, 11))
    assert lines(c, date(2026, 5, 10)) == [(box.address, PS25, 3000)]
    assert lines(c, date(2026, 5, 11)) == [(box.address, BM100, 100)]


def test_the_higher_class_counts_only_while_active(make):
    c = make.customer()
    box = make.mailbox(c)
    timeline(
        box,
        ("suspended", PS25, rome(2026, 5, 1), rome(2026, 5, 10, 9)),
        ("active", BM100, rome(2026, 5, 10, 9), None),
    )
    billing.charge_day(c, date(2026, 5, 10))
    assert lines(c, date(2026, 5, 10)) == [(box.address, BM100, 100)]


def test_a_mailbox_suspended_or_disabled_all_day_is_not_charged_and_aliases_are_free(make):
    c = make.customer()
    suspended, disabled, active = make.mailbox(c), make.mailbox(c), make.mailbox(c, local="zeta")
    make.alias(c, "info", active)
    timeline(suspended, ("suspended", PS25, rome(2026, 5, 1), None))
    timeline(disabled, ("disabled", PS25, rome(2026, 5, 1), rome(2026, 5, 20)))
    timeline(active, ("active", BM100, rome(2026, 5, 1), None))
    entry = billing.charge_day(c, date(2026, 5, 10))
    assert entry.centipoints == -100
    assert lines(c, date(2026, 5, 10)) == [(active.address, BM100, 100)]


def test_a_customer_without_mailboxes_gets_a_charge_of_zero_for_the_day(make):
    c = make.customer()
    entry = billing.charge_day(c, date(2026, 5, 10))
    assert entry.centipoints == 0 and entry.day == date(2026, 5, 10)
    assert balance(c) == 0


def test_a_price_change_takes_effect_on_its_date(make):
    c = make.customer()
    box = make.mailbox(c)
    timeline(box, ("active", BM100, rome(2026, 5, 1), None))
    clock.set_now(rome(2026, 6, 1, 12))
    billing.set_price(make.SYSTEM, BM100, 250, date(2026, 6, 10))
    assert billing.price_list(date(2026, 6, 9))[box.service_class_id] == 100
    assert billing.price_list(date(2026, 6, 10))[box.service_class_id] == 250
    billing.charge_day(c, date(2026, 6, 9))
    billing.charge_day(c, date(2026, 6, 10))
    assert charges(c) == {date(2026, 6, 9): -100, date(2026, 6, 10): -250}
    assert balance(c) == -350


def test_a_price_is_set_by_staff_and_never_for_a_past_day(make):
    c = make.customer()
    admin = make.admin(c)
    clock.set_now(rome(2026, 6, 1, 12))
    with pytest.raises(ValidationError) as refused:
        billing.set_price(make.SYSTEM, BM100, 250, date(2026, 5, 31))
    assert "valid_from" in refused.value.errors
    with pytest.raises(PermissionDenied):
        billing.set_price(Actor.for_user(admin), BM100, 1, date(2026, 6, 2))
    with pytest.raises(ValidationError):
        billing.set_price(make.SYSTEM, BM100, -1, date(2026, 6, 2))
    # Today is allowed, and a second price for the same date replaces the first.
    billing.set_price(make.SYSTEM, BM100, 300, date(2026, 6, 1))
    billing.set_price(make.SYSTEM, BM100, 310, date(2026, 6, 1))
    assert billing.price_list(date(2026, 6, 1))[class_id(BM100)] == 310


def test_the_days_of_daylight_saving_changes_are_23_and_25_hours(app):
    for day, hours in ((date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 6, 1), 24)):
        start, end = clock.day_bounds(day)
        assert end - start == timedelta(hours=hours)


def test_a_mailbox_across_midnight_on_the_march_change_is_charged_for_both_days(make):
    c = make.customer()
    box = make.mailbox(c)
    timeline(
        box,
        ("active", BM100, rome(2026, 3, 28, 23, 30), rome(2026, 3, 29, 0, 30)),
        ("disabled", BM100, rome(2026, 3, 29, 0, 30), None),
    )
    for day in (date(2026, 3, 27), date(2026, 3, 28), date(2026, 3, 29)):
        billing.charge_day(c, day)
    assert charges(c) == {date(2026, 3, 27): 0, date(2026, 3, 28): -100, date(2026, 3, 29): -100}


def test_the_hour_the_clocks_skip_and_the_hour_they_repeat_belong_to_the_right_day(make):
    from datetime import UTC, datetime

    c = make.customer()
    spring, autumn = make.mailbox(c, local="spring"), make.mailbox(c, local="autumn")
    # 22:10-22:20 UTC on 29 March is 00:10-00:20 of the 30th in Rome (summer time, UTC+2).
    timeline(
        spring,
        (
            "active",
            BM100,
            datetime(2026, 3, 29, 22, 10, tzinfo=UTC),
            datetime(2026, 3, 29, 22, 20, tzinfo=UTC),
        ),
    )
    # 22:30-22:50 UTC on 25 October is 23:30-23:50 of the 25th in Rome (winter time again, UTC+1).
    timeline(
        autumn,
        (
            "active",
            PS25,
            datetime(2026, 10, 25, 22, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 22, 50, tzinfo=UTC),
        ),
    )
    for day in (date(2026, 3, 29), date(2026, 3, 30), date(2026, 10, 25), date(2026, 10, 26)):
        billing.charge_day(c, day)
    assert charges(c) == {
        date(2026, 3, 29): 0,
        date(2026, 3, 30): -100,
        date(2026, 10, 25): -3000,
        date(2026, 10, 26): 0,
    }


def test_missed_days_are_caught_up_in_order_and_a_rerun_charges_nothing(make):
    c = make.customer()
    created(c, rome(2026, 5, 1, 9))
    box = make.mailbox(c)
    timeline(box, ("active", BM100, rome(2026, 5, 1, 9), None))
    clock.set_now(rome(2026, 5, 4, 0, 5))
    run = billing.charge_until()
    assert (run.days, run.charged) == (3, 3)
    assert list(charges(c)) == [date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)]
    assert billing.charge_until().charged == 0
    # The job stopped for a week: the days after the last charged one, in order.
    clock.set_now(rome(2026, 5, 11, 3))
    assert billing.charge_until().charged == 7
    assert list(charges(c)) == [date(2026, 5, d) for d in range(1, 11)]
    assert balance(c) == -1000


def test_charging_a_day_again_charges_it_once(make):
    c = make.customer()
    box = make.mailbox(c)
    timeline(box, ("active", PS25, rome(2026, 5, 1), None))
    first = billing.charge_day(c, date(2026, 5, 10))
    again = billing.charge_day(c, date(2026, 5, 10))
    assert first.id == again.id
    assert balance(c) == -3000
    assert charges(c) == {date(2026, 5, 10): -3000}
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(LedgerEntry).where(LedgerEntry.day == date(2026, 5, 10))
        )
        == 1
    )


def test_the_database_refuses_a_second_charge_of_a_day(make):
    from sqlalchemy.exc import IntegrityError

    c = make.customer()
    billing.charge_day(c, date(2026, 5, 10))
    db.session.add(LedgerEntry(customer_id=c.id, kind="charge", day=date(2026, 5, 10), centipoints=0))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_contract_customers_are_never_charged(make):
    c = make.customer("contract", {BM100: 2})
    box = make.mailbox(c)
    timeline(box, ("active", BM100, rome(2026, 5, 1), None))
    created(c, rome(2026, 5, 1))
    clock.set_now(rome(2026, 5, 5, 1))
    assert billing.charge_until().charged == 0
    assert billing.charge_day(c, date(2026, 5, 2)) is None
    assert charges(c) == {}
    with pytest.raises(Conflict):
        billing.wallet(make.SYSTEM, c.id)


def test_a_deleted_mailbox_keeps_its_address_on_the_charge(make):
    c = make.customer()
    box = make.mailbox(c, local="gone")
    address = box.address
    timeline(box, ("active", BM100, rome(2026, 5, 1), None))
    mailboxes.delete_mailbox(make.SYSTEM, box.id)
    billing.charge_day(c, date(2026, 5, 10))
    line = db.session.scalar(sa.select(ChargeLine))
    assert (line.address, line.mailbox_id, line.centipoints) == (address, None, 100)


def test_daily_cost_days_left_and_the_wallet_state(make):
    c = make.customer()
    make.mailbox(c, service_class=BM100)
    make.mailbox(c, service_class=PS25)
    wallet = billing.wallet(make.SYSTEM, c.id)
    assert (wallet.daily_cost, wallet.days_left, wallet.state) == (
        3100,
        0,
        "grace",
    )  # nothing left and something costs: the grace runs
    billing.record_credit(make.SYSTEM, c.id, 1000, "BONIFICO-1")  # 10 EUR = 800 points
    wallet = billing.wallet(make.SYSTEM, c.id)
    assert (wallet.balance, wallet.days_left, wallet.state) == (80_000, 25, "ok")
    billing.record_adjustment(make.SYSTEM, c.id, -40_000, "Correzione")
    assert billing.wallet(make.SYSTEM, c.id).state == "warning"
    billing.record_adjustment(make.SYSTEM, c.id, -50_000, "Correzione")
    assert billing.wallet(make.SYSTEM, c.id).state == "grace"
    with pytest.raises(ValidationError):
        billing.record_adjustment(make.SYSTEM, c.id, 5, "")
    empty = make.customer()
    assert billing.wallet(make.SYSTEM, empty.id).days_left is None


def test_amounts_are_shown_as_exact_points_and_euros(app):
    assert str(billing.points(123456)) == "1234.56"
    assert str(billing.eur(123456)) == "15.43"
    assert str(billing.eur(-8000)) == "-1.00"


def test_verify_finds_a_balance_that_is_not_the_sum_of_the_entries(make):
    c = make.customer()
    billing.record_credit(make.SYSTEM, c.id, 100, "X")
    assert billing.verify() == []
    db.session.execute(sa.update(Customer).where(Customer.id == c.id).values(balance_centipoints=1))
    db.session.commit()
    problems = billing.verify()
    assert len(problems) == 1 and str(c.id) in problems[0]
    db.session.execute(sa.update(Customer).where(Customer.id == c.id).values(balance_centipoints=8000))
    db.session.commit()


def test_flask_billing_charge_and_verify(app, make):
    runner = app.test_cli_runner()
    c = make.customer()
    created(c, rome(2026, 5, 1, 9))
    timeline(make.mailbox(c), ("active", BM100, rome(2026, 5, 1, 9), None))
    clock.set_now(rome(2026, 5, 6, 0, 30))

    result = runner.invoke(args=["billing", "charge", "--date", "2026-05-03"])
    assert result.exit_code == 0, result.output
    assert list(charges(c)) == [date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)]
    result = runner.invoke(args=["billing", "charge"])  # up to yesterday, the 5th
    assert result.exit_code == 0 and list(charges(c))[-1] == date(2026, 5, 5)
    assert "Addebitati 2 " in result.output

    for bad in ("05/03/2026", "2026-05-06"):  # not a date; today is not over
        refused = runner.invoke(args=["billing", "charge", "--date", bad])
        assert refused.exit_code == 2 and refused.output.startswith("Errore: ")

    ok = runner.invoke(args=["billing", "verify"])
    assert ok.exit_code == 0 and "in ordine" in ok.output
    db.session.execute(sa.update(Customer).where(Customer.id == c.id).values(balance_centipoints=0))
    db.session.commit()
    broken = runner.invoke(args=["billing", "verify"])
    assert broken.exit_code == 1 and "la somma dei movimenti è -500" in broken.output
    db.session.execute(sa.update(Customer).where(Customer.id == c.id).values(balance_centipoints=-500))
    db.session.commit()


def test_the_charge_job_charges_up_to_yesterday_with_progress(app, make):
    from app.models import Job
    from app.services import jobs

    app.config["JOBS_INLINE"] = True
    try:
        customers = [make.customer() for _ in range(3)]
        for c in customers:
            created(c, rome(2026, 5, 1, 9))
        clock.set_now(rome(2026, 5, 3, 0, 10))
        job = jobs.enqueue(make.SYSTEM, "billing_charge")
    finally:
        app.config["JOBS_INLINE"] = False
    row = db.session.get(Job, job.id)
    db.session.refresh(row)
    assert (row.state, row.queue, row.done, row.total) == ("done", "billing", 6, 6)
    assert row.result == {"days": 2, "charged": 6, "skipped": 0}


def test_the_hourly_cron_look_queues_the_charge_only_when_a_day_is_left(app, make):
    from app import jobs as entry

    entry.use_app(app)

    def cron_look():
        """As `rq cron` calls it: in a thread of its own, with no app context pushed."""
        out = {}
        thread = threading.Thread(target=lambda: out.setdefault("job", entry.schedule_billing_charge()))
        thread.start()
        thread.join()
        assert "job" in out, "the cron's call failed (see the thread's traceback above)"
        return out["job"]

    app.config["JOBS_INLINE"] = True
    try:
        c = make.customer()
        created(c, rome(2026, 5, 1, 9))
        clock.set_now(rome(2026, 5, 1, 23, 5))
        assert cron_look() is None  # the customer's first day is not over
        clock.set_now(rome(2026, 5, 2, 0, 5))
        assert cron_look() is not None
        assert list(charges(c)) == [date(2026, 5, 1)]
        clock.set_now(rome(2026, 5, 2, 1, 5))
        assert cron_look() is None
    finally:
        app.config["JOBS_INLINE"] = False
        entry.use_app(None)
