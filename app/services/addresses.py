"""Mail addresses and domain names: parsing, IDN, uniqueness across kinds."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import idna
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from app.extensions import db
from app.models import Alias, DistributionList, Domain, Mailbox
from app.services.errors import Conflict, ValidationError

# What Postfix and Dovecot treat as a plain name: no quoting, no wildcard or path characters
# (* / % ' " \\), no "+" (Dovecot's default recipient_delimiter: "mario+news" is delivered to
# "mario"), no leading "-" (Postfix refuses it, allow_min_user), no empty part between dots.
_LOCAL_CHARS = re.compile(r"[a-z0-9._-]+")
_LOCAL_RE = re.compile(r"[a-z0-9_][a-z0-9_-]*(?:\.[a-z0-9_-]+)*")


@functools.lru_cache(maxsize=1024)
def _idna(name: str) -> str:
    """IDNA encoding (UTS 46), remembered: a sheet of 10,000 rows names the same few domains."""
    return idna.encode(name, uts46=True).decode("ascii")


def domain_to_ascii(name: object, field: str = "name") -> str:
    """'Caffè.it' -> 'xn--caff-8oa.it'; raises ValidationError with a reason."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError.one(field, _("Inserisci un nome di dominio."))
    name = name.strip().rstrip(".").lower()
    if len(name) > 253:
        raise ValidationError.one(field, _("Il nome di dominio è troppo lungo."))
    try:
        ascii_name = _idna(name)
    except (idna.IDNAError, UnicodeError):
        raise ValidationError.one(
            field, _("«%(name)s» non è un nome di dominio valido.", name=name[:80])
        ) from None
    labels = ascii_name.split(".")
    if (
        len(labels) < 2
        or not all(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", lab) for lab in labels)
        or labels[-1].isdigit()
    ):
        raise ValidationError.one(field, _("«%(name)s» non è un nome di dominio valido.", name=name[:80]))
    if len(ascii_name) > 253:
        raise ValidationError.one(field, _("Il nome di dominio è troppo lungo."))
    return ascii_name


def split_address(address: object, field: str = "address") -> tuple[str, str]:
    """'Mario.Rossi@Caffè.it' -> ('mario.rossi', 'xn--caff-8oa.it')."""
    if not isinstance(address, str) or not address.strip():
        raise ValidationError.one(field, _("Inserisci un indirizzo email."))
    address = address.strip()
    if address.count("@") != 1:
        raise ValidationError.one(field, _("Un indirizzo email ha la forma nome@dominio."))
    local, domain = address.split("@")
    local = local.lower()
    if not local:
        raise ValidationError.one(field, _("Manca la parte prima della @."))
    if len(local) > 64:
        raise ValidationError.one(field, _("La parte prima della @ può avere al massimo 64 caratteri."))
    if not _LOCAL_CHARS.fullmatch(local):
        raise ValidationError.one(
            field,
            _(
                "La parte prima della @ può contenere solo lettere non accentate, cifre, punto (.), trattino (-) e trattino basso (_)."
            ),
        )
    if not _LOCAL_RE.fullmatch(local):
        raise ValidationError.one(
            field,
            _(
                "La parte prima della @ non può iniziare con un punto o un trattino, finire con un punto, né avere due punti di fila."
            ),
        )
    return local, domain_to_ascii(domain, field)


def customer_domain(customer_id: int, ascii_domain: str, field: str = "address") -> Domain:
    domain = db.session.scalar(sa.select(Domain).where(Domain.name == ascii_domain))
    if domain is None or domain.customer_id != customer_id:
        raise not_customer_domain(ascii_domain, field)
    return domain


def not_customer_domain(ascii_domain: str, field: str = "address") -> ValidationError:
    return ValidationError.one(
        field, _("Il dominio %(d)s non è tra i domini di questo cliente.", d=idna_display(ascii_domain))
    )


def idna_display(ascii_domain: str) -> str:
    try:
        return idna.decode(ascii_domain)
    except idna.IDNAError:
        return ascii_domain


def _address_kinds():
    return (
        (Mailbox, _("una casella")),
        (Alias, _("un alias")),
        (DistributionList, _("una lista di distribuzione")),
    )


def _taken(address: str, what: str) -> str:
    return _("L'indirizzo %(a)s è già usato da %(what)s.", a=address, what=what)


def ensure_free(address: str, field: str = "address") -> None:
    """An address is one mailbox, one alias or one list, never two of them."""
    for model, what in _address_kinds():
        if db.session.scalar(sa.select(model.id).where(model.address == address)) is not None:
            raise Conflict(_taken(address, what), field=field)


# Addresses per IN (...) query: well below SQLite's and PostgreSQL's limits on bound parameters.
IN_USE_CHUNK = 2000


def in_use(candidates: Iterable[str]) -> dict[str, str]:
    """{address: why it is taken} for those already a mailbox, an alias or a list.

    Three queries per IN_USE_CHUNK addresses, for checking a whole sheet at once; the
    message is ensure_free's.
    """
    wanted = sorted(set(candidates))
    out: dict[str, str] = {}
    for start in range(0, len(wanted), IN_USE_CHUNK):
        chunk = wanted[start : start + IN_USE_CHUNK]
        for model, what in _address_kinds():
            for address in db.session.scalars(sa.select(model.address).where(model.address.in_(chunk))):
                out.setdefault(address, _taken(address, what))
    return out


def external_address(value: object, field: str = "members") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.one(field, _("Indirizzo vuoto."))
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ValidationError.one(
            field, _("«%(a)s» non è un indirizzo email valido.", a=value.strip()[:80])
        ) from None
    return result.ascii_email.lower() if result.ascii_email else result.normalized.lower()
