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
import socket
import ssl
import time
from dataclasses import dataclass, field

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

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
        client.login(endpoint.login_name, endpoint.password)
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
    except (*RETRYABLE, IMAPClientError) as e:
        with contextlib.suppress(Exception):
            client.shutdown()
        retry = isinstance(e, RETRYABLE) or busy(e)
        raise ImapError(f"{endpoint.describe()}: {e}", retryable=retry) from None


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
