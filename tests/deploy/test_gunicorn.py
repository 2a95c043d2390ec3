"""gunicorn serves the panel with deploy/gunicorn.conf.py, as panel-web.service starts it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

from tests.deploy.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_serves_the_login_page_in_production_mode(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": "gunicorn-test-" + "x" * 40,
        "DATA_KEYS": "Q9IL1wLWWknW3u9Pp-u-OLKm2JEi3h876rP-pMgR0Gc=",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'panel.sqlite3'}",
        "INSTANCE_DIR": str(tmp_path),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
    }
    bindir = ROOT / ".venv" / "bin"
    upgrade = subprocess.run(
        [bindir / "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    # The unit's command line, word for word.
    server = subprocess.Popen(
        [bindir / "gunicorn", "--config", "deploy/gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
                    body = response.read().decode()
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.2)
        assert response.status == 200
        assert 'name="password"' in body
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=40)
    assert server.returncode == 0, output
    assert output.count("Booting worker") == 2, output
