"""RQ on a real Redis: a job enqueued by name runs in a real worker, in the app's context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psutil
import pytest
import redis
from rq import Queue, SimpleWorker

from app import jobs
from app.redis import start_embedded

pytestmark = pytest.mark.integration


def test_cron_heartbeat_runs_in_a_real_worker(connection, worker_app):
    queue = Queue(jobs.QUEUES[0], connection=connection)
    job = queue.enqueue("app.jobs.heartbeat")

    SimpleWorker([queue], connection=connection).work(burst=True)

    job.refresh()
    assert job.get_status() == "finished"
    tick = datetime.fromisoformat(connection.get(jobs.CRON_LAST_TICK_KEY).decode())
    assert abs(datetime.now(UTC) - tick) < timedelta(minutes=1)


def test_cron_config_registers_the_heartbeat(connection):
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=connection)
    scheduler.load_config_from_file("app/cron.py")
    registered = {j.func_name: (j.queue_name, j.interval) for j in scheduler.get_jobs()}
    assert registered["app.jobs.heartbeat"] == ("default", 60)


def test_embedded_redis_starts_answers_and_stops(tmp_path):
    server = start_embedded(tmp_path)
    try:
        assert server.url == f"unix://{tmp_path / 'redis.sock'}"
        other = redis.Redis.from_url(server.url)
        assert other.ping()
        other.set("panel:test", "ok")
        assert server.client.get("panel:test") == b"ok"
        other.close()
    finally:
        server.stop()
    assert not psutil.pid_exists(server.pid)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url).ping()
