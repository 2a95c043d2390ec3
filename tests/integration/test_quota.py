"""Quota usage from the real Dovecot into the panel's bars, the refresh job and button, and what
the pages say when the mail server cannot be reached (a closed port: a real "unreachable").
"""

from __future__ import annotations

import re
import smtplib
import socket
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from app import jobs
from app.extensions import db
from app.models import Job
from app.services import jobs as job_service
from app.services import quota
from app.services.access import Actor
from tests import factories
from tests.factories import PASSWORD
from tests.integration.conftest import REDIS_URL
from tests.integration.mailservers import DOVEADM_API_KEY, HOST

pytestmark = pytest.mark.integration


UNAVAILABLE = "Lettura dello spazio non disponibile: server di posta non raggiungibile"


def closed_port() -> int:
    """A port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@pytest.fixture
def mail(servers, app):
    """The servers, and the app configured to read them (as an operator would, by environment)."""
    wanted = {
        "DOVEADM_URL": servers.doveadm_url,
        "DOVEADM_API_KEY": DOVEADM_API_KEY,
        "QUOTA_READ_TIMEOUT": 20.0,
        "DOVECOT_IMAP_HOST": HOST,
        "DOVECOT_IMAP_PORT": servers.ports["imap"],
        "POSTFIX_SMTP_HOST": HOST,
        "POSTFIX_SMTP_PORT": servers.ports["smtp"],
        "REDIS_URL": REDIS_URL,
    }
    saved = {k: app.config.get(k) for k in wanted}
    app.config.update(wanted)
    yield servers
    app.config.update(saved)


def deliver(mail, to: str, kilobytes: int) -> None:
    """A message of about `kilobytes` KB from the outside world, through Postfix's port 25."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "mittente@esterno.example", to, f"Prova {uuid.uuid4().hex[:8]}"
    msg.set_content(("x" * 99 + "\n") * (kilobytes * 1024 // 100))
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20) as smtp:
        smtp.send_message(msg)


def dovecot_storage_kb(mail, address: str) -> int:
    """What Dovecot itself says over IMAP (GETQUOTAROOT, in KiB): the figure the bar must show."""
    imap = mail.imap(address, PASSWORD)
    try:
        _, data = imap.getquotaroot("INBOX")
    finally:
        imap.logout()
    found = re.search(rb"\(STORAGE (\d+) (\d+)\)", b" ".join(x for part in data for x in part))
    assert found, data
    return int(found.group(1))


def mailbox_with_mail(mail, domain: str, kilobytes: int = 300):
    c = factories.customer(domain=domain)
    box = factories.mailbox(c, "anna")
    empty = factories.mailbox(c, "bruno")
    deliver(mail, box.address, kilobytes)
    mail.wait_stored(box.address, 1)
    return c, box, empty


def list_page(client, customer_id: int) -> str:
    response = client.get(f"/customers/{customer_id}/mailboxes")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def row(html: str, mailbox_id: int) -> str:
    found = re.search(rf'<tr id="mailbox-{mailbox_id}".*?</tr>', html, re.S)
    assert found, f"no row for mailbox {mailbox_id}"
    return found.group(0)


def test_after_a_message_arrives_a_refresh_shows_dovecots_real_usage_in_the_bar(mail, client, auth):
    c, box, empty = mailbox_with_mail(mail, "spazio.example")
    auth.login(factories.admin(c).email)
    assert "non ancora letto" in row(list_page(client, c.id), box.id)

    state = quota.refresh_usage()
    assert not state.failed and state.mailboxes_read >= 2, state

    kb = dovecot_storage_kb(mail, box.address)
    assert 300 <= kb < 320, kb  # the body, its headers, and CRLF line ends
    html = list_page(client, c.id)
    assert f"{kb} KB di 100 MB · 0%" in row(html, box.id)
    assert "0 KB di 100 MB · 0%" in row(html, empty.id)
    assert re.search(r"Spazio occupato aggiornato alle \d\d:\d\d\.", html)
    assert UNAVAILABLE not in html

    page = client.get(f"/customers/{c.id}/mailboxes/{box.id}").get_data(as_text=True)
    assert f"{kb} KB di 100 MB · 0%" in page
    assert re.search(r"1 messaggio · aggiornato alle \d\d:\d\d", page)


def test_a_mailbox_over_90_percent_gets_the_warning_colour(mail, client, auth):
    c = factories.customer(domain="quasipiena.example")
    box = factories.mailbox(c, "carla")
    # 95 MB in a 100 MB mailbox, appended over IMAP (Postfix takes at most 29 MB a message).
    imap = mail.imap(box.address, PASSWORD)
    try:
        for _ in range(5):
            payload = b"Subject: allegato\r\n\r\n" + (b"y" * 1022 + b"\r\n") * (19 * 1024)
            assert imap.append("INBOX", None, None, payload)[0] == "OK"
    finally:
        imap.logout()
    quota.refresh_usage()
    auth.login(factories.admin(c).email)
    cells = row(list_page(client, c.id), box.id)
    assert "95 MB di 100 MB · 95%" in cells
    assert 'class="usage-meter nearly-full"' in cells and 'class="bar full"' in cells


def test_with_dovecot_unreachable_the_page_says_so_and_still_lists_the_mailboxes(mail, client, app, auth):
    c, box, empty = mailbox_with_mail(mail, "irraggiungibile.example")
    auth.login(factories.admin(c).email)
    app.config["DOVEADM_URL"] = f"http://{HOST}:{closed_port()}/doveadm/v1"

    state = quota.refresh_usage()  # never raises: the failure is recorded
    assert state.failed and state.last_success_at is None
    html = list_page(client, c.id)
    assert UNAVAILABLE in html and "Non c'è ancora nessuna lettura riuscita." in html
    assert html.count('<tr id="mailbox-') == 2 and "non ancora letto" in row(html, box.id)

    # A good reading, then Dovecot goes away again: the bars keep the last good reading, with its time.
    app.config["DOVEADM_URL"] = mail.doveadm_url
    good = quota.refresh_usage()
    kb = dovecot_storage_kb(mail, box.address)
    app.config["DOVEADM_URL"] = f"http://{HOST}:{closed_port()}/doveadm/v1"
    assert quota.refresh_usage().failed
    html = list_page(client, c.id)
    assert UNAVAILABLE in html
    assert re.search(r"Ultima lettura riuscita: \d\d:\d\d\. Le barre mostrano quella\.", html)
    assert f"{kb} KB di 100 MB" in row(html, box.id)
    assert quota.refresh_state().last_success_at == good.last_success_at
    page = client.get(f"/customers/{c.id}/mailboxes/{box.id}")
    assert page.status_code == 200 and UNAVAILABLE in page.get_data(as_text=True)


def test_a_wrong_api_key_is_a_failed_reading_not_an_error_page(mail, client, app, auth):
    c, box, _ = mailbox_with_mail(mail, "chiave.example")
    app.config["DOVEADM_API_KEY"] = "chiave-sbagliata"
    app.config["QUOTA_READ_TIMEOUT"] = 3.0
    state = quota.refresh_usage()
    assert state.failed, state
    auth.login(factories.admin(c).email)
    assert UNAVAILABLE in list_page(client, c.id)


def run_default_queue(connection) -> None:
    SimpleWorker([Queue(jobs.DEFAULT_QUEUE, connection=connection)], connection=connection).work(burst=True)


def test_the_refresh_job_runs_in_a_real_worker(mail, connection, worker_app, client, auth):
    c, box, _ = mailbox_with_mail(mail, "lavoro.example")
    job = job_service.enqueue(Actor.system("cron", via="job"), "quota_refresh")
    assert (job.state, job.customer_id, job.queue) == ("queued", None, "default")

    run_default_queue(connection)

    db.session.refresh(job)
    assert job.state == "done", job.message
    assert job.result["mailboxes_read"] >= 2 and job.started_at <= job.finished_at
    auth.login(factories.admin(c).email)
    assert f"{dovecot_storage_kb(mail, box.address)} KB di 100 MB" in row(list_page(client, c.id), box.id)


def test_a_refresh_with_dovecot_unreachable_is_a_failed_job_that_says_why(mail, connection, worker_app, app):
    app.config["DOVEADM_URL"] = f"http://{HOST}:{closed_port()}/doveadm/v1"
    job = job_service.enqueue(Actor.system("cron", via="job"), "quota_refresh")
    run_default_queue(connection)
    db.session.refresh(job)
    assert job.state == "failed"
    assert job.message == "Lettura dello spazio non riuscita: server di posta non raggiungibile."
    assert quota.refresh_state().failed  # recorded for the pages, as every failed reading


def test_the_cron_schedules_the_refresh_every_15_minutes(connection, worker_app):
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=connection)
    scheduler.load_config_from_file("app/cron.py")
    jobs_by_name = {j.func_name: j for j in scheduler.get_jobs()}
    assert jobs_by_name["app.jobs.schedule_quota_refresh"].interval == 15 * 60
    assert jobs_by_name["app.jobs.sweep_stale_jobs"].interval == 60

    # What it enqueues: one provider-wide refresh job, not a second while the first waits.
    worker_app.config["REDIS_URL"] = REDIS_URL
    first, again = jobs.schedule_quota_refresh(), jobs.schedule_quota_refresh()
    assert first == again
    assert db.session.get(Job, first).kind == "quota_refresh"
    assert Queue(jobs.DEFAULT_QUEUE, connection=connection).count == 1


def job_poll_url(html: str) -> str:
    found = re.search(r'<div class="job [^"]*" id="job-\d+" hx-get="([^"]+)" hx-trigger="every 2s"', html)
    assert found, html
    return found.group(1).replace("&amp;", "&")


def test_the_button_queues_a_refresh_and_the_partial_polls_until_the_job_ends(
    mail, connection, worker_app, client, auth
):
    c, box, _ = mailbox_with_mail(mail, "bottone.example")
    auth.login(factories.admin(c).email)
    assert "Aggiorna spazio occupato" in list_page(client, c.id)

    htmx = {"HX-Request": "true"}
    response = client.post(f"/customers/{c.id}/mailboxes/usage/refresh", headers=htmx)
    assert response.status_code == 200
    polling = response.get_data(as_text=True)
    assert "In coda" in polling and "Aggiornamento dello spazio occupato" in polling
    assert "Aggiorna spazio occupato</button>" not in polling  # no second button while it runs
    poll_url = job_poll_url(polling)

    # No worker yet: still polling, on the partial and on the reloaded list page.
    assert 'hx-trigger="every 2s"' in client.get(poll_url, headers=htmx).get_data(as_text=True)
    assert job_poll_url(list_page(client, c.id)) == poll_url
    # A second click while one is queued adds no second job.
    client.post(f"/customers/{c.id}/mailboxes/usage/refresh", headers=htmx)
    assert Queue(jobs.DEFAULT_QUEUE, connection=connection).count == 1

    run_default_queue(connection)

    final = client.get(poll_url, headers=htmx)
    text = final.get_data(as_text=True)
    assert "hx-trigger" not in text  # the final state stops the polling
    assert "Completato" in text and re.search(r"Spazio occupato aggiornato alle \d\d:\d\d\.", text)
    assert final.headers["HX-Trigger"] == "mailboxes-changed"  # the list and the refresh line reload
    line = client.get(f"/customers/{c.id}/mailboxes/usage/status", headers=htmx).get_data(as_text=True)
    assert "Aggiorna spazio occupato</button>" in line and "every 2s" not in line
    assert f"{dovecot_storage_kb(mail, box.address)} KB di 100 MB" in row(list_page(client, c.id), box.id)


def test_the_button_without_javascript_redirects_back_to_the_list(mail, connection, client, auth):
    c = factories.customer(domain="senzajs.example")
    auth.login(factories.admin(c).email)
    response = client.post(f"/customers/{c.id}/mailboxes/usage/refresh")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Aggiornamento dello spazio occupato avviato" in page
    # The running job is on the page, with a plain link to reload it.
    assert re.search(rf'<a href="/customers/{c.id}/mailboxes">Aggiorna lo stato</a>', page)
    assert Queue(jobs.DEFAULT_QUEUE, connection=connection).count == 1


def test_the_button_says_so_when_the_job_queue_is_unreachable(mail, client, app, auth):
    c = factories.customer(domain="senzacoda.example")
    auth.login(factories.admin(c).email)
    app.config["REDIS_URL"] = f"redis://{HOST}:{closed_port()}/0"
    response = client.post(f"/customers/{c.id}/mailboxes/usage/refresh", headers={"HX-Request": "true"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "la coda dei lavori non è raggiungibile" in text and "every 2s" not in text
    assert "Aggiorna spazio occupato</button>" in text  # nothing is running: the button is back
    (job,) = db.session.scalars(sa.select(Job)).all()
    assert job.state == "failed" and "non è raggiungibile" in job.message  # not left queued
    assert client.post(f"/customers/{c.id}/mailboxes/usage/refresh", csrf=False).status_code == 400


def test_a_job_nobody_takes_keeps_polling_and_says_so_and_odd_parameters_are_no_error(
    mail, connection, client, auth
):
    c = factories.customer(domain="attesa.example")
    auth.login(factories.admin(c).email)
    client.post(f"/customers/{c.id}/mailboxes/usage/refresh")
    (job,) = db.session.scalars(sa.select(Job)).all()
    db.session.execute(
        sa.update(Job).where(Job.id == job.id).values(created_at=job.created_at - timedelta(minutes=3))
    )
    db.session.commit()
    url = f"/customers/{c.id}/jobs/{job.id}"
    waiting = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in waiting and "in attesa da più di due minuti" in waiting
    for junk in ({"since": "ieri", "requested": "x"}, {}):
        assert client.get(url, query_string=junk).status_code == 200
    assert client.get(url, query_string={"since": "\x00"}).status_code == 422  # refused for every page
    other = factories.customer(domain="altro.example")
    assert client.get(f"/customers/{other.id}/mailboxes/usage/status").status_code == 404
    assert client.post(f"/customers/{other.id}/mailboxes/usage/refresh").status_code == 404
    assert client.get(f"/customers/{other.id}/jobs/{job.id}").status_code == 404


# --- the staff health page ------------------------------------------------------------------------


def check_row(html: str, name: str) -> str:
    found = re.search(rf'<tr id="check-{name}">.*?</tr>', html, re.S)
    assert found, f"no {name} row"
    return found.group(0)


def test_health_page_shows_every_component_up(mail, connection, client, auth):
    from rq import Worker

    quota.refresh_usage()
    connection.set(jobs.CRON_LAST_TICK_KEY, "2026-11-28T10:42:00+00:00")
    worker = Worker([jobs.DEFAULT_QUEUE], connection=connection, name=f"salute-{uuid.uuid4().hex[:6]}")
    worker.register_birth()
    try:
        auth.login(factories.staff().email)
        started = time.monotonic()
        response = client.get("/admin/health")
        assert time.monotonic() - started < 5
    finally:
        worker.register_death()
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Tutti i componenti rispondono." in html
    for name in ("database", "redis", "dovecot", "doveadm", "postfix", "workers"):
        assert "Raggiungibile" in check_row(html, name), check_row(html, name)
    assert "* OK" in check_row(html, "dovecot") and "220" in check_row(html, "postfix")
    assert "28/11/2026 11:42:00" in html  # the cron's last tick, in Rome's time
    assert re.search(r"riuscito il \d\d/\d\d/\d{4} [\d:]+: \d+ caselle", html)
    assert re.search(
        r'<th scope="row">default</th><td [^>]*class="num">0</td><td [^>]*class="num">0</td>', html
    )
    assert re.search(r'<dd id="job-counts">\s*0 in coda, 0 in corso, 0 falliti nelle ultime 24 ore', html)
    assert 'href="/admin/health"' in html  # in the staff navigation


def test_health_page_says_which_component_is_down_without_hanging(mail, client, app, auth):
    auth.login(factories.staff().email)
    app.config.update(
        DOVECOT_IMAP_PORT=closed_port(),
        POSTFIX_SMTP_PORT=closed_port(),
        DOVEADM_URL=f"http://{HOST}:{closed_port()}/doveadm/v1",
        REDIS_URL=f"redis://{HOST}:{closed_port()}/0",
    )
    quota.refresh_usage()
    started = time.monotonic()
    response = client.get("/admin/health")
    assert time.monotonic() - started < 10
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Raggiungibile" in check_row(html, "database")
    for name in ("redis", "dovecot", "doveadm", "postfix", "workers"):
        assert "Non raggiungibile" in check_row(html, name), check_row(html, name)
    assert "Da controllare:" in html and "Dovecot (IMAP)" in html
    assert "Ultimo tentativo fallito" in html and "doveadm unreachable" in html
    assert "Code non leggibili: Redis non è raggiungibile." in html


def test_health_page_is_for_staff_only(mail, client, auth):
    c = factories.customer()
    auth.login(factories.admin(c).email)
    assert client.get("/admin/health").status_code == 404
