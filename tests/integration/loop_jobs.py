"""Jobs for tests/integration/test_supervision.py, run by a real `python worker.py`."""

from __future__ import annotations

import os
import sqlite3
import time


def write_forever(path: str) -> None:
    """Insert a row every 20 ms, each committed, with the writing process's id, until killed."""
    conn = sqlite3.connect(path, timeout=10)
    conn.execute("CREATE TABLE IF NOT EXISTS writes (pid INTEGER, at REAL)")
    while True:
        conn.execute("INSERT INTO writes VALUES (?, ?)", (os.getpid(), time.time()))
        conn.commit()
        time.sleep(0.02)


# Jobs with a row (app.jobs.job), for tests/integration/test_jobs.py.

from app.jobs import job  # noqa: E402


@job("test_count", queue="bulk")
def count_slowly(ctx, steps: int, pause_ms: int) -> dict:
    """`steps` steps of `pause_ms` each, reporting progress and honouring a cancel between steps."""
    for step in range(steps):
        ctx.raise_if_cancelled()
        ctx.progress(step, steps, f"Passo {step + 1} di {steps}")
        time.sleep(pause_ms / 1000)
    ctx.progress(steps, steps, "Fatto")
    return {"counted": steps}


@job("test_boom")
def fail_with_a_secret(ctx) -> None:
    raise RuntimeError("cannot connect to postgresql://panel:hunter2@db.internal/panel")
