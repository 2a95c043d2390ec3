"""The documents mail programs fetch to set themselves up, from client_settings' values.

- Thunderbird's autoconfig (clientConfig 1.1), for a domain the panel serves;
- Outlook's POX Autodiscover: a request XML in, the settings (or an Error) out;
- an Apple configuration profile (.mobileconfig) for one mailbox, without its password.

The first two are public (a mail program asks before anyone signs in): they answer only for
active domains, say nothing about mailboxes, read at most MAX_REQUEST_BYTES of a request and
refuse any DTD or entity in it; each client address is held to AUTOCONFIG_RATE_LIMIT.
"""

from __future__ import annotations

import plistlib
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit
from xml.parsers import expat

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from limits import parse
from redis.exceptions import RedisError

from app.extensions import db
from app.models import Domain, Mailbox
from app.models.enums import DomainState
from app.services import client_settings, safexml
from app.services.addresses import domain_to_ascii, split_address
from app.services.attempts import address_bucket
from app.services.errors import DomainError, NotFound, ValidationError

# Outlook's request is a few hundred bytes; anything much larger is not one.
MAX_REQUEST_BYTES = 16 * 1024
# How long a client or a proxy may keep a Thunderbird document (the settings rarely change).
CACHE_SECONDS = 300

REQUEST_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

# MS-OXDSCLI's error codes.
ADDRESS_NOT_FOUND = 500
INVALID_REQUEST = 600
SCHEMA_NOT_SERVED = 601
_ERROR_MESSAGES = {
    ADDRESS_NOT_FOUND: "The email address cannot be found.",
    INVALID_REQUEST: "Invalid Request",
    SCHEMA_NOT_SERVED: "The requested schema is not available.",
}


class TooManyRequests(DomainError):
    status = 429

    def __init__(self, retry_after: int):
        super().__init__(_("Troppe richieste: riprova tra un minuto."))
        self.retry_after = retry_after


# Which domain is asked about


def served_domain(name: object) -> Domain | None:
    """The active domain of that name (any spelling: Unicode, upper case, a trailing dot), or None."""
    try:
        ascii_name = domain_to_ascii(name)
    except ValidationError:
        return None
    return db.session.scalar(
        sa.select(Domain).where(Domain.name == ascii_name, Domain.state == DomainState.ACTIVE.value)
    )


def requested_domain(email_address: str | None, host: str | None) -> Domain:
    """Thunderbird's question: the domain of `emailaddress=` if given, else the one the Host header
    names (`autoconfig.<domain>`, or `<domain>` itself for /.well-known/). NotFound unless served."""
    if email_address:
        _local, _at, name = email_address.strip().rpartition("@")
        candidates = [name] if _at else []
    else:
        hostname = (host or "").strip().lower().rstrip(".")
        hostname = hostname.rsplit(":", 1)[0] if hostname.count(":") == 1 else hostname
        candidates = [hostname.removeprefix("autoconfig.")] if hostname else []
    for name in candidates:
        domain = served_domain(name)
        if domain is not None:
            return domain
    raise NotFound(_("Nessun dominio di posta servito qui."))


# What a customer's DNS needs


@dataclass(frozen=True)
class DnsRecord:
    name: str  # absolute, with the trailing dot
    type: str
    value: str

    def zone_line(self) -> str:
        return f"{self.name} 3600 IN {self.type} {self.value}"


def documents_host() -> str:
    """The host that serves these documents: the panel's (PANEL_URL), else PROVIDER_MAIL_HOST."""
    panel = urlsplit(current_app.config.get("PANEL_URL") or "").hostname
    return (panel or client_settings.mail_host()).rstrip(".")


def dns_records(domain_name: str) -> list[DnsRecord]:
    """The records that send a domain's mail programs here: autoconfig.<domain> for Thunderbird,
    the _autodiscover._tcp SRV for Outlook (no certificate for the customer's name needed)."""
    host = documents_host()
    return [
        DnsRecord(f"autoconfig.{domain_name}.", "CNAME", f"{host}."),
        DnsRecord(f"_autodiscover._tcp.{domain_name}.", "SRV", f"0 0 443 {host}."),
    ]


# Thunderbird


def thunderbird_config(domain: Domain) -> bytes:
    """clientConfig version 1.1 for one served domain: IMAP then POP3, each with its SSL port
    first, and SMTP submission; the user name is the whole address."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain.name)
    ET.SubElement(provider, "domain").text = domain.name
    brand = current_app.config["BRAND_NAME"]
    ET.SubElement(provider, "displayName").text = brand
    ET.SubElement(provider, "displayShortName").text = brand
    for server in client_settings.servers():
        element = ET.SubElement(
            provider, "incomingServer" if server.incoming else "outgoingServer", type=server.protocol
        )
        ET.SubElement(element, "hostname").text = server.host
        ET.SubElement(element, "port").text = str(server.port)
        ET.SubElement(element, "socketType").text = (
            "SSL" if server.security == client_settings.SSL else "STARTTLS"
        )
        ET.SubElement(element, "username").text = "%EMAILADDRESS%"
        ET.SubElement(element, "authentication").text = "password-cleartext"
    return _xml(root)


# Outlook (POX Autodiscover)


@dataclass(frozen=True)
class AutodiscoverRequest:
    email_address: str
    response_schema: str


class BadRequest(ValueError):
    """Not an Autodiscover request we can read."""


def parse_autodiscover_request(body: bytes) -> AutodiscoverRequest:
    """EMailAddress and AcceptableResponseSchema of Autodiscover/Request, read with expat: any
    DTD or entity declaration, more than MAX_REQUEST_BYTES or malformed XML is a BadRequest."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadRequest("request too large")
    parser = safexml.parser(BadRequest)
    path: list[str] = []
    found: dict[str, str] = {}

    def local(name: str) -> str:
        return name.rsplit(" ", 1)[-1]

    def start(name, _attrs):
        path.append(local(name))
        if len(path) > 8:
            raise BadRequest("too deep")

    def end(_name):
        path.pop()

    def text(data):
        if path[:2] == ["Autodiscover", "Request"] and len(path) == 3:
            key = path[2]
            if key in {"EMailAddress", "AcceptableResponseSchema"}:
                found[key] = found.get(key, "") + data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except expat.ExpatError as e:
        raise BadRequest(f"malformed XML: {e}") from None
    address = found.get("EMailAddress", "").strip()
    schema = found.get("AcceptableResponseSchema", "").strip()
    if not address or not schema:
        raise BadRequest("EMailAddress and AcceptableResponseSchema are required")
    return AutodiscoverRequest(address, schema)


def autodiscover(body: bytes) -> tuple[bytes, int]:
    """The reply to a POX Autodiscover request, and its HTTP status: the account's IMAP and SMTP
    settings for an address on a served domain, else an Error (400 for an unreadable request)."""
    try:
        asked = parse_autodiscover_request(body)
    except BadRequest:
        return autodiscover_error(INVALID_REQUEST), 400
    if asked.response_schema != OUTLOOK_SCHEMA:
        return autodiscover_error(SCHEMA_NOT_SERVED), 200
    try:
        local, domain_name = split_address(asked.email_address)
    except ValidationError:
        return autodiscover_error(ADDRESS_NOT_FOUND), 200
    if served_domain(domain_name) is None:
        return autodiscover_error(ADDRESS_NOT_FOUND), 200
    return autodiscover_settings(f"{local}@{domain_name}"), 200


def autodiscover_settings(address: str) -> bytes:
    root = ET.Element("Autodiscover", xmlns=RESPONSE_SCHEMA)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_SCHEMA)
    account = ET.SubElement(response, "Account")
    ET.SubElement(account, "AccountType").text = "email"
    ET.SubElement(account, "Action").text = "settings"
    for server in (client_settings.preferred("imap"), client_settings.outgoing()):
        protocol = ET.SubElement(account, "Protocol")
        ET.SubElement(protocol, "Type").text = server.protocol.upper()
        ET.SubElement(protocol, "Server").text = server.host
        ET.SubElement(protocol, "Port").text = str(server.port)
        ET.SubElement(protocol, "DomainRequired").text = "off"
        ET.SubElement(protocol, "LoginName").text = address
        ET.SubElement(protocol, "SPA").text = "off"
        # SSL "on" means TLS from the first byte, wrong for STARTTLS on 587: there Encryption
        # (which overrides SSL) says "TLS". SSL is left out rather than "off": a client too old to
        # read Encryption then fails to connect instead of logging in without encryption.
        if server.security == client_settings.SSL:
            ET.SubElement(protocol, "SSL").text = "on"
            ET.SubElement(protocol, "Encryption").text = "SSL"
        else:
            ET.SubElement(protocol, "Encryption").text = "TLS"
        ET.SubElement(protocol, "AuthRequired").text = "on"
        if server.protocol == "smtp":
            # Sending logs in with the same name and password as reading.
            ET.SubElement(protocol, "UsePOPAuth").text = "on"
            ET.SubElement(protocol, "SMTPLast").text = "off"
    return _xml(root)


def autodiscover_error(code: int) -> bytes:
    root = ET.Element("Autodiscover", xmlns=RESPONSE_SCHEMA)
    response = ET.SubElement(root, "Response")
    error = ET.SubElement(
        response,
        "Error",
        # The time of day, as Exchange writes it (a protocol field, not a date for people).
        Time=datetime.now(UTC).time().isoformat(timespec="microseconds"),
        Id=str(zlib.crc32(client_settings.mail_host().encode())),
    )
    ET.SubElement(error, "ErrorCode").text = str(code)
    ET.SubElement(error, "Message").text = _ERROR_MESSAGES[code]
    ET.SubElement(error, "DebugData")
    return _xml(root)


# Apple


def _profile_uuid(mailbox: Mailbox, part: str) -> str:
    """The same UUID every time for this mailbox: installing the profile again replaces the
    earlier one instead of adding a second account (even after the mail host changed)."""
    name = f"panel/mobileconfig/{mailbox.address}/{part}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name)).upper()


def _reverse_dns(host: str) -> str:
    return ".".join(reversed(host.lower().split(".")))


def mobileconfig(mailbox: Mailbox) -> bytes:
    """An Apple configuration profile with one IMAP account for the mailbox, without a password
    (the device asks for it). Port 587 with UseSSL is STARTTLS for Apple's mail."""
    brand = current_app.config["BRAND_NAME"]
    imap, smtp = client_settings.preferred("imap"), client_settings.outgoing()
    prefix = f"{_reverse_dns(client_settings.mail_host())}.mobileconfig"
    account_uuid = _profile_uuid(mailbox, "account")
    profile_uuid = _profile_uuid(mailbox, "profile")
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{prefix}.{account_uuid}",
        "PayloadUUID": account_uuid,
        "PayloadDisplayName": mailbox.display_address,
        "PayloadDescription": f"{brand}: {mailbox.display_address}",
        "EmailAccountDescription": f"{brand} ({mailbox.display_address})",
        "EmailAccountName": mailbox.display_name or mailbox.display_address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": mailbox.address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": imap.host,
        "IncomingMailServerPortNumber": imap.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": mailbox.address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": smtp.host,
        "OutgoingMailServerPortNumber": smtp.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": mailbox.address,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{prefix}.{profile_uuid}",
        "PayloadUUID": profile_uuid,
        "PayloadDisplayName": f"{brand}: {mailbox.display_address}",
        "PayloadDescription": f"{brand}: {mailbox.display_address}",
        "PayloadOrganization": brand,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def mobileconfig_filename(mailbox: Mailbox) -> str:
    return f"{mailbox.address}.mobileconfig"


# Abuse


def allow_request(client_address: str | None) -> None:
    """Count one request of the public documents for this client address (its /64 for IPv6):
    TooManyRequests past AUTOCONFIG_RATE_LIMIT. Without Redis they are answered anyway: each one
    costs a single indexed read, and mail programs must not fail because of a counter."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    limit = parse(current_app.config["AUTOCONFIG_RATE_LIMIT"])
    window = limit.get_expiry()
    key = f"panel:autoconfig:{address_bucket(client_address)}:{int(time.time() // window)}"
    try:
        from app.redis import get_redis

        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, window)
        count = pipe.execute()[0]
    except RedisError:
        current_app.logger.warning("autoconfig limits: Redis unreachable", exc_info=True)
        return
    if count > limit.amount:
        raise TooManyRequests(retry_after=window - int(time.time()) % window)


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
