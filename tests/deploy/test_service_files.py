"""The nginx site passes `nginx -t` and the systemd units pass `systemd-analyze verify`."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.conftest import DEPLOY, ROOT, tool

UNITS = ("panel-web.service", "panel-worker@.service", "panel-cron.service")


def nginx_check(tmp_path, site: str) -> subprocess.CompletedProcess:
    """`nginx -t` on the site inside a minimal nginx.conf, with a self-signed certificate."""
    nginx, openssl = tool("nginx"), tool("openssl")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=panel.example.com", "-keyout", tmp_path / "key.pem", "-out", tmp_path / "cert.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    # Only what an operator edits anyway is replaced: the certificate paths and the log directory.
    site = re.sub(r"(?m)^(\s*ssl_certificate)\s+\S+;", rf"\1 {tmp_path}/cert.pem;", site)
    site = re.sub(r"(?m)^(\s*ssl_certificate_key)\s+\S+;", rf"\1 {tmp_path}/key.pem;", site)
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(site)
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp_path}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log {tmp_path}/access.log;\n{temp_paths}"
        f"    include {tmp_path}/site.conf;\n}}\n"
    )
    return subprocess.run(
        [nginx, "-t", "-p", tmp_path, "-c", tmp_path / "nginx.conf", "-e", tmp_path / "error.log"],
        capture_output=True,
        text=True,
    )


def test_nginx_site_passes_nginx_t(tmp_path):
    result = nginx_check(tmp_path, (DEPLOY / "nginx-panel.conf").read_text())
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[emerg]" not in result.stderr


def test_nginx_check_catches_a_broken_site(tmp_path):
    site = (DEPLOY / "nginx-panel.conf").read_text().replace("proxy_pass http://panel_app;", "proxy_pass;")
    result = nginx_check(tmp_path, site)
    assert result.returncode != 0
    assert "proxy_pass" in result.stderr


def test_nginx_site_sends_the_client_address_and_scheme_the_app_trusts():
    site = re.sub(r"(?m)#.*$", "", (DEPLOY / "nginx-panel.conf").read_text())
    # The edge overwrites X-Forwarded-For: a client cannot put an address of its choice in front.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site
    assert "proxy_add_x_forwarded_for" not in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert re.search(r"return 301 https://\$host\$request_uri;", site)


def verify_units(tmp_path, texts: dict[str, str]) -> subprocess.CompletedProcess:
    analyze = tool("systemd-analyze")
    # verify checks that every command exists: point the units at this checkout (its .venv).
    for name, text in texts.items():
        (tmp_path / name).write_text(text.replace("/srv/panel", str(ROOT)))
    names = [tmp_path / name for name in texts]
    names += [tmp_path / name.replace("@.", "@1.") for name in texts if "@." in name]
    return subprocess.run([analyze, "verify", *names], capture_output=True, text=True, cwd=tmp_path)


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    for command in ("gunicorn", "rq", "python"):
        assert (ROOT / ".venv" / "bin" / command).exists(), f".venv/bin/{command} (make install)"
    result = verify_units(tmp_path, {name: (DEPLOY / name).read_text() for name in UNITS})
    # Warnings (an unknown key, a bad value) count too: systemd would ignore that line.
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("KillMode=mixed", "KilMode=mixed"), "Unknown key"),
        (("/.venv/bin/gunicorn", "/.venv/bin/gunicorn-missing"), "not executable"),
    ],
    ids=["typo", "missing-command"],
)
def test_systemd_check_catches_a_broken_unit(tmp_path, change, expected):
    text = (DEPLOY / "panel-web.service").read_text().replace(*change)
    result = verify_units(tmp_path, {"panel-web.service": text})
    assert expected in result.stdout + result.stderr


@pytest.mark.parametrize("name", UNITS)
def test_units_run_as_the_panel_user_from_the_checkout(name):
    text = (DEPLOY / name).read_text()
    assert "User=panel" in text and "WorkingDirectory=/srv/panel" in text
    assert "EnvironmentFile=/etc/panel/panel.env" in text
    # No secret on a command line (ps shows it to every local user).
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
    assert "redis://" not in exec_start and "--url" not in exec_start


def test_nginx_takes_a_large_body_only_on_the_import_uploads():
    site = re.sub(r"(?m)#.*$", "", (DEPLOY / "nginx-panel.conf").read_text())
    sizes = re.findall(r"client_max_body_size (\S+);", site)
    assert sizes == ["2m", "11m"], sizes
    upload = re.search(r"location ~ (\S+) \{([^}]*)\}", site)
    pattern, body = re.compile(upload.group(1)), upload.group(2)
    assert "client_max_body_size 11m;" in body and "proxy_pass http://panel_app;" in body
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in body
    for path in ("/customers/7/imports", "/admin/customers/7/imports", "/api/v1/customers/7/imports"):
        assert pattern.search(path), path
    for path in (
        "/customers/7/mailboxes",
        "/customers/7/imports/3/passwords",
        "/login",
        "/x/customers/7/imports",
    ):
        assert not pattern.search(path), path
