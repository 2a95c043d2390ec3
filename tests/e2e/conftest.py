"""Browser tests: the app on a live server, driven by Debian's Chromium through Playwright.

Fixtures:
- live_server: .url (base URL) and .app (create data with `with live_server.app.app_context():`
  or simply use the `make` factories, which run in that app here);
- page: a Playwright page whose base URL is the live server; htmx's CDN URL is
  served from the npm registry's copy, so the browser checks SRI for real;
  every other external request is aborted; a Content-Security-Policy violation
  on the console fails the test;
- login(page, email, password): signs in through the login form.
Tables are emptied after each test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import expect
from werkzeug.serving import make_server

from app.extensions import db
from app.web import HTMX_URL, HTMX_VERSION
from tests import factories, twofactor
from tests.conftest import _empty_tables, make_app

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
# Generous: CI runs the browser beside a second test worker starting mail servers.
TIMEOUT_MS = 20_000
# expect() has its own default (5 s), separate from the context's: give it the same.
expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    missing = not Path(CHROMIUM).exists()
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
            if missing:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"no Chromium at {CHROMIUM} (make test installs it as root on Debian)"
                    )
                )


def htmx_file(cache_dir: Path) -> bytes:
    """htmx.min.js from the npm registry's package, fetched once into pytest's cache."""
    target = cache_dir / f"htmx.org-{HTMX_VERSION}.min.js"
    if target.exists():
        return target.read_bytes()
    tarball = cache_dir / f"htmx.org-{HTMX_VERSION}.tgz"
    if not tarball.exists():
        if shutil.which("npm"):
            subprocess.run(
                ["npm", "pack", f"htmx.org@{HTMX_VERSION}", "--silent", "--pack-destination", str(cache_dir)],
                check=True,
                capture_output=True,
            )
        else:
            url = f"https://registry.npmjs.org/htmx.org/-/htmx.org-{HTMX_VERSION}.tgz"
            with urllib.request.urlopen(url, timeout=60) as response:
                tarball.write_bytes(response.read())
    with tarfile.open(tarball) as tar:
        data = tar.extractfile("package/dist/htmx.min.js").read()
    target.write_bytes(data)
    return data


@dataclass
class LiveServer:
    url: str
    app: Flask


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    db_file = tmp_path_factory.mktemp("e2e") / "panel.sqlite3"
    app = make_app(f"sqlite:///{db_file}", SESSION_COOKIE_SECURE=False, REMEMBER_COOKIE_SECURE=False)
    with app.app_context(), db.engine.connect() as conn:
        # WAL: the test's own session may read while the server thread writes.
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def app(live_server):
    """The live server's app, in context, for factories and assertions; emptied afterwards."""
    with live_server.app.app_context():
        yield live_server.app
        db.session.remove()
        _empty_tables()


@pytest.fixture
def make(app):
    return factories


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def htmx_js(request, tmp_path_factory) -> bytes:
    cache = getattr(request.config, "cache", None)
    return htmx_file(Path(cache.mkdir("npm")) if cache else tmp_path_factory.mktemp("npm"))


def open_context(browser, live_server, htmx: bytes, **options):
    """A browser context on the live server: htmx's CDN URL answered with the npm copy
    (so the browser checks its SRI for real), every other outside request aborted."""
    context = browser.new_context(base_url=live_server.url, locale="it-IT", **options)
    context.set_default_timeout(TIMEOUT_MS)

    def route(route):
        url = route.request.url
        if url == HTMX_URL:
            route.fulfill(
                status=200,
                body=htmx,
                headers={"Content-Type": "application/javascript", "Access-Control-Allow-Origin": "*"},
            )
        elif url.startswith(live_server.url + "/"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", route)
    # What the Content-Security-Policy refused (Chromium says so on the console), per context.
    context.csp_violations = []

    def watch(page):
        page.on(
            "console",
            lambda m: "Content Security Policy" in m.text and context.csp_violations.append(m.text),
        )

    context.on("page", watch)
    return context


@pytest.fixture
def page(browser, live_server, app, htmx_js):
    context = open_context(browser, live_server, htmx_js)
    page = context.new_page()
    yield page
    violations = context.csp_violations
    context.close()
    assert not violations, "the page broke its Content-Security-Policy:\n" + "\n".join(violations)


@pytest.fixture
def login():
    """login(page, email, password=factories.PASSWORD): sign in through the form, wait to land."""

    def _login(page, email: str, password: str = factories.PASSWORD):
        user = twofactor.user_by_email(email)
        if user is not None and user.is_staff and not user.has_totp:
            twofactor.enrol(user)
        page.goto("/login")
        page.fill("#email", email)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("form button[type=submit]")
        if page.url.endswith("/login/code"):
            page.fill("#code", twofactor.next_code(user))
            with page.expect_navigation():
                page.click("form button[type=submit]")
        assert "/login" not in page.url, f"login as {email} failed: still on {page.url}"
        return page

    return _login
