"""Audit log: every change listed newest first, with filters in the query string."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.extensions import db
from app.models import AuditEvent

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def staff(make, auth):
    user = make.staff(email="operatore@collabra.it")
    auth.login(user.email)
    return user


def _rows(page: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S)
    return re.findall(r"<tr>.*?</tr>", body.group(1), re.S) if body else []


def test_lists_changes_with_local_time_and_diff(client, make, staff):
    c = make.customer("contract", {"Business Mail 100 MB": 1}, name="Ditta Audit")
    db.session.add(
        AuditEvent(
            at=datetime(2026, 7, 1, 22, 30, tzinfo=UTC),
            actor="qualcuno@collabra.it",
            ip="192.0.2.7",
            via="api",
            customer_id=c.id,
            action="mailbox.update",
            target="mario@x.example",
            changes={"status": ["active", "suspended"], "display_name": [None, "Mario"]},
        )
    )
    db.session.commit()
    page = client.get("/admin/audit?action=mailbox.update").get_data(as_text=True)
    rows = _rows(page)
    assert len(rows) == 1
    row = rows[0]
    # 22:30 UTC on 1 July is 00:30 on 2 July in Rome (summer time).
    assert "02/07/2026" in row and "00:30:00" in row
    assert "qualcuno@collabra.it" in row and "192.0.2.7" in row and "API" in row
    assert "stato: Attiva → Sospesa" in row and "nome visualizzato: — → Mario" in row
    assert "Casella modificata" in row
    assert "Ditta Audit" in row


def test_filters(client, make, staff):
    a = make.customer(name="Alfa")
    b = make.customer(name="Beta")
    make.mailbox(a, local="primo")
    make.mailbox(b, local="secondo")
    everything = _rows(client.get("/admin/audit").get_data(as_text=True))
    only_a = _rows(client.get(f"/admin/audit?customer_id={a.id}").get_data(as_text=True))
    assert only_a and len(only_a) < len(everything)
    assert all("Alfa" in r for r in only_a)
    created = _rows(client.get("/admin/audit?action=mailbox.create").get_data(as_text=True))
    assert len(created) == 2
    assert "secondo@" in created[0]  # newest first
    by_target = _rows(client.get("/admin/audit?target=PRIMO").get_data(as_text=True))
    assert len(by_target) == 1 and "primo@" in by_target[0]
    by_actor = _rows(client.get("/admin/audit?actor=tests").get_data(as_text=True))
    assert len(by_actor) == len(everything)
    assert _rows(client.get("/admin/audit?actor=nessuno").get_data(as_text=True)) == []


def test_date_filters_use_local_days(client, make, staff):
    for at, target in (
        (datetime(2026, 3, 9, 22, 59, tzinfo=UTC), "il nove"),  # 23:59 on the 9th in Rome
        (datetime(2026, 3, 9, 23, 1, tzinfo=UTC), "il dieci"),  # 00:01 on the 10th in Rome
    ):
        db.session.add(
            AuditEvent(at=at, actor="x", via="web", action="test.event", target=target, changes={})
        )
    db.session.commit()
    tenth = _rows(client.get("/admin/audit?date_from=2026-03-10&date_to=2026-03-10").get_data(as_text=True))
    assert len(tenth) == 1 and "il dieci" in tenth[0]
    ninth = _rows(client.get("/admin/audit?date_to=2026-03-09").get_data(as_text=True))
    assert len(ninth) == 1 and "il nove" in ninth[0]


def test_bad_date_is_a_message_not_an_error(client, staff):
    response = client.get("/admin/audit?date_from=ieri&customer_id=abc&page=-3")
    assert response.status_code == 422
    assert "Data non valida" in response.get_data(as_text=True)


def test_paginates_fifty_and_keeps_filters(client, make, staff):
    for i in range(60):
        db.session.add(
            AuditEvent(
                at=datetime(2026, 1, 1, tzinfo=UTC), actor="x", via="cli", action="bulk.test", target=f"t{i}"
            )
        )
    db.session.commit()
    page = client.get("/admin/audit?action=bulk.test").get_data(as_text=True)
    assert len(_rows(page)) == 50
    assert "page=2" in page and "action=bulk.test" in re.search(
        r'rel="next"[^>]*|href="[^"]*page=2[^"]*"', page
    ).group(0)
    assert len(_rows(client.get("/admin/audit?action=bulk.test&page=2").get_data(as_text=True))) == 10


def test_htmx_filter_returns_the_table_only(client, make, staff):
    make.customer()
    response = client.get("/admin/audit?action=customer.create", headers={"HX-Request": "true"})
    text = response.get_data(as_text=True)
    assert 'id="audit-table"' in text and "<html" not in text


def test_international_domains_read_in_unicode(client, make, staff):
    c = make.customer(domain="caffè-rossi.example")
    make.mailbox(c, local="mario")
    rows = _rows(client.get("/admin/audit?action=mailbox.create").get_data(as_text=True))
    assert "mario@caffè-rossi.example" in rows[0] and "xn--" not in rows[0]


def _change_lines(page: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", line).strip()
        for line in re.findall(r'<div class="change">(.*?)</div>', page, re.S)
    ]


def test_codes_are_named_not_shown_raw(client, make, staff):
    """Regression: the Italian log showed `active → suspended`, `open → approved`, `customer_admin`, `payg`."""
    from app.services import capacity, customers, mailboxes

    c = make.customer("contract", {"Business Mail 100 MB": 1}, name="Ditta Codici")
    box = make.mailbox(c, "mario")
    mailboxes.update_mailbox(make.SYSTEM, box.id, status="suspended")
    make.admin(c, "capo@codici.example")
    customers.update_customer(make.SYSTEM, c.id, plan="payg")
    customers.update_customer(make.SYSTEM, c.id, plan="contract")
    req = capacity.request_capacity(
        make.SYSTEM, c.id, service_class="Business Mail 100 MB", extra_accounts=2, note="Due soci"
    ).request
    capacity.decide(make.SYSTEM, req.id, approve=True, accounts=1, reason="Uno per ora")
    lines = _change_lines(client.get(f"/admin/audit?customer_id={c.id}").get_data(as_text=True))
    for expected in (
        "stato: Attiva → Sospesa",
        "ruolo: — → Amministratore cliente",
        "piano: A canone → Pay per Use",
        "piano: Pay per Use → A canone",
        "stato: In attesa → Approvata",
        "caselle concesse: 2 → 1",
        "motivo della decisione: — → Uno per ora",
        "Business Mail 100 MB: 1 → 2",
    ):
        assert expected in lines, (expected, lines)
    joined = " ".join(lines)
    for raw in ("active", "suspended", "approved", "customer_admin", "payg", "contract"):
        assert not re.search(rf"\b{raw}\b", joined), raw


def test_codes_are_named_in_english_for_an_english_speaking_user(client, make, auth):
    """The same trail in the user's language: English labels from translations/en, no raw codes."""
    from app.services import capacity, customers, mailboxes

    mo = ROOT / "translations" / "en" / "LC_MESSAGES" / "messages.mo"
    assert mo.exists() and mo.stat().st_mtime >= mo.with_suffix(".po").stat().st_mtime, (
        "the English catalog is not compiled: run `make compile-translations`"
    )
    reader = make.staff(email="reader@collabra.it")
    reader.locale = "en"
    db.session.commit()
    auth.login(reader.email)
    c = make.customer("contract", {"Business Mail 100 MB": 1}, name="Ditta Codici")
    box = make.mailbox(c, "mario")
    mailboxes.update_mailbox(make.SYSTEM, box.id, status="suspended")
    make.admin(c, "capo@codici.example")
    req = capacity.request_capacity(
        make.SYSTEM, c.id, service_class="Business Mail 100 MB", extra_accounts=2, note="Due soci"
    ).request
    capacity.decide(make.SYSTEM, req.id, approve=True, accounts=1, reason="Uno per ora")
    customers.update_customer(make.SYSTEM, c.id, plan="payg")
    page = client.get(f"/admin/audit?customer_id={c.id}").get_data(as_text=True)
    lines = _change_lines(page)
    for expected in (
        "status: Active → Suspended",
        "role: — → Customer administrator",
        "plan: Contract → Pay per Use",
        "status: Pending → Approved",
        "mailboxes granted: 2 → 1",
        "reason for the decision: — → Uno per ora",
    ):
        assert expected in lines, (expected, lines)
    assert "Mailbox updated" in page and "Casella modificata" not in page
    joined = " ".join(lines)
    for raw in ("active", "suspended", "approved", "customer_admin", "payg", "contract", "stato", "Attiva"):
        assert not re.search(rf"\b{raw}\b", joined), raw


def test_list_member_changes_name_the_addresses(client, make, staff):
    """Regression: a list edit showed "aggiunti: — → —"."""
    from app.services import lists

    c = make.customer(name="Ditta Liste")
    a, b = make.mailbox(c, "anna"), make.mailbox(c, "bruno")
    dlist = make.dlist(c, "tutti", [a.address])
    lists.update_list(make.SYSTEM, dlist.id, members=[b.address, "fuori@esterno.example"])
    lists.update_list(make.SYSTEM, dlist.id, members=[b.address, "fuori@esterno.example", a.address])
    page = client.get("/admin/audit?action=list.update").get_data(as_text=True)
    lines = _change_lines(page)
    assert f"aggiunti: {b.address}, fuori@esterno.example" in lines
    assert f"tolti: {a.address}" in lines
    assert f"aggiunti: {a.address}" in lines
    assert not any("— → —" in line for line in lines), lines
    assert "tolti: —" not in " ".join(lines)  # nothing removed the second time: no line
