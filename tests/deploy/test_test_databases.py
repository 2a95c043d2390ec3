"""A test run leaves no PostgreSQL database behind: each process drops its own at the end."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import CI, PG_ADMIN_URL, _pg_available
from tests.deploy.conftest import ROOT

PROBE = """
def test_uses_the_database(app, database_url):
    open({out!r}, "w").write(database_url.rsplit("/", 1)[1])
"""


def databases() -> set[str]:
    with psycopg.connect(PG_ADMIN_URL) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_a_run_drops_its_postgresql_database_at_the_end(tmp_path):
    problem = _pg_available()
    if problem:
        if CI:
            pytest.fail(f"CI=true: PostgreSQL unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    out = tmp_path / "name.txt"
    (tmp_path / "test_probe.py").write_text(PROBE.format(out=str(out)))
    env = {**os.environ, "TEST_DATABASES": "postgresql", "PYTEST_XDIST_WORKER": "dropcheck"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", ROOT, "-c", ROOT / "pytest.ini", tmp_path / "test_probe.py"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    name = out.read_text()
    assert name.startswith("panel_test_") and name.endswith("_dropcheck")
    assert name not in databases()
