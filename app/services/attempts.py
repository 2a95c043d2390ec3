"""Limits on password and code guessing, shared by every process through Redis.

Each check counts against two sliding windows: the client address (one address
trying many accounts) and the account (many addresses trying one account). An
attempt is counted while it runs, so parallel guesses cannot slip past the limit;
a successful one is then taken back, so only failures add up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import gettext as _
from limits import parse
from redis.exceptions import RedisError

from app.services.errors import DomainError


class TooManyAttempts(DomainError):
    status = 429

    def __init__(self, retry_after: int):
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            _(
                "Troppi tentativi non riusciti: per sicurezza l'accesso è bloccato. "
                "Riprova tra %(m)s minuti.",
                m=minutes,
            )
            if minutes > 1
            else _(
                "Troppi tentativi non riusciti: per sicurezza l'accesso è bloccato. Riprova tra un minuto."
            )
        )
        self.retry_after = retry_after


class LimitsUnavailable(DomainError):
    """Redis cannot be reached: sign-ins wait rather than go unlimited."""

    status = 503

    def __init__(self):
        super().__init__(_("L'accesso è temporaneamente non disponibile. Riprova tra qualche minuto."))


@dataclass
class Attempt:
    """One guess in flight: `succeeded()` takes it back, otherwise it stays counted."""

    keys: list[str] = field(default_factory=list)
    member: str = ""

    def succeeded(self) -> None:
        if not self.keys:
            return
        try:
            pipe = _redis().pipeline()
            for key in self.keys:
                pipe.zrem(key, self.member)
            pipe.execute()
        except RedisError:
            # The check passed; at worst this success counts as a failure until the window ends.
            current_app.logger.warning("could not take back a sign-in attempt", exc_info=True)


def _redis():
    from app.redis import get_redis

    return get_redis()


def _enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def _account_key(account: str) -> str:
    digest = hashlib.sha256(account.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]
    return f"panel:attempts:account:{digest}"


def address_bucket(address: str | None) -> str:
    """Whom a client address counts as: itself, or for IPv6 its /64 ("unknown" if unreadable)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    # One IPv6 subscriber holds a whole /64: counting single addresses would let it rotate freely.
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _address_key(address: str | None) -> str:
    return f"panel:attempts:address:{address_bucket(address)}"


def begin(account: str, address: str | None) -> Attempt:
    """Count an attempt at `account`'s password or code from `address`; TooManyAttempts when over."""
    if not _enabled():
        return Attempt()
    windows = [
        (_address_key(address), parse(current_app.config["LOGIN_RATE_LIMIT"])),
        (_account_key(account), parse(current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"])),
    ]
    now = time.time()
    member = f"{now:.6f}:{secrets.token_hex(4)}"
    try:
        results = _count(windows, member, now)
    except RedisError:
        current_app.logger.error("sign-in limits: Redis unreachable", exc_info=True)
        raise LimitsUnavailable() from None
    retry_after = 0
    for i, (_key, limit) in enumerate(windows):
        count, oldest = results[i * 5 + 2], results[i * 5 + 3]
        if count > limit.amount:
            oldest_at = oldest[0][1] if oldest else now
            retry_after = max(retry_after, int(oldest_at + limit.get_expiry() - now) + 1)
    keys = [key for key, _limit in windows]
    if retry_after:
        # A refused attempt is not counted: waiting is enough to get back in.
        Attempt(keys, member).succeeded()
        raise TooManyAttempts(retry_after)
    return Attempt(keys, member)


def _count(windows, member: str, now: float) -> list:
    pipe = _redis().pipeline()
    for key, limit in windows:
        seconds = limit.get_expiry()
        pipe.zremrangebyscore(key, "-inf", now - seconds)
        pipe.zadd(key, {member: now})
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        pipe.expire(key, seconds)
    return pipe.execute()
