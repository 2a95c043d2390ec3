"""The IMAP copy (issue 11): our engine against isync's mbsync and Dovecot's own dsync over imapc.

Two standalone Dovecots on loopback (tests/integration/imap_servers.py): "old", the old provider
(`.` separator, `INBOX.` prefix), holding a mailbox of N messages of realistic sizes (lognormal
around 20 KB, one in a hundred with a 1-5 MB attachment) in 5 folders; and "ours" (`/`,
SPECIAL-USE), its per-message limit raised to 30 MB so every tool can copy every message. Each copy
goes into a fresh mailbox of ours, in plain text on loopback for every tool:

  ours       app.services.migration.copy.run_copy (in a process of its own, for its peak RSS)
  mbsync     isync, `Sync Pull`, `Create Near`, `CopyArrivalDate yes`
  dsync -1   `doveadm sync -1 -R -u USER imapc:`: Dovecot reading the old server over IMAP and
             writing our storage directly, no IMAP on our side (the practical floor)
  backup     `doveadm backup -R -u USER imapc:`, the same one-way

each on loopback and through bench/_delay_proxy.py in front of the old server (`--delay-ms` each
way, 21 ms by default: a 43 ms round trip, what a real old provider looks like). Then a re-run of
ours with nothing to copy, and our peak RSS copying N and 2N messages (loopback). Goals (issue 11):
faster than dsync with the delay; within 1.5x of it on loopback; the re-run under 1 s; memory flat.

    python bench/imap_copy.py                                  # 2,000 messages (about 2 minutes)
    python bench/imap_copy.py --messages 200 --tools ours --no-memory
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402

from app.mailserver.imap import Endpoint  # noqa: E402
from tests.integration.imap_servers import start_imap_server  # noqa: E402
from tests.integration.mailservers import HOST, free_port  # noqa: E402

TOOLS = ("ours", "mbsync", "dsync", "backup")
LABELS = {
    "ours": "ours (run_copy)",
    "mbsync": "mbsync",
    "dsync": "doveadm sync -1",
    "backup": "doveadm backup",
}
# source folder: share of the messages
FOLDERS = {"INBOX": 40, "INBOX.Sent": 20, "INBOX.Archivio": 20, "INBOX.Clienti": 12, "INBOX.Fornitori": 8}
PASSWORD = "bench-pw"
LOOPBACK_GOAL, RERUN_GOAL = 1.5, 1.0
WORDS = "ciao fattura preventivo consegna riunione ordine grazie cordiali saluti allegato".split()


def options(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages in the source (2,000)")
    parser.add_argument("--delay-ms", type=float, default=21.0, help="delay each way at the proxy (21 ms)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"among {','.join(TOOLS)} (all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak RSS with 2N messages")
    parser.add_argument("--profile", action="store_true", help="cProfile our copies (to stderr)")
    parser.add_argument(
        "--parallel",
        default=None,
        help="our connection pairs, one value or several: 1,2,3 (run_copy's default)",
    )
    parser.add_argument(
        "--fsync",
        choices=("optimized", "never"),
        default="optimized",
        help="our server's mail_fsync, for every tool writing there (Dovecot's default: optimized)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one copy of ours, JSON in and out
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.parallel = [int(x) for x in args.parallel.split(",")] if args.parallel else [None]
    unknown = set(args.tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    return args


# --- the source mailbox ---------------------------------------------------------


def message(rng: random.Random, i: int, tag: str) -> bytes:
    """A plain message of a lognormal size (median ~20 KB), one in a hundred with a 1-5 MB attachment."""
    size = min(int(rng.lognormvariate(9.9, 0.9)), 400_000)  # e^9.9 ~ 20 KB
    date = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=37 * i)
    head = (
        f"Message-ID: <{tag}.{i}@vecchio.example>\r\nFrom: Cliente {i % 97} <c{i % 97}@clienti.example>\r\n"
        f"To: mario@esempio.it\r\nSubject: {rng.choice(WORDS)} {i}\r\n"
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\nMIME-Version: 1.0\r\n"
    )
    text = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(11))
        text.append(line)
        n += len(line) + 2
    body = "\r\n".join(text)
    if i % 100 != 7:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()
    attachment = base64.encodebytes(rng.randbytes(rng.randint(750_000, 3_750_000))).replace(b"\n", b"\r\n")
    return (
        (
            head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n--b\r\n"
            'Content-Type: application/pdf; name="allegato.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        ).encode()
        + attachment
        + b"\r\n--b--\r\n"
    )


def seed(port: int, user: str, n: int, tag: str) -> int:
    """N messages in the five folders, some flagged and seen; returns their bytes."""
    rng = random.Random(f"{tag}-{n}")
    client = IMAPClient(HOST, port=port, ssl=False, timeout=60)
    client.login(user, PASSWORD)
    total, i = 0, 0
    for folder, share in FOLDERS.items():
        if folder != "INBOX":
            client.create_folder(folder)
            client.subscribe_folder(folder)
        count = (
            n * share // 100
            if folder != "INBOX"
            else n - sum(n * s // 100 for s in FOLDERS.values()) + n * share // 100
        )
        batch, size = [], 0
        for _ in range(count):
            body = message(rng, i, tag)
            flags = [b"\\Seen"] if i % 3 else []
            if i % 17 == 0:
                flags.append(b"\\Flagged")
            date = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=37 * i, seconds=5)
            batch.append({"msg": body, "flags": flags, "date": date})
            size += len(body)
            total += len(body)
            i += 1
            if size > 8_000_000 or len(batch) >= 200:
                client.multiappend(folder, batch)
                batch, size = [], 0
        if batch:
            client.multiappend(folder, batch)
    client.logout()
    return total


def count_messages(port: int, user: str) -> int:
    client = IMAPClient(HOST, port=port, ssl=False, timeout=60)
    client.login(user, PASSWORD)
    total = 0
    for flags, _sep, name in client.list_folders():
        if b"\\Noselect" not in flags:
            total += client.folder_status(name, [b"MESSAGES"])[b"MESSAGES"]
    client.logout()
    return total


# --- the tools --------------------------------------------------------------------


def run_ours(
    source_port: int,
    source_user: str,
    target_port: int,
    target_user: str,
    profile: bool = False,
    parallel: int | None = None,
) -> dict:
    """Our copy in a process of its own: its seconds (run_copy's), peak RSS and totals."""
    spec = {
        "sp": source_port,
        "su": source_user,
        "tp": target_port,
        "tu": target_user,
        "profile": profile,
        "parallel": parallel,
    }
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    if profile:
        print(f"cProfile of our copy from port {source_port}:\n{result.stderr}", file=sys.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(spec: dict) -> None:
    from app import create_app
    from app.services.migration import run_copy

    app = create_app({"ENV_NAME": "testing", "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    source = Endpoint(HOST, spec["sp"], spec["su"], PASSWORD, security="none")
    target = Endpoint(HOST, spec["tp"], spec["tu"], PASSWORD, security="none")
    with app.app_context():
        profiler = cProfile.Profile() if spec["profile"] else None
        if profiler:
            profiler.enable()
        began = time.perf_counter()
        report = run_copy(source, target, **({"parallel": spec["parallel"]} if spec.get("parallel") else {}))
        seconds = time.perf_counter() - began
        if profiler:
            profiler.disable()
            stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
            stats.print_stats(25)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    totals = report.totals()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "cpu_s": (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF)),
                "copied": totals["copied"],
                "already_present": totals["already_present"],
                "errors": totals["errors"],
                "missing": totals["missing"],
            }
        )
    )


MBSYNC_CONF = """IMAPAccount far
Host {host}
Port {sp}
User {su}
Pass {pw}
SSLType None
AuthMechs LOGIN

IMAPStore far
Account far
Path INBOX.

IMAPAccount near
Host {host}
Port {tp}
User {tu}
Pass {pw}
SSLType None
AuthMechs LOGIN

IMAPStore near
Account near

Channel copy
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
Expunge None
CopyArrivalDate yes
SyncState {state}/
"""


def run_mbsync(source_port: int, source_user: str, target_port: int, target_user: str, work: Path) -> float:
    state = work / f"mbsync-{target_user}"
    state.mkdir()
    conf = state / "mbsyncrc"
    conf.write_text(
        MBSYNC_CONF.format(
            host=HOST,
            sp=source_port,
            su=source_user,
            tp=target_port,
            tu=target_user,
            pw=PASSWORD,
            state=state,
        )
    )
    began = time.perf_counter()
    result = subprocess.run(["mbsync", "-q", "-c", str(conf), "copy"], capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"mbsync: {result.stderr[-2000:]}")
    return seconds


def run_doveadm(
    command: list[str], ours_conf: Path, source_port: int, source_user: str, target_user: str
) -> float:
    settings = {
        "imapc_host": HOST,
        "imapc_port": str(source_port),
        "imapc_user": source_user,
        "imapc_password": PASSWORD,
        "imapc_features": "rfc822.size fetch-headers",
        "imapc_list_prefix": "INBOX",
        "mail_prefetch_count": "20",
    }
    args = ["doveadm", "-c", str(ours_conf)]
    for key, value in settings.items():
        args += ["-o", f"{key}={value}"]
    args += [*command, "-R", "-u", target_user, "imapc:"]
    began = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"doveadm {' '.join(command)}: {result.stderr[-2000:]}")
    return seconds


def installed(tool: str) -> bool:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin"
    if tool == "mbsync":
        return shutil.which("mbsync", path=path) is not None
    if tool in ("dsync", "backup"):
        # imapc is built into dovecot-core's storage library: doveadm is enough.
        return shutil.which("doveadm", path=path) is not None
    return True


# --- the run ------------------------------------------------------------------------


class Proxy:
    def __init__(self, target_port: int, delay_ms: float):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "_delay_proxy.py"), str(self.port), HOST, str(target_port),
             "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the delay proxy did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def main(argv=None) -> None:
    args = options(argv)
    if args.child:
        child(json.loads(args.child))
        return
    n = args.messages
    print(
        f"IMAP copy of {n:,} messages in {len(FOLDERS)} folders, two loopback Dovecots; "
        f"with the delay: {args.delay_ms:g} ms each way in front of the source"
    )
    print(
        f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start; "
        f"our server's mail_fsync = {args.fsync} (for every tool)"
    )
    old = start_imap_server("old")
    ours = start_imap_server("ours")
    proxy = None
    users = iter(range(1, 1000))
    try:
        conf = ours.root / "conf" / "dovecot.conf"
        text = conf.read_text().replace("quota_max_mail_size = 1500k", "quota_max_mail_size = 30M")
        # The same mail_fsync for every tool: ours and mbsync write through this server, doveadm
        # writes its storage directly with this same configuration.
        conf.write_text(text + f"mail_fsync = {args.fsync}\n")
        subprocess.run(["doveadm", "-c", str(conf), "reload"], check=True, capture_output=True)
        time.sleep(1.2)
        old.add_user("vecchio", PASSWORD)
        began = time.perf_counter()
        size = seed(old.port, "vecchio", n, "a")
        print(f"source: {n:,} messages, {size / 2**20:.1f} MB, seeded in {time.perf_counter() - began:.1f} s")
        proxy = Proxy(old.port, args.delay_ms)
        rows: list[tuple[str, str, float | None, str]] = []
        results: dict[tuple[str, float], float] = {}
        runs = [("ours" if t == "ours" else t, p if t == "ours" else None) for t in args.tools for p in
                (args.parallel if t == "ours" else [None])]  # fmt: skip
        extra: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for delay, port in ((0.0, old.port), (args.delay_ms, proxy.port)):
                for tool, parallel in runs:
                    label = LABELS[tool] + (f" x{parallel}" if parallel else "")
                    key = tool if parallel is None else f"ours x{parallel}"
                    if not installed(tool):
                        rows.append((label, delay, None, "not installed"))
                        continue
                    user = f"nuovo{next(users)}"
                    ours.add_user(user, PASSWORD)
                    if tool == "ours":
                        out = run_ours(port, "vecchio", ours.port, user, args.profile, parallel)
                        seconds = out["seconds"]
                        if delay == 0:
                            extra["rss_n"] = out["rss_mb"]
                        again = run_ours(port, "vecchio", ours.port, user, parallel=parallel)
                        extra[f"rerun_{key}_{delay}"] = (again["seconds"], again["copied"])
                    elif tool == "mbsync":
                        seconds = run_mbsync(port, "vecchio", ours.port, user, work)
                    else:
                        command = ["sync", "-1"] if tool == "dsync" else ["backup"]
                        seconds = run_doveadm(command, conf, port, "vecchio", user)
                    copied = count_messages(ours.port, user)
                    note = "" if copied == n else f"INCOMPLETE: {copied:,} of {n:,}"
                    results[(key, delay)] = seconds
                    rows.append((label, delay, seconds, note))
            if "ours" in args.tools and not args.no_memory:
                old.add_user("vecchio2", PASSWORD)
                seed(old.port, "vecchio2", 2 * n, "b")
                user = f"nuovo{next(users)}"
                ours.add_user(user, PASSWORD)
                out = run_ours(old.port, "vecchio2", ours.port, user)
                extra["rss_2n"] = out["rss_mb"]
                extra["seconds_2n"] = out["seconds"]
        print()
        print(f"{'':22} {'delay ms':>9} {'wall s':>8} {'messages/s':>11}")
        for label, delay, seconds, note in rows:
            delay_text = f"{delay:g} each way" if delay else "loopback"
            if seconds is None:
                print(f"  {label:20} {delay_text:>9}  {note}")
            else:
                print(f"  {label:20} {delay_text:>9} {seconds:8.2f} {n / seconds:11.0f}  {note}".rstrip())
        ours_keys = [
            tool if parallel is None else f"ours x{parallel}" for tool, parallel in runs if tool == "ours"
        ]
        for key in ours_keys:
            for delay in (0.0, args.delay_ms):
                if f"rerun_{key}_{delay}" in extra:
                    seconds, copied = extra[f"rerun_{key}_{delay}"]
                    where = "loopback" if not delay else f"{delay:g} ms each way"
                    print(
                        f"  {key}, re-run with nothing to copy ({where}): {seconds:.2f} s, {copied} copied "
                        f"(goal under {RERUN_GOAL:g} s)"
                    )
        if "rss_n" in extra and "rss_2n" in extra:
            print(
                f"  ours, peak RSS: {extra['rss_n']:.1f} MB for {n:,} messages, {extra['rss_2n']:.1f} MB for "
                f"{2 * n:,} (copied in {extra['seconds_2n']:.1f} s); ratio {extra['rss_2n'] / extra['rss_n']:.2f}"
            )
        for key in ours_keys:
            for base in ("dsync", "backup"):
                for delay in (0.0, args.delay_ms):
                    if (key, delay) in results and (base, delay) in results:
                        ratio = results[(key, delay)] / results[(base, delay)]
                        goal = "goal under 1" if delay else f"goal within {LOOPBACK_GOAL:g}"
                        where = "loopback" if not delay else "with the delay"
                        print(f"  {key} / {LABELS[base]}, {where}: {ratio:.2f}x ({goal})")
    finally:
        if proxy:
            proxy.stop()
        old.stop()
        ours.stop()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
