"""A customer on hold on a real Dovecot and Postfix: no login, mail still delivered and kept, all back on lifting.

The servers (tests/integration/mailservers.py) read the test database live
through mail_users, which reads the customer's hold (0013_customer_hold).
"""

from __future__ import annotations

import smtplib

import pytest

from app.services import hold, mailboxes
from app.services.access import Actor
from tests import factories
from tests.factories import PASSWORD, SYSTEM
from tests.integration.test_mailservers import (
    inbox_subjects,
    login_refused,
    send,
    subject,
    submission_login,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def mail(servers, app):
    """The running servers, with the test's app context (tables emptied after it)."""
    return servers


def test_on_hold_no_mailbox_logs_in_mail_is_kept_and_lifting_restores_each_mailbox(mail):
    c = factories.customer(domain="credito.example")
    active = factories.mailbox(c, "anna")
    suspended = factories.mailbox(c, "bruno")
    reactivated = factories.mailbox(c, "carla")
    disabled = factories.mailbox(c, "dario")
    factories.alias(c, "info", active)
    for box, status in ((suspended, "suspended"), (reactivated, "suspended"), (disabled, "disabled")):
        mailboxes.update_mailbox(SYSTEM, box.id, status=status)
    mail.imap(active.address, PASSWORD).logout()

    hold.put_on_hold(SYSTEM, c.id, "Credito esaurito")

    # No login anywhere: IMAP, and SMTP AUTH on submission (Postfix asks Dovecot).
    for box in (active, suspended, reactivated, disabled):
        assert login_refused(mail, box.address), box.address
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        submission_login(mail, active.address)
    assert refused.value.smtp_code == 535

    # Mail keeps arriving and is stored, directly and through an alias.
    direct, via_alias, to_suspended = subject(), subject(), subject()
    send(mail, active.address, direct)
    send(mail, "info@credito.example", via_alias)
    send(mail, suspended.address, to_suspended)
    mail.wait_stored(active.address, 2)
    mail.wait_stored(suspended.address, 1)
    # A mailbox disabled before the hold still refuses mail, as it did.
    with pytest.raises(smtplib.SMTPRecipientsRefused) as rejected:
        send(mail, disabled.address, subject())
    code, _text = rejected.value.recipients[disabled.address]
    assert 500 <= code < 600

    # The customer re-activates a mailbox: its status changes, the hold still refuses the login.
    admin = Actor.for_user(factories.admin(c))
    mailboxes.update_mailbox(admin, reactivated.id, status="active")
    assert login_refused(mail, reactivated.address)

    hold.lift_hold(SYSTEM, c.id)

    # Everything as it was: the active mailbox logs in and finds what arrived while on hold...
    assert {direct, via_alias} <= set(inbox_subjects(mail, active.address))
    submission_login(mail, active.address)
    # ...the one the customer re-activated logs in too...
    mail.imap(reactivated.address, PASSWORD).logout()
    # ...the suspended one is still suspended (its mail kept on disk), the disabled one still disabled.
    assert login_refused(mail, suspended.address)
    assert mail.maildir_count(suspended.address) == 1
    assert login_refused(mail, disabled.address)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mail, disabled.address, subject())
    statuses = {b.address: b.status for b in mailboxes.search_mailboxes(SYSTEM, c.id, per_page=10).items}
    assert statuses == {
        active.address: "active",
        suspended.address: "suspended",
        reactivated.address: "active",
        disabled.address: "disabled",
    }
