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
    by_id = isinstance(value, int) and not isinstance(value, bool)
    if by_id or (isinstance(value, str) and value.strip().isdigit()):
        class_id = fields.row_id(value)
        row = db.session.get(ServiceClass, class_id) if class_id else None
    else:
        try:
            key = catalog.parse_class_name(value)
        except catalog.UnknownServiceClass:
            row = None
        else:
            row = db.session.scalar(
                sa.select(ServiceClass).where(
                    ServiceClass.type == key.type, ServiceClass.quota_mb == key.quota_mb
                )
            )
    if row is None:
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
    return row
