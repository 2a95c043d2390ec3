"""Back office: customers list, search, create, edit, contract, the customer's admins."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Allowance, AuditEvent, Customer, User
from app.services import classes


def _class_id(name: str) -> int:
    return classes.resolve(name).id


@pytest.fixture
def staff(make, auth):
    user = make.staff()
    auth.login(user.email)
    return user


def test_list_shows_plan_vat_and_counts(client, make, staff):
    c = make.customer("contract", {"Business Mail 100 MB": 3}, name="Studio Verdi")
    make.mailbox(c)
    make.mailbox(c)
    make.customer(name="Bar Sport")
    page = client.get("/admin/customers").get_data(as_text=True)
    assert "Studio Verdi" in page and "Bar Sport" in page
    assert "A canone" in page and "Pay per Use" in page
    row = re.search(r"Studio Verdi.*?</tr>", page, re.S).group(0)
    assert re.findall(r'class="num">(\d+)<', row) == ["2", "1"]


def test_search_by_name_vat_and_email_with_htmx_fragment(client, make, staff):
    from app.services import customers

    customers.create_customer(
        make.SYSTEM,
        name="Ottica Blu",
        plan="payg",
        vat_number="03504190103",
        contact_email="info@ottica.example",
    )
    make.customer(name="Panificio Neri")
    for q in ("ottica", "03504190103", "info@ottica"):
        page = client.get(f"/admin/customers?q={q}").get_data(as_text=True)
        assert "Ottica Blu" in page and "Panificio Neri" not in page
    fragment = client.get("/admin/customers?q=neri", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert "Panificio Neri" in text and "<html" not in text
    assert "HX-Request" in fragment.headers["Vary"]
    assert "Nessun cliente" in client.get("/admin/customers?q=zzz%25").get_data(as_text=True)


def test_list_paginates(client, make, staff, app):
    from app.services import customers

    for i in range(30):
        customers.create_customer(make.SYSTEM, name=f"Cliente {i:02d}", plan="payg")
    first = client.get("/admin/customers").get_data(as_text=True)
    assert "Pagina 1 di 2" in first and "Cliente 29" not in first
    second = client.get("/admin/customers?page=2").get_data(as_text=True)
    assert "Cliente 29" in second
    assert client.get("/admin/customers?page=abc").status_code == 200


def test_list_queries_do_not_grow_with_customers(client, make, staff, app):
    from app.services import customers

    def count_queries() -> int:
        seen = []
        listener = lambda *a: seen.append(1)  # noqa: E731
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            client.get("/admin/customers")
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    make.customer()
    few = count_queries()
    for i in range(10):
        customers.create_customer(make.SYSTEM, name=f"Altro {i}", plan="payg")
    assert count_queries() == few


def test_create_customer_then_see_it(client, staff):
    response = client.post(
        "/admin/customers/new",
        data={
            "name": "Edilizia Gialli",
            "vat_number": "IT03504190103",
            "contact_email": "a@b.example",
            "plan": "contract",
        },
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Edilizia Gialli" in page and "03504190103" in page
    assert "Amministrazione autonoma abilitata su richiesta del cliente" in page


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "plan": "payg"}, "name", "Campo obbligatorio"),
        ({"name": "x" * 201, "plan": "payg"}, "name", "Al massimo 200"),
        ({"name": "Ok", "plan": "payg", "vat_number": "12345678901"}, "vat_number", "Partita IVA non valida"),
        ({"name": "Ok", "plan": "gratis"}, "plan", "Il piano deve essere"),
        ({"name": "Ok", "plan": "payg", "contact_email": "non-una-email"}, "contact_email", ""),
    ],
)
def test_create_customer_bad_input_shows_message_beside_field(client, staff, data, field, message):
    response = client.post("/admin/customers/new", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    match = re.search(rf'<p class="field-error" id="f-{field}-error">([^<]+)</p>', page)
    assert match and message in match.group(1)
    assert f'id="f-{field}"' in page and 'aria-invalid="true"' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 0


def test_create_customer_unicode_name(client, staff):
    response = client.post("/admin/customers/new", data={"name": "Caffè Ünïcode 東京", "plan": "payg"})
    assert response.status_code == 303
    assert "Caffè Ünïcode 東京" in client.get("/admin/customers?q=caffè").get_data(as_text=True)


def test_edit_customer_with_htmx(client, make, staff):
    c = make.customer(name="Vecchio Nome")
    response = client.post(
        f"/admin/customers/{c.id}",
        data={"name": "Nuovo Nome", "vat_number": "", "contact_email": "", "plan": "payg"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "Dati del cliente salvati" in response.get_data(as_text=True)
    assert "Nuovo Nome" in client.get("/admin/customers").get_data(as_text=True)


def test_edit_customer_bad_vat_returns_422_fragment_and_keeps_data(client, make, staff):
    c = make.customer(name="Resta Così")
    response = client.post(
        f"/admin/customers/{c.id}",
        data={"name": "Cambiato", "vat_number": "IT000", "plan": "payg"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 422
    assert 'id="f-vat_number-error"' in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Customer, c.id).name == "Resta Così"


def _contract_form(values: dict[str, object], self_service: bool = False) -> dict:
    data = {f"max_{_class_id(k)}": v for k, v in values.items()}
    if self_service:
        data["self_service"] = "1"
    return data


def test_contract_saved_and_shown(client, make, staff):
    c = make.customer("contract", {"Business Mail 100 MB": 1}, self_service=False)
    response = client.post(
        f"/admin/customers/{c.id}/contract",
        data=_contract_form({"Business Mail 100 MB": 5, "Professional Suite 5.000 MB": 2}, self_service=True),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "Contratto salvato" in response.get_data(as_text=True)
    db.session.expire_all()
    got = {a.service_class.name: a.max_accounts for a in db.session.get(Customer, c.id).allowances}
    assert got == {"Business Mail 100 MB": 5, "Professional Suite 5.000 MB": 2}
    assert db.session.get(Customer, c.id).self_service is True
    page = client.get(f"/admin/customers/{c.id}").get_data(as_text=True)
    assert re.search(rf'name="max_{_class_id("Professional Suite 5.000 MB")}"[^>]*value="2"', page, re.S)
    assert page.count('type="number"') == 32  # every class, a column per type


@pytest.mark.parametrize("value", ["-1", "tre", "1.5", "999999999"])
def test_contract_bad_number_shows_message_beside_the_class(client, make, staff, value):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    key = f"max_{_class_id('Business Mail 200 MB')}"
    response = client.post(f"/admin/customers/{c.id}/contract", data={key: value})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'<p class="field-error" id="f-{key}-error">' in page
    db.session.expire_all()
    assert {a.service_class.name: a.max_accounts for a in db.session.get(Customer, c.id).allowances} == {
        "Business Mail 100 MB": 1
    }


def test_contract_unknown_class_is_refused(client, make, staff):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    response = client.post(
        f"/admin/customers/{c.id}/contract",
        data={"max_9999": "3", **_contract_form({"Business Mail 100 MB": 4})},
    )
    assert response.status_code == 422
    assert "non è una classe di servizio" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(Allowance.max_accounts)) == 1


def test_contract_below_usage_shows_the_conflict(client, make, staff):
    c = make.customer("contract", {"Business Mail 100 MB": 3})
    make.mailbox(c)
    make.mailbox(c)
    response = client.post(
        f"/admin/customers/{c.id}/contract",
        data=_contract_form({"Business Mail 100 MB": 1}),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "ha già 2 caselle Business Mail 100 MB" in page
    assert db.session.scalar(sa.select(Allowance.max_accounts)) == 3


def test_customer_admin_created_from_customer_page(client, make, staff):
    c = make.customer()
    response = client.post(
        f"/admin/customers/{c.id}/admins",
        data={"email": "capo@cliente.example", "password": "Una-password-lunga-1"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "capo@cliente.example" in response.get_data(as_text=True)
    user = db.session.scalar(sa.select(User).where(User.email == "capo@cliente.example"))
    assert user.role == "customer_admin" and user.customer_id == c.id


def test_customer_admin_bad_input(client, make, staff):
    c = make.customer()
    response = client.post(f"/admin/customers/{c.id}/admins", data={"email": "x", "password": "corta"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="f-email-error"' in page and 'id="f-password-error"' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_customer_page_links_to_audit(client, make, staff):
    c = make.customer()
    page = client.get(f"/admin/customers/{c.id}").get_data(as_text=True)
    assert f"/admin/audit?customer_id={c.id}" in page


def test_missing_customer_is_404(client, staff):
    assert client.get("/admin/customers/999").status_code == 404


def test_post_without_csrf_changes_nothing(client, make, staff):
    c = make.customer("contract", {"Business Mail 100 MB": 1}, name="Intatto")
    before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    posts = [
        ("/admin/customers/new", {"name": "Nuovo", "plan": "payg"}),
        (f"/admin/customers/{c.id}", {"name": "Cambiato", "plan": "payg"}),
        (f"/admin/customers/{c.id}/contract", _contract_form({"Business Mail 100 MB": 9})),
        (f"/admin/customers/{c.id}/admins", {"email": "a@b.example", "password": "Una-password-lunga-1"}),
    ]
    for url, data in posts:
        assert client.post(url, data=data, csrf=False).status_code == 400
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 1
    assert db.session.get(Customer, c.id).name == "Intatto"
    assert db.session.scalar(sa.select(Allowance.max_accounts)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before


# Pay per Use customers: what fits the plan (regression: a 32-cell contract grid,
# "self-administration: no", and "now set the contract" after creating one).


def test_a_pay_per_use_customer_page_has_no_contract(client, make, staff):
    c = make.customer("payg", name="Bar Sport")
    page = client.get(f"/admin/customers/{c.id}").get_data(as_text=True)
    assert "Piano Pay per Use" in page and "a punti" in page
    assert 'id="contract"' not in page and "max_" not in page
    assert "Amministrazione autonoma" not in page


def test_creating_a_pay_per_use_customer_does_not_ask_for_a_contract(client, staff):
    response = client.post(
        "/admin/customers/new", data={"name": "Bar Sport", "plan": "payg"}, follow_redirects=True
    )
    page = response.get_data(as_text=True)
    assert "Cliente «Bar Sport» creato, Pay per Use" in page and "imposta il contratto" not in page
    contract = client.post(
        "/admin/customers/new", data={"name": "Studio Blu", "plan": "contract"}, follow_redirects=True
    )
    assert "Ora imposta il contratto" in contract.get_data(as_text=True)
    assert 'id="contract"' in contract.get_data(as_text=True)


def test_switching_the_plan_with_htmx_reloads_the_page(client, make, staff):
    c = make.customer("payg", name="Bar Sport")
    response = client.post(
        f"/admin/customers/{c.id}",
        data={"name": "Bar Sport", "vat_number": "", "contact_email": "", "plan": "contract"},
        headers={"HX-Request": "true"},
    )
    # The whole page is loaded again (HX-Redirect to itself), with the saved message.
    assert response.status_code == 200 and response.headers["HX-Redirect"] == f"/admin/customers/{c.id}"
    assert 'id="contract"' in client.get(f"/admin/customers/{c.id}").get_data(as_text=True)


# One VAT number, one customer (regression: two customers with the same VAT were accepted silently).


@pytest.mark.parametrize("spelling", ["03504190103", "IT03504190103", "it 035 041 901 03", "IT 03504190103"])
def test_a_vat_number_in_use_is_refused_however_written(client, make, staff, spelling):
    from app.services import customers

    customers.create_customer(make.SYSTEM, name="Ottica Blu", plan="payg", vat_number="03504190103")
    response = client.post(
        "/admin/customers/new", data={"name": "Ottica Blu Due", "plan": "payg", "vat_number": spelling}
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    match = re.search(r'<p class="field-error" id="f-vat_number-error">([^<]+)</p>', page)
    assert match and "è già del cliente «Ottica Blu»" in match.group(1)
    assert 'name="vat_duplicate_reason"' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 1


def test_staff_may_accept_a_duplicate_vat_with_a_reason_in_the_audit(client, make, staff):
    from app.services import customers

    customers.create_customer(make.SYSTEM, name="Ottica Blu", plan="payg", vat_number="03504190103")
    response = client.post(
        "/admin/customers/new",
        data={
            "name": "Ottica Blu Milano",
            "plan": "payg",
            "vat_number": "IT03504190103",
            "vat_duplicate_reason": "Seconda sede con contratto separato",
        },
    )
    assert response.status_code == 303
    event = db.session.scalar(
        sa.select(AuditEvent).where(
            AuditEvent.action == "customer.create", AuditEvent.target == "Ottica Blu Milano"
        )
    )
    assert event.changes["vat_duplicate_reason"] == [None, "Seconda sede con contratto separato"]
    audit = client.get("/admin/audit").get_data(as_text=True)
    assert "motivo della partita IVA già in uso: — → Seconda sede con contratto separato" in audit


def test_editing_to_another_customers_vat_is_refused_keeping_ones_own_is_fine(client, make, staff):
    from app.services import customers

    customers.create_customer(make.SYSTEM, name="Ottica Blu", plan="payg", vat_number="03504190103")
    other = customers.create_customer(make.SYSTEM, name="Bar Sport", plan="payg", vat_number="12345670017")
    data = {"name": "Bar Sport", "contact_email": "", "plan": "payg"}
    same = client.post(
        f"/admin/customers/{other.id}",
        data={**data, "vat_number": "IT12345670017"},
        headers={"HX-Request": "true"},
    )
    assert same.status_code == 200
    taken = client.post(
        f"/admin/customers/{other.id}",
        data={**data, "vat_number": "03504190103"},
        headers={"HX-Request": "true"},
    )
    assert taken.status_code == 409 and "è già del cliente «Ottica Blu»" in taken.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Customer, other.id).vat_number == "12345670017"


def test_api_refuses_a_duplicate_vat_unless_a_reason_is_given(client, make):
    from app.services import customers, users

    customers.create_customer(make.SYSTEM, name="Ottica Blu", plan="payg", vat_number="03504190103")
    token = users.create_token(make.SYSTEM, make.staff(), "t")[1]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"name": "Ottica Blu Due", "plan": "payg", "vat_number": "IT03504190103"}
    refused = client.post("/api/v1/customers", json=body, headers=headers)
    assert refused.status_code == 409 and "Ottica Blu" in refused.get_json()["error"]
    ok = client.post("/api/v1/customers", json={**body, "vat_duplicate_reason": "Filiale"}, headers=headers)
    assert ok.status_code == 201 and ok.get_json()["vat_number"] == "03504190103"
