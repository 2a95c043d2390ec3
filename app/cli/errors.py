"""How every panel command fails: a message on stderr, an exit code, never a traceback.

Commands are made with `Group` (or `command` for a top-level one), whose
commands hand any DomainError raised inside them to `fail`. A command
that refuses before calling a service (a missing variable, no target)
calls `refuse` with one of the codes below. The table is in app/cli/__init__.py.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from flask.cli import AppGroup, with_appcontext
from flask_babel import gettext as _

from app.services.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_PERMISSION = 5

# First match wins: LimitExceeded is a Conflict, PublicProviderDomain a ValidationError.
EXIT_CODES: tuple[tuple[type[DomainError], int], ...] = (
    (ValidationError, EXIT_USAGE),
    (NotFound, EXIT_NOT_FOUND),
    (Conflict, EXIT_CONFLICT),
    (PermissionDenied, EXIT_PERMISSION),
)


def exit_code(error: DomainError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(error, kind)), EXIT_ERROR)


def fail(error: DomainError) -> NoReturn:
    """One line per field for bad input, else the error's message; then its exit code."""
    if isinstance(error, ValidationError):
        for field, message in error.errors.items():
            click.echo(_("Errore (%(field)s): %(message)s", field=field, message=message), err=True)
    else:
        click.echo(_("Errore: %(message)s", message=error.message), err=True)
    sys.exit(exit_code(error))


def refuse(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop with an already worded message ("Errore: ...")."""
    click.echo(message, err=True)
    sys.exit(code)


class Command(click.Command):
    """A command whose domain errors end as `fail` says."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DomainError as error:
            fail(error)


class Group(AppGroup):
    """A command group (run in the app's context) whose every command is a `Command`."""

    command_class = Command

    def group(self, *args, **kwargs):
        kwargs.setdefault("cls", Group)
        return super().group(*args, **kwargs)


def command(name: str, **kwargs):
    """A top-level `Command` that runs in the app's context."""

    def decorator(f):
        return click.command(name, cls=Command, **kwargs)(with_appcontext(f))

    return decorator
