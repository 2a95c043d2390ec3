"""`flask users create|list|set-password|disable|enable`: panel users."""

from __future__ import annotations

import os

import click
from flask_babel import gettext as _

from app.cli.errors import Group, refuse
from app.models.enums import Role
from app.services import users
from app.services.access import Actor

# Ids are PostgreSQL integers: a larger number is refused by the option, not by the database.
CUSTOMER_ID = click.IntRange(1, 2**31 - 1)

users_group = Group("users", help="Panel users.")


def _password(password_env: str | None) -> str:
    """From the named environment variable, or typed twice at a hidden prompt."""
    if not password_env:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    password = os.environ.get(password_env)
    if password is None:
        refuse(_("Errore: la variabile %(name)s non è impostata.", name=password_env))
    return password


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
    user = users.create_user(
        Actor.system("cli"), email=email, password=password, role=role, customer_id=customer_id
    )
    click.echo(
        _(
            "Utente %(email)s creato (id %(id)d, ruolo %(role)s).",
            email=user.email,
            id=user.id,
            role=user.role,
        )
    )


@users_group.command("list")
@click.option("--customer", "customer_id", type=CUSTOMER_ID, default=None, help="Only this customer's admins")
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
    user = users.find_user(email)
    password = _password(password_env)
    users.set_password(Actor.system("cli"), user, password)
    click.echo(_("Password di %(email)s cambiata.", email=user.email))


@users_group.command("disable")
@click.argument("email")
def disable_user(email):
    """Disable a user: no login, no API, sessions end at their next request."""
    user = users.set_active(Actor.system("cli"), users.find_user(email).id, False)
    click.echo(_("Utente %(email)s disattivato: non può più accedere né usare l'API.", email=user.email))


@users_group.command("enable")
@click.argument("email")
def enable_user(email):
    """Enable a disabled user again."""
    user = users.set_active(Actor.system("cli"), users.find_user(email).id, True)
    click.echo(_("Utente %(email)s riattivato.", email=user.email))
