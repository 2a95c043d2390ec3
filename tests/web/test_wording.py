"""One word per thing and one date format per language, everywhere.

Regression: "Richieste al commerciale" (customers) and "Richieste di capacità"
(staff) named one page, "Respinta" and "Rifiutata" one outcome, and templates wrote dates in
three formats (dd/MM/yyyy, Babel's "short", Babel's default).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask_babel import force_locale

from app.services import capacity, labels

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCES = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("app/**/*.py")]


def _hits(pattern: str, exclude: tuple[str, ...] = ()) -> list[str]:
    out = []
    for path in SOURCES:
        if path.name in exclude:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(pattern, line):
                out.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    return out


def test_dates_are_written_only_through_the_when_filter():
    assert _hits(r"datetimeformat|\|dateformat|strftime|format_date(time)?\(", exclude=("labels.py",)) == []


@pytest.mark.parametrize("word", ["Richieste di capacità", "Richiesta di capacità", "Respinta"])
def test_one_word_per_thing(word):
    assert _hits(re.escape(word)) == []


def test_one_date_format_per_language(app):
    summer = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # 00:30 on 2 July in Rome
    with app.test_request_context():
        with force_locale("it"):
            assert labels.when(summer) == "02/07/2026 00:30"
            assert labels.when(summer, "date") == "02/07/2026"
            assert labels.when(summer, "datetime_seconds") == "02/07/2026 00:30:00"
            assert labels.when(date(2026, 1, 5)) == "05/01/2026"
        with force_locale("en"):
            assert labels.when(summer) == "2 Jul 2026 00:30"
            assert labels.when(date(2026, 1, 5), "datetime") == "5 Jan 2026"
    assert labels.when(None) == ""


def test_pages_write_dates_in_the_one_format(client, auth, make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    admin = make.admin(c)
    capacity.request_capacity(
        make.SYSTEM, c.id, service_class="Business Mail 100 MB", extra_accounts=1, note="x"
    )
    auth.login(admin.email)
    day = re.compile(r"\b\d{2}/\d{2}/\d{4} \d{2}:\d{2}\b")
    short = re.compile(r"\b\d{1,2}/\d{1,2}/\d{2},")  # Babel's "short": 01/12/26, 15:04
    page = client.get(f"/customers/{c.id}/capacity-requests").get_data(as_text=True)
    assert day.search(page) and not short.search(page)
    auth.logout()
    auth.login(make.staff().email)
    for url in ("/admin/capacity-requests", "/admin/audit"):
        page = client.get(url).get_data(as_text=True)
        assert not short.search(page), url
