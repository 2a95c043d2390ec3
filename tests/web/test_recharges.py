"""Recharges as the customer and staff see them: the amount, the transfer instructions, the confirmation."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Customer, LedgerEntry, RechargeRequest
from app.services import billing, recharges
from app.services.access import Actor
from app.services.errors import Conflict, NotFound, PermissionDenied
from tests.billingkit import ledger_checked  # noqa: F401

pytestmark = pytest.mark.usefixtures("ledger_checked")

BANK = {
    "BANK_IBAN": "IT60 X054 2811 1010 0000 0123 456",
    "BANK_BENEFICIARY": "Collabra S.r.l.",
    "BANK_NAME": "Banca Test",
}


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def bank(app):
    saved = {k: app.config[k] for k in BANK}
    app.config.update(BANK)
    yield
    app.config.update(saved)


@pytest.fixture
def payg(make):
    c = make.customer(name="Studio Verdi")
    make.mailbox(c, "anna")
    return c, make.admin(c)


def balance(customer_id: int) -> int:
    value = db.session.scalar(sa.select(Customer.balance_centipoints).where(Customer.id == customer_id))
    db.session.rollback()
    return value


def test_the_customer_asks_and_gets_the_instructions_with_its_reference(client, auth, payg, bank):
    c, admin = payg
    auth.login(admin.email)
    page = text(client.get(f"/customers/{c.id}/recharge").get_data(as_text=True))
    assert "50 EUR: 4.000 punti" in page and "200 EUR: 16.000 punti" in page
    assert "Nessuna ricarica." in page

    asked = client.post(f"/customers/{c.id}/recharge", data={"preset": "50"})
    assert asked.status_code == 303
    req = db.session.scalar(sa.select(RechargeRequest))
    assert re.fullmatch(rf"RIC-{c.id}-[A-Z2-9]{{6}}", req.reference)
    assert (req.eur_cents, req.state, req.requested_by) == (5000, "requested", admin.email)
    assert asked.headers["Location"].endswith(f"/customers/{c.id}/recharge/{req.id}")
    html = client.get(asked.headers["Location"]).get_data(as_text=True)
    page = text(html)
    assert "IT60X0542811101000000123456" in page and "Collabra S.r.l." in page and "Banca Test" in page
    assert f'id="recharge-reference" type="text" readonly value="{req.reference}"' in html
    assert "Causale" in page and "50,00 EUR" in page and "4.000,00" in page
    assert "In attesa del bonifico" in page

    # A free amount, in the Italian way; out of range or with fractions of a cent refused.
    assert client.post(f"/customers/{c.id}/recharge", data={"eur": "1.234,50"}).status_code == 303
    assert db.session.scalar(sa.select(sa.func.max(RechargeRequest.eur_cents))) == 123450
    for bad in ("9,99", "5000,01", "12,345", "dieci", ""):
        refused = client.post(f"/customers/{c.id}/recharge", data={"eur": bad})
        assert refused.status_code == 422, bad
        assert 'id="f-eur-error"' in refused.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RechargeRequest)) == 2


def test_without_bank_details_the_page_says_so(client, auth, payg, app):
    c, admin = payg
    app.config.update(BANK_IBAN="", BANK_BENEFICIARY="")
    auth.login(admin.email)
    page = text(client.get(f"/customers/{c.id}/recharge").get_data(as_text=True))
    assert "Le coordinate bancarie per le ricariche non sono configurate" in page
    assert client.post(f"/customers/{c.id}/recharge", data={"preset": "50"}).status_code == 409


def test_staff_confirm_once_and_the_points_are_credited(client, auth, make, payg, bank):
    c, admin = payg
    req = recharges.request_recharge(Actor.for_user(admin), c.id, "50")
    rid, ref = req.id, req.reference
    auth.login(make.staff().email)
    page = text(client.get("/admin/recharges").get_data(as_text=True))
    assert ref in page and "Studio Verdi" in page

    # 49,90 EUR arrived: 4990 cents x 80 = 399.200 centipoints, 3.992 points.
    done = client.post(f"/admin/recharges/{rid}/confirm", data={"received_eur": "49,90"})
    assert done.status_code == 303
    assert balance(c.id) == 4990 * 80 == 399_200
    entry = db.session.scalar(sa.select(LedgerEntry).where(LedgerEntry.customer_id == c.id))
    assert (entry.kind, entry.centipoints, entry.reference) == ("credit", 399_200, ref)
    req = db.session.get(RechargeRequest, rid)
    assert (req.state, req.received_eur_cents, req.entry_id) == ("confirmed", 4990, entry.id)
    db.session.rollback()
    assert "Ricarica RIC-" in text(client.get("/admin/recharges").get_data(as_text=True))

    again = client.post(f"/admin/recharges/{rid}/confirm", data={"received_eur": "49,90"})
    assert again.status_code == 409
    assert "è già stata gestita" in text(again.get_data(as_text=True))
    with pytest.raises(Conflict):
        recharges.confirm(Actor.system("t"), rid)
    assert balance(c.id) == 399_200
    actions = db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.customer_id == c.id)).all()
    assert {"recharge.request", "recharge.confirm", "ledger.credit"} <= set(actions)


def test_the_amount_asked_is_credited_when_staff_say_nothing_else(payg, bank):
    c, admin = payg
    req = recharges.request_recharge(Actor.for_user(admin), c.id, 100)
    recharges.confirm(Actor.system("t"), req.id)
    assert balance(c.id) == 100 * 100 * 80 == 800_000
    assert billing.points(balance(c.id)) == 8000


def test_a_customer_cannot_confirm_nor_see_another_customers_request(client, auth, make, payg, bank):
    c, admin = payg
    other = make.customer()
    other_admin = make.admin(other)
    mine = recharges.request_recharge(Actor.for_user(admin), c.id, "20")
    theirs = recharges.request_recharge(Actor.for_user(other_admin), other.id, "20")
    with pytest.raises(PermissionDenied):
        recharges.confirm(Actor.for_user(admin), mine.id)
    with pytest.raises(NotFound):
        recharges.confirm(Actor.for_user(admin), theirs.id)
    auth.login(admin.email)
    assert client.post(f"/admin/recharges/{mine.id}/confirm").status_code == 404
    assert client.get(f"/customers/{c.id}/recharge/{theirs.id}").status_code == 404
    assert client.get(f"/customers/{other.id}/recharge/{theirs.id}").status_code == 404
    assert balance(c.id) == 0

    # The customer may cancel its own request; a cancelled one cannot be confirmed.
    assert client.post(f"/customers/{c.id}/recharge/{mine.id}/cancel").status_code == 303
    with pytest.raises(Conflict):
        recharges.confirm(Actor.system("t"), mine.id)


def test_a_contract_customer_has_no_recharge(client, auth, make, bank):
    c = make.customer(plan="contract", allowances={"Business Mail 100 MB": 1})
    admin = make.admin(c)
    with pytest.raises(Conflict):
        recharges.request_recharge(Actor.for_user(admin), c.id, 50)
    auth.login(admin.email)
    assert client.get(f"/customers/{c.id}/recharge").status_code == 404


def test_staff_record_the_first_credit_and_an_adjustment_with_its_reason(client, auth, make, payg):
    c, _admin = payg
    auth.login(make.staff().email)
    page = text(client.get(f"/admin/customers/{c.id}").get_data(as_text=True))
    assert "Conto a punti" in page and "Saldo: 0,00 punti (0,00 EUR)." in page
    done = client.post(
        f"/admin/customers/{c.id}/wallet/credit",
        data={"eur": "150", "reference": "Contratto 2026/41", "first": "1"},
    )
    assert done.status_code == 303 and done.headers["Location"].endswith("#wallet")
    assert balance(c.id) == 15000 * 80
    refused = client.post(
        f"/admin/customers/{c.id}/wallet/adjustment",
        data={"points": "-12,50", "reason": " "},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 422 and 'id="f-reason-error"' in refused.get_data(as_text=True)
    ok = client.post(
        f"/admin/customers/{c.id}/wallet/adjustment", data={"points": "-12,50", "reason": "Doppio conteggio"}
    )
    assert ok.status_code == 303
    assert balance(c.id) == 15000 * 80 - 1250
    kinds = db.session.execute(
        sa.select(LedgerEntry.kind, LedgerEntry.centipoints, LedgerEntry.reference, LedgerEntry.reason)
        .where(LedgerEntry.customer_id == c.id)
        .order_by(LedgerEntry.id)
    ).all()
    assert [tuple(k) for k in kinds] == [
        ("first_credit", 1_200_000, "Contratto 2026/41", ""),
        ("adjustment", -1250, "", "Doppio conteggio"),
    ]


def test_the_banner_shows_while_the_credit_lasts_14_days_or_less(client, auth, payg, bank):
    c, admin = payg
    staff = Actor.system("t")
    billing.record_credit(staff, c.id, 20, "x")  # 1600: 16 days at 1 point a day
    auth.login(admin.email)
    assert "Credito in esaurimento" not in text(
        client.get(f"/customers/{c.id}/recharge").get_data(as_text=True)
    )
    billing.record_adjustment(staff, c.id, -300, "prova")  # 1300: 13 days
    page = text(client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True))
    assert "Credito in esaurimento: 13 giorni rimasti" in page and "Ricarica il conto" in page
    billing.record_adjustment(staff, c.id, -1400, "prova")  # -100
    page = text(client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True))
    assert "Credito esaurito" in page and "Il saldo è di -1,00 punti." in page


def test_one_payment_is_credited_once_whatever_the_door(make, payg, bank):
    c, admin = payg
    req = recharges.request_recharge(Actor.for_user(admin), c.id, 50)
    recharges.confirm(make.SYSTEM, req.id)
    # The same transfer recorded again by hand (the API's credits, the customer card): refused.
    with pytest.raises(Conflict, match=req.reference):
        billing.record_credit(make.SYSTEM, c.id, 5000, req.reference)
    credited = db.session.scalars(
        sa.select(LedgerEntry.centipoints).where(
            LedgerEntry.customer_id == c.id, LedgerEntry.kind == "credit"
        )
    ).all()
    assert credited == [400_000]


def test_a_customer_cannot_pile_up_requests_waiting_for_a_transfer(payg, bank):
    c, admin = payg
    asker = Actor.for_user(admin)
    for _ in range(recharges.MAX_OPEN_REQUESTS):
        recharges.request_recharge(asker, c.id, 20)
    with pytest.raises(Conflict, match="in attesa del bonifico"):
        recharges.request_recharge(asker, c.id, 20)
    waiting = db.session.scalar(
        sa.select(sa.func.count()).select_from(RechargeRequest).where(RechargeRequest.customer_id == c.id)
    )
    assert waiting == recharges.MAX_OPEN_REQUESTS
