"""The point account's hold on a real Dovecot and Postfix: when the credit has been exhausted past
the grace, the daily charge's review blocks every login (mail still delivered and kept), and the
recharge that brings the balance above zero lets the mailboxes in again, with their mail."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from app.extensions import db
from app.models import Customer
from app.services import billing, clock, credit_warnings
from tests import factories
from tests.billingkit import ROME, ledger_checked, seed_prices  # noqa: F401
from tests.factories import PASSWORD, SYSTEM
from tests.integration.test_mailservers import inbox_subjects, login_refused, send, subject

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ledger_checked")]


@pytest.fixture
def mail(servers, app):
    seed_prices()
    yield servers
    clock.reset()


def _charge_day(start, n: int) -> None:
    """The night after the n-th day: the charge and its review, as the job runs them."""
    clock.set_now(datetime.combine(start + timedelta(days=n), time(0, 30), tzinfo=ROME))
    billing.charge_and_review()


def test_past_the_grace_no_login_mail_kept_and_a_recharge_lets_the_mailbox_in_again(mail):
    c = factories.customer(domain="punti.example")
    start = clock.today()
    anna = factories.mailbox(c, "anna")  # Business Mail 100 MB: 1 point a day
    billing.record_credit(SYSTEM, c.id, 2, "firma", first=True)  # 2 cents: 160 centipoints, 1,60 points
    mail.imap(anna.address, PASSWORD).logout()

    # Day 1 and 2 are paid; from day 3 the balance is negative: 3 days of grace, on hold after.
    held_on = None
    for n in range(1, 9):
        _charge_day(start, n)
        if login_refused(mail, anna.address):
            held_on = n
            break
    assert held_on is not None, "the customer was never put on hold"
    wallet = billing.wallet(SYSTEM, c.id)
    assert wallet.state == "on_hold" and wallet.balance < 0
    db.session.expire_all()
    assert credit_warnings.grace_ends(db.session.get(Customer, c.id)) < clock.today()

    # On hold: mail still arrives and is kept.
    kept = subject()
    send(mail, anna.address, kept)
    mail.wait_stored(anna.address, 1)

    # A recharge above zero lifts the hold at once: the mailbox logs in and finds its mail.
    billing.record_credit(SYSTEM, c.id, 500, "RIC-bonifico")
    assert billing.wallet(SYSTEM, c.id).state in {"ok", "warning"}
    assert kept in inbox_subjects(mail, anna.address)
