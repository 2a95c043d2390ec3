"""Reading back-office forms into the plain values the services take.

Validation stays in the services; this module only maps form fields to
arguments and service error keys back to form fields.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from app.models import ServiceClass
from app.services.addresses import idna_display

MAX_PREFIX = "max_"


def customer_fields(form: MultiDict) -> dict:
    return {k: form.get(k, "") for k in ("name", "vat_number", "contact_email", "plan")}


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


FIELD_LABELS = {
    "name": _l("nome"),
    "vat_number": _l("partita IVA"),
    "contact_email": _l("email di contatto"),
    "plan": _l("piano"),
    "self_service": _l("amministrazione autonoma"),
    "display_name": _l("nome visualizzato"),
    "service_class": _l("classe"),
    "status": _l("stato"),
    "state": _l("stato"),
    "public_provider": _l("servizio di posta pubblico"),
    "override_reason": _l("motivo della deroga"),
    "password": _l("password"),
    "target": _l("destinazione"),
    "members": _l("membri"),
    "added": _l("aggiunti"),
    "removed": _l("tolti"),
    "description": _l("descrizione"),
    "extra_accounts": _l("caselle in più"),
    "note": _l("nota"),
    "role": _l("ruolo"),
    "locale": _l("lingua"),
    "active": _l("attivo"),
    "token": _l("token"),
}


def change_lines(changes: object) -> list[tuple[str, str, str]]:
    """An audit event's changes as (field, old, new) text, for "field: old → new" lines."""
    if not isinstance(changes, dict):
        return []
    out = []
    for key, value in changes.items():
        if isinstance(value, list | tuple) and len(value) == 2:
            old, new = value
        else:
            old, new = None, value
        # Contract lines are keyed by class name ("Business Mail 100 MB"), shown as they are.
        out.append((str(FIELD_LABELS.get(key, key)), _show(old), _show(new)))
    return out


def readable(text: object) -> str:
    """Addresses and domains as people write them: xn--caff-rossi-26a.it -> caffè-rossi.it."""
    text = "" if text is None else str(text)
    if "xn--" not in text:
        return text
    words = []
    for word in text.split(" "):
        local, at, domain = word.rpartition("@")
        words.append(f"{local}{at}{idna_display(domain)}" if "xn--" in domain else word)
    return " ".join(words)


def _show(value: object) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return _("sì")
    if value is False:
        return _("no")
    if isinstance(value, list | tuple):
        return ", ".join(_show(v) for v in value) or "—"
    return readable(value)
