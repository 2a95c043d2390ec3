"""Classes of service as database rows, looked up by the names people type."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import ServiceClass
from app.services import catalog, fields
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
        return catalog.parse_class_name(value)
    except catalog.UnknownServiceClass:
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
