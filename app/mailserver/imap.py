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

What one server's answer may make us hold is bounded per connection
(`response_limits`): each literal it announces (imaplib would read it whole,
allocating the announced size at once) and everything read between two
commands we send. Over a bound: `ResponseTooLarge`, the connection is
unusable and is closed by the caller.
"""

from __future__ import annotations

import ast
import contextlib
import imaplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask_babel import gettext as _
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

# imaplib refuses a line over 1,000,000 bytes: a SEARCH ALL of a folder of some 140,000
# messages is one such line. 20 MB holds millions of UIDs, and still bounds what a hostile
# server can make us keep in memory for one line.
imaplib._MAXLINE = max(imaplib._MAXLINE, 20_000_000)

# What one answer may make us hold, unless a caller says otherwise (`response_limits`): a literal
# (a folder name, a header block) of 1 MiB, and 64 MiB read between two commands we send (a
# metadata FETCH of 1,000 messages, a LIST of many folders, a SEARCH of millions of UIDs).
LITERAL_LIMIT = 1024 * 1024
RESPONSE_LIMIT = 64 * 1024 * 1024

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


class ResponseTooLarge(imaplib.IMAP4.abort):
    """The server announced or sent more than a response may hold: the connection is dropped.
    (imaplib re-raises it as a plain `abort`: `response_too_large(client)` tells.)"""


@dataclass
class _Guard:
    literal: int = LITERAL_LIMIT
    response: int = RESPONSE_LIMIT
    used: int = 0
    exceeded: bool = False

    def refuse(self, message: str) -> ResponseTooLarge:
        self.exceeded = True
        return ResponseTooLarge(message)


def response_too_large(client: IMAPClient | None) -> bool:
    """Whether this connection was dropped for an answer over its bounds."""
    guard = getattr(client, "_response_guard", None)
    return bool(guard and guard.exceeded)


def _install_guard(client: IMAPClient) -> _Guard:
    """Bound what the connection reads: imaplib reads a literal whole with `read(size)` (a
    buffered read of `size` allocates it at once) and every line with `readline`; all we send
    goes through `send`, which starts a new answer's count."""
    conn = client._imap
    guard = _Guard()
    read, readline, send = conn.read, conn.readline, conn.send

    def guarded_read(size: int) -> bytes:
        if size > guard.literal:
            raise guard.refuse(
                _(
                    "il server ha annunciato un blocco di %(size)d byte (limite %(limit)d)",
                    size=size,
                    limit=guard.literal,
                )
            )
        guard.used += size
        if guard.used > guard.response:
            raise guard.refuse(_("la risposta del server supera %(n)d byte", n=guard.response))
        return read(size)

    def guarded_readline() -> bytes:
        line = readline()
        guard.used += len(line)
        if guard.used > guard.response:
            raise guard.refuse(_("la risposta del server supera %(n)d byte", n=guard.response))
        return line

    def guarded_send(data: bytes) -> None:
        guard.used = 0
        send(data)

    conn.read, conn.readline, conn.send = guarded_read, guarded_readline, guarded_send
    client._response_guard = guard  # type: ignore[attr-defined]
    return guard


@contextlib.contextmanager
def response_limits(client: IMAPClient, literal: int, response: int) -> Iterator[None]:
    """Other bounds for the commands sent inside the block (a FETCH of bodies: up to the largest
    message copied)."""
    guard = getattr(client, "_response_guard", None) or _install_guard(client)
    before = (guard.literal, guard.response)
    guard.literal, guard.response = literal, response
    try:
        yield
    finally:
        guard.literal, guard.response = before


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
        _(
            "%(where)s: certificato rifiutato (%(why)s)",
            where=f"{endpoint.host}:{endpoint.port}",
            why=error.verify_message or error,
        )
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
        raise ImapError(
            _(
                "%(where)s: connessione non riuscita (%(error)s)",
                where=f"{endpoint.host}:{endpoint.port}",
                error=e,
            ),
            retryable=True,
        ) from None
    _install_guard(client)
    try:
        if endpoint.security == "starttls":
            if not client.has_capability("STARTTLS"):
                raise ImapError(_("%(where)s non offre STARTTLS", where=f"{endpoint.host}:{endpoint.port}"))
            client.starttls(endpoint.tls_context())
        _login(client, endpoint)
        # Dates as the server gives them (with their zone), not converted to local time.
        client.normalise_times = False
        return client
    except LoginError as e:
        with contextlib.suppress(Exception):
            client.shutdown()
        detail = _server_words(e)
        detail = detail.replace(endpoint.password, "***") if endpoint.password else detail
        raise ImapError(
            _("%(who)s: accesso rifiutato (%(detail)s)", who=endpoint.describe(), detail=detail),
            retryable=busy(e),
        ) from None
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
        retry = (isinstance(e, RETRYABLE) and not response_too_large(client)) or busy(e)
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


def _server_words(error: Exception) -> str:
    """A server's answer as text: imapclient gives it as the repr of bytes (b'[AUTHENTICATIONFAILED] ...')."""
    text = str(error)
    if len(text) > 2 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(text)
            if isinstance(value, bytes):
                return value.decode("utf-8", "replace")
    return text


def _redacted(error: Exception, endpoint: Endpoint) -> str:
    if isinstance(error, UnicodeError):
        return _("un nome o una password che il server non accetta")
    text = _server_words(error)
    return text.replace(endpoint.password, "***") if endpoint.password else text


def connect(
    endpoint: Endpoint,
    attempts: int = 5,
    first_pause: float = 1.0,
    max_pause: float = 30.0,
    stop: threading.Event | None = None,
) -> IMAPClient:
    """Connect and log in, retrying a dropped or busy server with backoff (1 s, 2 s, 4 s...).
    `stop`: an event that cuts a pause short (the last error is raised)."""
    pause = first_pause
    for attempt in range(attempts):
        try:
            return connect_once(endpoint)
        except ImapError as e:
            if not e.retryable or attempt == attempts - 1:
                raise
            if stop is not None and stop.wait(pause):
                raise
        if stop is None:
            time.sleep(pause)
        pause = min(pause * 2, max_pause)
    raise AssertionError("unreachable")


def abort(client: IMAPClient | None) -> None:
    """Cut the connection from another thread: a read or write blocked on it ends at once
    with an error."""
    if client is None:
        return
    with contextlib.suppress(Exception):
        client._imap.sock.shutdown(socket.SHUT_RDWR)


def close(client: IMAPClient | None) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception):
        client.logout()
    with contextlib.suppress(Exception):
        client.shutdown()
