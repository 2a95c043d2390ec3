"""The mailbox list and its changes, through the portal's routes, as a customer admin sees them."""

from __future__ import annotations

import re
from html import unescape

import pytest

from app.services import capacity, classes, mailboxes
from tests import factories

HX = {"HX-Request": "true"}


def rows(html: str) -> list[str]:
    """Addresses of the table rows on a page, in order."""
    found = re.findall(
        r'<tr id="mailbox-\d+"[^>]*>\s*<td class="primary-cell">\s*<a href="[^"]+">([^<]+)@<wbr>([^<]+)</a>',
        html,
    )
    return [f"{local}@{domain}" for local, domain in found]


def link(html: str, rel: str) -> str | None:
    """The href of the page's link with this rel (next, prev, first), None without one."""
    for tag in re.findall(r"<a\b[^>]*>", html):
        if f'rel="{rel}"' in tag:
            return unescape(re.search(r'href="([^"]*)"', tag).group(1))
    return None


def addresses(c) -> list[str]:
    return [m.address for m in mailboxes.search_mailboxes(factories.SYSTEM, c.id, per_page=1000).items]


@pytest.fixture
def payg(make, auth):
    c = make.customer("payg", domain="rossi.example")
    auth.login(make.admin(c).email)
    return c


def test_list_pages_25_at_a_time_with_the_filters_in_the_url(client, make, payg):
    for i in range(30):
        make.mailbox(payg, f"u{i:02d}")
    first = client.get(f"/customers/{payg.id}/mailboxes").get_data(as_text=True)
    assert rows(first) == [f"u{i:02d}@rossi.example" for i in range(25)]
    assert "30 caselle in tutto" in first
    # The next page starts at the first address it shows: a page costs the same wherever it is.
    assert link(first, "next") == f"/customers/{payg.id}/mailboxes?start=u25@rossi.example"
    assert link(first, "prev") is None
    second = client.get(link(first, "next")).get_data(as_text=True)
    assert rows(second) == [f"u{i:02d}@rossi.example" for i in range(25, 30)]
    assert link(second, "next") is None and "30 caselle in tutto" in second
    assert rows(client.get(link(second, "prev")).get_data(as_text=True)) == rows(first)
    assert link(second, "first") == f"/customers/{payg.id}/mailboxes"


def test_search_and_filters_return_the_right_rows(client, make, payg):
    make.mailbox(payg, "mario.rossi", display_name="Mario Rossi")
    make.mailbox(payg, "giulia", display_name="Giulia Rossi", service_class="Business Mail Plus 1.000 MB")
    ordini = make.mailbox(payg, "ordini", display_name="Ufficio ordini")
    mailboxes.update_mailbox(factories.SYSTEM, ordini.id, status="suspended")
    url = f"/customers/{payg.id}/mailboxes"

    assert rows(client.get(url + "?q=MARIO").get_data(as_text=True)) == ["mario.rossi@rossi.example"]
    assert rows(client.get(url + "?q=giulia").get_data(as_text=True)) == ["giulia@rossi.example"]
    assert rows(client.get(url + "?q=ufficio").get_data(as_text=True)) == ["ordini@rossi.example"]
    assert rows(client.get(url + "?status=suspended").get_data(as_text=True)) == ["ordini@rossi.example"]
    plus = classes.resolve("Business Mail Plus 1.000 MB").id
    html = client.get(url + f"?class={plus}").get_data(as_text=True)
    assert rows(html) == ["giulia@rossi.example"]
    assert f'<option value="{plus}" selected>' in html
    empty = client.get(url + "?q=nessuno").get_data(as_text=True)
    assert rows(empty) == [] and "Nessuna casella corrisponde alla ricerca." in empty


def test_htmx_gets_the_fragment_and_a_full_request_the_page(client, make, payg):
    make.mailbox(payg, "anna")
    url = f"/customers/{payg.id}/mailboxes?q=anna"
    full = client.get(url)
    fragment = client.get(url, headers=HX)
    assert "HX-Request" in full.headers["Vary"] and "HX-Request" in fragment.headers["Vary"]
    assert "<html" in full.get_data(as_text=True) and 'id="mailbox-results"' in full.get_data(as_text=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and 'id="mailbox-results"' not in body
    assert rows(body) == ["anna@rossi.example"]
    # A boosted navigation is a full page, as its URL is.
    boosted = client.get(url, headers={**HX, "HX-Boosted": "true"}).get_data(as_text=True)
    assert "<html" in boosted


def test_active_search_is_wired_to_push_the_url(client, make, payg):
    html = client.get(f"/customers/{payg.id}/mailboxes").get_data(as_text=True)
    assert 'hx-trigger="input changed delay:250ms, search"' in html
    assert 'hx-push-url="true"' in html


def test_create_edit_suspend_delete_change_what_the_list_shows(client, make, payg):
    url = f"/customers/{payg.id}/mailboxes"
    created = client.post(
        url,
        data={
            "local_part": "Nuovo.Collega",
            "domain": "rossi.example",
            "display_name": "Nuovo Collega",
            "password": "Segreta-123",
            "service_class": "Business Mail 200 MB",
        },
        headers=HX,
    )
    assert created.status_code == 200
    assert created.headers["HX-Trigger"] == "mailboxes-changed"
    assert "Casella nuovo.collega@rossi.example creata." in created.get_data(as_text=True)
    assert rows(client.get(url).get_data(as_text=True)) == ["nuovo.collega@rossi.example"]
    box_id = mailboxes.search_mailboxes(factories.SYSTEM, payg.id).items[0].id

    edit_row = client.get(f"{url}/{box_id}/edit", headers=HX).get_data(as_text=True)
    assert edit_row.lstrip().startswith('<tr id="mailbox-') and 'class="editing"' in edit_row
    saved = client.post(
        f"{url}/{box_id}",
        data={
            "display_name": "Collega Rinominato",
            "service_class": "Standard Suite 1.000 MB",
            "password": "",
        },
        headers=HX,
    ).get_data(as_text=True)
    assert "Collega Rinominato" in saved and "Standard Suite 1.000 MB" in saved

    suspended = client.post(f"{url}/{box_id}/status", data={"status": "suspended"}, headers=HX)
    assert re.search(r">\s*Sospesa\s*<", suspended.get_data(as_text=True))  # the row's state, in words
    assert "Sospesa" in client.get(url + "?status=suspended").get_data(as_text=True)
    reactivated = client.post(f"{url}/{box_id}/status", data={"status": "active"}).headers["Location"]
    assert reactivated.endswith(url)
    assert rows(client.get(url + "?status=active").get_data(as_text=True)) == ["nuovo.collega@rossi.example"]

    deleted = client.post(f"{url}/{box_id}/delete", headers=HX)
    # Nothing takes the row's place: only the words for the page's status region.
    body = deleted.get_data(as_text=True)
    assert deleted.status_code == 200 and "<tr" not in body and 'hx-swap-oob="innerHTML"' in body
    # The list reloads, and so does the create panel with its per-class counts.
    assert deleted.headers["HX-Trigger"] == "mailboxes-changed, mailbox-usage-changed"
    assert rows(client.get(url).get_data(as_text=True)) == []
    assert addresses(payg) == []


def test_forms_work_without_javascript(client, make, payg):
    url = f"/customers/{payg.id}/mailboxes"
    response = client.post(
        url,
        data={
            "local_part": "anna",
            "domain": "rossi.example",
            "password": "Segreta-123",
            "service_class": "Business Mail 100 MB",
        },
    )
    assert response.status_code == 303 and response.headers["Location"].endswith(url)
    page = client.get(url).get_data(as_text=True)
    assert "Casella anna@rossi.example creata." in page and rows(page) == ["anna@rossi.example"]
    box_id = mailboxes.search_mailboxes(factories.SYSTEM, payg.id).items[0].id
    confirm = client.get(f"{url}/{box_id}/delete").get_data(as_text=True)
    assert "Eliminare la casella anna@rossi.example?" in confirm and 'method="post"' in confirm
    disable = client.get(f"{url}/{box_id}/status?status=disabled").get_data(as_text=True)
    assert 'name="status" value="disabled"' in disable
    client.post(f"{url}/{box_id}/delete")
    assert addresses(payg) == []


def test_confirmations_name_the_address(client, make, payg):
    make.mailbox(payg, "anna")
    html = client.get(f"/customers/{payg.id}/mailboxes").get_data(as_text=True)
    assert "Eliminare definitivamente la casella anna@rossi.example" in html
    assert "Sospendere la casella anna@rossi.example?" in html
    assert "Disabilitare la casella anna@rossi.example?" in html


def test_unicode_domains_are_shown_in_unicode(client, make, auth):
    c = make.customer("payg", domain="caffè.example")
    make.mailbox(c, "mario")
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/mailboxes").get_data(as_text=True)
    assert rows(html) == ["mario@caffè.example"]


GOOD = {
    "local_part": "anna",
    "display_name": "Anna",
    "password": "Segreta-123",
    "service_class": "Business Mail 100 MB",
}


@pytest.mark.parametrize(
    "change, field_id, message, status",
    [
        ({"local_part": ""}, "new-mailbox-local", "Inserisci un indirizzo email", 422),
        ({"local_part": "a" * 65}, "new-mailbox-local", "al massimo 64 caratteri", 422),
        ({"local_part": "josé"}, "new-mailbox-local", "solo lettere non accentate", 422),
        ({"local_part": "anna@x"}, "new-mailbox-local", "nome@dominio", 422),
        ({"domain": "altrui.example"}, "new-mailbox-local", "non è tra i domini di questo cliente", 422),
        ({"display_name": "x" * 201}, "new-name", "Al massimo 200 caratteri", 422),
        ({"password": ""}, "new-password", "Inserisci una password", 422),
        ({"password": "corta"}, "new-password", "almeno 8 caratteri", 422),
        ({"service_class": "Business Mail 300 MB"}, "new-class", "non è una classe di servizio", 422),
        ({"service_class": ""}, "new-class", "Scegli una classe di servizio", 422),
    ],
)
def test_bad_input_shows_the_message_beside_the_field_and_writes_nothing(
    client, make, payg, change, field_id, message, status
):
    other = make.customer(domain="altrui.example")
    make.mailbox(other, "qualcuno")
    data = {**GOOD, "domain": "rossi.example", **change}
    for headers in ({}, HX):
        response = client.post(f"/customers/{payg.id}/mailboxes", data=data, headers=headers)
        assert response.status_code == status
        html = response.get_data(as_text=True)
        error = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
        assert error and message in error.group(1), html[-2000:]
        assert f'aria-describedby="{field_id}-error"' in html
    assert addresses(payg) == []


def test_a_duplicate_address_is_refused_beside_the_field(client, make, payg):
    make.mailbox(payg, "anna")
    make.alias(payg, "info", make.mailbox(payg, "mario"))
    for local, what in (("anna", "una casella"), ("info", "un alias")):
        data = {**GOOD, "local_part": local, "domain": "rossi.example"}
        response = client.post(f"/customers/{payg.id}/mailboxes", data=data, headers=HX)
        assert response.status_code == 409
        html = response.get_data(as_text=True)
        assert 'id="new-mailbox-local-error"' in html and f"è già usato da {what}" in html
    assert addresses(payg) == ["anna@rossi.example", "mario@rossi.example"]


def test_bad_edit_shows_the_message_in_the_row_and_changes_nothing(client, make, payg):
    box = make.mailbox(payg, "anna", display_name="Anna")
    url = f"/customers/{payg.id}/mailboxes/{box.id}"
    response = client.post(url, data={"display_name": "x" * 201, "service_class": "nessuna"}, headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("<tr") and 'class="editing"' in html
    assert f'id="edit-{box.id}-name-error"' in html and f'id="edit-{box.id}-class-error"' in html
    assert mailboxes.get_mailbox(factories.SYSTEM, box.id).display_name == "Anna"


def test_limit_message_and_one_click_capacity_request(client, make, auth):
    c = make.customer("contract", {"Business Mail 100 MB": 1}, domain="studio.example")
    make.mailbox(c, "anna")
    auth.login(make.admin(c).email)
    data = {**GOOD, "local_part": "luca", "domain": "studio.example"}
    response = client.post(f"/customers/{c.id}/mailboxes", data=data, headers=HX)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Limite del contratto raggiunto per Business Mail 100 MB: 1 casella su 1" in html
    assert "Chiedi più caselle al commerciale" in html
    assert f'hx-post="/customers/{c.id}/capacity-requests"' in html
    assert addresses(c) == ["anna@studio.example"]

    cls_id = classes.resolve("Business Mail 100 MB").id
    asked = client.post(
        f"/customers/{c.id}/capacity-requests",
        data={"service_class": cls_id, "extra_accounts": "1", "note": "Arriva Luca", "fixed": "1"},
        headers=HX,
    )
    assert asked.status_code == 200
    assert "Richiesta inviata al commerciale" in asked.get_data(as_text=True)
    [req] = capacity.list_requests(factories.SYSTEM, customer_id=c.id)
    assert (req.service_class.name, req.extra_accounts, req.status) == ("Business Mail 100 MB", 1, "open")


def test_moving_a_mailbox_past_the_contract_shows_the_limit_in_the_row(client, make, auth):
    c = make.customer("contract", {"Business Mail 100 MB": 2, "Business Mail Plus 100 MB": 1})
    make.mailbox(c, "plus", service_class="Business Mail Plus 100 MB")
    box = make.mailbox(c, "anna")
    auth.login(make.admin(c).email)
    response = client.post(
        f"/customers/{c.id}/mailboxes/{box.id}",
        data={"display_name": "Anna", "service_class": "Business Mail Plus 100 MB"},
        headers=HX,
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Business Mail Plus 100 MB" in html and "Chiedi più caselle al commerciale" in html
    assert mailboxes.get_mailbox(factories.SYSTEM, box.id).service_class.name == "Business Mail 100 MB"


def test_changes_without_the_csrf_token_are_refused(client, make, payg):
    box = make.mailbox(payg, "anna")
    response = client.post(f"/customers/{payg.id}/mailboxes/{box.id}/delete", csrf=False)
    assert response.status_code == 400
    assert addresses(payg) == ["anna@rossi.example"]


def test_a_mailbox_has_its_own_page_and_its_row_for_htmx(client, make, payg):
    box = make.mailbox(payg, "anna", display_name="Anna Bianchi")
    url = f"/customers/{payg.id}/mailboxes/{box.id}"
    page = client.get(url).get_data(as_text=True)
    assert "<h1>anna@rossi.example</h1>" in page and "Modifica la casella" in page
    assert (
        f'href="{url}/delete"' in page and f'hx-post="{url}/delete"' not in page
    )  # via the confirmation page
    row = client.get(url, headers=HX).get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="mailbox-{box.id}"') and "<html" not in row


def test_the_create_panel_rereads_the_counts_after_a_delete(client, auth, make):
    c = make.customer("contract", {"Business Mail 100 MB": 2})
    auth.login(make.admin(c).email)
    first, _second = make.mailbox(c), make.mailbox(c)
    url = f"/customers/{c.id}/mailboxes"
    assert "0 di 2 libere" in client.get(f"{url}/new", headers=HX).get_data(as_text=True)
    deleted = client.post(f"{url}/{first.id}/delete", headers=HX)
    assert "mailbox-usage-changed" in deleted.headers["HX-Trigger"]
    panel = client.get(f"{url}/new", headers=HX).get_data(as_text=True)
    assert 'id="mailbox-create"' in panel and "1 di 2 libera" in panel
    assert "<html" not in panel  # the fragment alone; without htmx the same URL is the full page
    assert "<html" in client.get(f"{url}/new").get_data(as_text=True)


def _class_options(html: str, select_id: str) -> list[str]:
    """The texts of a class <select>'s options (the blank "Scegli…" left out)."""
    select = re.search(rf'<select id="{select_id}".*?</select>', html, re.S).group(0)
    return [t.strip() for v, t in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select) if v]


def test_a_contract_customer_is_offered_only_its_classes_with_what_is_left(client, make, auth):
    """Regression: all 32 classes were offered; one outside the contract was refused on submit."""
    c = make.customer("contract", {"Business Mail 100 MB": 5, "Business Mail Plus 100 MB": 2})
    for _ in range(3):
        make.mailbox(c)
    make.mailbox(c, service_class="Business Mail Plus 100 MB")
    make.mailbox(c, service_class="Business Mail Plus 100 MB")
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/mailboxes/new", headers=HX).get_data(as_text=True)
    assert _class_options(html, "new-class") == [
        "Business Mail 100 MB · 2 di 5 libere",
        "Business Mail Plus 100 MB · 0 di 2 libere",
    ]


def test_the_edit_form_offers_only_the_contract_classes(client, make, auth):
    c = make.customer("contract", {"Business Mail 100 MB": 2, "Standard Suite 500 MB": 1})
    box = make.mailbox(c, service_class="Standard Suite 500 MB")
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/mailboxes/{box.id}/edit", headers=HX).get_data(as_text=True)
    assert _class_options(html, f"edit-{box.id}-class") == [
        "Business Mail 100 MB · 2 di 2 libere",
        "Standard Suite 500 MB · 0 di 1 libere",
    ]
    assert re.search(r'<option value="\d+" selected>Standard Suite 500 MB', html)


def test_pay_per_use_is_offered_all_32_classes(client, make, payg):
    html = client.get(f"/customers/{payg.id}/mailboxes/new", headers=HX).get_data(as_text=True)
    options = _class_options(html, "new-class")
    assert len(options) == 32 and "libere" not in html and options[0] == "Business Mail 100 MB"
