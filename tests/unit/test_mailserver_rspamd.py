"""`flask mailserver config --rspamd`: an rspamd instance rspamd itself accepts, Postfix's
milter pointing at it, its secret readable by root and rspamd only, bad input refused."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess

import pytest

REDIS = "redis://:Segreta-redis-1@127.0.0.1:6379/3"


def config(app, out, *extra, env=None):
    return app.test_cli_runner().invoke(
        args=["mailserver", "config", "--out", str(out), *extra],
        env={"RSPAMD_REDIS_URL": REDIS} if env is None else env,
    )


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "conf"
    d.mkdir(mode=0o750)
    return d


def test_rspamd_follows_the_base_state_and_log_dirs_and_listens_on_loopback(app, out):
    result = config(
        app,
        out,
        "--rspamd",
        "--base-dir", "/srv/mail/run",
        "--state-dir", "/srv/mail/state",
        "--log-dir", "/srv/mail/log",
        "--milter-port", "21332", "--rspamd-normal-port", "21333", "--rspamd-controller-port", "21334",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "rspamd-modules.conf",
        "rspamd-multimap.conf",
        "rspamd-outbound.lua",
        "rspamd.conf",
    ]
    conf = (out / "rspamd.conf").read_text()
    assert 'pidfile = "/srv/mail/run/rspamd/rspamd.pid";' in conf
    assert 'history_file = "/srv/mail/state/rspamd/rspamd.history";' in conf
    assert 'filename = "/srv/mail/log/rspamd.log";' in conf
    assert f'.include(priority=10) "{out}/rspamd-modules.conf"' in conf
    assert f'.include(priority=1, duplicate=merge) "{out}/rspamd-multimap.conf"' in conf
    assert f'lua = "{out}/rspamd-outbound.lua";' in conf
    for port in ("21332", "21333", "21334"):
        assert f'bind_socket = "127.0.0.1:{port}";' in conf
    assert "milter = yes;" in conf and "self_scan = yes;" in conf
    # The password is in the private file only.
    assert "Segreta-redis-1" not in conf
    modules = (out / "rspamd-modules.conf").read_text()
    assert 'servers = "127.0.0.1:6379";' in modules and 'db = "3";' in modules
    assert 'password = "Segreta-redis-1";' in modules
    assert 'selector_prefix = "dkim_selectors";' in modules and 'key_prefix = "dkim_keys";' in modules
    assert "add_header = 6;" in modules and "reject = 15;" in modules
    assert "greylist {\n    enabled = false;\n}" in modules
    assert not (out / "rspamd-modules.conf").stat().st_mode & (stat.S_IROTH | stat.S_IWOTH)
    assert stat.S_IMODE((out / "rspamd-modules.conf").stat().st_mode) == 0o640
    if os.geteuid() == 0 and shutil.which("rspamd"):
        assert grp.getgrgid((out / "rspamd-modules.conf").stat().st_gid).gr_name == "_rspamd"


def test_explicit_run_and_state_dirs_and_syslog_without_a_log_dir(app, out):
    result = config(
        app, out, "--rspamd", "--rspamd-run-dir", "/run/rspamd", "--rspamd-state-dir", "/var/lib/rspamd"
    )
    assert result.exit_code == 0, result.output
    conf = (out / "rspamd.conf").read_text()
    assert 'pidfile = "/run/rspamd/rspamd.pid";' in conf and 'rrd = "/var/lib/rspamd/rspamd.rrd";' in conf
    assert 'type = "syslog";' in conf


def test_postfix_hands_mail_to_rspamd_only_when_rendered_with_it(app, out, tmp_path):
    assert config(app, out, "--postfix").exit_code == 0
    main_cf = (out / "main.cf").read_text()
    assert "smtpd_milters" not in main_cf
    # Anti-spoofing holds with or without rspamd.
    assert f"smtpd_sender_restrictions = check_sender_access sqlite:{out}/our_senders.cf" in main_cf or (
        "check_sender_access pgsql:" in main_cf
    )
    both = tmp_path / "both"
    both.mkdir(mode=0o750)
    assert config(app, both, "--postfix", "--rspamd", "--base-dir", "/srv/mail/run").exit_code == 0
    main_cf = (both / "main.cf").read_text()
    # By default a Unix socket in rspamd's run directory, readable and writable by its group only.
    assert "smtpd_milters = unix:/srv/mail/run/rspamd/milter/milter.sock\n" in main_cf
    assert (
        'bind_socket = "/srv/mail/run/rspamd/milter/milter.sock mode=0660";'
        in (both / "rspamd.conf").read_text()
    )
    assert "non_smtpd_milters = $smtpd_milters\n" in main_cf
    assert (
        config(
            app, both, "--postfix", "--rspamd", "--milter-socket", "/run/panel/rspamd-milter.sock"
        ).exit_code
        == 0
    )
    assert "smtpd_milters = unix:/run/panel/rspamd-milter.sock\n" in (both / "main.cf").read_text()
    assert 'bind_socket = "/run/panel/rspamd-milter.sock mode=0660";' in (both / "rspamd.conf").read_text()
    # A port: TCP on loopback instead.
    assert config(app, both, "--postfix", "--rspamd", "--milter-port", "21332").exit_code == 0
    main_cf = (both / "main.cf").read_text()
    assert "smtpd_milters = inet:127.0.0.1:21332\n" in main_cf
    assert "non_smtpd_milters = $smtpd_milters\n" in main_cf
    assert "milter_default_action = tempfail\n" in main_cf
    assert not (both / "our_senders.cf").stat().st_mode & stat.S_IROTH
    if shutil.which("postconf"):
        check = subprocess.run(["postconf", "-c", str(both), "-n"], capture_output=True, text=True)
        assert check.returncode == 0 and "warning" not in check.stderr, check.stderr


def test_the_redis_url_is_required_and_checked(app, out):
    missing = config(app, out, "--rspamd", env={"RSPAMD_REDIS_URL": ""})
    assert missing.exit_code == 2 and "--rspamd-redis-url" in missing.output
    for bad in (
        "http://127.0.0.1:6379/0",
        "redis://127.0.0.1:99999/0",
        "redis://127.0.0.1:6379/due",
        "redis://utente:pw@127.0.0.1:6379/0",
        'redis://:pw"x@127.0.0.1:6379/0',
        "redis://:pw$HOME@127.0.0.1:6379/0",
        "redis://:pw%0Arelay@127.0.0.1:6379/0",
    ):
        result = config(app, out, "--rspamd", "--rspamd-redis-url", bad)
        assert result.exit_code == 2 and "Traceback" not in result.output, (bad, result.output)
        assert "--rspamd-redis-url" in result.output, (bad, result.output)
    assert list(out.iterdir()) == []


def test_bad_rspamd_ports_and_resolvers_are_refused_before_any_file(app, out):
    for args, named in (
        (["--milter-port", "-1"], "--milter-port"),
        (["--milter-port", "11332", "--milter-socket", "/run/rspamd/m.sock"], "--milter-socket"),
        (["--milter-socket", "run/m.sock"], "--milter-socket"),
        (["--milter-socket", "/run/m.sock mode=0666"], "--milter-socket"),
        (["--milter-socket", '/run/m.sock";\nworker {'], "--milter-socket"),
        (["--milter-socket", "/run/" + "x" * 110 + ".sock"], "--milter-socket"),
        (["--rspamd-run-dir", "/run/" + "x" * 100], "--milter-socket"),
        (["--rspamd-controller-port", "70000"], "--rspamd-controller-port"),
        (["--rspamd-dns", "resolver.example"], "--rspamd-dns"),
        (["--rspamd-dns", "127.0.0.1:0"], "--rspamd-dns"),
        (["--milter-port", "25"], "porta"),
        (["--rspamd-workers", "-1"], "--rspamd-workers"),
        (["--rspamd-workers", "65"], "--rspamd-workers"),
        (["--outbound-limit", "-1"], "--outbound-limit"),
        (["--outbound-limit", "1000001"], "--outbound-limit"),
    ):
        result = config(app, out, "--rspamd", "--postfix", *args)
        assert result.exit_code == 2 and named in result.output, (args, result.output)
    assert list(out.iterdir()) == []


def test_rspamd_scans_with_one_process_per_core_unless_told(app, out, monkeypatch):
    """The milter's workers scan by themselves: as many as the cores the renderer may run on
    (its CPU affinity, as a container's cpuset sets it), at most 8, or --rspamd-workers."""
    for cores, expected in ((1, 1), (4, 4), (32, 8)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, cores=cores: set(range(cores)))
        monkeypatch.setattr(os, "cpu_count", lambda: 64)
        assert config(app, out, "--rspamd").exit_code == 0
        assert proxy_count(out) == expected, cores
    # Without affinity (not Linux): every core the system has.
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert config(app, out, "--rspamd").exit_code == 0
    assert proxy_count(out) == 3
    assert config(app, out, "--rspamd", "--rspamd-workers", "12").exit_code == 0
    assert proxy_count(out) == 12


def test_options_given_in_code_are_checked_as_from_the_cli(app):
    """Settings made in code (not by click) are held to the same rules: a bool is no count."""
    from app.mailserver.settings import Database, MailServerSettings
    from app.services import mailserver
    from app.services.errors import ValidationError

    database = Database(kind="sqlite", path="/var/lib/panel/panel.sqlite3")
    for field in ("outbound_limit", "rspamd_workers"):
        settings = MailServerSettings(database=database, rspamd_redis_url=REDIS, **{field: True})
        with pytest.raises(ValidationError) as refused:
            mailserver.render_rspamd(settings)
        assert "--" + field.replace("_", "-") in refused.value.errors, refused.value.errors


def test_a_logged_in_mailbox_s_sending_limit_is_rendered_or_switched_off(app, out):
    assert config(app, out, "--rspamd").exit_code == 0
    modules = (out / "rspamd-modules.conf").read_text()
    lua = (out / "rspamd-outbound.lua").read_text()
    # 500 recipients an hour by default, checked for logged-in mailboxes only.
    assert "local LIMIT = 500\n" in lua and "name = 'OUTBOUND_LIMIT'," in lua
    assert 'symbols_enabled = ["DKIM_SIGNED", "OUTBOUND_GTUBE", "OUTBOUND_LIMIT"];' in modules
    # rspamd's own ratelimit stays off: any postmaster@ recipient would let a message past it.
    assert "ratelimit {\n    enabled = false;\n}" in modules
    assert config(app, out, "--rspamd", "--outbound-limit", "1200").exit_code == 0
    assert "local LIMIT = 1200\n" in (out / "rspamd-outbound.lua").read_text()
    assert config(app, out, "--rspamd", "--outbound-limit", "0").exit_code == 0
    assert "OUTBOUND_LIMIT" not in (out / "rspamd-outbound.lua").read_text()
    assert 'symbols_enabled = ["DKIM_SIGNED", "OUTBOUND_GTUBE"];' in (out / "rspamd-modules.conf").read_text()


def proxy_count(out) -> int:
    conf = (out / "rspamd.conf").read_text()
    proxy = conf.split('worker "rspamd_proxy" {', 1)[1].split("\n}", 1)[0]
    counts = [line.strip() for line in proxy.splitlines() if line.strip().startswith("count = ")]
    assert len(counts) == 1, proxy
    return int(counts[0].removeprefix("count = ").rstrip(";"))


@pytest.mark.skipif(shutil.which("rspamadm") is None, reason="rspamd is not installed")
def test_rspamd_reads_the_rendered_configuration(app, out, tmp_path):
    result = config(
        app, out, "--rspamd", "--base-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state")
    )
    assert result.exit_code == 0, result.output
    check = subprocess.run(
        ["rspamadm", "configtest", "-c", str(out / "rspamd.conf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and "syntax OK" in check.stdout, check.stdout + check.stderr
    dump = subprocess.run(
        ["rspamadm", "configdump", "-c", str(out / "rspamd.conf"), "dkim_signing"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "use_redis = true;" in dump.stdout and "sign_local = false;" in dump.stdout, dump.stdout
    assert "init of" not in dump.stderr, dump.stderr  # every module loaded
    multimap = subprocess.run(
        ["rspamadm", "configdump", "-c", str(out / "rspamd.conf"), "multimap"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Our rule is added to the package's, which stay.
    assert "OUR_DOMAIN_NOT_ALIGNED {" in multimap.stdout and "freemail_from {" in multimap.stdout


def test_rspamd_s_test_patterns_are_rendered_only_when_asked(app, out):
    """GTUBE variants that force an action ("no action" included): test instances only."""
    assert config(app, out, "--rspamd").exit_code == 0
    conf = (out / "rspamd.conf").read_text()
    assert "enable_test_patterns" not in conf
    assert 'spam_header = "X-Spam";' in conf
    assert config(app, out, "--rspamd", "--rspamd-test-patterns").exit_code == 0
    assert "enable_test_patterns = true;" in (out / "rspamd.conf").read_text()
