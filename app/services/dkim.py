"""DKIM keys per domain: made, published, switched, retired; and what rspamd reads from Redis.

The rules (docs/mailserver.md, "DKIM keys"):

- every active domain has one `active` key (RSA 2048, selector `s` + YYYYMM, a letter after it
  when taken: `s202612b`), made when the domain becomes active (domains.apply_domain,
  approve_domain, verify_domain call `ensure_key`) or by `flask dkim ensure` / the cron for
  domains active before. The **first** key signs at once: nothing signed for the domain
  before, and a signature whose TXT record is not published yet is judged by receivers like
  no signature at all (RFC 6376 6.1, DMARC falls back on SPF), so signing early costs nothing,
  while holding the key back would also keep the domain out of `dkim_selectors`, the list of
  our domains rspamd protects from strangers using their names;
- a **rotation** (staff) makes a `pending` key: its TXT record is shown to publish, nothing
  signs with it and it is not in Redis. When the DNS check finds that record at the domain's
  authoritative servers, matching, the key becomes `active` (written to `dkim_keys` first,
  then `dkim_selectors` switches: the next message is signed with it) and the old one
  `retiring`: its private key stays in `dkim_keys` only DKIM_KEY_GRACE_MINUTES after the switch
  (a message that read the old selector just before it is signed with it), then leaves Redis
  and its sealed copy the database (the cron's `retire_due`); its record is still needed by
  receivers until `retire_after` (DKIM_RETIRE_HOURS, or the record's TTL if longer); then
  `retired`;
- private keys are sealed with the vault (DATA_KEYS), unsealed only to be written to rspamd's
  Redis (RSPAMD_REDIS_URL), never logged, never shown; `sync_redis` writes both hashes again
  from the database (idempotent), and a domain that is no longer served leaves them. The full
  sync and the writes after a commit for some domains hold the same Redis lock (SYNC_LOCK) and
  read the database once they hold it: a full sync that read the database before a domain's
  commit never writes over what that commit's own write put there; a writer whose reading
  outlived the lock (LOCK_TIMEOUT) writes nothing from it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app
from flask_babel import gettext as _
from redis import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from app.extensions import db
from app.mailserver import dns as dnsclient
from app.mailserver.render import DKIM_KEYS_HASH, DKIM_SELECTORS_HASH
from app.models import Domain
from app.models.dkim import DkimKey
from app.models.mail import unicode_form
from app.services import audit, clock, dnscheck, domains, limits, vault
from app.services.access import Actor, require_staff
from app.services.errors import Conflict, DomainError

log = logging.getLogger(__name__)

KEY_BITS = 2048
DAILY = timedelta(days=1)  # an active key's record is looked at again once a day
ENSURE_BATCH = 200  # keys one cron run makes for domains without one (each takes a moment)
SIGNING = ("active", "retiring")  # the keys rspamd may need (a retiring one only for a grace)
# The writers of rspamd's two hashes take this lock (in rspamd's Redis) before they read the
# database: one at a time, each writing what the database held once it had the lock.
SYNC_LOCK = "panel:dkim:sync_lock"
LOCK_TIMEOUT = 120  # seconds: a writer that died lets the others go after this
LOCK_WAIT = 10  # seconds the write after a commit waits for the lock (else the cron's sync does it)
SYNC_LOCK_WAIT = 150  # the full sync waits longer: past any holder's LOCK_TIMEOUT
SYNC_READS = 3  # a full sync whose reading outlived its lock reads again, this many times in all


# --- keys ---------------------------------------------------------------------------------


def _generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _new_key() -> tuple[bytes, str]:
    """A new RSA key: its PEM sealed by the vault, and the p= of its TXT record."""
    key = _generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return vault.seal(pem), base64.b64encode(public).decode()


def _selector(domain_id: int, now: datetime) -> str:
    base = f"s{now:%Y%m}"
    taken = set(db.session.scalars(sa.select(DkimKey.selector).where(DkimKey.domain_id == domain_id)))
    for suffix in ["", *string.ascii_lowercase[1:]]:
        if base + suffix not in taken:
            return base + suffix
    n = 2
    while f"{base}x{n}" in taken:
        n += 1
    return f"{base}x{n}"


def _add_key(domain: Domain, state: str) -> DkimKey:
    now = clock.now()
    sealed, public = _new_key()
    key = DkimKey(
        domain_id=domain.id,
        selector=_selector(domain.id, now),
        private_key_sealed=sealed,
        public_key=public,
        state=state,
        created_at=now,
        activated_at=now if state == "active" else None,
    )
    db.session.add(key)
    db.session.flush()
    log.info("DKIM key %s made for %s (%s)", key.selector, domain.name, state)
    return key


def keys_of(domain_id: int) -> list[DkimKey]:
    return list(
        db.session.scalars(
            sa.select(DkimKey).where(DkimKey.domain_id == domain_id).order_by(DkimKey.created_at, DkimKey.id)
        )
    )


def active_key(domain_id: int) -> DkimKey | None:
    return db.session.scalar(
        sa.select(DkimKey).where(DkimKey.domain_id == domain_id, DkimKey.state == "active")
    )


def pending_key(domain_id: int) -> DkimKey | None:
    return db.session.scalar(
        sa.select(DkimKey).where(DkimKey.domain_id == domain_id, DkimKey.state == "pending")
    )


def ensure_key(domain: Domain) -> DkimKey | None:
    """An active domain without a signing key gets one, signing at once (the caller commits;
    rspamd's Redis is written after the commit). None when the domain is not active or has one."""
    if not domain.is_active or active_key(domain.id) is not None:
        return None
    key = _add_key(domain, "active")
    _after_commit(domain.name)
    return key


def rotate(actor: Actor, domain_id: object) -> DkimKey:
    """Staff: a new key for the domain, pending until its TXT record is seen published (it does
    not sign before). A domain still without a key gets its first one, signing at once."""
    domain = domains.get_domain(actor, domain_id)
    require_staff(actor)
    limits.lock_customer(domain.customer_id)
    db.session.refresh(domain)
    if not domain.is_active:
        raise Conflict(_("Il dominio non è ancora attivo: non ha chiavi DKIM da cambiare."))
    if pending_key(domain.id) is not None:
        raise Conflict(
            _(
                "Una nuova chiave DKIM attende già la pubblicazione del suo record: pubblicalo nel DNS del dominio."
            )
        )
    key = ensure_key(domain) or _add_key(domain, "pending")
    audit.record(
        actor,
        "domain.dkim_rotate",
        customer_id=domain.customer_id,
        target=domain.name,
        changes={"selector": [None, key.selector], "state": [None, key.state]},
    )
    db.session.commit()
    return key


def shown_keys(domain_ids: list[int]) -> dict[int, DkimKey]:
    """The key whose record each domain's customer must have published, for many domains in one
    query (a list of domains): the pending one while a rotation waits for it, else the active
    one. A domain without a key is not in the answer."""
    shown: dict[int, DkimKey] = {}
    ids = sorted(set(domain_ids))
    for chunk in _chunks(ids, 500):
        for key in db.session.scalars(
            sa.select(DkimKey).where(DkimKey.domain_id.in_(chunk), DkimKey.state.in_(("pending", "active")))
        ):
            if key.state == "pending" or key.domain_id not in shown:
                shown[key.domain_id] = key
    return shown


def shown_key(domain_id: int) -> DkimKey | None:
    return shown_keys([domain_id]).get(domain_id)


def record_name(domain_name: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain_name}"


def _record(domain: Domain, key: DkimKey | None) -> dict | None:
    if key is None:
        return None
    return {"selector": key.selector, "name": record_name(domain.name, key.selector), "txt": key.txt}


def dkim_record(domain: Domain) -> dict | None:
    """{"selector", "name", "txt"} of the record to publish (None: the domain has no key yet)."""
    return _record(domain, shown_key(domain.id))


def dkim_records(domains_: list[Domain]) -> dict[int, dict | None]:
    """dkim_record of each domain (by id), read in one query."""
    shown = shown_keys([d.id for d in domains_])
    return {d.id: _record(d, shown.get(d.id)) for d in domains_}


def published_records(domain: Domain) -> list[dict]:
    """Every record the domain must keep published now: the shown key's and, while an old key
    retires, the old one's (with when it may go)."""
    out = []
    for key in keys_of(domain.id):
        if key.state in ("pending", "active", "retiring"):
            out.append(
                {
                    "selector": key.selector,
                    "name": record_name(domain.name, key.selector),
                    "txt": key.txt,
                    "state": key.state,
                    "dns_status": key.dns_status,
                    "retire_after": key.retire_after,
                }
            )
    return out


def state_label(state: str) -> str:
    return {
        "pending": _("in attesa del record DNS"),
        "active": _("firma i messaggi"),
        "retiring": _("sostituita, record ancora necessario"),
        "retired": _("ritirata"),
    }.get(state, state)


def dns_status_label(status: str | None) -> str:
    return {
        "missing": _("record mancante"),
        "wrong": _("record diverso dalla chiave"),
        "published": _("record pubblicato"),
        None: _("non ancora verificato"),
    }.get(status, status or "")


# --- the DNS check ------------------------------------------------------------------------


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def _matches(records: list[str], public: str) -> bool:
    return any(_tags(r).get("p") == public and _tags(r).get("v", "DKIM1") == "DKIM1" for r in records)


@dataclass
class Seen:
    status: str  # missing | wrong | published | unknown
    ttl: int | None = None


async def _look(dns: dnsclient.Client, domain_name: str, selector: str, public: str) -> Seen:
    """The record at every authoritative server of the domain that answers (as the MX check)."""
    try:
        zone = await dns.zone(domain_name)
    except dnsclient.NoSuchDomain:
        return Seen("missing")
    except dnsclient.ZoneUnknown:
        return Seen(dnscheck.UNKNOWN)
    name = record_name(domain_name, selector)
    answers = await asyncio.gather(*(dns.ask(s, a, name, "TXT") for s, a in zone.servers))
    # Every authoritative server must answer: one that did not may still serve an old
    # zone, and signing must not switch before every receiver can find the key.
    if not answers or not all(a.answered for a in answers):
        return Seen(dnscheck.UNKNOWN)
    if all(a.status == dnsclient.OK and _matches(a.records, public) for a in answers):
        ttls = [a.ttl for a in answers if a.ttl is not None]
        return Seen("published", max(ttls) if ttls else None)
    # A record that is not ours is wrong; ours on some servers and nothing on the others
    # is a zone still spreading: missing (not yet published), checked again later.
    if any(a.status == dnsclient.OK and a.records and not _matches(a.records, public) for a in answers):
        return Seen("wrong")
    return Seen("missing")


def _look_all(items: list[tuple[str, str, str]]) -> list[Seen]:
    deadline = float(current_app.config["DNS_CHECK_DEADLINE"])
    dns = dnscheck.client()  # here: the coroutine may run in a thread without the app's context

    async def main() -> list[Seen]:
        async def one(item):
            try:
                async with asyncio.timeout(deadline):
                    return await _look(dns, *item)
            except TimeoutError:
                return Seen(dnscheck.UNKNOWN)

        return await asyncio.gather(*(one(item) for item in items))

    return dnscheck._run(main)


def _keep(key: DkimKey, seen: Seen, now: datetime) -> bool:
    """Keep what the check saw on the key; a pending key found published becomes active. True: it did."""
    if seen.status == dnscheck.UNKNOWN:
        return False
    key.dns_status, key.dns_checked_at = seen.status, now
    if seen.status != "published":
        return False
    key.published_seen_at = key.published_seen_at or now
    if key.state != "pending":
        return False
    old = active_key(key.domain_id)
    if old is not None:
        hours = timedelta(hours=float(current_app.config["DKIM_RETIRE_HOURS"]))
        old.state, old.retire_after = "retiring", now + max(hours, timedelta(seconds=seen.ttl or 0))
        db.session.flush()  # the old one leaves `active` before the new one takes it
    key.state, key.activated_at = "active", now
    _after_commit(key.domain.name)  # rspamd's Redis: the new key, then the selector
    audit.record(
        Actor.system("dns", via="job"),
        "domain.dkim_activate",
        customer_id=key.domain.customer_id,
        target=key.domain.name,
        changes={"selector": [old.selector if old else None, key.selector]},
    )
    return True


def check_domain(actor: Actor, domain_id: object) -> list[DkimKey]:
    """Look now at the records of one of the actor's domains (the page's "check now"): at most
    every DNS_CHECK_COOLDOWN seconds, as the MX check (sooner, the stored result)."""
    from app.services import domain_checks

    domain = domains.get_domain(actor, domain_id)
    keys = [k for k in keys_of(domain.id) if k.state in ("pending", "active")]
    if not keys or not domain_checks._first_within_cooldown(domain, "dkim"):
        return keys
    db.session.commit()  # no transaction held while the DNS answers
    seen = _look_all([(domain.name, k.selector, k.public_key) for k in keys])
    limits.lock_customer(domain.customer_id)
    now = clock.now()
    for key, one in zip(keys, seen, strict=True):
        db.session.refresh(key)
        if key.state in ("pending", "active"):
            _keep(key, one, now)
    db.session.commit()
    return keys


def check_due(now: datetime | None = None) -> dict:
    """Every pending key's record (each run), and every active key's once a day."""
    now = now or clock.now()
    rows = db.session.execute(
        sa.select(DkimKey.id, Domain.customer_id, Domain.name, DkimKey.selector, DkimKey.public_key)
        .join(Domain, Domain.id == DkimKey.domain_id)
        .where(
            Domain.state == "active",
            sa.or_(
                DkimKey.state == "pending",
                sa.and_(
                    DkimKey.state == "active",
                    sa.or_(DkimKey.dns_checked_at.is_(None), DkimKey.dns_checked_at <= now - DAILY),
                ),
            ),
        )
        .order_by(DkimKey.id)
    ).all()
    db.session.commit()
    seen = _look_all([(name, selector, public) for _id, _customer, name, selector, public in rows])
    totals = {"checked": 0, "activated": 0, "unknown": 0}
    for (key_id, customer_id, *_rest), one in zip(rows, seen, strict=True):
        # The customer first, then the key as it is now (a "check now" on the page may
        # have activated it meanwhile), as check_domain does.
        limits.lock_customer(customer_id)
        key = db.session.get(DkimKey, key_id, populate_existing=True)
        if key is None or key.state not in ("pending", "active"):
            db.session.commit()
            continue
        totals["checked"] += 1
        totals["unknown"] += one.status == dnscheck.UNKNOWN
        totals["activated"] += _keep(key, one, now)
        db.session.commit()
    return totals


def retire_due(now: datetime | None = None) -> int:
    """Retiring keys past their time: retired (how many); retiring keys past their grace lose their
    private key. Redis follows after the commit."""
    now = now or clock.now()
    keys = list(
        db.session.scalars(sa.select(DkimKey).where(DkimKey.state == "retiring", DkimKey.retire_after <= now))
    )
    for key in keys:
        key.state, key.retired_at, key.private_key_sealed = "retired", now, None
        _after_commit(key.domain.name)
        log.info("DKIM key %s of %s retired", key.selector, key.domain.name)
    # A replaced key past its grace signs nothing again: its private key goes now, its record stays.
    # One query for every key of the domains that still hold one.
    holding = sa.select(DkimKey.domain_id).where(
        DkimKey.state == "retiring", DkimKey.private_key_sealed.is_not(None)
    )
    by_domain: dict[int, list[tuple[DkimKey, bool]]] = {}
    for key, held in db.session.execute(
        sa.select(DkimKey, DkimKey.private_key_sealed.is_not(None))
        .where(DkimKey.domain_id.in_(holding))
        .options(sa.orm.joinedload(DkimKey.domain))
    ):
        by_domain.setdefault(key.domain_id, []).append((key, held))
    for siblings in by_domain.values():
        needed = _needed([(k.selector, k.state, k.activated_at) for k, _held in siblings], now)
        for key, held in siblings:
            if held and key.state == "retiring" and key.selector not in needed:
                key.private_key_sealed = None
                _after_commit(key.domain.name)
    db.session.commit()
    return len(keys)


def ensure_all(limit: int = ENSURE_BATCH) -> int:
    """Keys for active domains that have none (domains active before keys were made): at most `limit`."""
    missing = list(
        db.session.scalars(
            sa.select(Domain)
            .where(
                Domain.state == "active",
                ~sa.select(DkimKey.id)
                .where(DkimKey.domain_id == Domain.id, DkimKey.state == "active")
                .exists(),
            )
            .order_by(Domain.id)
            .limit(limit)
        )
    )
    made = 0
    for domain in missing:
        limits.lock_customer(domain.customer_id)
        db.session.refresh(domain)
        made += ensure_key(domain) is not None
        db.session.commit()
    return made


def run(now: datetime | None = None) -> dict:
    """The cron's step: keys for domains without one, the records' check, retirements, Redis in sync."""
    made = ensure_all()
    totals = check_due(now)
    retired = retire_due(now)
    written = sync_redis()
    return {"made": made, **totals, "retired": retired, **written}


# --- rspamd's Redis -----------------------------------------------------------------------


def _redis() -> Redis | None:
    url = current_app.config.get("RSPAMD_REDIS_URL")
    return Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10) if url else None


def _forms(name: str) -> list[str]:
    """A domain as the selectors hash holds it: its ASCII name and, for an IDN, its Unicode
    form too (a header From may be written either way; rspamd's rule on forged From headers
    of our domains reads this hash; the signing keys stay under the ASCII name only)."""
    other = unicode_form(name)
    return [name] if other is None else [name, other]


def _grace() -> timedelta:
    return timedelta(minutes=float(current_app.config["DKIM_KEY_GRACE_MINUTES"]))


def _needed(keys: list[tuple[str, str, datetime | None]], now: datetime) -> set[str]:
    """Of one domain's keys (selector, state, activated_at), the selectors whose private key
    rspamd may need: the active key's, and a retiring key's for DKIM_KEY_GRACE_MINUTES after
    the switch (the activation of the key that replaced it), for a message that read the old
    selector just before. Its record stays published longer (retire_after): not its key."""
    grace = _grace()
    activated = sorted(a for _sel, _state, a in keys if a is not None)
    needed = set()
    for selector, state, since in keys:
        if state == "active":
            needed.add(selector)
        elif state == "retiring" and since is not None:
            switch = next((a for a in activated if a > since), None)
            if switch is not None and now < switch + grace:
                needed.add(selector)
    return needed


def _wanted(now: datetime) -> tuple[dict[str, str], dict[str, bytes]]:
    """What the hashes must hold: the selector signing for each active domain, and the keys
    rspamd may need (`_needed`) of active domains."""
    selectors: dict[str, str] = {}
    by_domain: dict[str, list] = {}
    rows = db.session.execute(
        sa.select(Domain.name, DkimKey.selector, DkimKey.state, DkimKey.activated_at, DkimKey.id)
        .join(Domain, Domain.id == DkimKey.domain_id)
        .where(Domain.state == "active", DkimKey.state.in_(SIGNING), DkimKey.private_key_sealed.is_not(None))
    )
    for name, selector, state, activated_at, key_id in rows:
        by_domain.setdefault(name, []).append((selector, state, activated_at, key_id))
        if state == "active":
            for form in _forms(name):
                selectors[form] = selector
    wanted_ids = {}
    for name, items in by_domain.items():
        needed = _needed([(sel, state, at) for sel, state, at, _id in items], now)
        wanted_ids.update({key_id: f"{sel}.{name}" for sel, _state, _at, key_id in items if sel in needed})
    keys: dict[str, bytes] = {}
    # Only the needed keys' sealed columns are read, and opened.
    for chunk in _chunks(sorted(wanted_ids), 500):
        for key_id, sealed in db.session.execute(
            sa.select(DkimKey.id, DkimKey.private_key_sealed).where(DkimKey.id.in_(chunk))
        ):
            if sealed is not None:
                keys[wanted_ids[key_id]] = vault.unseal(sealed)
    return selectors, keys


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


@contextlib.contextmanager
def _held(redis: Redis, wait: float):
    """The lock every writer of the two hashes holds (LockError: not had within `wait` seconds).
    Its holder calls `_still_held` after reading the database and before writing: a lock that
    outlived LOCK_TIMEOUT may have let another writer in meanwhile. Letting go of a lock that
    expired is no error (what was written, was written while it was held)."""
    lock = redis.lock(SYNC_LOCK, timeout=LOCK_TIMEOUT, blocking_timeout=wait)
    if not lock.acquire():
        raise LockError("not acquired")
    try:
        yield lock
    finally:
        with contextlib.suppress(LockNotOwnedError):
            lock.release()


def _still_held(lock) -> bool:
    """True, and the lock's LOCK_TIMEOUT starts again, if no other writer has had it since."""
    try:
        lock.reacquire()
    except LockNotOwnedError:
        return False
    return True


def sync_redis(wait: float | None = None) -> dict:
    """Write rspamd's two hashes again from the database (idempotent): keys first, then the
    selectors; what the database no longer holds leaves, selectors first. The database is read
    under the lock (a domain's write after its commit waits, or is waited for); a reading that
    outlived the lock is done again. Without RSPAMD_REDIS_URL, nothing (the keys wait in the
    database). Conflict when the lock is not had within `wait` seconds (SYNC_LOCK_WAIT), or not
    kept through SYNC_READS readings; DomainError when Redis does not answer."""
    url = current_app.config.get("RSPAMD_REDIS_URL") or ""
    redis = _redis()
    if redis is None:
        return {"written": 0, "removed": 0}
    db.session.commit()  # what follows reads the database as it is once the lock is held
    try:
        for _reading in range(SYNC_READS):
            with _held(redis, SYNC_LOCK_WAIT if wait is None else wait) as lock:
                selectors, keys = _wanted(clock.now())
                db.session.commit()
                have_keys = {k.decode(): v for k, v in redis.hgetall(DKIM_KEYS_HASH).items()}
                have_selectors = {
                    k.decode(): v.decode() for k, v in redis.hgetall(DKIM_SELECTORS_HASH).items()
                }
                if not _still_held(lock):
                    log.warning("rspamd's DKIM hashes: the database read outlived the lock, read again")
                    continue
                new_keys = {k: v for k, v in keys.items() if have_keys.get(k) != v}
                new_selectors = {k: v for k, v in selectors.items() if have_selectors.get(k) != v}
                gone_selectors = [k for k in have_selectors if k not in selectors]
                gone_keys = [k for k in have_keys if k not in keys]
                if new_keys:
                    redis.hset(DKIM_KEYS_HASH, mapping=new_keys)
                if new_selectors:
                    redis.hset(DKIM_SELECTORS_HASH, mapping=new_selectors)
                if gone_selectors:
                    redis.hdel(DKIM_SELECTORS_HASH, *gone_selectors)
                if gone_keys:
                    redis.hdel(DKIM_KEYS_HASH, *gone_keys)
                break
        else:
            raise Conflict(
                _("La lettura delle chiavi DKIM dal database è stata troppo lenta: riprova tra poco.")
            )
    except LockError:
        raise Conflict(
            _("Le chiavi DKIM in Redis sono già in scrittura da un'altra parte: riprova tra poco.")
        ) from None
    except RedisError as e:
        from app.services.health import redact_url

        raise DomainError(
            _("Il Redis di rspamd non risponde (%(where)s): %(reason)s", where=redact_url(url), reason=e)
        ) from None
    finally:
        redis.close()
    written = len(new_keys) + len(new_selectors)
    removed = len(gone_selectors) + len(gone_keys)
    if written or removed:
        log.info("rspamd's DKIM hashes: %d fields written, %d removed", written, removed)
    return {"written": written, "removed": removed}


def forget(domain: Domain) -> None:
    """A domain no longer served (removed): out of rspamd's hashes after the commit."""
    fields = {f"{k.selector}.{domain.name}" for k in keys_of(domain.id)}
    _after_commit(domain.name, fields)


def _after_commit(domain_name: str, drop: set[str] | None = None) -> None:
    pending = db.session.info.setdefault("dkim_sync", {})
    pending.setdefault(domain_name, set()).update(drop or ())


@sa.event.listens_for(sa.orm.Session, "after_commit")
def _sync_after_commit(session) -> None:
    names = session.info.pop("dkim_sync", None)
    if not names or not current_app.config.get("RSPAMD_REDIS_URL"):
        return
    try:
        # A session that just committed may not run SQL inside this event: a fresh one reads the rows.
        with sa.orm.Session(db.engine) as fresh:
            _sync_domains(fresh, names)
    except Exception:  # Redis down: the cron's sync_redis writes it later
        log.warning("rspamd's DKIM hashes not written now (the next sync will): %s", ", ".join(sorted(names)))


@sa.event.listens_for(sa.orm.Session, "after_rollback")
def _forget_after_rollback(session) -> None:
    session.info.pop("dkim_sync", None)


def _sync_domains(session: sa.orm.Session, names: dict[str, set[str]]) -> None:
    """Some domains' fields in the hashes, from the database read under the lock: keys first,
    then the selector."""
    redis = _redis()
    try:
        with _held(redis, LOCK_WAIT) as lock:
            now = clock.now()
            for name, drop in names.items():
                rows = session.execute(
                    sa.select(DkimKey.id, DkimKey.selector, DkimKey.state, DkimKey.activated_at)
                    .join(Domain, Domain.id == DkimKey.domain_id)
                    .where(Domain.name == name)
                ).all()
                served = session.scalar(sa.select(Domain.state).where(Domain.name == name)) == "active"
                needed = _needed([(sel, state, at) for _id, sel, state, at in rows], now) if served else set()
                ids = [key_id for key_id, sel, state, _at in rows if sel in needed and state in SIGNING]
                sealed = dict(
                    session.execute(
                        sa.select(DkimKey.id, DkimKey.private_key_sealed).where(DkimKey.id.in_(ids))
                    ).all()
                )
                keys = {
                    f"{sel}.{name}": vault.unseal(sealed[key_id])
                    for key_id, sel, _state, _at in rows
                    if sealed.get(key_id)
                }
                signing = next((sel for _id, sel, state, _at in rows if served and state == "active"), None)
                stale = (drop | {f"{sel}.{name}" for _id, sel, _state, _at in rows}) - set(keys)
                if not _still_held(lock):  # another writer may have been in: the cron's sync writes it
                    raise LockError("held too long")
                if keys:
                    redis.hset(DKIM_KEYS_HASH, mapping=keys)
                if signing:
                    redis.hset(DKIM_SELECTORS_HASH, mapping=dict.fromkeys(_forms(name), signing))
                else:
                    redis.hdel(DKIM_SELECTORS_HASH, *_forms(name))
                if stale:
                    redis.hdel(DKIM_KEYS_HASH, *sorted(stale))
    finally:
        redis.close()
