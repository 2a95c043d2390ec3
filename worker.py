"""RQ worker on the app's queues; with REDIS_URL unset it uses (or starts) the embedded Redis."""

from __future__ import annotations

import sys

from rq import Worker

from app.jobs import QUEUES, get_app
from app.redis import get_redis


def main() -> int:
    # Created before the work loop so every forked job inherits one app.
    get_app()
    worker = Worker(list(QUEUES), connection=get_redis())
    # The scheduler runs delayed jobs and retries with intervals (enqueue_in, Retry).
    worker.work(with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
