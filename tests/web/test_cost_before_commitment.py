"""Cost before commitment: a Pay-per-Use change is shown with its cost and refused while the balance
cannot pay one more day of it; staff keep the price list. Through the portal, the API and the back office."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Mailbox
from app.services import billing, classes, clock, mailboxes, users
from app.services.errors import CreditTooLow
from tests import factories
from tests.billingkit import ledger_checked  # noqa: F401

pytestmark = pytest.mark.usefixtures("ledger_checked")

BM100 = "Business Mail 100 MB"  # 1,00 point a day
BM5000 = "Business Mail 5.000 MB"  # 4,00 points a day
REFUSED = (
    "Credito insufficiente: con questa casella il costo giornaliero sarebbe di 2,00 punti (0,03 EUR) "
    "e il saldo è di 1,60 punti. Ricarica il conto per continuare."
)


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {users.create_token(factories.SYSTEM, user, 'tests')[1]}"}


def count(customer) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Mailbox).where(Mailbox.customer_id == customer.id)
    )


def events(action: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    )


@pytest.fixture
def short(make, auth):
    """A Pay-per-Use customer with one mailbox (1,00 point a day) and 1,60 points: today is paid, one more is not."""
    c = make.customer(domain="rossi.example")
    box = make.mailbox(c, "anna", service_class=BM100)
    billing.record_credit(make.SYSTEM, c.id, 2, "BONIFICO-1")  # 2 EUR cents = 160 centipoints
    admin = make.admin(c)
    auth.login(admin.email)
    return c, box, admin


def test_the_portal_refuses_a_mailbox_the_balance_cannot_pay_and_writes_nothing(client, make, short):
    c, _box, _admin = short
    form = {
        "local_part": "bruno",
        "domain": "rossi.example",
        "password": factories.PASSWORD,
        "service_class": str(classes.resolve(BM100).id),
    }
    r = client.post(f"/customers/{c.id}/mailboxes", data=form)
    assert r.status_code == 409
    assert REFUSED in unescape(r.get_data(as_text=True))
    db.session.expire_all()
    assert count(c) == 1 and events("mailbox.create") == 1

    billing.record_credit(make.SYSTEM, c.id, 1, "BONIFICO-2")  # 2,40 points: two mailboxes for a day
    r = client.post(f"/customers/{c.id}/mailboxes", data=form)
    assert r.status_code == 303
    db.session.expire_all()
    assert count(c) == 2


def test_the_api_answers_409_for_a_mailbox_or_an_upgrade_the_balance_cannot_pay(client, make, short):
    c, box, admin = short
    as_c = bearer(admin)
    r = client.post(
        f"/api/v1/customers/{c.id}/mailboxes",
        json={"address": "bruno@rossi.example", "password": factories.PASSWORD, "service_class": BM100},
        headers=as_c,
    )
    assert r.status_code == 409 and r.get_json()["error"] == REFUSED
    r = client.patch(f"/api/v1/mailboxes/{box.id}", json={"service_class": BM5000}, headers=as_c)
    assert r.status_code == 409
    assert "sarebbe di 4,00 punti (0,05 EUR) e il saldo è di 1,60 punti" in r.get_json()["error"]
    db.session.expire_all()
    assert count(c) == 1 and db.session.get(Mailbox, box.id).service_class.name == BM100
    # What costs nothing more is never refused.
    r = client.patch(f"/api/v1/mailboxes/{box.id}", json={"display_name": "Anna B."}, headers=as_c)
    assert r.status_code == 200


def test_a_downgrade_is_allowed_even_when_the_balance_is_short(client, make, short):
    c, _box, admin = short
    big = make.mailbox(c, "grande", service_class=BM5000)  # 5,00 points a day against 1,60
    r = client.patch(f"/api/v1/mailboxes/{big.id}", json={"service_class": BM100}, headers=bearer(admin))
    assert r.status_code == 200 and r.get_json()["service_class"] == BM100
    assert billing.daily_cost(c) == 200


def test_reactivating_a_mailbox_costs_a_day_and_is_refused_when_short(client, make, short):
    c, box, _admin = short
    second = make.mailbox(c, "bruno", service_class=BM100)
    mailboxes.update_mailbox(factories.SYSTEM, second.id, status="suspended")  # costs less: allowed
    r = client.post(f"/customers/{c.id}/mailboxes/{second.id}/status", data={"status": "active"})
    assert r.status_code == 409
    assert REFUSED in unescape(r.get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(Mailbox, second.id).status == "suspended"
    # Staff acting for the customer meet the same rule.
    with pytest.raises(CreditTooLow):
        mailboxes.update_mailbox(factories.SYSTEM, second.id, status="active")


def test_a_contract_customer_is_never_refused(make):
    c = make.customer("contract", {BM100: 3})
    assert c.balance_centipoints == 0
    for local in ("a", "b", "c"):
        mailboxes.create_mailbox(
            factories.SYSTEM,
            c.id,
            address=f"{local}@{factories.domain_of(c)}",
            password=factories.PASSWORD,
            service_class=BM100,
        )
    assert count(c) == 3


def test_the_forms_show_the_cost_of_the_class_and_the_new_daily_total(client, short, app):
    c, box, _admin = short
    big = classes.resolve(BM5000).id
    page = unescape(client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True))
    assert f"{BM5000} — 4,00 punti/giorno" in page
    assert f'hx-get="/customers/{c.id}/mailboxes/cost"' in page

    new = unescape(client.get(f"/customers/{c.id}/mailboxes/cost?service_class={big}").get_data(as_text=True))
    assert (
        "Costo: 4,00 punti al giorno (0,05 EUR) · totale giornaliero con la nuova casella: 5,00 punti (0,06 EUR)"
        in new
    )
    assert "Il saldo di 1,60 punti non basta per un giorno a questo costo." in new
    edit = unescape(
        client.get(f"/customers/{c.id}/mailboxes/cost?service_class={big}&mailbox_id={box.id}").get_data(
            as_text=True
        )
    )
    assert (
        "Costo: 4,00 punti al giorno (0,05 EUR) · totale giornaliero dopo la modifica: 4,00 punti (0,05 EUR)"
        in edit
    )
    # Without JavaScript, the edit form shows the line for the class it has.
    form = unescape(client.get(f"/customers/{c.id}/mailboxes/{box.id}/edit").get_data(as_text=True))
    assert (
        "Costo: 1,00 punti al giorno (0,01 EUR) · totale giornaliero dopo la modifica: 1,00 punti (0,01 EUR)"
        in form
    )

    client.post("/account/language", data={"locale": "en"})
    with app.app_context():
        en = client.get(f"/customers/{c.id}/mailboxes/cost?service_class={big}").get_data(as_text=True)
    assert "4.00" in en and "(0.05 EUR)" in en and "5.00" in en and "4,00" not in en


def test_a_contract_customers_forms_show_no_cost(client, make, auth):
    c = make.customer("contract", {BM100: 3})
    auth.login(make.admin(c).email)
    page = client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True)
    assert "punti/giorno" not in page and "mailboxes/cost" not in page


def test_staff_set_a_future_price_and_see_it_in_the_history(client, make, auth):
    auth.login(make.staff().email)
    page = client.get("/admin/prices").get_data(as_text=True)
    assert "Listino prezzi" in page and "Prezzi in vigore e storico" in page
    cls = classes.resolve(BM100)
    later = clock.today() + timedelta(days=10)
    r = client.post(
        "/admin/prices",
        data={"service_class": str(cls.id), "points": "1,75", "valid_from": later.isoformat()},
    )
    assert r.status_code == 303
    page = unescape(client.get("/admin/prices").get_data(as_text=True))
    assert "1,75 punti (0,02 EUR)" in page and "futuro" in page
    assert billing.price_list(clock.today())[cls.id] == 100
    assert billing.price_list(later)[cls.id] == 175
    assert events("price.set") == 1

    r = client.post(
        "/admin/prices",
        data={
            "service_class": str(cls.id),
            "points": "2",
            "valid_from": (clock.today() - timedelta(days=1)).isoformat(),
        },
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 422
    assert "Un prezzo vale da oggi o da una data futura" in unescape(r.get_data(as_text=True))
    r = client.post("/admin/prices", data={"service_class": str(cls.id), "points": "1,234"})
    assert r.status_code == 422
    assert billing.price_list(later)[cls.id] == 175


def test_a_customer_admin_cannot_reach_the_price_list(client, make, auth):
    c = make.customer()
    auth.login(make.admin(c).email)
    assert client.get("/admin/prices").status_code == 404
    assert client.post("/admin/prices", data={"service_class": "1", "points": "0"}).status_code == 404
    page = client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True)
    assert "/admin/prices" not in page


def test_the_portal_edit_form_refuses_an_upgrade_beside_the_form_and_allows_a_rename(client, short):
    c, box, _admin = short
    big = classes.resolve(BM5000).id
    url = f"/customers/{c.id}/mailboxes/{box.id}"
    r = client.post(
        url, data={"display_name": "Anna", "service_class": str(big)}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 409
    html = unescape(r.get_data(as_text=True))
    assert 'id="credit-notice"' in html
    assert "sarebbe di 4,00 punti (0,05 EUR) e il saldo è di 1,60 punti" in html
    # The form keeps the class asked for, with its cost.
    assert "Costo: 4,00 punti al giorno (0,05 EUR) · totale giornaliero dopo la modifica: 4,00 punti" in html
    db.session.expire_all()
    assert db.session.get(Mailbox, box.id).service_class.name == BM100
    r = client.post(url, data={"display_name": "Anna Bianchi", "service_class": str(box.service_class_id)})
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Mailbox, box.id).display_name == "Anna Bianchi"
