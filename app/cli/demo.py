"""`flask seed-demo`: demo data for a laptop run, a staff user, a Pay per Use and a contract customer."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from app.cli.errors import EXIT_PERMISSION, command, refuse
from app.extensions import db
from app.models import User
from app.services import aliases, billing, customers, domains, lists, mailboxes, users
from app.services.access import Actor

# Where demo data may be loaded: a laptop, and the test suite.
DEMO_ENVIRONMENTS = {"development", "testing"}

STAFF = ("supporto@collabra.it", "supporto-demo")
PAYG_ADMIN = ("admin@rossi-caffe.it", "rossi-demo")
CONTRACT_ADMIN = ("it@studiobianchi.it", "bianchi-demo")

LOGINS = (
    f"Supporto tecnico:        {STAFF[0]} / {STAFF[1]}",
    f"Cliente Pay per Use:     {PAYG_ADMIN[0]} / {PAYG_ADMIN[1]}",
    f"Cliente a canone:        {CONTRACT_ADMIN[0]} / {CONTRACT_ADMIN[1]}",
)


def seed() -> bool:
    """Create the demo data unless it is there; True if it was created now."""
    if db.session.scalar(sa.select(User.id).where(User.email == CONTRACT_ADMIN[0])) is not None:
        return False
    system = Actor.system("seed-demo")
    users.create_user(system, email=STAFF[0], password=STAFF[1], role="staff")

    payg = customers.create_customer(
        system,
        name="Torrefazione Rossi S.r.l.",
        plan="payg",
        vat_number="03504190103",
        contact_email="amministrazione@rossi-caffe.it",
    )
    # The first credit at the contract's signature: 30 EUR, 2.400 points (about 110 days of the mailboxes below).
    billing.record_credit(system, payg.id, 3000, "Contratto demo 2026/01", first=True)
    payg_admin = users.create_user(
        system, email=PAYG_ADMIN[0], password=PAYG_ADMIN[1], role="customer_admin", customer_id=payg.id
    )
    domains.add_domain(system, payg.id, "rossi-caffe.it")
    domains.add_domain(system, payg.id, "caffè-rossi.it")
    # Added by the customer itself, so it waits for support's approval (the back office shows it).
    domains.add_domain(Actor.for_user(payg_admin), payg.id, "rossi-shop.it")
    people = [
        ("mario.rossi", "Mario Rossi", "Professional Suite 5.000 MB"),
        ("giulia.rossi", "Giulia Rossi", "Business Mail Plus 1.000 MB"),
        ("ordini", "Ufficio ordini", "Business Mail 2.000 MB"),
        ("magazzino", "Magazzino", "Business Mail 500 MB"),
    ]
    made = {}
    for local, name, cls in people:
        made[local] = mailboxes.create_mailbox(
            system,
            payg.id,
            address=f"{local}@rossi-caffe.it",
            password="Demo-password-1",
            display_name=name,
            service_class=cls,
        )
    aliases.create_alias(system, payg.id, address="info@rossi-caffe.it", target="ordini@rossi-caffe.it")
    aliases.create_alias(system, payg.id, address="mario@caffè-rossi.it", target="mario.rossi@rossi-caffe.it")
    lists.create_list(
        system,
        payg.id,
        address="tutti@rossi-caffe.it",
        description="Tutto il personale",
        members=[f"{p[0]}@rossi-caffe.it" for p in people] + ["commercialista@example.com"],
    )

    contract = customers.create_customer(
        system,
        name="Studio Associato Bianchi",
        plan="contract",
        vat_number="IT12345670017",
        contact_email="segreteria@studiobianchi.it",
    )
    customers.set_contract(
        system,
        contract.id,
        [
            {"service_class": "Business Mail 100 MB", "max_accounts": 10},
            {"service_class": "Business Mail Plus 100 MB", "max_accounts": 3},
        ],
        self_service=True,
    )
    users.create_user(
        system,
        email=CONTRACT_ADMIN[0],
        password=CONTRACT_ADMIN[1],
        role="customer_admin",
        customer_id=contract.id,
    )
    domains.add_domain(system, contract.id, "studiobianchi.it")
    for i, (local, name) in enumerate(
        [
            ("anna.bianchi", "Anna Bianchi"),
            ("luca.verdi", "Luca Verdi"),
            ("segreteria", "Segreteria"),
            ("paolo.neri", "Paolo Neri"),
            ("sara.galli", "Sara Galli"),
        ]
    ):
        mailboxes.create_mailbox(
            system,
            contract.id,
            address=f"{local}@studiobianchi.it",
            password="Demo-password-1",
            display_name=name,
            service_class="Business Mail Plus 100 MB" if i < 3 else "Business Mail 100 MB",
        )
    aliases.create_alias(
        system, contract.id, address="info@studiobianchi.it", target="segreteria@studiobianchi.it"
    )
    lists.create_list(
        system,
        contract.id,
        address="soci@studiobianchi.it",
        description="Soci dello studio",
        members=["anna.bianchi@studiobianchi.it", "luca.verdi@studiobianchi.it"],
    )
    return True


@command("seed-demo")
def seed_demo_command():
    """Load the demo data (once) and print the demo logins. Development only."""
    env_name = current_app.config["ENV_NAME"]
    # The demo passwords are in this repository: anyone could log in with them.
    if env_name not in DEMO_ENVIRONMENTS:
        refuse(
            _(
                "Errore: i dati dimostrativi hanno password pubbliche; flask seed-demo funziona solo "
                "con APP_ENV=development (ora: %(env)s).",
                env=env_name,
            ),
            EXIT_PERMISSION,
        )
    if not seed():
        click.echo(_("I dati dimostrativi sono già presenti."))
    for line in LOGINS:
        click.echo(line)
    click.echo(
        _(
            "Al primo accesso il supporto tecnico configura la verifica in due passaggi "
            "(un'app di autenticazione sul telefono)."
        )
    )
