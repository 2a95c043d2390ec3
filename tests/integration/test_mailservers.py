"""What the panel creates logs in on a real Dovecot and receives mail through a real Postfix.

The servers (tests/integration/mailservers.py) are started once per database
backend from the configuration `flask mailserver config` renders, and read
the test database live through the views of 0002_mail_views.
"""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage

import pytest

from app.services import mailboxes, users
from tests import factories
from tests.factories import PASSWORD, SYSTEM
from tests.integration.mailservers import (
    HOST,
    MASTER_PASSWORD,
    MASTER_USER,
    OUTSIDE_HOST,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def mail(servers, app):
    """The running servers, with the test's app context (tables emptied after it)."""
    return servers


def message(sender: str, to: str, subject: str, body: str = "Buongiorno.") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    return msg


def send(mail, to: str, subject: str, sender: str = "mittente@esterno.example") -> None:
    """Mail from the outside world to port 25 of our Postfix."""
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20) as smtp:
        smtp.send_message(message(sender, to, subject), from_addr=sender, to_addrs=[to])


def subject() -> str:
    return f"Prova {uuid.uuid4().hex[:8]}"


def inbox_subjects(mail, address: str, password: str = PASSWORD, folder: str = "INBOX") -> list[str]:
    client = mail.imap(address, password)
    try:
        client.select(folder, readonly=True)
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [part[1].decode().split(":", 1)[1].strip() for part in data if isinstance(part, tuple)]
    except imaplib.IMAP4.error:
        return []
    finally:
        client.logout()


def wait_in_inbox(mail, address: str, wanted: str, password: str = PASSWORD, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in inbox_subjects(mail, address, password):
        if time.monotonic() > deadline:
            raise AssertionError(f"{wanted!r} never reached {address}\n{mail.log_tail()}")
        time.sleep(0.1)


def folders(mail, address: str, password: str = PASSWORD, subscribed: bool = False) -> dict[str, set[str]]:
    """The mailbox's folders as IMAP lists them (LSUB: the subscribed ones), name -> flags."""
    client = mail.imap(address, password)
    try:
        _, data = client.lsub() if subscribed else client.list()
    finally:
        client.logout()
    found = {}
    for line in data:
        flags, rest = line.decode().split(")", 1)
        name = rest.strip().split(" ", 1)[1].strip('"')
        found[name] = set(flags.lstrip("(").split())
    return found


def wait_in_folder(mail, address: str, folder: str, wanted: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in inbox_subjects(mail, address, folder=folder):
        if time.monotonic() > deadline:
            raise AssertionError(f"{wanted!r} never reached {folder} of {address}\n{mail.log_tail()}")
        time.sleep(0.1)


def login_refused(mail, address: str, password: str = PASSWORD) -> bool:
    try:
        mail.imap(address, password).logout()
    except imaplib.IMAP4.error as e:
        return "AUTHENTICATIONFAILED" in str(e) or "Authentication failed" in str(e)
    return False


def test_mailbox_made_through_the_api_logs_in_on_imap_and_pop3_with_its_class_quota(mail, client):
    customer = factories.customer(domain="api-rossi.example")
    staff = factories.staff()
    _, token = users.create_token(SYSTEM, staff, "test")
    response = client.post(
        f"/api/v1/customers/{customer.id}/mailboxes",
        json={
            "address": "mario@api-rossi.example",
            "password": "Nuova-password-7",
            "display_name": "Mario Rossi",
            "service_class": "Business Mail 500 MB",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()

    imap = mail.imap("mario@api-rossi.example", "Nuova-password-7")
    try:
        typ, data = imap.getquotaroot("INBOX")
        assert typ == "OK"
        # IMAP QUOTA counts STORAGE in units of 1024 octets: 500 MB = 512000.
        assert re.search(rb"\(STORAGE 0 512000\)", b" ".join(x for part in data for x in part)), data
    finally:
        imap.logout()

    pop = poplib.POP3(HOST, mail.ports["pop3"], timeout=20)
    try:
        pop.user("mario@api-rossi.example")
        assert pop.pass_("Nuova-password-7").startswith(b"+OK")
        assert pop.stat() == (0, 0)
    finally:
        pop.quit()

    assert login_refused(mail, "mario@api-rossi.example", "Password-sbagliata-1")
    pop = poplib.POP3(HOST, mail.ports["pop3"], timeout=20)
    pop.user("mario@api-rossi.example")
    with pytest.raises(poplib.error_proto, match="ERR"):
        pop.pass_("Password-sbagliata-1")
    pop.quit()


def test_the_ssl_ports_log_in_as_the_client_settings_page_says(mail):
    """IMAPS and POP3S (993 / 995 in production): TLS from the first byte, same credentials."""
    box = factories.mailbox(factories.customer(domain="ssl-rossi.example"), "anna", password=PASSWORD)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test instance's certificate is self-signed
    imap = imaplib.IMAP4_SSL(HOST, mail.ports["imaps"], ssl_context=context, timeout=20)
    try:
        assert imap.login(box.address, PASSWORD)[0] == "OK"
    finally:
        imap.logout()
    pop = poplib.POP3_SSL(HOST, mail.ports["pop3s"], context=context, timeout=20)
    try:
        pop.user(box.address)
        assert pop.pass_(PASSWORD).startswith(b"+OK")
    finally:
        pop.quit()


def test_mail_reaches_the_mailbox_its_alias_and_every_member_of_a_list(mail):
    c = factories.customer(domain="consegne.example")
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(c, "bruno")
    factories.alias(c, "info", anna)
    factories.dlist(c, "tutti", [anna.address, bruno.address, "socio@fuori.example"], post_policy="anyone")

    direct, via_alias, via_list = subject(), subject(), subject()
    send(mail, "anna@consegne.example", direct)
    send(mail, "info@consegne.example", via_alias)
    send(mail, "tutti@consegne.example", via_list)

    wait_in_inbox(mail, anna.address, direct)
    wait_in_inbox(mail, anna.address, via_alias)
    wait_in_inbox(mail, anna.address, via_list)
    wait_in_inbox(mail, bruno.address, via_list)
    assert via_alias not in inbox_subjects(mail, bruno.address)
    relayed = mail.sink.wait_for("socio@fuori.example", via_list)
    assert relayed.message["To"] == "tutti@consegne.example"


def test_suspended_mailbox_is_refused_at_login_but_keeps_receiving(mail):
    c = factories.customer(domain="sospesi.example")
    box = factories.mailbox(c, "carla")
    mailboxes.update_mailbox(SYSTEM, box.id, status="suspended")

    assert login_refused(mail, box.address)
    kept = subject()
    send(mail, box.address, kept)
    mail.wait_stored(box.address, 1)

    mailboxes.update_mailbox(SYSTEM, box.id, status="active")
    assert kept in inbox_subjects(mail, box.address)


def test_disabled_mailbox_is_refused_at_login_and_its_mail_is_rejected_with_5xx(mail):
    c = factories.customer(domain="disabilitati.example")
    box = factories.mailbox(c, "dario")
    factories.alias(c, "ufficio", box)
    mailboxes.update_mailbox(SYSTEM, box.id, status="disabled")

    assert login_refused(mail, box.address)
    for rcpt in (box.address, "ufficio@disabilitati.example"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(mail, rcpt, subject())
        code, text = refused.value.recipients[rcpt]
        assert 500 <= code < 600, (code, text)
    # Dovecot refuses it too, should anything reach its LMTP directly.
    with smtplib.LMTP(HOST, mail.ports["lmtp"], timeout=20) as lmtp:
        lmtp.ehlo_or_helo_if_needed()
        lmtp.mail("mittente@esterno.example")
        code, _ = lmtp.rcpt(box.address)
    assert 500 <= code < 600, code


def test_deleted_mailbox_cannot_log_in_and_its_address_is_unknown(mail):
    c = factories.customer(domain="cancellati.example")
    box = factories.mailbox(c, "elena")
    mail.imap(box.address, PASSWORD).logout()

    mailboxes.delete_mailbox(SYSTEM, box.id)
    assert login_refused(mail, box.address)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mail, box.address, subject())


def test_new_password_works_at_the_next_login(mail):
    c = factories.customer(domain="password.example")
    box = factories.mailbox(c, "franca")
    mail.imap(box.address, PASSWORD).logout()

    mailboxes.update_mailbox(SYSTEM, box.id, password="Altra-password-8")
    assert login_refused(mail, box.address, PASSWORD)
    mail.imap(box.address, "Altra-password-8").logout()


def test_a_smaller_class_makes_the_server_refuse_an_append_over_the_new_quota(mail):
    c = factories.customer(domain="quote.example")
    box = factories.mailbox(c, "gino", service_class="Business Mail 200 MB")

    def append(size_mb: int):
        msg = message("gino@quote.example", "gino@quote.example", f"Allegato {size_mb} MB")
        payload = msg.as_bytes() + b"\r\n" + (b"x" * 999 + b"\r\n") * (size_mb * 1024 * 1024 // 1001)
        imap = mail.imap(box.address, PASSWORD)
        try:
            return imap.append("INBOX", None, None, payload)
        finally:
            imap.logout()

    assert append(60)[0] == "OK"
    mailboxes.update_mailbox(SYSTEM, box.id, service_class="Business Mail 100 MB")

    typ, data = append(50)  # 110 MB in a 100 MB mailbox (it fitted in 200 MB)
    assert typ == "NO" and b"OVERQUOTA" in data[0], data
    imap = mail.imap(box.address, PASSWORD)
    try:
        _, quota = imap.getquotaroot("INBOX")
        assert b"102400)" in b" ".join(x for part in quota for x in part), quota
    finally:
        imap.logout()
    assert append(1)[0] == "OK"  # still room for a small one


def submission_login(mail, address: str, password: str = PASSWORD) -> None:
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(address, password)


def test_smtp_auth_on_submission_works_only_for_active_mailboxes(mail):
    c = factories.customer(domain="invio.example")
    active = factories.mailbox(c, "ivo")
    suspended = factories.mailbox(c, "lara")
    disabled = factories.mailbox(c, "marta")
    mailboxes.update_mailbox(SYSTEM, suspended.id, status="suspended")
    mailboxes.update_mailbox(SYSTEM, disabled.id, status="disabled")

    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(active.address, PASSWORD)
        sent = subject()
        smtp.send_message(
            message(active.address, "socio@fuori.example", sent),
            from_addr=active.address,
            to_addrs=["socio@fuori.example"],
        )
    mail.sink.wait_for("socio@fuori.example", sent)

    for box in (suspended, disabled):
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            submission_login(mail, box.address)
        assert refused.value.smtp_code == 535


def test_submission_refuses_a_sender_address_that_is_not_the_mailbox_own(mail):
    c = factories.customer(domain="mittenti.example")
    box = factories.mailbox(c, "nora")
    other = factories.mailbox(c, "olga")
    factories.alias(c, "vendite", box)

    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(box.address, PASSWORD)
        smtp.send_message(
            message("vendite@mittenti.example", other.address, "Dal mio alias"),
            from_addr="vendite@mittenti.example",
            to_addrs=[other.address],
        )
        # Postfix answers at RCPT time (smtpd_delay_reject), naming the reason.
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(
                message(other.address, box.address, "Finto"), from_addr=other.address, to_addrs=[box.address]
            )
    code, text = refused.value.recipients[box.address]
    assert code == 553 and b"not owned by user" in text, (code, text)
    wait_in_inbox(mail, other.address, "Dal mio alias")


def test_master_user_logs_in_as_a_mailbox_without_its_password(mail):
    c = factories.customer(domain="assistenza.example")
    box = factories.mailbox(c, "piero")
    kept = subject()
    send(mail, box.address, kept)
    mail.wait_stored(box.address, 1)

    imap = mail.imap(f"{box.address}*{MASTER_USER}", MASTER_PASSWORD)
    try:
        typ, _ = imap.select("INBOX", readonly=True)
        assert typ == "OK"
        _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert kept in data[0][1].decode()
    finally:
        imap.logout()
    assert login_refused(mail, f"{box.address}*{MASTER_USER}", "Password-sbagliata-1")


def test_a_message_over_29_mb_is_refused_at_smtp_time(mail):
    c = factories.customer(domain="grandi.example")
    box = factories.mailbox(c, "quinto", service_class="Business Mail 500 MB")
    msg = message("mittente@esterno.example", box.address, "Troppo grande")
    msg.set_content("x" * 76 + "\n", subtype="plain")
    payload = msg.as_bytes() + b"y" * (29 * 1024 * 1024)

    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=60) as smtp:
        # Postfix advertises SIZE 30408704 and refuses the declared size up front.
        assert smtp.ehlo()[0] == 250 and smtp.esmtp_features["size"] == "30408704"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("mittente@esterno.example", [box.address], payload)
    assert refused.value.smtp_code == 552
    assert b"exceeds fixed limit" in refused.value.smtp_error


def test_a_client_that_has_not_logged_in_cannot_use_one_of_our_addresses_as_sender(mail):
    """No spoofing of our customers on port 25: a mailbox's, an alias's or a list's address as
    envelope sender is refused (5xx) from the Internet and from trusted hosts alike; an
    outside sender still reaches the mailbox, and the mailbox itself, logged in on
    submission, sends as itself."""
    c = factories.customer(domain="cliente-vero.example")
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(c, "bruno")
    sospesa = factories.mailbox(c, "sospesa")
    mailboxes.update_mailbox(SYSTEM, sospesa.id, status="suspended")
    factories.alias(c, "info", anna)
    factories.dlist(c, "tutti", [anna.address, bruno.address], post_policy="anyone")

    forged = [
        anna.address,
        "ANNA@Cliente-Vero.Example",
        "info@cliente-vero.example",
        "tutti@cliente-vero.example",
    ]
    forged.append(sospesa.address)
    for sender in forged:
        for source in (OUTSIDE_HOST, HOST):
            with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20, source_address=(source, 0)) as smtp:
                with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                    smtp.send_message(
                        message(sender, bruno.address, subject()), from_addr=sender, to_addrs=[bruno.address]
                    )
            code, text = refused.value.recipients[bruno.address]
            assert code == 554 and b"log in to send" in text, (sender, source, code, text)

    # Outside senders, and an address of ours that is not a mailbox, are not concerned.
    from_outside, unknown_local = subject(), subject()
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20, source_address=(OUTSIDE_HOST, 0)) as smtp:
        smtp.send_message(
            message("mittente@esterno.example", bruno.address, from_outside), to_addrs=[bruno.address]
        )
    send(mail, bruno.address, unknown_local, sender="nessuno@cliente-vero.example")
    wait_in_inbox(mail, bruno.address, from_outside)
    wait_in_inbox(mail, bruno.address, unknown_local)

    # Logged in, anna sends as herself, and as nobody else's address.
    own = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(anna.address, PASSWORD)
        smtp.send_message(
            message(anna.address, bruno.address, own), from_addr=anna.address, to_addrs=[bruno.address]
        )
        for other in (bruno.address, "qualcuno@esterno.example"):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.send_message(
                    message(other, bruno.address, subject()), from_addr=other, to_addrs=[bruno.address]
                )
            code, text = refused.value.recipients[bruno.address]
            assert code == 553 and b"not owned by user" in text, (other, code, text)
    wait_in_inbox(mail, bruno.address, own)


def refused_on_port_25(mail, sender: str, to: str, source: str = OUTSIDE_HOST) -> tuple[int, bytes]:
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20, source_address=(source, 0)) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(message(sender, to, subject()), from_addr=sender, to_addrs=[to])
    return refused.value.recipients[to]


def test_an_empty_list_and_an_alias_of_a_disabled_mailbox_are_ours_as_sender_too(mail):
    """Addresses that lead nowhere today (mail_aliases has no row for them) are refused as
    envelope sender on port 25 all the same (view mail_sender_addresses); outside senders
    still arrive, and after login a mailbox sends as its own aliases as before."""
    c = factories.customer(domain="vuoti.example")
    anna = factories.mailbox(c, "anna")
    spenta = factories.mailbox(c, "spenta")
    factories.alias(c, "info", anna)
    factories.alias(c, "vecchio", spenta)
    factories.dlist(c, "vuota", [], post_policy="anyone")
    factories.dlist(c, "solo-spenta", [spenta.address], post_policy="anyone")
    mailboxes.update_mailbox(SYSTEM, spenta.id, status="disabled")

    forged = [
        "vuota@vuoti.example",
        "Vuota@Vuoti.Example.",
        "vecchio@vuoti.example",
        "VECCHIO@vuoti.example.",
        "solo-spenta@vuoti.example",
        spenta.address,
    ]
    for sender in forged:
        for source in (OUTSIDE_HOST, HOST):
            code, text = refused_on_port_25(mail, sender, anna.address, source)
            assert code == 554 and b"log in to send" in text, (sender, source, code, text)

    # An outside sender, and an address on our domain that is nothing of ours, still arrive.
    from_outside, unknown_local = subject(), subject()
    send(mail, anna.address, from_outside, sender="vuota@esterno.example")
    send(mail, anna.address, unknown_local, sender="nessuno@vuoti.example")
    wait_in_inbox(mail, anna.address, from_outside)
    wait_in_inbox(mail, anna.address, unknown_local)
    # Quotes in a sender reach the map's SQL escaped: neither a refusal nor a database error.
    for hostile in ("o'neil@esterno.example", "\"x' OR '1'='1\"@esterno.example", "vuota'--@vuoti.example"):
        with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20, source_address=(OUTSIDE_HOST, 0)) as smtp:
            smtp.ehlo()
            accepted = smtp.docmd("MAIL", f"FROM:<{hostile}>")
            assert accepted[0] == 250, (hostile, accepted)
            code, text = smtp.docmd("RCPT", f"TO:<{anna.address}>")
            assert code == 250, (hostile, code, text)

    # Logged in: anna sends as her alias, as before; a list is nobody's sender address.
    as_alias = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(anna.address, PASSWORD)
        smtp.send_message(
            message("info@vuoti.example", "socio@fuori.example", as_alias),
            from_addr="info@vuoti.example",
            to_addrs=["socio@fuori.example"],
        )
        for other in ("vuota@vuoti.example", "vecchio@vuoti.example"):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.send_message(
                    message(other, "socio@fuori.example", subject()),
                    from_addr=other,
                    to_addrs=["socio@fuori.example"],
                )
            code, text = refused.value.recipients["socio@fuori.example"]
            assert code == 553 and b"not owned by user" in text, (other, code, text)
    mail.sink.wait_for("socio@fuori.example", as_alias)

    # The disabled mailbox cannot log in; enabled again, it sends as its alias through
    # submission, while a stranger on port 25 still may not.
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submission_login(mail, spenta.address)
    mailboxes.update_mailbox(SYSTEM, spenta.id, status="active")
    again = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(spenta.address, PASSWORD)
        smtp.send_message(
            message("vecchio@vuoti.example", "socio@fuori.example", again),
            from_addr="vecchio@vuoti.example",
            to_addrs=["socio@fuori.example"],
        )
    mail.sink.wait_for("socio@fuori.example", again)
    code, text = refused_on_port_25(mail, "vecchio@vuoti.example", anna.address)
    assert code == 554 and b"log in to send" in text, (code, text)


def test_an_idn_address_written_in_unicode_is_ours_as_sender_too(mail):
    """A domain stored as xn--caff-8oa.example is caffè.example to a client speaking SMTPUTF8:
    on port 25 its addresses are refused as envelope sender in either form, whatever the case
    (Postfix casefolds the key before the map reads mail_sender_addresses); strangers, in
    Unicode too, still arrive. After login a mailbox sends as its ASCII address as before; the
    Unicode form has no owner in smtpd_sender_login_maps, so submission refuses it to every
    login (the owner too), and another customer's mailbox may send as neither form."""
    c = factories.customer(domain="caffè.example")
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(c, "bruno")
    factories.alias(c, "info", anna)
    factories.dlist(c, "vuota", [], post_policy="anyone")
    other = factories.mailbox(factories.customer(domain="altro-cliente.example"), "carlo")
    assert anna.address == "anna@xn--caff-8oa.example"

    forged = [
        "anna@caffè.example",
        "ANNA@CAFFÈ.EXAMPLE",
        "Anna@Caffè.Example.",
        "info@CAFFÈ.example",
        "vuota@caffè.example",
        anna.address,
        "ANNA@XN--CAFF-8OA.example",
    ]
    for sender in forged:
        for source in (OUTSIDE_HOST, HOST):
            code, text = refused_on_port_25(mail, sender, bruno.address, source)
            assert code == 554 and b"log in to send" in text, (sender, source, code, text)

    # Strangers are not concerned: an outside sender arrives; one in Unicode on a domain not ours,
    # and nobody of ours in Unicode, are accepted (their mail needs SMTPUTF8 all the way, which
    # Dovecot 2.3's LMTP does not offer: Postfix accepts it, then bounces it at delivery).
    outside = subject()
    send(mail, bruno.address, outside)
    wait_in_inbox(mail, bruno.address, outside)
    for sender in ("anna@caffè-bar.example", "nessuno@caffè.example", "anna@CAFFÈ-bar.example"):
        with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20, source_address=(OUTSIDE_HOST, 0)) as smtp:
            refused = smtp.send_message(
                message(sender, bruno.address, subject()), from_addr=sender, to_addrs=[bruno.address]
            )
        assert refused == {}, (sender, refused)

    def submit(login: str, sender: str, sent: str) -> None:
        with smtplib.SMTP(HOST, mail.ports["submission"], timeout=20) as smtp:
            smtp.starttls(context=mail.tls_context())
            smtp.login(login, PASSWORD)
            smtp.send_message(
                message(sender, bruno.address, sent), from_addr=sender, to_addrs=[bruno.address]
            )

    own = subject()
    submit(anna.address, anna.address, own)
    wait_in_inbox(mail, bruno.address, own)
    for login, sender in [
        (anna.address, "anna@caffè.example"),
        (anna.address, "info@caffè.example"),
        (other.address, "anna@caffè.example"),
        (other.address, "Info@Caffè.Example"),
        (other.address, anna.address),
    ]:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            submit(login, sender, subject())
        code, text = refused.value.recipients[bruno.address]
        assert code == 553 and b"not owned by user" in text, (login, sender, code, text)


def test_junk_folder_exists_subscribed_with_its_special_use_and_the_inbox_gets_mail(mail):
    """Without rspamd in the path the Sieve script finds no spam mark: mail goes to INBOX.
    Nothing removes an "X-Spam: Yes" the sender wrote himself (rspamd would): it only files
    that sender's own message into Junk."""
    anna = factories.mailbox(factories.customer(domain=f"giunco-{uuid.uuid4().hex[:6]}.example"), "anna")
    listed = folders(mail, anna.address)
    assert "\\Junk" in listed["Junk"], listed
    assert not any("\\Junk" in flags for name, flags in listed.items() if name != "Junk"), listed
    assert "Junk" in folders(mail, anna.address, subscribed=True)

    normal = subject()
    send(mail, anna.address, normal)
    wait_in_inbox(mail, anna.address, normal)
    assert mail.maildir_count(anna.address, "Junk") == 0

    forged = subject()
    msg = message("mittente@esterno.example", anna.address, forged)
    msg["X-Spam"] = "Yes"
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=20, source_address=(OUTSIDE_HOST, 0)) as smtp:
        smtp.send_message(msg, from_addr="mittente@esterno.example", to_addrs=[anna.address])
    wait_in_folder(mail, anna.address, "Junk", forged)
    assert forged not in inbox_subjects(mail, anna.address)
