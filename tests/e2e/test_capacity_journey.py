"""A capacity request end to end in real browsers: the customer asks for a number with a reason
before reaching the limit, support grants a different number with a reason, the customer reads
the outcome on the requests page and in the email that a real SMTP server received.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import Allowance
from tests.e2e.conftest import open_context
from tests.e2e.test_mailbox_journey import BM100, contract_customer, shot
from tests.smtp_sink import SmtpSink


@pytest.fixture
def smtp(live_server):
    sink = SmtpSink().start()
    config = live_server.app.config
    saved = {k: config[k] for k in ("SMTP_HOST", "SMTP_PORT", "SALES_EMAIL", "JOBS_INLINE")}
    # The mails are `send_email` jobs: run at once by the server (tests/integration/test_jobs.py: by a worker).
    config.update(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=sink.port,
        SALES_EMAIL="commerciale@collabra.example",
        JOBS_INLINE=True,
    )
    yield sink
    config.update(saved)
    sink.stop()


def test_customer_asks_staff_grant_a_different_number_customer_reads_why(
    page, login, make, smtp, browser, live_server, htmx_js
):
    customer_id, admin_email = contract_customer(make, {BM100: 5})
    staff = make.staff(email="assistenza@collabra.it")

    # The customer, one of five in use, asks from the dashboard: three more, and why.
    login(page, admin_email)
    usage = page.get_by_role("region", name="Utilizzo del contratto")
    expect(usage.locator("li", has_text=BM100).locator(".usage-count")).to_have_text("1 di 5")
    usage.get_by_role("link", name=f"Chiedi più caselle {BM100}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Richieste al commerciale")
    ask = page.get_by_role("region", name="Nuova richiesta")
    expect(ask.get_by_label("Classe di servizio")).to_have_value(re.compile(r"^\d+$"))
    expect(ask.get_by_label("Classe di servizio").locator("option:checked")).to_contain_text(BM100)
    ask.get_by_label("Quante caselle in più").fill("3")
    ask.get_by_label("Perché ti servono").fill("Tre praticanti da gennaio")
    ask.get_by_role("button", name="Invia la richiesta al commerciale").click()
    expect(page.locator(".flashes")).to_contain_text("3 caselle Business Mail 100 MB in più")
    mine = page.locator("#capacity-requests")
    expect(mine).to_contain_text("Tre praticanti da gennaio")
    expect(mine).to_contain_text("In attesa")
    shot(page, "20-capacity-asked")

    # Support reads the reason and grants two, saying why.
    support = open_context(browser, live_server, htmx_js)  # another person, another browser
    desk = support.new_page()
    login(desk, staff.email)
    desk.get_by_role("navigation", name="Menu principale").get_by_role(
        "link", name="Richieste al commerciale"
    ).click()
    pending = desk.get_by_role("region", name=re.compile("Da gestire"))
    request_row = pending.locator("tr", has_text="Studio Rossi & Associati")
    expect(request_row).to_contain_text("Tre praticanti da gennaio")
    expect(request_row).to_contain_text("+3")
    expect(request_row).to_contain_text("1 / 5")
    request_row.get_by_label("Caselle da concedere").fill("2")
    request_row.get_by_label("Motivo per il cliente").fill("Due ora, la terza a marzo")
    shot(desk, "21-capacity-deciding")
    request_row.get_by_role("button", name="Approva").click()
    expect(desk.locator("#capacity [role=status]")).to_contain_text(
        "Studio Rossi & Associati ha ora 2 caselle Business Mail 100 MB in più (limite: 7)"
    )
    expect(desk.get_by_role("region", name=re.compile("Da gestire"))).to_contain_text(
        "Nessuna richiesta in attesa."
    )

    support.close()

    # The customer sees the outcome and the reason.
    page.reload()
    row = page.locator("#capacity-requests tbody tr", has_text=BM100)
    expect(row).to_contain_text("Approvata")
    expect(row).to_contain_text("2 caselle in più concesse")
    expect(row).to_contain_text("Due ora, la terza a marzo")
    shot(page, "22-capacity-approved")
    page.get_by_role("navigation", name="Menu principale").get_by_role("link", name="Dashboard").click()
    expect(
        page.get_by_role("region", name="Utilizzo del contratto")
        .locator("li", has_text=BM100)
        .locator(".usage-count")
    ).to_have_text("1 di 7")

    # Sales heard of the request; the customer got the decision by email.
    mails = smtp.wait_for(2)
    to_sales = [m for m in mails if m.envelope_to == ["commerciale@collabra.example"]]
    to_customer = [m for m in mails if admin_email in m.envelope_to]
    assert len(to_sales) == 1 and "Tre praticanti da gennaio" in to_sales[0].body
    assert len(to_customer) == 1
    assert to_customer[0].subject == f"Richiesta al commerciale approvata: {BM100}"
    assert "Motivo: Due ora, la terza a marzo" in to_customer[0].body
    db.session.remove()  # a fresh read of what the server committed
    assert (
        db.session.scalar(sa.select(Allowance.max_accounts).where(Allowance.customer_id == customer_id)) == 7
    )
