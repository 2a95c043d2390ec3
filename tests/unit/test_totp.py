"""TOTP codes against RFC 6238 (Appendix B, SHA-1), not only against the panel's own generator."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from app.services import totp

# RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
# (Unix time, the 8-digit code of the RFC's table)
RFC_SHA1 = (
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
)


@pytest.mark.parametrize(("unix_time", "code"), RFC_SHA1)
def test_the_six_digit_code_is_the_rfc_code_s_last_six_digits(unix_time, code):
    assert totp.DIGITS == 6 and totp.STEP_SECONDS == 30
    assert totp.code_at(RFC_SECRET, totp.current_step(unix_time)) == code[-6:]


@pytest.mark.parametrize(("unix_time", "code"), RFC_SHA1)
def test_with_eight_digits_the_codes_are_the_rfc_table(unix_time, code, monkeypatch):
    monkeypatch.setattr(totp, "DIGITS", 8)
    assert totp.code_at(RFC_SECRET, totp.current_step(unix_time)) == code


def test_the_steps_are_the_rfc_ones():
    # The RFC's T column, in hexadecimal: 59 s is step 1, 1111111109 s step 0x23523EC.
    assert totp.current_step(59) == 1
    assert totp.current_step(1111111109) == 0x23523EC
    assert totp.current_step(1111111111) == 0x23523ED
    assert totp.current_step(2000000000) == 0x3F940AA


def test_a_secret_typed_in_lower_case_or_without_padding_gives_the_same_codes():
    assert totp.code_at(RFC_SECRET.lower().rstrip("="), totp.current_step(59)) == "287082"


def test_the_provisioning_uri_is_the_key_uri_format_authenticator_apps_read():
    user = SimpleNamespace(email="mario.rossi@cliente.example", totp_secret=RFC_SECRET)
    uri = totp.provisioning_uri(user, "Collabra Professional Email")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    # Label and issuer percent-encoded (RFC 3986): a "+" would be shown as a plus by some apps.
    assert parts.path == "/Collabra%20Professional%20Email:mario.rossi@cliente.example"
    assert unquote(parts.path[1:]) == "Collabra Professional Email:mario.rossi@cliente.example"
    assert "+" not in uri
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {
        "secret": [RFC_SECRET],
        "issuer": ["Collabra Professional Email"],
        "digits": ["6"],
        "period": ["30"],
    }
