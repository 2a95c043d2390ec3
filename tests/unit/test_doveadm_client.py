"""The doveadm client's errors leave the key out even when a library's message carries it."""

from __future__ import annotations

import base64
import socket

import pytest

from app.mailserver.doveadm import Doveadm, DoveadmError


def test_a_key_echoed_in_a_failure_is_replaced():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = "chiave-Segreta-99"
    encoded = base64.b64encode(key.encode()).decode()
    # An operator who pasted the key into the URL: the "unreachable" message names the URL.
    client = Doveadm(f"http://127.0.0.1:{port}/doveadm/v1?{key}&{encoded}", key, 3.0)
    with pytest.raises(DoveadmError) as e:
        client.commands()
    assert "doveadm unreachable at" in str(e.value)
    assert key not in str(e.value) and encoded not in str(e.value) and "***" in str(e.value)
