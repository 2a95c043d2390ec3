"""RQ worker on the app's queues; with REDIS_URL unset it uses (or starts) the embedded Redis.

Each job runs in a process the worker forks (RQ's work horse, in a process group
of its own). On Linux every process the worker forks is killed when the worker
dies, even by SIGKILL: a job never goes on writing to the database with no
worker to report it; its heartbeat stops, and the stale-job sweep fails and
retries it (app/services/jobs.py).

`python worker.py` serves every queue, in the order of app.jobs.QUEUES
(billing first); `--queues billing,default` serves only those, in that order.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

from rq import Worker

from app.jobs import QUEUES, get_app
from app.redis import get_redis

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_forking_pid: int | None = None


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent() -> None:
    """In the child of a fork: ask the kernel for SIGKILL when the parent exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    # The parent may have died between the fork and the prctl: then nobody would signal us.
    if os.getppid() != _forking_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def die_with_the_worker() -> None:
    """Make every process forked from now on (job work horses, RQ's scheduler) die with its parent."""
    if sys.platform.startswith("linux"):
        os.register_at_fork(before=_before_fork, after_in_child=_die_with_parent)


def parse_queues(argv: list[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description="RQ worker for the panel's queues.")
    parser.add_argument(
        "--queues",
        default=",".join(QUEUES),
        help=f"comma-separated queues, in the order served (default: {','.join(QUEUES)})",
    )
    names = [n.strip() for n in parser.parse_args(argv).queues.split(",") if n.strip()]
    unknown = [n for n in names if n not in QUEUES]
    if unknown or not names:
        # argparse's error: the message on stderr, exit status 2.
        parser.error(f"unknown queue(s): {', '.join(unknown) or '(none given)'}; known: {', '.join(QUEUES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    queues = parse_queues(argv)
    # Created before the work loop so every forked job inherits one app.
    get_app()
    die_with_the_worker()
    worker = Worker(queues, connection=get_redis())
    # The scheduler runs delayed jobs and retries with intervals (enqueue_in, Retry).
    worker.work(with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
