"""Customer A, walking every route and API endpoint with customer B's ids, gets only 404s.

The walk is driven by the app's URL map, so a new route is covered the day
it is added; a route argument this test does not know how to fill fails it.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Import
from app.services import capacity, outbox, users
from app.services.migration import migrations
from tests.web.jobrows import job_row

# Plausible payloads: if scoping were missing, these would change B's data.
FORM = {
    "address": "intruso@{domain}",
    "local_part": "intruso",
    "target": "{mailbox}",
    "members": "esterno@example.org",
    "member": "esterno@example.org",
    "address_to_add": "esterno@example.org",
    "display_name": "Intruso",
    "password": "Intruso-pass-1",
    "service_class": "Business Mail 200 MB",
    "status": "disabled",
    "name": "intruso.example",
    "description": "intruso",
    "extra_accounts": "5",
    "note": "intruso",
    "plan": "payg",
    "self_service": "y",
}


def _snapshot() -> str:
    """Every row of every table, as text: 'nothing changed' means this is equal."""
    rows = {}
    for table in db.metadata.sorted_tables:
        if table.name in {"audit_events", "api_tokens"}:
            continue
        result = db.session.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings().all()
        rows[table.name] = [{k: str(v) for k, v in r.items()} for r in result]
    return json.dumps(rows, sort_keys=True)


def _failed_mail(customer_id: int) -> int:
    mail = outbox.queue_email("test", "b@b.example", "Per B", "Ciao\n", customer_id=customer_id, locale="it")
    mail.state = "failed"
    return mail.id


def _waiting_import(customer_id: int) -> int:
    """A previewed import with a problem: applying it is refused, so no walk starts a job."""
    problem = {"sheet": "Caselle", "row": 2, "column": "B", "message": "La password è troppo corta."}
    row = Import(
        customer_id=customer_id,
        created_by="anna@esempio.example",
        filename="personale.xlsx",
        state="previewed",
        counts={"mailbox": {"create": 0, "present": 0, "error": 1}},
        problems=[problem],
        problem_count=1,
        generated_count=0,
    )
    db.session.add(row)
    db.session.commit()
    return row.id


@pytest.fixture
def world(app, make):
    a = make.customer("contract", {"Business Mail 100 MB": 5, "Business Mail 200 MB": 5})
    b = make.customer("contract", {"Business Mail 100 MB": 5, "Business Mail 200 MB": 5})
    admin_a = make.admin(a)
    admin_b = make.admin(b)
    box_b = make.mailbox(b, "casella")
    alias_b = make.alias(b, "alias", box_b)
    list_b = make.dlist(b, "lista", [box_b.address, "fuori@example.org"])
    req_b = capacity.request_capacity(
        make.SYSTEM, b.id, service_class="Business Mail 100 MB", extra_accounts=1, note="Un nuovo socio"
    ).request
    token_b, _ = users.create_token(make.SYSTEM, admin_b, "b")
    _, token_a = users.create_token(make.SYSTEM, admin_a, "a")
    domain_b = b.id and db.session.scalar(
        sa.text("SELECT id FROM domains WHERE customer_id = :c"), {"c": b.id}
    )
    ids = {
        "customer_id": b.id,
        "mailbox_id": box_b.id,
        "alias_id": alias_b.id,
        "list_id": list_b.id,
        "dlist_id": list_b.id,
        "domain_id": domain_b,
        "member_id": list_b.members[0].id,
        "request_id": req_b.id,
        "capacity_request_id": req_b.id,
        "token_id": token_b.id,
        "user_id": admin_b.id,
        "job_id": job_row(b.id, "queued", kind="quota_refresh").id,
        "outbox_id": _failed_mail(b.id),
        "import_id": _waiting_import(b.id),
        "migration_id": migrations.create(
            make.SYSTEM,
            domain_b,
            {
                "host": "imap.vecchio.example",
                "username": "vecchio",
                "password": "pw",
                "mailbox": box_b.address,
            },
        ).id,
        "id": b.id,
    }
    db.session.commit()
    return {
        "a": a,
        "b": b,
        "admin_a": admin_a,
        "token_a": token_a,
        "ids": ids,
        "domain_b": make.domain_of(b),
        "box_b": box_b.address,
    }


# Routes that take no id of another customer's (nothing to isolate) are skipped by the walk;
# arguments that are not ids are filled here.
NON_ID_ARGS = {
    "filename": "css/app.css",
    "topic": "alias",
    "day": "2026-05-10",
    "what": "ledger",
    "fmt": "csv",
    "record": "spf",
}


def _urls(app, ids):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.arguments:
            continue
        values = {}
        for arg in rule.arguments:
            if arg in ids:
                values[arg] = ids[arg]
            elif arg in NON_ID_ARGS:
                values[arg] = NON_ID_ARGS[arg]
            else:
                pytest.fail(
                    f"route {rule.rule} has argument {arg!r}: teach this test which of B's ids it takes"
                )
        if not any(arg in ids for arg in rule.arguments):
            continue
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, path, method


def test_customer_a_gets_only_404s_on_customer_b(app, client, auth, world):
    auth.login(world["admin_a"].email)
    before = _snapshot()
    form = {k: v.format(domain=world["domain_b"], mailbox=world["box_b"]) for k, v in FORM.items()}
    seen, wrong = 0, []
    for _rule, path, method in _urls(app, world["ids"]):
        seen += 1
        if path.startswith("/api/"):
            response = client.open(
                path,
                method=method,
                json=form,
                headers={"Authorization": f"Bearer {world['token_a']}"},
            )
        else:
            response = client.open(path, method=method, data=form)
            hx = client.open(path, method=method, data=form, headers={"HX-Request": "true"})
            if hx.status_code != 404:
                wrong.append(f"{method} {path} (htmx) -> {hx.status_code}")
        if response.status_code != 404:
            wrong.append(f"{method} {path} -> {response.status_code}")
    assert seen > 10, "the walk found too few routes"
    assert not wrong, "\n".join(wrong)
    db.session.expire_all()
    assert _snapshot() == before


def test_customer_a_sees_nothing_of_b_in_its_own_lists(app, client, auth, world):
    auth.login(world["admin_a"].email)
    a_id = world["a"].id
    for path in (
        f"/customers/{a_id}/",
        f"/customers/{a_id}/mailboxes",
        f"/customers/{a_id}/aliases",
        f"/customers/{a_id}/lists",
        f"/customers/{a_id}/domains",
    ):
        body = client.get(path).get_data(as_text=True)
        assert world["domain_b"] not in body, path
    api = client.get(
        f"/api/v1/customers/{a_id}/mailboxes", headers={"Authorization": f"Bearer {world['token_a']}"}
    )
    assert world["domain_b"] not in api.get_data(as_text=True)
    listed = client.get("/api/v1/customers", headers={"Authorization": f"Bearer {world['token_a']}"})
    assert listed.status_code == 200
    assert [c["id"] for c in listed.get_json()["items"]] == [a_id]
