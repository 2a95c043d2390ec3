"""Bad input and contract limits through the API: 422/409 with field errors, nothing written."""

from __future__ import annotations

import json

import pytest

from app.services import users
from tests import factories
from tests.dbstate import row_counts as counts

CLASS = "Business Mail 100 MB"


class Api:
    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def __call__(self, method: str, path: str, json=None, data=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        return self.client.open("/api/v1" + path, method=method, json=json, data=data, headers=headers)


@pytest.fixture
def ctx(client, make):
    """A self-administered contract customer (2 x Business Mail 100 MB), its admin, and staff."""
    c = make.customer("contract", {CLASS: 2}, name="Cliente")
    other = make.customer(name="Altro", domain="altro-cliente.example")
    box = make.mailbox(c, local="anna")

    def token(user):
        return Api(client, users.create_token(factories.SYSTEM, user, "tests")[1])

    class Ctx:
        customer, domain, mailbox = c, make.domain_of(c), box
        other_customer = other
        admin = token(make.admin(c))
        staff = token(make.staff())

    return Ctx


def refused(call, status: int = 422):
    """Make the call; assert it is refused with `status` and that no row anywhere changed."""
    before = counts()
    r = call()
    assert r.status_code == status, (r.status_code, r.get_json())
    assert counts() == before
    return r.get_json()


# Contract limits


def test_creating_past_the_allowance_is_409_with_the_numbers(ctx):
    c = ctx.customer
    new = {"password": "Secret-pass-1", "service_class": CLASS}
    ok = ctx.admin("POST", f"/customers/{c.id}/mailboxes", {"address": f"bruno@{ctx.domain}", **new})
    assert ok.status_code == 201
    body = refused(
        lambda: ctx.admin("POST", f"/customers/{c.id}/mailboxes", {"address": f"carla@{ctx.domain}", **new}),
        409,
    )
    assert (body["service_class"], body["allowance"], body["used"]) == (CLASS, 2, 2)
    assert CLASS in body["error"] and "2" in body["error"]


def test_a_class_without_allowance_is_409_with_allowance_zero(ctx):
    body = refused(
        lambda: ctx.admin(
            "POST",
            f"/customers/{ctx.customer.id}/mailboxes",
            {
                "address": f"bruno@{ctx.domain}",
                "password": "Secret-pass-1",
                "service_class": "Standard Suite 500 MB",
            },
        ),
        409,
    )
    assert (body["service_class"], body["allowance"], body["used"]) == ("Standard Suite 500 MB", 0, 0)


def test_patching_the_class_over_the_limit_is_409_and_the_mailbox_keeps_its_class(ctx, make):
    ctx.staff(
        "PUT",
        f"/customers/{ctx.customer.id}/contract",
        {
            "allowances": [
                {"service_class": CLASS, "max_accounts": 2},
                {"service_class": "Professional Suite 1.000 MB", "max_accounts": 1},
            ],
            "self_service": True,
        },
    )
    second = make.mailbox(ctx.customer, local="bruno")
    moved = ctx.admin("PATCH", f"/mailboxes/{ctx.mailbox.id}", {"service_class": "Professional Suite 1000MB"})
    assert moved.status_code == 200
    body = refused(
        lambda: ctx.admin(
            "PATCH",
            f"/mailboxes/{second.id}",
            {"service_class": "Professional Suite 1.000 MB", "display_name": "Nuovo nome"},
        ),
        409,
    )
    assert (body["service_class"], body["allowance"], body["used"]) == ("Professional Suite 1.000 MB", 1, 1)
    after = ctx.admin("GET", f"/mailboxes/{second.id}").get_json()
    assert (after["service_class"], after["display_name"]) == (CLASS, "Bruno")


def test_a_contract_smaller_than_the_accounts_in_use_is_409(ctx, make):
    make.mailbox(ctx.customer, local="bruno")
    body = refused(
        lambda: ctx.staff(
            "PUT",
            f"/customers/{ctx.customer.id}/contract",
            {"allowances": [{"service_class": CLASS, "max_accounts": 1}], "self_service": True},
        ),
        409,
    )
    assert CLASS in body["error"]


# Bodies that are not JSON objects


NOT_AN_OBJECT = [
    b"",
    b"{",
    b"{'name': 'x'}",
    b"[]",
    b'"text"',
    b"null",
    b"42",
    b"\xff\xfe{}",
    b"[" * 50_000,
    b'{"a": NaN}',
]


def test_a_body_that_is_not_a_json_object_is_422_on_body(ctx):
    paths = [
        ("POST", f"/customers/{ctx.customer.id}/mailboxes"),
        ("POST", f"/customers/{ctx.customer.id}/aliases"),
        ("PATCH", f"/mailboxes/{ctx.mailbox.id}"),
        ("PUT", f"/customers/{ctx.customer.id}/contract"),
    ]
    for raw in NOT_AN_OBJECT:
        for method, path in paths:
            who = ctx.staff if method == "PUT" else ctx.admin
            body = refused(lambda m=method, p=path, r=raw, w=who: w(m, p, data=r))
            assert list(body["errors"]) == ["body"], (raw[:20], path)


# Mailboxes: a matrix of bad fields


def _mailbox(ctx, **override):
    body = {
        "address": f"nuova@{ctx.domain}",
        "password": "Secret-pass-1",
        "display_name": "Nuova",
        "service_class": CLASS,
    }
    body.update(override)
    return {k: v for k, v in body.items() if v is not ...}


BAD_MAILBOX = [
    ("address", ""),
    ("address", "   "),
    ("address", "x" * 65 + "@{domain}"),
    ("address", "a@" + "b" * 250 + ".example"),
    ("address", "zoë@{domain}"),
    ("address", "senza-chiocciola"),
    ("address", "a@b@{domain}"),
    ("address", "nuova@altro-cliente.example"),
    ("address", "nuova@nessuno.example"),
    ("address", 123),
    ("address", None),
    ("address", ["nuova@{domain}"]),
    ("address", True),
    ("address", {"local": "nuova"}),
    ("address", ...),
    ("password", ""),
    ("password", "corta"),
    ("password", "x" * 129),
    ("password", "tab\tinside"),
    ("password", 12345678),
    ("password", None),
    ("password", ...),
    ("display_name", "x" * 201),
    ("display_name", "riga\nnuova"),
    ("display_name", 5),
    ("display_name", ["Anna"]),
    ("display_name", False),
    ("service_class", "Business Mail 7 MB"),
    ("service_class", ""),
    ("service_class", None),
    ("service_class", True),
    ("service_class", ["Business Mail 100 MB"]),
    ("service_class", 999_999),
    ("service_class", 1.5),
    ("service_class", ...),
    ("status", "active"),
    ("quota", 100),
]


def test_bad_mailbox_fields_are_422_on_that_field(ctx):
    # One test walks the whole matrix: each case is cheap, the fixture is not.
    for field, value in BAD_MAILBOX:
        if isinstance(value, str):
            value = value.replace("{domain}", ctx.domain)
        payload = _mailbox(ctx, **{field: value})
        body = refused(lambda p=payload: ctx.admin("POST", f"/customers/{ctx.customer.id}/mailboxes", p))
        assert body["errors"].get(field), (field, value, body)


def test_an_unknown_class_lists_the_valid_names(ctx):
    body = refused(
        lambda: ctx.admin(
            "POST", f"/customers/{ctx.customer.id}/mailboxes", _mailbox(ctx, service_class="Gold 5 GB")
        )
    )
    message = body["errors"]["service_class"]
    assert "Gold 5 GB" in message
    assert "Business Mail 5.000 MB" in message and "Professional Suite 25.000 MB" in message


def test_every_bad_field_is_reported_at_once(ctx):
    # A value the declaration refuses (too long a name) and values only the rules refuse
    # (an empty address, a weak password, an unknown class): one answer names them all.
    body = refused(
        lambda: ctx.admin(
            "POST",
            f"/customers/{ctx.customer.id}/mailboxes",
            {"address": "", "password": "x", "service_class": "nope", "display_name": "x" * 300},
        )
    )
    assert set(body["errors"]) == {"address", "password", "service_class", "display_name"}
    assert body["errors"]["display_name"] == "Al massimo 200 caratteri."
    assert body["errors"]["service_class"].startswith("«nope» non è una classe di servizio.")
    # Wrong types are told as such, with the rules' verdict on the rest in the same answer.
    body = refused(
        lambda: ctx.admin(
            "POST",
            f"/customers/{ctx.customer.id}/mailboxes",
            {"address": 5, "password": "Secret-pass-1", "service_class": "nope", "display_name": "a\tb"},
        )
    )
    assert set(body["errors"]) == {"address", "service_class", "display_name"}


def test_aliases_and_lists_also_name_every_bad_field_at_once(ctx):
    c = ctx.customer.id
    body = refused(
        lambda: ctx.admin("POST", f"/customers/{c}/aliases", {"address": 7, "target": "nobody@nowhere"})
    )
    assert set(body["errors"]) == {"address", "target"}
    body = refused(
        lambda: ctx.admin(
            "POST", f"/customers/{c}/lists", {"address": "", "post_policy": "everyone", "members": 3}
        )
    )
    assert set(body["errors"]) == {"address", "post_policy", "members"}


def test_unicode_display_names_and_idn_domains_are_accepted(ctx, make):
    c = ctx.customer
    domain = ctx.admin("POST", f"/customers/{c.id}/domains", {"name": "perché.example"}).get_json()
    r = ctx.admin(
        "POST",
        f"/customers/{c.id}/mailboxes",
        _mailbox(ctx, address="Zoe@Perché.example", display_name="Zoë Ünïcode 日本 😀"),
    )
    assert r.status_code == 201, r.get_json()
    box = r.get_json()
    assert box["address"] == f"zoe@{domain['name']}"
    assert box["unicode_address"] == "zoe@perché.example"
    assert box["display_name"] == "Zoë Ünïcode 日本 😀"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "deleted"}, "status"),
        ({"status": None}, "status"),
        ({"status": 1}, "status"),
        ({"password": None}, "password"),
        ({"password": "corta"}, "password"),
        ({"service_class": "Business Mail 3 MB"}, "service_class"),
        ({"display_name": 7}, "display_name"),
        ({"address": "nuovo@x.example"}, "address"),
    ],
)
def test_bad_mailbox_patches_are_422_and_change_nothing(ctx, payload, field):
    before = ctx.admin("GET", f"/mailboxes/{ctx.mailbox.id}").get_json()
    body = refused(
        lambda: ctx.admin("PATCH", f"/mailboxes/{ctx.mailbox.id}", {"display_name": "X", **payload})
    )
    assert field in body["errors"]
    assert ctx.admin("GET", f"/mailboxes/{ctx.mailbox.id}").get_json() == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("per_page=201", "per_page"),
        ("per_page=0", "per_page"),
        ("page=zero", "page"),
        ("page=-1", "page"),
        ("status=gone", "status"),
        ("service_class=Gold", "service_class"),
    ],
)
def test_bad_mailbox_search_parameters_are_422(ctx, query, field):
    r = ctx.admin("GET", f"/customers/{ctx.customer.id}/mailboxes?{query}")
    assert r.status_code == 422 and field in r.get_json()["errors"]


# One address, one thing: mailbox, alias and list share the address space


def test_an_address_is_taken_across_mailboxes_aliases_and_lists(ctx, make):
    c, d = ctx.customer, ctx.domain
    make.alias(c, "info", ctx.mailbox)
    make.dlist(c, "tutti", ["fuori@esterno.example"])
    taken = [ctx.mailbox.address, f"info@{d}", f"tutti@{d}", f"INFO@{d.upper()}"]
    for address in taken:
        body = refused(
            lambda a=address: ctx.admin("POST", f"/customers/{c.id}/mailboxes", _mailbox(ctx, address=a)), 409
        )
        assert body["field"] == "address" and body["error"]
        refused(
            lambda a=address: ctx.admin(
                "POST", f"/customers/{c.id}/aliases", {"address": a, "target": ctx.mailbox.address}
            ),
            409,
        )
        refused(lambda a=address: ctx.admin("POST", f"/customers/{c.id}/lists", {"address": a}), 409)


# Customers and contracts


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "", "plan": "payg"}, "name"),
        ({"name": "x" * 201, "plan": "payg"}, "name"),
        ({"name": 5, "plan": "payg"}, "name"),
        ({"name": None, "plan": "payg"}, "name"),
        ({"name": ["Cliente"], "plan": "payg"}, "name"),
        ({"plan": "payg"}, "name"),
        ({"name": "Cliente", "plan": "gold"}, "plan"),
        ({"name": "Cliente", "plan": True}, "plan"),
        ({"name": "Cliente"}, "plan"),
        ({"name": "Cliente", "plan": "payg", "vat_number": "12345678901"}, "vat_number"),
        ({"name": "Cliente", "plan": "payg", "vat_number": 3504190103}, "vat_number"),
        ({"name": "Cliente", "plan": "payg", "contact_email": "non-una-email"}, "contact_email"),
        ({"name": "Cliente", "plan": "payg", "contact_email": False}, "contact_email"),
        ({"name": "Cliente", "plan": "payg", "self_service": True}, "self_service"),
    ],
)
def test_bad_customer_input_is_422(ctx, payload, field):
    body = refused(lambda: ctx.staff("POST", "/customers", payload))
    assert field in body["errors"]
    if field in payload:  # a PATCH changes only what it names
        body = refused(lambda: ctx.staff("PATCH", f"/customers/{ctx.customer.id}", {field: payload[field]}))
        assert field in body["errors"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"allowances": "Business Mail 100 MB", "self_service": True}, "allowances"),
        ({"allowances": [{"service_class": CLASS, "max_accounts": "5"}], "self_service": True}, "allowances"),
        ({"allowances": [{"service_class": CLASS}], "self_service": True}, "allowances"),
        (
            {"allowances": [{"service_class": CLASS, "max_accounts": 5, "x": 1}], "self_service": True},
            "allowances",
        ),
        ({"allowances": [[CLASS, 5]], "self_service": True}, "allowances"),
        (
            {"allowances": [{"service_class": CLASS, "max_accounts": -1}], "self_service": True},
            "allowances.0.max_accounts",
        ),
        (
            {"allowances": [{"service_class": "Gold", "max_accounts": 1}], "self_service": True},
            "allowances.0.service_class",
        ),
        (
            {
                "allowances": [
                    {"service_class": CLASS, "max_accounts": 3},
                    {"service_class": "business mail 100", "max_accounts": 4},
                ],
                "self_service": True,
            },
            "allowances.1.service_class",
        ),
        ({"allowances": [], "self_service": "yes"}, "self_service"),
        ({"allowances": [], "self_service": None}, "self_service"),
        ({"allowances": []}, "self_service"),
        ({"self_service": True}, "allowances"),
    ],
)
def test_bad_contract_input_is_422(ctx, payload, field):
    body = refused(lambda: ctx.staff("PUT", f"/customers/{ctx.customer.id}/contract", payload))
    assert field in body["errors"], body
    if field == "allowances.0.service_class":
        assert "Business Mail 100 MB" in body["errors"][field]


# Domains, aliases, lists, capacity requests


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"name": ""}, 422, "name"),
        ({"name": "non un dominio"}, 422, "name"),
        ({"name": "senza-punto"}, 422, "name"),
        ({"name": "a" * 64 + ".example"}, 422, "name"),
        ({"name": ("abc." * 70) + "example"}, 422, "name"),
        ({"name": 5}, 422, "name"),
        ({"name": None}, 422, "name"),
        ({}, 422, "name"),
        ({"name": "altro-cliente.example"}, 409, "name"),
        ({"name": "ALTRO-cliente.example."}, 409, "name"),
    ],
)
def test_bad_or_foreign_domains_are_refused(ctx, payload, status, field):
    body = refused(lambda: ctx.admin("POST", f"/customers/{ctx.customer.id}/domains", payload), status)
    assert field in (body.get("errors") or {body.get("field"): 1})


def test_alias_targets_must_be_this_customers_mailboxes(ctx, make):
    foreign = make.mailbox(ctx.other_customer, local="estraneo")
    c = ctx.customer
    for target in (
        foreign.address,
        foreign.id,
        "nessuna@" + ctx.domain,
        "",
        None,
        1.5,
        True,
        [ctx.mailbox.id],
    ):
        body = refused(
            lambda t=target: ctx.admin(
                "POST", f"/customers/{c.id}/aliases", {"address": f"a@{ctx.domain}", "target": t}
            )
        )
        assert "target" in body["errors"]
    alias = make.alias(c, "info", ctx.mailbox)
    body = refused(lambda: ctx.admin("PATCH", f"/aliases/{alias.id}", {"target": foreign.address}))
    assert "target" in body["errors"]
    body = refused(lambda: ctx.admin("PATCH", f"/aliases/{alias.id}", {}))
    assert "target" in body["errors"]
    body = refused(
        lambda: ctx.admin(
            "POST",
            f"/customers/{c.id}/aliases",
            {"address": "a@altro-cliente.example", "target": ctx.mailbox.id},
        )
    )
    assert "address" in body["errors"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"members": "fuori@esterno.example"}, "members"),
        ({"members": [1, 2]}, "members"),
        ({"members": [None]}, "members"),
        ({"members": ["non-un-indirizzo"]}, "members"),
        ({"members": ["nessuna@{domain}"]}, "members"),
        ({"members": ["tutti@{domain}"]}, "members"),
        ({"members": None}, "members"),
        ({"description": "x" * 201}, "description"),
        ({"description": 3}, "description"),
    ],
)
def test_bad_list_input_is_422_and_a_failed_patch_changes_nothing(ctx, make, payload, field):
    dlist = make.dlist(ctx.customer, "tutti", ["fuori@esterno.example"])
    payload = {
        k: (
            [m.replace("{domain}", ctx.domain) if isinstance(m, str) else m for m in v]
            if isinstance(v, list)
            else v
        )
        for k, v in payload.items()
    }
    body = refused(lambda: ctx.admin("PATCH", f"/lists/{dlist.id}", {"description": "Cambiata", **payload}))
    assert field in body["errors"], body
    after = ctx.admin("GET", f"/lists/{dlist.id}").get_json()
    assert (after["description"], after["members"]) == ("", ["fuori@esterno.example"])
    create = {"address": f"nuova@{ctx.domain}", **payload}
    body = refused(lambda: ctx.admin("POST", f"/customers/{ctx.customer.id}/lists", create))
    assert field in body["errors"]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({}, 422, "service_class"),
        ({"service_class": "Gold", "extra_accounts": 1, "note": "x"}, 422, "service_class"),
        ({"service_class": CLASS, "extra_accounts": 0, "note": "x"}, 422, "extra_accounts"),
        ({"service_class": CLASS, "extra_accounts": "3", "note": "x"}, 422, "extra_accounts"),
        ({"service_class": CLASS, "extra_accounts": 10_001, "note": "x"}, 422, "extra_accounts"),
        ({"service_class": CLASS, "note": "x"}, 422, "extra_accounts"),
        ({"service_class": CLASS, "extra_accounts": 1, "note": "x" * 1001}, 422, "note"),
        ({"service_class": CLASS, "extra_accounts": 1, "note": ["x"]}, 422, "note"),
        ({"service_class": CLASS, "extra_accounts": 1, "note": "   "}, 422, "note"),
        ({"service_class": CLASS, "extra_accounts": 1}, 422, "note"),
    ],
)
def test_bad_capacity_requests_are_refused(ctx, payload, status, field):
    body = refused(
        lambda: ctx.admin("POST", f"/customers/{ctx.customer.id}/capacity-requests", payload), status
    )
    assert field in body["errors"]


def test_pay_per_use_customers_cannot_ask_for_capacity(ctx, client, make):
    admin = Api(client, users.create_token(make.SYSTEM, make.admin(ctx.other_customer), "t")[1])
    body = refused(
        lambda: admin(
            "POST",
            f"/customers/{ctx.other_customer.id}/capacity-requests",
            {"service_class": CLASS, "extra_accounts": 1, "note": "Serve"},
        ),
        409,
    )
    assert body["error"]


# Values a database driver would choke on


def test_ids_beyond_the_database_range_are_404_or_422(ctx):
    huge = 10**30
    for path in (f"/mailboxes/{huge}", "/mailboxes/9999999999", f"/customers/{huge}/mailboxes", "/aliases/0"):
        r = ctx.staff("GET", path)
        assert r.status_code == 404 and r.get_json()["error"], path
    c = ctx.customer.id
    for payload, field, path in [
        (_mailbox(ctx, service_class=huge), "service_class", f"/customers/{c}/mailboxes"),
        (_mailbox(ctx, service_class=str(huge)), "service_class", f"/customers/{c}/mailboxes"),
        ({"address": f"a@{ctx.domain}", "target": huge}, "target", f"/customers/{c}/aliases"),
        ({"address": f"a@{ctx.domain}", "target": str(huge)}, "target", f"/customers/{c}/aliases"),
        (
            {"service_class": -huge, "extra_accounts": 1, "note": "x"},
            "service_class",
            f"/customers/{c}/capacity-requests",
        ),
    ]:
        body = refused(lambda p=path, b=payload: ctx.admin("POST", p, b))
        assert field in body["errors"], (path, body)
    r = ctx.admin("GET", f"/customers/{c}/mailboxes?service_class={huge}")
    assert r.status_code == 422


@pytest.mark.parametrize(
    "path",
    [
        "/customers?q=a%00b",
        "/customers/{c}/mailboxes?q=a%00b",
        "/customers/{c}/aliases?q=%00",
        "/customers/{c}/lists?q=%01",
    ],
)
def test_control_characters_in_a_search_are_422(ctx, path):
    r = ctx.staff("GET", path.format(c=ctx.customer.id))
    assert r.status_code == 422 and "q" in r.get_json()["errors"]


def test_lone_surrogates_in_json_strings_are_422(ctx):
    c = ctx.customer.id
    raw = json.dumps(_mailbox(ctx, display_name="MARK")).replace("MARK", "a\\ud800b")
    body = refused(lambda: ctx.admin("POST", f"/customers/{c}/mailboxes", data=raw.encode()))
    assert list(body["errors"]) == ["display_name"]
    raw = '{"members": ["x\\udfff@esterno.example"]}'
    dlist = ctx.admin("POST", f"/customers/{c}/lists", {"address": f"tutti@{ctx.domain}"}).get_json()
    body = refused(lambda: ctx.admin("PATCH", f"/lists/{dlist['id']}", data=raw.encode()))
    assert list(body["errors"]) == ["members"]
    body = refused(lambda: ctx.admin("PATCH", f"/mailboxes/{ctx.mailbox.id}", data=b'{"\\ud800": 1}'))
    assert len(body["errors"]) == 1
