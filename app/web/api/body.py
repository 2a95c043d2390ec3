"""What the API accepts and returns, declared once: validation and the OpenAPI schemas read it.

A `Shape` is a named set of `Field`s: a request body (checked here by `read`) or a
response (declared next to its serializer). A `Param` is a query parameter (checked
by `query`). Each declares its JSON type and its bounds (length, range, the codes of
an enum); app/web/api/openapi.py turns the same declarations into JSON Schema, so
the document changes when a check does.

What a value means (a valid address, a known class, an allowance) is for the
services to say; they check the bounds again, for the doors that are not the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from flask import current_app, request
from flask_babel import gettext as _

from app.models.enums import Codes
from app.services import fields, labels
from app.services.errors import DomainError, ValidationError

# JSON types a Field can have. "name_or_id" is a text or an integer (a class by name or id);
# "json" is any JSON value (a job's result, say).
KINDS = ("text", "integer", "boolean", "name_or_id", "datetime", "list", "object", "json")


@dataclass(frozen=True)
class Field:
    kind: str
    required: bool = False
    nullable: bool = False
    min_len: int | None = None
    max_len: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    # The codes the value must be one of: an enum, or a tuple of plain values.
    enum: type[Codes] | tuple | None = None
    # list: the Field of each item; object: the Shape of the value.
    items: Field | None = None
    shape: Shape | None = None
    # Said when the value is of the wrong type (each kind has a default), outside enum
    # (by default the enum's own message, app/services/labels.py) or shorter than min_len.
    message: str | None = None
    refusal: str | None = None
    missing: str | None = None
    too_short: Callable[[int], str] | None = None
    # Only for the document.
    description: str = ""
    default: object = None
    examples: tuple = ()
    read_only: bool = False
    write_only: bool = False
    format: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if (self.minimum is None) != (self.maximum is None):
            raise ValueError("an integer's range needs both ends")

    @property
    def codes(self) -> tuple | None:
        return _codes(self.enum)


def _codes(enum: type[Codes] | tuple | None) -> tuple | None:
    if enum is None:
        return None
    return enum.values() if isinstance(enum, type) else tuple(enum)


def _refusable(enum: type[Codes] | tuple | None, refusal: str | None) -> None:
    """A value outside the codes is refused in words: the enum's own or the declaration's."""
    if enum is not None and refusal is None and labels.INVALID.get(enum) is None:
        raise ValueError(f"{enum!r} has no message for a value outside it: give refusal=")


@dataclass
class Shape:
    """A JSON object with exactly these fields; name is its schema's name in the document."""

    name: str
    fields: dict[str, Field]
    description: str = ""

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(k for k, f in self.fields.items() if f.required)

    def but(
        self, name: str, *, drop: tuple[str, ...] = (), optional: bool = False, **changed: Field
    ) -> Shape:
        """A variant: some fields dropped or changed; optional makes every field optional (a PATCH)."""
        out = {
            k: replace(f, required=False) if optional else f for k, f in self.fields.items() if k not in drop
        }
        variant = shape(name, **{**out, **changed})
        variant.description = self.description
        return variant


@dataclass(frozen=True)
class Param:
    """A query parameter: a text, an integer in a range, or one of some codes. Never required."""

    name: str
    kind: str = "text"
    default: object = None
    minimum: int | None = None
    maximum: int | None = None
    max_len: int = 200
    enum: type[Codes] | tuple | None = None
    refusal: str | None = None  # the message for a value outside enum (else the enum's own)
    description: str = ""

    def __post_init__(self):
        if self.kind == "integer" and (self.minimum is None or self.maximum is None):
            raise ValueError("an integer parameter needs its range")
        _refusable(self.enum, self.refusal)

    @property
    def codes(self) -> tuple | None:
        return _codes(self.enum)


# Field constructors, as the specs read them.


def text(**kw) -> Field:
    return Field("text", **kw)


def integer(**kw) -> Field:
    return Field("integer", **kw)


def boolean(**kw) -> Field:
    return Field("boolean", **kw)


def name_or_id(**kw) -> Field:
    return Field("name_or_id", **kw)


def choice(enum: type[Codes] | tuple, **kw) -> Field:
    return Field("text", enum=enum, **kw)


def any_json(**kw) -> Field:
    return Field("json", **kw)


def datetime(**kw) -> Field:
    return Field("datetime", format="date-time", **kw)


def list_of(items: Field, **kw) -> Field:
    return Field("list", items=items, **kw)


def object_of(shape: Shape, **kw) -> Field:
    return Field("object", shape=shape, **kw)


def shape(name: str, /, **shape_fields: Field) -> Shape:
    """A request body's shape. Each enum in it must have words for a value outside it, and a
    field holding objects words its own wrong type (what belongs inside is the caller's to say)."""
    for f in _walk(shape_fields.values()):
        _refusable(f.enum, f.refusal)
    for key, f in shape_fields.items():
        holds_objects = f.kind == "object" or f.kind == "list" and f.items.kind != "text"
        if holds_objects and not f.message:
            raise ValueError(f"{name}.{key}: give message= for a value of the wrong shape")
    return Shape(name, shape_fields)


def _walk(found):
    for f in found:
        yield f
        if f.items is not None:
            yield from _walk([f.items])
        if f.shape is not None:
            yield from _walk(f.shape.fields.values())


def response(name: str, /, **shape_fields: Field) -> Shape:
    """A response's shape: the serializer always writes every field, so each is required."""
    return Shape(name, {k: replace(f, required=True) for k, f in shape_fields.items()})


def page_of(shape: Shape) -> Shape:
    """The shape of serializers.page(): one page of rows and where it is."""
    return response(
        f"{shape.name}Page",
        items=list_of(object_of(shape)),
        total=integer(description="Rows over all pages."),
        page=integer(),
        per_page=integer(),
        pages=integer(),
    )


# Checking a value against a Field


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_IS = {
    "text": lambda v: isinstance(v, str),
    "datetime": lambda v: isinstance(v, str),
    "integer": _is_int,
    "boolean": lambda v: isinstance(v, bool),
    "name_or_id": lambda v: isinstance(v, str) or _is_int(v),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "json": lambda v: True,
}


def _type_message(f: Field) -> str:
    if f.message:
        return str(f.message)
    if f.kind == "text":
        return _("Deve essere un testo (o null).") if f.nullable else _("Deve essere un testo.")
    if f.kind == "integer":
        return (
            _("Deve essere un numero intero (o null).") if f.nullable else _("Deve essere un numero intero.")
        )
    if f.kind == "boolean":
        return _("Deve essere true o false.")
    if f.kind == "name_or_id":
        return _("Deve essere un nome (testo) o un id (intero).")
    if f.kind == "list":  # of texts: shape() asks any other list for its own words
        return _("Deve essere un elenco di testi.")
    return _("Deve essere un testo.")


def _enum_message(enum: type[Codes] | tuple, refusal: str | None = None) -> str:
    return str(refusal or labels.INVALID[enum])


def _check(f: Field, value: object, key: str, errors: dict[str, str]) -> bool:
    """False when value (or something inside it) is not of its declared type; the caller
    words that. A value out of bounds is written to errors under its path (allowances.0.max_accounts)."""
    if value is None and f.nullable:
        return True
    if not _IS[f.kind](value):
        return False
    if f.kind == "list":
        inner: dict[str, str] = {}
        if not all([_check(f.items, item, f"{key}.{i}", inner) for i, item in enumerate(value)]):
            return False
        errors.update(inner)
        return True
    if f.kind == "object":
        inner = {}
        if not _object(f.shape, value, key, inner):
            return False
        errors.update(inner)
        return True
    codes = f.codes
    if codes is not None and value not in codes:
        errors[key] = _enum_message(f.enum, f.refusal)
    elif f.max_len is not None and len(value) > f.max_len:
        errors[key] = _("Al massimo %(n)d caratteri.", n=f.max_len)
    elif f.min_len is not None and len(value) < f.min_len:
        errors[key] = f.too_short(f.min_len) if f.too_short else str(f.missing or _("Campo obbligatorio."))
    elif f.minimum is not None and not f.minimum <= value <= f.maximum:
        errors[key] = _("Deve essere tra %(a)d e %(b)d.", a=f.minimum, b=f.maximum)
    return True


def _object(shape: Shape, data: dict, prefix: str, errors: dict[str, str]) -> bool:
    """Checks data against shape. At the top (no prefix) every problem is written under its
    field; inside a value, an unknown or missing field makes the whole value wrong (False)."""
    for key, value in data.items():
        f = shape.fields.get(key) if isinstance(key, str) else None
        if prefix:
            if f is None or not _check(f, value, f"{prefix}.{key}", errors):
                return False
            continue
        if f is None or _unencodable(key):
            errors[_printable(key)] = _(
                "Campo sconosciuto. Campi ammessi: %(names)s.", names=", ".join(shape.fields)
            )
        elif _unencodable(value):
            errors[key] = _("Contiene caratteri non ammessi.")
        elif not _check(f, value, key, errors):
            errors[key] = _type_message(f)
    for key in shape.required:
        if key not in data:
            if prefix:
                return False
            errors.setdefault(key, str(shape.fields[key].missing or _("Campo obbligatorio.")))
    return True


def _printable(key: object) -> str:
    return str(key)[:64].encode("utf-8", "replace").decode()


# Reading the request


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


def operation():
    """The @documented declaration of the view serving this request (app/web/api/openapi.py)."""
    view = current_app.view_functions[request.endpoint]
    return view.__openapi__


def read(shape: Shape | None = None, *, meaning: Callable[[dict], object] | None = None) -> dict:
    """The request's JSON object, checked against shape: by default the body its view declares.

    meaning, if given, is the service's validation step (it must not write): when some
    fields fail the declared checks, it runs on the others, so that one answer names
    every bad field, not those of the declaration first and the rest at the next try.
    """
    shape = shape or operation().body
    data = _parse()
    if not isinstance(data, dict):
        raise ValidationError.one("body", _("Il corpo della richiesta deve essere un oggetto JSON."))
    errors: dict[str, str] = {}
    _object(shape, data, "", errors)
    if errors and meaning is not None:
        errors = {**_meaning_errors(shape, data, errors, meaning), **errors}
    if errors:
        raise ValidationError(errors)
    return data


def _meaning_errors(shape: Shape, data: dict, errors: dict[str, str], meaning) -> dict[str, str]:
    # The fields that passed, and None for a required one that did not (its message is kept).
    clean = {k: v for k, v in data.items() if k in shape.fields and k not in errors}
    clean.update({k: None for k in shape.required if k not in clean})
    try:
        meaning(clean)
    except ValidationError as e:
        return e.errors
    except DomainError:  # not found, not permitted: the view says so once the body is right
        pass
    return {}


def read_optional() -> dict:
    """read(), except that no body at all is an empty object (an approval may come bare)."""
    return read() if request.get_data(cache=True).strip() else {}


def query(params: tuple[Param, ...] | None = None) -> dict:
    """The query string's parameters, checked: by default those the view declares."""
    params = operation().query if params is None else params
    out: dict = {}
    errors: dict[str, str] = {}
    for p in params:
        raw = request.args.get(p.name)
        try:
            out[p.name] = _query_value(p, raw)
        except ValidationError as error:
            errors.update(error.errors)
    if errors:
        raise ValidationError(errors)
    return out


def _query_value(p: Param, raw: str | None) -> object:
    if raw is None or raw == "":
        return p.default
    if p.kind == "integer":
        return fields.integer(raw, p.name, minimum=p.minimum, maximum=p.maximum)
    value = fields.text(raw, p.name, max_len=p.max_len, required=False)
    codes = p.codes
    if codes is not None and value not in codes:
        raise ValidationError.one(p.name, _enum_message(p.enum, p.refusal))
    return value


# Declarations several routes share

CLASS_REF = name_or_id(
    required=True,
    examples=("Business Mail 5.000 MB", "business mail 5 GB"),
    description="A class of service by name (the guide's spelling or a variant) or by id.",
)
PAGING = (
    Param("page", "integer", default=1, minimum=1, maximum=1_000_000, description="Page number."),
    Param("per_page", "integer", default=50, minimum=1, maximum=200, description="Rows per page."),
)
