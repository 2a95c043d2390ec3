"""A real SMTP server on a loopback port that keeps what it receives (aiosmtpd)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class Received:
    envelope_to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        # A long subject is folded before its first word; mail clients show it without that space.
        return str(self.message["Subject"]).strip()

    @property
    def body(self) -> str:
        return self.message.get_body(("plain",)).get_content()


class _Handler:
    def __init__(self):
        self.received: list[Received] = []

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append(Received(list(envelope.rcpt_tos), msg))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    def __init__(self):
        self.port = free_port()
        self._handler = _Handler()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    @property
    def received(self) -> list[Received]:
        return self._handler.received

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
