"""Aliases and distribution lists through the portal: free, and edited in place."""

from __future__ import annotations

import re

import pytest

from app.services import aliases, lists
from tests import factories

HX = {"HX-Request": "true"}


@pytest.fixture
def customer(make, auth):
    c = make.customer("contract", {"Business Mail 100 MB": 5}, domain="studio.example")
    auth.login(make.admin(c).email)
    return c


def alias_rows(html: str) -> list[tuple[str, str]]:
    return re.findall(
        r'<td class="primary-cell">([^<]+)</td>\s*<td data-label="[^"]+">&rarr; ([^<]+)</td>', html
    )


def test_alias_create_change_target_and_delete(client, make, customer):
    anna, luca = make.mailbox(customer, "anna"), make.mailbox(customer, "luca")
    url = f"/customers/{customer.id}/aliases"
    page = client.get(url).get_data(as_text=True)
    assert "Alias e liste sono gratuiti" in page
    assert '<option value="anna@studio.example">' in page  # targets offered while typing

    created = client.post(
        url, data={"local_part": "info", "domain": "studio.example", "target": anna.address}, headers=HX
    )
    assert created.status_code == 200 and created.headers["HX-Trigger"] == "aliases-changed"
    assert "Alias info@studio.example creato" in created.get_data(as_text=True)
    assert alias_rows(client.get(url).get_data(as_text=True)) == [
        ("info@studio.example", "anna@studio.example")
    ]

    [alias] = aliases.list_aliases(factories.SYSTEM, customer.id)
    edit = client.get(f"{url}/{alias.id}/edit", headers=HX).get_data(as_text=True)
    assert 'class="editing"' in edit and 'name="target"' in edit
    row = client.post(f"{url}/{alias.id}", data={"target": luca.address}, headers=HX).get_data(as_text=True)
    assert "&rarr; luca@studio.example" in row
    assert alias_rows(client.get(url).get_data(as_text=True)) == [
        ("info@studio.example", "luca@studio.example")
    ]

    assert "Eliminare l'alias info@studio.example?" in client.get(url).get_data(as_text=True)
    deleted = client.post(f"{url}/{alias.id}/delete", headers=HX)
    # Nothing takes the row's place: only the words for the page's status region.
    body = deleted.get_data(as_text=True)
    assert deleted.status_code == 200 and "<tr" not in body and 'hx-swap-oob="innerHTML"' in body
    assert aliases.list_aliases(factories.SYSTEM, customer.id) == []


@pytest.mark.parametrize(
    "data, field_id, message",
    [
        (
            {"local_part": "", "target": "anna@studio.example"},
            "new-alias-local",
            "Inserisci un indirizzo email",
        ),
        (
            {"local_part": "info", "target": "nessuno@studio.example"},
            "new-alias-target",
            "Scegli una casella",
        ),
        ({"local_part": "info", "target": ""}, "new-alias-target", "Scegli una casella"),
        (
            {"local_part": "anna", "target": "anna@studio.example"},
            "new-alias-local",
            "già usato da una casella",
        ),
        (
            {"local_part": "info", "domain": "altro.example", "target": "anna@studio.example"},
            "new-alias-local",
            "non è tra i domini",
        ),
    ],
)
def test_bad_alias_input_shows_the_message_beside_the_field(client, make, customer, data, field_id, message):
    make.mailbox(customer, "anna")
    response = client.post(f"/customers/{customer.id}/aliases", data={"domain": "studio.example", **data})
    assert response.status_code in (409, 422)
    html = response.get_data(as_text=True)
    error = re.search(rf'id="{field_id}-error">([^<]*)<', html)
    assert error and message in error.group(1)
    assert aliases.list_aliases(factories.SYSTEM, customer.id) == []


def test_bad_alias_target_change_is_shown_in_the_row(client, make, customer):
    anna = make.mailbox(customer, "anna")
    alias = make.alias(customer, "info", anna)
    response = client.post(
        f"/customers/{customer.id}/aliases/{alias.id}", data={"target": "fuori@example.com"}, headers=HX
    )
    assert response.status_code == 422
    assert f'id="alias-target-{alias.id}-error"' in response.get_data(as_text=True)
    assert aliases.get_alias(factories.SYSTEM, alias.id).target.address == "anna@studio.example"


def test_list_create_with_members_then_edit_members_and_delete(client, make, customer):
    make.mailbox(customer, "anna")
    make.mailbox(customer, "luca")
    url = f"/customers/{customer.id}/lists"
    assert "Alias e liste sono gratuiti" in client.get(url).get_data(as_text=True)
    response = client.post(
        url,
        data={
            "local_part": "tutti",
            "domain": "studio.example",
            "description": "Tutto lo studio",
            "members": "anna@studio.example\nluca@studio.example, commercialista@example.com",
        },
    )
    assert response.status_code == 303
    [dlist] = lists.list_lists(factories.SYSTEM, customer.id)
    assert response.headers["Location"].endswith(f"{url}/{dlist.id}")
    table = client.get(url).get_data(as_text=True)
    assert "tutti@studio.example" in table and "Tutto lo studio" in table
    assert re.search(r'data-label="Membri" class="num">3<', table)

    detail = f"{url}/{dlist.id}"
    page = client.get(detail).get_data(as_text=True)
    assert "commercialista@example.com" in page and "esterno" in page

    added = client.post(f"{detail}/members", data={"member": "socio@example.org"}, headers=HX).get_data(
        as_text=True
    )
    assert "socio@example.org aggiunto alla lista." in added and "(4)" in added
    bad = client.post(f"{detail}/members", data={"member": "refuso@studio.example"}, headers=HX)
    assert bad.status_code == 422
    assert 'id="member-error"' in bad.get_data(
        as_text=True
    ) and "non è una casella di questo cliente" in bad.get_data(as_text=True)

    member = [
        m for m in lists.get_list(factories.SYSTEM, dlist.id).members if m.address == "luca@studio.example"
    ][0]
    removed = client.post(f"{detail}/members/{member.id}/remove", headers=HX).get_data(as_text=True)
    assert "luca@studio.example tolto dalla lista." in removed and "(3)" in removed
    assert "luca@studio.example" not in removed.split('<ul class="members">')[1]

    described = client.post(detail, data={"description": "Soci e collaboratori"}, headers=HX).get_data(
        as_text=True
    )
    assert "Descrizione salvata." in described
    assert lists.get_list(factories.SYSTEM, dlist.id).description == "Soci e collaboratori"

    confirm = client.get(f"{detail}/delete").get_data(as_text=True)
    assert "Eliminare la lista tutti@studio.example?" in confirm
    deleted = client.post(f"{detail}/delete", headers=HX)
    assert deleted.headers["HX-Redirect"] == url
    assert lists.list_lists(factories.SYSTEM, customer.id) == []


def test_bad_list_input_shows_the_message_beside_the_field_and_writes_nothing(client, make, customer):
    url = f"/customers/{customer.id}/lists"
    response = client.post(
        url, data={"local_part": "tutti", "domain": "studio.example", "members": "non un indirizzo"}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="new-list-members-error"' in html and "non è un indirizzo email valido" in html
    assert "non un indirizzo" in html  # what was typed is kept
    assert lists.list_lists(factories.SYSTEM, customer.id) == []
