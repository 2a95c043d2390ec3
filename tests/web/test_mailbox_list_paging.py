"""The portal's mailbox list pages by key (the address): every mailbox once, either way, and no scan."""

from __future__ import annotations

import re
from html import unescape

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import mailboxes
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


def walk(client, url: str, rel: str, headers=None) -> list[list[str]]:
    """The rows of each page from url on, following the rel link until there is none."""
    pages = []
    while url:
        html = client.get(url, headers=headers or {}).get_data(as_text=True)
        pages.append(rows(html))
        url = link(html, rel)
        assert len(pages) < 50, "the links go round in a circle"
    return pages


@pytest.fixture
def big(make, auth):
    """A customer with 120 mailboxes (and a neighbour whose addresses sort among them)."""
    c = make.customer("payg", domain="grande.example")
    # Not in address order, so the order comes from the query.
    for i in sorted(range(120), key=lambda n: (n * 37) % 120):
        make.mailbox(c, f"p{i:03d}", display_name=f"Persona {i:03d}")
    other = make.customer("payg", domain="altro.example")
    for local in ("p000x", "p050x", "p119x", "zeta"):
        make.mailbox(other, local, display_name="Persona Altrui")
    auth.login(make.admin(c).email)
    return c


def expected(numbers) -> list[str]:
    return [f"p{i:03d}@grande.example" for i in numbers]


def test_forward_and_back_every_mailbox_once(client, big):
    url = f"/customers/{big.id}/mailboxes"
    forward = walk(client, url, "next")
    assert [len(p) for p in forward] == [25, 25, 25, 25, 20]
    assert sum(forward, []) == expected(range(120))
    # From the last page back to the first, by "previous": the same pages, in reverse.
    last = url + "?start=" + forward[-1][0]
    backward = walk(client, last, "prev")
    assert backward == forward[::-1]
    # And through htmx (the fragment), the same pages.
    assert walk(client, url, "next", HX) == forward
    first = client.get(url).get_data(as_text=True)
    assert "120 caselle in tutto" in first and link(first, "prev") is None and link(first, "first") is None


def test_pages_stay_whole_when_a_mailbox_goes(client, big):
    url = f"/customers/{big.id}/mailboxes"
    second = client.get(link(client.get(url).get_data(as_text=True), "next")).get_data(as_text=True)
    assert rows(second) == expected(range(25, 50))
    # Deleting the page's first mailbox: the same page (reloaded from its key) starts at the next one.
    gone = mailboxes.list_page(factories.SYSTEM, big.id, q="p025").items[0]
    mailboxes.delete_mailbox(factories.SYSTEM, gone.id)
    reloaded = client.get(url + "?start=p025@grande.example", headers=HX).get_data(as_text=True)
    assert rows(reloaded) == expected(range(26, 51))
    assert "119 caselle in tutto" in reloaded
    # A key past the last mailbox (its page emptied meanwhile): the last page, not an empty one.
    past = client.get(url + "?start=zzz@grande.example").get_data(as_text=True)
    assert rows(past) == expected(range(95, 120)) and link(past, "next") is None
    before_past = client.get(url + "?before=zzz@grande.example").get_data(as_text=True)
    assert rows(before_past) == rows(past) and link(before_past, "next") is None
    # A key between two addresses: the pages around it as around any other.
    between = client.get(url + "?before=p060a").get_data(as_text=True)
    assert rows(between) == expected(range(36, 61)) and link(between, "next").endswith(
        "start=p061@grande.example"
    )


def test_search_finds_by_prefix_and_pages_within_the_search(client, big):
    url = f"/customers/{big.id}/mailboxes"
    html = client.get(url + "?q=P01").get_data(as_text=True)
    assert rows(html) == expected(range(10, 20))
    assert "10 caselle trovate" in html
    # By the display name's start, as typed ("persona 11" finds "Persona 110".."Persona 119").
    assert rows(client.get(url + "?q=persona 11").get_data(as_text=True)) == expected(range(110, 120))
    # Paging inside a search keeps the search; the neighbour's p050x never shows.
    pages = walk(client, url + "?q=p0&per_page=7", "next")
    assert sum(pages, []) == expected(range(100)) and all(len(p) <= 7 for p in pages)
    assert len(pages) == 15
    assert walk(client, url + "?q=p0&per_page=7&start=" + pages[-1][0], "prev") == pages[::-1]
    status = client.get(url + "?status=active&per_page=50").get_data(as_text=True)
    assert rows(status) == expected(range(50)) and "120 caselle trovate" in status


def test_another_customers_mailboxes_never_appear(client, big):
    url = f"/customers/{big.id}/mailboxes"
    seen = sum(walk(client, url + "?per_page=100", "next"), [])
    seen += sum(walk(client, url + "?q=p", "next"), [])
    seen += rows(client.get(url + "?q=zeta").get_data(as_text=True))
    seen += rows(client.get(url + "?start=p050x@altro.example").get_data(as_text=True))
    seen += rows(client.get(url + "?before=zeta@altro.example").get_data(as_text=True))
    assert seen and all(a.endswith("@grande.example") for a in seen)
    assert "Persona Altrui" not in client.get(url + "?q=persona").get_data(as_text=True)


HOSTILE_QUERIES = (
    "start=%00",
    "start=p010%00x@grande.example",
    "before=" + "z" * 5000,
    "start=" + "a" * 321,
    "start=%ED%A0%80",  # a lone surrogate, percent-encoded
    "start=%3Cscript%3E&before=%27%3B--",
    "before=",
    "start=p010@grande.example&before=p090@grande.example",
    "page=-1&start[]=x",
    "q=%00p01",
    "q=" + "%F4%8F%BF%BF" * 3,  # the last code point: a prefix with no upper bound
)


def test_a_hostile_key_is_a_page_never_an_error(client, big):
    """Each query on the same 120 mailboxes (one list made, not one per query)."""
    wrong = []
    for query in HOSTILE_QUERIES:
        response = client.get(f"/customers/{big.id}/mailboxes?{query}")
        html = response.get_data(as_text=True)
        if "%00" in query:
            # 422: the app refuses control characters in any request, before the list sees them.
            if response.status_code != 422:
                wrong.append(f"{query[:60]} -> {response.status_code}, not 422")
            continue
        # A page of mailboxes (a key that is no address falls back to a real page), or a search's
        # "none".
        if response.status_code != 200 or not ('id="mailbox-' in html or "Nessuna casella" in html):
            wrong.append(f"{query[:60]} -> {response.status_code}, no page of mailboxes")
    assert not wrong, "\n".join(wrong)


def test_the_search_and_the_pages_read_an_index_range(app, big):
    """The list's queries can use the indexes of migrations 0009 and 0010 (same columns, same collation)."""
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        mailboxes.list_page(factories.SYSTEM, big.id, q="p01", start="p012@grande.example")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    page_query = next(
        s for s in statements if s[0].lstrip().startswith("SELECT mailboxes.id, mailboxes.customer_id")
    )
    raw = db.session.connection().connection.driver_connection
    if db.engine.dialect.name == "postgresql":
        cursor = raw.cursor()
        # The planner's statistics of these 124 mailboxes, not of what earlier tests left (as a
        # database in use has, by autovacuum).
        cursor.execute("ANALYZE mailboxes, mailbox_words")
        # A table this small is read whole by choice; forbidding that shows whether an index can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + page_query[0], page_query[1])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan on mailboxes" not in plan, plan
        # The prefix is a range of the index (the collation agrees), not a filter over the customer.
        range_cond = r"(Index Scan using|Bitmap Index Scan on) ix_mailboxes_list_address\b.*\n\s+Index Cond: "
        range_cond += r"\(\(customer_id = \d+\) AND \(\(address\)::text >= 'p01'::text\) AND \(\(address\)::text < 'p02'"
        assert re.search(range_cond, plan), plan
        # The other way of matching, the words, reads a range of the customer's words (at most
        # WORD_MATCH_CAP), then those mailboxes by their primary key.
        assert re.search(
            r"Index Only Scan using ix_mailbox_words_search on mailbox_words\s.*\n\s+Index Cond: "
            r"\(\(customer_id = \d+\) AND \(\(?word\)?(::text)? >= 'p01'::text\) AND \(\(?word\)?(::text)? < 'p02'",
            plan,
        ), plan
        assert "Seq Scan on mailbox_words" not in plan, plan
    else:
        plan = "\n".join(row[-1] for row in raw.execute("EXPLAIN QUERY PLAN " + page_query[0], page_query[1]))
        assert not re.search(r"SCAN mailboxes(?! USING)", plan), plan
        assert re.search(
            r"SEARCH mailboxes USING (COVERING )?INDEX ix_mailboxes_(list|customer)_address "
            r"\(customer_id=\? AND address>\? AND address<\?\)",
            plan,
        ), plan
        assert (
            "SEARCH mailbox_words USING COVERING INDEX ix_mailbox_words_search (customer_id=? AND word>? AND word<?)"
            in plan
        ), plan
        assert "SCAN mailbox_words" not in plan, plan
