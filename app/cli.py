"""Operator commands: flask users create|list|set-password|disable|enable, flask tokens create, flask seed-demo."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask
from flask_babel import gettext as _

from app.models.enums import Role
from app.services import users
from app.services.access import Actor
from app.services.errors import DomainError, ValidationError


def _fail(error: DomainError) -> None:
    if isinstance(error, ValidationError):
        for field, message in error.errors.items():
            click.echo(_("Errore (%(field)s): %(message)s", field=field, message=message), err=True)
    else:
        click.echo(_("Errore: %(message)s", message=error.message), err=True)
    sys.exit(2 if isinstance(error, ValidationError) else 1)


# Ids are PostgreSQL integers: a larger number is refused by the option, not by the database.
CUSTOMER_ID = click.IntRange(1, 2**31 - 1)
# Where demo data may be loaded: a laptop, and the test suite.
DEMO_ENVIRONMENTS = {"development", "testing"}


def _password(password_env: str | None) -> str:
    """From the named environment variable, or typed twice at a hidden prompt."""
    if not password_env:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    password = os.environ.get(password_env)
    if password is None:
        click.echo(_("Errore: la variabile %(name)s non è impostata.", name=password_env), err=True)
        sys.exit(2)
    return password


def _user(email: str):
    try:
        return users.find_user(email)
    except DomainError as e:
        _fail(e)


def register_cli(app: Flask) -> None:
    from app.cli_mail import register_mail_cli

    register_mail_cli(app)

    @app.cli.group("users")
    def users_group():
        """Panel users."""

    @users_group.command("create")
    @click.argument("email")
    @click.option("--role", type=click.Choice(Role.values()), required=True)
    @click.option(
        "--customer", "customer_id", type=CUSTOMER_ID, default=None, help="Customer id (customer_admin)"
    )
    @click.option("--password-env", default=None, help="Read the password from this environment variable")
    def create_user(email, role, customer_id, password_env):
        """Create a panel user. The password is asked for unless --password-env names a variable."""
        password = _password(password_env)
        try:
            user = users.create_user(
                Actor.system("cli"), email=email, password=password, role=role, customer_id=customer_id
            )
        except DomainError as e:
            _fail(e)
        click.echo(
            _(
                "Utente %(email)s creato (id %(id)d, ruolo %(role)s).",
                email=user.email,
                id=user.id,
                role=user.role,
            )
        )

    @users_group.command("list")
    @click.option(
        "--customer", "customer_id", type=CUSTOMER_ID, default=None, help="Only this customer's admins"
    )
    def list_users(customer_id):
        """List panel users: email, role, customer, whether they may log in."""
        rows = [
            (
                user.email,
                user.role,
                f"{user.customer_id} {user.customer.name}" if user.customer else "—",
                _("sì") if user.active else _("no"),
            )
            for user in users.list_users(Actor.system("cli"), customer_id)
        ]
        header = (_("email"), _("ruolo"), _("cliente"), _("attivo"))
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if not rows:
            click.echo(_("Nessun utente."))

    @users_group.command("set-password")
    @click.argument("email")
    @click.option("--password-env", default=None, help="Read the password from this environment variable")
    def set_password(email, password_env):
        """Set a user's password (asked for unless --password-env names a variable)."""
        user = _user(email)
        password = _password(password_env)
        try:
            users.set_password(Actor.system("cli"), user, password)
        except DomainError as e:
            _fail(e)
        click.echo(_("Password di %(email)s cambiata.", email=user.email))

    @users_group.command("disable")
    @click.argument("email")
    def disable_user(email):
        """Disable a user: no login, no API, sessions end at their next request."""
        try:
            user = users.set_active(Actor.system("cli"), _user(email).id, False)
        except DomainError as e:
            _fail(e)
        click.echo(_("Utente %(email)s disattivato: non può più accedere né usare l'API.", email=user.email))

    @users_group.command("enable")
    @click.argument("email")
    def enable_user(email):
        """Enable a disabled user again."""
        try:
            user = users.set_active(Actor.system("cli"), _user(email).id, True)
        except DomainError as e:
            _fail(e)
        click.echo(_("Utente %(email)s riattivato.", email=user.email))

    @app.cli.group("tokens")
    def tokens_group():
        """API bearer tokens."""

    @tokens_group.command("create")
    @click.argument("email")
    @click.option("--name", default="cli", help="A label for the token")
    def create_token(email, name):
        """Create an API token for a user and print it (shown only this once)."""
        user = _user(email)
        try:
            _, plaintext = users.create_token(Actor.system("cli"), user, name)
        except DomainError as e:
            _fail(e)
        click.echo(plaintext)

    @app.cli.command("seed-demo")
    def seed_demo():
        """Load the demo data (once) and print the demo logins. Development only."""
        from app.services import demo

        # The demo passwords are in this repository: anyone could log in with them.
        if app.config["ENV_NAME"] not in DEMO_ENVIRONMENTS:
            click.echo(
                _(
                    "Errore: i dati dimostrativi hanno password pubbliche; flask seed-demo funziona solo "
                    "con APP_ENV=development (ora: %(env)s).",
                    env=app.config["ENV_NAME"],
                ),
                err=True,
            )
            sys.exit(1)

        created = demo.seed()
        if not created:
            click.echo(_("I dati dimostrativi sono già presenti."))
        for line in demo.LOGINS:
            click.echo(line)
        click.echo(
            _(
                "Al primo accesso il supporto tecnico configura la verifica in due passaggi "
                "(un'app di autenticazione sul telefono)."
            )
        )
