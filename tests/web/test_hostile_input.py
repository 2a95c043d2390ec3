"""Hostile input on every route: a clear 4xx, never a 500, and a refusal writes nothing.

The walk is driven by the URL map, so a route added tomorrow is walked too:
ids past the databases' integer ranges in the path, NUL and control
characters, huge numbers and far-away dates in every query parameter and
form field a page reads, deeply nested JSON; as an anonymous visitor, a
customer admin and support staff; GET and POST (with the CSRF token) alike.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import IntegerConverter

from app.extensions import db
from app.models import CapacityRequest
from app.services import capacity, domains, users
from tests import factories
from tests.web.test_tenant_isolation import NON_ID_ARGS, _snapshot, _waiting_import

HUGE_IDS = (2**31, 2**32, 2**63, 2**64 + 1, 10**30)
QUERY_KEYS = (
    "q",
    "page",
    "per_page",
    "class",
    "service_class",
    "status",
    "customer_id",
    "action",
    "actor",
    "target",
    "date_from",
    "date_to",
    "since",
    "requested",
    "next",
    "lang",
)
FORM_KEYS = (
    "email",
    "password",
    "current_password",
    "new_password",
    "confirm",
    "address",
    "local_part",
    "domain",
    "target",
    "members",
    "member",
    "display_name",
    "service_class",
    "status",
    "name",
    "description",
    "extra_accounts",
    "note",
    "plan",
    "self_service",
    "vat_number",
    "contact_email",
    "role",
    "customer_id",
    "decision",
    "active",
    "locale",
    "next",
)
CONTROL = ("\x00", "a\x00b", "mario\x00@example.org", "\x01", "\x1b[2J", "\x7f")
ODD = (
    str(2**31),
    str(2**63),
    "9" * 40,
    "-1",
    "0",
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "%",
    "_",
    "\\",
)
ALONE = (str(2**63), "9" * 40, "0001-01-01", "9999-12-31", "9999-12-31T23:59:59-14:00")
NESTED = ("[" * 500 + "]" * 500, '{"a":' * 450 + "1" + "}" * 450, '{"name": ' + "[" * 100 + "]" * 100 + "}")
SKIPPED_ENDPOINTS = {"auth.logout", "static"}  # logging out mid-walk would only shorten it
# Walked last of all: a new password revokes the walker's API token (every API request after it
# would be a 401), and ending one's sessions logs this browser out (every page after it would be
# the login page).
SIGNING_OUT = ("auth.account_password", "auth.account_sessions_end")


def _open_request(customer_id: int) -> CapacityRequest:
    capacity.request_capacity(
        factories.SYSTEM,
        customer_id,
        service_class="Business Mail 100 MB",
        extra_accounts=1,
        note="più caselle",
    )
    return db.session.scalar(sa.select(CapacityRequest).where(CapacityRequest.customer_id == customer_id))


@pytest.fixture
def world(app, make):
    c = make.customer("contract", {"Business Mail 100 MB": 5, "Business Mail 200 MB": 5})
    admin = make.admin(c)
    spare = make.admin(c)  # the one the walk may deactivate
    staff = make.staff()
    box = make.mailbox(c, "casella")
    alias = make.alias(c, "alias", box)
    dlist = make.dlist(c, "lista", [box.address, "fuori@example.org"])
    req = _open_request(c.id)
    spare_token, _ = users.create_token(make.SYSTEM, spare, "spare")
    _, admin_token = users.create_token(make.SYSTEM, admin, "walk")
    _, staff_token = users.create_token(make.SYSTEM, staff, "walk")
    ids = {
        "customer_id": c.id,
        "mailbox_id": box.id,
        "alias_id": alias.id,
        "list_id": dlist.id,
        "dlist_id": dlist.id,
        "domain_id": domains.list_domains(make.SYSTEM, c.id)[0].id,
        "member_id": dlist.members[0].id,
        "request_id": req.id,
        "capacity_request_id": req.id,
        "token_id": spare_token.id,
        "user_id": spare.id,
        "import_id": _waiting_import(c.id),
        "id": c.id,
    }
    domain = make.domain_of(c)
    form = {
        "email": f"nuovo@{domain}",
        "password": "Una-password-nuova-1",
        "current_password": factories.PASSWORD,
        "new_password": "Una-password-nuova-2",
        "confirm": "Una-password-nuova-2",
        "address": f"nuovo@{domain}",
        "local_part": "nuovo",
        "domain": domain,
        "target": box.address,
        "members": "esterno@example.org",
        "member": "esterno@example.org",
        "display_name": "Nuovo",
        "service_class": "Business Mail 100 MB",
        "status": "suspended",
        "name": "nuovo.example",
        "description": "nuovo",
        "extra_accounts": "1",
        "note": "nota",
        "plan": "contract",
        "self_service": "y",
        "vat_number": "IT01234567890",
        "contact_email": "ufficio@example.org",
        "role": "customer_admin",
        "customer_id": str(c.id),
        "decision": "approve",
        "active": "1",
        "locale": "it",
        "next": "/",
    }
    db.session.commit()
    return {
        "form": form,
        "ids": ids,
        "actors": {"anonymous": (None, None), "admin": (admin, admin_token), "staff": (staff, staff_token)},
    }


def _rules(app):
    """Every route but static files, the deleting ones last so the others still find their rows,
    and after them those that sign the walker out."""
    rules = [r for r in app.url_map.iter_rules() if r.endpoint not in SKIPPED_ENDPOINTS]
    destructive = ("delete", "remove", "revoke", "active", "decision", "approve", "reject")
    return sorted(
        rules,
        key=lambda r: (r.endpoint in SIGNING_OUT, any(w in r.rule for w in destructive), r.rule),
    )


def _is_id(rule, arg: str) -> bool:
    return isinstance(rule._converters.get(arg), IntegerConverter)


def _path(rule, ids, **override) -> str:
    values = {}
    for arg in rule.arguments:
        if arg in override:
            values[arg] = override[arg]
        elif arg in ids:
            values[arg] = ids[arg]
        elif arg in NON_ID_ARGS:
            values[arg] = NON_ID_ARGS[arg]
        else:
            values[arg] = 1 if _is_id(rule, arg) else "x"
    return rule.build(values, append_unknown=False)[1]


def _methods(rule):
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


_READ: set[str] = set()  # the query and form keys the request being sent has read
_EVERY = "*"  # it went through all of them (to_dict, items...)
_IN_HOOKS = [False]  # the app's before_request functions are running: their reads are not noted


def _note(key: str) -> None:
    if not _IN_HOOKS[0]:
        _READ.add(key)


class _ReadKeys(ImmutableMultiDict):
    """A request's args and form that note which keys the page reads."""

    def __getitem__(self, key):
        _note(key)
        return super().__getitem__(key)

    def get(self, key, *args, **kwargs):
        _note(key)
        return super().get(key, *args, **kwargs)

    def getlist(self, key, *args, **kwargs):
        _note(key)
        return super().getlist(key, *args, **kwargs)

    def __contains__(self, key):
        _note(key)
        return super().__contains__(key)

    def _every(name):
        def every(self, *args, **kwargs):
            _note(_EVERY)
            return getattr(ImmutableMultiDict, name)(self, *args, **kwargs)

        return every

    keys, values, items, lists, listvalues, to_dict, copy, __iter__ = map(
        _every, ("keys", "values", "items", "lists", "listvalues", "to_dict", "copy", "__iter__")
    )


@pytest.fixture
def noting(app, monkeypatch):
    """Requests whose args and form note the keys their page reads, so that a walk sends each key
    alone only where the page reads it (a key nobody reads cannot break anything). What the app's
    before_request functions read is not noted: they run the same code for every route (the
    control-character guard goes through every key), and every request of the walks, each key's
    odd value in all of them, goes through them."""
    monkeypatch.setattr(
        app,
        "request_class",
        type("NotingRequest", (app.request_class,), {"parameter_storage_class": _ReadKeys}),
    )
    hooks = app.preprocess_request

    def preprocess_request():
        _IN_HOOKS[0] = True
        try:
            return hooks()
        finally:
            _IN_HOOKS[0] = False

    monkeypatch.setattr(app, "preprocess_request", preprocess_request)


class Walker:
    """Sends the walk's requests and lists what went wrong: a 500 (or an answer not expected), and
    for a signed-in walker, an answer that says it is signed in no longer (the rest of the walk
    would only see the login page or 401s)."""

    def __init__(self, client, token: str | None):
        self.client, self.token = client, token
        rules = client.application.url_map.iter_rules()
        self.signing_out = {r.rule for r in rules if r.endpoint in SIGNING_OUT}
        self.wrong: list[str] = []
        self.count = 0
        self.read: dict[tuple[str, str], set[str]] = {}

    def keys_read(self, method: str, path: str, keys) -> list[str]:
        """Those of keys the route read in the requests sent so far (all when it went through them)."""
        read = self.read.get((method, path), set())
        return list(keys) if _EVERY in read else [k for k in keys if k in read]

    def send(self, method: str, path: str, *, query=None, form=None, raw_json=None, expect=None):
        self.count += 1
        _READ.clear()
        kwargs: dict = {"method": method, "query_string": query}
        if path.startswith("/api/"):
            headers = {"Content-Type": "application/json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            kwargs["headers"] = headers
            if method != "GET":
                kwargs["data"] = raw_json if raw_json is not None else json.dumps(form or {})
        elif method != "GET":
            kwargs["data"] = form or {}
        try:
            response = self.client.open(path, **kwargs)
        except Exception as e:  # the test client re-raises what would be a 500: list them all
            self.wrong.append(f"{method} {path} {query} {form} -> {type(e).__name__}: {str(e)[:120]}")
            return None
        finally:
            self.read.setdefault((method, path), set()).update(_READ)
        status = response.status_code
        bad = status >= 500 if expect is None else status not in expect
        if bad:
            shown = {"query": query, "form": form, "json": (raw_json or "")[:40]}
            self.wrong.append(f"{method} {path} {shown} -> {status}")
        to_login = response.location and "/login" in response.location and not path.startswith("/login")
        if self.token and (status == 401 or to_login) and path not in self.signing_out:
            self.wrong.append(f"{method} {path} {query} {form} -> {status}: signed out mid-walk")
        return response


def _login(auth, user):
    if user is not None:
        auth.login(user.email)


@pytest.mark.parametrize("who", ["anonymous", "admin", "staff"])
def test_ids_beyond_the_database_range_are_404(app, client, auth, world, who):
    user, token = world["actors"][who]
    _login(auth, user)
    walker = Walker(client, token)
    for rule in _rules(app):
        for arg in [a for a in rule.arguments if _is_id(rule, a)]:
            for huge in HUGE_IDS:
                path = _path(rule, world["ids"], **{arg: huge})
                for method in _methods(rule):
                    walker.send(method, path, expect={404})
    assert walker.count > 50
    assert not walker.wrong, "\n".join(walker.wrong)


# The refusal comes from a before_request function, before any view or query: on one database.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("who", ["anonymous", "admin", "staff"])
def test_control_characters_anywhere_are_422_and_write_nothing(app, client, auth, world, who):
    user, token = world["actors"][who]
    _login(auth, user)
    walker = Walker(client, token)
    before = _snapshot()
    for rule in _rules(app):
        path = _path(rule, world["ids"])
        for method in _methods(rule):
            refused = {422}
            for value in CONTROL:
                walker.send(method, path, query={"q": value}, expect=refused)
                if method != "GET" and not path.startswith("/api/"):
                    # One hostile field among plausible ones.
                    walker.send(
                        method, path, form={**{k: "x" for k in FORM_KEYS}, "email": value}, expect={422}
                    )
                    walker.send(method, path, form={k: value for k in FORM_KEYS}, expect={422})
    assert walker.count > 50
    assert not walker.wrong, "\n".join(walker.wrong)
    db.session.expire_all()
    assert _snapshot() == before


@pytest.mark.parametrize("who", ["anonymous", "admin", "staff"])
def test_odd_values_in_every_parameter_are_never_a_500(app, client, auth, world, who, noting):
    user, token = world["actors"][who]
    _login(auth, user)
    walker = Walker(client, token)
    for rule in _rules(app):
        path = _path(rule, world["ids"])
        for method in _methods(rule):
            walker.send(method, path)  # plain: the keys the page reads on its usual way
            for value in ODD:
                walker.send(method, path, query={k: value for k in QUERY_KEYS})
                if method != "GET":
                    walker.send(method, path, form={k: value for k in FORM_KEYS})
            if method == "GET" and user is not None:
                # One at a time too, so that one refused parameter cannot hide another (each key
                # the page read in the requests above).
                for key in walker.keys_read(method, path, QUERY_KEYS):
                    for value in ALONE:
                        walker.send(method, path, query={key: value})
            if path.startswith("/api/") and method != "GET":
                for value in (2**31, 2**63, 10**40, -(2**63), "\x00", "\ud800"):
                    walker.send(method, path, form={k: value for k in FORM_KEYS})
                for raw in NESTED:
                    walker.send(method, path, raw_json=raw)
    assert walker.count > 100
    assert not walker.wrong, "\n".join(walker.wrong)


@pytest.mark.parametrize("who", ["admin", "staff"])
def test_one_odd_field_among_plausible_ones_is_never_a_500(app, client, auth, world, who, noting):
    """Each field in turn gets a number past the integer ranges, the others make sense (each field
    the page reads; every field for the API, whose JSON body is not noted)."""
    user, token = world["actors"][who]
    _login(auth, user)
    walker = Walker(client, token)
    plausible = world["form"]
    for rule in _rules(app):
        path = _path(rule, world["ids"])
        for method in [m for m in _methods(rule) if m != "GET"]:
            keys = FORM_KEYS
            if not path.startswith("/api/"):
                walker.send(method, path, form=plausible)
                walker.send(method, path, form={k: "9" * 40 for k in FORM_KEYS})
                keys = walker.keys_read(method, path, FORM_KEYS)
            for key in keys:
                values = (2**31, 10**40) if path.startswith("/api/") else (str(2**31), "9" * 40)
                for value in values:
                    walker.send(method, path, form={**plausible, key: value})
    assert walker.count > 100
    assert not walker.wrong, "\n".join(walker.wrong)


def test_nul_in_the_login_email_is_422_and_logs_nobody_in(app, client, make):
    user = make.staff()
    response = client.post("/login", data={"email": user.email + "\x00", "password": factories.PASSWORD})
    assert response.status_code == 422
    assert "Contiene caratteri non ammessi" in response.get_data(as_text=True)
    assert client.get("/admin/customers").status_code == 302


def test_a_body_larger_than_the_cap_is_a_clear_413_before_anything_reads_it(app, client, make):
    staff = make.staff()
    token = users.create_token(factories.SYSTEM, staff, "t")[1]
    before = _snapshot()
    huge = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    page = client.post("/login", data={"email": staff.email, "password": huge})
    assert page.status_code == 413
    assert "troppo grande" in page.get_data(as_text=True)
    api = client.post(
        "/api/v1/customers",
        data=json.dumps({"name": huge}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert api.status_code == 413 and "troppo grande" in api.get_json()["error"]
    assert _snapshot() == before


@pytest.mark.parametrize("depth", [64, 400, 900, 5000])
def test_api_json_nested_deeply_is_a_clear_422(app, client, make, depth):
    staff = make.staff()
    token = users.create_token(factories.SYSTEM, staff, "t")[1]
    before = _snapshot()
    response = client.post(
        "/api/v1/customers",
        data='{"name": ' + "[" * depth + "]" * depth + "}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "annidat" in json.dumps(response.get_json(), ensure_ascii=False)
    assert _snapshot() == before


def test_a_page_past_the_end_is_the_empty_one_after_the_last(app, client, auth, make):
    c = make.customer()
    for n in range(3):
        make.mailbox(c, f"persona{n}")
    auth.login(make.admin(c).email)
    # The portal pages by key: an old ?page=N link (however large) shows the first page.
    page = client.get(f"/customers/{c.id}/mailboxes?per_page=2&page={10**30}")
    assert page.status_code == 200
    body = page.get_data(as_text=True).split('id="mailbox-results"')[1]
    assert ">persona0@<wbr>" in body and ">persona1@<wbr>" in body and ">persona2@<wbr>" not in body
    assert "start=persona2@" in body  # the way on to the next page
    token = users.create_token(factories.SYSTEM, make.staff(), "t")[1]
    api = client.get(
        f"/api/v1/customers/{c.id}/mailboxes?per_page=2&page=1000000",
        headers={"Authorization": f"Bearer {token}"},
    ).get_json()
    assert (api["items"], api["page"], api["pages"], api["total"]) == ([], 3, 2, 3)


def test_audit_dates_at_the_ends_of_the_calendar_filter_nothing_out(app, client, auth, make):
    make.customer(name="Ditta Calendario")
    auth.login(make.staff().email)
    page = client.get("/admin/audit?date_from=0001-01-01&date_to=9999-12-31")
    assert page.status_code == 200
    assert "Ditta Calendario" in page.get_data(as_text=True)


@pytest.mark.parametrize("path", ["mailboxes", "aliases", "lists"])
def test_nul_in_a_search_box_is_422(app, client, auth, make, path):
    c = make.customer()
    auth.login(make.admin(c).email)
    response = client.get(f"/customers/{c.id}/{path}?q=%00")
    assert response.status_code == 422
    assert "Contiene caratteri non ammessi" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("application/x-www-form-urlencoded", "name=Intrusa&plan=payg"),
        ("text/plain", '{"name": "Intrusa", "plan": "payg"}'),
        (
            "multipart/form-data; boundary=x",
            '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nI\r\n--x--',
        ),
        (None, '{"name": "Intrusa", "plan": "payg"}'),
    ],
)
def test_the_api_answers_415_to_a_body_that_is_not_json(app, client, make, content_type, data):
    c = make.customer()
    token = users.create_token(factories.SYSTEM, make.staff(), "t")[1]
    before = _snapshot()
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    for method, path in (("POST", "/api/v1/customers"), ("PATCH", f"/api/v1/customers/{c.id}")):
        response = client.open(path, method=method, data=data, headers=headers)
        assert response.status_code == 415, (method, response.get_json())
        assert "application/json" in response.get_json()["error"]
    assert _snapshot() == before


def test_json_with_a_charset_and_a_bodyless_approval_are_fine(app, client, make):
    c = make.customer("contract", {"Business Mail 100 MB": 1})
    token = users.create_token(factories.SYSTEM, make.staff(), "t")[1]
    auth = {"Authorization": f"Bearer {token}"}
    created = client.post(
        "/api/v1/customers",
        data='{"name": "Nuova Ditta", "plan": "payg"}',
        headers={**auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert created.status_code == 201
    req = _open_request(c.id)
    db.session.commit()
    approved = client.post(f"/api/v1/capacity-requests/{req.id}/approve", headers=auth)
    assert approved.status_code == 200
