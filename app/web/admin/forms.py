"""Reading back-office forms into the plain values the services take.

Validation stays in the services; this module only maps form fields to
arguments and service error keys back to form fields.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from app.models import ServiceClass

MAX_PREFIX = "max_"


def customer_fields(form: MultiDict) -> dict:
    return {
        k: form.get(k, "") for k in ("name", "vat_number", "contact_email", "plan", "vat_duplicate_reason")
    }


def contract_allowances(form: MultiDict, classes: list[ServiceClass]) -> tuple[list[dict], list[str]]:
    """The allowances list for customers.set_contract, and the form field of each entry.

    A blank box means "none of this class". Boxes for ids that are not one of
    the classes go to the service too, so it reports them like any bad class.
    """
    items: list[dict] = []
    keys: list[str] = []
    known = {str(c.id) for c in classes}
    for c in classes:
        key = f"{MAX_PREFIX}{c.id}"
        raw = form.get(key, "")
        items.append({"service_class": c.id, "max_accounts": raw if raw.strip() else 0})
        keys.append(key)
    for key in form:
        if key.startswith(MAX_PREFIX) and key[len(MAX_PREFIX) :] not in known:
            items.append({"service_class": key[len(MAX_PREFIX) :], "max_accounts": form.get(key)})
            keys.append(key)
    return items, keys


def contract_errors(errors: dict[str, str], keys: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map "allowances.3.max_accounts" to the form field; other messages stay general."""
    by_field: dict[str, str] = {}
    general: list[str] = []
    for key, message in errors.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "allowances" and parts[1].isdigit() and int(parts[1]) < len(keys):
            if parts[2] == "max_accounts":
                by_field[keys[int(parts[1])]] = message
                continue
        general.append(message)
    return by_field, general


def local_date(value: str, field: str, errors: dict[str, str]) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = _("Data non valida: usa il formato AAAA-MM-GG.")
        return None


def day_start_utc(day: date) -> datetime:
    """Midnight of a local day (the panel's timezone), as an aware datetime."""
    tz = ZoneInfo(current_app.config["TIMEZONE"])
    return datetime.combine(day, time.min, tzinfo=tz)


def day_after_utc(day: date) -> datetime:
    return day_start_utc(day + timedelta(days=1))


def int_or_none(value: object) -> int | None:
    value = str(value or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None
