"""The portal's mailbox list finds a mailbox by the start of any word of its address or name."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import MailboxWord
from app.services import mailboxes, search_words
from app.services.errors import ValidationError
from tests import factories
from tests.web.test_mailbox_list_paging import link, rows, walk

CAPPED = "Troppe caselle contengono parole che iniziano così"


@pytest.fixture
def people(make, auth):
    c = make.customer("payg", domain="cliente.it")
    make.mailbox(c, "mario.rossi", display_name="Mario")
    make.mailbox(c, "anna", display_name="Anna Rossi")
    make.mailbox(c, "nicol", display_name="Nicolò Bianchi")
    make.mailbox(c, "ronald", display_name="Ronald McDonald")
    make.mailbox(c, "rossella", display_name="Rossella O'Brien")
    make.mailbox(c, "info", display_name="Ufficio informazioni")
    other = make.customer("payg", domain="altro.it")
    make.mailbox(other, "rossi", display_name="Rossi Altrui")
    make.mailbox(other, "g.rossi", display_name="Giulia Rossi")
    auth.login(make.admin(c).email)
    return c


def found(client, c, query: str) -> list[str]:
    return rows(client.get(f"/customers/{c.id}/mailboxes?{query}").get_data(as_text=True))


def test_a_surname_finds_the_address_and_the_display_name(client, people):
    assert found(client, people, "q=rossi") == ["anna@cliente.it", "mario.rossi@cliente.it"]
    # The start of any word, accents and case aside.
    assert found(client, people, "q=ross") == [
        "anna@cliente.it",
        "mario.rossi@cliente.it",
        "rossella@cliente.it",
    ]
    assert found(client, people, "q=nicolo") == ["nicol@cliente.it"]
    assert found(client, people, "q=NICOLÒ") == ["nicol@cliente.it"]
    assert found(client, people, "q=mcd") == ["ronald@cliente.it"]
    assert found(client, people, "q=brien") == found(client, people, "q=obrien") == ["rossella@cliente.it"]
    assert found(client, people, "q=mariorossi") == ["mario.rossi@cliente.it"]
    # Every word typed must start one of the mailbox's words, in any order.
    assert found(client, people, "q=mario ros") == ["mario.rossi@cliente.it"]
    assert found(client, people, "q=rossi anna") == ["anna@cliente.it"]
    assert found(client, people, "q=anna bianchi") == []
    # The address's start, as before, and a filter on top of the words.
    assert found(client, people, "q=inf") == ["info@cliente.it"]
    assert found(client, people, "q=rossi&status=suspended") == []
    html = client.get(f"/customers/{people.id}/mailboxes?q=rossi").get_data(as_text=True)
    assert "2 caselle trovate" in html and CAPPED not in html


def test_another_customers_words_never_match(client, people):
    for query in ("q=rossi", "q=giulia", "q=altrui", "q=g rossi", "q=ross&per_page=1"):
        seen = sum(walk(client, f"/customers/{people.id}/mailboxes?{query}", "next"), [])
        assert all(a.endswith("@cliente.it") for a in seen), (query, seen)
    assert found(client, people, "q=giulia") == []


def test_text_without_letters_lists_everything(client, people):
    everything = found(client, people, "")
    assert len(everything) == 6
    for q in ("...", "@", "-_+", "%20"):
        assert found(client, people, f"q={q}") == everything


def test_paging_within_a_word_search_visits_each_match_once(client, make, auth):
    c = make.customer("payg", domain="verdi.example")
    expected = []
    for i in range(9):
        expected.append(make.mailbox(c, f"{'abcdefghi'[i]}{i}", display_name=f"Persona{i} Verdi").address)
    for i in range(4):  # by the address's start, and by both
        expected.append(make.mailbox(c, f"verdi{i}", display_name="Verdi" if i % 2 else "").address)
    make.mailbox(c, "zorro", display_name="Zorro Neri")
    auth.login(make.admin(c).email)
    url = f"/customers/{c.id}/mailboxes?q=verdi&per_page=4"
    pages = walk(client, url, "next")
    assert sum(pages, []) == sorted(expected) and [len(p) for p in pages] == [4, 4, 4, 1]
    assert walk(client, url + "&start=" + pages[-1][0], "prev") == pages[::-1]
    first = client.get(url).get_data(as_text=True)
    assert "13 caselle trovate" in first and link(first, "prev") is None


def test_a_new_display_name_changes_what_finds_the_mailbox(client, people):
    anna = mailboxes.list_page(factories.SYSTEM, people.id, q="anna").items[0]
    mailboxes.update_mailbox(factories.SYSTEM, anna.id, display_name="Anna Ferrari")
    assert found(client, people, "q=rossi") == ["mario.rossi@cliente.it"]
    assert found(client, people, "q=ferr") == ["anna@cliente.it"]
    # Through the portal's edit form, the same.
    response = client.post(
        f"/customers/{people.id}/mailboxes/{anna.id}",
        data={"display_name": "Anna Rossi Ferrari", "service_class": anna.service_class.name},
    )
    assert response.status_code in (200, 302, 303)
    assert found(client, people, "q=rossi") == ["anna@cliente.it", "mario.rossi@cliente.it"]
    # A change of something else leaves the words alone.
    mailboxes.update_mailbox(factories.SYSTEM, anna.id, status="suspended")
    assert found(client, people, "q=ferrari&status=suspended") == ["anna@cliente.it"]


def test_deleting_a_mailbox_removes_its_words(client, people):
    anna = mailboxes.list_page(factories.SYSTEM, people.id, q="anna").items[0]

    def words_of(mailbox_id):
        return db.session.scalars(
            sa.select(MailboxWord.word).where(MailboxWord.mailbox_id == mailbox_id)
        ).all()

    assert sorted(words_of(anna.id)) == ["anna", "rossi"]  # of the display name "Anna Rossi"
    mailboxes.delete_mailbox(factories.SYSTEM, anna.id)
    assert words_of(anna.id) == []
    assert found(client, people, "q=rossi") == ["mario.rossi@cliente.it"]


def test_a_hostile_display_name_stores_at_most_the_cap(make):
    c = make.customer("payg", domain="ostile.example")
    letters = "abcdefghijklmnopqrstuvwxyzαβγδεζηθικλμνξοπρστυφχψωабвгдежзийклмнопрстуфхцчшщ"
    name = " ".join(letters[:100])  # 100 one-letter words, the field's 200 characters
    m = make.mailbox(c, "ostile", display_name=name)
    stored = db.session.scalars(sa.select(MailboxWord.word).where(MailboxWord.mailbox_id == m.id)).all()
    assert len(stored) == search_words.MAX_WORDS == 32
    assert len(search_words.words_for("x", " ".join(["w"] * 500 + [f"p{i}" for i in range(500)]))) == 32
    assert search_words.words_for("a" * 64, "b" * 300) == ["b" * 64]
    assert search_words.words_for("mario.rossi", "Mario") == ["rossi", "mario", "mariorossi"]
    with pytest.raises(ValidationError):
        make.mailbox(c, "controllo", display_name="Mario\x00Rossi")


def test_past_the_cap_the_page_asks_for_more_letters(client, people, monkeypatch):
    monkeypatch.setattr(mailboxes, "WORD_MATCH_CAP", 2)
    html = client.get(f"/customers/{people.id}/mailboxes?q=ross").get_data(as_text=True)
    assert CAPPED in html and "Scrivi qualche lettera in più" in html
    # Still only this customer's mailboxes, each at most once.
    assert len(set(rows(html))) == len(rows(html)) and all(a.endswith("@cliente.it") for a in rows(html))
    assert CAPPED not in client.get(f"/customers/{people.id}/mailboxes?q=rossel").get_data(as_text=True)


def test_the_migration_gives_existing_mailboxes_their_words(app, people, client):
    from flask_migrate import downgrade, upgrade

    # Dropping a table waits for every open transaction that read it or a table it refers to:
    # the fixtures' session ends its own first.
    db.session.commit()
    downgrade(revision="0009_mailbox_list_indexes")
    try:
        with db.engine.connect() as conn:
            assert "mailbox_words" not in sa.inspect(conn).get_table_names()
    finally:
        upgrade()
    assert found(client, people, "q=rossi") == ["anna@cliente.it", "mario.rossi@cliente.it"]
    assert found(client, people, "q=nicolo") == ["nicol@cliente.it"]
