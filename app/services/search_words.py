"""The words a mailbox is found by: the start of any word of its address's local part or display name.

The portal's list finds a mailbox when each word typed starts one of its words, or its address
(the address's index serves that: the local part's first word is not stored) ("rossi" finds
mario.rossi@… and "Mario Rossi", "nicolo" finds "Nicolò", "mcd" finds "McDonald"). The words are
kept in mailbox_words, one row per (mailbox, word), so a search reads an index range of the
customer's words instead of every name. reindex() is the one place that writes them: every
service that creates a mailbox or changes its local part or display name calls it; deleting a
mailbox removes its words (ON DELETE CASCADE).

Pure Python apart from reindex(): migration 0010 and the bench use words_for() without an app.
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa

MAX_WORD_LEN = 64  # longer words are kept by their start: typing it still finds them
MAX_WORDS = 32  # per mailbox: a display name of a hundred words does not make a hundred rows
MAX_QUERY_WORDS = 8  # of the typed text, the longest; the rest add little and cost a lookup each

# Separators: anything but a letter or a digit (the local part's ".", "_", "-", "+"; a name's
# spaces, apostrophes, hyphens, commas…). Marks are dropped before splitting (see fold).
_SEPARATORS = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower case without accents: "Nicolò" -> "nicolo", "Straße" -> "strasse", "ＡＢ" -> "ab"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def split(text: str) -> list[str]:
    """The folded words of text, each cut to MAX_WORD_LEN, in order, without repeats."""
    words = (w[:MAX_WORD_LEN] for w in _SEPARATORS.split(fold(text)) if w)
    return list(dict.fromkeys(words))


def _joined(text: str) -> list[str]:
    """Each space-separated chunk with several parts, written together: "mario.rossi" ->
    "mariorossi", "O'Brien" -> "obrien", "Jean-Luc" -> "jeanluc" (found as typed without the mark)."""
    out = []
    for chunk in text.split():
        parts = split(chunk)
        if len(parts) > 1:
            out.append("".join(parts)[:MAX_WORD_LEN])
    return out


def words_for(local_part: str, display_name: str) -> list[str]:
    """The words a mailbox is found by, at most MAX_WORDS: the local part's words but its first,
    the display name's, then each written together; the first ones are kept when there are too
    many. The local part's first word is where the address starts: the address's own index finds
    it ("mario" of mario.rossi@…), so it is not kept twice (nor read twice by a search)."""
    local_part, display_name = local_part or "", display_name or ""
    found = split(local_part)[1:] + split(display_name) + _joined(local_part) + _joined(display_name)
    return list(dict.fromkeys(found))[:MAX_WORDS]


def query_words(text: object) -> list[str]:
    """The words a search looks for, folded like the mailboxes' and longest first (the first is
    the one read as an index range). A word that starts another typed word is dropped: whatever
    matches the longer one matches it too ("ro rossi" is "rossi"). [] when nothing is left."""
    words = split(text) if isinstance(text, str) else []
    kept = [w for w in words if not any(o != w and o.startswith(w) for o in words)]
    return sorted(kept, key=len, reverse=True)[:MAX_QUERY_WORDS]


def reindex(mailbox) -> None:
    """Replace a mailbox's words with those of its local part and display name (it has an id).

    Part of the caller's transaction: the caller commits.
    """
    from app.extensions import db
    from app.models import MailboxWord

    table = MailboxWord.__table__
    db.session.execute(sa.delete(table).where(table.c.mailbox_id == mailbox.id))
    rows = [
        {"mailbox_id": mailbox.id, "customer_id": mailbox.customer_id, "word": word}
        for word in words_for(mailbox.local_part, mailbox.display_name)
    ]
    if rows:
        db.session.execute(sa.insert(table), rows)
