"""Who may post to a list and the limits on external members, through the portal and the API."""

from __future__ import annotations

import re

import pytest

from app.services import lists, users
from tests import factories
from tests.web.test_api_endpoints import Api

HX = {"HX-Request": "true"}


@pytest.fixture
def customer(make, auth):
    c = make.customer(domain="studio.example", name="Studio Bianchi")
    auth.login(make.admin(c).email)
    return c


def checked(html: str) -> list[str]:
    return re.findall(r'name="post_policy" value="(\w+)" checked', html)


def test_the_create_form_offers_the_three_choices_closed_by_default(client, make, customer):
    url = f"/customers/{customer.id}/lists"
    page = client.get(url).get_data(as_text=True)
    assert "Chi può scrivere alla lista" in page
    for label in ("Chiunque", "Solo le caselle di Studio Bianchi", "Solo i membri"):
        assert label in page
    assert checked(page) == ["customer"]

    make.mailbox(customer, "anna")
    response = client.post(
        url,
        data={
            "local_part": "soci",
            "domain": "studio.example",
            "members": "anna@studio.example",
            "post_policy": "members",
        },
    )
    assert response.status_code == 303
    [dlist] = lists.list_lists(factories.SYSTEM, customer.id)
    assert dlist.post_policy == "members"
    assert re.search(r'data-label="Chi può scrivere">Solo i membri<', client.get(url).get_data(as_text=True))

    bad = client.post(
        url, data={"local_part": "x", "domain": "studio.example", "post_policy": "tutti"}, headers=HX
    )
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'id="new-list-post_policy-error"' in html and "Scegli chi può scrivere alla lista" in html
    assert len(lists.list_lists(factories.SYSTEM, customer.id)) == 1


def test_the_list_page_changes_who_may_post(client, make, customer):
    dlist = make.dlist(customer, "tutti", [])
    detail = f"/customers/{customer.id}/lists/{dlist.id}"
    page = client.get(detail).get_data(as_text=True)
    assert checked(page) == ["customer"]
    assert (
        "Indirizzi esterni: 0 in questa lista (al massimo 50), 0 in tutte le liste (al massimo 200)." in page
    )

    saved = client.post(f"{detail}/policy", data={"post_policy": "anyone"}, headers=HX).get_data(as_text=True)
    assert "Salvato: la regola vale dal prossimo messaggio." in saved and checked(saved) == ["anyone"]
    assert lists.get_list(factories.SYSTEM, dlist.id).post_policy == "anyone"

    refused = client.post(f"{detail}/policy", data={"post_policy": "nessuno"})
    assert refused.status_code == 422
    assert "Scegli chi può scrivere alla lista" in refused.get_data(as_text=True)
    assert lists.get_list(factories.SYSTEM, dlist.id).post_policy == "anyone"


def test_an_external_member_over_the_limit_is_refused_with_the_numbers(
    client, make, customer, app, monkeypatch
):
    monkeypatch.setitem(app.config, "LIST_EXTERNAL_PER_LIST", 1)
    dlist = make.dlist(customer, "tutti", ["uno@fuori.example"])
    detail = f"/customers/{customer.id}/lists/{dlist.id}"
    response = client.post(f"{detail}/members", data={"member": "due@fuori.example"}, headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="member-error"' in html
    assert "Troppi indirizzi esterni: 2 in questa lista, il limite è 1 per lista." in html


def test_the_api_carries_and_accepts_post_policy_and_staff_set_the_limits(client, make):
    c = make.customer(domain="api.example")
    admin = Api(client, users.create_token(factories.SYSTEM, make.admin(c), "t")[1])
    staff = Api(client, users.create_token(factories.SYSTEM, make.staff(), "t")[1])

    created = admin.post(f"/customers/{c.id}/lists", json={"address": "tutti@api.example"})
    assert created.status_code == 201 and created.get_json()["post_policy"] == "customer"
    list_id = created.get_json()["id"]
    opened = admin.post(
        f"/customers/{c.id}/lists", json={"address": "info@api.example", "post_policy": "anyone"}
    )
    assert opened.get_json()["post_policy"] == "anyone"
    patched = admin.patch(f"/lists/{list_id}", json={"post_policy": "members"})
    assert patched.status_code == 200 and patched.get_json()["post_policy"] == "members"
    bad = admin.patch(f"/lists/{list_id}", json={"post_policy": "everyone"})
    assert bad.status_code == 422 and "post_policy" in bad.get_json()["errors"]
    assert admin.get(f"/lists/{list_id}").get_json()["post_policy"] == "members"

    limits = admin.get(f"/customers/{c.id}/list-limits").get_json()
    assert limits == {
        "per_list": 50,
        "per_customer": 200,
        "per_list_override": None,
        "per_customer_override": None,
        "external_members": 0,
    }
    assert admin.put(f"/customers/{c.id}/list-limits", json={"per_list": 500}).status_code == 403
    raised = staff.put(f"/customers/{c.id}/list-limits", json={"per_list": 100, "per_customer": None})
    assert raised.status_code == 200 and raised.get_json()["per_list"] == 100
    assert raised.get_json()["per_customer"] == 200
    assert staff.put(f"/customers/{c.id}/list-limits", json={"per_list": -1}).status_code == 422
    assert staff.put(f"/customers/{c.id}/list-limits", json={"per_list": "100"}).status_code == 422


def test_without_self_administration_the_rule_is_shown_not_offered(client, make, auth):
    c = make.customer(
        "contract", {"Business Mail 100 MB": 1}, self_service=False, domain="sola.example", name="Sola"
    )
    dlist = make.dlist(c, "tutti", [])
    auth.login(make.admin(c).email)
    page = client.get(f"/customers/{c.id}/lists/{dlist.id}").get_data(as_text=True)
    assert "<p>Solo le caselle di Sola</p>" in page and 'name="post_policy"' not in page
    assert (
        client.post(f"/customers/{c.id}/lists/{dlist.id}/policy", data={"post_policy": "anyone"}).status_code
        == 403
    )
    assert lists.get_list(factories.SYSTEM, dlist.id).post_policy == "customer"
