"""Shared fixtures of the integration tests."""

from __future__ import annotations

import pytest
import redis

from app import jobs
from tests.conftest import CI, TEST_REDIS_URL
from tests.integration.mailservers import missing_reason, start_mail_servers

# A Redis database per xdist worker, emptied around each test that uses it.
REDIS_URL = TEST_REDIS_URL


@pytest.fixture
def connection():
    """The real Redis the jobs and the queue use in these tests."""
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as e:
        if CI:
            pytest.fail(f"CI=true: Redis unreachable at {REDIS_URL}: {e}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {e}")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def worker_app(app):
    """Jobs run by a worker in this process use the test's app (and so its database)."""
    jobs.use_app(app)
    yield app
    jobs.use_app(None)


@pytest.fixture(scope="module")
def servers(_app, database_url):
    """Throwaway Dovecot and Postfix on loopback, from `flask mailserver config`, once per module and backend.

    Under CI=true a missing server is a failure, elsewhere a skip with the reason.
    """
    reason = missing_reason()
    if reason:
        if CI:
            pytest.fail(f"CI=true: mail servers unavailable: {reason}")
        pytest.skip(reason)
    with _app.app_context():
        running = start_mail_servers(_app, database_url)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def servers_rspamd(_app, database_url, dns_server):
    """Throwaway Dovecot, Postfix and rspamd (Postfix's milter) on loopback, once per module and backend.

    Apart from `servers`: only the tests that ask for it pay for rspamd's start. rspamd reads
    the tests' Redis (the DKIM keys) and asks the test DNS server (SPF, DKIM, DMARC).
    """
    reason = missing_reason(rspamd=True)
    if reason:
        if CI:
            pytest.fail(f"CI=true: mail servers unavailable: {reason}")
        pytest.skip(reason)
    with _app.app_context():
        running = start_mail_servers(
            _app, database_url, rspamd_redis_url=REDIS_URL, rspamd_dns=dns_server.config["DNS_NAMESERVERS"]
        )
    yield running
    running.stop()
