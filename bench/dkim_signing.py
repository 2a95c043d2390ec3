"""The cost of rspamd on what our mailboxes send (issue 12): messages per second through submission
with rspamd as Postfix's milter (DKIM signing and the checks), against the same servers with the
milter out of the path. Goal: within 1.5x.

The servers are the tests' throwaway ones (tests/integration/mailservers.py), rendered by
`flask mailserver config --dovecot --postfix --rspamd` on loopback ports: Dovecot (SASL for
submission), Postfix, rspamd reading a local Redis (BENCH_REDIS_URL, db 7 by default) and a
local DNS server (tests/dnsserver.py, in its own process: every name rspamd looks up, RBLs and
URL lists included, answered from memory as by a local caching resolver). The panel's database (SQLite)
holds one customer, an active domain and a mailbox, all made by the service layer: the domain's
DKIM key is made and written to Redis by the product itself (dkim.ensure_key, then the
after-commit sync), its TXT record published on the DNS server.

The mailbox sends N messages (multipart text + HTML, Italian, some with a PDF; sizes spread
+-25% around --size-kb) to addresses of outside domains, through submission (STARTTLS, AUTH
PLAIN, as configured) on --connections connections in parallel, each one sending its share in
one session. Postfix relays them to the SMTP sink on loopback (its relayhost, the outside world),
where every message is counted. Wall time: from the first connection to the last message at the
sink.

  A  the rendered main.cf: smtpd_milters = rspamd. Every message must arrive with a
     DKIM-Signature of the domain (d=, s=); a sample is verified against the DNS record
     (tests/integration/test_dkim.py's verifier). The mailbox's sending limit is checked
     for every message (rspamd-outbound.lua, a bucket in Redis), at its highest (--outbound-limit
     1,000,000 an hour) so that it costs what it costs and never holds a message back.
  B  the same servers, `postconf -e smtpd_milters= non_smtpd_milters=` and `postfix reload`:
     no message may carry a signature.

Each run is preceded by 100 messages that are not timed (every process started, caches warm: a
mail server runs for months, and rspamd's first messages in each of its processes cost more);
--rounds N repeats A then B (the milters put back between) and takes the median ratio (3 by
default: one round is at the mercy of whatever else the machine did meanwhile). Beside the
rates: rspamd's CPU seconds (its master and workers, /proc), its own time per message (its log),
the DNS questions it asked, this process's CPU (the clients and the sink), the load average.
The ratio is a wall-time ratio on a shared machine: read it with the load average beside it.
The clients turn Nagle's algorithm off (TCP_NODELAY): smtplib's last TLS record would otherwise
wait for the server's delayed ACK, 40 ms per message in both runs, which hides the servers' cost.
The milter is where the product renders it by default: a Unix socket in rspamd's run directory.
--inet-milter renders it on 127.0.0.1 TCP instead (`--milter-port`), for comparison: there each
message also waits on Nagle's algorithm and the delayed ACK between Postfix and rspamd.

    python bench/dkim_signing.py                        # 1,000 messages of ~20 KB, 3 rounds (about 2 minutes)
    python bench/dkim_signing.py --messages 200 --connections 8 --rounds 3 --json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import re
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.mailserver import render  # noqa: E402
from app.mailserver.settings import OUTBOUND_LIMIT_MAX  # noqa: E402
from app.services import customers, dkim, domains, mailboxes  # noqa: E402
from app.services.access import Actor  # noqa: E402
from tests.dnsserver import DnsProcess  # noqa: E402
from tests.integration.mailservers import HOST, missing_reason, start_mail_servers  # noqa: E402
from tests.integration.test_dkim import verify_dkim  # noqa: E402

GOAL = 1.5
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
SYSTEM = Actor.system("bench")
DATA_KEY = "Q9IL1wLWWknW3u9Pp-u-OLKm2JEi3h876rP-pMgR0Gc="  # the bench's own throwaway data
CLASS = "Business Mail 1.000 MB"
PASSWORD = "Bench-pass-2026-firma"
WARMUP = 100  # untimed messages before each run
VERIFIED = 25  # signatures verified against the DNS record in run A (every one is checked for d= and s=)
LABELS = {"A": "rspamd as milter (signing + checks)", "B": "milter out of the path"}
INET_LABEL = "rspamd as milter, 127.0.0.1 TCP"

WORDS = (
    "fattura preventivo consegna riunione ordine contratto magazzino spedizione cliente fornitore "
    "pagamento bonifico scadenza offerta listino prezzo sconto quantità conferma ritardo verifica "
    "settimana prossima lunedì martedì giovedì venerdì ufficio sede Milano Torino Bologna Napoli "
    "allegato documento firmato copia originale revisione progetto cantiere tecnico assistenza "
    "richiesta risposta disponibilità appuntamento telefonata gentile cortese attenzione grazie"
).split()
GREETINGS = ("Buongiorno", "Gentile cliente", "Ciao a tutti", "Egregio dottore", "Buonasera")
CLOSINGS = ("Cordiali saluti", "Un saluto", "Distinti saluti", "A presto", "Grazie e buona giornata")
# Links on real top-level domains (a name under .example is a suspicious URL to rspamd); nothing
# leaves the machine: rspamd asks only the local DNS server, which knows none of them.
LINKS = (
    "https://www.fornitore-{n}.it/catalogo/{w}",
    "https://portale.clienti-{n}.com/ordini?id={n}{w}",
    "http://docs.servizi-{n}.it/{w}.pdf",
)


def options(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per run (1,000)")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections in parallel (4)")
    parser.add_argument("--size-kb", type=float, default=20.0, help="mean message size in KB (20)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="A then B, so many times (3); the ratio is the median of the rounds'",
    )
    parser.add_argument(
        "--inet-milter",
        action="store_true",
        help="render rspamd's milter on 127.0.0.1 TCP (--milter-port) instead of its Unix socket (the default)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--logs", type=Path, help="copy the servers' logs into this directory at the end")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.connections < 1 or args.rounds < 1 or args.size_kb <= 0:
        parser.error("--messages, --connections and --rounds at least 1, --size-kb above 0")
    return args


# --- the messages -------------------------------------------------------------------------------


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + rng.choice((".", ".", ".", "?", "!"))


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))


def make_message(rng: random.Random, i: int, run: str, sender: str, size: int) -> tuple[str, bytes]:
    """One message of about `size` bytes: text and HTML alternatives, a PDF now and then."""
    to = f"{rng.choice(('mario', 'giulia', 'ufficio', 'acquisti', 'luca'))}{i % 37}@cliente-{i % 11}.example"
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address("Anna Bianchi", addr_spec=sender)
    msg["To"] = to
    msg["Subject"] = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} n. {i}"
    msg["Date"] = formatdate(localtime=False)
    msg["User-Agent"] = rng.choice(("Mozilla Thunderbird", "Microsoft Outlook 16.0", "Apple Mail (2.3774)"))
    msg["Message-ID"] = f"<bench-{run}-{i:06d}.{uuid.uuid4().hex[:8]}@{sender.split('@')[1]}>"
    attachment = rng.randbytes(rng.randint(size // 5, size // 3)) if i % 5 == 3 else b""
    # Text and HTML carry the same words: the budget is shared, base64 of the attachment is 4/3.
    budget = max(size - len(attachment) * 4 // 3 - 1200, 400) // 2
    paragraphs, n = [], 0
    while n < budget:
        p = _paragraph(rng)
        paragraphs.append(p)
        n += len(p) + 30
    link = rng.choice(LINKS).format(n=rng.randint(1, 99), w=rng.choice(WORDS))
    text = "\n\n".join([f"{rng.choice(GREETINGS)},", *paragraphs, link, f"{rng.choice(CLOSINGS)},\nAnna"])
    rows = "".join(
        f"<tr><td>{rng.choice(WORDS)}</td><td>{rng.randint(1, 500)}</td><td>{rng.randint(10, 9999)},00 €</td></tr>"
        for _ in range(rng.randint(0, 6))
    )
    html = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="font-family: Arial">'
        f"<p>{rng.choice(GREETINGS)},</p>"
        + "".join(f"<p>{p}</p>" for p in paragraphs)
        + (f'<table border="1">{rows}</table>' if rows else "")
        + f'<p><a href="{link}">{link}</a></p><p>{rng.choice(CLOSINGS)},<br><b>Anna</b></p></body></html>'
    )
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    if attachment:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename=f"documento-{i}.pdf")
    return to, msg.as_bytes()


def make_messages(n: int, run: str, sender: str, size_kb: float, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    mean = int(size_kb * 1024)
    return [make_message(rng, i, run, sender, int(mean * rng.uniform(0.75, 1.25))) for i in range(n)]


# --- the outside world: what the sink received -----------------------------------------------------

RUN_TAG = re.compile(rb"^Message-ID: <bench-(\w+)-\d+\.", re.M | re.I)


class Arrivals:
    """Replaces the sink's `received`: counts each run's messages as they arrive, keeps them."""

    def __init__(self, sink) -> None:
        self.cond = threading.Condition()
        self.by_run: dict[str, list[bytes]] = {}
        self.last: dict[str, float] = {}
        sink.received = self.received

    def received(self, message) -> None:
        head = message.data.split(b"\r\n\r\n", 1)[0]
        match = RUN_TAG.search(head)
        run = match.group(1).decode() if match else "?"
        with self.cond:
            self.by_run.setdefault(run, []).append(message.data)
            self.last[run] = time.perf_counter()
            self.cond.notify_all()

    def wait(self, run: str, count: int, timeout: float) -> int:
        with self.cond:
            self.cond.wait_for(lambda: len(self.by_run.get(run, ())) >= count, timeout=timeout)
            return len(self.by_run.get(run, ()))


# --- the sending side ---------------------------------------------------------------------------


def send_share(servers, sender: str, share: list[tuple[str, bytes]]) -> None:
    """One mail client: one connection, STARTTLS, AUTH, its messages one after the other."""
    with smtplib.SMTP(HOST, servers.ports["submission"], timeout=60) as smtp:
        # smtplib writes a message in several TLS records: with Nagle's algorithm on, the last one
        # waits for the server's delayed ACK (40 ms on Linux), a stall of this client, not of the
        # servers, that would hide what they cost. Mail clients and MTAs turn it off as well.
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.starttls(context=servers.tls_context())
        smtp.login(sender, PASSWORD)
        for to, data in share:
            smtp.sendmail(sender, [to], data)


def send_all(servers, sender: str, messages: list[tuple[str, bytes]], connections: int) -> None:
    shares = [messages[k::connections] for k in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        for future in [pool.submit(send_share, servers, sender, s) for s in shares if s]:
            future.result()


def rspamd_cpu(servers) -> float:
    """CPU seconds of rspamd's master and workers so far (Linux: /proc)."""
    try:
        master = int((servers.root / "run" / "rspamd" / "rspamd.pid").read_text().strip())
    except (OSError, ValueError):
        return 0.0
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(stat.parent.name) == master or int(fields[1]) == master:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def dns_cpu(dns: DnsProcess) -> float:
    """CPU seconds of the DNS server's process so far: what stands here for a caching resolver."""
    fields = Path(f"/proc/{dns._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dns_queries(dns: DnsProcess) -> int:
    return sum(dns.queries().values())


def run(servers, dns: DnsProcess, arrivals: Arrivals, sender: str, kind: str, round_: int, args) -> dict:
    """One timed run (A or B) of the round, after its warm-up; the same messages in every run."""
    name = f"{kind}{round_}"
    warm = make_messages(WARMUP, f"{name}w", sender, args.size_kb, seed=13)
    send_all(servers, sender, warm, min(args.connections, WARMUP))
    if arrivals.wait(f"{name}w", WARMUP, 60) < WARMUP:
        raise RuntimeError(f"run {name}: the warm-up messages did not all arrive\n{servers.log_tail()}")
    messages = make_messages(args.messages, name, sender, args.size_kb, seed=12)
    size = sum(len(data) for _to, data in messages)
    rspamd_before, cpu_before, dns_before, dns_cpu_before = (
        rspamd_cpu(servers),
        own_cpu(),
        dns_queries(dns),
        dns_cpu(dns),
    )
    asked_before = len(dns.questions())
    began = time.perf_counter()
    send_all(servers, sender, messages, args.connections)
    sent = time.perf_counter() - began
    arrived = arrivals.wait(name, args.messages, max(60.0, args.messages / 5))
    seconds = arrivals.last[name] - began if arrived else None
    # What rspamd asked, by the zone asked (the last three labels: a blocklist, a sender's domain).
    asked = collections.Counter(
        ".".join(q.name.rstrip(".").split(".")[-3:]) + f" {q.rdtype}" for q in dns.questions()[asked_before:]
    )
    return {
        "run": kind,
        "round": round_,
        "messages": args.messages,
        "arrived": arrived,
        "mean_kb": size / args.messages / 1024,
        "seconds": seconds,
        "sent_seconds": sent,
        "per_second": args.messages / seconds if arrived == args.messages else None,
        "rspamd_cpu_s": rspamd_cpu(servers) - rspamd_before,
        "bench_cpu_s": own_cpu() - cpu_before,
        "dns_queries": dns_queries(dns) - dns_before,
        "dns_cpu_s": dns_cpu(dns) - dns_cpu_before,
        "dns_asked": dict(asked.most_common(6)),
    }


# --- the signatures -----------------------------------------------------------------------------


def signature_of(data: bytes) -> dict[str, str] | None:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    match = re.search(r"^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)
    if not match:
        return None
    value = re.sub(r"\s+", "", match.group(1))
    return {k: v for k, _s, v in (t.partition("=") for t in value.split(";") if t)}


def check_signatures(datas: list[bytes], domain: str, selector: str, dns: DnsProcess) -> dict:
    tags = [signature_of(d) for d in datas]
    ours = sum(1 for t in tags if t and t.get("d") == domain and t.get("s") == selector)
    sample = random.Random(0).sample(range(len(datas)), min(VERIFIED, len(datas)))
    verified = 0
    for k in sample:
        with contextlib.suppress(Exception):
            verified += bool(verify_dkim(datas[k], dns))
    return {"signed": ours, "verified": verified, "sampled": len(sample)}


def scan_times(servers, run: str) -> dict:
    """rspamd's own time per message of the run (its log: "time: 28.7ms"), mean and 95th percentile."""
    times = sorted(
        float(m.group(1))
        for line in (servers.logs / "rspamd.log").read_text(errors="replace").splitlines()
        if f"id: <bench-{run}-" in line and (m := re.search(r", time: ([0-9.]+)ms", line))
    )
    if not times:
        return {"scan_ms_mean": None, "scan_ms_p95": None}
    return {"scan_ms_mean": sum(times) / len(times), "scan_ms_p95": times[int(0.95 * (len(times) - 1))]}


# --- the run ------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    return {
        "postfix": first_line(["postconf", "-dh", "mail_version"]),
        "rspamd": first_line(["rspamd", "--version"]).removeprefix("Rspamd daemon version ").strip(),
        "dovecot": first_line(["dovecot", "--version"]).split()[0],
    }


def setup(domain_name: str) -> tuple[str, str, str]:
    """Customer, active domain (its DKIM key made and written to Redis by the product), mailbox:
    the mailbox's address, the key's selector and the text of its TXT record."""
    c = customers.create_customer(SYSTEM, name="Firma Bench S.r.l.", plan="contract")
    customers.set_contract(SYSTEM, c.id, [{"service_class": CLASS, "max_accounts": 5}], True)
    domain = domains.add_domain(SYSTEM, c.id, domain_name)
    box = mailboxes.create_mailbox(
        SYSTEM, c.id, address=f"anna@{domain_name}", password=PASSWORD, display_name="Anna Bianchi",
        service_class=CLASS,
    )  # fmt: skip
    record = dkim.dkim_record(domain)
    if domain.state != "active" or record is None:
        raise RuntimeError(f"{domain_name}: {domain.state}, DKIM record {record}")
    return box.address, record["selector"], record["txt"]


MILTER_SETTINGS = ("smtpd_milters", "non_smtpd_milters")


def rendered_milters(servers) -> dict[str, str]:
    """The milter settings of the rendered main.cf (run A), as written there."""
    out = subprocess.run(
        ["postconf", "-c", str(servers.conf), "-x", *MILTER_SETTINGS],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    milters = dict(line.split(" = ", 1) for line in out.splitlines())
    if not milters.get("smtpd_milters"):
        raise RuntimeError(f"the rendered main.cf has no rspamd milter: {milters}")
    return milters


def set_milters(servers, milters: dict[str, str]) -> None:
    """Postfix's milters set (run A: as rendered) or emptied (run B: rspamd out of the path), the
    rest of main.cf as rendered; Postfix reloaded."""
    conf = str(servers.conf)
    subprocess.run(["postconf", "-c", conf, "-e", *(f"{k}={v}" for k, v in milters.items())], check=True)
    subprocess.run(["postfix", "-c", conf, "reload"], check=True, capture_output=True)
    time.sleep(1.5)  # the master restarts its services with the new main.cf


def migrate() -> None:
    """The schema, by the migrations (alembic logs every step on stderr: shown only on a failure)."""
    from flask_migrate import upgrade

    log = io.StringIO()
    try:
        with contextlib.redirect_stderr(log):
            upgrade()
    except Exception:
        print(log.getvalue(), file=sys.stderr)
        raise


def forget(connection: redis.Redis, before: set[bytes], domain_name: str) -> None:
    """Redis as it was: the keys that were not there at the start go (rspamd's history, its
    "replies" keys, statistics), then the domain's fields in the DKIM hashes. (The database is the
    bench's own, BENCH_REDIS_URL: a key another program made meanwhile would go too.)"""
    try:
        if not before:
            connection.flushdb()
            return
        new = [key for key in connection.scan_iter(count=1000) if key not in before]
        for i in range(0, len(new), 1000):
            connection.delete(*new[i : i + 1000])
        selector = connection.hget(render.DKIM_SELECTORS_HASH, domain_name)
        connection.hdel(render.DKIM_SELECTORS_HASH, domain_name)
        if selector:
            connection.hdel(render.DKIM_KEYS_HASH, f"{selector.decode()}.{domain_name}")
    finally:
        connection.close()


def main(argv=None) -> dict:
    args = options(argv)
    say = print if not args.json else (lambda *a, **k: None)
    reason = missing_reason(rspamd=True)
    connection = redis.Redis.from_url(REDIS_URL)
    if not reason:
        try:
            connection.ping()
        except redis.RedisError as e:
            reason = f"Redis unreachable at {REDIS_URL} (BENCH_REDIS_URL): {e}"
    if reason:
        print(json.dumps({"not_measured": reason}) if args.json else f"not measured: {reason}")
        return {"not_measured": reason}
    redis_before = set(connection.scan_iter(count=1000))
    load_start = os.getloadavg()
    info = versions()
    say(
        f"DKIM signing: {args.messages:,} messages of ~{args.size_kb:g} KB through submission on "
        f"{args.connections} connections, relayed by Postfix to a sink on loopback"
    )
    say(
        f"cores {os.cpu_count()}, load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
        f"at the start; Postfix {info['postfix']}, rspamd {info['rspamd']}, Dovecot {info['dovecot']}"
    )
    domain_name = f"firma-{uuid.uuid4().hex[:6]}.example"
    tmp = Path(tempfile.mkdtemp(prefix="bench-dkim-"))
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'panel.sqlite3'}",
            "ENV_NAME": "testing",
            "SECRET_KEY": "bench",
            "DATA_KEYS": DATA_KEY,
            "RSPAMD_REDIS_URL": REDIS_URL,
        }
    )
    results: dict = {
        "messages": args.messages,
        "connections": args.connections,
        "size_kb": args.size_kb,
        "cores": os.cpu_count(),
        "versions": info,
        "load_start": load_start,
        "goal": GOAL,
        "milter": "inet" if args.inet_milter else "unix",
    }
    with contextlib.ExitStack() as stack:  # undone in reverse: servers, DNS, database, Redis
        stack.callback(forget, connection, redis_before, domain_name)
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        dns = stack.enter_context(DnsProcess())
        stack.enter_context(app.app_context())
        stack.callback(db.engine.dispose)
        migrate()
        sender, selector, txt = setup(domain_name)
        if connection.hget(
            render.DKIM_SELECTORS_HASH, domain_name
        ) != selector.encode() or not connection.hexists(render.DKIM_KEYS_HASH, f"{selector}.{domain_name}"):
            raise RuntimeError(f"the product did not write {domain_name}'s key to Redis")
        chunks = " ".join(f'"{txt[i : i + 250]}"' for i in range(0, len(txt), 250))
        dns.resolver.set(f"{selector}._domainkey.{domain_name}", "TXT", chunks)
        began = time.perf_counter()
        servers = start_mail_servers(
            app, app.config["SQLALCHEMY_DATABASE_URI"], rspamd_redis_url=REDIS_URL,
            rspamd_dns=dns.config["DNS_NAMESERVERS"], milter_tcp=args.inet_milter,
            outbound_limit=OUTBOUND_LIMIT_MAX,
        )  # fmt: skip
        stack.callback(servers.stop)
        if args.logs:
            stack.callback(shutil.copytree, servers.logs, args.logs, dirs_exist_ok=True)
        say(f"servers up in {time.perf_counter() - began:.1f} s; {sender}, DKIM selector {selector}")
        arrivals = Arrivals(servers.sink)
        milters = rendered_milters(servers)
        rounds = []
        for n in range(1, args.rounds + 1):
            if n > 1:
                set_milters(servers, milters)
            a = run(servers, dns, arrivals, sender, "A", n, args)
            a.update(check_signatures(arrivals.by_run.get(f"A{n}", []), domain_name, selector, dns))
            a.update(scan_times(servers, f"A{n}"))
            set_milters(servers, dict.fromkeys(MILTER_SETTINGS, ""))
            b = run(servers, dns, arrivals, sender, "B", n, args)
            b["signed"] = sum(1 for d in arrivals.by_run.get(f"B{n}", []) if signature_of(d) is not None)
            complete = a["per_second"] and b["per_second"]
            rounds.append({"A": a, "B": b, "ratio": a["seconds"] / b["seconds"] if complete else None})
    ratios = [r["ratio"] for r in rounds]
    ratio = statistics.median(ratios) if None not in ratios else None  # every run complete
    results.update(
        rounds=rounds, ratio=ratio, met=ratio is not None and ratio <= GOAL, load_end=os.getloadavg()
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    say()
    say(
        f"{'':42} {'wall s':>7} {'messages/s':>11} {'rspamd CPU s':>13} {'DNS CPU s':>10} {'bench CPU s':>12}"
        f" {'A/B':>6}"
    )
    for r in rounds:
        for kind in ("A", "B"):
            x = r[kind]
            rate = f"{x['per_second']:11.1f}" if x["per_second"] else f"{'-':>11}"
            note = (
                ""
                if x["arrived"] == x["messages"]
                else f"  INCOMPLETE: {x['arrived']:,} of {x['messages']:,}"
            )
            ratio_text = f"{r['ratio']:5.2f}x" if kind == "B" and r["ratio"] else ""
            label = INET_LABEL if kind == "A" and args.inet_milter else LABELS[kind]
            say(
                f"  {kind}{x['round'] if args.rounds > 1 else ' '} {label:37} {x['seconds'] or 0:7.2f} {rate}"
                f" {x['rspamd_cpu_s']:13.2f} {x['dns_cpu_s']:10.2f} {x['bench_cpu_s']:12.2f} {ratio_text:>6}{note}"
            )
    a_runs = [r["A"] for r in rounds]
    a, b = rounds[0]["A"], rounds[0]["B"]
    milter = "127.0.0.1 TCP (--inet-milter)" if args.inet_milter else "a Unix socket, as rendered"
    say(f"  mean size {a['mean_kb']:.1f} KB; Postfix to rspamd's milter over {milter}")
    say(
        f"  A: {sum(x['signed'] for x in a_runs):,} of {sum(x['arrived'] for x in a_runs):,} signed "
        f"d={domain_name} s={selector}; {sum(x['verified'] for x in a_runs)} of "
        f"{sum(x['sampled'] for x in a_runs)} sampled signatures verified against the DNS record"
    )
    for x in a_runs:
        if x["scan_ms_mean"] is not None:
            say(
                f"  A{x['round'] if args.rounds > 1 else ''}: rspamd's time per message (its log) "
                f"{x['scan_ms_mean']:.1f} ms mean, {x['scan_ms_p95']:.1f} ms 95th percentile; its CPU "
                f"{1000 * x['rspamd_cpu_s'] / x['messages']:.1f} ms per message; "
                f"{x['dns_queries'] / x['messages']:.1f} DNS questions per message"
            )
            if x["dns_asked"]:
                say("    most asked: " + ", ".join(f"{k} x{n}" for k, n in x["dns_asked"].items()))
    say(f"  B: {sum(r['B']['signed'] for r in rounds):,} signed (none expected)")
    if ratio is None:
        say("  ratio: - (a run is incomplete)")
    else:
        which = "" if args.rounds == 1 else f" (median of {args.rounds} rounds)"
        verdict = "met" if ratio <= GOAL else "NOT met"
        say(f"  ratio A/B (wall time){which}: {ratio:.2f}x, goal within {GOAL:g}x: {verdict}")
    end = results["load_end"]
    say(f"load average {end[0]:.2f} {end[1]:.2f} {end[2]:.2f} at the end")
    return results


if __name__ == "__main__":
    main()
