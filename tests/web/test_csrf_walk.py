"""Every state-changing route of the web app refuses a request without the CSRF token.

Driven by the URL map like the tenant-isolation walk: a new POST route is
covered the day it is added. Support staff make the requests, so scoping
cannot answer first: the refusal must come from the CSRF check itself.
"""

from __future__ import annotations

from tests.web.test_tenant_isolation import FORM, _snapshot, _urls, world  # noqa: F401  (fixture)


def test_no_web_mutation_works_without_the_csrf_token(app, client, auth, make, world):  # noqa: F811
    auth.login(make.staff().email)
    before = _snapshot()
    form = {k: v.format(domain=world["domain_b"], mailbox=world["box_b"]) for k, v in FORM.items()}
    walked, wrong = 0, []
    for _rule, path, method in _urls(app, world["ids"]):
        if path.startswith("/api/") or method == "GET":
            continue
        walked += 1
        response = client.open(path, method=method, data=form, csrf=False)
        if response.status_code != 400:
            wrong.append(f"{method} {path} -> {response.status_code}")
    # Routes without ids (new customer, users, account, logout...).
    for rule in app.url_map.iter_rules():
        if rule.arguments or rule.rule.startswith("/api/") or "POST" not in rule.methods:
            continue
        walked += 1
        response = client.post(rule.rule, data=form, csrf=False)
        if response.status_code != 400:
            wrong.append(f"POST {rule.rule} -> {response.status_code}")
    assert walked > 10
    assert not wrong, "\n".join(wrong)
    assert _snapshot() == before
