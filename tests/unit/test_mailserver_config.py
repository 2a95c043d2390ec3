"""`flask mailserver config`: what it writes, and that Dovecot and Postfix accept it as is."""

from __future__ import annotations

import shutil
import stat
import subprocess

import pytest

from app.services.mailserver import MESSAGE_SIZE_LIMIT


def render(app, tmp_path, *extra: str):
    result = app.test_cli_runner().invoke(
        args=["mailserver", "config", "--dovecot", "--postfix", "--out", str(tmp_path), *extra]
    )
    assert result.exit_code == 0, result.output
    return result


def test_message_size_limit_is_the_guides_29_mb():
    assert MESSAGE_SIZE_LIMIT == 30408704 == 29 * 1024 * 1024


def test_maps_read_the_views_of_the_panels_own_database(app, tmp_path):
    render(app, tmp_path)
    kind = "sqlite" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "pgsql"
    main_cf = (tmp_path / "main.cf").read_text()
    assert f"virtual_mailbox_maps = {kind}:{tmp_path}/mail_users.cf" in main_cf
    assert "message_size_limit = 30408704" in main_cf
    assert "FROM mail_users" in (tmp_path / "mail_users.cf").read_text()
    sql = (tmp_path / "dovecot-sql.conf.ext").read_text()
    assert f"driver = {kind}" in sql and "login_allowed = 1" in sql
    # The files holding the database password are not world-readable.
    for name in ("dovecot-sql.conf.ext", "mail_users.cf", "mail_aliases.cf"):
        assert not (tmp_path / name).stat().st_mode & stat.S_IROTH, name


def test_database_kind_must_match_the_url(app, tmp_path):
    result = app.test_cli_runner().invoke(
        args=[
            "mailserver",
            "config",
            "--postfix",
            "--database-url",
            "sqlite:////srv/panel.db",
            "--db",
            "postgresql",
        ]
    )
    assert result.exit_code == 2
    assert "non corrisponde" in result.output


def test_one_of_dovecot_or_postfix_is_required(app):
    result = app.test_cli_runner().invoke(args=["mailserver", "config"])
    assert result.exit_code == 2
    assert "--dovecot" in result.output


def test_master_user_file_comes_from_the_environment_only(app, tmp_path):
    runner = app.test_cli_runner()
    target = tmp_path / "master-users"
    assert runner.invoke(args=["mailserver", "master-user", str(target)], env={}).exit_code == 2
    result = runner.invoke(
        args=["mailserver", "master-user", str(target)],
        env={"DOVECOT_MASTER_USER": "assistenza", "DOVECOT_MASTER_PASSWORD": "Segreta-123-assistenza"},
    )
    assert result.exit_code == 0, result.output
    line = target.read_text()
    assert line.startswith("assistenza:{ARGON2ID}$argon2id$") and "Segreta-123-assistenza" not in line
    assert not target.stat().st_mode & stat.S_IROTH


@pytest.mark.skipif(shutil.which("doveconf") is None, reason="Dovecot is not installed")
def test_dovecot_reads_the_configuration_without_complaint(app, tmp_path):
    render(app, tmp_path, "--tls-cert", "/dev/null", "--tls-key", "/dev/null")
    result = subprocess.run(
        ["doveconf", "-n", "-c", str(tmp_path / "dovecot.conf")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_postfix_knows_every_parameter_of_the_configuration(app, tmp_path):
    render(app, tmp_path)
    result = subprocess.run(["postconf", "-c", str(tmp_path), "-n"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    master = subprocess.run(["postconf", "-c", str(tmp_path), "-M"], capture_output=True, text=True)
    assert master.returncode == 0 and "warning" not in master.stderr, master.stderr


def test_doveadm_http_api_for_quota_readings_is_off_unless_asked(app, tmp_path):
    render(app, tmp_path)
    assert "inet_listener http" not in (tmp_path / "dovecot.conf").read_text()
    assert not (tmp_path / "dovecot-doveadm.conf.ext").exists()


def test_doveadm_port_renders_the_http_listener_and_keeps_the_key_private(app, tmp_path):
    render(app, tmp_path, "--doveadm-port", "8089", "--doveadm-api-key", "chiave-segreta-1")
    conf = (tmp_path / "dovecot.conf").read_text()
    assert "inet_listener http {\n    port = 8089\n  }" in conf
    assert f"!include {tmp_path}/dovecot-doveadm.conf.ext" in conf
    assert "chiave-segreta-1" not in conf
    key_file = tmp_path / "dovecot-doveadm.conf.ext"
    assert "doveadm_api_key = chiave-segreta-1" in key_file.read_text()
    assert not key_file.stat().st_mode & stat.S_IROTH


def test_doveadm_key_comes_from_the_environment_and_is_required_with_the_port(app, tmp_path):
    runner = app.test_cli_runner()
    args = ["mailserver", "config", "--dovecot", "--out", str(tmp_path), "--doveadm-port", "8089"]
    refused = runner.invoke(args=args, env={"DOVEADM_API_KEY": ""})
    assert refused.exit_code == 2 and "DOVEADM_API_KEY" in refused.output
    spaced = runner.invoke(args=[*args, "--doveadm-api-key", "due parole"])
    assert spaced.exit_code == 2 and "spazi" in spaced.output
    result = runner.invoke(args=args, env={"DOVEADM_API_KEY": "dall-ambiente-2"})
    assert result.exit_code == 0, result.output
    assert "dall-ambiente-2" in (tmp_path / "dovecot-doveadm.conf.ext").read_text()


@pytest.mark.skipif(shutil.which("doveconf") is None, reason="Dovecot is not installed")
def test_dovecot_reads_the_doveadm_listener_and_its_key(app, tmp_path):
    render(app, tmp_path, "--doveadm-port", "8089", "--doveadm-api-key", "chiave-segreta-1")
    result = subprocess.run(
        [
            "doveconf",
            "-c",
            str(tmp_path / "dovecot.conf"),
            "doveadm_api_key",
            "service/doveadm/inet_listener/http/port",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "doveadm_api_key = chiave-segreta-1" in result.stdout, result.stdout


def test_dovecot_files_spam_into_a_junk_folder_with_its_special_use(app, tmp_path):
    render(app, tmp_path)
    conf = (tmp_path / "dovecot.conf").read_text()
    assert "  mailbox Junk {\n    special_use = \\Junk\n    auto = subscribe\n  }" in conf
    assert "protocol lmtp {" in conf and "mail_plugins = $mail_plugins sieve" in conf
    assert f"sieve_before = {tmp_path}/spam-to-junk.sieve" in conf
    script = (tmp_path / "spam-to-junk.sieve").read_text()
    assert 'if header :is "X-Spam" "Yes" {\n  fileinto :create "Junk";\n}' in script
    assert stat.S_IMODE((tmp_path / "spam-to-junk.sieve").stat().st_mode) == 0o644


@pytest.mark.skipif(shutil.which("sievec") is None, reason="dovecot-sieve is not installed")
def test_the_sieve_script_is_compiled_for_the_mail_user_and_dovecot_reads_its_settings(app, tmp_path):
    result = render(app, tmp_path, "--tls-cert", "/dev/null", "--tls-key", "/dev/null")
    binary = tmp_path / "spam-to-junk.svbin"
    assert str(binary) in result.output
    # Readable by the delivery process (the mail user), never writable by it; not older
    # than its script (Dovecot would compile it again at every delivery).
    assert stat.S_IMODE(binary.stat().st_mode) == 0o644
    assert binary.stat().st_mtime >= (tmp_path / "spam-to-junk.sieve").stat().st_mtime
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    settings = subprocess.run(
        [
            "doveconf",
            "-c",
            str(tmp_path / "dovecot.conf"),
            "plugin/sieve_before",
            "protocol/lmtp/mail_plugins",
        ],
        capture_output=True,
        text=True,
    )
    assert settings.returncode == 0, settings.stderr
    assert f"sieve_before = {tmp_path}/spam-to-junk.sieve" in settings.stdout, settings.stdout


def test_a_sieve_script_that_does_not_compile_is_reported_and_leaves_no_binary(app, tmp_path):
    from app.mailserver import files
    from app.services.errors import ValidationError

    if shutil.which("sievec") is None:
        pytest.skip("dovecot-sieve is not installed")
    (tmp_path / "broken.sieve").write_text('require ["nonesuch"];\n')
    with app.test_request_context(), pytest.raises(ValidationError):
        files.compile_sieve(str(tmp_path), "broken.sieve")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.sieve"]
