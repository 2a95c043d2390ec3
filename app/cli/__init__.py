"""The operator commands (`flask --app wsgi ...`), one module per group.

    users.py       flask users create|list|set-password|disable|enable
    tokens.py      flask tokens create
    demo.py        flask seed-demo, and the demo data it loads
    mailserver.py  flask mailserver config|master-user
    billing.py     flask billing charge|verify
    bulk.py        flask bulk import|template (its own exit codes for a file's rows: see there)
    domains.py     flask domains check NAME [--json]
    migration.py   flask migration copy SOURCE_URL DEST_URL [--dry-run] [--json] [--max-size-mb N] [--parallel N]
                   flask migration import FILE --domain NAME [--host H] [--port P] [--security S] [--no-verify] [--sync] [--dry-run]
    errors.py      how every one of them fails

Commands parse their options, call services and print. Every command is
made by errors.Group or errors.command, so a domain error raised inside it
ends as a message on stderr ("Errore: ...", or one "Errore (field): ..."
line per field of bad input) and an exit code, never a traceback:

    0  done
    1  any other domain error (e.g. too many password hashes at once)
    2  usage: a bad or missing option or variable, or invalid input (ValidationError)
    3  not found (NotFound): an unknown user, say
    4  conflict with what exists (Conflict, LimitExceeded): a duplicate email, say
    5  not permitted (PermissionDenied), or not in this environment (seed-demo outside development)

Click's own usage errors (an unknown option, a value out of range) also exit with 2.
"""

from __future__ import annotations

from flask import Flask

from app.cli.billing import billing_group
from app.cli.bulk import bulk_group
from app.cli.demo import seed_demo_command
from app.cli.dkim import dkim_group
from app.cli.domains import domains_group
from app.cli.mailserver import mailserver_group
from app.cli.migration import migration_group
from app.cli.tokens import tokens_group
from app.cli.users import users_group


def register_cli(app: Flask) -> None:
    for command in (
        users_group,
        tokens_group,
        seed_demo_command,
        mailserver_group,
        billing_group,
        bulk_group,
        domains_group,
        dkim_group,
        migration_group,
    ):
        app.cli.add_command(command)
