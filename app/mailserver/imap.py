"""IMAP connections for the migration engine (imapclient).

An `Endpoint` says where and as whom to log in: host, port, security
("ssl", "starttls" or "none"), certificate verification (on by default),
username and password, and optionally a Dovecot master user, with which
the login name becomes "mailbox*master" (auth_master_user_separator) so a
mailbox of ours is written without its owner's password.

`connect` retries what a network or a busy server does (refused, reset,
timed out, "try again later") with exponential backoff; a refused login
is not retried. Errors leave as `ImapError` with a message that never
contains the password.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
import time
from dataclasses import dataclass, field

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

# imaplib refuses a line over 1,000,000 bytes: a SEARCH ALL of a folder of some 140,000
# messages is one such line. 20 MB holds millions of UIDs, and still bounds what a hostile
# server can make us keep in memory for one line.
imaplib._MAXLINE = max(imaplib._MAXLINE, 20_000_000)

SECURITIES = ("ssl", "starttls", "none")
MASTER_SEPARATOR = "*"
# Errors worth another try after a pause: the connection dropped or the server is busy.
RETRYABLE = (OSError, socket.timeout, IMAPClientAbortError, ssl.SSLError)


class ImapError(Exception):
    """A connection or login failure, worded for a person; `retryable` for a dropped connection."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    security: str = "ssl"
    verify: bool = True
    master_user: str | None = None
    ca_file: str | None = None
    timeout: float = 60.0

    def __post_init__(self):
        if self.security not in SECURITIES:
            raise ValueError(f"security must be one of {SECURITIES}")
        for what in ("username", "password", "master_user"):
            value = getattr(self, what) or ""
            if any(c in value for c in "\r\n\0"):
                # A line break would end the IMAP command: what follows would be a command of its own.
                raise ValueError(f"the {what} may not contain line breaks or NUL")

    @property
    def login_name(self) -> str:
        if self.master_user:
            return f"{self.username}{MASTER_SEPARATOR}{self.master_user}"
        return self.username

    def describe(self) -> str:
        return f"{self.login_name}@{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def busy(error: Exception) -> bool:
    """A server's "try again later" (RFC 5530 UNAVAILABLE, INUSE)."""
    text = str(error).upper()
    return "UNAVAILABLE" in text or "TRY AGAIN" in text or "INUSE" in text


def _certificate_refused(endpoint: Endpoint, error: ssl.SSLCertVerificationError) -> ImapError:
    # Not retried: a certificate does not get better by waiting.
    return ImapError(
        f"{endpoint.host}:{endpoint.port}: certificate refused ({error.verify_message or error})"
    )


def connect_once(endpoint: Endpoint) -> IMAPClient:
    """One attempt: connect, secure as asked, log in. Raises ImapError."""
    try:
        client = IMAPClient(
            endpoint.host,
            port=endpoint.port,
            ssl=endpoint.security == "ssl",
            ssl_context=endpoint.tls_context() if endpoint.security == "ssl" else None,
            timeout=endpoint.timeout,
        )
    except ssl.SSLCertVerificationError as e:
        raise _certificate_refused(endpoint, e) from None
    except RETRYABLE as e:
        raise ImapError(f"{endpoint.host}:{endpoint.port}: {e}", retryable=True) from None
    try:
        if endpoint.security == "starttls":
            if not client.has_capability("STARTTLS"):
                raise ImapError(f"{endpoint.host}:{endpoint.port} does not offer STARTTLS")
            client.starttls(endpoint.tls_context())
        _login(client, endpoint)
        # Dates as the server gives them (with their zone), not converted to local time.
        client.normalise_times = False
        return client
    except LoginError as e:
        with contextlib.suppress(Exception):
            client.shutdown()
        detail = str(e).replace(endpoint.password, "***") if endpoint.password else str(e)
        raise ImapError(f"{endpoint.describe()}: login refused ({detail})", retryable=busy(e)) from None
    except ImapError:
        with contextlib.suppress(Exception):
            client.shutdown()
        raise
    except ssl.SSLCertVerificationError as e:
        with contextlib.suppress(Exception):
            client.shutdown()
        raise _certificate_refused(endpoint, e) from None
    except (*RETRYABLE, IMAPClientError, UnicodeError) as e:
        with contextlib.suppress(Exception):
            client.shutdown()
        retry = isinstance(e, RETRYABLE) or busy(e)
        raise ImapError(f"{endpoint.describe()}: {_redacted(e, endpoint)}", retryable=retry) from None


def _login(client: IMAPClient, endpoint: Endpoint) -> None:
    """LOGIN, or for a name or password beyond ASCII (LOGIN's strings are ASCII) AUTHENTICATE
    PLAIN, which carries UTF-8; a master user is then the authentication identity, and the
    mailbox the authorization identity (Dovecot's master login)."""
    if endpoint.password.isascii() and endpoint.login_name.isascii():
        client.login(endpoint.login_name, endpoint.password)
    elif endpoint.master_user:
        client.plain_login(endpoint.master_user, endpoint.password, authorization_identity=endpoint.username)
    else:
        client.plain_login(endpoint.username, endpoint.password)


def _redacted(error: Exception, endpoint: Endpoint) -> str:
    if isinstance(error, UnicodeError):
        return "a name or password the server cannot take"
    text = str(error)
    return text.replace(endpoint.password, "***") if endpoint.password else text


def connect(
    endpoint: Endpoint, attempts: int = 5, first_pause: float = 1.0, max_pause: float = 30.0
) -> IMAPClient:
    """Connect and log in, retrying a dropped or busy server with backoff (1 s, 2 s, 4 s...)."""
    pause = first_pause
    for attempt in range(attempts):
        try:
            return connect_once(endpoint)
        except ImapError as e:
            if not e.retryable or attempt == attempts - 1:
                raise
        time.sleep(pause)
        pause = min(pause * 2, max_pause)
    raise AssertionError("unreachable")


def close(client: IMAPClient | None) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception):
        client.logout()
    with contextlib.suppress(Exception):
        client.shutdown()
