"""The outbox: every email is kept with its fate, none is lost while the relay is down or not
configured, each leaves once (even with two senders at once), and staff read it per customer."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from app import jobs as entry
from app.extensions import db
from app.models import AuditEvent, CapacityRequest, Job, Outbox, User
from app.models.base import utcnow
from app.services import capacity, outbox
from app.services.access import Actor
from tests.smtp_sink import SmtpSink, _Handler, free_port

BM100 = "Business Mail 100 MB"
SMTP_KEYS = ("SMTP_HOST", "SMTP_PORT", "SALES_EMAIL", "JOBS_INLINE", "REDIS_URL")


@pytest.fixture
def relay(app):
    """The relay's settings, put back after the test; `relay.use(port)` points the panel at a port."""

    class Relay:
        def use(self, port: int | None, **more) -> None:
            app.config.update(SMTP_HOST="127.0.0.1" if port else "", SMTP_PORT=port or 25, **more)

    saved = {k: app.config[k] for k in SMTP_KEYS}
    app.config.update(SALES_EMAIL="", JOBS_INLINE=True)
    yield Relay()
    app.config.update(saved)


@pytest.fixture
def sinks():
    started: list[SmtpSink] = []

    def start(sink: SmtpSink | None = None) -> SmtpSink:
        started.append((sink or SmtpSink()).start())
        return started[-1]

    yield start
    for sink in started:
        sink.stop()


class _Refusing(_Handler):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nessuno@"):
            return "550 5.1.1 Utente sconosciuto"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class RefusingSink(SmtpSink):
    """A relay that refuses for good any recipient called nessuno@..."""

    def __init__(self):
        super().__init__()
        self._handler = _Refusing()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)


def _queue(n: int = 1, *, customer_id=None, to="anna@verdi.example", **kw) -> list[Outbox]:
    rows = [
        outbox.queue_email(
            "test", to, f"Messaggio {i}", f"Testo {i}\n", customer_id=customer_id, locale="it", **kw
        )
        for i in range(n)
    ]
    db.session.commit()
    return rows


def _rows() -> list[Outbox]:
    db.session.expire_all()
    rows = list(db.session.scalars(sa.select(Outbox).order_by(Outbox.id)))
    db.session.commit()
    return rows


def _time_passes() -> None:
    """As if the wait before the next attempt had gone by."""
    db.session.execute(sa.update(Outbox).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_a_mail_queued_while_the_relay_is_down_waits_with_the_reason_and_leaves_once_when_it_is_up(
    app, relay, sinks
):
    sink = SmtpSink()  # its port, with nobody listening yet
    relay.use(sink.port)
    (queued,) = _queue()
    before = utcnow()
    assert outbox.send_pending().retrying == 1
    (row,) = _rows()
    assert (row.state, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.last_error.startswith(f"Server di posta in uscita non raggiungibile (127.0.0.1:{sink.port})")
    assert "Connection refused" in row.last_error
    assert timedelta(seconds=55) < row.next_attempt_at - before < timedelta(seconds=65)

    sinks(sink)
    assert outbox.send_pending().taken == 0, "not before its next attempt is due"
    _time_passes()
    assert outbox.send_pending().sent == 1
    (mail,) = sink.wait_for(1)
    assert mail.envelope_to == ["anna@verdi.example"] and mail.subject == "Messaggio 0"
    assert mail.body.splitlines() == ["Testo 0"] and mail.message["Content-Language"] == "it"
    (row,) = _rows()
    assert (row.state, row.attempts) == ("sent", 2) and row.sent_at is not None
    _time_passes()
    assert outbox.send_pending().taken == 0
    assert len(sink.received) == 1 and queued.id == row.id


def test_without_a_relay_mails_wait_and_count_no_attempt_then_leave_once_it_is_configured(app, relay, sinks):
    relay.use(None)  # as in `make run`
    _queue(2)
    outbox.send_queued()
    assert outbox.send_pending().waiting == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 0  # no job for nothing
    for row in _rows():
        assert (row.state, row.attempts) == ("pending", 0)
        assert row.last_error == (
            "Non inviata: il server di posta in uscita non è configurato (SMTP_HOST vuoto)."
        )
    sink = sinks()
    relay.use(sink.port)
    assert outbox.send_pending().sent == 2
    assert sorted(m.subject for m in sink.wait_for(2)) == ["Messaggio 0", "Messaggio 1"]
    assert [r.state for r in _rows()] == ["sent", "sent"]


def test_failed_attempts_wait_longer_each_time_and_end_failed(app, relay):
    relay.use(free_port())  # nobody listens there
    _queue()
    waits = []
    for _attempt in range(outbox.MAX_ATTEMPTS):
        before = utcnow()
        outbox.send_pending()
        (row,) = _rows()
        waits.append(round((row.next_attempt_at - before).total_seconds() / 60))
        _time_passes()
    assert waits[:4] == [1, 5, 15, 60]
    (row,) = _rows()
    assert (row.state, row.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert outbox.send_pending().taken == 0  # failed: left alone


def test_a_recipient_the_relay_refuses_for_good_is_failed_at_once_the_others_go(app, relay, sinks):
    sink = sinks(RefusingSink())
    relay.use(sink.port)
    _queue(to="nessuno@verdi.example")
    _queue(to=["anna@verdi.example", "nessuno@verdi.example"])
    done = outbox.send_pending()
    assert (done.sent, done.failed) == (1, 1)
    refused, partly = _rows()
    assert (refused.state, refused.attempts) == ("failed", 1)
    assert "nessuno@verdi.example (550 5.1.1 Utente sconosciuto)" in refused.last_error
    assert partly.state == "sent" and "Non consegnata a: nessuno@verdi.example" in partly.last_error
    (mail,) = sink.wait_for(1)
    assert mail.envelope_to == ["anna@verdi.example"]


def test_two_senders_at_once_send_each_mail_once(app, relay, sinks):
    sink = sinks()
    relay.use(sink.port)
    _queue(30)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def sender():
        try:
            with app.app_context():
                start.wait()
                while outbox.send_pending(limit=4).taken:
                    pass
                db.session.remove()
        except BaseException as e:  # noqa: BLE001  (reported by the test)
            errors.append(e)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    sink.wait_for(30)
    subjects = sorted(m.subject for m in sink.received)
    assert subjects == sorted(f"Messaggio {i}" for i in range(30))  # each once
    assert {(r.state, r.attempts) for r in _rows()} == {("sent", 1)}


def test_a_dedupe_key_queues_a_mail_once(app, relay, sinks):
    sink = sinks()
    relay.use(sink.port)
    first = outbox.queue_email(
        "credit_warning",
        "a@x.example",
        "Credito",
        "7 giorni\n",
        customer_id=None,
        locale="it",
        dedupe_key="w-7",
    )
    again = outbox.queue_email(
        "credit_warning",
        "a@x.example",
        "Credito",
        "7 giorni\n",
        customer_id=None,
        locale="it",
        dedupe_key="w-7",
    )
    other = outbox.queue_email(
        "credit_warning",
        "a@x.example",
        "Credito",
        "3 giorni\n",
        customer_id=None,
        locale="it",
        dedupe_key="w-3",
    )
    assert first is not None and again is None and other is not None
    db.session.commit()
    outbox.send_queued()
    assert [m.body.strip() for m in sink.wait_for(2)] == ["7 giorni", "3 giorni"]
    assert (
        outbox.queue_email("k", "a@x.example", "s", "b", customer_id=None, locale="it", dedupe_key="w-7")
        is None
    )
    db.session.rollback()
    # A key of a transaction rolled back was never taken.
    assert outbox.queue_email("k", "a@x.example", "s", "b", customer_id=None, locale="it", dedupe_key="w-1")
    db.session.rollback()
    assert outbox.queue_email("k", "a@x.example", "s", "b", customer_id=None, locale="it", dedupe_key="w-1")
    db.session.commit()
    assert len(_rows()) == 3


def test_a_new_mail_is_sent_by_its_job_at_once(app, relay, sinks):
    sink = sinks()
    relay.use(sink.port)
    _queue(2)
    outbox.send_queued()
    assert len(sink.wait_for(2)) == 2
    (job,) = db.session.scalars(sa.select(Job)).all()
    assert (job.kind, job.state, job.result, job.customer_id) == ("send_email", "done", {"sent": 2}, None)
    assert job.args == [r.id for r in _rows()]


def test_with_the_job_queue_down_the_mail_waits_for_the_cron(app, relay, sinks, caplog):
    sink = SmtpSink()
    relay.use(sink.port, JOBS_INLINE=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    _queue()
    outbox.send_queued()  # the page goes on: no error
    assert "the cron will send them" in caplog.text
    (row,) = _rows()
    assert (row.state, row.attempts) == ("pending", 0)
    sinks(sink)
    entry.use_app(app)
    try:
        assert entry.send_pending_emails() == 1  # what the cron runs every minute
    finally:
        entry.use_app(None)
    assert [m.subject for m in sink.wait_for(1)] == ["Messaggio 0"]


# The capacity-request mails, through the outbox.


@pytest.fixture
def studio(make):
    c = make.customer("contract", {BM100: 5}, name="Studio Verdi", domain="verdi.example")
    c.contact_email = "segreteria@verdi-contatti.example"
    db.session.commit()
    return c, make.admin(c, "it@verdi.example")


def test_each_mail_is_in_its_reader_language_and_kept_for_the_customer(app, make, relay, sinks, studio):
    sink = sinks()
    relay.use(sink.port)
    c, admin = studio
    english = make.admin(c, "boss@verdi.example")
    db.session.get(User, english.id).locale = "en"
    db.session.commit()
    req = capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=2, note="Due soci"
    ).request
    capacity.decide(make.SYSTEM, req.id, approve=True)
    sink.wait_for(2)
    rows = {r.locale: r for r in _rows()}
    assert set(rows) == {"it", "en"}
    assert rows["it"].to_addresses == "it@verdi.example, segreteria@verdi-contatti.example"
    assert rows["en"].to_addresses == "boss@verdi.example"
    assert rows["it"].subject == "Richiesta al commerciale approvata: Business Mail 100 MB"
    assert rows["en"].subject == "Request to sales approved: Business Mail 100 MB"
    assert rows["it"].body_text.startswith("Buongiorno,\n") and rows["en"].body_text.startswith("Hello,\n")
    assert {r.kind for r in rows.values()} == {"capacity_decided"}
    assert {r.customer_id for r in rows.values()} == {c.id} and {r.state for r in rows.values()} == {"sent"}
    by_subject = {m.subject: m for m in sink.received}
    assert (
        by_subject["Request to sales approved: Business Mail 100 MB"].body.splitlines()
        == rows["en"].body_text.splitlines()
    )


def test_staff_read_a_customer_mails_with_their_fate_and_retry_a_failed_one(
    app, make, relay, sinks, studio, client, auth
):
    c, admin = studio
    other = make.customer("contract", {BM100: 1}, name="Altro")
    sink = sinks(RefusingSink())
    relay.use(sink.port)
    outbox.queue_email("test", "anna@verdi.example", "Benvenuta", "Ciao\n", customer_id=c.id, locale="it")
    refused = outbox.queue_email(
        "test", "nessuno@verdi.example", "Per nessuno", "Ciao\n", customer_id=c.id, locale="it"
    )
    outbox.queue_email("test", "x@altro.example", "Di un altro", "Ciao\n", customer_id=other.id, locale="it")
    db.session.commit()
    outbox.send_queued()
    sink.wait_for(2)

    auth.login(make.staff().email)
    page = client.get(f"/admin/customers/{c.id}").get_data(as_text=True)
    card = page[page.index('id="outbox"') :]
    rows = dict(re.findall(r'<tr id="outbox-(\d+)">(.*?)</tr>', card, re.S))
    assert len(rows) == 2
    sent_row = next(row for row in rows.values() if "Benvenuta" in row)
    assert "anna@verdi.example" in sent_row and "Inviata" in sent_row and "Riprova" not in sent_row
    failed_row = rows[str(refused.id)]
    assert "Non inviata" in failed_row and "550 5.1.1 Utente sconosciuto" in failed_row
    assert "Riprova" in failed_row and "Di un altro" not in card

    # The relay now takes it: staff retry it, and it leaves.
    retry_url = f"/admin/customers/{c.id}/outbox/{refused.id}/retry"
    assert client.post(retry_url, csrf=False).status_code == 400
    good = sinks()
    relay.use(good.port)
    answer = client.post(retry_url, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "Email «Per nessuno» inviata." in html and html.count("Riprova") == 0
    assert [m.envelope_to for m in good.wait_for(1)] == [["nessuno@verdi.example"]]
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "outbox.retry"))
    assert event.customer_id == c.id and event.changes == {"status": ["failed", "pending"]}
    audit_page = client.get(f"/admin/audit?customer_id={c.id}").get_data(as_text=True)
    assert "Email rimessa in coda" in audit_page
    # Only a failed mail can be retried; another customer's mail is not found from this page.
    again = client.post(retry_url, headers={"HX-Request": "true"})
    assert again.status_code == 409 and "non c&#39;è niente da riprovare" in again.get_data(as_text=True)
    foreign = db.session.scalar(sa.select(Outbox.id).where(Outbox.customer_id == other.id))
    assert client.post(f"/admin/customers/{c.id}/outbox/{foreign}/retry").status_code == 404


def test_a_customer_admin_cannot_read_or_retry_the_outbox(app, make, relay, studio, client, auth):
    c, admin = studio
    relay.use(None)
    (row,) = _queue(customer_id=c.id)
    db.session.execute(sa.update(Outbox).values(state="failed"))
    db.session.commit()
    auth.login(admin.email)
    page = client.get(f"/admin/customers/{c.id}")
    assert page.status_code == 404 and "Messaggio 0" not in page.get_data(as_text=True)
    assert client.post(f"/admin/customers/{c.id}/outbox/{row.id}/retry").status_code == 404
    assert _rows()[0].state == "failed"
    assert "Messaggio 0" not in client.get(f"/customers/{c.id}/").get_data(as_text=True)


def test_a_decision_stands_and_its_mail_waits_when_the_relay_is_down(app, make, relay, studio):
    c, admin = studio
    relay.use(free_port())
    req = capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class=BM100, extra_accounts=1, note="Uno"
    ).request
    decided = capacity.decide(make.SYSTEM, req.id, approve=False, reason="Non ora")
    assert decided.status == "rejected"
    (row,) = _rows()
    assert (row.state, row.kind, row.attempts) == ("pending", "capacity_decided", 1)
    assert "non raggiungibile" in row.last_error
    (job,) = db.session.scalars(sa.select(Job)).all()
    assert job.state == "failed" and "coda d'uscita" in job.message
    assert db.session.get(CapacityRequest, req.id).status == "rejected"


def test_a_mail_cannot_carry_extra_headers(app, relay, sinks):
    sink = sinks()
    relay.use(sink.port)
    with pytest.raises(ValueError):
        outbox.queue_email("t", "a@x.example\nBcc: b@y.example", "s", "b", customer_id=None, locale="it")
    outbox.queue_email("t", "a@x.example", "Oggetto\r\nBcc: b@y.example", "b", customer_id=None, locale="it")
    db.session.commit()
    outbox.send_queued()
    (mail,) = sink.wait_for(1)
    assert mail.envelope_to == ["a@x.example"] and mail.message["Bcc"] is None
    assert mail.subject == "Oggetto Bcc: b@y.example"
