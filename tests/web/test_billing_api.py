"""The point account through the API: wallet, credits, ledger, price list; scoping as everywhere."""

from __future__ import annotations

from datetime import date

import pytest

from app.services import billing, clock, users
from tests import factories
from tests.billingkit import ledger_checked, rome, timeline  # noqa: F401

pytestmark = pytest.mark.usefixtures("ledger_checked")

BM100 = "Business Mail 100 MB"
PS25 = "Professional Suite 25.000 MB"


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {users.create_token(factories.SYSTEM, user, 'tests')[1]}"}


@pytest.fixture
def payg(make):
    c = make.customer(name="Cliente A")
    return c, bearer(make.admin(c))


def test_a_customer_reads_its_wallet_and_never_another_customers(client, make, payg):
    c, as_c = payg
    make.mailbox(c, service_class=BM100)
    make.mailbox(c, service_class=PS25)
    other = make.customer(name="Cliente B")
    billing.record_credit(make.SYSTEM, c.id, 1543, "BONIFICO-1")  # 15,43 EUR = 1234,40 points

    r = client.get(f"/api/v1/customers/{c.id}/wallet", headers=as_c)
    assert r.status_code == 200
    assert r.get_json() == {
        "balance_centipoints": 123_440,
        "balance_points": "1234.40",
        "balance_eur": "15.43",
        "daily_cost_centipoints": 3100,
        "days_left": 39,
        "state": "ok",
    }
    assert client.get(f"/api/v1/customers/{other.id}/wallet", headers=as_c).status_code == 404
    assert client.get(f"/api/v1/customers/{other.id}/ledger", headers=as_c).status_code == 404


def test_the_wallet_warns_at_14_days_and_is_in_grace_when_out_of_credit(client, make, payg):
    c, as_c = payg
    make.mailbox(c, service_class=PS25)
    billing.record_credit(make.SYSTEM, c.id, 100, "BONIFICO-1")  # 8.000 centipoints: 2 days at 30 points
    assert client.get(f"/api/v1/customers/{c.id}/wallet", headers=as_c).get_json()["state"] == "warning"
    billing.record_adjustment(make.SYSTEM, c.id, -8000, "Prova")  # nothing left while something costs
    assert client.get(f"/api/v1/customers/{c.id}/wallet", headers=as_c).get_json()["state"] == "grace"
    billing.record_adjustment(make.SYSTEM, c.id, -1, "Prova")
    body = client.get(f"/api/v1/customers/{c.id}/wallet", headers=as_c).get_json()
    assert (body["state"], body["balance_points"], body["days_left"]) == ("grace", "-0.01", 0)


def test_a_contract_customer_has_no_wallet(client, make):
    c = make.customer("contract", {BM100: 1})
    staff = bearer(make.staff())
    r = client.get(f"/api/v1/customers/{c.id}/wallet", headers=staff)
    assert r.status_code == 409 and "contratto" in r.get_json()["error"]


def test_staff_record_a_payment_and_a_customer_cannot(client, make, payg):
    c, as_c = payg
    staff = bearer(make.staff())
    r = client.post(
        f"/api/v1/customers/{c.id}/wallet/credits",
        json={"eur_cents": 2500, "reference": "CRO 123"},
        headers=staff,
    )
    assert r.status_code == 201
    entry = r.get_json()
    assert (entry["kind"], entry["centipoints"], entry["points"], entry["reference"], entry["lines"]) == (
        "credit",
        200_000,
        "2000.00",
        "CRO 123",
        [],
    )
    refused = client.post(
        f"/api/v1/customers/{c.id}/wallet/credits", json={"eur_cents": 2500, "reference": "X"}, headers=as_c
    )
    assert refused.status_code == 403
    bad = client.post(
        f"/api/v1/customers/{c.id}/wallet/credits", json={"eur_cents": 0, "reference": ""}, headers=staff
    )
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"eur_cents", "reference"}
    assert (
        client.get(f"/api/v1/customers/{c.id}/wallet", headers=as_c).get_json()["balance_centipoints"]
        == 200_000
    )


def test_the_ledger_shows_each_days_charge_with_its_mailboxes(client, make, payg):
    c, as_c = payg
    box = make.mailbox(c, local="anna")
    timeline(
        box,
        ("active", BM100, rome(2026, 5, 1), rome(2026, 5, 10, 12)),
        ("active", PS25, rome(2026, 5, 10, 12), None),
    )
    for d in (9, 10, 11):
        billing.charge_day(c, date(2026, 5, d))
    r = client.get(f"/api/v1/customers/{c.id}/ledger?from=2026-05-10&to=2026-05-11", headers=as_c)
    assert r.status_code == 200
    entries = r.get_json()
    assert [(e["kind"], e["day"], e["centipoints"]) for e in entries] == [
        ("charge", "2026-05-10", -3000),
        ("charge", "2026-05-11", -3000),
    ]
    assert entries[0]["lines"] == [{"mailbox": box.address, "service_class": PS25, "centipoints": 3000}]
    assert len(client.get(f"/api/v1/customers/{c.id}/ledger", headers=as_c).get_json()) == 3
    bad = client.get(f"/api/v1/customers/{c.id}/ledger?from=10/05/2026", headers=as_c)
    assert bad.status_code == 422 and "from" in bad.get_json()["errors"]


def test_the_price_list_in_force_per_class(client, make, payg):
    _c, as_c = payg
    clock.set_now(rome(2026, 6, 1, 12))
    billing.set_price(make.SYSTEM, BM100, 150, date(2026, 6, 1))
    billing.set_price(make.SYSTEM, PS25, 5000, date(2026, 7, 1))  # not yet in force
    prices = client.get("/api/v1/price-list", headers=as_c).get_json()
    assert len(prices) == 32
    assert prices[0] == {
        "service_class": BM100,
        "service_class_id": prices[0]["service_class_id"],
        "centipoints_per_day": 150,
        "points_per_day": "1.50",
        "valid_from": "2026-06-01",
    }
    last = prices[-1]
    assert (last["service_class"], last["centipoints_per_day"], last["valid_from"]) == (
        PS25,
        3000,
        "2020-01-01",
    )
