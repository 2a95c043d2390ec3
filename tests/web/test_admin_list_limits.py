"""Support sets a customer's limits on external list members from the back-office customer page."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Customer
from app.services import lists
from app.services.errors import ValidationError
from tests import factories

HX = {"HX-Request": "true"}


@pytest.fixture
def customer(make, auth):
    c = make.customer(domain="studio.example", name="Studio Bianchi")
    make.dlist(c, "soci", ["uno@esterno.example", "due@esterno.example"])
    make.dlist(c, "fornitori", ["tre@esterno.example"])
    auth.login(make.staff().email)
    # Only the id: the test's own reads end their transaction, so SQLite lets the requests write.
    return SimpleNamespace(id=c.id)


def url(c) -> str:
    return f"/admin/customers/{c.id}/list-limits"


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def audit_count() -> int:
    n = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    db.session.rollback()
    return n


def overrides(c) -> tuple:
    row = db.session.get(Customer, c.id)
    values = row.list_external_per_list, row.list_external_per_customer
    db.session.rollback()
    return values


def add_external(c, list_local: str, address: str):
    dlist = next(d for d in lists.list_lists(factories.SYSTEM, c.id) if d.local_part == list_local)
    try:
        lists.add_member(factories.SYSTEM, dlist.id, address)
    finally:
        db.session.rollback()


def test_the_card_shows_use_and_the_defaults(client, customer):
    page = text(client.get(f"/admin/customers/{customer.id}").get_data(as_text=True))
    assert "Liste di distribuzione" in page
    assert "2 nella lista più grande" in page and "3 in tutte le liste" in page
    assert "predefinito: 50" in page and "predefinito: 200" in page


def test_staff_set_a_limit_and_the_lists_enforce_it(client, customer):
    audits = audit_count()
    response = client.post(
        url(customer), data={"list_external_per_list": "3", "list_external_per_customer": ""}
    )
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith(f"/admin/customers/{customer.id}#list-limits")
    assert overrides(customer) == (3, None)
    page = text(client.get(f"/admin/customers/{customer.id}").get_data(as_text=True))
    assert "Limiti delle liste salvati: al massimo 3 indirizzi esterni per lista e 200 in tutto." in page
    # The value in force is the customer's own now; the other is still the default.
    assert re.search(r"Indirizzi esterni per lista 2 nella lista più grande 3 ", page)
    assert "predefinito: 200" in page and "predefinito: 50" not in page
    [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "customer.list_limits"))
    assert event.customer_id == customer.id and event.changes == {"list_external_per_list": [None, 3]}
    db.session.rollback()
    assert audit_count() == audits + 1

    add_external(customer, "soci", "quattro@esterno.example")
    with pytest.raises(ValidationError) as refused:
        add_external(customer, "soci", "cinque@esterno.example")
    assert "il limite è 3 per lista" in refused.value.errors["members"]

    # With htmx the card alone comes back, saying what was saved; an empty box means the default.
    cleared = client.post(
        url(customer), data={"list_external_per_list": "", "list_external_per_customer": " "}, headers=HX
    )
    assert cleared.status_code == 200
    html = cleared.get_data(as_text=True)
    assert html.lstrip().startswith('<section class="card" id="list-limits"') and "<html" not in html
    assert "al massimo 50 indirizzi esterni per lista e 200 in tutto" in text(html)
    assert overrides(customer) == (None, None)
    add_external(customer, "soci", "cinque@esterno.example")


def test_the_limit_over_all_lists_is_enforced_too(client, customer):
    response = client.post(url(customer), data={"list_external_per_customer": "4"}, headers=HX)
    assert response.status_code == 200 and overrides(customer) == (None, 4)
    add_external(customer, "fornitori", "quattro@esterno.example")
    with pytest.raises(ValidationError) as refused:
        add_external(customer, "fornitori", "cinque@esterno.example")
    assert "il limite è 4 per cliente" in refused.value.errors["members"]


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "Deve essere tra 0 e 100000."),
        ("dieci", "Deve essere un numero intero."),
        ("2,5", "Deve essere un numero intero."),
        ("²", "Deve essere un numero intero."),
        ("--5", "Deve essere un numero intero."),
        ("9" * 5000, "Deve essere un numero intero."),
        ("100001", "Deve essere tra 0 e 100000."),
    ],
)
def test_a_bad_value_is_shown_beside_its_field_and_nothing_changes(client, customer, hx, value, message):
    client.post(url(customer), data={"list_external_per_list": "7"}, headers=HX)
    audits = audit_count()
    response = client.post(
        url(customer),
        data={"list_external_per_list": "10", "list_external_per_customer": value},
        headers=HX if hx else {},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert ("<html" in html) is not hx
    error = re.search(r'<p class="field-error" id="f-list_external_per_customer-error">([^<]*)</p>', html)
    assert error and error.group(1) == message
    assert 'id="f-list_external_per_customer"' in html and 'aria-invalid="true"' in html
    assert 'id="f-list_external_per_list-error"' not in html
    # What was typed stays in the form; the valid box beside it was not saved either.
    assert re.search(r'name="list_external_per_list" type="text" value="10"', html)
    assert "i limiti non sono stati modificati" in html
    assert overrides(customer) == (7, None)
    assert audit_count() == audits


def test_a_customer_admin_gets_404_and_changes_nothing(client, make, auth, customer):
    auth.logout()
    auth.login(make.admin(customer).email)
    response = client.post(url(customer), data={"list_external_per_list": "900"})
    assert response.status_code == 404
    assert client.post(url(customer), data={"list_external_per_list": "900"}, headers=HX).status_code == 404
    assert overrides(customer) == (None, None)


def test_without_the_csrf_token_nothing_changes(client, customer):
    response = client.post(url(customer), data={"list_external_per_list": "900"}, csrf=False)
    assert response.status_code == 400
    assert overrides(customer) == (None, None)


def test_the_customer_reads_the_limits_on_the_lists_page(client, make, auth, customer):
    client.post(url(customer), data={"list_external_per_list": "20"}, headers=HX)
    auth.logout()
    auth.login(make.admin(customer).email)
    page = text(client.get(f"/customers/{customer.id}/lists").get_data(as_text=True))
    assert (
        "Indirizzi esterni: al massimo 20 per lista e 200 in tutte le liste insieme (ora ne usi 3)." in page
    )
    assert "list-limits" not in page
