"""Every page on a 390 px phone, as each role: nothing scrolls sideways (the page, or a table inside
it), and the "Menu" button opens the whole navigation with every link on screen and clickable.
On a desktop the navigation is a plain side column. What an in-page action did is said in words,
in view, even at the bottom of a long list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.services import capacity, domains
from app.services.access import Actor
from tests import factories
from tests.e2e.conftest import open_context

SHOTS = Path("/tmp/e2e-shots")

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Anything that scrolls sideways: the page itself, or a box inside it (a table in its wrapper).
SIDEWAYS = """() => {
  const out = [];
  const doc = document.scrollingElement;
  if (doc.scrollWidth > innerWidth) out.push(`page ${doc.scrollWidth}px wide`);
  for (const el of document.querySelectorAll("body *")) {
    const style = getComputedStyle(el);
    if (!["auto", "scroll"].includes(style.overflowX)) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      out.push(`${el.tagName.toLowerCase()}.${el.className} ${el.scrollWidth}px in ${el.clientWidth}px`);
    }
  }
  return out;
}"""

# Each menu link: on screen, inside the width, and the thing a tap on its middle would hit.
UNREACHABLE = """() => {
  const out = [];
  for (const a of document.querySelectorAll("#sidenav a")) {
    a.scrollIntoView({block: "center"});
    const r = a.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (r.width === 0 || r.left < 0 || r.right > innerWidth || !a.contains(hit)) out.push(a.textContent.trim());
  }
  return out;
}"""


def shot(page: Page, name: str) -> None:
    # Screenshots are for a person reviewing the UI; they never decide the outcome.
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def no_js_page(browser, live_server, htmx_js):
    context = open_context(browser, live_server, htmx_js, java_script_enabled=False, viewport=PHONE)
    yield context.new_page()
    context.close()


@pytest.fixture
def people(make):
    """A Pay per Use and a contract customer with everything the pages list, their admins, and staff."""
    payg = make.customer("payg", domain="rossi-caffe.example", name="Torrefazione Rossi S.r.l.")
    boxes = [
        make.mailbox(payg, local, display_name=name, service_class="Professional Suite 5.000 MB")
        for local, name in (
            ("mario.rossi", "Mario Rossi"),
            ("giulia.rossi", "Giulia Rossi"),
            ("ordini", "Ordini"),
        )
    ]
    alias = make.alias(payg, "info", boxes[0])
    dlist = make.dlist(
        payg, "tutti", [b.address for b in boxes] + ["commercialista.di.fiducia@studio-esterno.example"]
    )
    contract = make.customer(
        "contract",
        {"Business Mail 100 MB": 10, "Business Mail Plus 100 MB": 3},
        domain="studiobianchi.example",
        name="Studio Associato Bianchi",
    )
    make.mailbox(contract, "anna.bianchi", display_name="Anna Bianchi")
    for service_class, extra, note in (
        ("Business Mail 100 MB", 3, "Due nuovi praticanti e una segretaria da gennaio"),
        ("Business Mail Plus 100 MB", 1, "Un collega in più"),
    ):
        capacity.request_capacity(
            factories.SYSTEM, contract.id, service_class=service_class, extra_accounts=extra, note=note
        )
    plus = capacity.list_requests(factories.SYSTEM, customer_id=contract.id)[0]
    capacity.decide(factories.SYSTEM, plus.id, approve=True)  # one for the "already decided" table
    payg_admin = make.admin(payg, email="admin@rossi-caffe.example")
    # A domain the customer adds waits for staff approval: the pages show that state too.
    domains.add_domain(Actor.for_user(payg_admin), payg.id, "torrefazionerossi.it")
    return {
        "payg": payg,
        "payg_admin": payg_admin.email,
        "contract": contract,
        "contract_admin": make.admin(contract, email="it@studiobianchi.example").email,
        "staff": make.staff("supporto@collabra.it").email,
        "mailbox": boxes[0],
        "alias": alias,
        "list": dlist,
    }


def customer_pages(c, people) -> list[str]:
    base = f"/customers/{c.id}"
    pages = [f"{base}/", f"{base}/mailboxes", f"{base}/aliases", f"{base}/lists", f"{base}/domains"]
    if c.plan == "contract":
        pages.append(f"{base}/capacity-requests")
    return pages


def pages_for(role: str, people) -> list[str]:
    payg, contract = people["payg"], people["contract"]
    payg_details = [
        f"/customers/{payg.id}/mailboxes/{people['mailbox'].id}",
        f"/customers/{payg.id}/mailboxes/{people['mailbox'].id}/delete",
        f"/customers/{payg.id}/aliases/{people['alias'].id}",
        f"/customers/{payg.id}/lists/{people['list'].id}",
    ]
    help_pages = [
        "/help/client-settings",
        "/help/guides/thunderbird",
        "/help/guides/apple",
        "/help/faq",
        "/account",
    ]
    if role == "payg":
        return customer_pages(payg, people) + payg_details + help_pages
    if role == "contract":
        return customer_pages(contract, people) + help_pages
    return [
        "/admin/customers",
        f"/admin/customers/{contract.id}",
        f"/admin/customers/{payg.id}",
        "/admin/customers/new",
        "/admin/capacity-requests",
        "/admin/audit",
        "/admin/users",
        "/admin/health",
        *customer_pages(contract, people),
        *payg_details,
        *help_pages,
    ]


def check_phone_page(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("main h1").first).to_be_visible()
    assert page.evaluate(SIDEWAYS) == [], f"{url} scrolls sideways"

    menu = page.locator("#sidenav summary")
    links = page.locator("#sidenav a")
    expect(menu).to_be_visible()
    expect(menu).to_contain_text("Menu")
    expect(links.first).to_be_hidden()
    current = page.locator("#sidenav a[aria-current=page]")
    if current.count():
        # The closed menu names the page you are on.
        expect(menu).to_contain_text(current.first.text_content().strip())

    menu.click()
    for i in range(links.count()):
        expect(links.nth(i)).to_be_visible()
    assert page.evaluate(UNREACHABLE) == [], f"{url}: menu links off screen or covered"
    assert page.evaluate(SIDEWAYS) == [], f"{url} scrolls sideways with the menu open"
    menu.click()
    expect(links.first).to_be_hidden()


@pytest.mark.parametrize("role", ["payg", "contract", "staff"])
def test_every_page_fits_a_phone_and_its_menu_opens(page, login, people, role):
    page.set_viewport_size(PHONE)
    login(page, people[f"{role}_admin"] if role != "staff" else people["staff"])
    urls = pages_for(role, people)
    # And every page the menu offers, including any this list does not know of.
    page.goto(urls[0])
    urls += [
        href
        for href in page.locator("#sidenav a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
        if href not in urls
    ]
    for url in urls:
        check_phone_page(page, url)
    shot(page, f"phone-{role}-last")

    # A link in the menu takes you there, and the menu then names the new page.
    page.goto(urls[0])
    page.locator("#sidenav summary").click()
    page.locator("#sidenav").get_by_role("link", name="FAQ").click()
    expect(page).to_have_url(re.compile(r"/help/faq$"))
    expect(page.locator("#sidenav summary")).to_contain_text("FAQ")


def test_phone_tables_read_as_labelled_cards_with_their_actions_on_screen(page, login, people):
    page.set_viewport_size(PHONE)
    login(page, people["staff"])
    page.goto("/admin/capacity-requests")
    card = page.locator("#capacity tbody tr").first
    expect(card).to_contain_text("Studio Associato Bianchi")
    for button in ("Approva", "Rifiuta"):
        box = card.get_by_role("button", name=button).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], button
    # The header row is hidden: every value but the card's title and its buttons carries its
    # column's name, the same words as the header.
    labels = page.evaluate(
        """() => {
          const table = document.querySelector("#capacity table");
          const heads = [...table.tHead.rows[0].cells].map(th => th.textContent.trim());
          return [...table.tBodies[0].rows[0].cells]
            .filter(td => !/primary-cell|actions/.test(td.className))
            .map(td => [heads[td.cellIndex], getComputedStyle(td, "::before").content]);
        }"""
    )
    assert labels and all(content == f'"{head}"' for head, content in labels), labels
    shot(page, "phone-capacity-requests")


def test_without_javascript_the_phone_menu_still_opens(login, people, no_js_page):
    page = no_js_page
    login(page, people["payg_admin"])
    page.goto(f"/customers/{people['payg'].id}/mailboxes")
    assert page.evaluate(SIDEWAYS) == []
    menu = page.locator("#sidenav summary")
    expect(page.locator("#sidenav").get_by_role("link", name="Alias")).to_be_hidden()
    menu.click()
    page.locator("#sidenav").get_by_role("link", name="Alias").click()
    expect(page).to_have_url(re.compile(r"/aliases$"))


@pytest.mark.parametrize("width", [1024, 1280])
@pytest.mark.parametrize("role", ["payg", "staff"])
def test_on_a_desktop_the_navigation_is_a_side_column_without_a_menu_button(page, login, people, role, width):
    # 1024: a small laptop, where the tables beside the side column turn into cards rather than scroll.
    page.set_viewport_size({**DESKTOP, "width": width})
    login(page, people["payg_admin"] if role == "payg" else people["staff"])
    for url in pages_for(role, people):
        page.goto(url)
        assert page.evaluate(SIDEWAYS) == [], f"{url} scrolls sideways"
        expect(page.locator("#sidenav summary")).to_be_hidden()
        links = page.locator("#sidenav a")
        for i in range(links.count()):
            expect(links.nth(i)).to_be_visible()


def test_phone_actions_far_down_the_list_say_what_they_did_in_view(page, login, make, people):
    payg = people["payg"]
    for i in range(12):
        make.mailbox(payg, f"collega{i:02d}")
    page.set_viewport_size(PHONE)
    login(page, people["payg_admin"])
    page.goto(f"/customers/{payg.id}/mailboxes")
    status = page.locator("#status-region")
    page.on("dialog", lambda dialog: dialog.accept())

    def said(text: str) -> None:
        expect(status).to_contain_text(text)
        box = status.bounding_box()
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= PHONE["height"], (
            "the words are off screen"
        )

    last = page.locator("#mailbox-results tbody tr", has_text="ordini@rossi-caffe.example")
    last.get_by_role("button", name="Sospendi").click()
    said("La casella ordini@rossi-caffe.example è sospesa")
    shot(page, "phone-suspended")
    last.get_by_role("button", name="Riattiva").click()
    said("La casella ordini@rossi-caffe.example è di nuovo attiva.")

    last.get_by_role("link", name="Modifica").click()
    editing = page.locator("#mailbox-results tr.editing")
    editing.get_by_label("Nome visualizzato").fill("Ufficio ordini")
    editing.get_by_role("button", name="Salva").click()
    said("Modifiche a ordini@rossi-caffe.example salvate.")

    last.get_by_role("link", name="Elimina").click()
    said("Casella ordini@rossi-caffe.example eliminata.")
    expect(last).to_have_count(0)
    shot(page, "phone-deleted")

    # The words go when the person moves on, or closes them.
    page.get_by_role("button", name="Chiudi il messaggio").click()
    expect(status).to_have_text("")

    page.goto(f"/customers/{payg.id}/aliases")
    row = page.locator("#alias-results tbody tr", has_text="info@rossi-caffe.example")
    row.get_by_role("link", name="Elimina").click()
    said("Alias info@rossi-caffe.example eliminato.")
    expect(row).to_have_count(0)
