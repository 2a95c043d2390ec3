"""rspamd on the staff health page: its controller, its milter (where Postfix hands it the mail)
and the Redis it reads the DKIM keys from, each a row of its own, against real listeners and
closed ports; a password in RSPAMD_REDIS_URL never reaches the page."""

from __future__ import annotations

import html as htmllib
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import redis

from app.services import health
from tests.conftest import CI, TEST_REDIS_URL
from tests.web.test_admin_health_secrets import closed_port


class _Controller(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"pong\r\n")

    def log_message(self, *args):
        pass


@pytest.fixture
def controller():
    server = HTTPServer(("127.0.0.1", 0), _Controller)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def milter():
    """A port that accepts TCP connections, as rspamd's proxy worker does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def milter_socket(tmp_path):
    """A Unix socket that accepts connections, as rspamd's proxy worker renders by default."""
    path = tmp_path / "milter.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)
        yield path


@pytest.fixture
def real_redis():
    conn = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        conn.ping()
    except redis.ConnectionError as e:
        pytest.fail(f"Redis unreachable at {TEST_REDIS_URL}: {e}")
    finally:
        conn.close()
    return TEST_REDIS_URL


def row(page: str, name: str) -> str | None:
    found = re.search(rf'<tr id="check-{name}">(.*?)</tr>', page, re.S)
    return htmllib.unescape(re.sub(r"\s+", " ", found.group(1))) if found else None


def alert(page: str) -> str:
    found = re.search(r'role="alert">(.*?)</div>', page, re.S)
    return re.sub(r"\s+", " ", found.group(1)) if found else ""


@pytest.fixture
def page(client, make, auth, app, monkeypatch):
    auth.login(make.staff().email)
    monkeypatch.setitem(app.config, "HEALTH_TIMEOUT", 1)

    def get(**config) -> str:
        for name, value in config.items():
            monkeypatch.setitem(app.config, name, value)
        answer = client.get("/admin/health")
        assert answer.status_code == 200
        return answer.get_data(as_text=True)

    return get


def test_rspamd_s_controller_milter_and_redis_up_are_three_rows(page, controller, milter, real_redis):
    got = page(RSPAMD_CONTROLLER_URL=controller, RSPAMD_MILTER_PORT=milter, RSPAMD_REDIS_URL=real_redis)
    assert "Raggiungibile" in row(got, "rspamd") and "pong" in row(got, "rspamd")
    milter_row = row(got, "rspamd_milter")
    assert "Rspamd (milter di Postfix)" in milter_row and "Raggiungibile" in milter_row
    assert f"127.0.0.1:{milter}: connected" in milter_row
    redis_row = row(got, "rspamd_redis")
    assert "Redis di rspamd (chiavi DKIM)" in redis_row and "Raggiungibile" in redis_row
    assert f"{real_redis}: PONG" in redis_row
    assert "Rspamd" not in alert(got) and "Redis di rspamd" not in alert(got)


def test_the_milter_on_its_unix_socket_up_and_down(page, controller, milter_socket):
    """As rendered by default: the page connects to RSPAMD_MILTER_SOCKET, not to a port."""
    got = page(
        RSPAMD_CONTROLLER_URL=controller, RSPAMD_MILTER_PORT=0, RSPAMD_MILTER_SOCKET=str(milter_socket)
    )
    milter_row = row(got, "rspamd_milter")
    assert "Raggiungibile" in milter_row and f"unix:{milter_socket}: connected" in milter_row
    assert "Rspamd" not in alert(got)

    # A socket nobody listens on any more (rspamd stopped, the file left behind).
    gone = milter_socket.parent / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(gone))
    stale.close()
    got = page(RSPAMD_MILTER_SOCKET=str(gone))
    milter_row = row(got, "rspamd_milter")
    assert "Non raggiungibile" in milter_row and f"unix:{gone}: Connection refused" in milter_row
    assert "Rspamd (milter di Postfix)" in alert(got)
    # No socket at all (rspamd never started, or a path that is not the rendered one).
    got = page(RSPAMD_MILTER_SOCKET=str(milter_socket.parent / "assente.sock"))
    assert "No such file or directory" in row(got, "rspamd_milter")
    # Something that is not a socket.
    (milter_socket.parent / "file").write_text("x")
    got = page(RSPAMD_MILTER_SOCKET=str(milter_socket.parent / "file"))
    assert "Non raggiungibile" in row(got, "rspamd_milter")
    # A port set means the milter on TCP: the socket is not where the page looks then.
    got = page(RSPAMD_MILTER_SOCKET=str(milter_socket), RSPAMD_MILTER_PORT=closed_port())
    assert "Connection refused" in row(got, "rspamd_milter") and "unix:" not in row(got, "rspamd_milter")


def test_a_closed_milter_port_and_an_unreachable_redis_are_shown_password_redacted(page, controller):
    milter, redis_port = closed_port(), closed_port()
    url = f"redis://:Segreto-rspamd-9@127.0.0.1:{redis_port}/1"
    got = page(RSPAMD_CONTROLLER_URL=controller, RSPAMD_MILTER_PORT=milter, RSPAMD_REDIS_URL=url)
    assert "Raggiungibile" in row(got, "rspamd")  # the controller answers: only the others are down
    milter_row = row(got, "rspamd_milter")
    assert "Non raggiungibile" in milter_row and f"127.0.0.1:{milter}: Connection refused" in milter_row
    redis_row = row(got, "rspamd_redis")
    assert "Non raggiungibile" in redis_row and f"redis://:***@127.0.0.1:{redis_port}/1" in redis_row
    down = alert(got)
    assert "Rspamd (milter di Postfix)" in down and "Redis di rspamd (chiavi DKIM)" in down
    assert "Rspamd (firma DKIM e antispam)" not in down
    assert "Segreto" not in got


@pytest.fixture
def redis_with_password(tmp_path):
    """A throwaway redis-server on loopback that asks for a password, as production's should."""
    binary = shutil.which("redis-server")
    if binary is None:
        if CI:
            pytest.fail("CI=true: redis-server not installed")
        pytest.skip("redis-server not installed")
    port = closed_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "Segreto-giusto-9",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def test_rspamd_s_redis_with_its_password_and_with_a_wrong_one(page, redis_with_password):
    port = redis_with_password
    got = page(RSPAMD_CONTROLLER_URL="", RSPAMD_REDIS_URL=f"redis://:Segreto-giusto-9@127.0.0.1:{port}/1")
    redis_row = row(got, "rspamd_redis")
    assert "Raggiungibile" in redis_row and f"redis://:***@127.0.0.1:{port}/1: PONG" in redis_row
    assert "Segreto" not in got
    # Without a controller URL rspamd itself is not checked here: no controller or milter row.
    assert row(got, "rspamd") is None and row(got, "rspamd_milter") is None

    # A wrong password: refused, the row says so, and neither password is on the page.
    got = page(RSPAMD_REDIS_URL=f"redis://:Segreto-sbagliato-9@127.0.0.1:{port}/1")
    redis_row = row(got, "rspamd_redis")
    assert "Non raggiungibile" in redis_row and f"redis://:***@127.0.0.1:{port}/1: " in redis_row
    assert "password" in redis_row.lower()  # Redis's own reason
    assert "Redis di rspamd (chiavi DKIM)" in alert(got)
    assert "Segreto" not in got
    # No password at all where one is required.
    got = page(RSPAMD_REDIS_URL=f"redis://127.0.0.1:{port}/1")
    assert "Non raggiungibile" in row(got, "rspamd_redis")


def test_what_is_not_configured_is_not_a_row(page, controller):
    got = page(
        RSPAMD_CONTROLLER_URL=controller, RSPAMD_MILTER_PORT=0, RSPAMD_MILTER_SOCKET="", RSPAMD_REDIS_URL=""
    )
    assert row(got, "rspamd") is not None
    assert row(got, "rspamd_milter") is None and row(got, "rspamd_redis") is None


def test_a_redis_url_that_is_not_one_is_a_problem_not_an_error(app, monkeypatch):
    monkeypatch.setitem(app.config, "RSPAMD_REDIS_URL", "http://:Segreto-9@127.0.0.1:6379/0")
    check = health.check_rspamd_redis(1)
    assert not check.ok and "Segreto" not in check.detail and check.detail.startswith("http://:***@")
