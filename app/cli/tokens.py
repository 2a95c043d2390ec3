"""`flask tokens create`: API bearer tokens."""

from __future__ import annotations

import click

from app.cli.errors import Group
from app.services import users
from app.services.access import Actor

tokens_group = Group("tokens", help="API bearer tokens.")


@tokens_group.command("create")
@click.argument("email")
@click.option("--name", default="cli", help="A label for the token")
def create_token(email, name):
    """Create an API token for a user and print it (shown only this once)."""
    user = users.find_user(email)
    _, plaintext = users.create_token(Actor.system("cli"), user, name)
    click.echo(plaintext)
