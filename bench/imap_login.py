"""IMAP LOGIN latency through the panel's SQL views, against Dovecot's fastest passdb (a passwd-file).

A PostgreSQL database (panel_bench_imap_<checkout>) gets 100,000 mailboxes by bulk
insert. Two Dovecot instances run side by side on loopback, both from the
configuration `flask mailserver config --dovecot` renders against that
database; in the second one the sql passdb/userdb are swapped for a
passwd-file holding the same 100,000 users, hashes and quota rules. Then
random users log in over IMAP, a new connection each, alternating the two
servers so both see the same conditions; the median and p95 of LOGIN (the
command's round trip: passdb, password check, userdb, the imap process's
start) are printed with their ratio. Goal: views within 1.5x of the file.

It runs twice: with the production argon2 cost (what users meet: the hash
check dominates) and with a cheap argon2 on both sides (what shows the
lookup's own cost). EXPLAIN shows that every query of the servers uses an
index. Needs root (Dovecot), Dovecot and PostgreSQL.

    python bench/imap_login.py
    BENCH_MAILBOXES=20000 BENCH_LOGINS=100 python bench/imap_login.py
"""

from __future__ import annotations

import imaplib
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.mailserver import render  # noqa: E402
from app.mailserver.settings import Database, MailServerSettings  # noqa: E402
from app.models import Alias, DistributionList, ListMember, Mailbox  # noqa: E402
from app.services import classes, customers, domains, mailserver  # noqa: E402
from app.services.access import Actor  # noqa: E402
from bench._postgres import drop_database, fresh_database  # noqa: E402

MAILBOXES = int(os.environ.get("BENCH_MAILBOXES", "100000"))
LOGINS = int(os.environ.get("BENCH_LOGINS", "200"))
PER_DOMAIN = 1000
GOAL_RATIO = 1.5
PASSWORD = "Bench-mailbox-1"
HOST = "127.0.0.1"
MAIL_USER, MAIL_GROUP = "nobody", "nogroup"
DB_BASE = "panel_bench_imap"
CLASSES = ("Business Mail 1.000 MB", "Business Mail Plus 2.000 MB", "Professional Suite 5.000 MB")
SYSTEM = Actor.system("bench")
# (label, argon2 time cost, memory cost in KiB); the first is the panel's production default.
COSTS = (("argon2id t=3 m=64 MiB (production)", 3, 65536), ("argon2id t=1 m=1 MiB (cheap)", 1, 1024))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_app(url: str):
    from flask_migrate import upgrade

    app = create_app({"ENV_NAME": "testing", "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
    return app


def argon2_hash(time_cost: int, memory_cost: int) -> str:
    """One hash for every mailbox, in the form the panel stores: hashing 100,000 would take hours."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
    return "{ARGON2ID}" + hasher.hash(PASSWORD)


def load(password_hash: str) -> list[tuple[str, str, int]]:
    """Bulk-load the mailboxes (SQLAlchemy core); returns (address, home, quota_mb) of each."""
    now = datetime.now(UTC)
    class_rows = [classes.resolve(name) for name in CLASSES]
    users = []
    for d in range(-(-MAILBOXES // PER_DOMAIN)):
        customer = customers.create_customer(SYSTEM, name=f"Cliente {d}", plan="payg")
        domain = domains.add_domain(SYSTEM, customer.id, f"cliente{d}.example")
        rows = []
        for i in range(d * PER_DOMAIN, min(MAILBOXES, (d + 1) * PER_DOMAIN)):
            cls = class_rows[i % len(class_rows)]
            local = f"utente{i}"
            rows.append(
                {
                    "customer_id": customer.id,
                    "domain_id": domain.id,
                    "local_part": local,
                    "address": f"{local}@{domain.name}",
                    "display_name": f"Utente {i}",
                    "password_hash": password_hash,
                    "service_class_id": cls.id,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            users.append((f"{local}@{domain.name}", f"{domain.name}/{local}", cls.quota_mb))
        db.session.execute(sa.insert(Mailbox.__table__), rows)
        load_addresses(customer.id, domain.id, domain.name, now)
    db.session.commit()
    db.session.execute(sa.text("ANALYZE"))
    db.session.commit()
    return users


def server_queries(url: str) -> dict[str, str]:
    """The queries Dovecot and Postfix send, taken from what the renderer writes."""
    settings = MailServerSettings(database=Database.from_url(url))
    text = mailserver.render_dovecot(settings)["dovecot-sql.conf.ext"].replace("\\\n", " ")
    found = dict(re.findall(r"^(password_query|user_query) = (.*)$", text, re.M))
    queries = {f"dovecot {k}": v.replace("'%s'", "'imap'") for k, v in found.items()}
    queries.update({f"postfix {name}": query for name, query in render.POSTFIX_MAPS.items()})
    return queries


def load_addresses(customer_id: int, domain_id: int, domain_name: str, now) -> None:
    """Aliases (1 for 10 mailboxes) and lists (1 for 100, 5 members): so Postfix's plans are real ones."""
    ids = db.session.scalars(sa.select(Mailbox.id).where(Mailbox.domain_id == domain_id)).all()
    common = {"customer_id": customer_id, "domain_id": domain_id, "created_at": now}
    db.session.execute(
        sa.insert(Alias.__table__),
        [
            {
                **common,
                "local_part": f"alias{n}",
                "address": f"alias{n}@{domain_name}",
                "target_id": ids[n * 10],
            }
            for n in range(len(ids) // 10)
        ],
    )
    lists = [
        {**common, "local_part": f"lista{n}", "address": f"lista{n}@{domain_name}", "description": ""}
        for n in range(max(1, len(ids) // 100))
    ]
    db.session.execute(sa.insert(DistributionList.__table__), lists)
    list_ids = db.session.scalars(
        sa.select(DistributionList.id).where(DistributionList.domain_id == domain_id)
    ).all()
    members = [
        {"list_id": list_id, "mailbox_id": ids[(n * 4 + k) % len(ids)], "external_address": None}
        for n, list_id in enumerate(list_ids)
        for k in range(4)
    ]
    members += [
        {"list_id": list_id, "mailbox_id": None, "external_address": f"socio{n}@fuori.example"}
        for n, list_id in enumerate(list_ids)
    ]
    db.session.execute(sa.insert(ListMember.__table__), members)


def explain(url: str, address: str) -> list[str]:
    """Each query the servers send: its time, and proof that it can go through indexes only.

    With enable_seqscan off PostgreSQL still scans a table sequentially when
    no index serves the lookup, so a "Seq Scan" left in that plan is a
    missing index. (With it on, the planner may rightly read a small table
    such as service_classes, 32 rows, whole.)
    """
    lines = []
    with psycopg.connect(url, autocommit=True) as conn:
        for name, query in server_queries(url).items():
            sql = query.replace("'%u'", f"'{address}'").replace("'%s'", f"'{address}'")
            natural = [row[0] for row in conn.execute(f"EXPLAIN ANALYZE {sql}")]
            took = next((p for p in natural if p.startswith("Execution Time")), "").lower()
            conn.execute("SET enable_seqscan = off")
            forced = [row[0] for row in conn.execute(f"EXPLAIN {sql}")]
            conn.execute("RESET enable_seqscan")
            scans = [p.strip().removeprefix("->  ").split("  (")[0] for p in forced if "Scan" in p]
            missing = [scan for scan in scans if scan.startswith("Seq Scan")]
            verdict = (
                "every table through an index" if not missing else "MISSING INDEX: " + "; ".join(missing)
            )
            lines.append(f"  {name:<34} {took:<28} {verdict}")
            lines += [f"      {scan}" for scan in scans if "Subquery" not in scan]
    return lines


class Dovecot:
    """One throwaway instance rendered by `flask mailserver config --dovecot`."""

    def __init__(self, app, url: str, name: str):
        self.root = Path(tempfile.mkdtemp(prefix=f"bench-imap-{name}-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.conf = self.root / "conf"
        for sub in ("conf", "run", "state", "log", "vmail"):
            (self.root / sub).mkdir()
        shutil.chown(self.root / "vmail", MAIL_USER, MAIL_GROUP)
        runner = app.test_cli_runner()
        args = [
            "mailserver", "config", "--dovecot", "--database-url", url, "--out", str(self.conf),
            "--mail-root", str(self.root / "vmail"), "--mail-user", MAIL_USER, "--mail-group", MAIL_GROUP,
            "--base-dir", str(self.root / "run"), "--state-dir", str(self.root / "state"),
            "--log-dir", str(self.root / "log"), "--listen", HOST,
            "--imap-port", str(self.port), "--pop3-port", str(free_port()), "--lmtp-port", str(free_port()),
            "--master-user-file", str(self.conf / "master-users"),
            "--instance-name", f"bench-{name}-{self.root.name}",
            # Every login comes from 127.0.0.1 and all succeed: no brakes.
            "--auth-failure-delay", "0", "--no-auth-penalty",
        ]  # fmt: skip
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
        result = runner.invoke(
            args=["mailserver", "master-user", str(self.conf / "master-users")],
            env={"DOVECOT_MASTER_USER": "assistenza", "DOVECOT_MASTER_PASSWORD": "Bench-master-password-1"},
        )
        assert result.exit_code == 0, result.output

    def use_passwd_file(self, users: list[tuple[str, str, int]], password_hash: str) -> None:
        """Swap the sql passdb/userdb for a passwd-file of the same users: Dovecot's fastest lookup."""
        self.write_passwd_file(users, password_hash)
        conf = (self.conf / "dovecot.conf").read_text()
        sql = f"  driver = sql\n  args = {self.conf / 'dovecot-sql.conf.ext'}\n"
        assert conf.count(sql) == 2, "the rendered passdb/userdb blocks changed shape"
        conf = conf.replace(sql, f"  driver = passwd-file\n  args = {self.conf / 'users.passwd'}\n")
        (self.conf / "dovecot.conf").write_text(conf)

    def write_passwd_file(self, users, password_hash: str) -> None:
        vmail = self.root / "vmail"
        lines = [
            f"{address}:{password_hash}::::{vmail}/{home}::userdb_quota_rule=*:storage={quota_mb}M\n"
            for address, home, quota_mb in users
        ]
        (self.conf / "users.passwd").write_text("".join(lines))

    def start(self) -> None:
        # The daemon keeps the stdout it was started with: a file, never a pipe we would wait on.
        with open(self.root / "log" / "start.log", "ab") as out:
            subprocess.run(
                ["dovecot", "-c", str(self.conf / "dovecot.conf")], check=True, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not answer on {self.port}:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        path = self.root / "log" / "dovecot.log"
        return "\n".join(path.read_text().splitlines()[-20:]) if path.exists() else ""

    def stop(self) -> None:
        subprocess.run(
            ["dovecot", "-c", str(self.conf / "dovecot.conf"), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)

    def login_ms(self, user: str) -> tuple[float, float]:
        """(LOGIN round trip, connect + greeting + LOGIN) in ms, on a new connection."""
        started = time.perf_counter()
        client = imaplib.IMAP4(HOST, self.port, timeout=30)
        sent = time.perf_counter()
        try:
            client.login(user, PASSWORD)
            done = time.perf_counter()
        except imaplib.IMAP4.error as e:
            raise RuntimeError(f"{user} refused on {self.port}: {e}\n{self.log_tail()}") from None
        finally:
            client.logout()
        return (done - sent) * 1000, (done - started) * 1000


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def measure(views: Dovecot, passwd: Dovecot, users: list, label: str) -> list[str]:
    rng = random.Random(42)
    for _ in range(5):  # warm-up: processes, caches, the passwd-file's first read
        views.login_ms(rng.choice(users)[0])
        passwd.login_ms(rng.choice(users)[0])
    results: dict[str, list[tuple[float, float]]] = {"views": [], "passwd": []}
    for i in range(LOGINS):
        user = rng.choice(users)[0]
        # Alternate who goes first, so neither side always meets a warmer system.
        order = (("views", views), ("passwd", passwd)) if i % 2 else (("passwd", passwd), ("views", views))
        for name, server in order:
            results[name].append(server.login_ms(user))
    lines = [f"{label}: {LOGINS} logins each, random users of {len(users):,}, a new connection each"]
    medians = {}
    for name, title in (("views", "SQL views (PostgreSQL)"), ("passwd", "passwd-file")):
        login = [r[0] for r in results[name]]
        total = [r[1] for r in results[name]]
        medians[name] = statistics.median(login)
        lines.append(
            f"  {title:<24} LOGIN median {statistics.median(login):7.2f} ms  p95 {p95(login):7.2f} ms"
            f"   (connect+LOGIN median {statistics.median(total):7.2f} ms  p95 {p95(total):7.2f} ms)"
        )
    ratio = medians["views"] / medians["passwd"]
    verdict = "ok" if ratio <= GOAL_RATIO else f"OVER the {GOAL_RATIO}x goal"
    lines.append(f"  ratio views / passwd-file (median LOGIN): {ratio:.2f}x: {verdict}")
    return lines


def main() -> int:
    if os.geteuid() != 0 or not shutil.which("dovecot"):
        print("not measured: needs root and Dovecot (scripts/install-mailservers.sh)")
        return 0
    try:
        url = fresh_database(DB_BASE)
    except psycopg.Error as e:
        print(f"not measured, PostgreSQL unreachable: {str(e).strip().splitlines()[0]}")
        return 0
    try:
        run(url)
    finally:
        drop_database(DB_BASE)
    return 0


def run(url: str) -> None:
    """Each figure is printed once, as soon as it is measured."""
    app = make_app(url)
    with app.app_context():
        started = time.perf_counter()
        hashes = {label: argon2_hash(t, m) for label, t, m in COSTS}
        users = load(hashes[COSTS[0][0]])
        print(
            f"loaded {len(users):,} mailboxes (and an alias for 10, a list for 100) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        lines = [f"The servers' lookups on PostgreSQL with {len(users):,} mailboxes (EXPLAIN ANALYZE):"]
        print("\n".join(lines + explain(url, users[len(users) // 2][0])), flush=True)
        views = Dovecot(app, url, "views")
        passwd = Dovecot(app, url, "passwd")
        passwd.use_passwd_file(users, hashes[COSTS[0][0]])
        try:
            views.start()
            passwd.start()
            for label, _t, _m in COSTS:
                # Same hash on both sides: in the database and in the file.
                db.session.execute(sa.update(Mailbox).values(password_hash=hashes[label]))
                db.session.commit()
                passwd.write_passwd_file(users, hashes[label])
                print("\n".join(measure(views, passwd, users, label)), flush=True)
        finally:
            views.stop()
            passwd.stop()
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
