"""After an action the page says what happened, in words, in its status region: swapped in out of
band by an htmx reply (a deleted row leaves nothing else behind), flashed after a full-page form."""

from __future__ import annotations

import re

import pytest

from app.services import aliases, lists, mailboxes
from tests import factories

HX = {"HX-Request": "true"}
STATUS_OOB = re.compile(
    r'<template><div id="status-region" hx-swap-oob="innerHTML">'
    r'<p class="notice notice-ok flash"><span>([^<]*)</span>'
)


def announced(response) -> str | None:
    """The words an htmx reply sends to the page's status region, if any."""
    found = STATUS_OOB.findall(response.get_data(as_text=True))
    assert len(found) <= 1
    return found[0] if found else None


def status_region(html: str) -> str:
    """The text of a full page's status region."""
    match = re.search(r'<div id="status-region"[^>]*role="status" aria-live="polite">(.*?)</div>', html, re.S)
    assert match, "no status region on the page"
    return re.sub(r"<[^>]+>", " ", match.group(1)).strip()


@pytest.fixture
def customer(make, auth):
    c = make.customer("payg", domain="rossi.example")
    auth.login(make.admin(c).email)
    return c


def test_every_page_has_an_empty_status_region_ready_for_announcements(client, customer):
    html = client.get(f"/customers/{customer.id}/mailboxes").get_data(as_text=True)
    assert status_region(html) == ""


def test_mailbox_save_suspend_reactivate_delete_are_said_in_words_to_htmx(client, make, customer):
    box = make.mailbox(customer, "mario")
    url = f"/customers/{customer.id}/mailboxes/{box.id}"

    saved = client.post(
        url, data={"display_name": "Mario R.", "service_class": box.service_class_id}, headers=HX
    )
    assert saved.status_code == 200
    assert announced(saved) == "Modifiche a mario@rossi.example salvate."
    assert saved.get_data(as_text=True).lstrip().startswith('<tr id="mailbox-')  # the row, then the words

    suspended = client.post(f"{url}/status", data={"status": "suspended"}, headers=HX)
    assert announced(suspended) == (
        "La casella mario@rossi.example è sospesa: non può accedere, la posta continua ad arrivare."
    )
    reactivated = client.post(f"{url}/status", data={"status": "active"}, headers=HX)
    assert announced(reactivated) == "La casella mario@rossi.example è di nuovo attiva."

    deleted = client.post(f"{url}/delete", headers=HX)
    assert announced(deleted) == "Casella mario@rossi.example eliminata."
    assert "<tr" not in deleted.get_data(as_text=True)  # nothing takes the removed row's place
    assert mailboxes.search_mailboxes(factories.SYSTEM, customer.id).total == 0


def test_a_failed_save_announces_nothing(client, make, customer):
    box = make.mailbox(customer, "mario")
    response = client.post(
        f"/customers/{customer.id}/mailboxes/{box.id}",
        data={"display_name": "x" * 500, "service_class": box.service_class_id},
        headers=HX,
    )
    assert response.status_code == 422
    assert announced(response) is None


def test_mailbox_actions_without_javascript_land_on_a_page_that_says_what_happened(client, make, customer):
    box = make.mailbox(customer, "mario")
    url = f"/customers/{customer.id}/mailboxes/{box.id}"
    page = client.post(f"{url}/status", data={"status": "suspended"}, follow_redirects=True)
    assert "La casella mario@rossi.example è sospesa" in status_region(page.get_data(as_text=True))
    page = client.post(f"{url}/delete", follow_redirects=True)
    assert status_region(page.get_data(as_text=True)) == "Casella mario@rossi.example eliminata."
    # Shown once: the next page is quiet again.
    assert status_region(client.get(f"/customers/{customer.id}/mailboxes").get_data(as_text=True)) == ""


def test_alias_save_and_delete_are_said_in_words(client, make, customer):
    anna, luca = make.mailbox(customer, "anna"), make.mailbox(customer, "luca")
    alias = make.alias(customer, "info", anna)
    url = f"/customers/{customer.id}/aliases/{alias.id}"

    saved = client.post(url, data={"target": luca.address}, headers=HX)
    assert announced(saved) == "Alias info@rossi.example aggiornato: la posta arriva a luca@rossi.example."
    assert "&rarr; luca@rossi.example" in saved.get_data(as_text=True)  # the row, then the words

    deleted = client.post(f"{url}/delete", headers=HX)
    assert announced(deleted) == "Alias info@rossi.example eliminato."
    assert deleted.headers["HX-Trigger"] == "aliases-changed"  # the count above the table follows
    assert aliases.list_aliases(factories.SYSTEM, customer.id) == []

    alias = make.alias(customer, "ordini", anna)
    page = client.post(f"/customers/{customer.id}/aliases/{alias.id}/delete", follow_redirects=True)
    assert status_region(page.get_data(as_text=True)) == "Alias ordini@rossi.example eliminato."


def test_list_member_removal_names_the_member(client, make, customer):
    make.mailbox(customer, "anna")
    dlist = make.dlist(customer, "tutti", ["anna@rossi.example", "esterno@example.org"])
    external = next(m for m in dlist.members if m.external_address)
    url = f"/customers/{customer.id}/lists/{dlist.id}"

    removed = client.post(f"{url}/members/{external.id}/remove", headers=HX).get_data(as_text=True)
    assert re.search(r'role="status"><p>esterno@example.org tolto dalla lista.</p>', removed)

    [anna] = lists.get_list(factories.SYSTEM, dlist.id).members
    page = client.post(f"{url}/members/{anna.id}/remove", follow_redirects=True).get_data(as_text=True)
    assert status_region(page) == "anna@rossi.example tolto dalla lista."


def test_list_delete_lands_on_the_lists_page_with_the_words(client, make, customer):
    dlist = make.dlist(customer, "tutti", ["fuori@example.org"])
    response = client.post(f"/customers/{customer.id}/lists/{dlist.id}/delete", headers=HX)
    assert response.headers["HX-Redirect"] == f"/customers/{customer.id}/lists"
    page = client.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert status_region(page) == "Lista tutti@rossi.example eliminata."
