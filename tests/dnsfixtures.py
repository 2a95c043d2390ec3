"""The DNS server the tests run against (tests/dnsserver.py), registered in tests/conftest.py.

One server per test process (per xdist worker), on a random port; `dns` hands it to a test
emptied and with every address behaving normally again.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.dnsserver import AddressUnavailable, DnsServer


@pytest.fixture(scope="session")
def dns_server():
    """The DNS server of this test process (of this xdist worker): a random port, data kept between tests."""
    try:
        server = DnsServer().start()
    except AddressUnavailable as e:
        pytest.fail(str(e), pytrace=False)  # a machine without 127.0.0.2+ is not a reason to skip
    yield server
    server.stop()


@pytest.fixture
def dns(dns_server) -> DnsServer:
    """The DNS server, empty: `dns.config` holds the app settings that point at it.

    The name hides the dnspython package inside a test: import what the test needs from it
    (`from dns import message`) or under another name.
    """
    dns_server.reset()
    yield dns_server
    dns_server.reset()


DNS_SETTINGS = (
    "DNS_NAMESERVERS",
    "DNS_AUTHORITATIVE_PORT",
    "DNS_TIMEOUT",
    "DNS_CHECK_COOLDOWN",
    "DNS_ALLOW_PRIVATE_SERVERS",
)


@contextlib.contextmanager
def asking(config, server: DnsServer, timeout: float = 1.0):
    """An app's config pointed at the test DNS server (loopback name servers allowed, short
    timeouts, every "check now" a real one) for the block; put back as it was after. One second: long
    enough for the test server to answer on a loaded machine, short for the servers made silent."""
    saved = {k: config.get(k) for k in DNS_SETTINGS}
    config.update(server.config, DNS_TIMEOUT=timeout, DNS_CHECK_COOLDOWN=0, DNS_ALLOW_PRIVATE_SERVERS=True)
    try:
        yield server
    finally:
        config.update(saved)
