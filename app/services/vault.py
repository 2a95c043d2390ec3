"""Secrets the panel must keep for a while (an import's passwords until it ends), encrypted.

Fernet (AES-128-CBC with an HMAC-SHA256) under the keys of DATA_KEYS: the first encrypts,
every one decrypts, so a key is rotated by putting the new one first and dropping the old
one once nothing sealed with it is left. A token that was altered, or sealed with a key no
longer configured, is refused (VaultError), never decrypted into something else.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class VaultError(Exception):
    """A sealed value that cannot be opened with the configured keys."""


_cache: dict[str, MultiFernet] = {}


def _keys() -> MultiFernet:
    configured = current_app.config["DATA_KEYS"]
    fernet = _cache.get(configured)
    if fernet is None:
        keys = [k.strip() for k in configured.split(",") if k.strip()]
        try:
            fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise RuntimeError(
                "DATA_KEYS holds a key that is not a Fernet key (32 bytes, url-safe base64)."
            ) from None
        _cache[configured] = fernet
    return fernet


def seal(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _keys().encrypt(data)


def unseal(token: bytes) -> bytes:
    try:
        return _keys().decrypt(bytes(token))
    except (InvalidToken, TypeError):
        raise VaultError("the sealed value cannot be opened with the configured DATA_KEYS") from None


def unseal_text(token: bytes) -> str:
    return unseal(token).decode()
