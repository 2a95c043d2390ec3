"""Which domain names may be served at all: the rules a name must pass before anyone can claim it.

A name is refused when it is not a registrable domain (a public suffix such as
`co.uk`, or under a top-level domain that does not exist), when it is one of the
provider's own domains or under one, and when it belongs to a public mailbox
provider (gmail.com, hotmail.it...). The last rule alone can be set aside by
support, with a reason. Names are checked in their ASCII (punycode) form.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import idna
from flask import current_app
from flask_babel import gettext as _
from publicsuffixlist import PublicSuffixList

from app.services.addresses import idna_display
from app.services.errors import ValidationError

PUBLIC_PROVIDERS_FILE = Path(__file__).resolve().parent.parent / "data" / "public_mail_providers.txt"

# RFC 2606 / RFC 6761 names: they cannot exist on the Internet, so claiming one takes
# nothing from anybody. Accepted only where the app is not serving real customers
# (development and the test suite), so production keeps to real, registrable names.
RESERVED_TEST_TLDS = frozenset({"example", "test", "invalid", "localhost"})
TEST_ENVIRONMENTS = frozenset({"development", "testing"})


class PublicProviderDomain(ValidationError):
    """The name belongs to a public mailbox provider: support may add it anyway, with a reason."""

    def __init__(self, field: str, message: str):
        super().__init__({field: message})


@cache
def _public_suffixes() -> PublicSuffixList:
    # The list ships inside the package (no download); unknown top-level domains are not registrable.
    return PublicSuffixList(accept_unknown=False)


@cache
def _public_providers() -> tuple[frozenset[str], frozenset[str]]:
    """(exact domains, brands listed as "brand.*") from the shipped list."""
    exact, brands = set(), set()
    for line in PUBLIC_PROVIDERS_FILE.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip().lower()
        if not entry:
            continue
        if entry.endswith(".*"):
            brands.add(entry[:-2])
        else:
            exact.add(entry)
    return frozenset(exact), frozenset(brands)


def _reserved_allowed() -> bool:
    return current_app.config.get("ENV_NAME") in TEST_ENVIRONMENTS


def registrable_domain(ascii_name: str) -> str | None:
    """The domain someone registers to own ascii_name ('mail.rossi.co.uk' -> 'rossi.co.uk'), or None."""
    labels = ascii_name.split(".")
    if labels[-1] in RESERVED_TEST_TLDS and _reserved_allowed():
        return ".".join(labels[-2:]) if len(labels) >= 2 else None
    return _public_suffixes().privatesuffix(ascii_name)


def ancestors(ascii_name: str) -> list[str]:
    """'a.b.rossi.it' -> ['a.b.rossi.it', 'b.rossi.it', 'rossi.it', 'it']."""
    labels = ascii_name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def _registered(value: str) -> str:
    """A configured host or address reduced to its registrable domain (ASCII)."""
    host = value.strip().rsplit("@", 1)[-1].strip().rstrip(".").lower()
    if not host:
        return ""
    try:
        # The same IDNA rules (UTS 46) as the names customers type, so both compare equal.
        host = idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise RuntimeError(f"not a valid domain name in the provider's settings: {value!r}") from None
    return _public_suffixes().privatesuffix(host) or host


def provider_domains() -> frozenset[str]:
    """PROVIDER_DOMAINS plus the domains of PROVIDER_MX_HOST, PROVIDER_MAIL_HOST and SALES_EMAIL.

    The three hosts always count, so a PROVIDER_DOMAINS that forgets one of them leaves no hole.
    """
    config = current_app.config
    values = [v for v in str(config.get("PROVIDER_DOMAINS") or "").split(",") if v.strip()]
    values += [config.get(k) or "" for k in ("PROVIDER_MX_HOST", "PROVIDER_MAIL_HOST", "SALES_EMAIL")]
    return _provider_domains(tuple(values))


@cache
def _provider_domains(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(d for d in (_registered(v) for v in values) if d)


def public_provider(ascii_name: str) -> str | None:
    """The public mailbox provider's domain that ascii_name is or is under, if any."""
    exact, brands = _public_providers()
    for candidate in ancestors(ascii_name):
        if candidate in exact:
            return candidate
    registrable = registrable_domain(ascii_name)
    if registrable and registrable.split(".", 1)[0] in brands:
        return registrable
    return None


def check_claimable(ascii_name: str, *, override_public: bool = False, field: str = "name") -> None:
    """Raise ValidationError unless ascii_name may be served; override_public sets aside the public-provider rule.

    Order matters only for the message: a name that breaks several rules hears the most basic one.
    """
    shown = idna_display(ascii_name)
    registrable = registrable_domain(ascii_name)
    if registrable is None:
        if _public_suffixes().is_public(ascii_name):
            raise ValidationError.one(
                field,
                _(
                    "«%(name)s» è un suffisso pubblico, non un dominio: indica il dominio registrato "
                    "dalla tua azienda, per esempio azienda.%(name)s.",
                    name=shown,
                ),
            )
        raise ValidationError.one(
            field,
            _(
                "«%(name)s» non è un dominio registrabile: «.%(tld)s» non è un dominio di primo livello esistente.",
                name=shown,
                tld=shown.rsplit(".", 1)[-1],
            ),
        )
    own = provider_domains()
    for candidate in ancestors(ascii_name):
        if candidate in own:
            raise ValidationError.one(
                field,
                _(
                    "«%(name)s» è un dominio del fornitore del servizio e non può essere aggiunto.",
                    name=shown,
                ),
            )
    provider = public_provider(ascii_name)
    if provider and not override_public:
        if provider == ascii_name:
            message = _(
                "«%(name)s» è un servizio di posta pubblico: non può essere il dominio di un cliente.",
                name=shown,
            )
        else:
            message = _(
                "«%(name)s» fa parte di un servizio di posta pubblico (%(provider)s): non può essere "
                "il dominio di un cliente.",
                name=shown,
                provider=idna_display(provider),
            )
        raise PublicProviderDomain(field, message)
