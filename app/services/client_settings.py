"""What a mail program needs to reach the provider: hosts, ports, security, the user name.

One source for the client settings page, the setup guides and the three autoconfiguration
documents (app/services/autoconfig.py): the host is PROVIDER_MAIL_HOST and the ports come from
the CLIENT_*_PORT settings, whose defaults are the guide's (SMTP 587 with STARTTLS and
authentication, IMAP 993/143, POP3 995/110).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import Domain
from app.models.enums import DomainState
from app.models.mail import unicode_domain
from app.services.access import Actor

SSL = "ssl"  # encrypted from the first byte (implicit TLS)
STARTTLS = "starttls"  # opened in clear on the port, then upgraded before the login

# Staff, or a customer without any domain yet, see this in the examples.
GENERIC_DOMAIN = "azienda.it"
EXAMPLE_LOCAL_PART = "mario.rossi"


@dataclass(frozen=True)
class MailServer:
    protocol: str  # imap | pop3 | smtp
    host: str
    port: int
    security: str  # ssl | starttls
    recommended: bool = False

    @property
    def incoming(self) -> bool:
        return self.protocol in {"imap", "pop3"}

    @property
    def security_label(self) -> str:
        """The words mail programs show in their menus."""
        return "SSL/TLS" if self.security == SSL else "STARTTLS"


def mail_host() -> str:
    return current_app.config["PROVIDER_MAIL_HOST"]


def servers() -> list[MailServer]:
    """Every way in and out, the preferred first within each protocol: IMAP, POP3, SMTP."""
    config = current_app.config
    host = mail_host()
    smtp_port = int(config["CLIENT_SMTP_PORT"])
    return [
        MailServer("imap", host, int(config["CLIENT_IMAPS_PORT"]), SSL, recommended=True),
        MailServer("imap", host, int(config["CLIENT_IMAP_PORT"]), STARTTLS),
        MailServer("pop3", host, int(config["CLIENT_POP3S_PORT"]), SSL),
        MailServer("pop3", host, int(config["CLIENT_POP3_PORT"]), STARTTLS),
        # Submission on 465 is TLS from the first byte (RFC 8314); on any other port, STARTTLS.
        MailServer("smtp", host, smtp_port, SSL if smtp_port == 465 else STARTTLS, recommended=True),
    ]


def preferred(protocol: str) -> MailServer:
    """The first (preferred) server of a protocol: IMAP over SSL, POP3 over SSL, SMTP 587."""
    return next(s for s in servers() if s.protocol == protocol)


def incoming() -> list[MailServer]:
    return [s for s in servers() if s.incoming]


def outgoing() -> MailServer:
    return preferred("smtp")


def example_domain_row(actor: Actor) -> Domain | None:
    """The signed-in customer's domain to show in the examples, an active one first; None for
    staff and for a customer with no domain yet."""
    if actor.is_staff or actor.customer_id is None:
        return None
    active_first = sa.case((Domain.state == DomainState.ACTIVE.value, 0), else_=1)
    return db.session.scalar(
        sa.select(Domain)
        .where(Domain.customer_id == actor.customer_id)
        .order_by(active_first, Domain.name)
        .limit(1)
    )


@dataclass(frozen=True)
class Example:
    """What the guides show a signed-in user: a domain as people write it (Unicode), an address on
    it, and the ASCII name of that domain when it is active (its documents are served)."""

    domain: str
    address: str
    active_domain: str | None


def example(actor: Actor) -> Example:
    row = example_domain_row(actor)
    domain = unicode_domain(row.name) if row is not None else GENERIC_DOMAIN
    active = row.name if row is not None and row.is_active else None
    return Example(domain, f"{EXAMPLE_LOCAL_PART}@{domain}", active)


def example_domain(actor: Actor) -> str:
    return example(actor).domain


def example_address(actor: Actor) -> str:
    return example(actor).address
