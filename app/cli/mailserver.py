"""`flask mailserver ...`: configuration of Dovecot and Postfix on the panel's database."""

from __future__ import annotations

import os

import click
from flask import current_app
from flask_babel import gettext as _

from app.cli.errors import Group, refuse
from app.mailserver import files, render
from app.mailserver.settings import OUTBOUND_LIMIT_DEFAULT, Database, MailServerSettings
from app.services import mailserver, passwords

mailserver_group = Group("mailserver", help="Dovecot, Postfix and rspamd on the panel's database.")


@mailserver_group.command("config")
@click.option("--dovecot", "want_dovecot", is_flag=True, help="Render Dovecot's files.")
@click.option("--postfix", "want_postfix", is_flag=True, help="Render Postfix's files.")
@click.option(
    "--rspamd",
    "want_rspamd",
    is_flag=True,
    help="Render rspamd's files (with --postfix: Postfix's milter points at it).",
)
@click.option(
    "--db",
    "db_kind",
    type=click.Choice(["sqlite", "postgresql"]),
    default=None,
    help="Database kind; checked against the URL (default: the URL's).",
)
@click.option("--database-url", default=None, help="Database the servers read (default: the panel's).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write the files here (default: print them).",
)
@click.option(
    "--config-dir",
    default=None,
    help="Where the files will be deployed (default: --out, else /etc/dovecot and /etc/postfix).",
)
@click.option(
    "--mail-root",
    default="/var/vmail",
    show_default=True,
    help="Mailboxes live in <mail-root>/<domain>/<local>.",
)
@click.option("--mail-user", default="vmail", show_default=True, help="System user owning the mail.")
@click.option("--mail-group", default="vmail", show_default=True)
@click.option(
    "--base-dir", default="/run/dovecot", show_default=True, help="Dovecot's run directory (sockets)."
)
@click.option("--state-dir", default="/var/lib/dovecot", show_default=True)
@click.option("--log-dir", default="", help="Log to files here (default: syslog).")
@click.option("--listen", default="*", show_default=True, help="Address the servers listen on.")
@click.option("--hostname", default=None, help="Mail host name (default: PROVIDER_MAIL_HOST).")
@click.option("--imap-port", type=int, default=143, show_default=True)
@click.option("--pop3-port", type=int, default=110, show_default=True)
@click.option("--imaps-port", type=int, default=993, show_default=True)
@click.option("--pop3s-port", type=int, default=995, show_default=True)
@click.option("--lmtp-port", type=int, default=24, show_default=True)
@click.option("--smtp-port", type=int, default=25, show_default=True)
@click.option("--submission-port", type=int, default=587, show_default=True)
@click.option(
    "--master-user-file",
    default="/etc/dovecot/master-users",
    show_default=True,
    help="Dovecot passwd-file of master users (see `flask mailserver master-user`).",
)
@click.option("--relayhost", default="", help="Postfix relayhost for outgoing mail, e.g. [smtp.example]:587.")
@click.option("--mynetworks", default="127.0.0.0/8 [::1]/128", show_default=True)
@click.option("--tls-cert", default="", help="PEM certificate (STARTTLS, IMAPS, POP3S).")
@click.option("--tls-key", default="", help="PEM private key.")
@click.option("--queue-dir", default="/var/spool/postfix", show_default=True, help="Postfix queue_directory.")
@click.option("--data-dir", default="/var/lib/postfix", show_default=True, help="Postfix data_directory.")
@click.option("--instance-name", default="dovecot", show_default=True, help="Dovecot instance_name.")
@click.option(
    "--auth-failure-delay",
    type=int,
    default=2,
    show_default=True,
    help="Seconds Dovecot waits before refusing a login.",
)
@click.option(
    "--auth-penalty/--no-auth-penalty",
    default=True,
    show_default=True,
    help="Dovecot's growing per-IP delay after failed logins (off only for test instances).",
)
@click.option(
    "--doveadm-port",
    type=int,
    default=0,
    show_default=True,
    help="Port of doveadm's HTTP API, where the panel reads quota usage (0: none).",
)
@click.option(
    "--doveadm-api-key",
    envvar="DOVEADM_API_KEY",
    default="",
    show_envvar=True,
    help="Key of doveadm's HTTP API (better from the environment: DOVEADM_API_KEY).",
)
@click.option(
    "--policy-user",
    default="nobody",
    show_default=True,
    help="User running the list-policy service; its group reads list_policy.cf (not root, not postfix).",
)
@click.option(
    "--policy-python",
    default="/usr/bin/python3",
    show_default=True,
    help="Python 3 that runs the list-policy service (PostgreSQL: with psycopg2 or psycopg).",
)
@click.option(
    "--milter-socket",
    envvar="RSPAMD_MILTER_SOCKET",
    default="",
    show_envvar=True,
    help=(
        "rspamd's milter (proxy worker), where Postfix hands it the mail: this Unix socket "
        "(default: <rspamd-run-dir>/milter/milter.sock; the health page connects to it)."
    ),
)
@click.option(
    "--milter-port",
    type=int,
    envvar="RSPAMD_MILTER_PORT",
    default=0,
    show_envvar=True,
    help="The milter on 127.0.0.1 TCP at this port instead of the Unix socket (0: the socket).",
)
@click.option(
    "--outbound-limit",
    type=int,
    default=OUTBOUND_LIMIT_DEFAULT,
    show_default=True,
    help=(
        "Recipients an hour a logged-in mailbox may send to (rspamd); beyond it submission "
        "answers 451, try later, and refuses (554) a message with more recipients (0: no limit)."
    ),
)
@click.option(
    "--rspamd-workers",
    type=int,
    default=0,
    show_default=True,
    help=(
        "rspamd processes that scan mail (its milter's workers): one per core of the mail host; "
        "0: as many as this host has cores, at most 8."
    ),
)
@click.option(
    "--rspamd-normal-port", type=int, default=11333, show_default=True, help="rspamd's normal worker."
)
@click.option(
    "--rspamd-controller-port",
    type=int,
    default=11334,
    show_default=True,
    help="rspamd's controller (/ping: the health page's RSPAMD_CONTROLLER_URL).",
)
@click.option(
    "--rspamd-redis-url",
    envvar="RSPAMD_REDIS_URL",
    default="",
    show_envvar=True,
    help="Redis rspamd reads the DKIM keys from, redis://[:password@]host:port/db (better from the environment).",
)
@click.option(
    "--rspamd-run-dir", default="", help="rspamd's pid file and socket (default: <base-dir>/rspamd)."
)
@click.option("--rspamd-state-dir", default="", help="rspamd's data (default: <state-dir>/rspamd).")
@click.option("--rspamd-user", default="_rspamd", show_default=True, help="rspamd's user (Debian: _rspamd).")
@click.option(
    "--rspamd-dns", default="", help="Resolvers rspamd asks, ip[:port],... (default: /etc/resolv.conf's)."
)
@click.option(
    "--rspamd-check-local/--no-rspamd-check-local",
    default=False,
    show_default=True,
    help="SPF and DMARC also for clients on local networks and loopback (test instances only).",
)
@click.option(
    "--rspamd-test-patterns/--no-rspamd-test-patterns",
    default=False,
    show_default=True,
    help="rspamd's GTUBE variants that force an action (test instances only, never production).",
)
def config_command(
    want_dovecot, want_postfix, want_rspamd, db_kind, database_url, out_dir, config_dir, **opts
):
    """Render Dovecot 2.3, Postfix 3.7 and/or rspamd 3.4 configuration that reads the panel's views.

    Example: flask mailserver config --dovecot --postfix --rspamd --out /tmp/mail --listen 127.0.0.1
    """
    if not (want_dovecot or want_postfix or want_rspamd):
        refuse(_("Errore: indica --dovecot, --postfix, --rspamd o più di uno."))
    database = Database.from_url(database_url or current_app.config["SQLALCHEMY_DATABASE_URI"], db_kind)
    deploy = os.path.abspath(config_dir or out_dir) if (config_dir or out_dir) else None
    settings = MailServerSettings(
        database=database,
        config_dir=deploy or "/etc/dovecot",
        postfix_config_dir=deploy or "/etc/postfix",
        rspamd_config_dir=deploy or "/etc/rspamd/panel",
        milter=want_rspamd,
        hostname=opts.pop("hostname") or current_app.config["PROVIDER_MAIL_HOST"],
        postfix_queue_dir=opts.pop("queue_dir"),
        postfix_data_dir=opts.pop("data_dir"),
        **opts,
    )
    groups = []
    if want_dovecot:
        groups.append(("dovecot", mailserver.render_dovecot(settings)))
    if want_postfix:
        groups.append(("postfix", mailserver.render_postfix(settings)))
    if want_rspamd:
        groups.append((settings.rspamd_user, mailserver.render_rspamd(settings)))
    if out_dir:
        # One write for both servers: every check passes before the first file is written.
        every_file = {name: text for _group, rendered in groups for name, text in rendered.items()}
        owners = {name: group for group, rendered in groups for name in rendered}
        if want_postfix and os.geteuid() == 0:
            owners["list_policy.cf"] = files.user_group(settings.policy_user)
        if want_rspamd and os.geteuid() == 0:
            owners["rspamd-modules.conf"] = files.user_group(settings.rspamd_user)
        paths = files.write_files(every_file, out_dir, groups=owners)
        if want_dovecot:
            binary = files.compile_sieve(out_dir, render.SIEVE_BEFORE)
            if binary:
                paths.append(binary)
            else:
                click.echo(
                    _(
                        "sievec non trovato (pacchetto dovecot-sieve): compila %(p)s con sievec "
                        "sul server di posta.",
                        p=os.path.join(settings.config_dir, render.SIEVE_BEFORE),
                    ),
                    err=True,
                )
        for path in paths:
            click.echo(path)
    else:
        for _group, rendered in groups:
            for name, text in rendered.items():
                click.echo(f"==> {name} <==\n{text}")


@mailserver_group.command("master-user")
@click.argument("path", type=click.Path(dir_okay=False))
def master_user_command(path):
    """Write Dovecot's master-user passwd-file from DOVECOT_MASTER_USER and DOVECOT_MASTER_PASSWORD.

    The credentials come from the environment only, so they are never in the
    repository nor in a shell history; the file holds an argon2 hash.
    """
    user = os.environ.get("DOVECOT_MASTER_USER", "")
    password = os.environ.get("DOVECOT_MASTER_PASSWORD", "")
    if not user or not password:
        refuse(_("Errore: imposta DOVECOT_MASTER_USER e DOVECOT_MASTER_PASSWORD."))
    mailserver.check_master_password(password)
    line = mailserver.master_user_line(user, passwords.hash_mailbox_password(password))
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    written = files.write_files({name: line}, directory, group="dovecot", private={name})
    click.echo(_("Utente master %(user)s scritto in %(path)s.", user=user, path=written[0]))
