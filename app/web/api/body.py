"""Reading a JSON request: the body's shape and each field's JSON type.

Only the shape is checked here (text where text is expected, a list where a
list is); what a value means (a valid address, a known class, a limit) is
for the services to say.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import request
from flask_babel import gettext as _

from app.services import fields
from app.services.errors import DomainError, ValidationError

Check = Callable[[object], str | None]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def text(v: object) -> str | None:
    return None if isinstance(v, str) else _("Deve essere un testo.")


def optional_text(v: object) -> str | None:
    return None if v is None or isinstance(v, str) else _("Deve essere un testo (o null).")


def integer(v: object) -> str | None:
    return None if _is_int(v) else _("Deve essere un numero intero.")


def boolean(v: object) -> str | None:
    return None if isinstance(v, bool) else _("Deve essere true o false.")


def name_or_id(v: object) -> str | None:
    return None if isinstance(v, str) or _is_int(v) else _("Deve essere un nome (testo) o un id (intero).")


def text_list(v: object) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return _("Deve essere un elenco di testi.")
    return None


def allowance_list(v: object) -> str | None:
    ok = isinstance(v, list) and all(
        isinstance(x, dict)
        and set(x) <= {"service_class", "max_accounts"}
        and name_or_id(x.get("service_class")) is None
        and integer(x.get("max_accounts")) is None
        for x in v
    )
    if not ok:
        return _("Deve essere un elenco di oggetti {service_class: nome o id, max_accounts: intero}.")
    return None


# Our bodies nest three levels at most (an object, a list, its objects). A limit far below
# Python's recursion limit keeps every later walk over the value safe.
MAX_DEPTH = 32


def _depth(value: object) -> int:
    """How deep lists and objects nest, without recursion (the value may be 900 levels deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            level += 1
            deepest = max(deepest, level)
            stack.extend((child, level) for child in item)
    return deepest


class NotJson(DomainError):
    status = 415


def require_json_media_type() -> None:
    """A body sent with POST, PUT or PATCH must say it is JSON (any charset), or it is a 415.

    A form post or text/plain would otherwise be read as JSON by accident, and a bodyless
    call (an approval) needs no Content-Type at all.
    """
    if request.method not in {"POST", "PUT", "PATCH"}:
        return
    if (
        not request.content_length
        and not request.headers.get("Content-Type")
        and not request.get_data(cache=True)
    ):
        return
    if request.mimetype != "application/json":
        raise NotJson(_("Il corpo della richiesta deve essere JSON: invia Content-Type: application/json."))


def _parse() -> object:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ValidationError.one("body", _("Manca il corpo della richiesta (un oggetto JSON)."))
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        too_deep = _depth(data) > MAX_DEPTH
    except RecursionError:  # past the parser's own limit
        too_deep = True
    except (ValueError, UnicodeDecodeError):
        raise ValidationError.one("body", _("Il corpo della richiesta non è JSON valido.")) from None
    if too_deep:
        raise ValidationError.one(
            "body", _("Il JSON è annidato troppo in profondità (al massimo %(n)d livelli).", n=MAX_DEPTH)
        )
    return data


def _reject_constant(name: str):
    raise ValueError(name)


def _unencodable(value: object) -> bool:
    """Lone surrogates ("\\ud800") are valid JSON but cannot be stored as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(_unencodable(v) for v in value)
    if isinstance(value, dict):
        return any(_unencodable(k) or _unencodable(v) for k, v in value.items())
    return False


def read(spec: dict[str, Check], required: tuple[str, ...] = ()) -> dict:
    """The request's JSON object, checked against spec (field -> type check)."""
    data = _parse()
    if not isinstance(data, dict):
        raise ValidationError.one("body", _("Il corpo della richiesta deve essere un oggetto JSON."))
    errors: dict[str, str] = {}
    for key, value in data.items():
        check = spec.get(key)
        if check is None or _unencodable(key):
            errors[str(key)[:64].encode("utf-8", "replace").decode()] = _(
                "Campo sconosciuto. Campi ammessi: %(names)s.", names=", ".join(spec)
            )
            continue
        problem = _("Contiene caratteri non ammessi.") if _unencodable(value) else check(value)
        if problem:
            errors[key] = problem
    for key in required:
        if key not in data:
            errors.setdefault(key, _("Campo obbligatorio."))
    if errors:
        raise ValidationError(errors)
    return data


def query_int(name: str, default: int, *, minimum: int = 1, maximum: int = 1_000_000) -> int:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    return fields.integer(value, name, minimum=minimum, maximum=maximum)


def query_text(name: str) -> str:
    return fields.text(request.args.get(name, ""), name, max_len=200, required=False)
