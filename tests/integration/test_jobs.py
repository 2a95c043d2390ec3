"""Jobs with rows, run by real workers on a real Redis: progress, cancel between steps, a worker
killed with SIGKILL found by the sweep and its job retried, a failure told without its details."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob

from app import jobs as entry
from app.extensions import db
from app.models import Job, Outbox
from app.services import jobs
from app.services.access import Actor
from tests import factories
from tests.integration import loop_jobs  # noqa: F401  (registers the test kinds)
from tests.integration.conftest import REDIS_URL
from tests.integration.test_supervision import ROOT, kill_all, panel_env, wait_for

pytestmark = pytest.mark.integration

SYSTEM = Actor.system("prove", via="job")


@pytest.fixture
def queues(app, connection):
    """The app enqueues on the test's Redis; a job silent for 2 s is taken for dead."""
    saved = {k: app.config[k] for k in ("REDIS_URL", "JOB_STALE_SECONDS")}
    app.config.update(REDIS_URL=REDIS_URL, JOB_STALE_SECONDS=2.0)
    yield connection
    app.config.update(saved)


def fresh(job_id: int) -> Job:
    """The row as the database has it now (a worker in another process writes it)."""
    db.session.expire_all()
    row = db.session.get(Job, job_id)
    db.session.commit()  # ends the read, so SQLite's writer is never kept waiting
    return row


class WorkerProcess:
    """`python worker.py` on the test's database and Redis, beating a job's heartbeat every 0.2 s."""

    def __init__(self, tmp_path, database_url: str, *args: str, **settings: str):
        import psutil

        env = panel_env(tmp_path, REDIS_URL)
        env.update(DATABASE_URL=database_url, JOB_HEARTBEAT_SECONDS="0.2", **settings)
        self.log = open(tmp_path / f"worker-{time.monotonic_ns()}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "worker.py", *args], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.process = psutil.Process(self.proc.pid)
        self.family = [self.process]

    def kill(self) -> None:
        self.family += self.process.children(recursive=True)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        kill_all(self.family)
        self.log.close()


@pytest.fixture
def workers(tmp_path, database_url):
    started: list[WorkerProcess] = []

    def start(*args: str, **settings: str) -> WorkerProcess:
        started.append(WorkerProcess(tmp_path, database_url, *args, **settings))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


def test_a_job_killed_with_its_worker_is_failed_by_the_sweep_and_retried_to_the_end(
    queues, workers, client, auth
):
    job = jobs.enqueue(SYSTEM, "test_count", args=[40, 100])
    assert job.queue == "bulk"
    worker = workers()
    wait_for(lambda: fresh(job.id).state == "running" and fresh(job.id).done >= 2, 60, "the job's progress")

    worker.kill()
    done_when_killed = fresh(job.id).done
    # Just killed, its heartbeat is still fresh: the sweep does not call it dead yet.
    assert jobs.sweep_stale_jobs() == [] and fresh(job.id).state == "running"
    time.sleep(1)
    assert fresh(job.id).done == done_when_killed, "nothing goes on writing for a dead worker"

    time.sleep(1.5)  # the heartbeat is now older than JOB_STALE_SECONDS
    (retry,) = jobs.sweep_stale_jobs()
    old = fresh(job.id)
    assert old.state == "failed" and old.finished_at is not None
    assert old.message == (
        "Interrotto: il worker che lo eseguiva si è fermato. Avviato un nuovo tentativo (2 di 3)."
    )
    retry = fresh(retry.id)
    assert (retry.state, retry.attempt, retry.retry_of, retry.args) == ("queued", 2, job.id, [40, 100])
    assert jobs.sweep_stale_jobs() == []  # a second sweep finds nothing more to do

    # The staff page of the old job shows that it failed and follows its retry.
    auth.login(factories.staff().email)
    page = client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert "Interrotto: il worker che lo eseguiva si è fermato." in page
    assert f'id="job-{retry.id}"' in page and "In coda" in page

    workers()  # a new worker (a restarted machine) runs the retry to the end
    wait_for(lambda: fresh(retry.id).state == "done", 60, "the retry to finish")
    retry = fresh(retry.id)
    assert (retry.done, retry.total, retry.result) == (40, 40, {"counted": 40})
    final = client.get(f"/admin/jobs/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Completato" in final and "40 di 40 (100%)" in final and "hx-trigger" not in final


def test_a_long_step_without_progress_is_kept_alive_by_the_heartbeat(queues, workers, app):
    # Silent for 4 s is dead here: 20 heartbeats (0.2 s), so a loaded machine that delays a
    # few of them does not make a live job look dead.
    app.config["JOB_STALE_SECONDS"] = 4.0
    job = jobs.enqueue(SYSTEM, "test_count", args=[1, 8000])
    workers()
    wait_for(lambda: fresh(job.id).state == "running", 60, "the job to start")
    time.sleep(5)  # longer than JOB_STALE_SECONDS, with no progress reported meanwhile
    assert fresh(job.id).done == 0 and fresh(job.id).state == "running"
    assert jobs.sweep_stale_jobs() == []
    wait_for(lambda: fresh(job.id).state == "done", 30, "the job to finish")


def test_the_retries_stop_after_three_attempts(queues, app):
    first = jobs.enqueue(SYSTEM, "test_count", args=[5, 10])
    current = first
    for attempt in (1, 2, 3):
        # As a worker that took the job and died at once: running, a heartbeat long past.
        past = current.created_at.replace(year=2020)
        db.session.execute(
            sa.update(Job)
            .where(Job.id == current.id)
            .values(state="running", started_at=past, heartbeat_at=past)
        )
        db.session.commit()
        retries = jobs.sweep_stale_jobs()
        if attempt < 3:
            (current,) = retries
            assert current.attempt == attempt + 1
    assert retries == []
    assert fresh(current.id).message == (
        "Interrotto: il worker che lo eseguiva si è fermato. Nessun altro tentativo automatico."
    )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 3


def test_a_queued_job_whose_rq_job_was_lost_is_retried(queues, app):
    job = jobs.enqueue(SYSTEM, "test_count", args=[5, 10])
    queues.flushdb()  # Redis lost its data (restarted without persistence)
    assert jobs.sweep_stale_jobs() == []  # just queued: it may still be on its way
    db.session.execute(
        sa.update(Job).where(Job.id == job.id).values(created_at=job.created_at.replace(year=2020))
    )
    db.session.commit()
    (retry,) = jobs.sweep_stale_jobs()
    assert fresh(job.id).state == "failed" and retry.retry_of == job.id
    assert Queue("bulk", connection=queues).job_ids == [retry.rq_id]


def test_a_cancel_stops_a_running_job_between_steps(queues, workers):
    job = jobs.enqueue(SYSTEM, "test_count", args=[300, 50])
    workers("--queues", "bulk")
    wait_for(lambda: fresh(job.id).done >= 3, 60, "the job's progress")

    jobs.cancel(SYSTEM, job.id)
    wait_for(lambda: fresh(job.id).state == "cancelled", 30, "the job to stop")
    stopped = fresh(job.id)
    assert 3 <= stopped.done < 300 and stopped.result is None
    assert stopped.message == "Annullato su richiesta."
    time.sleep(0.5)
    assert fresh(job.id).done == stopped.done


def test_a_queued_job_cancelled_is_taken_off_its_queue_and_never_runs(queues, app):
    job = jobs.enqueue(SYSTEM, "test_count", args=[5, 10])
    queue = Queue("bulk", connection=queues)
    assert queue.count == 1
    cancelled = jobs.cancel(SYSTEM, job.id)
    assert cancelled.state == "cancelled" and cancelled.message == "Annullato prima di iniziare."
    assert queue.count == 0
    # Even a worker that still had it would not run it: the row is no longer queued.
    entry.use_app(app)
    try:
        assert loop_jobs.count_slowly(job.id) is None
    finally:
        entry.use_app(None)
    assert fresh(job.id).started_at is None


def test_an_unexpected_error_fails_the_job_with_a_message_for_people_and_rq_keeps_the_details(
    queues, worker_app
):
    job = jobs.enqueue(SYSTEM, "test_boom")
    SimpleWorker([Queue("default", connection=queues)], connection=queues).work(burst=True)
    failed = fresh(job.id)
    assert failed.state == "failed"
    assert (
        failed.message == "Non riuscito per un errore imprevisto: il supporto tecnico può vederne i dettagli."
    )
    assert "hunter2" not in failed.message
    rq_job = RQJob.fetch(job.rq_id, connection=queues)
    assert rq_job.get_status() == "failed" and "RuntimeError" in rq_job.latest_result().exc_string


def test_arguments_are_ids_and_short_codes_only(queues, app):
    for bad in ([{"password": "x"}], ["x" * 65], [1.5], [True], [b"bytes"]):
        with pytest.raises(ValueError):
            jobs.enqueue(SYSTEM, "test_count", args=bad)
    with pytest.raises(ValueError):
        jobs.enqueue(SYSTEM, "no_such_kind")
    with pytest.raises(ValueError):
        jobs.enqueue(SYSTEM, "test_count", queue="urgente", args=[1, 1])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 0


def test_the_worker_refuses_an_unknown_queue_and_serves_billing_first():
    refused = subprocess.run(
        [sys.executable, "worker.py", "--queues", "default,fatture"], cwd=ROOT, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "unknown queue(s): fatture" in refused.stderr
    assert entry.QUEUES[0] == "billing" and entry.QUEUES.index("migration") > entry.QUEUES.index("default")


def test_capacity_request_mails_are_sent_by_a_real_worker_with_the_pages_links(
    queues, workers, client, auth, app
):
    from tests.smtp_sink import SmtpSink

    sink = SmtpSink().start()
    settings = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "SALES_EMAIL": "commerciale@collabra.example",
    }
    saved = {k: app.config[k] for k in settings}
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port, SALES_EMAIL="commerciale@collabra.example")
    try:
        c = factories.customer("contract", {"Business Mail 100 MB": 2}, name="Studio Neri")
        auth.login(factories.admin(c).email)
        asked = client.post(
            f"/customers/{c.id}/capacity-requests",
            data={"service_class": "Business Mail 100 MB", "extra_accounts": "2", "note": "Due stagisti"},
        )
        assert asked.status_code == 303
        assert sink.received == []  # the page did not wait for the relay
        (mail_row,) = db.session.scalars(sa.select(Outbox)).all()
        assert (mail_row.state, mail_row.kind, mail_row.customer_id) == (
            "pending",
            "capacity_requested",
            c.id,
        )
        (job,) = db.session.scalars(sa.select(Job).where(Job.kind == "send_email")).all()
        assert job.state == "queued" and job.customer_id is None
        assert job.args == [mail_row.id]

        workers("--queues", "default", **settings)
        (mail,) = sink.wait_for(1, timeout=60)
        assert mail.envelope_to == ["commerciale@collabra.example"]
        assert "Studio Neri chiede 2 caselle Business Mail 100 MB in più." in mail.body
        assert "Da gestire qui: http://localhost/admin/capacity-requests" in mail.body
        wait_for(lambda: fresh(job.id).state == "done", 30, "the job to be marked done")
        db.session.expire_all()
        assert db.session.get(Outbox, mail_row.id).state == "sent"
    finally:
        app.config.update(saved)
        sink.stop()
