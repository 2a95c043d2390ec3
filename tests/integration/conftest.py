"""Shared fixtures of the integration tests."""

from __future__ import annotations

import pytest

from tests.conftest import CI
from tests.integration.mailservers import missing_reason, start_mail_servers


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
