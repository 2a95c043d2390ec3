"""A programmable DNS server on loopback addresses, for the tests and the benchmark (dnspython).

One port, several addresses (127.0.0.1, 127.0.0.2, ...), UDP and TCP on each. Every address is a
server of its own with its own data, as the DNS check sees the world:

- the *resolver* (the first address, 127.0.0.1) plays a recursive resolver: it answers with RA
  and without AA, from everything put on it. It serves the root zone from the start, so a name
  under no delegated zone gets NXDOMAIN there, as from a real resolver;
- the other addresses play authoritative servers: AA on their answers, REFUSED for a name under
  none of their zones.

Answers follow an authoritative server's rules: records of the type -> NOERROR with the records;
the name exists without that type -> NODATA (NOERROR, empty answer) with the zone's SOA in the
authority section, its TTL the negative one (min of the SOA's TTL and MINIMUM, RFC 2308); no such
name -> NXDOMAIN with the SOA; a CNAME at the name answers every other type (not chased). Names
compare case-insensitively (DNS 0x20 queries work); an IDN is stored as punycode (IDNA 2008).
Over UDP an answer larger than 512 bytes (or the client's EDNS payload size) goes out empty with
TC set; over TCP it goes out whole.

    server = DnsServer().start()                  # in a thread; DnsProcess(): in its own process
    server.delegate("example.it", {"ns1.example.it": "127.0.0.2", "ns2.example.it": "127.0.0.3"})
    server.at("127.0.0.2").set("example.it", "MX", ["10 mx.collabra.it."], ttl=3600)
    server.everywhere("example.it").set("example.it", "TXT", ['"v=spf1 -all"'])
    server.resolver.set("example.it", "MX", "10 old.example.net.")
    server.behave("127.0.0.3", "timeout")         # or "servfail", "refused", "delay", "answer"
    server.behave("127.0.0.2", "delay", delay=0.2, name="example.it", rdtype="MX")
    server.queries()                              # {"127.0.0.1": 4, "127.0.0.2": 2, ...}
    server.config                                 # {"DNS_NAMESERVERS": ..., "DNS_AUTHORITATIVE_PORT": ...}
    server.reset(); server.stop()

`delegate(zone, nameservers)` puts the zone's SOA, NS and the name servers' A records on the
resolver, and SOA, NS (and the A records of in-zone name servers) on each authoritative address
named; delegating a zone again replaces all its data. `set` replaces one (name, type) record set
on the addresses chosen (`at(*addresses)`, `resolver`, `authorities(zone)`, `everywhere(zone)` =
resolver + authorities; or the address, or a list of them, as the first argument of the flat
methods); the name must be under a zone the address serves. `behave(address, mode, name=None,
delay=0, rdtype=None)` sets how an address treats every query, or only those for one name (and
type; the most precise setting wins): `timeout` never answers, `servfail`/`refused` answer with
that rcode, `delay` answers after `delay` seconds (asyncio.sleep: delayed queries wait side by
side), `answer` answers normally (for a name: even when the address times out); a delay goes with
any mode. `questions()` lists what each address was asked.

DnsProcess has the same methods and runs the server in a process of its own (the benchmark's
load then does not share this interpreter); wrap many calls in `with server.batch():` to send
them in one message. It is spawned, so the script that starts it keeps its work under
`if __name__ == "__main__":`. Delegating 10,000 zones takes one to two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import multiprocessing
import random
import socket
import struct
import threading
import traceback
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rrset

IN = dns.rdataclass.IN
MODES = ("answer", "timeout", "servfail", "refused", "delay")
DEFAULT_ADDRESSES = 5  # the resolver and four authoritative servers
ROOT_SOA = "a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400"
_QUESTION_LOG = 100_000


class AddressUnavailable(RuntimeError):
    """A loopback address other than 127.0.0.1 cannot be bound on this machine."""


class Question(NamedTuple):
    address: str
    name: str  # lower case, with the final dot
    rdtype: str
    transport: str  # "udp" or "tcp"


class ZoneServers(NamedTuple):
    """The addresses serving a delegated zone (and the resolver too, if `resolver`)."""

    zone: str
    resolver: bool


@functools.lru_cache(maxsize=65536)
def _name(text: str | dns.name.Name) -> dns.name.Name:
    if isinstance(text, dns.name.Name):
        return text
    return dns.name.from_text(text, origin=dns.name.root, idna_codec=dns.name.IDNA_2008)


def _key(name: dns.name.Name) -> tuple[bytes, ...]:
    return tuple(label.lower() for label in name.labels)


def _rdtype(value: str | int) -> dns.rdatatype.RdataType:
    return dns.rdatatype.RdataType.make(value.upper() if isinstance(value, str) else value)


@functools.lru_cache(maxsize=65536)
def _rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    # Parsing is the slow part of loading thousands of zones; most of them share their MX text.
    return dns.rdata.from_text(
        IN, rdtype, text, origin=dns.name.root, relativize=False, idna_codec=dns.name.IDNA_2008
    )


@functools.lru_cache(maxsize=65536)
def _ns(host: dns.name.Name) -> dns.rdata.Rdata:
    return dns.rdtypes.ANY.NS.NS(IN, dns.rdatatype.NS, host)


class _RecordSet:
    """One (name, type) record set; the RRset dnspython sends is built on its first query."""

    __slots__ = ("name", "key", "rdtype", "ttl", "rdatas", "_rrset", "_negative")

    def __init__(self, name: dns.name.Name, rdtype: int, ttl: int, rdatas: tuple[dns.rdata.Rdata, ...]):
        self.name, self.rdtype, self.ttl, self.rdatas = name, rdtype, ttl, rdatas
        self.key = _key(name)
        self._rrset: dns.rrset.RRset | None = None
        self._negative: dns.rrset.RRset | None = None

    def rrset(self) -> dns.rrset.RRset:
        if self._rrset is None:
            self._rrset = dns.rrset.from_rdata_list(self.name, self.ttl, self.rdatas)
        return self._rrset

    def negative(self) -> dns.rrset.RRset:
        """A SOA as a negative answer carries it: its TTL the lower of its own and MINIMUM."""
        if self._negative is None:
            ttl = min(self.ttl, self.rdatas[0].minimum)
            self._negative = dns.rrset.from_rdata_list(self.name, ttl, self.rdatas)
        return self._negative


class _Behaviour(NamedTuple):
    mode: str
    delay: float


_ANSWER = _Behaviour("answer", 0.0)


class _Authority:
    """The data of one address: its zones, its records, how it behaves, what it was asked."""

    def __init__(self, address: str, recursive: bool):
        self.address = address
        self.recursive = recursive
        self.zones: dict[tuple[bytes, ...], _RecordSet] = {}  # apex -> SOA
        self.records: dict[tuple[tuple[bytes, ...], int], _RecordSet] = {}
        self.types: dict[tuple[bytes, ...], set[int]] = {}  # owner -> its types
        self.owners: dict[tuple[bytes, ...], set[tuple[bytes, ...]]] = {}  # apex -> owners put in it
        self.inner: Counter[tuple[bytes, ...]] = Counter()  # the names above each owner exist too
        self.behaviours: dict[tuple[tuple[bytes, ...] | None, int | None], _Behaviour] = {}
        self.queries = 0

    def zone_of(self, key: tuple[bytes, ...]) -> tuple[bytes, ...] | None:
        for i in range(len(key)):
            if key[i:] in self.zones:
                return key[i:]
        return None

    def add_zone(self, soa: _RecordSet) -> None:
        self.zones[soa.key] = soa
        self.put(soa)

    def drop_zone(self, apex: tuple[bytes, ...]) -> None:
        if apex not in self.zones:
            return
        for owner in self.owners.pop(apex, ()):
            self.delete(owner)
        del self.zones[apex]

    def check_zone(self, rrs: _RecordSet) -> tuple[bytes, ...]:
        apex = self.zone_of(rrs.key)
        if apex is None:
            raise ValueError(
                f"{self.address} serves no zone containing {rrs.name}: delegate() its zone first"
            )
        return apex

    def put(self, rrs: _RecordSet) -> None:
        owner = rrs.key
        apex = self.check_zone(rrs)
        types = self.types.get(owner)
        if types is None:
            types = self.types[owner] = set()
            self.owners.setdefault(apex, set()).add(owner)
            for i in range(1, len(owner)):
                self.inner[owner[i:]] += 1
        types.add(rrs.rdtype)
        self.records[(owner, rrs.rdtype)] = rrs

    def delete(self, owner: tuple[bytes, ...], rdtype: int | None = None) -> None:
        types = self.types.get(owner)
        if not types:
            return
        for t in [rdtype] if rdtype is not None else list(types):
            if t in types:
                types.discard(t)
                del self.records[(owner, t)]
        if not types:
            del self.types[owner]
            for i in range(1, len(owner)):
                self.inner[owner[i:]] -= 1
                if not self.inner[owner[i:]]:
                    del self.inner[owner[i:]]

    def behaviour(self, key: tuple[bytes, ...], rdtype: int) -> _Behaviour:
        if not self.behaviours:
            return _ANSWER
        b = self.behaviours
        return b.get((key, rdtype)) or b.get((key, None)) or b.get((None, None)) or _ANSWER

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=self.recursive)
        question = query.question[0]
        key = _key(question.name)
        apex = self.zone_of(key)
        if apex is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        if not self.recursive:
            response.flags |= dns.flags.AA
        types = self.types.get(key)
        qtype = question.rdtype
        if types:
            if dns.rdatatype.CNAME in types and qtype != dns.rdatatype.CNAME:
                response.answer.append(self.records[(key, dns.rdatatype.CNAME)].rrset())
                return response
            if qtype == dns.rdatatype.ANY:
                response.answer.extend(self.records[(key, t)].rrset() for t in sorted(types))
                return response
            if qtype in types:
                response.answer.append(self.records[(key, qtype)].rrset())
                return response
        elif key not in self.inner:
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(self.zones[apex].negative())
        return response


class World:
    """Every address's data and the operations on it; the server threads and processes share it."""

    def __init__(self, addresses: list[str]):
        self.addresses = addresses
        self.lock = threading.Lock()
        self.reset()

    # The operations callable from outside (DnsServer and DnsProcess forward these by name).
    OPERATIONS = frozenset(
        {"delegate", "undelegate", "set", "remove", "behave", "reset", "queries", "questions", "authorities"}
    )

    def reset(self) -> None:
        self.by_address = {a: _Authority(a, recursive=(i == 0)) for i, a in enumerate(self.addresses)}
        self.delegations: dict[tuple[bytes, ...], tuple[str, ...]] = {}
        self.asked: deque[Question] = deque(maxlen=_QUESTION_LOG)
        root = dns.name.root
        self.resolver.add_zone(
            _RecordSet(root, dns.rdatatype.SOA, 86400, (_rdata(dns.rdatatype.SOA, ROOT_SOA),))
        )

    @property
    def resolver(self) -> _Authority:
        return self.by_address[self.addresses[0]]

    def select(self, where) -> list[_Authority]:
        if isinstance(where, ZoneServers):
            chosen = list(self.authorities(where.zone))
            if where.resolver:
                chosen.insert(0, self.addresses[0])
        elif isinstance(where, str):
            chosen = [where]
        else:
            chosen = list(where)
        unknown = [a for a in chosen if a not in self.by_address]
        if unknown:
            raise ValueError(f"not an address of this server: {', '.join(unknown)} (it has {self.addresses})")
        return [self.by_address[a] for a in dict.fromkeys(chosen)]

    def authorities(self, zone: str) -> tuple[str, ...]:
        key = _key(_name(zone))
        if key not in self.delegations:
            raise ValueError(f"{zone} was not delegated")
        return self.delegations[key]

    def delegate(
        self,
        zone: str,
        nameservers: Mapping[str, str | Iterable[str]],
        *,
        ttl: int = 3600,
        negative_ttl: int = 300,
        serial: int = 1,
    ) -> None:
        apex = _name(zone)
        hosts = {
            _name(host): [ips] if isinstance(ips, str) else list(ips) for host, ips in nameservers.items()
        }
        if not hosts:
            raise ValueError("a delegation needs at least one name server")
        authorities = list(dict.fromkeys(ip for ips in hosts.values() for ip in ips))
        self.select(authorities)  # each one must be ours
        if self.addresses[0] in authorities:
            raise ValueError(f"{self.addresses[0]} is the resolver: name servers go on {self.addresses[1:]}")
        self.undelegate(apex)
        soa = dns.rdtypes.ANY.SOA.SOA(
            IN, dns.rdatatype.SOA, next(iter(hosts)), dns.name.Name((b"hostmaster",) + apex.labels),
            serial, 7200, 3600, 1209600, negative_ttl,
        )  # fmt: skip
        soa_rrs = _RecordSet(apex, dns.rdatatype.SOA, ttl, (soa,))
        ns = tuple(_ns(host) for host in hosts)
        ns_rrs = _RecordSet(apex, dns.rdatatype.NS, ttl, ns)
        glue = {
            host: _RecordSet(host, dns.rdatatype.A, ttl, tuple(_rdata(dns.rdatatype.A, ip) for ip in ips))
            for host, ips in hosts.items()
        }
        in_zone = [a for a in glue.values() if a.key[len(a.key) - len(soa_rrs.key) :] == soa_rrs.key]
        for server in [self.resolver] + [self.by_address[a] for a in authorities]:
            server.add_zone(soa_rrs)
            server.put(ns_rrs)
            for a in glue.values() if server.recursive else in_zone:
                server.put(a)
        self.delegations[_key(apex)] = tuple(authorities)

    def undelegate(self, zone: str | dns.name.Name) -> None:
        """Every record of the zone leaves the resolver and its authoritative servers."""
        apex = _key(_name(zone))
        for address in (self.addresses[0],) + self.delegations.pop(apex, ()):
            self.by_address[address].drop_zone(apex)

    def set(self, where, name: str, rdtype: str | int, rdatas: str | Iterable[str], ttl: int = 3600) -> None:
        rdtype = _rdtype(rdtype)
        texts = [rdatas] if isinstance(rdatas, str) else list(rdatas)
        if not texts:
            raise ValueError("no records given: use remove() to delete a record set")
        rrs = _RecordSet(_name(name), rdtype, ttl, tuple(dict.fromkeys(_rdata(rdtype, t) for t in texts)))
        servers = self.select(where)
        for server in servers:
            server.check_zone(rrs)  # before any address is changed
        for server in servers:
            server.put(rrs)

    def remove(self, where, name: str, rdtype: str | int | None = None) -> None:
        key = _key(_name(name))
        rdtype = None if rdtype is None else _rdtype(rdtype)
        for server in self.select(where):
            server.delete(key, rdtype)

    def behave(
        self, where, mode: str, name: str | None = None, delay: float = 0, rdtype: str | int | None = None
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        if mode == "delay" and delay <= 0:
            raise ValueError("mode 'delay' needs delay > 0 (seconds)")
        if name is None and rdtype is not None:
            raise ValueError("rdtype narrows a name's behaviour: give the name too")
        key = (None if name is None else _key(_name(name)), None if rdtype is None else _rdtype(rdtype))
        for server in self.select(where):
            if mode == "answer" and not delay and key == (None, None):
                server.behaviours.pop(key, None)  # a name's own "answer" stays: it overrides the address's
            else:
                server.behaviours[key] = _Behaviour(mode, float(delay))

    def queries(self, address: str | None = None) -> dict[str, int] | int:
        if address is not None:
            return self.select(address)[0].queries
        return {a: s.queries for a, s in self.by_address.items()}

    def questions(self, address: str | None = None) -> list[Question]:
        return [q for q in self.asked if address is None or q.address == address]


class _Control:
    """The methods shared by DnsServer and DnsProcess; `_do` runs one World operation."""

    addresses: list[str]
    port: int

    def _do(self, operation: str, *args, **kwargs):
        raise NotImplementedError

    @property
    def resolver_address(self) -> str:
        return self.addresses[0]

    @property
    def authoritative_addresses(self) -> list[str]:
        return self.addresses[1:]

    @property
    def config(self) -> dict:
        """The app settings that point the DNS check at this server."""
        return {
            "DNS_NAMESERVERS": f"{self.resolver_address}:{self.port}",
            "DNS_AUTHORITATIVE_PORT": self.port,
        }

    def at(self, *addresses: str) -> Servers:
        return Servers(self, addresses)

    @property
    def resolver(self) -> Servers:
        return Servers(self, self.resolver_address)

    def authorities(self, zone: str) -> Servers:
        return Servers(self, ZoneServers(zone, resolver=False))

    def everywhere(self, zone: str) -> Servers:
        return Servers(self, ZoneServers(zone, resolver=True))

    def delegate(self, zone: str, nameservers: Mapping[str, str | Iterable[str]], **kwargs) -> None:
        self._do("delegate", zone, dict(nameservers), **kwargs)

    def undelegate(self, zone: str) -> None:
        self._do("undelegate", zone)

    def set(self, address, name: str, rdtype: str, rdatas: str | Iterable[str], ttl: int = 3600) -> None:
        self._do("set", address, name, rdtype, [rdatas] if isinstance(rdatas, str) else list(rdatas), ttl)

    def remove(self, address, name: str, rdtype: str | None = None) -> None:
        self._do("remove", address, name, rdtype)

    def behave(self, address, mode: str, name: str | None = None, delay: float = 0, rdtype=None) -> None:
        self._do("behave", address, mode, name, delay, rdtype)

    def reset(self) -> None:
        """Every address empty again (the resolver keeps its root zone), normal, its counters at 0."""
        self._do("reset")

    def queries(self, address: str | None = None):
        """Queries received: an int for one address, else {address: count}."""
        return self._do("queries", address)

    def questions(self, address: str | None = None) -> list[Question]:
        """What was asked (the last 100,000 questions), in order, optionally of one address."""
        return self._do("questions", address)


class Servers:
    """Some of the addresses, to set the same data or behaviour on them in one call."""

    def __init__(self, control: _Control, where):
        self.control, self.where = control, where

    def set(self, name: str, rdtype: str, rdatas: str | Iterable[str], ttl: int = 3600) -> Servers:
        self.control.set(self.where, name, rdtype, rdatas, ttl)
        return self

    def remove(self, name: str, rdtype: str | None = None) -> Servers:
        self.control.remove(self.where, name, rdtype)
        return self

    def behave(self, mode: str, name: str | None = None, delay: float = 0, rdtype=None) -> Servers:
        self.control.behave(self.where, mode, name, delay, rdtype)
        return self


# --- the network side ---------------------------------------------------------------------------


def _bind(addresses: list[str], port: int) -> list[tuple[socket.socket, socket.socket]]:
    bound: list[socket.socket] = []
    try:
        pairs = []
        for address in addresses:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            bound.append(udp)
            udp.bind((address, port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            bound.append(tcp)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, port))
            tcp.listen(128)
            pairs.append((udp, tcp))
        return pairs
    except OSError as e:
        for s in bound:
            s.close()
        if e.errno == errno.EADDRNOTAVAIL:
            raise AddressUnavailable(
                f"cannot bind {address}: the DNS tests need the loopback addresses {', '.join(addresses)}. "
                "Linux routes all of 127.0.0.0/8 to lo; elsewhere add them "
                "(macOS: sudo ifconfig lo0 alias 127.0.0.2 up, and so on)."
            ) from e
        raise


def bind_free_port(addresses: list[str], attempts: int = 50) -> tuple[int, list]:
    """One port free on every address (UDP and TCP), picked at random; another on a clash."""
    for _ in range(attempts):
        port = random.randint(20000, 60000)
        try:
            return port, _bind(addresses, port)
        except AddressUnavailable:
            raise
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError(f"no free port on {addresses} after {attempts} attempts")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, engine: _Engine, address: str):
        self.engine, self.address = engine, address

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.engine.spawn(
            self.engine.handle(self.address, data, "udp", lambda wire: self.transport.sendto(wire, addr))
        )


class _Engine:
    """Answers the queries of every address on one asyncio loop."""

    def __init__(self, world: World):
        self.world = world
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, address: str, wire: bytes, transport: str, send) -> None:
        world = self.world
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return  # not a DNS query: dropped, as a server that cannot read it
        server = world.by_address[address]
        server.queries += 1
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            send(response.to_wire())
            return
        question = query.question[0]
        key = _key(question.name)
        world.asked.append(
            Question(
                address, question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype), transport
            )
        )
        with world.lock:
            behaviour = server.behaviour(key, question.rdtype)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.mode == "timeout":
            return
        try:
            send(self.reply(server, query, behaviour.mode, transport))
        except Exception:  # a bug here: said loudly, and the client gets SERVFAIL rather than silence
            traceback.print_exc()
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            send(response.to_wire())

    def reply(self, server: _Authority, query: dns.message.Message, mode: str, transport: str) -> bytes:
        if mode in ("servfail", "refused"):
            response = dns.message.make_response(query, recursion_available=server.recursive)
            response.set_rcode(dns.rcode.SERVFAIL if mode == "servfail" else dns.rcode.REFUSED)
        else:
            with self.world.lock:
                response = server.answer(query)
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)

    async def serve_tcp(self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        def send(wire: bytes) -> None:
            if not writer.is_closing():
                writer.write(struct.pack("!H", len(wire)) + wire)

        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                # Each query of a connection on its own: a delayed one does not hold up the next.
                self.spawn(self.handle(address, await reader.readexactly(size), "tcp", send))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, sockets: list[tuple[str, socket.socket, socket.socket]]) -> list:
        loop = asyncio.get_running_loop()
        closers = []
        for address, udp, tcp in sockets:
            transport, _ = await loop.create_datagram_endpoint(lambda a=address: _Udp(self, a), sock=udp)
            closers.append(transport)
            tcp_server = await asyncio.start_server(
                lambda r, w, a=address: self.serve_tcp(a, r, w), sock=tcp, limit=70000
            )
            closers.append(tcp_server)
        return closers


def _addresses(addresses: int | Iterable[str]) -> list[str]:
    if isinstance(addresses, int):
        if not 2 <= addresses <= 250:
            raise ValueError("between 2 and 250 addresses: a resolver and at least one authoritative server")
        return [f"127.0.0.{i}" for i in range(1, addresses + 1)]
    return list(addresses)


class DnsServer(_Control):
    """The server on a thread of this process (the tests' fixture)."""

    def __init__(self, addresses: int | Iterable[str] = DEFAULT_ADDRESSES, port: int | None = None):
        self.addresses = _addresses(addresses)
        self.port = port or 0
        self.world = World(self.addresses)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list = []

    def _do(self, operation: str, *args, **kwargs):
        if operation not in World.OPERATIONS:
            raise ValueError(f"no operation {operation!r}")
        with self.world.lock:
            return getattr(self.world, operation)(*args, **kwargs)

    def start(self) -> DnsServer:
        if self.port:
            pairs = _bind(self.addresses, self.port)
        else:
            self.port, pairs = bind_free_port(self.addresses)
        sockets = [(a, udp, tcp) for a, (udp, tcp) in zip(self.addresses, pairs, strict=True)]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"dns-{self.port}", daemon=True)
        self._thread.start()
        engine = _Engine(self.world)
        self._closers = asyncio.run_coroutine_threadsafe(engine.start(sockets), self._loop).result(10)
        self._engine = engine
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close():
            for closer in self._closers:
                closer.close()
            for task in list(self._engine.tasks):
                task.cancel()
            await asyncio.gather(*self._engine.tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve(addresses: list[str], port: int | None, conn) -> None:
    """The child process: a DnsServer, then the parent's operations, read from the pipe, one by one."""
    try:
        server = DnsServer(addresses, port).start()
    except Exception as e:  # handed to the parent, which raises it
        conn.send(("error", e))
        return
    conn.send(("ok", server.port))
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        while True:
            calls = conn.recv()
            if calls is None:
                break
            try:
                result = [server._do(op, *args, **kwargs) for op, args, kwargs in calls]
                conn.send(("ok", result[-1] if result else None))
            except Exception as e:
                conn.send(("error", e))
    server.stop()


class DnsProcess(_Control):
    """The server in a process of its own (spawned), driven through a pipe with DnsServer's methods."""

    def __init__(self, addresses: int | Iterable[str] = DEFAULT_ADDRESSES, port: int | None = None):
        self.addresses = _addresses(addresses)
        self.port = port or 0
        self._process: multiprocessing.Process | None = None
        self._batch: list | None = None

    def start(self) -> DnsProcess:
        context = multiprocessing.get_context("spawn")  # no copy of the parent's threads and connections
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(self.addresses, self.port or None, child), name="dns-server", daemon=True
        )
        self._process.start()
        child.close()
        self.port = self._receive()
        return self

    def _receive(self):
        if not self._conn.poll(60):
            raise RuntimeError("the DNS server process did not answer within 60 s")
        status, value = self._conn.recv()
        if status == "error":
            raise value
        return value

    def _do(self, operation: str, *args, **kwargs):
        if operation not in World.OPERATIONS:
            raise ValueError(f"no operation {operation!r}")
        if self._batch is not None:
            self._batch.append((operation, args, kwargs))
            return None
        self._conn.send([(operation, args, kwargs)])
        return self._receive()

    @contextlib.contextmanager
    def batch(self):
        """The calls inside go to the process in one message at the end; the first error stops them."""
        self._batch = []
        try:
            yield self
            calls = self._batch
        finally:
            self._batch = None
        self._conn.send(calls)
        self._receive()

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()
        self._process = None

    def __enter__(self) -> DnsProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
