"""The doveadm HTTP API client against the real Dovecot of tests/integration/mailservers.py."""

from __future__ import annotations

import base64
import socket

import pytest

from app.mailserver.doveadm import Doveadm, DoveadmError
from tests import factories
from tests.integration.mailservers import DOVEADM_API_KEY, HOST


def test_the_client_runs_a_command_with_the_key(servers, app):
    box = factories.mailbox(factories.customer(domain="cliente-doveadm.example"), "anna")
    client = Doveadm(servers.doveadm_url, DOVEADM_API_KEY, 20.0)
    assert client.commands()
    rows = client.run("quotaGet", {"allUsers": True})
    assert {row["username"] for row in rows} >= {box.address}


def test_a_refused_key_is_one_error_whose_message_never_holds_the_key(servers):
    key = DOVEADM_API_KEY + "-Segreta-42"
    # Dovecot answers a wrong key with 401, or (2.3 on Debian) lets the request time out.
    client = Doveadm(servers.doveadm_url, key, 3.0)
    for call in (client.commands, lambda: client.run("quotaGet", {"allUsers": True})):
        with pytest.raises(DoveadmError) as e:
            call()
        message = str(e.value)
        assert message.startswith("doveadm ")
        assert key not in message and base64.b64encode(key.encode()).decode() not in message
        assert key not in repr(client)


def test_an_unreachable_doveadm_is_the_same_error_naming_where_it_looked(servers):
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    url = f"http://{HOST}:{port}/doveadm/v1"
    with pytest.raises(DoveadmError, match="doveadm unreachable at " + url):
        Doveadm(url, DOVEADM_API_KEY, 3.0).commands()
    with pytest.raises(DoveadmError, match="not configured"):
        Doveadm("", DOVEADM_API_KEY, 3.0).commands()
