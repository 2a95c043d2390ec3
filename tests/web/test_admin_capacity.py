"""Capacity requests: staff approve (the allowance grows) or reject, in place."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Allowance, CapacityRequest
from app.services import capacity, mailboxes
from app.services.access import Actor
from app.services.errors import LimitExceeded
from tests.web.test_portal_queries import counted


@pytest.fixture
def full_customer(make):
    c = make.customer("contract", {"Business Mail 100 MB": 1}, name="Studio Pieno")
    make.mailbox(c)
    admin = make.admin(c)
    return c, admin


def _ask(c, admin, n=2, note="Due nuovi assunti"):
    return capacity.request_capacity(
        Actor.for_user(admin), c.id, service_class="Business Mail 100 MB", extra_accounts=n, note=note
    ).request


def _new_mailbox(c, admin, make):
    return mailboxes.create_mailbox(
        Actor.for_user(admin),
        c.id,
        address=f"nuovo@{make.domain_of(c)}",
        password=make.PASSWORD,
        display_name="Nuovo",
        service_class="Business Mail 100 MB",
    )


def test_open_request_listed_with_usage(client, make, auth, full_customer):
    c, admin = full_customer
    _ask(c, admin)
    auth.login(make.staff().email)
    page = client.get("/admin/capacity-requests").get_data(as_text=True)
    assert "Studio Pieno" in page and "Business Mail 100 MB" in page and "+2" in page
    assert "Due nuovi assunti" in page and admin.email in page
    assert "1 / 1" in page and "Nessuna richiesta in attesa" not in page


def test_approve_raises_allowance_then_mailbox_fits(client, make, auth, full_customer):
    c, admin = full_customer
    with pytest.raises(LimitExceeded):
        _new_mailbox(c, admin, make)
    db.session.rollback()
    req = _ask(c, admin)
    staff = make.staff()
    auth.login(staff.email)
    response = client.post(
        f"/admin/capacity-requests/{req.id}/decision",
        data={"decision": "approve"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Approvata" in page and "Nessuna richiesta in attesa" in page and staff.email in page
    assert db.session.scalar(sa.select(Allowance.max_accounts)) == 3
    assert _new_mailbox(c, admin, make).address.startswith("nuovo@")


def test_reject_leaves_allowance(client, make, auth, full_customer):
    c, admin = full_customer
    req = _ask(c, admin)
    auth.login(make.staff().email)
    response = client.post(
        f"/admin/capacity-requests/{req.id}/decision", data={"decision": "reject", "reason": "Budget chiuso"}
    )
    assert response.status_code == 303
    assert "Rifiutata" in client.get("/admin/capacity-requests").get_data(as_text=True)
    assert db.session.scalar(sa.select(Allowance.max_accounts)) == 1


def test_deciding_twice_is_a_clear_conflict(client, make, auth, full_customer):
    c, admin = full_customer
    req = _ask(c, admin)
    auth.login(make.staff().email)
    client.post(f"/admin/capacity-requests/{req.id}/decision", data={"decision": "approve"})
    again = client.post(f"/admin/capacity-requests/{req.id}/decision", data={"decision": "approve"})
    assert again.status_code == 409
    assert "già stata gestita" in again.get_data(as_text=True)
    assert db.session.scalar(sa.select(Allowance.max_accounts)) == 3


def test_decision_without_csrf_is_refused(client, make, auth, full_customer):
    c, admin = full_customer
    req = _ask(c, admin)
    auth.login(make.staff().email)
    response = client.post(
        f"/admin/capacity-requests/{req.id}/decision", data={"decision": "approve"}, csrf=False
    )
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(CapacityRequest, req.id).status == "open"
    assert db.session.scalar(sa.select(Allowance.max_accounts)) == 1


def test_unknown_request_is_404(client, make, auth):
    auth.login(make.staff().email)
    assert (
        client.post("/admin/capacity-requests/999/decision", data={"decision": "approve"}).status_code == 404
    )


def _open_request(make, i: int):
    """Customer i asks for more of one of two classes; its usage and allowance differ from the others'."""
    cls = "Business Mail 100 MB" if i % 2 else "Business Mail Plus 100 MB"
    c = make.customer("contract", {cls: i + 1}, name=f"Studio {i:02d}")
    make.mailbox(c, service_class=cls)
    capacity.request_capacity(
        Actor.for_user(make.admin(c)), c.id, service_class=cls, extra_accounts=i + 2, note=f"Richiesta {i}"
    )
    return c


def test_the_page_costs_the_same_queries_for_1_and_20_open_requests(app, client, make, auth):
    staff = make.staff()
    decided = _open_request(make, 99)
    capacity.decide(Actor.for_user(staff), capacity.list_requests(Actor.for_user(staff))[0].id, approve=True)
    _open_request(make, 0)
    auth.login(staff.email)

    def statements() -> tuple[int, str]:
        # A fresh app context: its own session and g, cold as a production request.
        with app.app_context(), counted() as executed:
            page = client.get("/admin/capacity-requests").get_data(as_text=True)
        assert "Nessuna richiesta in attesa" not in page and decided.name in page
        return len(executed), page

    one, _page = statements()
    for i in range(1, 20):
        _open_request(make, i)
    twenty, page = statements()
    assert page.count('class="decision"') == 20
    assert "Studio 19" in page and "In uso / limite attuale: 1 / 20" in page  # customer 19's own figures
    assert one == twenty, (one, twenty)
