"""The point account's pages: the customer's "Conto Collabra" (balance, charts, days, exports) and the
staff overview of every Pay-per-Use account."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import date
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import User
from app.services import billing, clock, hold
from tests.billingkit import created, ledger_checked, rome, timeline  # noqa: F401

pytestmark = pytest.mark.usefixtures("ledger_checked")

BM100 = "Business Mail 100 MB"
PS25 = "Professional Suite 25.000 MB"
SVG_NS = "{http://www.w3.org/2000/svg}"


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def seeded(make):
    """A customer since 1 May 2026 with two mailboxes (1 + 30 points a day), 100 EUR credited on 1 May,
    charged up to 19 May; today is 20 May 2026."""
    clock.set_now(rome(2026, 5, 1, 9))
    c = make.customer(name="Studio Bianchi", domain="bianchi.example")
    created(c, rome(2026, 5, 1, 8))
    anna = make.mailbox(c, "anna", service_class=BM100)
    bruno = make.mailbox(c, "bruno", service_class=PS25)
    timeline(anna, ("active", BM100, rome(2026, 5, 1, 8), None))
    timeline(bruno, ("active", PS25, rome(2026, 5, 1, 8), None))
    billing.record_credit(make.SYSTEM, c.id, 10_000, "BONIFICO-1")  # 800,000 centipoints
    clock.set_now(rome(2026, 5, 20, 12))
    billing.charge_until(date(2026, 5, 19))
    admin = make.admin(c)
    ns = SimpleNamespace(id=c.id, admin=admin.email, anna=anna.address, bruno=bruno.address)
    db.session.rollback()
    return ns


def test_the_page_shows_balance_eur_cost_and_how_long_the_credit_lasts(client, auth, seeded):
    auth.login(seeded.admin)
    r = client.get(f"/customers/{seeded.id}/wallet")
    assert r.status_code == 200
    page = text(r.get_data(as_text=True))
    # 800,000 - 19 days x 3,100 = 741,100 centipoints: 7.411,00 points, 92,64 EUR; 239 days at 31 points.
    assert "7.411,00 punti" in page and "92,64 €" in page
    assert "31,00 punti al giorno" in page
    assert "239 giorni" in page and "il credito dura fino al 14/01/2027" in page
    assert "In regola" in page
    assert "Conto Collabra" in page  # the navigation's entry

    # In English the same amounts are written the English way.
    db.session.execute(sa.update(User).where(User.email == seeded.admin).values(locale="en"))
    db.session.commit()
    page = text(client.get(f"/customers/{seeded.id}/wallet").get_data(as_text=True))
    assert "7,411.00" in page and "€92.64" in page and "14 Jan 2027" in page


def test_the_page_says_when_the_credit_is_short_spent_or_on_hold(client, auth, make, seeded):
    auth.login(seeded.admin)
    url = f"/customers/{seeded.id}/wallet"
    billing.record_adjustment(make.SYSTEM, seeded.id, -741_100 + 31 * 100 * 10, "Prova")  # 10 days left
    db.session.rollback()
    page = text(client.get(url).get_data(as_text=True))
    assert "10 giorni" in page and "Credito in esaurimento" in page and "ricarica per tempo" in page
    billing.record_adjustment(make.SYSTEM, seeded.id, -31 * 100 * 11, "Prova")  # below zero
    db.session.rollback()
    page = text(client.get(url).get_data(as_text=True))
    assert "-31,00 punti" in page and "periodo di tolleranza" in page
    hold.put_on_hold(make.SYSTEM, seeded.id, "Credito esaurito")
    db.session.rollback()
    page = text(client.get(url).get_data(as_text=True))
    assert "Caselle bloccate per credito esaurito" in page


def test_the_balance_chart_is_well_formed_svg_with_a_point_per_day(client, auth, seeded):
    auth.login(seeded.admin)
    html = client.get(f"/customers/{seeded.id}/wallet").get_data(as_text=True)
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) == 2
    balance = ET.fromstring(svgs[0])
    assert balance.find(f"{SVG_NS}title").text == "Saldo a fine giornata"
    assert balance.find(f"{SVG_NS}desc").text
    dots = balance.findall(f"{SVG_NS}circle")
    assert len(dots) == 90  # one per day, today included
    last = dots[-1].find(f"{SVG_NS}title").text
    assert last == "20/05/2026: 7.411,00"
    assert dots[-2].find(f"{SVG_NS}title").text == "19/05/2026: 7.411,00"
    assert dots[-3].find(f"{SVG_NS}title").text == "18/05/2026: 7.442,00"
    cost = ET.fromstring(svgs[1])
    assert len(cost.findall(f"{SVG_NS}rect")) == 89  # one bar per finished day
    # The numbers are in a table too, for whoever does not see the chart.
    assert "Saldo a fine giornata, in punti" in html


def test_the_days_table_leads_to_the_mailboxes_and_classes_charged(client, auth, seeded):
    auth.login(seeded.admin)
    page = client.get(f"/customers/{seeded.id}/wallet").get_data(as_text=True)
    link = f"/customers/{seeded.id}/wallet/days/2026-05-10"
    assert link in page
    day = text(client.get(link).get_data(as_text=True))
    assert "Addebito del 10/05/2026" in day and "Totale: 31,00 punti" in day
    assert seeded.anna in day and seeded.bruno in day
    assert BM100 in day and PS25 in day and "30,00" in day
    # Per-month totals: May, 19 days charged.
    page = text(page)
    assert "Maggio 2026 19 589,00" in page


def test_the_days_table_pages_by_month(client, auth, seeded):
    auth.login(seeded.admin)
    april = text(client.get(f"/customers/{seeded.id}/wallet?month=2026-04").get_data(as_text=True))
    assert "Giorno per giorno: Aprile 2026" in april and "Nessun giorno" not in april
    assert "non addebitato" in april  # the customer did not exist yet


def rows_of_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_exports_hold_exactly_the_entries_of_the_period(client, auth, seeded):
    openpyxl = pytest.importorskip("openpyxl")
    auth.login(seeded.admin)
    base = f"/customers/{seeded.id}/wallet/export"

    r = client.get(f"{base}/lines.csv?from=2026-05-05&to=2026-05-07")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = rows_of_csv(r.data)
    assert rows[0] == ["Giorno", "Casella", "Classe di servizio", "Punti", "EUR"]
    assert rows[1:] == [
        [f"2026-05-0{d}", box, cls, pts, eur]
        for d in (5, 6, 7)
        for box, cls, pts, eur in (
            (seeded.anna, BM100, "1.00", "0.01"),
            (seeded.bruno, PS25, "30.00", "0.38"),
        )
    ]

    r = client.get(f"{base}/ledger.csv?from=2026-05-01&to=2026-05-03")
    rows = rows_of_csv(r.data)
    assert [(row[0], row[1], row[2]) for row in rows[1:]] == [
        ("2026-05-01", "Ricarica", "8000.00"),
        ("2026-05-01", "Addebito giornaliero", "-31.00"),
        ("2026-05-02", "Addebito giornaliero", "-31.00"),
        ("2026-05-03", "Addebito giornaliero", "-31.00"),
    ]

    r = client.get(f"{base}/lines.xlsx?from=2026-05-19&to=2026-05-31")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    sheet = openpyxl.load_workbook(io.BytesIO(r.data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == ("Giorno", "Casella", "Classe di servizio", "Punti", "EUR")
    assert [(v[0].date(), v[1], float(v[3])) for v in values[1:]] == [
        (date(2026, 5, 19), seeded.anna, 1.0),
        (date(2026, 5, 19), seeded.bruno, 30.0),
    ]
    r = client.get(f"{base}/ledger.xlsx?from=2026-05-01&to=2026-05-31")
    sheet = openpyxl.load_workbook(io.BytesIO(r.data)).active
    assert sheet.max_row == 1 + 1 + 19


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-13-01&to=2026-05-01", "Scrivi una data come 2026-05-31."),
        ("from=2026-05-01", "Scrivi una data come 2026-05-31."),
        ("from=2026-05-10&to=2026-05-01", "La data finale viene prima di quella iniziale."),
        ("from=2024-01-01&to=2026-05-01", "Si esporta al massimo un anno (366 giorni) alla volta."),
    ],
)
def test_a_bad_period_is_refused_with_a_clear_message(client, auth, seeded, query, message):
    auth.login(seeded.admin)
    r = client.get(f"/customers/{seeded.id}/wallet/export/ledger.csv?{query}")
    assert r.status_code == 422
    assert message in r.get_data(as_text=True)


def test_another_customers_wallet_is_not_found(client, auth, make, seeded):
    other = make.customer(name="Altro")
    db.session.rollback()
    auth.login(seeded.admin)
    assert client.get(f"/customers/{other.id}/wallet").status_code == 404
    assert client.get(f"/customers/{other.id}/wallet/days/2026-05-10").status_code == 404
    assert (
        client.get(
            f"/customers/{other.id}/wallet/export/ledger.csv?from=2026-05-01&to=2026-05-02"
        ).status_code
        == 404
    )


def test_a_contract_customer_has_no_entry_and_no_page(client, auth, make):
    c = make.customer("contract", {BM100: 1})
    admin = make.admin(c)
    db.session.rollback()
    auth.login(admin.email)
    page = client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True)
    assert "Conto Collabra" not in page and f"/customers/{c.id}/wallet" not in page
    r = client.get(f"/customers/{c.id}/wallet")
    assert r.status_code == 404
    assert "non ha un conto a punti" in r.get_data(as_text=True)


def test_staff_see_a_customers_wallet(client, auth, make, seeded):
    auth.login(make.staff().email)
    page = text(client.get(f"/customers/{seeded.id}/wallet").get_data(as_text=True))
    assert "7.411,00 punti" in page


def overview_names(html: str) -> list[str]:
    table = html.split('id="wallets"', 1)[1]
    return re.findall(r'<td class="primary-cell"><a href="[^"]+">([^<]+)</a>', table)


def test_staff_overview_sorts_and_filters(client, auth, make):
    clock.set_now(rome(2026, 5, 20, 12))
    rich, poor, broke = (make.customer(name=n) for n in ("Alfa", "Beta", "Gamma"))
    for c in (rich, poor, broke):
        make.mailbox(c, service_class=PS25)  # 30 points a day
    billing.record_credit(make.SYSTEM, rich.id, 10_000, "R")  # 8,000 points: 266 days
    billing.record_credit(make.SYSTEM, poor.id, 100, "P")  # 80 points: 2 days
    billing.record_adjustment(make.SYSTEM, broke.id, -500, "Prova")
    db.session.rollback()
    auth.login(make.staff().email)

    by_name = client.get("/admin/billing").get_data(as_text=True)
    assert overview_names(by_name) == ["Alfa", "Beta", "Gamma"]
    assert "Conti a punti" in by_name
    assert overview_names(client.get("/admin/billing?sort=balance").get_data(as_text=True)) == [
        "Gamma",
        "Beta",
        "Alfa",
    ]
    by_days = client.get("/admin/billing?sort=days_left").get_data(as_text=True)
    assert overview_names(by_days) == ["Gamma", "Beta", "Alfa"]
    row = text(by_days.split("Alfa", 1)[1].split("</tr>", 1)[0])
    assert "8.000,00" in row and "100,00 €" in row and "30,00" in row and "266" in row and "In regola" in row
    assert overview_names(client.get("/admin/billing?state=grace").get_data(as_text=True)) == ["Gamma"]
    assert overview_names(client.get("/admin/billing?state=warning").get_data(as_text=True)) == ["Beta"]
    assert "Nessun cliente" in client.get("/admin/billing?state=on_hold").get_data(as_text=True)


def test_staff_overview_queries_do_not_grow_with_customers(client, auth, make):
    def count_queries() -> int:
        seen = []
        listener = lambda *a: seen.append(1)  # noqa: E731
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.get("/admin/billing").status_code == 200
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    auth.login(make.staff().email)
    c = make.customer()
    make.mailbox(c)
    db.session.rollback()
    few = count_queries()
    for _ in range(8):
        c = make.customer()
        make.mailbox(c)
        make.mailbox(c, service_class=PS25)
    db.session.rollback()
    assert count_queries() == few


def test_the_overview_is_for_staff_only(client, auth, seeded):
    auth.login(seeded.admin)
    assert client.get("/admin/billing").status_code == 404
