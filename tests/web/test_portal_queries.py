"""The mailbox list costs the same number of SQL statements whatever the page size (no N+1)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from app.extensions import db
from app.services import aliases, lists


@contextmanager
def counted():
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def test_mailbox_list_issues_a_bounded_number_of_queries(app, client, auth, make):
    c = make.customer("contract", {"Business Mail 100 MB": 200, "Business Mail Plus 100 MB": 200})
    boxes = [
        make.mailbox(
            c, f"u{i:03d}", service_class="Business Mail Plus 100 MB" if i % 2 else "Business Mail 100 MB"
        )
        for i in range(100)
    ]
    for i, box in enumerate(boxes[::3]):
        aliases.create_alias(make.SYSTEM, c.id, address=f"alias{i}@{make.domain_of(c)}", target=box.address)
    lists.create_list(
        make.SYSTEM, c.id, address=f"tutti@{make.domain_of(c)}", members=[b.address for b in boxes]
    )
    auth.login(make.admin(c).email)
    cid = c.id

    # The per-class counts (the create panel's, and the list's total) are counted once per change
    # of the customer's mailboxes: once warm, every page reads the same statements.
    client.get(f"/customers/{cid}/mailboxes")
    counts = {}
    for per_page in (5, 25, 100):
        # A fresh app context: its own session and g, cold as a production request.
        with app.app_context(), counted() as statements:
            response = client.get(f"/customers/{cid}/mailboxes?per_page={per_page}")
        assert response.status_code == 200
        assert response.get_data(as_text=True).count('<tr id="mailbox-') == per_page
        counts[per_page] = len(statements)
    assert counts[5] == counts[25] == counts[100], counts
    # 13: the refresh line asks whether a quota refresh job is queued or running (one indexed query).
    assert counts[100] <= 13, counts


def test_per_page_is_capped_at_100(client, auth, make):
    c = make.customer()
    for i in range(3):
        make.mailbox(c, f"u{i}")
    auth.login(make.admin(c).email)
    html = client.get(f"/customers/{c.id}/mailboxes?per_page=100000").get_data(as_text=True)
    assert html.count('<tr id="mailbox-') == 3
    assert client.get(f"/customers/{c.id}/mailboxes?per_page=abc").status_code == 200
