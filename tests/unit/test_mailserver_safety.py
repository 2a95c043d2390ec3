"""`flask mailserver config` and `master-user` write secrets safely and refuse bad input
with a message, never a traceback, and never a half-written or injected configuration."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat

import pytest
from psycopg.conninfo import conninfo_to_dict

from app.mailserver.settings import Database, MailServerSettings
from app.services import mailserver
from app.services.errors import ValidationError

ROOT = os.geteuid() == 0
MASTER_ENV = {"DOVECOT_MASTER_USER": "assistenza", "DOVECOT_MASTER_PASSWORD": "Una-password-lunga-16"}


def config(app, out, *extra, env=None):
    return app.test_cli_runner().invoke(
        args=["mailserver", "config", "--dovecot", "--postfix", "--out", str(out), *extra], env=env
    )


def refused(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.output
    for word in words:
        assert word in result.output, result.output


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "conf"
    d.mkdir(mode=0o750)
    return d


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_files_get_their_final_mode_whatever_the_umask(app, out, umask):
    old = os.umask(umask)
    try:
        assert config(app, out).exit_code == 0
    finally:
        os.umask(old)
    assert mode(out / "main.cf") == 0o644
    for name in ("mail_users.cf", "dovecot-sql.conf.ext", "list_policy.cf"):
        assert mode(out / name) == 0o640, name
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_symlink_at_the_target_is_replaced_never_followed(app, out, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("da non toccare\n")
    victim.chmod(0o644)
    (out / "mail_users.cf").symlink_to(victim)
    (out / "master-users").symlink_to(victim)

    assert config(app, out).exit_code == 0
    result = app.test_cli_runner().invoke(
        args=["mailserver", "master-user", str(out / "master-users")], env=MASTER_ENV
    )
    assert result.exit_code == 0, result.output

    assert victim.read_text() == "da non toccare\n" and mode(victim) == 0o644
    for name in ("mail_users.cf", "master-users"):
        assert not (out / name).is_symlink() and mode(out / name) == 0o640, name
    assert "FROM mail_users" in (out / "mail_users.cf").read_text()


def test_an_existing_file_is_replaced_by_a_new_one_not_rewritten_in_place(app, out, tmp_path):
    """Whoever held the old file open or linked to it never sees the new secrets."""
    (out / "dovecot-sql.conf.ext").write_text("vecchio\n")
    (out / "dovecot-sql.conf.ext").chmod(0o666)
    os.link(out / "dovecot-sql.conf.ext", tmp_path / "hard-link")
    assert config(app, out).exit_code == 0
    assert (tmp_path / "hard-link").read_text() == "vecchio\n"
    assert (
        mode(out / "dovecot-sql.conf.ext") == 0o640
        and "connect =" in (out / "dovecot-sql.conf.ext").read_text()
    )


def test_a_missing_directory_is_named_and_not_created(app, tmp_path):
    missing = tmp_path / "manca" / "conf"
    refused(config(app, missing), str(missing), "non esiste")
    result = app.test_cli_runner().invoke(
        args=["mailserver", "master-user", str(missing / "master-users")], env=MASTER_ENV
    )
    refused(result, str(missing), "non esiste")
    assert not (tmp_path / "manca").exists()


def test_a_directory_others_can_write_to_is_refused(app, out):
    out.chmod(0o777)
    refused(config(app, out), "scrivibile da altri")
    assert list(out.iterdir()) == []


@pytest.mark.skipif(not ROOT, reason="needs root to give the directory to another user")
def test_a_directory_of_another_user_or_writable_by_a_group_is_refused(app, out):
    shutil.chown(out, group="nogroup")
    out.chmod(0o770)
    refused(config(app, out), "scrivibile da altri")
    out.chmod(0o750)
    shutil.chown(out, user="nobody")
    refused(config(app, out), "appartiene a un altro utente")
    assert list(out.iterdir()) == []


def test_an_unwritable_place_is_a_message_not_a_traceback(app, out):
    refused(config(app, "/proc/x"), "/proc/x")
    (out / "main.cf").mkdir()
    refused(config(app, out), "main.cf")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "option",
    [
        "--hostname",
        "--mail-root",
        "--mail-user",
        "--base-dir",
        "--log-dir",
        "--listen",
        "--relayhost",
        "--mynetworks",
        "--tls-cert",
        "--master-user-file",
        "--queue-dir",
        "--instance-name",
        "--config-dir",
        "--policy-user",
        "--policy-python",
    ],
)
def test_no_newline_or_control_character_reaches_a_configuration_line(app, out, option):
    result = config(app, out, option, "mail.test\nrelayhost = [evil.example]", "--tls-key", "/k.pem")
    refused(result, option)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--hostname", "mail..test"),
        ("--hostname", "mail test"),
        ("--hostname", "-mail.test"),
        ("--mail-root", "var/vmail"),
        ("--mail-root", "/var/v mail"),
        ("--log-dir", "/var/log/../../etc"),
        ("--listen", "127.0.0.1, dieci"),
        ("--relayhost", "[smtp.example]:99999"),
        ("--relayhost", "smtp example"),
        ("--mynetworks", "127.0.0.0/8 tutti"),
        ("--mail-user", "Vmail Utente"),
        ("--policy-python", "python3"),
        ("--imap-port", "0"),
        ("--smtp-port", "65536"),
        ("--doveadm-port", "70000"),
        ("--submission-port", "143"),
    ],
)
def test_bad_values_are_refused_with_the_option_named(app, out, option, value):
    refused(
        config(app, out, option, value, "--doveadm-api-key", "chiave-1"),
        option if "port" not in option or value != "143" else "porta",
    )
    assert list(out.iterdir()) == []


PASSWORD = 'pass word\'con \\ e "virgolette"'


def test_a_database_password_with_spaces_and_quotes_reaches_libpq_and_postfix_intact():
    db = Database(
        kind="postgresql", host="127.0.0.1", port=5432, name="posta", user="lettore", password=PASSWORD
    )
    # libpq's own parser (PQconninfoParse, through psycopg) reads Dovecot's connect string back.
    parsed = conninfo_to_dict(db.dovecot_connect())
    assert parsed == {
        "host": "127.0.0.1",
        "port": "5432",
        "dbname": "posta",
        "user": "lettore",
        "password": PASSWORD,
    }
    assert (
        conninfo_to_dict(Database(kind="postgresql", name="a", password="x'").dovecot_connect())["password"]
        == "x'"
    )
    # Postfix takes the rest of the line, whitespace trimmed at both ends: no quoting.
    assert f"password = {PASSWORD}" in db.postfix_connection()
    settings = MailServerSettings(database=db, hostname="mail.test")
    assert (
        "connect = host=127.0.0.1 port=5432 dbname=posta user=lettore password='pass word\\'con \\\\ e \"virgolette\"'"
        in mailserver.render_dovecot(settings)["dovecot-sql.conf.ext"]
    )


@pytest.mark.parametrize("password", [" spazio-iniziale", "a capo\nx"])
def test_a_database_password_postfix_cannot_carry_is_refused(password):
    db = Database(kind="postgresql", name="posta", user="lettore", password=password)
    with pytest.raises(ValidationError) as e:
        mailserver.render_postfix(MailServerSettings(database=db, hostname="mail.test"))
    assert "--database-url" in e.value.errors


def test_the_master_user_needs_a_name_and_a_password_of_16_characters(app, out):
    runner = app.test_cli_runner()
    target = str(out / "master-users")
    short = runner.invoke(
        args=["mailserver", "master-user", target],
        env={"DOVECOT_MASTER_USER": "assistenza", "DOVECOT_MASTER_PASSWORD": "Corta-15-caratt"},
    )
    refused(short, "16")
    empty = runner.invoke(
        args=["mailserver", "master-user", target], env={**MASTER_ENV, "DOVECOT_MASTER_USER": ""}
    )
    refused(empty, "DOVECOT_MASTER_USER")
    spaced = runner.invoke(
        args=["mailserver", "master-user", target], env={**MASTER_ENV, "DOVECOT_MASTER_USER": "a\nb"}
    )
    refused(spaced, "master")
    assert list(out.iterdir()) == []


@pytest.mark.skipif(not ROOT, reason="groups are set only when root writes")
def test_an_unknown_policy_user_is_refused_before_any_file_is_written(app, out):
    refused(config(app, out, "--policy-user", "nessuno-qui"), "nessuno-qui")
    assert list(out.iterdir()) == []
    assert config(app, out).exit_code == 0
    # The default policy user, nobody, reads its settings through its group; Postfix's maps are postfix's.
    assert (out / "list_policy.cf").stat().st_gid == pwd.getpwnam("nobody").pw_gid
    assert (out / "mail_users.cf").stat().st_gid == grp.getgrnam("postfix").gr_gid
