"""A customer on hold, as staff, the customer and the API see it: the back office card, the portal banner."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Customer, Mailbox
from app.services import hold, mailboxes, users
from tests import factories

HX = {"HX-Request": "true"}
BANNER = "Caselle bloccate: il credito è esaurito"


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def on_hold(customer_id: int) -> tuple:
    row = db.session.get(Customer, customer_id)
    state = row.on_hold, row.on_hold_reason
    db.session.rollback()  # SQLite: the test's read must not hold the lock the next request needs
    return state


def login_allowed(address: str) -> int:
    value = db.session.scalar(
        sa.text("SELECT login_allowed FROM mail_users WHERE address = :a"), {"a": address}
    )
    db.session.rollback()
    return value


@pytest.fixture
def payg(make):
    c = make.customer(domain="bloccato.example", name="Studio Verdi")
    box = make.mailbox(c, "anna")
    admin = make.admin(c)
    return SimpleNamespace(id=c.id, box_id=box.id, address=box.address, admin=admin.email)


def test_staff_put_a_customer_on_hold_and_lift_it_from_its_page(client, auth, make, payg):
    auth.login(make.staff().email)
    page = text(client.get(f"/admin/customers/{payg.id}").get_data(as_text=True))
    assert "Blocco per credito esaurito" in page and "Il cliente non è bloccato." in page

    # A reason is required: the card comes back with the message beside the field.
    refused = client.post(f"/admin/customers/{payg.id}/hold", data={"reason": " "}, headers=HX)
    assert refused.status_code == 422
    assert 'id="f-reason-error"' in refused.get_data(as_text=True)
    assert on_hold(payg.id) == (False, None)

    held = client.post(f"/admin/customers/{payg.id}/hold", data={"reason": "Nessuna ricarica da 3 giorni"})
    assert held.status_code == 303
    assert held.headers["Location"].endswith(f"/admin/customers/{payg.id}#hold")
    assert on_hold(payg.id) == (True, "Nessuna ricarica da 3 giorni")
    assert login_allowed(payg.address) == 0
    page = text(client.get(f"/admin/customers/{payg.id}").get_data(as_text=True))
    assert "Cliente bloccato: nessuna sua casella può accedere" in page  # the flashed message
    assert re.search(r"Cliente bloccato dal \d\d/\d\d/\d{4} \d\d:\d\d\.", page)
    assert "Motivo: Nessuna ricarica da 3 giorni" in page
    # The back office has its card, not the customer's banner.
    assert BANNER not in page

    lifted = client.post(f"/admin/customers/{payg.id}/hold/lift", headers=HX)
    assert lifted.status_code == 200
    card = text(lifted.get_data(as_text=True))
    assert (
        "Blocco tolto: le caselle sono tornate come prima." in card and "Il cliente non è bloccato." in card
    )
    assert on_hold(payg.id) == (False, None)
    assert login_allowed(payg.address) == 1
    assert [
        a
        for a in db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.action.like("customer.hold%"))
            .order_by(AuditEvent.id)
        )
    ] == ["customer.hold", "customer.hold_lift"]
    audit_page = text(client.get(f"/admin/audit?customer_id={payg.id}").get_data(as_text=True))
    assert "Cliente bloccato per credito esaurito" in audit_page
    assert "Blocco per credito esaurito tolto" in audit_page


def test_a_contract_customer_has_no_hold_card_unless_on_hold(client, auth, make):
    c = make.customer("contract", {"Business Mail 100 MB": 2})
    auth.login(make.staff().email)
    assert "Blocco per credito esaurito" not in client.get(f"/admin/customers/{c.id}").get_data(as_text=True)
    hold.put_on_hold(factories.SYSTEM, c.id, "Moroso")
    page = text(client.get(f"/admin/customers/{c.id}").get_data(as_text=True))
    assert "Blocco per credito esaurito" in page and "Togli il blocco" in page


def test_a_customer_admin_cannot_put_on_hold_or_lift(client, auth, payg):
    hold.put_on_hold(factories.SYSTEM, payg.id, "Credito esaurito")
    auth.login(payg.admin)
    for path in (f"/admin/customers/{payg.id}/hold/lift", f"/admin/customers/{payg.id}/hold"):
        assert (
            client.post(path, data={"reason": "x"}).status_code == 404
        )  # the back office does not exist for them
    assert on_hold(payg.id) == (True, "Credito esaurito")


def test_every_portal_page_of_a_customer_on_hold_says_why_and_how_to_recharge(client, auth, make, payg):
    auth.login(payg.admin)
    assert BANNER not in client.get(f"/customers/{payg.id}/mailboxes").get_data(as_text=True)

    hold.put_on_hold(factories.SYSTEM, payg.id, "Credito esaurito")
    for path in ("/", "/mailboxes", "/aliases", "/lists", "/domains", f"/mailboxes/{payg.box_id}"):
        page = text(client.get(f"/customers/{payg.id}{path}").get_data(as_text=True))
        assert BANNER in page, path
    assert "La posta in arrivo continua a essere ricevuta e conservata: non si perde nulla." in page
    assert "Per sbloccarle ricarica il credito: scrivi al commerciale commerciale@collabra.it" in page
    assert "o al supporto tecnico assistenza@collabra.it" in page
    # Their own account page too: the customer is on hold wherever its users look.
    assert BANNER in text(client.get("/account").get_data(as_text=True))

    # Staff looking at the customer's portal see what the customer sees.
    auth.logout()
    auth.login(make.staff().email)
    assert BANNER in text(client.get(f"/customers/{payg.id}/mailboxes").get_data(as_text=True))

    hold.lift_hold(factories.SYSTEM, payg.id)
    assert BANNER not in client.get(f"/customers/{payg.id}/mailboxes").get_data(as_text=True)


def test_another_customer_sees_no_banner(client, auth, make, payg):
    hold.put_on_hold(factories.SYSTEM, payg.id, "Credito esaurito")
    other = make.customer(domain="pagante.example")
    auth.login(make.admin(other).email)
    assert BANNER not in client.get(f"/customers/{other.id}/mailboxes").get_data(as_text=True)


def test_reactivating_a_mailbox_in_the_portal_does_not_lift_the_hold(client, auth, payg):
    mailboxes.update_mailbox(factories.SYSTEM, payg.box_id, status="suspended")
    hold.put_on_hold(factories.SYSTEM, payg.id, "Credito esaurito")
    auth.login(payg.admin)

    url = f"/customers/{payg.id}/mailboxes"
    reactivated = client.post(f"{url}/{payg.box_id}/status", data={"status": "active"}, headers=HX)
    assert reactivated.status_code == 200
    # The mailbox shows the status the customer gave it; the banner says why it does not log in.
    row = text(reactivated.get_data(as_text=True))
    assert "Attiva" in row
    assert db.session.get(Mailbox, payg.box_id).status == "active"
    db.session.rollback()
    assert login_allowed(payg.address) == 0
    assert on_hold(payg.id) == (True, "Credito esaurito")
    assert BANNER in text(client.get(url).get_data(as_text=True))


def test_the_api_shows_the_hold_on_the_customer_and_the_mailbox_status_as_set(client, make, payg):
    staff = make.staff()
    _, token = users.create_token(factories.SYSTEM, staff, "test")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/customers/{payg.id}", headers=headers).get_json()["on_hold"] is False
    hold.put_on_hold(factories.SYSTEM, payg.id, "Credito esaurito")
    assert client.get(f"/api/v1/customers/{payg.id}", headers=headers).get_json()["on_hold"] is True
    box = client.get(f"/api/v1/mailboxes/{payg.box_id}", headers=headers).get_json()
    assert box["status"] == "active"
