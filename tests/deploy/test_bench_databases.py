"""The benchmarks' PostgreSQL databases are named per checkout, and dropped after the run."""

from __future__ import annotations

import re
from pathlib import Path

from bench import _postgres
from tests.deploy.conftest import ROOT


def test_two_checkouts_never_share_a_benchmark_database():
    here = _postgres.database_name("panel_bench")
    other = _postgres.database_name("panel_bench", Path("/srv/another-checkout"))
    assert here != other
    assert re.fullmatch(r"panel_bench_[0-9a-f]{8}", here) and here == _postgres.database_name("panel_bench")


def test_every_benchmark_creates_and_drops_its_database_through_the_helper():
    for script in sorted((ROOT / "bench").glob("[!_]*.py")):
        text = script.read_text()
        assert "CREATE DATABASE" not in text, script.name
        if "psycopg" in text:
            assert "fresh_database(" in text and "drop_database(" in text, script.name
