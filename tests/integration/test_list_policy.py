"""Who may post to a distribution list, enforced by the real Postfix (list-policy service).

A `customer` list takes mail only from its customer's own mailboxes, logged in
on submission; a `members` list only from its members (mailboxes logged in,
external members by envelope sender); an `anyone` list from everyone.
"""

from __future__ import annotations

import smtplib

import pytest

from app.services import lists
from tests import factories
from tests.factories import PASSWORD, SYSTEM
from tests.integration.mailservers import HOST
from tests.integration.test_mailservers import message, send, subject, wait_in_inbox

pytestmark = pytest.mark.integration


@pytest.fixture
def mail(servers, app):
    return servers


def send_logged_in(mail, box, to: str, title: str) -> None:
    """A mailbox sends on submission (587 in production), logged in as itself."""
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(box.address, PASSWORD)
        smtp.send_message(message(box.address, to, title), from_addr=box.address, to_addrs=[to])


def assert_refused(attempt, rcpt: str, reason: bytes = b"may post") -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        attempt()
    code, text = refused.value.recipients[rcpt]
    assert 500 <= code < 600, (code, text)
    assert reason in text, text


# A forged address of ours is refused before the list's rule is asked (main.cf: our_senders.cf).
FORGED = b"log in to send"


def test_a_customer_list_takes_mail_only_from_the_customer_s_own_logged_in_mailboxes(mail):
    c = factories.customer(domain="solo-nostri.example")
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(c, "bruno")
    dlist = factories.dlist(c, "staff", [anna.address])
    assert dlist.post_policy == "customer"  # the default for a new list
    other = factories.mailbox(factories.customer(domain="altri.example"), "carlo")

    # A stranger on port 25, even one forging an address of the customer.
    assert_refused(lambda: send(mail, dlist.address, subject()), dlist.address)
    assert_refused(lambda: send(mail, dlist.address, subject(), sender=bruno.address), dlist.address, FORGED)
    # Another customer's mailbox, logged in.
    assert_refused(lambda: send_logged_in(mail, other, dlist.address, subject()), dlist.address)

    # The customer's own mailbox, logged in, even one that is not a member.
    sent = subject()
    send_logged_in(mail, bruno, dlist.address, sent)
    wait_in_inbox(mail, anna.address, sent)


def test_no_other_spelling_of_the_list_address_gets_around_the_rule(mail):
    """Postfix checks the address as written, then rewrites it: each spelling that would
    reach the list must meet the same rule."""
    c = factories.customer(domain="grafie.example")
    anna = factories.mailbox(c, "anna")
    factories.dlist(c, "staff", [anna.address])
    for spelling in ("STAFF@Grafie.Example", '"staff"@grafie.example', "staff@grafie.example."):
        assert_refused(lambda rcpt=spelling: send(mail, rcpt, subject()), spelling)
    # A UUCP bang path is not rewritten into the list's address: it stays outside our domains
    # (relayed here only because the test client is on the trusted loopback network).
    bang = subject()
    send(mail, "grafie.example!staff", bang)
    mail.sink.wait_for("grafie.example!staff@mail.test", bang)
    assert mail.maildir_count(anna.address) == 0


def test_a_members_list_takes_mail_only_from_its_members(mail):
    c = factories.customer(domain="soci.example")
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(c, "bruno")
    dlist = factories.dlist(c, "soci", [anna.address, "socio@fuori.example"], post_policy="members")

    from_member = subject()
    send_logged_in(mail, anna, dlist.address, from_member)
    wait_in_inbox(mail, anna.address, from_member)
    from_external_member = subject()
    send(mail, dlist.address, from_external_member, sender="socio@fuori.example")
    wait_in_inbox(mail, anna.address, from_external_member)

    # Not a member: a mailbox of the same customer, a stranger, a forged member address.
    assert_refused(lambda: send_logged_in(mail, bruno, dlist.address, subject()), dlist.address)
    assert_refused(lambda: send(mail, dlist.address, subject()), dlist.address)
    assert_refused(lambda: send(mail, dlist.address, subject(), sender=anna.address), dlist.address, FORGED)


def test_an_open_list_takes_everyone_s_mail_and_a_policy_change_holds_at_the_next_message(mail):
    c = factories.customer(domain="aperta.example")
    anna = factories.mailbox(c, "anna")
    dlist = factories.dlist(c, "info", [anna.address], post_policy="anyone")

    sent = subject()
    send(mail, dlist.address, sent)
    wait_in_inbox(mail, anna.address, sent)

    lists.update_list(SYSTEM, dlist.id, post_policy="customer")
    assert_refused(lambda: send(mail, dlist.address, subject()), dlist.address)
