"""Warnings in time, the grace period and the hold: a Pay-per-Use account spent day after day."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Customer
from app.services import billing, clock, credit_warnings, hold, outbox
from app.services.access import Actor
from tests.billingkit import ROME, ledger_checked  # noqa: F401
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.usefixtures("ledger_checked")

STAFF = Actor.system("staff-test")


@pytest.fixture
def sink(app):
    saved = {k: app.config[k] for k in ("SMTP_HOST", "SMTP_PORT", "JOBS_INLINE", "PANEL_URL")}
    server = SmtpSink().start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port, JOBS_INLINE=True, PANEL_URL="")
    yield server
    server.stop()
    app.config.update(saved)


def _day(start, n: int) -> None:
    """The clock at 03:00 of the n-th day after start, the charge run and its review (twice: no harm)."""
    clock.set_now(datetime.combine(start + timedelta(days=n), time(3), tzinfo=ROME))
    billing.charge_until()
    credit_warnings.review_all(charged=True)
    credit_warnings.review_all(charged=True)
    outbox.send_pending()


def _customer(make, locale="it"):
    c = make.customer(name="Rossi Srl")
    user = make.admin(c)
    if locale != "it":
        user.locale = locale
        db.session.commit()
    make.mailbox(c, local="anna")  # Business Mail 100 MB: 1 point a day
    return c, user


def _state(c) -> Customer:
    db.session.expire_all()
    return db.session.get(Customer, c.id)


def _login_allowed(c) -> int:
    return db.session.scalar(
        sa.text("SELECT login_allowed FROM mail_users WHERE address LIKE :a"), {"a": "anna@%"}
    )


def test_each_level_is_mailed_once_then_grace_then_hold_and_a_recharge_lifts_it(make, sink):
    c, user = _customer(make)
    start = clock.today()
    billing.record_credit(STAFF, c.id, 20, "firma", first=True)  # 20 cents = 1600 centipoints: 16 days
    assert _state(c).warned_level is None and sink.received == []

    subjects, held = {}, {}
    for n in range(1, 21):
        _day(start, n)
        subjects[n] = [m.subject for m in sink.received]
        held[n] = _login_allowed(c) == 0
    assert subjects[1] == []
    assert subjects[2] == ["Credito in esaurimento: 14 giorni rimasti"]
    assert subjects[9][1:] == ["Credito in esaurimento: 7 giorni rimasti"]
    assert subjects[13][2:] == ["Credito in esaurimento: 3 giorni rimasti"]
    assert subjects[15][3:] == ["Credito in esaurimento: 1 giorno rimasto"]
    assert subjects[16][4:] == ["Credito esaurito: ricarica il conto"]
    assert len(subjects[20]) == 5, "each level once, however often the check runs"
    assert all(m.envelope_to == [user.email] for m in sink.received)
    seven = sink.received[1].body
    assert "il saldo del conto di Rossi Srl è di 7,00 punti (0,09 EUR)" in seven
    assert "il credito basta per 7 giorni: finisce il" in seven

    # Out of credit since day 16: days 17, 18, 19 within the grace, on hold from day 20.
    assert [n for n, yes in held.items() if yes] == [20]
    st = _state(c)
    assert st.on_hold_since is not None and st.on_hold_reason == credit_warnings.HOLD_REASON
    assert _login_allowed(c) == 0
    assert billing.wallet(STAFF, c.id).state == "on_hold"

    billing.record_credit(STAFF, c.id, 20, "RIC-bonifico")  # -400 + 1600 = 1200: 12 days
    st = _state(c)
    assert st.on_hold_since is None and st.negative_since is None and _login_allowed(c) == 1
    assert billing.wallet(STAFF, c.id).state == "warning"
    for n in range(21, 27):
        _day(start, n)
    assert [m.subject for m in sink.received][5:] == ["Credito in esaurimento: 7 giorni rimasti"]


def test_the_grace_lasts_the_configured_days(make, app):
    c, _user = _customer(make)
    start = clock.today()
    for n in range(1, 5):  # the balance is 0 from the start, negative from the first charge
        _day(start, n)
        assert _state(c).on_hold_since is None, n
    _day(start, 5)
    assert _state(c).on_hold_since is not None
    assert billing.wallet(STAFF, c.id).state == "on_hold"


def test_a_staff_hold_is_not_lifted_by_a_recharge(make):
    c, _user = _customer(make)
    start = clock.today()
    _day(start, 1)
    _day(start, 2)
    assert billing.wallet(STAFF, c.id).state == "grace"
    hold.put_on_hold(STAFF, c.id, "Verifica amministrativa")
    billing.record_credit(STAFF, c.id, 100, "RIC-x")
    st = _state(c)
    assert st.on_hold_since is not None and st.on_hold_reason == "Verifica amministrativa"
    assert st.negative_since is None and st.balance_centipoints == 8000 - 200


def test_the_mail_speaks_the_users_language(make, sink):
    c, _user = _customer(make, locale="en")
    start = clock.today()
    billing.record_credit(STAFF, c.id, 10, "firma", first=True)  # 800: 8 days, within 14 at once
    outbox.send_pending()
    _day(start, 1)  # 700: 7 days
    mails = sink.wait_for(2)
    assert len(mails) == 2 and all(m.message["Content-Language"] == "en" for m in mails)
    assert all(m.envelope_to == [_user.email] for m in mails)


def test_the_charge_job_warns_and_puts_on_hold_after_the_grace(app, make):
    from app.models import Outbox
    from app.services import jobs

    c, user = _customer(make)
    start = clock.today()
    app.config["JOBS_INLINE"] = True
    try:
        for n in range(1, 6):
            clock.set_now(datetime.combine(start + timedelta(days=n), time(0, 30), tzinfo=ROME))
            jobs.enqueue(Actor.system("cron", via="job"), "billing_charge")
            assert (_state(c).on_hold_since is not None) == (n == 5), n
    finally:
        app.config["JOBS_INLINE"] = False
    mails = db.session.execute(sa.select(Outbox.kind, Outbox.to_addresses, Outbox.dedupe_key)).all()
    assert [tuple(m) for m in mails] == [("credit_warning", user.email, f"credit:{c.id}:0:0:it")]
    assert _login_allowed(c) == 0 and billing.wallet(STAFF, c.id).state == "on_hold"
