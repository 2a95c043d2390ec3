"""Input rules every door shares: plain local parts, visible display names, the password policy,
per-customer hashing, LIKE wildcards taken literally, SQL parameters kept out of messages.

Each is driven through the service (so the web, the API and the CLI get it alike) and, where a
person meets it, through one door to see the message.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, User
from app.services import aliases, lists, mailboxes, passwords, users
from app.services.access import Actor
from app.services.errors import ValidationError
from tests import factories
from tests.dbstate import row_counts
from tests.integration.conftest import REDIS_URL, connection  # noqa: F401 (the Redis fixture)

SYSTEM = factories.SYSTEM
CLASS = "Business Mail 100 MB"

NOT_PLAIN = [
    "a*b",
    "a/b",
    "a%b",
    "o'brien",
    'a"b',
    "a\\b",
    "a b",
    "a+b",
    ".a",
    "a.",
    "a..b",
    "-a",
    "a=b",
    "a#b",
]
PLAIN = ["mario.rossi", "m_rossi", "info-2026", "a", "ufficio-"]


def _refused(call, field: str) -> str:
    before = row_counts()
    with pytest.raises(ValidationError) as info:
        call()
    db.session.rollback()
    assert row_counts() == before
    assert field in info.value.errors, info.value.errors
    return info.value.errors[field]


@pytest.mark.parametrize("local", NOT_PLAIN)
def test_local_parts_are_plain_for_mailboxes_aliases_and_lists(app, make, local):
    c = make.customer()
    box = make.mailbox(c, "titolare")
    domain = make.domain_of(c)
    address = f"{local}@{domain}"
    _refused(
        lambda: mailboxes.create_mailbox(
            SYSTEM, c.id, address=address, password=factories.PASSWORD, service_class=CLASS
        ),
        "address",
    )
    _refused(lambda: aliases.create_alias(SYSTEM, c.id, address=address, target=box.address), "address")
    _refused(lambda: lists.create_list(SYSTEM, c.id, address=address, members=[box.address]), "address")


@pytest.mark.parametrize("local", PLAIN)
def test_plain_local_parts_are_accepted(app, make, local):
    c = make.customer()
    box = make.mailbox(c, local)
    assert box.address == f"{local}@{make.domain_of(c)}"


def test_the_api_says_which_characters_a_local_part_may_have(app, client, make):
    c = make.customer()
    token = users.create_token(SYSTEM, make.admin(c), "t")[1]
    response = client.post(
        f"/api/v1/customers/{c.id}/mailboxes",
        json={
            "address": f"mario+news@{make.domain_of(c)}",
            "password": factories.PASSWORD,
            "service_class": CLASS,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422
    assert (
        "lettere non accentate, cifre, punto (.), trattino (-) e trattino basso (_)"
        in response.get_json()["errors"]["address"]
    )


@pytest.mark.parametrize(
    "name",
    [
        "Mario\u202eissoR",
        "\u200bMario",
        "Ma\u200drio",
        "Mario\ufeff",
        "A\u2066B\u2069",
        "Mario\u2028Rossi",
        "A\x7f",
    ],
)
def test_display_names_without_hidden_characters(app, make, name):
    c = make.customer()
    message = _refused(
        lambda: mailboxes.create_mailbox(
            SYSTEM,
            c.id,
            address=f"mario@{make.domain_of(c)}",
            password=factories.PASSWORD,
            display_name=name,
            service_class=CLASS,
        ),
        "display_name",
    )
    assert "invisibili" in message
    box = make.mailbox(c, "anna")
    _refused(lambda: mailboxes.update_mailbox(SYSTEM, box.id, display_name=name), "display_name")


def test_display_names_in_any_script_are_fine(app, make):
    c = make.customer()
    assert (
        make.mailbox(c, "zoe", display_name="Zoë Ñandú-Łukasz 山田").display_name == "Zoë Ñandú-Łukasz 山田"
    )


# Passwords


@pytest.mark.parametrize("password", ["password1", "Qwertyuiop", "ILOVEYOU", "12345678", "juventus"])
def test_common_passwords_are_refused_everywhere(app, make, password):
    c = make.customer()
    domain = make.domain_of(c)
    message = _refused(
        lambda: mailboxes.create_mailbox(
            SYSTEM, c.id, address=f"m@{domain}", password=password, service_class=CLASS
        ),
        "password",
    )
    assert "più usate" in message
    box = make.mailbox(c, "anna")
    _refused(lambda: mailboxes.update_mailbox(SYSTEM, box.id, password=password), "password")
    _refused(
        lambda: users.create_user(
            SYSTEM, email=f"a@{domain}", password=password, role="customer_admin", customer_id=c.id
        ),
        "password",
    )
    admin = make.admin(c)
    actor = Actor.for_user(admin, ip=None, via="web")
    _refused(lambda: users.change_password(actor, admin, factories.PASSWORD, password), "new_password")


def test_the_common_list_is_the_ranked_ten_thousand():
    common = passwords.common_passwords()
    assert len(common) == 10_000
    assert {"123456", "password", "qwerty"} <= common


@pytest.mark.parametrize("password", ["Mario.Rossi", "MARIO.ROSSI@STUDIO.EXAMPLE"])
def test_a_password_equal_to_the_address_or_its_local_part_is_refused(app, make, password):
    c = make.customer(domain="studio.example")
    message = _refused(
        lambda: mailboxes.create_mailbox(
            SYSTEM, c.id, address="mario.rossi@studio.example", password=password, service_class=CLASS
        ),
        "password",
    )
    assert "indirizzo" in message
    _refused(
        lambda: users.create_user(
            SYSTEM,
            email="mario.rossi@studio.example",
            password=password,
            role="customer_admin",
            customer_id=c.id,
        ),
        "password",
    )


def test_staff_passwords_have_at_least_twelve_characters(app, make):
    c = make.customer()
    message = _refused(
        lambda: users.create_user(SYSTEM, email="nuovo@collabra.it", password="Undici-car1", role="staff"),
        "password",
    )
    assert message == "La password del supporto tecnico deve avere almeno 12 caratteri."
    staff = make.staff()
    actor = Actor.for_user(staff, ip=None, via="web")
    _refused(lambda: users.change_password(actor, staff, factories.PASSWORD, "Undici-car1"), "new_password")
    # Twelve are enough for staff; customer admins and mailboxes keep the minimum of eight.
    users.create_user(SYSTEM, email="nuovo@collabra.it", password="Dodici-cara1", role="staff")
    users.create_user(
        SYSTEM, email=f"a@{make.domain_of(c)}", password="Otto-ca1", role="customer_admin", customer_id=c.id
    )
    make.mailbox(c, "breve", password="Otto-ca2")


def test_the_cli_applies_the_same_policy(app):
    before = row_counts()
    result = app.test_cli_runner().invoke(
        args=["users", "create", "nuovo@collabra.it", "--role", "staff", "--password-env", "PW"],
        env={"PW": "Undici-car1"},
    )
    assert result.exit_code != 0 and "12" in result.output and "Traceback" not in result.output
    assert row_counts() == before


# Hashing, bounded per customer


def _hold_slots(app, customer_id: int, count: int):
    """Threads that take `count` of the customer's hashing slots and keep them until released."""
    taken, release = threading.Barrier(count + 1), threading.Event()

    def hold():
        with app.app_context(), passwords.hashing_slot(customer_id):
            taken.wait(10)
            release.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for t in threads:
        t.start()
    taken.wait(10)  # a broken barrier (a holder that failed) fails the test instead of hanging it
    return release, threads


def test_another_customer_hashes_while_one_is_at_its_limit(app, make):
    busy, other = make.customer(), make.customer()
    app.config.update(ARGON2_PER_CUSTOMER=2, ARGON2_WAIT_SECONDS=0.3)
    release, threads = _hold_slots(app, busy.id, 2)
    try:
        # The other customer's mailbox is created at once...
        box = make.mailbox(other, "libera")
        assert passwords.verify_mailbox_password(box.password_hash, factories.PASSWORD)
        # ...while the busy one's next hash waits its turn, then is refused: nothing written.
        before = row_counts()
        with pytest.raises(passwords.HashingBusy) as info:
            make.mailbox(busy, "in-coda")
        db.session.rollback()
        assert info.value.status == 429
        assert row_counts() == before
    finally:
        release.set()
        for t in threads:
            t.join()
        app.config.update(ARGON2_PER_CUSTOMER=2, ARGON2_WAIT_SECONDS=30)
    make.mailbox(busy, "dopo")  # its slots are free again


def test_a_customer_at_its_hashing_limit_reads_a_429_in_the_portal(app, client, auth, make):
    c = make.customer()
    auth.login(make.admin(c).email)
    app.config.update(ARGON2_PER_CUSTOMER=1, ARGON2_WAIT_SECONDS=0.2)
    release, threads = _hold_slots(app, c.id, 1)
    try:
        before = row_counts()
        response = client.post(
            f"/customers/{c.id}/mailboxes",
            data={
                "local_part": "anna",
                "domain": make.domain_of(c),
                "display_name": "Anna",
                "password": factories.PASSWORD,
                "service_class": CLASS,
            },
        )
        assert response.status_code == 429
        assert "riprova tra poco" in response.get_data(as_text=True)
        assert row_counts() == before
    finally:
        release.set()
        for t in threads:
            t.join()
        app.config.update(ARGON2_PER_CUSTOMER=2, ARGON2_WAIT_SECONDS=30)


def test_the_bound_holds_across_processes_through_redis(app, make, connection):  # noqa: F811
    busy, other = make.customer(), make.customer()
    key = passwords.shared_key(busy.id)
    app.config.update(REDIS_URL=REDIS_URL, ARGON2_PER_CUSTOMER=2, ARGON2_WAIT_SECONDS=0.3)
    # Two other processes (web workers, a job) hold both of the busy customer's slots.
    now = time.time()
    connection.zadd(key, {"worker-a": now, "worker-b": now})
    try:
        box = make.mailbox(other, "libera")
        assert passwords.verify_mailbox_password(box.password_hash, factories.PASSWORD)
        before = row_counts()
        with pytest.raises(passwords.HashingBusy):
            make.mailbox(busy, "in-coda")
        db.session.rollback()
        assert row_counts() == before
        # A holder that died (killed with its slot) stops counting after ARGON2_SLOT_HOLD_SECONDS.
        connection.zadd(key, {"worker-a": now - app.config["ARGON2_SLOT_HOLD_SECONDS"] - 1})
        make.mailbox(busy, "dopo")
        assert connection.zrange(key, 0, -1) == [b"worker-b"]  # its own slot was given back
    finally:
        app.config.update(REDIS_URL=None, ARGON2_PER_CUSTOMER=2, ARGON2_WAIT_SECONDS=30)


def test_without_redis_the_process_bound_still_lets_passwords_through(app, make):
    app.config.update(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    try:
        box = make.mailbox(make.customer(), "anna")
        assert passwords.verify_mailbox_password(box.password_hash, factories.PASSWORD)
    finally:
        app.config.update(REDIS_URL=None)


# Searches take % and _ literally


def test_a_search_for_a_wildcard_finds_only_names_containing_it(app, client, make):
    c = make.customer(name="Sconto 50% Srl")
    make.customer(name="Altra Ditta")
    make.mailbox(c, "mario_rossi")
    make.mailbox(c, "marioxrossi")
    make.alias(c, "uff_vendite", make.mailbox(c, "vendite"))
    make.alias(c, "uffxacquisti", make.mailbox(c, "acquisti"))
    token = users.create_token(SYSTEM, make.staff(), "t")[1]
    headers = {"Authorization": f"Bearer {token}"}

    found = client.get("/api/v1/customers", query_string={"q": "%"}, headers=headers).get_json()
    assert [x["name"] for x in found["items"]] == ["Sconto 50% Srl"]
    found = client.get(
        f"/api/v1/customers/{c.id}/mailboxes", query_string={"q": "_"}, headers=headers
    ).get_json()
    assert [x["address"].split("@")[0] for x in found["items"]] == ["mario_rossi"]
    found = client.get(
        f"/api/v1/customers/{c.id}/aliases", query_string={"q": "_"}, headers=headers
    ).get_json()
    items = found["items"] if isinstance(found, dict) else found
    assert [x["address"].split("@")[0] for x in items] == ["uff_vendite"]


def test_a_list_search_for_a_wildcard_finds_only_lists_containing_it(app, client, auth, make):
    c = make.customer()
    member = make.mailbox(c, "socio")
    make.dlist(c, "soci_tutti", [member.address])
    make.dlist(c, "socixtutti", [member.address])
    make.dlist(c, "sconto", [member.address])
    token = users.create_token(SYSTEM, make.staff(), "t")[1]
    headers = {"Authorization": f"Bearer {token}"}

    def api(q: str) -> list[str]:
        found = client.get(
            f"/api/v1/customers/{c.id}/lists", query_string={"q": q}, headers=headers
        ).get_json()
        items = found["items"] if isinstance(found, dict) else found
        return [x["address"].split("@")[0] for x in items]

    assert api("_") == ["soci_tutti"]
    assert api("%") == []
    assert api("soci%tutti") == []
    assert sorted(api("soci")) == ["soci_tutti", "socixtutti"]
    # The portal's list page, as the customer's admin sees it.
    auth.login(make.admin(c).email)
    page = client.get(f"/customers/{c.id}/lists", query_string={"q": "_"}).get_data(as_text=True)
    assert "soci_tutti@" in page and "socixtutti@" not in page and "sconto@" not in page


def test_an_audit_search_for_a_wildcard_finds_only_actors_and_targets_containing_it(app, client, auth, make):
    for who, target in (
        ("op_uno@collabra.it", "sconto 100% pieno"),
        ("opxuno@collabra.it", "sconto 1000 pieno"),
    ):
        db.session.add(AuditEvent(actor=who, via="web", action="test.wildcard", target=target, changes={}))
    db.session.commit()
    auth.login(make.staff().email)

    def rows(**filters: str) -> list[str]:
        page = client.get("/admin/audit", query_string={"action": "test.wildcard", **filters})
        assert page.status_code == 200
        body = re.search(r"<tbody>(.*?)</tbody>", page.get_data(as_text=True), re.S)
        return re.findall(r"<tr>.*?</tr>", body.group(1), re.S) if body else []

    assert len(rows()) == 2
    by_actor = rows(actor="_")
    assert len(by_actor) == 1 and "op_uno@collabra.it" in by_actor[0]
    assert rows(actor="op%uno") == []
    by_target = rows(target="%")
    assert len(by_target) == 1 and "sconto 100% pieno" in by_target[0]
    assert rows(target="sconto_100") == []


# No SQL parameters in messages


def test_a_failed_statement_never_shows_its_parameters(app, make):
    make.staff(email="doppio@collabra.it")
    db.session.add(User(email="doppio@collabra.it", password_hash="HASH-SEGRETO", role="staff"))
    with pytest.raises(sa.exc.IntegrityError) as info:
        db.session.flush()
    db.session.rollback()
    # (PostgreSQL's own DETAIL line still names the duplicated key, which is not a parameter.)
    assert "HASH-SEGRETO" not in str(info.value)
    assert "hidden" in str(info.value)
