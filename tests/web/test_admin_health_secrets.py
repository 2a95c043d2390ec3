"""The staff health page never shows a password that sits inside a configured URL."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from app.services import health, quota


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Doveadm(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args):
        pass


@pytest.fixture
def doveadm():
    server = HTTPServer(("127.0.0.1", 0), _Doveadm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_passwords_in_redis_and_doveadm_urls_never_reach_the_page(
    client, make, auth, app, monkeypatch, doveadm
):
    auth.login(make.staff().email)
    monkeypatch.setitem(app.config, "REDIS_URL", f"redis://:Segreto-redis-9@127.0.0.1:{closed_port()}/0")
    monkeypatch.setitem(
        app.config, "DOVEADM_URL", f"http://admin:Segreto-dove-9@127.0.0.1:{closed_port()}/doveadm/v1"
    )
    monkeypatch.setitem(app.config, "HEALTH_TIMEOUT", 0.5)
    down = client.get("/admin/health").get_data(as_text=True)
    assert "Segreto" not in down
    assert "admin:***@127.0.0.1" in down  # the page still says where it looked

    # The quota refresh stored the URL it could not reach in its error.
    quota.refresh_usage()
    assert "Segreto" in quota.refresh_state().last_error
    assert "Segreto" not in client.get("/admin/health").get_data(as_text=True)

    # Up, too: the reachable service's URL is shown redacted.
    monkeypatch.setitem(
        app.config, "DOVEADM_URL", f"http://admin:Segreto-dove-9@127.0.0.1:{doveadm}/doveadm/v1"
    )
    up = client.get("/admin/health").get_data(as_text=True)
    assert "Segreto" not in up and f"admin:***@127.0.0.1:{doveadm}/doveadm/v1" in up


def test_redact_and_scrub(app, monkeypatch):
    assert health.redact_url("postgresql://panel:p%40ss@db.example:5432/panel") == (
        "postgresql://panel:***@db.example:5432/panel"
    )
    assert health.redact_url("redis://:segreta@r.example:6379/0") == "redis://:***@r.example:6379/0"
    assert health.redact_url("http://mail.example:8080/doveadm/v1") == "http://mail.example:8080/doveadm/v1"
    monkeypatch.setitem(app.config, "SQLALCHEMY_DATABASE_URI", "postgresql://panel:Pass%20word-9@db/panel")
    message = 'could not parse "postgresql://panel:Pass%20word-9@db/panel": bad password Pass word-9'
    assert health.scrub(message) == 'could not parse "postgresql://panel:***@db/panel": bad password ***'


def test_rspamd_is_a_row_of_the_page_when_configured(client, make, auth, app, monkeypatch):
    auth.login(make.staff().email)
    monkeypatch.setitem(app.config, "RSPAMD_CONTROLLER_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setitem(app.config, "HEALTH_TIMEOUT", 0.5)
    r = client.get("/admin/health")
    assert r.status_code == 200
    assert "Rspamd (firma DKIM e antispam)" in r.get_data(as_text=True)
