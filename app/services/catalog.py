"""The catalogue of classes of service: a type (features) times a size.

The guide names a class like "Business Mail 5.000 MB" (Italian thousands
dot). The 32 classes are rows of the service_classes table, created by the
first migration from the same lists as below; this module is the one place
that knows names, features and how to read a name a person typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

# (code, guide name, features), in the guide's order.
TYPES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("business_mail", "Business Mail", ("email", "contacts")),
    ("business_mail_plus", "Business Mail Plus", ("email", "contacts", "calendar")),
    (
        "standard_suite",
        "Standard Suite",
        ("email", "contacts", "calendar", "briefcase", "sharing"),
    ),
    (
        "professional_suite",
        "Professional Suite",
        ("email", "contacts", "calendar", "briefcase", "sharing", "mobile", "outlook_mapi"),
    ),
)
SIZES_MB: tuple[int, ...] = (100, 200, 500, 1000, 2000, 5000, 10000, 25000)

FEATURE_LABELS = {
    "email": _l("Email"),
    "contacts": _l("Rubrica"),
    "calendar": _l("Agenda"),
    "briefcase": _l("Valigetta"),
    "sharing": _l("Condivisione"),
    "mobile": _l("Accesso Mobile"),
    "outlook_mapi": _l("Outlook MAPI"),
}

_TYPE_NAMES = {code: name for code, name, _ in TYPES}
_TYPE_FEATURES = {code: feats for code, _, feats in TYPES}


class UnknownServiceClass(ValueError):
    """A name that is not one of the 32 classes; carries the valid names."""

    def __init__(self, given: str):
        self.given = given
        self.valid_names = all_names()
        super().__init__(given)


@dataclass(frozen=True)
class ClassKey:
    type: str
    quota_mb: int

    @property
    def name(self) -> str:
        return class_name(self.type, self.quota_mb)

    @property
    def features(self) -> tuple[str, ...]:
        return _TYPE_FEATURES[self.type]


def format_mb(quota_mb: int) -> str:
    """5000 -> '5.000' (the guide's Italian thousands separator)."""
    return f"{quota_mb:,}".replace(",", ".")


def class_name(type_code: str, quota_mb: int) -> str:
    return f"{_TYPE_NAMES[type_code]} {format_mb(quota_mb)} MB"


def type_name(type_code: str) -> str:
    return _TYPE_NAMES[type_code]


def type_features(type_code: str) -> tuple[str, ...]:
    return _TYPE_FEATURES[type_code]


def all_keys() -> list[ClassKey]:
    return [ClassKey(code, size) for code, _, _ in TYPES for size in SIZES_MB]


def all_names() -> list[str]:
    return [k.name for k in all_keys()]


# Longest type names first so "Business Mail Plus" is not read as "Business Mail".
_TYPE_BY_NORMALISED = sorted(
    ((re.sub(r"[\s_-]+", " ", name.lower()), code) for code, name, _ in TYPES),
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


def parse_class_name(text: object) -> ClassKey:
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
            if size in SIZES_MB:
                return ClassKey(code, size)
            break
    raise UnknownServiceClass(text)
