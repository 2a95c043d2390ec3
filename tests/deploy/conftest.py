"""Checks of the files under deploy/: nginx, systemd and PostgreSQL read them as an operator would.

scripts/install-deploy-tools.sh (run by `make test`) installs the tools as root on Debian.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import CI

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    """The path of a command-line tool; missing: a skip, or a failure under CI=true."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (scripts/install-deploy-tools.sh installs it as root on Debian)"
        if CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return path
