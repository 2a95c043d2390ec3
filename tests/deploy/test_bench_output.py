"""Each benchmark prints each of its figures once: run with the smallest settings they take.

billing.py, list_pages.py and imap_login.py run for real (PostgreSQL; imap_login.py also
Dovecot and root), imap_copy.py with our copy only (Dovecot and root), dns_checks.py against its local DNS server (SQLite), as `make bench` runs
them, only smaller; the whole takes about 55 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from tests.conftest import CI, PG_ADMIN_URL, _pg_available
from tests.deploy.conftest import ROOT

# (script, its smallest settings: the least its loading and its tables allow)
RUNS = {
    "billing.py": {"BENCH_SIZES": "20", "BENCH_DAYS": "1"},  # 20 mailboxes: one customer
    "list_pages.py": {"BENCH_SIZES": "20", "BENCH_REQUESTS": "1"},
    "imap_login.py": {"BENCH_MAILBOXES": "20", "BENCH_LOGINS": "2"},
    "dns_checks.py": {},
    "imap_copy.py": {},
}
# The options of the benchmarks that take them (the others read the environment).
ARGS = {
    "dns_checks.py": ["--domains", "40", "--sample", "10", "--delay", "0.005"],
    # Our copy only: mbsync and doveadm over imapc are not needed here.
    "imap_copy.py": ["--messages", "20", "--tools", "ours", "--delay-ms", "2"],
}
POSTGRES = {"billing.py", "list_pages.py", "imap_login.py"}
# A measured figure: a number with decimals (a time, a ratio, megabytes).
FIGURE = re.compile(r"\d\.\d")


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def figure_lines(output: str) -> list[tuple[str, str]]:
    """(heading, line) of every line holding a figure; the heading is the last line at the margin.

    A table printed twice repeats its heading and rows; two tables (SQLite, PostgreSQL) with
    the same row names are told apart by their headings.
    """
    heading, found = "", []
    for line in output.splitlines():
        if not line.strip() or set(line.strip()) <= {"-"}:
            continue
        if not line[0].isspace() and not FIGURE.search(line.split("|")[0]):
            heading = line
        if FIGURE.search(line):
            found.append((heading, line.rstrip()))
    return found


def test_figure_lines_finds_a_table_printed_twice():
    table = "SQLite (median / p95 ms)        1k\n  list, first page   3.1 /  4.0\n  dashboard   2.0 /  2.2\n"
    assert len(figure_lines(table)) == 2
    assert [n for n in Counter(figure_lines(table + table)).values() if n > 1] == [1 + 1, 1 + 1]
    other = table.replace("SQLite", "PostgreSQL")
    assert max(Counter(figure_lines(table + other)).values()) == 1


@pytest.mark.parametrize("script", sorted(RUNS))
def test_each_benchmark_figure_is_printed_once(script):
    problem = _pg_available() if script in POSTGRES else None
    if problem:
        _unavailable(f"PostgreSQL unreachable: {problem}")
    if script in ("imap_login.py", "imap_copy.py") and (
        os.geteuid() != 0 or not shutil.which("dovecot", path="/usr/sbin:/usr/bin")
    ):
        _unavailable(f"{script} needs root and Dovecot (scripts/install-mailservers.sh)")
    env = {**os.environ, "BENCH_POSTGRES_URL": PG_ADMIN_URL, **RUNS[script]}
    env.pop("BENCH_PROFILE", None)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *ARGS.get(script, [])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "not measured" not in result.stdout, result.stdout
    lines = figure_lines(result.stdout)
    assert len(lines) >= 2, result.stdout
    twice = [line for (_heading, line), n in Counter(lines).items() if n > 1]
    assert twice == [], result.stdout
