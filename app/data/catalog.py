"""The catalogue of classes of service: a type (features) times a size.

The guide names a class like "Business Mail 5.000 MB" (Italian thousands
dot). The 32 classes are rows of the service_classes table, created by the
first migration from a frozen copy of the lists below; this module is the
one place that knows the types, sizes, features and how a class's name is
written. Reading a name a person typed is a rule: app/services/classes.py.
"""

from __future__ import annotations

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
