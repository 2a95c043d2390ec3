"""What a domain's DNS says about its mail: the MX verdict, the ownership proof, and advice.

The questions go through the DNS client (app/mailserver/dns.py); the rules are here:

- `missing`: the domain has no MX (or does not exist);
- `wrong`: the lowest-preference MX set is not exactly our MX host (other hosts, extra
  hosts beside ours, ours only at a higher preference, a null MX), or the authoritative
  servers disagree;
- `published`: every authoritative server answers our MX: the customer's part is done;
- `propagated`: the recursive resolver sees it too (or, for a domain followed over time,
  app/services/domain_checks.py: the old record's TTL has passed since it was published);
- `unknown`: the servers could not tell (timeouts, SERVFAIL, no zone): the caller keeps
  the previous verdict and says why.

A report is plain data (`as_dict()`, for the database, the CLI's --json and the API): the
words for people are made from its codes when shown (`describe`), in the reader's language.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from dataclasses import asdict, dataclass, field

from flask import current_app
from flask_babel import gettext as _

from app.mailserver import dns as dnsclient
from app.mailserver.dns import Answer
from app.services import autoconfig

log = logging.getLogger(__name__)

VERDICTS = ("missing", "wrong", "published", "propagated")
UNKNOWN = "unknown"
ALL_VERDICTS = (*VERDICTS, UNKNOWN)


def normal_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def expected_mx() -> str:
    return normal_host(current_app.config["PROVIDER_MX_HOST"])


def verification_txt(token: str) -> str:
    """The TXT record's exact text that proves a domain is the customer's."""
    return f"{current_app.config['DNS_VERIFICATION_PREFIX']}-verification={token}"


def client() -> dnsclient.Client:
    config = current_app.config
    return dnsclient.Client(
        dnsclient.parse_nameservers(config["DNS_NAMESERVERS"]),
        authoritative_port=int(config["DNS_AUTHORITATIVE_PORT"]),
        timeout=float(config["DNS_TIMEOUT"]),
        concurrency=int(config["DNS_CONCURRENCY"]),
        public_only=not config.get("DNS_ALLOW_PRIVATE_SERVERS"),
    )


@dataclass
class Settings:
    """What the rules compare with, read once from the app's config (the checks run outside it)."""

    mx_host: str
    documents_host: str  # where autoconfig and autodiscover send mail programs (app/services/autoconfig.py)
    spf_include: str
    deadline: float = 20.0  # seconds one domain's whole check may take

    @classmethod
    def from_config(cls) -> Settings:
        return cls(
            expected_mx(),
            normal_host(autoconfig.documents_host()),
            spf_include(),
            float(current_app.config["DNS_CHECK_DEADLINE"]),
        )


def spf_include() -> str:
    configured = current_app.config.get("PROVIDER_SPF_INCLUDE")
    if configured:
        return normal_host(configured)
    return "spf." + expected_mx().partition(".")[2]


@dataclass
class Report:
    domain: str
    verdict: str  # one of ALL_VERDICTS
    code: str  # why, for describe()
    facts: dict = field(default_factory=dict)  # what describe() names: hosts, servers, preference
    expected: str = ""
    zone: str | None = None
    mx: list[dict] = field(default_factory=list)  # each authoritative server's answer (Answer.as_dict)
    resolver: dict | None = None  # the recursive resolver's answer
    ttl: int | None = None  # the MX's TTL at the authoritative servers (the negative TTL when missing)
    txt_found: bool | None = None  # the ownership TXT (None: not asked)
    advice: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# Reading the MX answers.


def parse_mx(records: list[str]) -> list[tuple[int, str]]:
    parsed = []
    for text in records:
        preference, _, host = text.partition(" ")
        try:
            parsed.append((int(preference), normal_host(host)))
        except ValueError:
            continue
    return parsed


@dataclass(frozen=True)
class _Seen:
    kind: str  # "ours", "none", "other"
    code: str = ""
    facts: tuple = ()


def _classify(answer: Answer, ours: str) -> _Seen:
    if answer.status != dnsclient.OK or not answer.records:
        return _Seen("none", "nxdomain" if answer.status == dnsclient.NXDOMAIN else "no_mx")
    mx = parse_mx(answer.records)
    if not mx:
        return _Seen("none", "no_mx")
    lowest = min(p for p, _h in mx)
    first = sorted({h for p, h in mx if p == lowest})
    if first == [ours]:
        return _Seen("ours")
    if first == [""]:
        return _Seen("other", "null_mx")
    if ours in first:
        return _Seen("other", "extra", (("extra", [h for h in first if h != ours]),))
    ours_at = sorted(p for p, h in mx if h == ours)
    if ours_at:
        return _Seen("other", "higher", (("first", first), ("preference", ours_at[0]), ("lowest", lowest)))
    return _Seen("other", "other", (("hosts", first),))


def _label(answer: Answer) -> str:
    return answer.server if answer.server == answer.address else f"{answer.server} ({answer.address})"


def judge(authoritative: list[Answer], resolver: Answer | None, ours: str) -> tuple[str, str, dict]:
    """(verdict, code, facts) from the authoritative servers' MX answers and the resolver's."""
    answered = [a for a in authoritative if a.answered]
    # A server that refuses the zone or answers without authority is a standing fault of the
    # delegation, not a passing one: resolvers skip it, and so does the verdict (it is named).
    faulty = (dnsclient.LAME, dnsclient.REFUSED)
    lame = {_label(a): a.status for a in authoritative if a.status in faulty}
    silent = {_label(a): a.status for a in authoritative if not a.answered and a.status not in faulty}
    facts: dict = {}
    if silent:
        facts["silent"] = silent
    if lame:
        facts["lame"] = lame
    if not answered:
        return UNKNOWN, "no_answer", {"silent": {**silent, **lame}}
    seen = [(a, _classify(a, ours)) for a in answered]
    kinds = {s.kind for _a, s in seen}
    if kinds == {"ours"}:
        if silent:
            return UNKNOWN, "partial", facts
        if resolver is not None and _classify(resolver, ours).kind == "ours":
            return "propagated", "resolver", facts
        return "published", "published", facts
    if "ours" in kinds:
        facts["ours"] = [_label(a) for a, s in seen if s.kind == "ours"]
        facts["not_ours"] = {_label(a): _answer_hosts(a) for a, s in seen if s.kind != "ours"}
        return "wrong", "disagree", facts
    if kinds == {"none"}:
        code = "nxdomain" if all(s.code == "nxdomain" for _a, s in seen) else "no_mx"
        return "missing", code, facts
    other = next(s for _a, s in seen if s.kind == "other")
    facts.update(dict(other.facts))
    return "wrong", other.code, facts


def _answer_hosts(answer: Answer) -> list[str]:
    mx = parse_mx(answer.records) if answer.status == dnsclient.OK else []
    return [f"{p} {h or '.'}" for p, h in sorted(mx)]


def describe(verdict: str, code: str, facts: dict, expected: str) -> str:
    """The verdict's reason in plain words (the current locale)."""
    silent = facts.get("silent") or {}
    silent_text = ", ".join(f"{server}: {status_label(status)}" for server, status in silent.items())
    texts = {
        "nxdomain": _("Il dominio non esiste nel DNS: verifica che sia registrato e che il nome sia giusto."),
        "no_mx": _("Il dominio non ha ancora un record MX: imposta MX 10 %(mx)s.", mx=expected),
        "null_mx": _(
            "Il record MX del dominio dichiara che non riceve posta («0 .»): sostituiscilo con MX 10 %(mx)s.",
            mx=expected,
        ),
        "extra": _(
            "Oltre a %(mx)s, alla stessa priorità risponde anche %(hosts)s: parte della posta andrebbe lì. "
            "Togli gli altri record MX.",
            mx=expected,
            hosts=", ".join(facts.get("extra", [])),
        ),
        "higher": _(
            "%(mx)s c'è, ma con priorità %(pref)s: la posta va prima a %(hosts)s (priorità %(lowest)s). "
            "Togli gli altri record MX o dai a %(mx)s il numero più basso.",
            mx=expected,
            pref=facts.get("preference", ""),
            lowest=facts.get("lowest", ""),
            hosts=", ".join(facts.get("first", [])),
        ),
        "other": _(
            "Il record MX punta a %(hosts)s, non a %(mx)s: la posta va ancora lì. Sostituiscilo con MX 10 %(mx)s.",
            hosts=", ".join(facts.get("hosts", [])),
            mx=expected,
        ),
        "disagree": _(
            "I server DNS del dominio non sono d'accordo: %(ours)s rispondono già %(mx)s, %(others)s no. "
            "Di solito si allineano da soli in poche ore; se non succede, avvisa chi gestisce il DNS.",
            ours=", ".join(facts.get("ours", [])),
            mx=expected,
            others=", ".join(
                f"{server} ({', '.join(hosts) or _('nessun MX')})"
                for server, hosts in (facts.get("not_ours") or {}).items()
            ),
        ),
        "published": _(
            "Tutti i server DNS del dominio rispondono %(mx)s: la tua parte è fatta. "
            "Ora il resto di Internet deve aggiornarsi (fino a 48 ore).",
            mx=expected,
        ),
        "resolver": _("Il record MX punta a %(mx)s e il resto di Internet lo vede già.", mx=expected),
        "ttl": _(
            "Il record MX punta a %(mx)s da abbastanza tempo perché il vecchio valore sia scaduto ovunque.",
            mx=expected,
        ),
        "no_answer": _(
            "Nessun server DNS del dominio ha risposto (%(servers)s): riproveremo.", servers=silent_text
        ),
        "partial": _(
            "I server che hanno risposto indicano %(mx)s, ma %(servers)s no: riproveremo.",
            mx=expected,
            servers=silent_text,
        ),
        "no_zone": _("Non è stato possibile trovare i server DNS del dominio: riproveremo."),
        "deadline": _("I server DNS del dominio hanno risposto troppo lentamente: riproveremo."),
        "error": _("La verifica non è riuscita per un errore imprevisto: riproveremo."),
    }
    text = texts.get(code) or _("Esito della verifica: %(verdict)s.", verdict=verdict)
    if silent and code not in ("no_answer", "partial"):
        text += " " + _("Non hanno risposto: %(servers)s.", servers=silent_text)
    lame = facts.get("lame") or {}
    if lame:
        text += " " + _(
            "Questi server sono indicati per il dominio ma non lo gestiscono: %(servers)s. "
            "Chiedi a chi gestisce il DNS di correggere l'elenco dei server (record NS).",
            servers=", ".join(lame),
        )
    return text


def advice_label(status: str) -> str:
    """An advice record's state in words."""
    return {
        "ok": _("a posto"),
        "missing": _("manca"),
        "wrong": _("da correggere"),
        "multiple": _("più record SPF"),
        UNKNOWN: _("esito incerto"),
    }.get(status, _("esito incerto"))


def status_label(status: str) -> str:
    """A server's answer in words."""
    return {
        dnsclient.OK: _("risposta"),
        dnsclient.NODATA: _("nessun record"),
        dnsclient.NXDOMAIN: _("il nome non esiste"),
        dnsclient.TIMEOUT: _("nessuna risposta"),
        dnsclient.SERVFAIL: _("errore del server"),
        dnsclient.REFUSED: _("rifiuta la domanda"),
        dnsclient.LAME: _("non gestisce il dominio"),
    }.get(status, _("errore"))


# The checks.


async def inspect(
    dns: dnsclient.Client,
    name: str,
    settings: Settings,
    *,
    token_txt: str | None = None,
    advice: bool = True,
) -> Report:
    """Check one domain (ASCII name): its zone's servers, each one's MX, the resolver's, and the rest.

    However its servers behave, a check ends within DNS_CHECK_DEADLINE seconds (unknown, "deadline").
    """
    try:
        async with asyncio.timeout(settings.deadline):
            return await _inspect(dns, name, settings, token_txt=token_txt, advice=advice)
    except TimeoutError:
        return Report(normal_host(name), UNKNOWN, "deadline", expected=settings.mx_host)


async def _inspect(
    dns: dnsclient.Client, name: str, settings: Settings, *, token_txt: str | None, advice: bool
) -> Report:
    name = normal_host(name)
    ours = settings.mx_host
    report = Report(name, UNKNOWN, "no_zone", expected=ours)
    resolver_task = asyncio.ensure_future(dns.ask_resolver(name, "MX"))
    try:
        zone = await dns.zone(name)
    except dnsclient.NoSuchDomain:
        resolver = await resolver_task
        report.resolver = resolver.as_dict()
        report.verdict, report.code = "missing", "nxdomain"
        return report
    except dnsclient.ZoneUnknown:
        resolver = await resolver_task
        report.resolver = resolver.as_dict()
        if resolver.status == dnsclient.NXDOMAIN:
            # The name does not exist: the walk up found no zone of its own to ask (the root's, at most).
            report.verdict, report.code = "missing", "nxdomain"
            return report
        return report
    report.zone = zone.name
    answers, resolver = await asyncio.gather(
        asyncio.gather(*(dns.ask(server, address, name, "MX") for server, address in zone.servers)),
        resolver_task,
    )
    report.mx = [a.as_dict() for a in answers]
    report.resolver = resolver.as_dict()
    report.verdict, report.code, report.facts = judge(answers, resolver, ours)
    ttls = [a.ttl for a in answers if a.answered and a.ttl is not None]
    report.ttl = max(ttls) if ttls else None
    responsive = [(s, a) for (s, a), answer in zip(zone.servers, answers, strict=True) if answer.answered]
    if token_txt is not None or advice:
        # Ownership: the TXT at every authoritative server that answers, as for a published MX (one
        # stale server, of a delegation nobody tends any more, must not prove it alone).
        txts = await asyncio.gather(*(dns.ask(s, a, name, "TXT") for s, a in responsive))
        if token_txt is not None:
            told = [t for t in txts if t.answered]
            report.txt_found = bool(told) and all(
                t.status == dnsclient.OK and token_txt in t.records for t in told
            )
        if advice and responsive:
            report.advice = await _advise(dns, name, settings, responsive[0], txts[0])
    return report


async def _advise(
    dns: dnsclient.Client, name: str, settings: Settings, server, apex_txt: Answer
) -> list[dict]:
    ask = lambda owner, rdtype: dns.ask(server[0], server[1], owner, rdtype)  # noqa: E731
    dmarc, thunderbird, outlook, srv = await asyncio.gather(
        ask(f"_dmarc.{name}", "TXT"),
        ask(f"autoconfig.{name}", "CNAME"),
        ask(f"autodiscover.{name}", "CNAME"),
        ask(f"_autodiscover._tcp.{name}", "SRV"),
    )
    return [
        _spf(apex_txt, settings),
        _dmarc(dmarc),
        _alias("autoconfig", thunderbird, settings),
        _autodiscover(outlook, srv, settings),
    ]


def _advice(record: str, status: str, found: list[str] | None = None, suggested: str = "") -> dict:
    return {"record": record, "status": status, "found": found or [], "suggested": suggested}


def _spf(txt: Answer, settings: Settings) -> dict:
    include = f"include:{settings.spf_include}"
    if not txt.answered:
        return _advice("spf", UNKNOWN)
    spf = [r for r in txt.records if r.lower().startswith("v=spf1")] if txt.status == dnsclient.OK else []
    if not spf:
        return _advice("spf", "missing", suggested=f"v=spf1 mx {include} ~all")
    if len(spf) > 1:
        return _advice("spf", "multiple", spf, suggested=_spf_with(spf[0], include))
    if include in spf[0].lower().split():
        return _advice("spf", "ok", spf)
    return _advice("spf", "wrong", spf, suggested=_spf_with(spf[0], include))


def _spf_with(record: str, include: str) -> str:
    """The customer's own SPF record with our include added before its final all (their hosts stay)."""
    terms = record.split()
    at = next((i for i, t in enumerate(terms) if t.lower().lstrip("+-~?") == "all"), len(terms))
    return " ".join([*terms[:at], include, *terms[at:]])


def _dmarc(txt: Answer) -> dict:
    if not txt.answered:
        return _advice("dmarc", UNKNOWN)
    found = [r for r in txt.records if r.lower().startswith("v=dmarc1")] if txt.status == dnsclient.OK else []
    if found:
        return _advice("dmarc", "ok", found)
    return _advice("dmarc", "missing", suggested="v=DMARC1; p=none")


def _alias(record: str, cname: Answer, settings: Settings) -> dict:
    if not cname.answered:
        return _advice(record, UNKNOWN)
    targets = [normal_host(r) for r in cname.records] if cname.status == dnsclient.OK else []
    if targets == [settings.documents_host]:
        return _advice(record, "ok", targets)
    return _advice(
        record, "wrong" if targets else "missing", targets, suggested=settings.documents_host + "."
    )


def _autodiscover(cname: Answer, srv: Answer, settings: Settings) -> dict:
    """Outlook finds us by the SRV _autodiscover._tcp (no certificate for the customer's name needed),
    or by autodiscover.<domain> as a CNAME to us."""
    wanted = f"0 0 443 {settings.documents_host}."
    if not srv.answered and not cname.answered:
        return _advice("autodiscover", UNKNOWN)
    found = srv.records if srv.status == dnsclient.OK else []
    elsewhere = [normal_host(r) for r in cname.records] if cname.status == dnsclient.OK else []
    if elsewhere and elsewhere != [settings.documents_host]:
        # Outlook asks autodiscover.<domain> before the SRV: a leftover one (the old provider's) wins.
        return _advice(
            "autodiscover", "wrong", [f"autodiscover CNAME {h}" for h in elsewhere], suggested=wanted
        )
    for record in found:
        parts = record.split()
        if len(parts) == 4 and parts[2] == "443" and normal_host(parts[3]) == settings.documents_host:
            return _advice("autodiscover", "ok", [record])
    alias = _alias("autodiscover", cname, settings)
    if alias["status"] == "ok":
        return alias
    return _advice("autodiscover", "wrong" if found else "missing", found, suggested=wanted)


ADVICE = ("spf", "dmarc", "autoconfig", "autodiscover")


async def inspect_advice(dns: dnsclient.Client, name: str, settings: Settings, record: str) -> dict:
    """One advice record (one of ADVICE), asked of the zone's first server that answers (within
    DNS_CHECK_DEADLINE seconds)."""
    try:
        async with asyncio.timeout(settings.deadline):
            return await _inspect_advice(dns, normal_host(name), settings, record)
    except TimeoutError:
        return _advice(record, UNKNOWN)


async def _inspect_advice(dns: dnsclient.Client, name: str, settings: Settings, record: str) -> dict:
    try:
        zone = await dns.zone(name)
    except (dnsclient.NoSuchDomain, dnsclient.ZoneUnknown):
        return _advice(record, UNKNOWN)
    owner, rdtype = {
        "spf": (name, "TXT"),
        "dmarc": (f"_dmarc.{name}", "TXT"),
        "autoconfig": (f"autoconfig.{name}", "CNAME"),
        "autodiscover": (f"autodiscover.{name}", "CNAME"),
    }[record]
    for server, address in zone.servers:
        answer = await dns.ask(server, address, owner, rdtype)
        if not answer.answered:
            continue
        if record == "spf":
            return _spf(answer, settings)
        if record == "dmarc":
            return _dmarc(answer)
        if record == "autoconfig":
            return _alias(record, answer, settings)
        srv = await dns.ask(server, address, f"_autodiscover._tcp.{name}", "SRV")
        return _autodiscover(answer, srv, settings)
    return _advice(record, UNKNOWN)


def check_advice(name: str, record: str) -> dict:
    settings, dns = Settings.from_config(), client()
    return _run(lambda: inspect_advice(dns, name, settings, record))


def check_name(name: str, *, token_txt: str | None = None, advice: bool = True) -> Report:
    """One domain's check, from code without an event loop (a request, the CLI, a job)."""
    settings, dns = Settings.from_config(), client()
    return _run(lambda: inspect(dns, name, settings, token_txt=token_txt, advice=advice))


def check_many(items: list[tuple[str, str | None]], *, advice: bool = False) -> list[Report]:
    """Check many domains at once: [(ASCII name, ownership TXT or None)] -> their reports, in order
    (`stream`, gathered)."""
    reports: list = [None] * len(items)
    for index, report in stream(items, advice=advice):
        reports[index] = report
    return reports


def stream(items: list[tuple[str, str | None]], *, advice: bool = False, stop=None):
    """Check many domains, yielding (index in items, report) as each one is ready.

    An event loop in a thread of its own keeps DNS_CONCURRENCY domains in flight (and as many
    questions) until all are done, so a slow domain delays only itself; `stop` (a
    threading.Event) set, no new domain is started. Safe to leave early: the thread ends on its
    own once the domains in flight are done.
    """
    settings, dns = Settings.from_config(), client()
    in_flight = int(current_app.config["DNS_CONCURRENCY"])
    results: queue.Queue = queue.Queue()
    done = object()

    async def one(index: int, name: str, txt: str | None, slots: asyncio.Semaphore) -> None:
        async with slots:
            if stop is not None and stop.is_set():
                return
            try:
                report = await inspect(dns, name, settings, token_txt=txt, advice=advice)
            except Exception:
                log.exception("DNS check of %s failed", name)
                report = Report(normal_host(name), UNKNOWN, "error", expected=settings.mx_host)
            results.put((index, report))

    async def main() -> None:
        slots = asyncio.Semaphore(in_flight)
        await asyncio.gather(*(one(i, name, txt, slots) for i, (name, txt) in enumerate(items)))

    def run() -> None:
        try:
            asyncio.run(main())
        finally:
            results.put(done)

    thread = threading.Thread(target=run, name="dns-checks", daemon=True)
    thread.start()
    while (item := results.get()) is not done:
        yield item
    thread.join()


def _run(make_coroutine):
    """Run a coroutine to its end from synchronous code; in a thread of its own when this thread
    already runs an event loop (asyncio.run refuses to nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


# What the customer publishes.


@dataclass(frozen=True)
class Record:
    name: str  # the owner, fully qualified, without the trailing dot
    type: str
    value: str  # as in a zone file
    purpose: str  # "mx", "verification", "spf", "dkim", "dkim_old", "dmarc", "autoconfig", "autodiscover"

    def zone_line(self, ttl: int = 3600) -> str:
        value = _quoted(self.value) if self.type == "TXT" else self.value
        return f"{self.name}.\t{ttl}\tIN\t{self.type}\t{value}"


def _quoted(text: str) -> str:
    """A TXT value as a zone file writes it (RFC 1035): quotes and backslashes escaped, split into
    strings of at most 255 bytes (a customer's own SPF, copied from its DNS, may hold anything)."""
    data = text.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    out = []
    for chunk in chunks:
        escaped = "".join(
            f"\\{chr(b)}" if b in b'"\\' else chr(b) if 32 <= b < 127 else f"\\{b:03d}" for b in chunk
        )
        out.append(f'"{escaped}"')
    return " ".join(out)


def records_to_publish(
    name: str, token: str | None, spf_found: str | None = None, dkim: list[dict] | None = None
) -> list[Record]:
    """The records a domain needs (ASCII name); the verification TXT while it waits for its proof;
    its DKIM keys' records (app/services/dkim.published_records: a retiring key's while still needed)."""
    settings = Settings.from_config()
    include = f"include:{settings.spf_include}"
    records = [Record(name, "MX", f"10 {settings.mx_host}.", "mx")]
    if token:
        records.append(Record(name, "TXT", verification_txt(token), "verification"))
    records += [
        Record(
            name, "TXT", _spf_with(spf_found, include) if spf_found else f"v=spf1 mx {include} ~all", "spf"
        ),
        *(
            Record(d["name"], "TXT", d["txt"], "dkim_old" if d["state"] == "retiring" else "dkim")
            for d in dkim or ()
        ),
        Record(f"_dmarc.{name}", "TXT", "v=DMARC1; p=none", "dmarc"),
        *(
            Record(r.name.rstrip("."), r.type, r.value, "autoconfig" if r.type == "CNAME" else "autodiscover")
            for r in autoconfig.dns_records(name)
        ),
    ]
    return records


def zone_snippet(records: list[Record]) -> str:
    return "\n".join(r.zone_line() for r in records) + "\n"
