"""The scheduled DNS re-check of many domains: wall time, domains and queries per second, and the
speedup of asking concurrently over asking one question after another.

A local DNS server (tests/dnsserver.py, in a process of its own) plays the Internet: every domain
is a zone delegated to two authoritative servers (127.0.0.2 and 127.0.0.3), the recursive
resolver is 127.0.0.1, and every answer of every address leaves after a simulated network delay
(`--delay`, 20 ms by default: a real authoritative server is 10-50 ms away). The domains are a
mix of what a provider holds:

  70%  active, our MX everywhere (propagated)        8%  active, our MX not yet at the resolver
   1%  active, the MX moved to another provider      2%  active, ours only at a higher preference
   1%  active, its two servers disagree               3%  pending, the ownership TXT published
   3%  pending, our MX already there (proof by MX)   5%  pending, no MX yet
   4%  pending, the old provider's MX                 1%  pending, not in the DNS at all (NXDOMAIN)
   2%  pending, ours and others at the same preference

The active ones were last checked a day ago (their re-check is due), the pending ones never.
`--timeouts K` makes the second server never answer for K of the domains, spread over the N
(none by default; each such domain waits DNS_TIMEOUT for itself, while the others flow on
around it; the serial sample leaves them out). Then:

  concurrent   domain_checks.recheck_due() over all N, with the database (SQLite, made by the
               migrations), at DNS_CONCURRENCY questions in flight (`--concurrency`)
  DNS only     dnscheck.check_many() over the same N names, no database
  serial       recheck_due() with DNS_CONCURRENCY 1 (one question after another) on a sample of
               the same mix (`--sample`, in a database of its own), extrapolated to N

Queries are counted at the server. Goal: the concurrent re-check at least 20x faster than serial.

    python bench/dns_checks.py                              # 10,000 domains (about 2 minutes)
    python bench/dns_checks.py --domains 2000 --concurrency 128
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.config import Config  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Customer, Domain, DomainCheck  # noqa: E402
from app.services import dnscheck, domain_checks  # noqa: E402
from tests.dnsserver import DnsProcess  # noqa: E402

GOAL = 20.0
PER_CUSTOMER = 10
NS = ("127.0.0.2", "127.0.0.3")
OLD_MX = "10 mx.vecchio-fornitore.net."
# Per hundred domains: (how many, kind). The kinds are set up in publish() and insert().
MIX = (
    (70, "propagated"),
    (8, "published"),
    (1, "moved"),
    (2, "higher"),
    (1, "disagree"),
    (3, "pending_txt"),
    (3, "pending_mx"),
    (5, "pending_no_mx"),
    (4, "pending_old_mx"),
    (1, "pending_nxdomain"),
    (2, "pending_extra"),
)
KINDS = [kind for count, kind in MIX for _ in range(count)]
assert len(KINDS) == 100


def options(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=10_000, help="domains re-checked (10,000)")
    parser.add_argument("--sample", type=int, default=300, help="domains checked one after another (300)")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds before each answer (0.02)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=Config.DNS_CONCURRENCY,
        help=f"DNS_CONCURRENCY: questions in flight ({Config.DNS_CONCURRENCY}, the app's)",
    )
    parser.add_argument("--timeouts", type=int, default=0, help="domains with a server that times out (0)")
    parser.add_argument("--no-dns-only", action="store_true", help="skip the check_many run without database")
    parser.add_argument("--profile", action="store_true", help="cProfile the concurrent re-check")
    args = parser.parse_args(argv)
    args.sample = min(args.sample, args.domains)
    return args


def domain_name(i: int) -> str:
    return f"azienda{i:05d}.it"


def kind_of(i: int) -> str:
    return KINDS[i * 37 % 100]  # a permutation of the hundred: any run of domains holds the mix


def token_of(i: int) -> str:
    return f"{i:08x}" + secrets.token_hex(12)


def timing_out(n: int, k: int) -> set[int]:
    """K domains spread over the N (the last of each stretch), whose second server never answers."""
    k = min(k, n)
    return {(i + 1) * n // k - 1 for i in range(k)}


def publish(server: DnsProcess, n: int, tokens: list[str], mx: str, prefix: str, timeouts: set[int]) -> None:
    """Every domain's zone and records at the server, as its kind says."""
    ours = f"10 {mx}."
    with server.batch():
        for i in range(n):
            name, kind = domain_name(i), kind_of(i)
            if kind == "pending_nxdomain":
                continue
            provider = f"dns{i % 10}.hosting.example"  # ten DNS hosts, as customers' zones sit
            server.delegate(name, {f"ns1.{provider}": NS[0], f"ns2.{provider}": NS[1]})
            both, resolver = server.authorities(name), server.resolver
            if kind in ("propagated", "pending_mx"):
                server.everywhere(name).set(name, "MX", ours)
            elif kind == "published":
                both.set(name, "MX", ours)
                resolver.set(name, "MX", OLD_MX)
            elif kind in ("moved", "pending_old_mx"):
                server.everywhere(name).set(name, "MX", OLD_MX)
            elif kind == "higher":
                server.everywhere(name).set(name, "MX", [OLD_MX, f"20 {mx}."])
            elif kind == "pending_extra":
                server.everywhere(name).set(name, "MX", [ours, OLD_MX])
            elif kind == "disagree":
                server.at(NS[0]).set(name, "MX", ours)
                server.at(NS[1]).set(name, "MX", OLD_MX)
                resolver.set(name, "MX", OLD_MX)
            elif kind == "pending_txt":
                both.set(name, "TXT", f'"{prefix}-verification={tokens[i]}"')
            if kind in ("propagated", "published", "moved"):
                both.set(name, "TXT", f'"v=spf1 mx include:spf.{mx.partition(".")[2]} ~all"')
        for i in timeouts:
            server.behave(NS[1], "timeout", name=domain_name(i))


def insert(ids: list[int], tokens: list[str], now: datetime) -> None:
    """The domains, their customers and (for the active ones) their last check, in bulk."""
    customers = list(
        db.session.scalars(
            sa.insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
            [
                {"name": f"Azienda {c} S.r.l.", "plan": "contract", "created_at": now - timedelta(days=90)}
                for c in range(len(ids) // PER_CUSTOMER + 1)
            ],
        )
    )
    rows, checks = [], []
    month_ago, day_ago = now - timedelta(days=30), now - timedelta(days=1)
    for i in ids:
        kind = kind_of(i)
        active = not kind.startswith("pending")
        rows.append(
            {
                "customer_id": customers[len(rows) // PER_CUSTOMER],
                "name": domain_name(i),
                "state": "active" if active else "pending",
                "created_at": month_ago if active else now - timedelta(days=3),
                "activated_at": month_ago if active else None,
                "verified_at": month_ago if active else None,
                "verified_by": "staff" if active else None,
                "verification_token": tokens[i],
            }
        )
    domain_ids = list(
        db.session.scalars(sa.insert(Domain).returning(Domain.id, sort_by_parameter_order=True), rows)
    )
    for i, domain_id in zip(ids, domain_ids, strict=True):
        kind = kind_of(i)
        if kind.startswith("pending"):
            continue  # never checked: due first
        # The active ones were propagated a month ago; the published ones came to us an hour ago.
        published = now - timedelta(hours=1) if kind == "published" else month_ago
        seen = {"published": published.isoformat()}
        if kind != "published":
            seen["propagated"] = month_ago.isoformat()
        checks.append(
            {
                "domain_id": domain_id,
                "verdict": "published" if kind == "published" else "propagated",
                "checked_at": day_ago,
                "first_seen": seen,
                "old_ttl": 86400,
                "details": {},
                "next_check_at": now - timedelta(minutes=1),
            }
        )
    if checks:
        db.session.execute(sa.insert(DomainCheck), checks)
    db.session.commit()


def make_app(path: Path, server: DnsProcess, concurrency: int):
    from flask_migrate import upgrade

    app = create_app(
        {
            "ENV_NAME": "testing",
            "SECRET_KEY": "bench",
            "DATA_KEYS": "Q9IL1wLWWknW3u9Pp-u-OLKm2JEi3h876rP-pMgR0Gc=",  # the bench's throwaway data
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
            "DNS_CONCURRENCY": concurrency,
            "DNS_ALLOW_PRIVATE_SERVERS": True,  # the local DNS server is on loopback
            **server.config,
        }
    )
    with app.app_context():
        upgrade()
    return app


def server_cpu(server: DnsProcess) -> float:
    """CPU seconds the DNS server's process has used so far (Linux: /proc)."""
    fields = Path(f"/proc/{server._process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def recheck(app, server: DnsProcess, ids: list[int], tokens: list[str], profile: bool = False) -> dict:
    """recheck_due() over the given domains, in a fresh database: seconds, queries, what it found."""
    with app.app_context():
        insert(ids, tokens, datetime.now(UTC))
        before = sum(server.queries().values())
        profiler = cProfile.Profile() if profile else None
        cpu, server_before = time.process_time(), server_cpu(server)
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        totals = domain_checks.recheck_due()
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - began
        cpu, server_cpu_s = time.process_time() - cpu, server_cpu(server) - server_before
        queries = sum(server.queries().values()) - before
        verdicts = Counter(db.session.scalars(sa.select(DomainCheck.verdict)))
        active = db.session.scalar(sa.select(sa.func.count()).where(Domain.state == "active"))
        db.session.remove()
        db.engine.dispose()
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(30)
    return {
        "seconds": seconds,
        "queries": queries,
        "totals": totals,
        "verdicts": verdicts,
        "active": active,
        "cpu": cpu,
        "server_cpu": server_cpu_s,
    }


def dns_only(app, server: DnsProcess, n: int, tokens: list[str]) -> dict:
    """check_many() over the N names (the pending ones with their TXT question), no database."""
    with app.app_context():
        prefix = app.config["DNS_VERIFICATION_PREFIX"]
        items = [
            (
                domain_name(i),
                f"{prefix}-verification={tokens[i]}" if kind_of(i).startswith("pending") else None,
            )
            for i in range(n)
        ]
        before = sum(server.queries().values())
        cpu = time.process_time()
        began = time.perf_counter()
        reports = dnscheck.check_many(items)
        seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu
        queries = sum(server.queries().values()) - before
    return {
        "seconds": seconds,
        "queries": queries,
        "cpu": cpu,
        "verdicts": Counter(r.verdict for r in reports),
    }


def counts(counter: Counter) -> str:
    return ", ".join(f"{key or 'none'} {value:,}" for key, value in sorted(counter.items(), key=str))


def main(argv=None) -> None:
    args = options(argv)
    n = args.domains
    tokens = [token_of(i) for i in range(n)]
    timeouts = timing_out(n, args.timeouts)
    # The mix repeats every hundred domains: the first ones hold it. Without the timing-out ones
    # (a sample could not hold their share): the serial time extrapolated is, if anything, too short.
    sample = [i for i in range(n) if i not in timeouts][: args.sample]
    print(
        f"DNS re-check of {n:,} domains: 2 authoritative servers each, {args.delay * 1000:g} ms before "
        f"every answer, DNS_CONCURRENCY {args.concurrency}, {len(timeouts):,} with a server timing out"
    )
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start")
    with DnsProcess() as server, tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp) / "concurrent.sqlite3", server, args.concurrency)
        with app.app_context():
            mx, prefix = dnscheck.expected_mx(), app.config["DNS_VERIFICATION_PREFIX"]
            timeout = app.config["DNS_TIMEOUT"]
        began = time.perf_counter()
        publish(server, n, tokens, mx, prefix, timeouts)
        for address in server.addresses:
            server.behave(address, "delay", delay=args.delay)
        print(f"zones published in {time.perf_counter() - began:.1f} s; DNS_TIMEOUT {timeout:g} s")
        print()

        a = recheck(app, server, list(range(n)), tokens, profile=args.profile)
        dns = None if args.no_dns_only else dns_only(app, server, n, tokens)
        serial_app = make_app(Path(tmp) / "serial.sqlite3", server, 1)
        b = recheck(serial_app, server, sample, tokens)

    b_n = b["seconds"] * n / len(sample)
    print(f"{'':58} {'wall s':>8} {'domains/s':>10} {'queries':>9} {'queries/s':>10}")
    rows = [(f"concurrent re-check, {n:,} domains, with the database", a["seconds"], n, a["queries"])]
    if dns:
        rows.append((f"DNS only (check_many), {n:,} domains", dns["seconds"], n, dns["queries"]))
    rows.append((f"one after another, a sample of {len(sample):,}", b["seconds"], len(sample), b["queries"]))
    for label, seconds, domains, queries in rows:
        print(
            f"  {label:<56} {seconds:>8.1f} {domains / seconds:>10.1f} {queries:>9,} {queries / seconds:>10.1f}"
        )
    print(f"  one after another, {n:,} domains: {b_n:.1f} s, extrapolated from a sample of {len(sample):,}")
    print(f"  speedup {b_n / a['seconds']:.1f}x (goal at least {GOAL:g}x)")
    print(
        f"  CPU of the concurrent re-check: {a['cpu']:.1f} s in this process (checks and database), "
        f"{a['server_cpu']:.1f} s in the DNS server's"
    )
    if dns:
        print(f"  CPU of the DNS only run: {dns['cpu']:.1f} s in this process")
    print()
    totals = a["totals"]
    print(
        f"re-check: {totals['checked']:,} checked, {totals['activated']:,} activated, {totals['warned']:,} "
        f"warned, {totals['unknown']:,} unknown; {a['active']:,} active after"
    )
    print(f"verdicts kept: {counts(a['verdicts'])}")
    if dns:
        print(f"verdicts seen (DNS only): {counts(dns['verdicts'])}")
    if totals["checked"] != n:
        print(f"NOT ALL CHECKED: {totals['checked']:,} of {n:,}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
