"""Lists are no spam amplifier: who may post (post_policy, read by Postfix through the views)
and limits on external members."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.mailserver import mail_list_policy
from app.services import lists
from app.services.access import Actor
from app.services.errors import PermissionDenied, ValidationError
from tests.factories import SYSTEM


def rows(sql: str, **params) -> list[tuple]:
    return [tuple(r) for r in db.session.execute(sa.text(sql), params)]


def externals(n: int, start: int = 0) -> list[str]:
    return [f"socio{i}@fuori.example" for i in range(start, start + n)]


def test_a_new_list_is_closed_to_strangers_and_the_policy_is_validated(make):
    c = make.customer(domain="nuova.example")
    dlist = make.dlist(c, "tutti", [])
    assert dlist.post_policy == "customer"
    for bad in ("everyone", "", None, 3, ["anyone"]):
        with pytest.raises(ValidationError) as e:
            lists.update_list(SYSTEM, dlist.id, post_policy=bad if bad is not None else "null")
        assert "post_policy" in e.value.errors
    assert lists.get_list(SYSTEM, dlist.id).post_policy == "customer"
    with pytest.raises(ValidationError):
        make.dlist(c, "altra", [], post_policy="chiunque")


def test_external_members_are_limited_per_list_and_per_customer(make, app, monkeypatch):
    monkeypatch.setitem(app.config, "LIST_EXTERNAL_PER_LIST", 3)
    monkeypatch.setitem(app.config, "LIST_EXTERNAL_PER_CUSTOMER", 5)
    c = make.customer(domain="limiti.example")
    box = make.mailbox(c, "anna")
    # Mailboxes of the customer never count.
    first = make.dlist(c, "uno", [box.address, *externals(3)])

    with pytest.raises(ValidationError) as e:
        make.dlist(c, "due", externals(4, 10))
    assert e.value.errors["members"] == (
        "Troppi indirizzi esterni: 4 in questa lista, il limite è 3 per lista."
    )
    second = make.dlist(c, "due", externals(2, 10))
    with pytest.raises(ValidationError) as e:
        lists.add_member(SYSTEM, second.id, "uno-di-troppo@fuori.example")
    assert e.value.errors["members"] == (
        "Troppi indirizzi esterni: 6 in tutte le liste con questa modifica, il limite è 5 per cliente."
    )
    assert len(lists.get_list(SYSTEM, second.id).members) == 2  # nothing half-written

    # Staff raise the limits for this customer; then lower them: removing still works.
    with pytest.raises(PermissionDenied):
        lists.set_external_limits(Actor.for_user(make.admin(c)), c.id, per_list=10, per_customer=10)
    lists.set_external_limits(SYSTEM, c.id, per_list=None, per_customer=10)
    lists.add_member(SYSTEM, second.id, "uno-di-troppo@fuori.example")
    lists.set_external_limits(SYSTEM, c.id, per_list=1, per_customer=1)
    remaining = [m.address for m in lists.get_list(SYSTEM, first.id).members][:-1]
    lists.update_list(SYSTEM, first.id, members=remaining, description="Meno soci")
    assert lists.external_count(c.id) == 5
    with pytest.raises(ValidationError):
        lists.set_external_limits(SYSTEM, c.id, per_list=-1, per_customer="molti")


def test_a_list_cannot_be_a_member_of_another_list(make):
    """Postfix expands a nested list after its SMTP checks: the inner list's rule would not hold."""
    other = make.customer(domain="chiusa.example")
    make.dlist(other, "riservata", [])
    c = make.customer(domain="aperta.example")
    with pytest.raises(ValidationError) as e:
        make.dlist(c, "tutti", ["riservata@chiusa.example"], post_policy="anyone")
    assert "lista di distribuzione" in e.value.errors["members"]


def test_the_views_say_which_lists_are_restricted_and_who_may_post(make):
    c = make.customer(domain="viste.example")
    anna = make.mailbox(c, "anna")
    make.mailbox(c, "bruno")
    other = make.mailbox(make.customer(domain="altro.example"), "carlo")
    make.dlist(c, "aperta", [anna.address], post_policy="anyone")
    make.dlist(c, "staff", [anna.address])
    make.dlist(c, "soci", [anna.address, "socio@fuori.example"], post_policy="members")

    assert sorted(rows("SELECT address, post_policy FROM mail_lists")) == [
        ("aperta@viste.example", "anyone"),
        ("soci@viste.example", "members"),
        ("staff@viste.example", "customer"),
    ]
    assert sorted(rows("SELECT list, sender, authenticated FROM mail_list_senders")) == [
        ("soci@viste.example", "anna@viste.example", 1),
        ("soci@viste.example", "socio@fuori.example", 0),
        ("staff@viste.example", "anna@viste.example", 1),
        ("staff@viste.example", "bruno@viste.example", 1),
    ]
    assert other.address not in str(rows("SELECT sender FROM mail_list_senders"))


def ask(attrs: dict[str, str]) -> str:
    """One request to the list-policy service, on the test database."""
    request = "".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n"
    connection = db.session.connection().connection.driver_connection
    placeholder = "?" if db.engine.dialect.name == "sqlite" else "%s"
    return mail_list_policy.decide(
        connection, placeholder, mail_list_policy.read_request(io.StringIO(request))
    )


def test_the_policy_service_admits_logins_for_mailboxes_and_envelope_senders_for_external_members(make):
    c = make.customer(domain="servizio.example")
    anna, bruno = make.mailbox(c, "anna"), make.mailbox(c, "bruno")
    make.dlist(c, "staff", [])
    make.dlist(c, "soci", [anna.address, "socio@fuori.example"], post_policy="members")
    make.dlist(c, "aperta", [], post_policy="anyone")

    def verdict(rcpt, sender="", login=""):
        return ask(
            {"request": "smtpd_access_policy", "recipient": rcpt, "sender": sender, "sasl_username": login}
        )

    assert verdict("Staff@Servizio.example", bruno.address, bruno.address) == "DUNNO"
    assert verdict("staff@servizio.example", bruno.address).startswith("REJECT 5.7.1")  # forged, no login
    assert verdict("staff@servizio.example", "x@y.example", "carlo@altro.example").startswith("REJECT")
    assert verdict("soci@servizio.example", "", anna.address) == "DUNNO"
    assert verdict("soci@servizio.example", "socio@fuori.example") == "DUNNO"
    assert verdict("soci@servizio.example", anna.address).startswith("REJECT")
    assert verdict("soci@servizio.example", bruno.address, bruno.address).startswith("REJECT")
    assert verdict("aperta@servizio.example", "chiunque@fuori.example") == "DUNNO"
    assert verdict("sconosciuta@servizio.example", "chiunque@fuori.example") == "DUNNO"


def test_the_policy_service_speaks_postfix_s_protocol_and_defers_when_the_database_is_away(tmp_path):
    conf = tmp_path / "list_policy.cf"
    conf.write_text(f"# comment\ndbpath = {tmp_path / 'missing' / 'db.sqlite3'}\n")
    out = io.StringIO()
    request = "request=smtpd_access_policy\nrecipient=a@b.example\nsender=c@d.example\n\n"
    mail_list_policy.serve(str(conf), io.StringIO(request * 2), out)
    assert out.getvalue() == "action=DEFER_IF_PERMIT 4.3.0 list policy temporarily unavailable\n\n" * 2
    # Nothing was created where the database should be.
    conf.write_text(f"dbpath = {tmp_path / 'manca.sqlite3'}\n")
    mail_list_policy.serve(str(conf), io.StringIO(request), io.StringIO())
    assert not (tmp_path / "manca.sqlite3").exists()
