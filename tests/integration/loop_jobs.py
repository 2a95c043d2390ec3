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
