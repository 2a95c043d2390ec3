"""A domain a customer adds is not served until support approves it: real Dovecot and Postfix agree.

While the domain is pending Postfix does not treat it as local: mail from the Internet
to it is refused at RCPT like mail to any domain we do not serve, and mail from our
own trusted hosts goes out to the domain's real mail servers instead of staying here.
Dovecot lets none of its mailboxes log in. Once approved, both serve it at once, with
one caveat: a running smtpd process remembers how it resolved a (sender, recipient)
pair until the process ends (max_idle, 100 s idle, or max_use, 100 connections), so a
sender refused just before the approval may be refused by that process a while longer.
"""

from __future__ import annotations

import smtplib

import pytest

from app.services import aliases, domains, mailboxes
from app.services.access import Actor
from tests import factories
from tests.factories import PASSWORD
from tests.integration.mailservers import HOST, OUTSIDE_HOST
from tests.integration.test_mailservers import inbox_subjects, login_refused, message, subject, wait_in_inbox

pytestmark = pytest.mark.integration


@pytest.fixture
def mail(servers, app):
    return servers


def send_from_internet(mail, to: str, subj: str, sender: str = "mittente@esterno.example") -> None:
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20, source_address=(OUTSIDE_HOST, 0)) as smtp:
        smtp.send_message(message(sender, to, subj), from_addr=sender, to_addrs=[to])


def test_a_pending_domain_neither_logs_in_nor_receives_until_support_approves_it(mail):
    c = factories.customer(domain="servito.example")
    customer = Actor.for_user(factories.admin(c))
    domain = domains.add_domain(customer, c.id, "attesa.example")
    assert domain.state == "pending"
    # The customer prepares addresses on it meanwhile.
    box = mailboxes.create_mailbox(
        customer, c.id, address="gina@attesa.example", password=PASSWORD, service_class="Business Mail 100 MB"
    )
    aliases.create_alias(customer, c.id, address="info@attesa.example", target=box.address)

    assert login_refused(mail, box.address)
    for rcpt in (box.address, "info@attesa.example"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send_from_internet(mail, rcpt, subject())
        code, text = refused.value.recipients[rcpt]
        assert code == 554 and b"Relay access denied" in text, (rcpt, code, text)
    # From a trusted host the message leaves for the domain's real servers (here the sink).
    outgoing = subject()
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20) as smtp:
        smtp.send_message(message("gina@servito.example", box.address, outgoing), to_addrs=[box.address])
    mail.sink.wait_for(box.address, outgoing)

    domains.approve_domain(Actor.for_user(factories.staff()), domain.id)

    mail.imap(box.address, PASSWORD).logout()
    direct, via_alias = subject(), subject()
    # Another sender than the refused one: smtpd's per-process resolver cache (see above).
    send_from_internet(mail, box.address, direct, sender="cliente@esterno.example")
    send_from_internet(mail, "info@attesa.example", via_alias, sender="cliente@esterno.example")
    wait_in_inbox(mail, box.address, direct)
    wait_in_inbox(mail, box.address, via_alias)
    assert outgoing not in inbox_subjects(mail, box.address)
