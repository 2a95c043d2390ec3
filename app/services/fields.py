"""Reading plain input values: type, length, required. Messages are for people."""

from __future__ import annotations

import unicodedata

from flask_babel import gettext as _

from app.services.errors import ValidationError


def text(value: object, field: str, *, max_len: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError.one(field, _("Deve essere un testo."))
    value = value.strip()
    if required and not value:
        raise ValidationError.one(field, _("Campo obbligatorio."))
    if len(value) > max_len:
        raise ValidationError.one(field, _("Al massimo %(n)d caratteri.", n=max_len))
    if has_hidden_characters(value):
        raise ValidationError.one(
            field, _("Contiene caratteri non ammessi: di controllo, invisibili o che invertono il testo.")
        )
    return value


# Control characters (Cc), invisible format characters (Cf: zero-width spaces and joiners,
# bidi embeddings and overrides U+202A-U+202E and isolates U+2066-U+2069, U+FEFF), line and
# paragraph separators and lone surrogates: none belongs in a name, and some make one name
# look like another ("‮moc.elpmaxe") in every list that shows it.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def has_hidden_characters(value: str) -> bool:
    return any(unicodedata.category(c) in _HIDDEN_CATEGORIES for c in value)


def integer(value: object, field: str, *, minimum: int = 0, maximum: int = 1_000_000) -> int:
    if isinstance(value, bool):
        raise ValidationError.one(field, _("Deve essere un numero intero."))
    if isinstance(value, str):
        try:
            # int() refuses some strings isdigit() accepts ("²", "--5", thousands of digits).
            value = int(value.strip()) if value.strip().lstrip("-").isdigit() else None
        except ValueError:
            value = None
        if value is None:
            raise ValidationError.one(field, _("Deve essere un numero intero."))
    if not isinstance(value, int):
        raise ValidationError.one(field, _("Deve essere un numero intero."))
    if value < minimum or value > maximum:
        raise ValidationError.one(field, _("Deve essere tra %(a)d e %(b)d.", a=minimum, b=maximum))
    return value


def boolean(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "on", "yes", "y", "si", "sì"}:
        return True
    if value in (None, "", 0) or (
        isinstance(value, str) and value.lower() in {"0", "false", "off", "no", "n"}
    ):
        return False
    raise ValidationError.one(field, _("Deve essere vero o falso."))


MAX_ROW_ID = 2**31 - 1


def row_id(value: object) -> int | None:
    """An id as people send it (int or digits), or None when it cannot name a row.

    Out-of-range numbers would make the database driver fail, so they are
    treated like any other id that matches nothing.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID:
        return value
    return None
