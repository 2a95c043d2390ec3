"""Operator commands: flask users create, flask tokens create, flask seed-demo."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask
from flask_babel import gettext as _

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


def register_cli(app: Flask) -> None:
    from app.cli_mail import register_mail_cli

    register_mail_cli(app)

    @app.cli.group("users")
    def users_group():
        """Panel users."""

    @users_group.command("create")
    @click.argument("email")
    @click.option("--role", type=click.Choice(["staff", "customer_admin"]), required=True)
    @click.option("--customer", "customer_id", type=int, default=None, help="Customer id (customer_admin)")
    @click.option("--password-env", default=None, help="Read the password from this environment variable")
    def create_user(email, role, customer_id, password_env):
        """Create a panel user. The password is asked for unless --password-env names a variable."""
        if password_env:
            password = os.environ.get(password_env)
            if password is None:
                click.echo(_("Errore: la variabile %(name)s non è impostata.", name=password_env), err=True)
                sys.exit(2)
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
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

    @app.cli.group("tokens")
    def tokens_group():
        """API bearer tokens."""

    @tokens_group.command("create")
    @click.argument("email")
    @click.option("--name", default="cli", help="A label for the token")
    def create_token(email, name):
        """Create an API token for a user and print it (shown only this once)."""
        try:
            user = users.find_user(email)
            _, plaintext = users.create_token(Actor.system("cli"), user, name)
        except DomainError as e:
            _fail(e)
        click.echo(plaintext)

    @app.cli.command("seed-demo")
    def seed_demo():
        """Load the demo data (once) and print the demo logins."""
        from app.services import demo

        created = demo.seed()
        if not created:
            click.echo(_("I dati dimostrativi sono già presenti."))
        for line in demo.LOGINS:
            click.echo(line)
