"""Security headers on every answer: pages, fragments, errors, the API, static files."""

from __future__ import annotations

import pytest

from app.web import HTMX_URL
from tests.conftest import make_app


@pytest.mark.parametrize(
    "path", ["/login", "/static/css/app.css", "/api/v1/openapi.json", "/no-such-page", "/customers/1/"]
)
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == f"'self' {HTMX_URL}"
    assert "unsafe" not in directives["script-src"] and "unsafe" not in directives["default-src"]
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_and_htmx_draws_no_inline_style(client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    for path in (f"/customers/{c.id}/", f"/customers/{c.id}/mailboxes", "/account", "/help/faq"):
        page = client.get(path).get_data(as_text=True)
        assert page.count("<script") == page.count("<script src=") == 2, path
        assert " hx-on" not in page
        assert '"includeIndicatorStyles":false' in page


def test_hsts_outside_development_only(app, client, database_url):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    production = make_app(database_url, ENV_NAME="production")
    hsts = production.test_client().get("/login").headers["Strict-Transport-Security"]
    assert hsts.startswith("max-age=31536000")
