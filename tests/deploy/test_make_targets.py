"""Every `make` target is listed by `make help` and in the README."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.conftest import ROOT, tool


def targets() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    defined = set(re.findall(r"^([a-z][a-z-]*):", text, re.M))
    assert set(phony) == defined, "every target is .PHONY and every .PHONY target exists"
    return phony


def test_make_help_lists_every_target():
    result = subprocess.run([tool("make"), "-s", "help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    missing = [t for t in targets() if not re.search(rf"\bmake {re.escape(t)}\b", result.stdout)]
    assert missing == [], result.stdout


def test_the_readme_lists_every_target_and_the_run_variables():
    readme = (ROOT / "README.md").read_text()
    missing = [t for t in targets() if not re.search(rf"\bmake {re.escape(t)}\b", readme)]
    assert missing == []
    assert "RUN_PORT" in readme and "RUN_HOST" in readme
