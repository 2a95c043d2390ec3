"""Capacity requests: staff approve (the allowance grows) or reject, in place."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Allowance, CapacityRequest
from app.services import capacity, mailboxes
from app.services.access import Actor
from app.services.errors import LimitExceeded


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
    assert response.status_code == 302
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
