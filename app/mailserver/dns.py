"""The DNS client: asks a domain's own authoritative servers, and a recursive resolver, what they hold.

Nothing here judges an answer (app/services/dnscheck.py does): each question comes back as
an `Answer` saying what the server said (records and TTL, no such name, no such record) or
why it said nothing (timeout, SERVFAIL, REFUSED, not authoritative). Everything is asyncio,
so many domains are checked at once over one event loop; a caller without a loop runs
`asyncio.run(...)`.

The recursive resolvers come from the settings (`DNS_NAMESERVERS`: "host[:port],..."; the
system's /etc/resolv.conf when empty), and the authoritative servers are asked on
`DNS_AUTHORITATIVE_PORT` (53; a test's local server listens elsewhere). No answer is cached:
a check sees what the servers hold now.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import asdict, dataclass, field

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

OK, NODATA, NXDOMAIN = "ok", "nodata", "nxdomain"
TIMEOUT, SERVFAIL, REFUSED, LAME, ERROR = "timeout", "servfail", "refused", "lame", "error"
# What a server said about the name: an answer the rules can read.
ANSWERED = (OK, NODATA, NXDOMAIN)
# Bounds on what one zone can make us do, whatever its servers answer: name servers asked
# (a zone needs 2 to 4; 13 is the most a referral carries), addresses per name and in all,
# and the records kept of one answer, each cut to a TXT string's length.
MAX_NS, MAX_ADDRESSES, MAX_SERVERS = 13, 4, 16
MAX_RECORDS, MAX_RECORD_TEXT = 50, 512


@dataclass
class Answer:
    """One server's answer to one question."""

    server: str  # the server's name (or "resolver")
    address: str  # the address asked
    status: str  # one of OK, NODATA, NXDOMAIN (an answer) or TIMEOUT, SERVFAIL, REFUSED, LAME, ERROR
    records: list[str] = field(default_factory=list)  # rdata as text: "10 mx.example.net.", a TXT's text
    ttl: int | None = None  # of the records; of the negative answer (the SOA's) for NODATA and NXDOMAIN
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Zone:
    name: str  # without the trailing dot
    servers: list[tuple[str, str]]  # (name server, address), every address of every NS


class NoSuchDomain(Exception):
    """The recursive resolver says the name does not exist (NXDOMAIN)."""


class ZoneUnknown(Exception):
    """The zone or its servers could not be found (timeouts, SERVFAIL...): the check cannot tell."""


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """'127.0.0.1:5353, 9.9.9.9, [::1]:53' -> [(host, port)]; raises ValueError on a bad entry."""
    servers = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest:
                port = int(rest.removeprefix(":"))
        elif item.count(":") == 1:
            host, port_text = item.split(":")
            port = int(port_text)
        if not host or not 0 < port < 65536:
            raise ValueError(item)
        servers.append((host, port))
    return servers


def _text(rdata) -> str:
    if rdata.rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")
    return rdata.to_text()


def _negative_ttl(message: dns.message.Message) -> int | None:
    for rrset in message.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return min(rrset.ttl, rrset[0].minimum)
    return None


class Client:
    """Questions to DNS servers, with a timeout per question and a bound on how many fly at once."""

    def __init__(
        self,
        nameservers: list[tuple[str, int]] | None = None,
        *,
        authoritative_port: int = 53,
        timeout: float = 3.0,
        concurrency: int = 64,
        public_only: bool = True,
    ):
        self.timeout = timeout
        self.authoritative_port = authoritative_port
        # A zone's NS may name any address: only public ones are asked (never the panel's own network).
        self.public_only = public_only
        self.resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self.resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
        self.resolver.cache = None
        self.resolver.timeout = timeout
        self.resolver.lifetime = timeout * 2
        self.resolver.retry_servfail = False
        self._slots = asyncio.Semaphore(concurrency)
        self.queries = 0

    @property
    def resolver_label(self) -> str:
        return ", ".join(str(ns) for ns in self.resolver.nameservers)

    async def ask(self, server: str, address: str, name: str, rdtype: str) -> Answer:
        """Ask one authoritative server (no recursion); over TCP when the UDP answer was truncated."""
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
        query.flags &= ~dns.flags.RD
        answer = Answer(server, address, ERROR)
        async with self._slots:
            try:
                self.queries += 1
                reply = await dns.asyncquery.udp(
                    query, address, timeout=self.timeout, port=self.authoritative_port, ignore_unexpected=True
                )
                if reply.flags & dns.flags.TC:
                    self.queries += 1
                    reply = await dns.asyncquery.tcp(
                        query, address, timeout=self.timeout, port=self.authoritative_port
                    )
            except dns.exception.Timeout:
                answer.status, answer.error = TIMEOUT, f"no answer in {self.timeout:g} s"
                return answer
            except (OSError, dns.exception.DNSException) as e:
                answer.error = str(e) or type(e).__name__
                return answer
        return self._read(answer, reply, dns.rdatatype.from_text(rdtype), authoritative=True)

    def _read(self, answer: Answer, reply: dns.message.Message, rdtype, authoritative: bool) -> Answer:
        rcode = reply.rcode()
        if rcode == dns.rcode.SERVFAIL:
            answer.status = SERVFAIL
        elif rcode == dns.rcode.REFUSED:
            answer.status = REFUSED
        elif rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            answer.status, answer.error = ERROR, dns.rcode.to_text(rcode)
        elif authoritative and not reply.flags & dns.flags.AA:
            # A referral or a cached answer: this server does not serve the zone.
            answer.status, answer.error = LAME, "not authoritative for the zone"
        elif rcode == dns.rcode.NXDOMAIN:
            answer.status, answer.ttl = NXDOMAIN, _negative_ttl(reply)
        else:
            rrsets = self._own(reply, rdtype)
            if rrsets:
                answer.status = OK
                answer.ttl = min(r.ttl for r in rrsets)
                answer.records = [_text(rd)[:MAX_RECORD_TEXT] for r in rrsets for rd in r][:MAX_RECORDS]
            else:
                answer.status, answer.ttl = NODATA, _negative_ttl(reply)
        return answer

    @staticmethod
    def _own(reply: dns.message.Message, rdtype) -> list:
        """The answer's record sets of the type at the name asked: not those a CNAME chain or
        anything else in the reply adds about other names."""
        asked = reply.question[0].name if reply.question else None
        return [r for r in reply.answer if r.rdtype == rdtype and (asked is None or r.name == asked)]

    async def ask_resolver(self, name: str, rdtype: str) -> Answer:
        """What the world sees: the recursive resolver's answer."""
        # Named, not addressed: the panel's own resolver is nobody else's business.
        answer = Answer("resolver", "", ERROR)
        async with self._slots:
            try:
                self.queries += 1
                result = await self.resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
            except dns.resolver.NXDOMAIN as e:
                answer.status = NXDOMAIN
                response = next(iter(e.responses().values()), None)
                answer.ttl = _negative_ttl(response) if response is not None else None
                return answer
            except dns.resolver.LifetimeTimeout:
                answer.status, answer.error = TIMEOUT, f"no answer in {self.resolver.lifetime:g} s"
                return answer
            except dns.resolver.NoNameservers as e:
                answer.status, answer.error = SERVFAIL, _first_line(e)
                return answer
            except (OSError, dns.exception.DNSException) as e:
                answer.error = _first_line(e)
                return answer
        return self._read(answer, result.response, dns.rdatatype.from_text(rdtype), authoritative=False)

    async def zone(self, name: str) -> Zone:
        """The zone holding `name` and the addresses of its name servers, from the recursive resolver.

        Raises NoSuchDomain when the name does not exist, ZoneUnknown when the resolver cannot tell.
        """
        async with self._slots:
            try:
                self.queries += 1
                zone = await dns.asyncresolver.zone_for_name(name, resolver=self.resolver)
            except dns.resolver.NXDOMAIN as e:
                raise NoSuchDomain(name) from e
            except (dns.exception.DNSException, OSError) as e:
                raise ZoneUnknown(_first_line(e)) from e
        try:
            ns = await self.ask_resolver(zone.to_text(), "NS")
        except dns.exception.DNSException as e:
            raise ZoneUnknown(_first_line(e)) from e
        if ns.status != OK:
            raise ZoneUnknown(f"NS of {zone.to_text()}: {ns.status} {ns.error}".strip())
        # A hostile zone may list thousands of NS: the first MAX_NS names, each address asked once.
        hosts = sorted({r.lower() for r in ns.records})[:MAX_NS]
        found = await asyncio.gather(*(self._addresses(host) for host in hosts))
        servers: list[tuple[str, str]] = []
        seen: set[str] = set()
        for host, addresses in zip(hosts, found, strict=True):
            for address in addresses:
                if address not in seen and self._may_ask(address) and len(servers) < MAX_SERVERS:
                    seen.add(address)
                    servers.append((host.rstrip("."), address))
        if not servers:
            raise ZoneUnknown(
                f"no usable address for the name servers of {zone.to_text()}: {', '.join(hosts)}"
            )
        return Zone(zone.to_text().rstrip(".").lower(), servers)

    def _may_ask(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return ip.is_global or not self.public_only

    async def _addresses(self, host: str) -> list[str]:
        a = await self.ask_resolver(host, "A")
        if a.status == OK:
            return sorted(a.records)[:MAX_ADDRESSES]
        aaaa = await self.ask_resolver(host, "AAAA")
        return sorted(aaaa.records)[:MAX_ADDRESSES] if aaaa.status == OK else []


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]
