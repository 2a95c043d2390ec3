"""The outbox with real workers: a mail whose relay was down is sent by the cron's function once
the relay is up, and two workers sending at once deliver each mail once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from rq import Queue

from app.extensions import db
from app.models import Job, Outbox
from app.models.base import utcnow
from app.services import outbox
from tests.integration.test_jobs import fresh, queues, workers  # noqa: F401  (fixtures)
from tests.integration.test_supervision import wait_for
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration


class Relay(SmtpSink):
    """A sink whose port is known before anybody listens on it (the relay is down until start())."""

    up = False

    def start(self) -> Relay:
        self.up = True
        return super().start()


@pytest.fixture
def relay(app):
    sink = Relay()
    saved = {k: app.config[k] for k in ("SMTP_HOST", "SMTP_PORT")}
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
    yield sink
    app.config.update(saved)
    if sink.up:
        sink.stop()


def _states() -> list[tuple[str, int]]:
    db.session.expire_all()
    found = [(r.state, r.attempts) for r in db.session.scalars(sa.select(Outbox).order_by(Outbox.id))]
    db.session.commit()
    return found


def test_a_mail_the_relay_missed_is_sent_by_the_cron_in_a_worker_once_the_relay_is_up(
    queues,  # noqa: F811
    workers,  # noqa: F811
    relay,
):
    settings = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(relay.port)}
    outbox.queue_email("test", "anna@verdi.example", "Benvenuta", "Ciao\n", customer_id=None, locale="it")
    db.session.commit()
    outbox.send_queued()
    (job,) = db.session.scalars(sa.select(Job)).all()
    assert job.kind == "send_email"
    workers("--queues", "default", **settings)
    wait_for(lambda: fresh(job.id).state == "failed", 60, "the send job to fail: the relay is down")
    assert _states() == [("pending", 1)]

    relay.start()
    # As if the minute before the next attempt had gone by.
    db.session.execute(sa.update(Outbox).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    # What `rq cron app/cron.py` enqueues every minute.
    Queue("default", connection=queues).enqueue("app.jobs.send_pending_emails")
    (mail,) = relay.wait_for(1, timeout=60)
    assert mail.subject == "Benvenuta" and mail.envelope_to == ["anna@verdi.example"]
    wait_for(lambda: _states() == [("sent", 2)], 30, "the mail to be marked sent")


def test_two_workers_sending_at_once_deliver_each_mail_once(
    queues,  # noqa: F811
    workers,  # noqa: F811
    relay,
):
    relay.start()
    settings = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(relay.port)}
    count = outbox.BATCH * 3
    for i in range(count):
        outbox.queue_email(
            "test", f"u{i}@verdi.example", f"Messaggio {i}", "Ciao\n", customer_id=None, locale="it"
        )
    db.session.commit()
    queue = Queue("default", connection=queues)
    for _ in range(2):
        queue.enqueue("app.jobs.send_pending_emails")
    workers("--queues", "default", **settings)
    workers("--queues", "default", **settings)
    wait_for(lambda: len(relay.received) >= count, 120, "every mail to arrive")
    wait_for(lambda: all(state == "sent" for state, _n in _states()), 30, "every mail to be marked sent")
    subjects = sorted(m.subject for m in relay.wait_for(count + 1, timeout=1))
    assert subjects == sorted(f"Messaggio {i}" for i in range(count))
    assert {n for _state, n in _states()} == {1}
