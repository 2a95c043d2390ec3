"""The English catalogue covers every Italian message of the current tree.

Extraction runs on the working tree (babel.cfg), so a new `_()` string
without an English translation fails here, listed by msgid.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
EN_CATALOG = ROOT / "translations" / "en" / "LC_MESSAGES" / "messages.po"


def _extract(tmp_path: Path):
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract", "-F", "babel.cfg"]
        + ["-k", "_l", "-k", "lazy_gettext", "-o", str(pot), "."],
        cwd=ROOT,
        check=True,
    )
    with pot.open("rb") as fh:
        return read_po(fh)


def _where(message) -> str:
    return ", ".join(f"{path}:{line}" for path, line in message.locations[:2])


def test_english_catalog_translates_every_message(tmp_path):
    extracted = _extract(tmp_path)
    english = None
    if EN_CATALOG.exists():
        with EN_CATALOG.open("rb") as fh:
            english = read_po(fh, locale="en")
    problems = []
    for message in extracted:
        if not message.id:
            continue
        found = english.get(message.id, message.context) if english is not None else None
        strings = found.string if found is not None else None
        if isinstance(strings, tuple | list):
            complete = all(strings)
        else:
            complete = bool(strings)
        if found is None or not complete:
            problems.append(f"missing  {message.id!r}  ({_where(message)})")
        elif found.fuzzy:
            problems.append(f"fuzzy    {message.id!r}  ({_where(message)})")
    if problems:
        pytest.fail(
            f"{len(problems)} message(s) lack an English translation in {EN_CATALOG.relative_to(ROOT)} "
            "(run `make translations`, then translate):\n" + "\n".join(problems),
            pytrace=False,
        )
