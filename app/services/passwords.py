"""Passwords: the policy every door applies, and argon2id hashing in the form Dovecot verifies.

One core per hash (parallelism=1), and a bounded number of hashes per customer at once.
"""

from __future__ import annotations

import functools
import math
import secrets
import threading
import time
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from redis.exceptions import RedisError

from app.services.errors import DomainError, ValidationError

DOVECOT_SCHEME = "{ARGON2ID}"
MIN_LENGTH = 8
STAFF_MIN_LENGTH = 12  # staff can read and change every customer's mail
MAX_LENGTH = 128
COMMON_COUNT = 10_000


class HashingBusy(DomainError):
    """This customer already has as many passwords being hashed as it may: try again shortly."""

    status = 429


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(
        time_cost=cfg["ARGON2_TIME_COST"], memory_cost=cfg["ARGON2_MEMORY_COST"], parallelism=1
    )


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords, most common first in zxcvbn's ranked list (lower case).

    Read from the installed package, so the list is neither copied here nor fetched at run time.
    """
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_COUNT])


def check_strength(
    password: object, field: str = "password", *, address: object = None, staff: bool = False
) -> str:
    """The password policy, for mailboxes and panel users alike, from every door.

    address: the mailbox's or the user's address, which the password may not repeat.
    """
    if not isinstance(password, str) or not password:
        raise ValidationError.one(field, _("Inserisci una password."))
    minimum = STAFF_MIN_LENGTH if staff else MIN_LENGTH
    if len(password) < minimum:
        if staff:
            message = _("La password del supporto tecnico deve avere almeno %(n)d caratteri.", n=minimum)
        else:
            message = _("La password deve avere almeno %(n)d caratteri.", n=minimum)
        raise ValidationError.one(field, message)
    if len(password) > MAX_LENGTH:
        raise ValidationError.one(field, _("La password può avere al massimo %(n)d caratteri.", n=MAX_LENGTH))
    if any(ord(c) < 32 for c in password):
        raise ValidationError.one(field, _("La password contiene caratteri non ammessi."))
    folded = password.casefold()
    if folded in common_passwords():
        raise ValidationError.one(
            field, _("È una delle password più usate, la prima che un attaccante prova: scegline un'altra.")
        )
    if isinstance(address, str) and address.strip():
        whole = address.strip().casefold()
        if folded in {whole, whole.partition("@")[0]}:
            raise ValidationError.one(
                field, _("La password non può essere l'indirizzo email né la parte prima della @.")
            )
    return password


# Hashing is bounded per customer: one customer creating hundreds of mailboxes at once (the API,
# a script, many browser tabs) gets ARGON2_PER_CUSTOMER hashes at a time, across every process
# that shares the panel's Redis; its next one waits for a slot (then gets a 429) while another
# customer's hash goes straight through. Two gates: a semaphore in the process (threads) and a
# sorted set per customer in Redis (processes and hosts). A slot whose holder died (a killed
# worker) stops counting after ARGON2_SLOT_HOLD_SECONDS (60), far more than one hash takes even
# on a loaded host. Without a configured
# REDIS_URL, or with Redis unreachable, only the process's own gate holds: a password change
# never fails because the shared counter is away.
_slots: dict[tuple[object, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _slot(customer_id: int | None) -> threading.BoundedSemaphore:
    key = (customer_id, current_app.config["ARGON2_PER_CUSTOMER"])
    with _slots_lock:
        if key not in _slots:
            _slots[key] = threading.BoundedSemaphore(key[1])
        return _slots[key]


def _busy() -> HashingBusy:
    return HashingBusy(
        _("Troppe password in elaborazione per questo cliente in questo momento: riprova tra poco.")
    )


def shared_key(customer_id: int | None) -> str:
    return f"panel:hashing:{customer_id if customer_id is not None else 'staff'}"


def _take_shared(customer_id: int | None, deadline: float):
    """A slot in the customer's Redis set: (connection, key, member), or None without Redis."""
    if not current_app.config.get("REDIS_URL"):
        return None
    from app.redis import get_redis

    key, member, limit = (
        shared_key(customer_id),
        secrets.token_hex(8),
        current_app.config["ARGON2_PER_CUSTOMER"],
    )
    hold = current_app.config["ARGON2_SLOT_HOLD_SECONDS"]
    try:
        conn = get_redis()
        while True:
            now = time.time()
            pipe = conn.pipeline()
            pipe.zremrangebyscore(key, "-inf", now - hold)
            pipe.zadd(key, {member: now})
            pipe.zrank(key, member)
            pipe.expire(key, math.ceil(hold))
            if pipe.execute()[2] < limit:
                return conn, key, member
            conn.zrem(key, member)
            if time.monotonic() >= deadline:
                raise _busy()
            time.sleep(0.05)
    except RedisError:
        current_app.logger.warning("password hashing: Redis unreachable, bounding in this process only")
        return None


@contextmanager
def hashing_slot(customer_id: int | None):
    """Hold one of the customer's hashing slots (staff and the provider share the None slot)."""
    wait = current_app.config["ARGON2_WAIT_SECONDS"]
    deadline = time.monotonic() + wait
    slot = _slot(customer_id)
    if not slot.acquire(timeout=wait):
        raise _busy()
    try:
        shared = _take_shared(customer_id, deadline)
        try:
            yield
        finally:
            if shared:
                conn, key, member = shared
                try:
                    conn.zrem(key, member)
                except RedisError:
                    pass  # it stops counting after ARGON2_SLOT_HOLD_SECONDS
    finally:
        slot.release()


def hash_mailbox_password(password: str, customer_id: int | None = None) -> str:
    return DOVECOT_SCHEME + hash_user_password(password, customer_id)


def hash_user_password(password: str, customer_id: int | None = None) -> str:
    with hashing_slot(customer_id):
        return _hasher().hash(password)


def verify_user_password(stored: str, password: str) -> bool:
    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_mailbox_password(stored: str, password: str) -> bool:
    if not stored.startswith(DOVECOT_SCHEME):
        return False
    return verify_user_password(stored[len(DOVECOT_SCHEME) :], password)
