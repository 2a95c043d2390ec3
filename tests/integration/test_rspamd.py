"""rspamd as Postfix's milter, from the configuration `flask mailserver config --rspamd` renders.

The servers (tests/integration/mailservers.py, the `servers_rspamd` fixture) read the test
database, the tests' Redis (DKIM keys) and the test DNS server (SPF, DKIM, DMARC records).
rspamd caches what it resolved: each test uses domains of its own.
"""

from __future__ import annotations

import base64
import email.utils
import grp
import re
import smtplib
import stat
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.mailserver import render
from tests import factories
from tests.factories import PASSWORD
from tests.integration.conftest import REDIS_URL
from tests.integration.mailservers import HOST, OUTSIDE_HOST, TEST_OUTBOUND_LIMIT, TEST_RSPAMD_WORKERS
from tests.integration.test_mailservers import (
    folders,
    inbox_subjects,
    message,
    subject,
    wait_in_folder,
    wait_in_inbox,
)

pytestmark = pytest.mark.integration

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# rspamd's test pattern (enable_test_patterns, test instances only) that forces "add header".
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture
def mail(servers_rspamd, app, connection, dns_server):
    """The servers with rspamd, the test's app context; Redis emptied around the test."""
    return servers_rspamd


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}.example"


def from_internet(mail, sender: str, to: str, msg) -> None:
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=30, source_address=(OUTSIDE_HOST, 0)) as smtp:
        smtp.send_message(msg, from_addr=sender, to_addrs=[to])


def stored(mail, address: str, count: int = 1, folder: str = "INBOX") -> bytes:
    """The newest message on disk in the mailbox's folder, once there are `count`."""
    mail.wait_stored(address, count, folder=folder)
    maildir = mail.maildir(address, folder)
    files = [p for sub in ("new", "cur") for p in (maildir / sub).glob("*")]
    return max(files, key=lambda p: p.stat().st_mtime).read_bytes()


def header_block(raw: bytes) -> str:
    return raw.split(b"\n\n", 1)[0].decode("utf-8", "replace").replace("\n\t", " ").replace("\n ", " ")


def test_the_rendered_rspamd_runs_and_answers_its_controller(mail):
    with urllib.request.urlopen(f"{mail.rspamd_controller_url}/ping", timeout=5) as response:
        assert response.read().strip() == b"pong"
    # Postfix reaches the milter on a Unix socket only rspamd and Postfix's group may use.
    assert f"smtpd_milters = unix:{mail.milter_socket}\n" in (mail.conf / "main.cf").read_text()
    assert f'bind_socket = "{mail.milter_socket} mode=0660";' in (mail.conf / "rspamd.conf").read_text()
    st = mail.milter_socket.stat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    assert grp.getgrgid(st.st_gid).gr_name == "postfix"
    assert not stat.S_IMODE(mail.milter_socket.parent.stat().st_mode) & stat.S_IRWXO
    # The scanning processes rendered (--rspamd-workers), children of rspamd's master.
    master = (mail.root / "run" / "rspamd" / "rspamd.pid").read_text().strip()
    children = subprocess.run(["pgrep", "-P", master, "-a"], capture_output=True, text=True).stdout
    proxies = [line for line in children.splitlines() if "rspamd_proxy process" in line]
    assert len(proxies) == TEST_RSPAMD_WORKERS, children


def test_mail_from_the_internet_gets_authentication_results_and_a_spam_score(mail, dns_server):
    c = factories.customer(domain=unique("ricevo"))
    anna = factories.mailbox(c, "anna")
    sender_domain = unique("mittente")
    # The sender's domain allows the "Internet" client (127.0.0.2) and publishes DMARC.
    dns_server.resolver.set(sender_domain, "TXT", f'"v=spf1 ip4:{OUTSIDE_HOST} -all"')
    dns_server.resolver.set(f"_dmarc.{sender_domain}", "TXT", '"v=DMARC1; p=reject"')
    title = subject()
    sender = f"luca@{sender_domain}"
    msg = message(sender, anna.address, title)
    # Forged results from the sender's side are removed, never believed.
    msg["Authentication-Results"] = "mail.test; dkim=pass header.d=falso.example"
    msg["X-Spam-Status"] = "No, score=-100"
    from_internet(mail, sender, anna.address, msg)

    wait_in_inbox(mail, anna.address, title)
    headers = header_block(stored(mail, anna.address))
    assert "falso.example" not in headers and "score=-100" not in headers, headers
    assert headers.count("Authentication-Results:") == 1, headers
    assert "Authentication-Results: mail.test;" in headers, headers
    assert "spf=pass (" in headers and f"smtp.mailfrom={sender}" in headers, headers
    assert f"dmarc=pass (policy=reject) header.from={sender_domain}" in headers, headers
    assert "X-Spamd-Result: default: False [" in headers, headers
    assert "X-Spam-Status: No, score=" in headers, headers


def test_a_failing_sender_whose_dmarc_policy_is_reject_is_refused(mail, dns_server):
    c = factories.customer(domain=unique("protetto"))
    anna = factories.mailbox(c, "anna")
    forged_domain = unique("banca")
    # The real bank sends only from 192.0.2.1; the message comes from 127.0.0.2.
    dns_server.resolver.set(forged_domain, "TXT", '"v=spf1 ip4:192.0.2.1 -all"')
    dns_server.resolver.set(f"_dmarc.{forged_domain}", "TXT", '"v=DMARC1; p=reject"')
    sender = f"avvisi@{forged_domain}"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        from_internet(mail, sender, anna.address, message(sender, anna.address, subject()))
    assert 500 <= refused.value.smtp_code < 600, refused.value
    assert mail.maildir_count(anna.address) == 0


def test_a_failing_sender_whose_dmarc_policy_is_quarantine_is_marked_as_spam(mail, dns_server):
    c = factories.customer(domain=unique("quarantena"))
    anna = factories.mailbox(c, "anna")
    forged_domain = unique("negozio")
    dns_server.resolver.set(forged_domain, "TXT", '"v=spf1 ip4:192.0.2.1 -all"')
    dns_server.resolver.set(f"_dmarc.{forged_domain}", "TXT", '"v=DMARC1; p=quarantine"')
    sender = f"ordini@{forged_domain}"
    title = subject()
    from_internet(mail, sender, anna.address, message(sender, anna.address, title))
    headers = header_block(stored(mail, anna.address, folder="Junk"))
    assert "X-Spam: Yes" in headers, headers
    assert mail.maildir_count(anna.address) == 0
    assert "dmarc=fail" in headers and f"header.from={forged_domain} (policy=quarantine)" in headers, headers


def test_mail_from_one_of_our_domains_that_is_neither_logged_in_nor_aligned_goes_to_junk(mail, connection):
    """Header From on a customer's domain (one with a selector in Redis), envelope from a
    stranger on port 25, no DMARC record to pass: marked as spam, whatever the domain's policy."""
    ours = unique("nostro")
    anna = factories.mailbox(factories.customer(domain=ours), "anna")
    connection.hset(render.DKIM_SELECTORS_HASH, ours, "s202612")
    forged = subject()
    from_internet(
        mail, "estraneo@esterno.example", anna.address, message(f"direzione@{ours}", anna.address, forged)
    )
    headers = header_block(stored(mail, anna.address, folder="Junk"))
    assert "X-Spam: Yes" in headers and "OUR_DOMAIN_NOT_ALIGNED(6.00)" in headers, headers
    # A score between the two thresholds: marked, filed into Junk, not refused.
    assert render.SPAM_ADD_HEADER_SCORE <= score(headers) < render.SPAM_REJECT_SCORE, headers
    assert mail.maildir_count(anna.address) == 0

    # The same message with a From of a domain that is not ours is not concerned.
    other = unique("altrui")
    from_internet(
        mail, "estraneo@esterno.example", anna.address, message(f"direzione@{other}", anna.address, subject())
    )
    headers = header_block(stored(mail, anna.address))
    assert "X-Spam: Yes" not in headers and "OUR_DOMAIN_NOT_ALIGNED" not in headers, headers


def test_a_forged_received_header_saying_esmtpsa_does_not_exempt_a_forged_from(mail, connection):
    """The sender writes a Received header claiming its message was submitted with a login:
    only Postfix's own word on the login counts, the forgery still goes to Junk."""
    ours = unique("nostro")
    anna = factories.mailbox(factories.customer(domain=ours), "anna")
    connection.hset(render.DKIM_SELECTORS_HASH, ours, "s202612")
    forged = subject()
    msg = message(f"direzione@{ours}", anna.address, forged)
    msg["Received"] = (
        "from pc (pc [192.0.2.9]) by mx.elsewhere.example (Postfix) with ESMTPSA id ABC123"
        " for <x@y>; Wed, 2 Dec 2026 05:00:00 +0000"
    )
    from_internet(mail, "estraneo@esterno.example", anna.address, msg)
    headers = header_block(stored(mail, anna.address, folder="Junk"))
    assert "X-Spam: Yes" in headers and "OUR_DOMAIN_NOT_ALIGNED" in headers, headers
    assert mail.maildir_count(anna.address) == 0


def test_an_upper_case_from_domain_of_ours_is_still_ours(mail, connection):
    ours = unique("nostro")
    anna = factories.mailbox(factories.customer(domain=ours), "anna")
    connection.hset(render.DKIM_SELECTORS_HASH, ours, "s202612")
    forged = subject()
    from_internet(
        mail,
        "estraneo@esterno.example",
        anna.address,
        message(f"Direzione@{ours.upper()}", anna.address, forged),
    )
    headers = header_block(stored(mail, anna.address, folder="Junk"))
    assert "X-Spam: Yes" in headers and "OUR_DOMAIN_NOT_ALIGNED" in headers, headers
    assert mail.maildir_count(anna.address) == 0


def test_an_idn_domain_of_ours_written_in_unicode_in_the_from_is_still_ours(mail, connection, app):
    """The panel writes an IDN's selector under both its forms (dkim.sync_redis, on the domain's
    activation): a From in Unicode, upper-case too, is a forged From of ours all the same."""
    app.config["RSPAMD_REDIS_URL"] = REDIS_URL
    try:
        unicode_name = f"caffè-{uuid.uuid4().hex[:6]}.example"
        anna = factories.mailbox(factories.customer(domain=unicode_name), "anna")
    finally:
        app.config.pop("RSPAMD_REDIS_URL")
    ascii_name = anna.address.split("@")[1]
    assert ascii_name.startswith("xn--")
    assert connection.hget(render.DKIM_SELECTORS_HASH, unicode_name) is not None
    for written in (unicode_name, unicode_name.upper()):
        forged = subject()
        raw = (
            f"From: Direzione <direzione@{written}>\r\nTo: {anna.address}\r\nSubject: {forged}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nBuongiorno.\r\n"
        ).encode()
        with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=30, source_address=(OUTSIDE_HOST, 0)) as smtp:
            smtp.sendmail("estraneo@esterno.example", [anna.address], raw)
    headers = header_block(stored(mail, anna.address, count=2, folder="Junk"))
    assert "X-Spam: Yes" in headers and "OUR_DOMAIN_NOT_ALIGNED" in headers, headers
    assert mail.maildir_count(anna.address) == 0


def test_a_logged_in_mailbox_writing_to_a_colleague_is_not_taken_for_a_forgery(mail, connection):
    """The login Postfix saw (not a header) exempts submission from the forged-From rule."""
    ours = unique("nostro")
    c = factories.customer(domain=ours)
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(c, "bruno")
    connection.hset(render.DKIM_SELECTORS_HASH, ours, "s202612")
    t = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(anna.address, PASSWORD)
        smtp.send_message(message(anna.address, bruno.address, t), to_addrs=[bruno.address])
    wait_in_inbox(mail, bruno.address, t)
    headers = header_block(stored(mail, bruno.address))
    assert "OUR_DOMAIN_NOT_ALIGNED" not in headers and "X-Spam: Yes" not in headers, headers


def test_gtube_is_refused_at_smtp_and_a_normal_message_reaches_the_inbox(mail):
    c = factories.customer(domain=unique("filtro"))
    anna = factories.mailbox(c, "anna")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        from_internet(
            mail,
            "spam@esterno.example",
            anna.address,
            message("spam@esterno.example", anna.address, "Offerta", body=f"Compra ora.\n{GTUBE}\n"),
        )
    # GTUBE takes rspamd's reject action: refused at DATA, never stored.
    assert refused.value.smtp_code == 554 and refused.value.smtp_error.startswith(b"5.7.1 ")
    normal = subject()
    from_internet(
        mail,
        "cliente@esterno.example",
        anna.address,
        message("cliente@esterno.example", anna.address, normal),
    )
    wait_in_inbox(mail, anna.address, normal)
    assert mail.maildir_count(anna.address) == 1


def score(headers: str) -> float:
    """rspamd's score, from "X-Spam-Status: Yes, score=9.50"."""
    status = headers.split("X-Spam-Status: ", 1)[1].split("\n", 1)[0]
    return float(status.split("score=", 1)[1].split()[0].rstrip(","))


def test_spam_above_the_add_header_score_is_filed_into_junk_and_a_normal_message_into_the_inbox(mail):
    c = factories.customer(domain=unique("giunco"))
    anna = factories.mailbox(c, "anna")
    # Scored between the thresholds by rspamd's own rules: a spam flag set upstream
    # (SPAM_FLAG 5, rspamd's verdict replaces the header), no Message-ID (2.5), no Date (1).
    scored = subject()
    msg = message("offerte@esterno.example", anna.address, scored)
    msg["X-Spam"] = "Yes"
    from_internet(mail, "offerte@esterno.example", anna.address, msg)
    headers = header_block(stored(mail, anna.address, folder="Junk"))
    assert "SPAM_FLAG(5.00)" in headers and "X-Spam-Status: Yes, score=" in headers, headers
    assert render.SPAM_ADD_HEADER_SCORE <= score(headers) < render.SPAM_REJECT_SCORE, headers
    assert headers.count("X-Spam: Yes") == 1, headers

    # rspamd's test pattern forces the same action before any rule runs (no score headers).
    forced = subject()
    from_internet(
        mail,
        "offerte@esterno.example",
        anna.address,
        message("offerte@esterno.example", anna.address, forced, body=f"Compra ora.\n{GTUBE_ADD_HEADER}\n"),
    )
    headers = header_block(stored(mail, anna.address, 2, folder="Junk"))
    assert "X-Spam: Yes" in headers, headers

    # What the mailbox sees over IMAP: both in the folder flagged \Junk, neither in INBOX.
    listed = folders(mail, anna.address)
    assert "\\Junk" in listed["Junk"] and "\\Junk" not in listed["INBOX"], listed
    wait_in_folder(mail, anna.address, "Junk", scored)
    wait_in_folder(mail, anna.address, "Junk", forced)
    assert scored not in inbox_subjects(mail, anna.address) and forced not in inbox_subjects(
        mail, anna.address
    )

    normal = subject()
    from_internet(
        mail,
        "cliente@esterno.example",
        anna.address,
        message("cliente@esterno.example", anna.address, normal),
    )
    wait_in_inbox(mail, anna.address, normal)
    assert normal not in inbox_subjects(mail, anna.address, folder="Junk")
    assert mail.maildir_count(anna.address, "Junk") == 2 and mail.maildir_count(anna.address) == 1


def test_a_spam_mark_forged_by_the_sender_is_replaced_by_rspamd_s_own_verdict(mail):
    """The sender's "X-Spam: Yes" is removed and only scored (SPAM_FLAG): below the
    add_header score the message reaches the inbox, without the mark."""
    anna = factories.mailbox(factories.customer(domain=unique("falso")), "anna")
    forged = subject()
    msg = message("furbo@esterno.example", anna.address, forged)
    msg["X-Spam"] = "Yes"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="esterno.example")
    from_internet(mail, "furbo@esterno.example", anna.address, msg)
    wait_in_inbox(mail, anna.address, forged)
    headers = header_block(stored(mail, anna.address))
    assert "X-Spam:" not in headers and "X-Spam-Status: No, score=" in headers, headers
    assert score(headers) < render.SPAM_ADD_HEADER_SCORE
    assert mail.maildir_count(anna.address, "Junk") == 0


def dkim_key() -> tuple[str, str]:
    """A fresh RSA 2048 key: the PEM rspamd signs with, the p= of its DNS TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(public).decode()


def test_a_mailbox_s_message_is_signed_with_the_key_the_panel_put_in_redis(mail, connection, dns_server):
    """The contract of docs/mailserver.md: HSET dkim_selectors <domain> <selector> and
    HSET dkim_keys <selector>.<domain> <PEM>; rspamd signs the next message, no reload.
    The signed message, sent back to us from outside, passes rspamd's own DKIM check."""
    domain = unique("firmo")
    c = factories.customer(domain=domain)
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(factories.customer(domain=unique("altro")), "bruno")

    unsigned = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(anna.address, PASSWORD)
        smtp.send_message(
            message(anna.address, "socio@fuori.example", unsigned), to_addrs=["socio@fuori.example"]
        )
    assert "DKIM-Signature" not in mail.sink.wait_for("socio@fuori.example", unsigned).message

    pem, public = dkim_key()
    selector = "s202612"
    connection.hset(render.DKIM_KEYS_HASH, f"{selector}.{domain}", pem)
    connection.hset(render.DKIM_SELECTORS_HASH, domain, selector)
    record = f"v=DKIM1; k=rsa; p={public}"
    # One TXT record of several strings (each at most 255 characters), as DNS publishes it.
    chunks = " ".join(f'"{record[i : i + 250]}"' for i in range(0, len(record), 250))
    dns_server.resolver.set(f"{selector}._domainkey.{domain}", "TXT", chunks)

    signed = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(anna.address, PASSWORD)
        smtp.send_message(
            message(anna.address, "socio@fuori.example", signed), to_addrs=["socio@fuori.example"]
        )
    out = mail.sink.wait_for("socio@fuori.example", signed)
    signature = out.message["DKIM-Signature"]
    assert (
        signature
        and f"d={domain};" in signature.replace(" ", "")
        and f"s={selector};" in signature.replace(" ", "")
    ), signature
    # What leaves carries no scoring of ours.
    assert out.message["X-Spamd-Result"] is None and out.message["Authentication-Results"] is None
    assert out.message["X-Spam"] is None

    # Back in from the Internet, as a receiver would check it. The domain publishes a DMARC
    # record (the DNS advice asks for one): aligned by its signature, it is not a forgery.
    dns_server.resolver.set(f"_dmarc.{domain}", "TXT", '"v=DMARC1; p=none"')
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=30, source_address=(OUTSIDE_HOST, 0)) as smtp:
        smtp.sendmail(f"rimbalzo@{unique('inoltro')}", [bruno.address], out.data)
    headers = header_block(stored(mail, bruno.address))
    assert f"dkim=pass header.d={domain} header.s={selector}" in headers, headers


def scan_symbols(mail, message_id: str, timeout: float = 10) -> list[str]:
    """The symbols rspamd's log gives the message with this Message-ID (its task line:
    "... id: <mid>, ... [score/reject] [SYMBOL(score){options},...] ...")."""
    deadline = time.monotonic() + timeout
    while True:
        for line in (mail.logs / "rspamd.log").read_text(errors="replace").splitlines():
            if f"id: {message_id}," in line and "rspamd_task_write_log" in line:
                found = re.search(r"\[-?[0-9.]+/[0-9.]+\] \[([^\]]*)\]", line)
                assert found, line
                return re.findall(r"([A-Z][A-Z0-9_]*)\(", found.group(1))
        if time.monotonic() > deadline:
            raise AssertionError(f"no scan of {message_id} in rspamd's log\n{mail.log_tail()}")
        time.sleep(0.2)


def test_a_logged_in_mailbox_s_mail_is_signed_and_only_checked_for_gtube(mail, connection, dns_server):
    """Outbound (submission, logged in): signed, and refused if it carries GTUBE (even
    base64-encoded), and nothing else: no rule scores it (rspamd's log gives it one symbol,
    the signature), no blocklist is asked about our own customers' mail, its text is not
    analysed."""
    domain = unique("uscita")
    c = factories.customer(domain=domain)
    anna = factories.mailbox(c, "anna")
    pem, _public = dkim_key()
    connection.hset(render.DKIM_KEYS_HASH, f"s202612.{domain}", pem)
    connection.hset(render.DKIM_SELECTORS_HASH, domain, "s202612")
    link = f"https://www.{unique('fornitore').replace('.example', '.it')}/catalogo/ordine"
    before = len(dns_server.questions())
    sent = subject()
    msg = message(anna.address, "socio@fuori.example", sent, body=f"Il catalogo: {link}\n")
    # What port 25 would score: a spam flag set by the sender (SPAM_FLAG 5), no Date.
    msg["X-Spam"] = "Yes"
    msg["Message-ID"] = message_id = email.utils.make_msgid(domain=domain)
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(anna.address, PASSWORD)
        smtp.send_message(msg, to_addrs=["socio@fuori.example"])
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.send_message(
                message(anna.address, "socio@fuori.example", subject(), body=f"Compra ora.\n{GTUBE}\n"),
                to_addrs=["socio@fuori.example"],
            )
        # rspamd does not analyse the text of outbound mail; GTUBE is still looked for in the
        # decoded text parts, not only in the raw message.
        encoded = message(anna.address, "socio@fuori.example", subject())
        encoded.set_content(f"Compra ora.\n{GTUBE}\n", cte="base64")
        assert GTUBE not in encoded.as_string()
        with pytest.raises(smtplib.SMTPDataError) as refused_encoded:
            smtp.send_message(encoded, to_addrs=["socio@fuori.example"])
    assert refused.value.smtp_code == 554, refused.value
    assert refused_encoded.value.smtp_code == 554, refused_encoded.value
    out = mail.sink.wait_for("socio@fuori.example", sent)
    assert f"d={domain};" in out.message["DKIM-Signature"].replace(" ", "")
    assert scan_symbols(mail, message_id) == ["DKIM_SIGNED"]
    asked = [q.name for q in dns_server.questions()[before:]]
    host = link.split("/")[2].removeprefix("www.")
    # A full scan asks the URL and domain blocklists (SURBL, Spamhaus DBL, rspamd's own,
    # phishtank) about the link's domain; nothing of the kind here.
    assert not [n for n in asked if host in n or "phishtank" in n or "spamhaus" in n], asked


def test_a_mailbox_past_its_hourly_sending_limit_is_told_to_try_later(mail):
    """A logged-in mailbox sends to at most TEST_OUTBOUND_LIMIT recipients an hour (the
    instance's --outbound-limit): past it, 451 at the end of DATA and nothing leaves; another
    mailbox, and mail arriving for this one, are not held."""
    c = factories.customer(domain=unique("limite"))
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(c, "bruno")
    many = [f"cliente{i}@fuori.example" for i in range(TEST_OUTBOUND_LIMIT - 10)]
    first, second, third = subject(), subject(), subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(anna.address, PASSWORD)
        # Refused for GTUBE: not counted against the limit.
        with pytest.raises(smtplib.SMTPDataError) as spam:
            smtp.send_message(message(anna.address, many[0], subject(), body=f"{GTUBE}\n"), to_addrs=many)
        smtp.send_message(message(anna.address, many[0], first), to_addrs=many)
        # 30 recipients sent, 30 more do not fit in the 40 an hour: the whole message waits...
        with pytest.raises(smtplib.SMTPDataError) as held:
            smtp.send_message(message(anna.address, many[0], second), to_addrs=many)
        # ...uncounted: what still fits goes.
        smtp.send_message(message(anna.address, many[0], third), to_addrs=many[:10])
        # More recipients than the limit would never fit: refused, not to be tried again.
        crowd = [f"persona{i}@fuori.example" for i in range(TEST_OUTBOUND_LIMIT + 1)]
        with pytest.raises(smtplib.SMTPDataError) as never:
            smtp.send_message(message(anna.address, crowd[0], subject()), to_addrs=crowd)
    assert never.value.smtp_code == 554, never.value
    assert f"at most {TEST_OUTBOUND_LIMIT})".encode() in never.value.smtp_error, never.value
    assert spam.value.smtp_code == 554, spam.value
    assert held.value.smtp_code == 451, held.value
    assert b"4.7.1" in held.value.smtp_error and b"riprova" in held.value.smtp_error, held.value
    assert all(mail.sink.wait_for(rcpt, first) for rcpt in many)
    assert mail.sink.wait_for(many[9], third)
    assert not [m for m in mail.sink.messages if m.message["Subject"] == second]

    # The limit is anna's own: bruno sends, and mail from outside still reaches anna.
    other = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(bruno.address, PASSWORD)
        smtp.send_message(message(bruno.address, many[0], other), to_addrs=many)
    assert mail.sink.wait_for(many[-1], other)
    arriving = subject()
    from_internet(
        mail,
        "cliente@esterno.example",
        anna.address,
        message("cliente@esterno.example", anna.address, arriving),
    )
    wait_in_inbox(mail, anna.address, arriving)


# --- the staff health page's check ------------------------------------------------------------


def test_health_checks_rspamd_s_controller_only_when_configured(mail, app):
    from app.services import health
    from tests.integration.mailservers import free_port

    saved = app.config.get("RSPAMD_CONTROLLER_URL")
    try:
        app.config["RSPAMD_CONTROLLER_URL"] = ""
        assert health.check_rspamd(2) is None
        assert "rspamd" not in [c.name for c in health.report().checks]

        app.config["RSPAMD_CONTROLLER_URL"] = mail.rspamd_controller_url
        up = health.check_rspamd(2)
        assert up.ok and up.detail.endswith("pong") and up.ms is not None
        assert next(c for c in health.report().checks if c.name == "rspamd").ok

        # Down: nothing listens there; the check says so at once instead of hanging.
        app.config["RSPAMD_CONTROLLER_URL"] = f"http://{HOST}:{free_port()}"
        down = health.check_rspamd(2)
        assert not down.ok and "refused" in down.detail.lower(), down.detail
        # Something else answers there (rspamd's milter port does not speak HTTP).
        app.config["RSPAMD_CONTROLLER_URL"] = f"http://{HOST}:{mail.ports['smtp']}"
        assert not health.check_rspamd(2).ok
        app.config["RSPAMD_CONTROLLER_URL"] = "file:///etc/passwd"
        assert not health.check_rspamd(2).ok
    finally:
        app.config["RSPAMD_CONTROLLER_URL"] = saved


def test_health_checks_rspamd_s_milter_and_its_redis(mail, app, monkeypatch):
    """The milter Postfix hands the mail to accepts connections on its socket; the Redis rspamd
    reads answers."""
    from app.services import health
    from tests.integration.mailservers import free_port

    monkeypatch.setitem(app.config, "RSPAMD_CONTROLLER_URL", mail.rspamd_controller_url)
    monkeypatch.setitem(app.config, "RSPAMD_MILTER_PORT", 0)
    monkeypatch.setitem(app.config, "RSPAMD_MILTER_SOCKET", str(mail.milter_socket))
    monkeypatch.setitem(app.config, "RSPAMD_REDIS_URL", REDIS_URL)
    checks = {c.name: c for c in health.report().checks}
    assert checks["rspamd"].ok and checks["rspamd_milter"].ok and checks["rspamd_redis"].ok
    assert checks["rspamd_milter"].detail == f"unix:{mail.milter_socket}: connected"

    # rspamd's milter is not where the panel looks: a problem of its own, the controller still up.
    monkeypatch.setitem(app.config, "RSPAMD_MILTER_SOCKET", str(mail.milter_socket.parent / "altro.sock"))
    monkeypatch.setitem(app.config, "RSPAMD_REDIS_URL", f"redis://:Segreto-9@127.0.0.1:{free_port()}/0")
    checks = {c.name: c for c in health.report().checks}
    assert checks["rspamd"].ok
    assert not checks["rspamd_milter"].ok and "no such file" in checks["rspamd_milter"].detail.lower()
    assert not checks["rspamd_redis"].ok and "Segreto" not in checks["rspamd_redis"].detail


def test_only_postfix_s_group_reaches_the_milter_socket(mail):
    """Another local user cannot talk milter to rspamd (it could ask for a DKIM signature of any
    customer's domain by claiming a login in the milter's macros); Postfix's smtpd, running as
    postfix with its primary group only, can."""
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
        "else:\n"
        "    print('connected')\n"
    )

    def connect_as(user: str, group: str) -> str:
        return subprocess.run(
            ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups", sys.executable, "-c", probe,
             str(mail.milter_socket)],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip

    assert connect_as("postfix", "postfix") == "connected"
    assert connect_as("nobody", "nogroup") == "PermissionError"
