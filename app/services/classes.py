"""Classes of service as database rows, looked up by the names people type (the catalogue: app/data/catalog.py)."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask_babel import gettext as _

from app.data import catalog
from app.extensions import db
from app.models import ServiceClass
from app.services import fields
from app.services.errors import ValidationError


def all_classes() -> list[ServiceClass]:
    rows = db.session.scalars(sa.select(ServiceClass)).all()
    order = {k: i for i, k in enumerate(catalog.all_keys())}
    return sorted(rows, key=lambda r: order[catalog.ClassKey(r.type, r.quota_mb)])


def resolve(value: object, field: str = "service_class") -> ServiceClass:
    """A class from its name (any sensible spelling) or its id; ValidationError lists valid names."""
    ref = _reference(value)
    if isinstance(ref, int):
        row = db.session.get(ServiceClass, ref)
    elif isinstance(ref, catalog.ClassKey):
        row = db.session.scalar(
            sa.select(ServiceClass).where(
                ServiceClass.type == ref.type, ServiceClass.quota_mb == ref.quota_mb
            )
        )
    else:
        row = None
    return row if row is not None else _refuse(value, field)


class ClassIndex:
    """Every class, read once: resolves names and ids like resolve() without a query each
    (for checking many rows, a sheet's say, against the same catalogue)."""

    def __init__(self) -> None:
        rows = db.session.scalars(sa.select(ServiceClass)).all()
        self.by_id = {r.id: r for r in rows}
        self.by_key = {catalog.ClassKey(r.type, r.quota_mb): r for r in rows}

    def resolve(self, value: object, field: str = "service_class") -> ServiceClass:
        ref = _reference(value)
        row = self.by_id.get(ref) if isinstance(ref, int) else self.by_key.get(ref)
        return row if row is not None else _refuse(value, field)


def _reference(value: object) -> int | catalog.ClassKey | None:
    """An id, a catalogue key, or None when the value names no class."""
    if (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.strip().isdigit()
    ):
        return fields.row_id(value)
    try:
        return parse_class_name(value)
    except UnknownServiceClass:
        return None


def _refuse(value: object, field: str):
    if value is None or value == "":
        raise ValidationError.one(field, _("Scegli una classe di servizio."))
    raise ValidationError.one(
        field,
        _(
            "«%(v)s» non è una classe di servizio. Valori ammessi: %(names)s.",
            v=str(value)[:80],
            names=", ".join(catalog.all_names()),
        ),
    )


class UnknownServiceClass(ValueError):
    """A name that is not one of the 32 classes; carries the valid names."""

    def __init__(self, given: str):
        self.given = given
        self.valid_names = catalog.all_names()
        super().__init__(given)


# Longest type names first so "Business Mail Plus" is not read as "Business Mail".
_TYPE_BY_NORMALISED = sorted(
    ((re.sub(r"[\s_-]+", " ", name.lower()), code) for code, name, _ in catalog.TYPES),
    key=lambda item: -len(item[0]),
)
_SIZE_RE = re.compile(r"^(?P<num>\d{1,3}(?:[.,\s]\d{3})+|\d+(?:[.,]\d+)?)\s*(?P<unit>mb|gb)?$")


def _parse_size(text: str) -> int | None:
    m = _SIZE_RE.match(text)
    if not m:
        return None
    num, unit = m.group("num"), m.group("unit") or "mb"
    if re.fullmatch(r"\d{1,3}(?:[.,\s]\d{3})+", num):
        value = float(re.sub(r"[.,\s]", "", num))
    else:
        value = float(num.replace(",", "."))
    if unit == "gb":
        # "5 GB" is how people say 5.000 MB; the catalogue is decimal.
        value *= 1000
    if value != int(value):
        return None
    return int(value)


def parse_class_name(text: object) -> catalog.ClassKey:
    """Read a class name as the guide writes it, or a sensible variant.

    Accepts any case, "5000", "5.000", "5000MB", "5 GB", and underscores or
    dashes between words. Raises UnknownServiceClass otherwise.
    """
    if not isinstance(text, str):
        raise UnknownServiceClass(str(text))
    normalised = re.sub(r"[\s_]+", " ", text.strip().lower())
    for type_text, code in _TYPE_BY_NORMALISED:
        if normalised.startswith(type_text):
            rest = normalised[len(type_text) :].strip()
            size = _parse_size(rest)
            if size in catalog.SIZES_MB:
                return catalog.ClassKey(code, size)
            break
    raise UnknownServiceClass(text)
