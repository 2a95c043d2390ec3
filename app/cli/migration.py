"""`flask migration copy SOURCE_URL DEST_URL [--dry-run] [--json] [--max-size-mb N] [--parallel N]`.

Copies every folder between any two IMAP accounts with the migration engine
(app/services/migration), for support scripting. URLs:

    imaps://user@host:port   TLS from the first byte (port 993 when omitted)
    imap://user@host:port    STARTTLS, required: a server that does not offer it is
                             refused (a stripped STARTTLS would send the password in
                             clear), except on a loopback address, where plain text is
                             used when STARTTLS is not offered (port 143 when omitted)

A user name holding "@" is written as is (the last "@" separates the host)
or as %40. Certificates are verified. Passwords come only from the
environment: SOURCE_PASSWORD and DEST_PASSWORD, never the command line.
Our side through Dovecot's master user: DEST_URL's user is "mailbox*master"
and DEST_PASSWORD the master password.

--dry-run logs in on both sides, lists the folders with their names on our
side, counts messages and bytes and lists the messages over the size limit;
it writes nothing. --json prints the report (totals: copied,
already_present, skipped_too_large, errors, missing). Exit codes: 0 done
with no errors, 1 the copy failed or some messages were not copied, 2 bad
usage (a URL, a missing password).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import sys
from urllib.parse import unquote, urlsplit

import click
from flask_babel import gettext as _

from app.cli.errors import EXIT_ERROR, Group, refuse
from app.mailserver.imap import Endpoint
from app.services.migration import DEFAULT_MAX_SIZE, CopyFailed, run_copy
from app.services.migration.copy import DEFAULT_PARALLEL

migration_group = Group("migration", help="IMAP migration from an old provider.")

MIB = 1024 * 1024


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_url(url: str, password: str, which: str, variable: str) -> Endpoint:
    """An imap:// or imaps:// URL as an Endpoint; a bad one stops the command (exit 2)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    if scheme not in ("imap", "imaps") or "@" not in netloc or parts.path not in ("", "/"):
        refuse(
            _(
                "Errore: %(which)s deve essere imap://utente@host:porta o imaps://utente@host:porta.",
                which=which,
            )
        )
    user = netloc.rpartition("@")[0]
    if ":" in user:
        # A password in the URL would sit in the shell's history and the process list.
        refuse(_("Errore: la password non va nell'URL: usare la variabile %(variable)s.", variable=variable))
    try:
        host, port = parts.hostname, parts.port or (993 if scheme == "imaps" else 143)
    except ValueError:
        refuse(_("Errore: la porta di %(which)s non è valida.", which=which))
    if not user or not host:
        refuse(
            _(
                "Errore: %(which)s deve essere imap://utente@host:porta o imaps://utente@host:porta.",
                which=which,
            )
        )
    if scheme == "imaps":
        security = "ssl"
    else:
        security = "starttls"
    return Endpoint(host=host, port=port, username=unquote(user), password=password, security=security)


def _endpoint(url: str, variable: str, which: str) -> Endpoint:
    password = os.environ.get(variable, "")
    if not password:
        refuse(
            _(
                "Errore: manca la password di %(which)s nella variabile %(variable)s.",
                which=which,
                variable=variable,
            )
        )
    endpoint = parse_url(url, password, which, variable)
    if endpoint.security == "starttls" and _loopback(endpoint.host):
        # On loopback a server without STARTTLS is accepted in plain text.
        if not _offers_starttls(endpoint):
            endpoint = dataclasses.replace(endpoint, security="none")
    return endpoint


def _offers_starttls(endpoint: Endpoint) -> bool:
    from imapclient import IMAPClient

    try:
        client = IMAPClient(endpoint.host, port=endpoint.port, ssl=False, timeout=endpoint.timeout)
    except OSError:
        return True  # the copy's own connection will say what is wrong
    try:
        return client.has_capability("STARTTLS")
    finally:
        client.shutdown()


def _print_report(report: dict) -> None:
    dry = report["dry_run"]
    for f in report["folders"]:
        name = f["source"] if f["source"] == f["target"] else f"{f['source']} -> {f['target']}"
        if dry:
            click.echo(
                _(
                    "%(name)s: %(count)s messaggi, %(bytes)s byte",
                    name=name,
                    count=f["source_count"],
                    bytes=f["source_bytes"],
                )
            )
        else:
            click.echo(
                _(
                    "%(name)s: %(count)s messaggi, %(copied)s copiati, %(present)s già presenti, %(skipped)s troppo grandi, %(errors)s errori",
                    name=name,
                    count=f["source_count"],
                    copied=f["copied"],
                    present=f["already_present"],
                    skipped=len(f["skipped_too_large"]),
                    errors=len(f["errors"]),
                )
            )
        for big in f["skipped_too_large"]:
            click.echo(
                _(
                    "  troppo grande, non copiato: %(subject)s (%(date)s, %(size)s byte)",
                    subject=big["subject"],
                    date=big["date"],
                    size=big["size"],
                )
            )
        for error in f["errors"]:
            click.echo(_("  errore: %(error)s", error=error))
    t = report["totals"]
    click.echo(
        _(
            "Totale: %(count)s messaggi (%(bytes)s byte), %(copied)s copiati, %(present)s già presenti, %(skipped)s troppo grandi, %(errors)s errori",
            count=t["source_count"],
            bytes=t["source_bytes"],
            copied=t["copied"],
            present=t["already_present"],
            skipped=t["skipped_too_large"],
            errors=t["errors"],
        )
    )
    if t["missing"] is not None:
        click.echo(
            _("Verifica: %(missing)s messaggi della sorgente mancano a destinazione.", missing=t["missing"])
        )


@migration_group.command("copy")
@click.argument("source_url")
@click.argument("dest_url")
@click.option("--dry-run", is_flag=True, help="Preflight: log in, list and count, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--max-size-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_MAX_SIZE / MIB,
    show_default=True,
    help="Skip (and report) messages larger than this many MiB (RFC822.SIZE).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 8),
    default=DEFAULT_PARALLEL,
    show_default=True,
    help="Connection pairs copying folders at once (1: one folder after another).",
)
def copy(source_url, dest_url, dry_run, as_json, max_size_mb, parallel):
    """Copy every folder and message of SOURCE_URL into DEST_URL (passwords: SOURCE_PASSWORD, DEST_PASSWORD)."""
    source = _endpoint(source_url, "SOURCE_PASSWORD", "SOURCE_URL")
    target = _endpoint(dest_url, "DEST_PASSWORD", "DEST_URL")
    try:
        report = run_copy(source, target, dry_run=dry_run, max_size=int(max_size_mb * MIB), parallel=parallel)
    except CopyFailed as e:
        refuse(_("Errore: %(message)s", message=e.message), EXIT_ERROR)
    data = report.to_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        _print_report(data)
    t = data["totals"]
    if t["errors"] or (t["missing"] or 0) > 0:
        sys.exit(EXIT_ERROR)


@migration_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--domain", "domain_name", required=True, help="The domain whose mailboxes the sheet fills.")
@click.option("--host", default=None, help="The old IMAP server, for rows without a Server column.")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65535), help="Default port (993 for ssl, else 143)."
)
@click.option(
    "--security",
    default=None,
    type=click.Choice(["ssl", "starttls", "none"]),
    help="Default security (ssl when omitted).",
)
@click.option("--no-verify", is_flag=True, help="Do not verify the old server's certificate.")
@click.option("--sync", is_flag=True, help="Keep every migration in sync until the domain's MX switch.")
@click.option(
    "--dry-run", is_flag=True, help="Check every row and print what would be created; write nothing."
)
def import_sheet(file, domain_name, host, port, security, no_verify, sync, dry_run):
    """Enter a domain's migrations from a sheet (.xlsx or .csv: mailbox, old username, old password).

    All or nothing: a wrong row (each named with its row and column) and nothing is written (exit 2)."""
    from app.cli.errors import EXIT_USAGE
    from app.services.access import Actor
    from app.services.errors import ValidationError
    from app.services.migration import sheet

    actor = Actor.system("cli")
    domain = sheet.domain_by_name(actor, domain_name)
    with open(file, "rb") as f:
        data = f.read(sheet.sheets.limit("IMPORT_MAX_BYTES", sheet.sheets.DEFAULT_MAX_BYTES) + 1)
    defaults = {"host": host, "port": port, "security": security, "verify_cert": not no_verify, "sync": sync}
    try:
        preview, created = sheet.import_sheet(
            actor, domain.id, data, os.path.basename(file), defaults, dry_run=dry_run
        )
    except sheet.SheetInvalid as e:
        _print_sheet_errors(e.preview)
        sys.exit(EXIT_USAGE)
    except ValidationError as e:  # the file as a whole
        for message in e.errors.values():
            click.echo(_("Errore: %(message)s", message=message), err=True)
        sys.exit(EXIT_USAGE)
    if dry_run and not preview.ok:
        _print_sheet_errors(preview)
        sys.exit(EXIT_USAGE)
    for p in preview.rows:
        d = p.to_dict()
        click.echo(
            _(
                "Riga %(row)d: %(mailbox)s <- %(username)s su %(host)s:%(port)d (%(security)s)",
                row=d["row"],
                mailbox=d["mailbox"],
                username=d["username"],
                host=d["host"],
                port=d["port"],
                security=d["security"],
            )
        )
    if dry_run:
        click.echo(_("Prova: %(n)d migrazioni da creare, nessuna scritta.", n=len(preview.rows)))
    else:
        click.echo(_("Create %(n)d migrazioni in bozza per %(domain)s.", n=len(created), domain=domain.name))


def _print_sheet_errors(preview) -> None:
    several = len(preview.sheet_names) > 1
    for field_name, message in preview.form_errors.items():
        click.echo(
            _("Errore (--%(field)s): %(message)s", field=field_name.replace("_", "-"), message=message),
            err=True,
        )
    from app.services.migration.sheet import where

    for e in preview.errors:
        click.echo(_("Errore: %(where)s: %(message)s", where=where(e, several), message=e.message), err=True)
    click.echo(_("Nessuna migrazione creata."), err=True)
