"""DKIM keys per domain (app/services/dkim.py) against real components: the database (SQLite and
PostgreSQL), the Redis rspamd reads, the test DNS server, and rspamd signing what a mailbox sends
through submission (the `servers_rspamd` fixture).

The signatures are verified twice: by rspamd's own DKIM check (the message sent back in from
outside) and here, with a DKIM library (dkimpy), against the TXT record the API shows, fetched
from the local DNS server.
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import threading
import time
import uuid
from datetime import timedelta

import dkim as dkimpy
import dns.exception
import dns.resolver as dns_resolver
import pytest
import redis
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from app.extensions import db
from app.mailserver import render
from app.models import Domain
from app.models.dkim import DkimKey
from app.services import clock, dkim, domains, users, vault
from app.services.access import Actor
from tests import factories
from tests.dnsfixtures import asking
from tests.factories import PASSWORD
from tests.integration.conftest import REDIS_URL
from tests.integration.mailservers import HOST, OUTSIDE_HOST
from tests.integration.test_mailservers import message, subject

pytestmark = [pytest.mark.integration, pytest.mark.fresh_dkim_keys]

NS1, NS2 = "127.0.0.2", "127.0.0.3"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}.example"


@pytest.fixture
def world(app, dns, connection):
    """The app writing rspamd's Redis (the tests' one) and asking the local DNS server."""
    saved = app.config.get("RSPAMD_REDIS_URL")
    app.config["RSPAMD_REDIS_URL"] = REDIS_URL
    with asking(app.config, dns):
        yield dns
    app.config["RSPAMD_REDIS_URL"] = saved
    clock.reset()


def delegate(dns, zone: str) -> None:
    dns.delegate(zone, {f"ns1.{zone}": NS1, f"ns2.{zone}": NS2})


def publish(dns, name: str, txt: str, ttl: int = 3600) -> None:
    """The record at the zone's servers and at the resolver (rspamd asks the resolver)."""
    chunks = " ".join(f'"{txt[i : i + 250]}"' for i in range(0, len(txt), 250))
    dns.at(NS1, NS2).set(name, "TXT", chunks, ttl=ttl)
    dns.resolver.set(name, "TXT", chunks, ttl=ttl)


def hashes_of(connection) -> tuple[dict, dict]:
    selectors = {k.decode(): v.decode() for k, v in connection.hgetall(render.DKIM_SELECTORS_HASH).items()}
    keys = {k.decode(): v.decode() for k, v in connection.hgetall(render.DKIM_KEYS_HASH).items()}
    return selectors, keys


def pem_of(key: DkimKey) -> str:
    """The key's private PEM as the database holds it now (sealed)."""
    db.session.expire_all()
    return vault.unseal(db.session.get(DkimKey, key.id).private_key_sealed).decode()


def assert_signs_with(connection, name: str, key: DkimKey) -> None:
    """rspamd's hashes sign `name` with `key`, and hold its PEM as the database does."""
    selectors, keys = hashes_of(connection)
    assert selectors[name] == key.selector
    assert keys[f"{key.selector}.{name}"] == pem_of(key)


def domain_named(name: str) -> Domain:
    return db.session.scalar(sa.select(Domain).where(Domain.name == name))


# --- keys, sealed, in Redis ---------------------------------------------------------------


def test_a_domain_turning_active_gets_a_signing_key_sealed_and_written_to_redis(world, connection):
    c = factories.customer()
    admin = users.create_user(
        factories.SYSTEM, email=f"a@{factories.domain_of(c)}", password=PASSWORD, role="customer_admin",
        customer_id=c.id,
    )  # fmt: skip
    name = unique("nuovo")
    domain = domains.add_domain(Actor.for_user(admin), c.id, name)
    assert domain.state == "pending" and dkim.keys_of(domain.id) == []
    assert name not in hashes_of(connection)[0]

    domains.approve_domain(Actor.for_user(factories.staff()), domain.id)
    [key] = dkim.keys_of(domain.id)
    assert key.state == "active" and re.fullmatch(r"s\d{6}", key.selector)
    assert key.selector == f"s{clock.now():%Y%m}"

    # Sealed: the raw column is a Fernet token, never the PEM; opened, the PEM of the public key shown.
    raw = db.session.execute(sa.text("SELECT private_key_sealed FROM dkim_keys WHERE id = :i"), {"i": key.id})
    sealed = bytes(raw.scalar_one())
    pem = vault.unseal(sealed)
    body = b"".join(pem.splitlines()[1:-1])  # the key's base64, without the PEM's armour lines
    assert b"PRIVATE KEY" not in sealed and body[:40] not in sealed and body[-40:] not in sealed
    private = serialization.load_pem_private_key(pem, password=None)
    assert private.key_size == 2048
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.public_key == base64.b64encode(public).decode()
    assert dkim.dkim_record(domain) == {
        "selector": key.selector,
        "name": f"{key.selector}._domainkey.{name}",
        "txt": f"v=DKIM1; k=rsa; p={key.public_key}",
    }

    # Written after the commit: selector and key, as rspamd reads them.
    selectors, keys = hashes_of(connection)
    assert selectors[name] == key.selector
    assert keys[f"{key.selector}.{name}"] == pem.decode()


def test_sync_redis_writes_both_hashes_from_the_database_and_removes_what_it_no_longer_holds(
    world, connection
):
    c = factories.customer(domain=unique("sync"))
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    key = dkim.active_key(domain.id)
    connection.delete(render.DKIM_SELECTORS_HASH, render.DKIM_KEYS_HASH)
    connection.hset(render.DKIM_SELECTORS_HASH, "sparito.example", "s202001")
    connection.hset(render.DKIM_KEYS_HASH, "s202001.sparito.example", "vecchia")

    first = dkim.sync_redis()
    selectors, keys = hashes_of(connection)
    assert selectors == {domain.name: key.selector}
    assert list(keys) == [f"{key.selector}.{domain.name}"]
    assert first == {"written": 2, "removed": 2}
    assert dkim.sync_redis() == {"written": 0, "removed": 0}  # idempotent

    # A domain that stops being served leaves both hashes.
    domains.delete_domain(factories.SYSTEM, domain.id)
    assert hashes_of(connection) == ({}, {})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DkimKey)) == 0


def test_each_domain_and_each_rotation_gets_key_material_of_its_own(world):
    """A key reused (cached, or another domain's) would still verify against its own record: the
    keys themselves must differ."""
    first = domain_named_new("propria")
    second = domain_named_new("altrui")
    again = dkim.rotate(Actor.for_user(factories.staff()), first.id)
    keys = [dkim.active_key(first.id), dkim.active_key(second.id), again]
    assert len({k.public_key for k in keys}) == 3
    assert len({vault.unseal(k.private_key_sealed) for k in keys}) == 3


def domain_named_new(prefix: str) -> Domain:
    name = unique(prefix)
    factories.customer(domain=name)
    return domain_named(name)


def rotated(world, prefix: str) -> tuple[Domain, DkimKey, DkimKey]:
    """An active domain with its signing key and a new pending one, whose record is published."""
    name = unique(prefix)
    delegate(world, name)
    factories.customer(domain=name)
    domain = domain_named(name)
    old = dkim.active_key(domain.id)
    new = dkim.rotate(Actor.for_user(factories.staff()), domain.id)
    publish(world, dkim.record_name(name, new.selector), new.txt)
    return domain, old, new


def test_a_full_sync_that_read_the_database_before_a_switch_does_not_undo_the_switch_s_write(
    world, connection, app, monkeypatch
):
    """The cron's full sync reads the database; meanwhile the DNS check (another worker)
    switches the domain to its new key, commits, and writes the domain's fields. The full sync,
    which read the database before that commit, must not put the old selector back nor delete
    the new key: both writers hold the same lock and read the database once they hold it."""
    domain, old, new = rotated(world, "corsa")
    name = domain.name
    dkim.sync_redis()
    assert hashes_of(connection)[0][name] == old.selector

    def switch():  # the DNS check, in a worker of its own
        with app.app_context():
            assert dkim.check_due()["activated"] == 1
            db.session.remove()

    read = dkim._wanted
    other = threading.Thread(target=switch)

    def read_then_the_switch_commits(now):
        wanted = read(now)  # the database before the switch
        other.start()
        other.join(2)  # the switch commits; its own write waits for the lock (without one: done)
        return wanted

    monkeypatch.setattr(dkim, "_wanted", read_then_the_switch_commits)
    dkim.sync_redis()
    other.join(15)
    assert not other.is_alive()

    db.session.expire_all()
    assert dkim.active_key(domain.id).id == new.id
    assert_signs_with(connection, name, new)
    # And the next full sync agrees with what is there.
    monkeypatch.setattr(dkim, "_wanted", read)
    assert dkim.sync_redis() == {"written": 0, "removed": 0}


def test_a_full_sync_whose_reading_outlived_the_lock_reads_again_and_undoes_nothing(
    world, connection, app, monkeypatch, caplog
):
    """A reading slower than LOCK_TIMEOUT: the lock expires, the DNS check's switch takes it and
    writes the new selector. The full sync must not write what it read before (the old
    selector), nor call its finished work a Conflict: it reads again, and writes from that."""
    monkeypatch.setattr(dkim, "LOCK_TIMEOUT", 1)
    domain, old, new = rotated(world, "lenta")
    name = domain.name
    dkim.sync_redis()
    assert hashes_of(connection)[0][name] == old.selector

    def switch():
        with app.app_context():
            assert dkim.check_due()["activated"] == 1
            db.session.remove()

    read = dkim._wanted
    readings = []
    other = threading.Thread(target=switch)

    def slow_read(now):
        readings.append(now)
        wanted = read(now)
        if len(readings) == 1:
            time.sleep(1.3)  # the lock expires
            other.start()
            other.join(15)  # the switch commits and writes: the lock is free
            assert not other.is_alive()
        return wanted

    monkeypatch.setattr(dkim, "_wanted", slow_read)
    caplog.set_level(logging.WARNING, logger="app.services.dkim")
    dkim.sync_redis()
    assert len(readings) == 2
    assert "outlived the lock" in caplog.text
    assert_signs_with(connection, name, new)
    monkeypatch.setattr(dkim, "_wanted", read)
    assert dkim.sync_redis() == {"written": 0, "removed": 0}


def test_a_write_after_a_commit_that_outlived_the_lock_writes_nothing(world, connection, monkeypatch, caplog):
    """The write after a commit read the database, and the lock expired before it wrote: another
    writer may have been in meanwhile, so it writes nothing (the cron's sync will)."""
    c = factories.customer(domain=unique("scaduta"))
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    connection.delete(render.DKIM_SELECTORS_HASH, render.DKIM_KEYS_HASH)
    monkeypatch.setattr(dkim, "LOCK_TIMEOUT", 1)
    other = redis.Redis.from_url(REDIS_URL).lock(dkim.SYNC_LOCK, timeout=30)
    unseal = vault.unseal

    def slow_unseal(blob):
        time.sleep(1.3)  # the lock expires, and another writer takes it
        assert other.acquire(blocking=False)
        return unseal(blob)

    monkeypatch.setattr(vault, "unseal", slow_unseal)
    dkim._after_commit(domain.name)
    db.session.commit()
    assert hashes_of(connection) == ({}, {})
    assert "not written now" in caplog.text
    other.release()
    monkeypatch.setattr(vault, "unseal", unseal)
    assert dkim.sync_redis()["written"] == 2
    assert hashes_of(connection)[0] == {domain.name: dkim.active_key(domain.id).selector}


def test_the_full_sync_and_the_write_after_a_commit_wait_for_the_same_lock(
    world, connection, monkeypatch, caplog
):
    monkeypatch.setattr(dkim, "LOCK_WAIT", 0.3)
    monkeypatch.setattr(dkim, "SYNC_LOCK_WAIT", 0.3)
    held = redis.Redis.from_url(REDIS_URL).lock(dkim.SYNC_LOCK, timeout=30)
    assert held.acquire(blocking=False)
    try:
        # A domain turning active while another writer holds the lock: its write gives up (logged),
        # Redis untouched; a full sync too.
        c = factories.customer(domain=unique("attende"))
        domain = domains.list_domains(factories.SYSTEM, c.id)[0]
        assert dkim.active_key(domain.id) is not None
        assert hashes_of(connection) == ({}, {})
        assert "not written now" in caplog.text
        with pytest.raises(dkim.Conflict, match="già in scrittura"):
            dkim.sync_redis()
        assert hashes_of(connection) == ({}, {})
    finally:
        held.release()
    # Let go: the cron's sync writes what the database holds.
    assert dkim.sync_redis()["written"] == 2
    assert hashes_of(connection)[0] == {domain.name: dkim.active_key(domain.id).selector}


def test_a_replaced_key_leaves_redis_after_the_grace_its_record_stays_until_retired(
    world, connection, app, client, monkeypatch
):
    """No private key in Redis without need: after the switch the old key stays in `dkim_keys` only
    DKIM_KEY_GRACE_MINUTES, then only the signing key's PEM is there, whichever writer runs; the
    old record is still shown to keep published until the key is retired."""
    monkeypatch.setitem(app.config, "DKIM_KEY_GRACE_MINUTES", 5)
    domain, old, new = rotated(world, "grazia")
    name = domain.name
    t0 = clock.now()
    clock.set_now(t0)
    assert dkim.run()["activated"] == 1
    keys = hashes_of(connection)[1]
    assert set(keys) == {f"{old.selector}.{name}", f"{new.selector}.{name}"}

    clock.set_now(t0 + timedelta(minutes=4))
    dkim.run()
    assert len(hashes_of(connection)[1]) == 2  # still within the grace
    db.session.expire_all()
    assert db.session.get(DkimKey, old.id).private_key_sealed is not None

    clock.set_now(t0 + timedelta(minutes=5, seconds=1))
    dkim.run()
    # Nor in the database: past the grace nothing signs with it again.
    db.session.expire_all()
    assert db.session.get(DkimKey, old.id).private_key_sealed is None
    new_pem = pem_of(new)
    assert hashes_of(connection) == ({name: new.selector}, {f"{new.selector}.{name}": new_pem})
    # A later write for the domain (after a commit) does not bring it back.
    dkim._after_commit(name)
    db.session.commit()
    assert hashes_of(connection)[1] == {f"{new.selector}.{name}": new_pem}
    # Its record is still to keep published (the domain page and the DNS check list it).
    db.session.expire_all()
    assert db.session.get(DkimKey, old.id).state == "retiring"
    assert [(r["selector"], r["state"]) for r in dkim.published_records(domain)] == [
        (old.selector, "retiring"),
        (new.selector, "active"),
    ]


def test_flask_dkim_ensure_makes_keys_for_domains_active_before(world, connection, app):
    c = factories.customer(domain=unique("vecchio"))
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    db.session.execute(sa.delete(DkimKey))
    db.session.commit()
    connection.delete(render.DKIM_SELECTORS_HASH, render.DKIM_KEYS_HASH)

    result = app.test_cli_runner().invoke(args=["dkim", "ensure"])
    assert result.exit_code == 0, result.output
    assert "keys made: 1" in result.output
    key = dkim.active_key(domain.id)
    assert key is not None
    assert hashes_of(connection)[0] == {domain.name: key.selector}
    assert "PRIVATE" not in result.output
    result = app.test_cli_runner().invoke(args=["dkim", "sync"])
    assert result.exit_code == 0 and "0 written, 0 removed" in result.output


def test_one_active_key_per_domain_is_the_database_s_rule(world):
    c = factories.customer(domain=unique("unica"))
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    key = dkim.active_key(domain.id)
    db.session.add(
        DkimKey(domain_id=domain.id, selector="s209901", public_key=key.public_key, state="active")
    )
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_rotation_refused_to_customers_and_while_a_new_key_waits(world):
    from app.services.errors import NotFound, PermissionDenied

    c = factories.customer(domain=unique("ruota"))
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    before = dkim.active_key(domain.id).selector
    # The domain's own admin may not rotate its keys; another customer's admin does not see it.
    with pytest.raises(PermissionDenied):
        dkim.rotate(Actor.for_user(factories.admin(c)), domain.id)
    with pytest.raises(NotFound):
        dkim.rotate(Actor.for_user(factories.admin(factories.customer())), domain.id)
    db.session.rollback()
    assert [(k.selector, k.state) for k in dkim.keys_of(domain.id)] == [(before, "active")]

    staff = Actor.for_user(factories.staff())
    key = dkim.rotate(staff, domain.id)
    assert key.state == "pending" and key.selector == f"s{clock.now():%Y%m}b"
    with pytest.raises(dkim.Conflict):
        dkim.rotate(staff, domain.id)
    assert [k.state for k in dkim.keys_of(domain.id)] == ["active", "pending"]


def test_a_pending_key_waits_for_every_authoritative_server_to_have_its_record(world):
    """Signing switches only when every server of the zone answers with the new record: one
    server silent is unknown (checked again later), one with nothing yet is still missing."""
    name = unique("attesa")
    delegate(world, name)
    factories.customer(domain=name)
    domain = domain_named(name)
    key = dkim.rotate(Actor.for_user(factories.staff()), domain.id)
    record = f"{key.selector}._domainkey.{name}"
    chunks = " ".join(f'"{key.txt[i : i + 250]}"' for i in range(0, len(key.txt), 250))

    # At one server only: the zone is still spreading, not a wrong record.
    world.at(NS1).set(record, "TXT", chunks)
    dkim.check_due()
    db.session.expire_all()
    key = db.session.get(DkimKey, key.id)
    assert (key.state, key.dns_status) == ("pending", "missing")

    # At both, but the second does not answer: not known, still pending.
    world.at(NS2).set(record, "TXT", chunks)
    world.behave(NS2, "timeout")
    totals = dkim.check_due()
    db.session.expire_all()
    key = db.session.get(DkimKey, key.id)
    assert totals["activated"] == 0 and totals["unknown"] >= 1
    assert (key.state, key.dns_status) == ("pending", "missing")

    # Both answer with it: active.
    world.behave(NS2, "answer")
    assert dkim.check_due()["activated"] >= 1
    db.session.expire_all()
    assert db.session.get(DkimKey, key.id).state == "active"


def test_no_private_key_in_the_logs_of_making_rotating_and_syncing(world, caplog):
    caplog.set_level(logging.DEBUG)
    c = factories.customer(domain=unique("log"))
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    dkim.rotate(Actor.for_user(factories.staff()), domain.id)
    dkim.sync_redis()
    dkim.run()
    pem = vault.unseal(
        db.session.scalar(
            sa.select(DkimKey.private_key_sealed).where(DkimKey.domain_id == domain.id).limit(1)
        )
    ).decode()
    body = "".join(pem.splitlines()[1:-1])
    text = caplog.text
    assert "PRIVATE KEY" not in text
    assert all(body[i : i + 40] not in text for i in range(0, len(body) - 40, 40))
    assert domain.name in text  # the logs do speak of the key


# --- rotation end to end, with rspamd signing ------------------------------------------------


def send(mail, sender: str, to: str) -> tuple[str, object]:
    wanted = subject()
    with smtplib.SMTP(HOST, mail.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=mail.tls_context())
        smtp.login(sender, PASSWORD)
        smtp.send_message(message(sender, to, wanted), to_addrs=[to])
    return wanted, mail.sink.wait_for(to, wanted)


def signature_tags(msg) -> dict[str, str]:
    header = msg.message["DKIM-Signature"]
    assert header, "no DKIM-Signature"
    return {k.strip(): "".join(v.split()) for k, _s, v in (t.partition("=") for t in str(header).split(";"))}


def resolver_of(dns) -> tuple[str, int]:
    host, _c, port = dns.config["DNS_NAMESERVERS"].partition(":")
    return host, int(port or 53)


def verify_dkim(raw: bytes, world) -> bool:
    """dkimpy's verdict on the message's DKIM-Signature, its key asked of the local DNS server."""
    resolver = dns_resolver.Resolver(configure=False)
    address, port = resolver_of(world)
    resolver.nameservers, resolver.port = [address], port

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except (dns_resolver.NXDOMAIN, dns_resolver.NoAnswer, dns.exception.Timeout):
            return None
        return b"".join(next(iter(answer)).strings)

    return dkimpy.verify(raw, dnsfunc=txt)


def tampered(raw: bytes) -> bytes:
    """The message with one word of its body changed, as a relay might."""
    head, sep, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
    changed = re.sub(rb"[A-Za-z]{4,}", b"Falsificato", body, count=1)
    assert changed != body
    return head + sep + changed


def back_in(mail, data: bytes, to: str) -> str:
    """The signed message, sent back to us from outside: rspamd's own verdict in Authentication-Results."""
    with smtplib.SMTP(HOST, mail.ports["smtp"], timeout=30, source_address=(OUTSIDE_HOST, 0)) as smtp:
        smtp.sendmail(f"rimbalzo@{unique('inoltro')}", [to], data)
    count = mail.maildir_count(to) + 1
    mail.wait_stored(to, count)
    local, domain = to.split("@")
    maildir = mail.mail_root / domain / local / "Maildir"
    files = [p for sub in ("new", "cur") for p in (maildir / sub).glob("*")]
    raw = max(files, key=lambda p: p.stat().st_mtime).read_bytes()
    return raw.split(b"\n\n", 1)[0].decode("utf-8", "replace").replace("\n\t", " ").replace("\n ", " ")


def test_rotation_end_to_end_signing_switches_only_after_the_dns_check_sees_the_new_record(
    servers_rspamd, world, connection, app, client
):
    mail = servers_rspamd
    name = unique("rotazione")
    delegate(world, name)
    # A DMARC record (the DNS advice asks for one): anna's signed mail, back in from
    # outside, is aligned and not taken for a forgery of our domain.
    publish(world, f"_dmarc.{name}", "v=DMARC1; p=none")
    c = factories.customer(domain=name)
    anna = factories.mailbox(c, "anna")
    bruno = factories.mailbox(factories.customer(domain=unique("altro")), "bruno")
    domain = domain_named(name)
    old = dkim.active_key(domain.id)
    staff = factories.staff()
    token = users.create_token(factories.SYSTEM, staff, "tests")[1]
    auth = {"Authorization": f"Bearer {token}"}

    # The record the API shows, published: a message of anna's verifies against it.
    shown = client.get(f"/api/v1/domains/{domain.id}", headers=auth).get_json()["dkim"]
    assert shown == {"selector": old.selector, "txt": old.txt}
    publish(world, f"{shown['selector']}._domainkey.{name}", shown["txt"])
    _subject, out = send(mail, anna.address, "socio@fuori.example")
    tags = signature_tags(out)
    assert (tags["d"], tags["s"]) == (name, old.selector)
    assert verify_dkim(out.data, world) is True
    assert verify_dkim(tampered(out.data), world) is False
    assert f"dkim=pass header.d={name} header.s={old.selector}" in back_in(mail, out.data, bruno.address)

    # Rotation: the new key is pending, shown to publish, not in Redis, and nothing signs with it.
    answer = client.post(f"/api/v1/domains/{domain.id}/dkim/rotate", headers=auth)
    assert answer.status_code == 201, answer.get_json()
    new = answer.get_json()
    assert new["state"] == "pending" and new["selector"] != old.selector
    assert new["name"] == f"{new['selector']}._domainkey.{name}"
    shown = client.get(f"/api/v1/domains/{domain.id}", headers=auth).get_json()["dkim"]
    assert shown == {"selector": new["selector"], "txt": new["txt"]}
    selectors, keys = hashes_of(connection)
    assert selectors[name] == old.selector and f"{new['selector']}.{name}" not in keys
    assert signature_tags(send(mail, anna.address, "socio@fuori.example")[1])["s"] == old.selector

    # The check does not see it yet: still pending, still the old key signing.
    totals = dkim.run()
    assert totals["activated"] == 0
    pending = dkim.pending_key(domain.id)
    assert pending.dns_status == "missing"
    assert hashes_of(connection)[0][name] == old.selector

    # Published: the check sees it, the new key signs, the old one retires later.
    publish(world, new["name"], new["txt"], ttl=600)
    t0 = clock.now()
    clock.set_now(t0)
    totals = dkim.run()
    assert totals["activated"] == 1
    db.session.expire_all()
    active, previous = dkim.active_key(domain.id), db.session.get(DkimKey, old.id)
    assert active.selector == new["selector"] and active.published_seen_at == t0
    assert previous.state == "retiring" and previous.retire_after == t0 + timedelta(hours=48)
    selectors, keys = hashes_of(connection)
    assert selectors[name] == new["selector"]
    # For a few minutes both keys (a message that read the old selector just before the switch).
    assert {f"{old.selector}.{name}", f"{new['selector']}.{name}"} <= set(keys)
    _subject, out = send(mail, anna.address, "socio@fuori.example")
    tags = signature_tags(out)
    assert (tags["d"], tags["s"]) == (name, new["selector"])
    assert verify_dkim(out.data, world) is True
    assert verify_dkim(tampered(out.data), world) is False
    assert f"dkim=pass header.d={name} header.s={new['selector']}" in back_in(mail, out.data, bruno.address)

    # After the grace only the signing key's PEM is in Redis; the old record is still to keep.
    grace = timedelta(minutes=app.config["DKIM_KEY_GRACE_MINUTES"])
    clock.set_now(t0 + grace + timedelta(minutes=1))
    dkim.run()
    selectors, keys = hashes_of(connection)
    active_pem = pem_of(active)
    mine = {field: pem for field, pem in keys.items() if field.endswith(f".{name}")}
    assert mine == {f"{new['selector']}.{name}": active_pem} and selectors[name] == new["selector"]
    assert [r["selector"] for r in dkim.published_records(domain)] == [old.selector, new["selector"]]

    # Not before its time...
    clock.set_now(t0 + timedelta(hours=47))
    assert dkim.run()["retired"] == 0
    # ...then retired: out of Redis, its private key dropped.
    clock.set_now(t0 + timedelta(hours=48, minutes=1))
    assert dkim.run()["retired"] == 1
    db.session.expire_all()
    previous = db.session.get(DkimKey, old.id)
    assert previous.state == "retired" and previous.retired_at is not None
    raw = db.session.execute(sa.text("SELECT private_key_sealed FROM dkim_keys WHERE id = :i"), {"i": old.id})
    assert raw.scalar_one() is None
    selectors, keys = hashes_of(connection)
    assert f"{old.selector}.{name}" not in keys and selectors[name] == new["selector"]
    assert signature_tags(send(mail, anna.address, "socio@fuori.example")[1])["s"] == new["selector"]


def test_a_domain_proved_by_its_dns_gets_its_key_with_the_activation(world, connection):
    from app.services import domain_checks

    c = factories.customer()
    admin = factories.admin(c)
    name = unique("prova")
    delegate(world, name)
    domain = domains.add_domain(Actor.for_user(admin), c.id, name)
    world.at(NS1, NS2).set(name, "TXT", f'"{domain_checks.verification_txt(domain)}"')
    _report, found, recorded = domain_checks.check_any(name)
    assert recorded.activated and found.is_active
    key = dkim.active_key(found.id)
    assert key is not None and hashes_of(connection)[0][name] == key.selector


def test_the_cron_runs_dkim_check_every_10_minutes_on_the_dns_queue(connection):
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=connection)
    scheduler.load_config_from_file("app/cron.py")
    registered = {j.func_name: (j.queue_name, j.interval) for j in scheduler.get_jobs()}
    assert registered["app.jobs.dkim_check"] == ("dns", 600)


def test_flask_dkim_sync_says_why_it_cannot_write_without_a_traceback(world, connection, app):
    """Redis away: exit 1 and a line naming it, without its password."""
    from tests.integration.test_quota import closed_port

    runner = app.test_cli_runner()
    saved = app.config["RSPAMD_REDIS_URL"]
    app.config["RSPAMD_REDIS_URL"] = f"redis://:Segreta-9@127.0.0.1:{closed_port()}/0"
    try:
        result = runner.invoke(args=["dkim", "sync"])
    finally:
        app.config["RSPAMD_REDIS_URL"] = saved
    assert result.exit_code == 1, result.output
    assert "Errore: Il Redis di rspamd non risponde (redis://:***@127.0.0.1:" in result.output
    assert "Segreta-9" not in result.output and "Traceback" not in result.output
