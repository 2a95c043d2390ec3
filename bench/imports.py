"""Bulk provisioning: time to read and check a large sheet, and time to apply it against its floor.

On PostgreSQL (a fresh database per size) with real RQ workers (`python worker.py --queues bulk`,
one per core) and the production argon2 cost (ARGON2_TIME_COST / ARGON2_MEMORY_COST as
configured, 3 and 64 MiB by default):

  preview   a file of N mailboxes + N/2 aliases + N/20 lists of 10 members each, read
            (sheets.read_upload) and checked and stored (imports.preview). Goal: under 10 s
            at 10,000 mailboxes.
  apply     the same file applied by the workers, from "apply" to the import's end.
  floor     N x one hash / cores: the hashing alone, perfectly spread. The hash time is
            measured in the same run (HASH_SAMPLES hashes in this process, before the apply).
            Goal: apply within 1.3x of the floor.

    python bench/imports.py                      # 1,000 and 10,000 mailboxes (about 30 minutes)
    BENCH_SIZES=1000 python bench/imports.py
"""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import sqlalchemy as sa
from openpyxl import Workbook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Import, Mailbox  # noqa: E402
from app.models.enums import ImportState  # noqa: E402
from app.services import customers, domains, imports, passwords, sheets  # noqa: E402
from app.services.access import Actor  # noqa: E402
from bench._postgres import drop_database, fresh_database  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "1000,10000").split(","))
PREVIEW_ONLY = os.environ.get("BENCH_PREVIEW_ONLY") == "1"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
DB_BASE = "panel_bench_imports"
CLASS = "Business Mail 1.000 MB"
HASH_SAMPLES = 20
CORES = os.cpu_count() or 1
PREVIEW_GOAL, APPLY_GOAL = 10.0, 1.3
SYSTEM = Actor.system("bench")
DATA_KEY = "Q9IL1wLWWknW3u9Pp-u-OLKm2JEi3h876rP-pMgR0Gc="  # the bench's own throwaway data


def workbook(n: int) -> bytes:
    """N mailboxes, N/2 aliases, N/20 lists of 10 members: the issue's 10,000 + 5,000 + 500."""
    book = Workbook(write_only=True)
    boxes = book.create_sheet("Caselle")
    boxes.append(["Account", "Password", "Nome visualizzato", "Classe di servizio"])
    for i in range(n):
        boxes.append([f"utente{i:05d}@bench.example", f"Parola-Segreta-{i:05d}", f"Utente {i}", CLASS])
    alias_sheet = book.create_sheet("Alias")
    alias_sheet.append(["Alias", "Casella"])
    for i in range(n // 2):
        alias_sheet.append([f"alias{i:05d}@bench.example", f"utente{i:05d}@bench.example"])
    list_sheet = book.create_sheet("Liste")
    list_sheet.append(["Lista", "Membro", "Descrizione"])
    for i in range(n // 20):
        members = ", ".join(f"utente{(i * 10 + k) % n:05d}@bench.example" for k in range(10))
        list_sheet.append([f"lista{i:04d}@bench.example", members, f"Lista {i}"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def hash_seconds() -> float:
    began = time.perf_counter()
    for i in range(HASH_SAMPLES):
        passwords._hasher().hash(f"Parola-Segreta-{i:05d}")
    return (time.perf_counter() - began) / HASH_SAMPLES


def start_workers(url: str, workdir: Path) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "APP_ENV": "development",
        "SECRET_KEY": "bench",
        "DATA_KEYS": DATA_KEY,
        "INSTANCE_DIR": str(workdir),
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        # One hashing process per core (the defaults suit 2 cores).
        "IMPORT_PARALLEL": str(CORES),
        "ARGON2_PER_CUSTOMER": str(CORES),
    }
    return [
        subprocess.Popen(
            [sys.executable, "worker.py", "--queues", "bulk"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / f"worker-{i}.log", "wb"),  # noqa: SIM115
        )
        for i in range(CORES)
    ]


def stop(workers: list[subprocess.Popen]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()


def run(n: int) -> dict:
    url = fresh_database(DB_BASE)
    redis.Redis.from_url(REDIS_URL).flushdb()
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "ENV_NAME": "testing",
            "SECRET_KEY": "bench",
            "DATA_KEYS": DATA_KEY,
            "REDIS_URL": REDIS_URL,
            "IMPORT_PARALLEL": CORES,
            "ARGON2_PER_CUSTOMER": CORES,
        }
    )
    out: dict = {"n": n}
    try:
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            c = customers.create_customer(SYSTEM, name="Bench S.r.l.", plan="contract")
            customers.set_contract(SYSTEM, c.id, [{"service_class": CLASS, "max_accounts": n}], True)
            domains.add_domain(SYSTEM, c.id, "bench.example")
            data = workbook(n)
            out["bytes"] = len(data)
            began = time.perf_counter()
            wb = sheets.read_upload(data, "bench.xlsx", max_bytes=100 * 2**20, max_rows=10**6)
            out["read"] = time.perf_counter() - began
            out["rows"] = len(wb.rows)
            began = time.perf_counter()
            imp = imports.preview(SYSTEM, c.id, data, "bench.xlsx")
            out["preview"] = time.perf_counter() - began
            assert imp.problem_count == 0, imp.problems[:5]
            out["ops"] = sum(sum(v.values()) for v in imp.counts.values())
            if PREVIEW_ONLY:
                return out
            out["hash"] = hash_seconds()
            with tempfile.TemporaryDirectory() as tmp:
                workers = start_workers(url, Path(tmp))
                try:
                    time.sleep(2)  # the workers import the app
                    began = time.perf_counter()
                    imports.start_apply(SYSTEM, imp.id)
                    while True:
                        db.session.rollback()
                        state = db.session.scalar(sa.select(Import.state).where(Import.id == imp.id))
                        if state != ImportState.APPLYING:
                            break
                        if any(w.poll() is not None for w in workers):
                            raise RuntimeError(f"a worker stopped; its log is in {tmp}")
                        time.sleep(0.2)
                    out["apply"] = time.perf_counter() - began
                finally:
                    stop(workers)
            out["state"] = state
            out["created"] = db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox))
            out["result"] = db.session.get(Import, imp.id).result
        return out
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(DB_BASE)


def main() -> None:
    load = os.getloadavg()[0]
    print(f"cores {CORES}, load average {load:.1f} at the start; argon2 as configured")
    print()
    print(
        " mailboxes  file rows   ops | file MB  read s  preview s (goal < 10) |  hash s  floor s  apply s  ratio (goal <= 1.3)"
    )
    for n in SIZES:
        r = run(n)
        line = (
            f"{n:>10,} {r['rows']:>10,} {r['ops']:>5,} | {r['bytes'] / 2**20:>7.2f} {r['read']:>7.2f}"
            f" {r['preview']:>10.2f}{' ' * 13}|"
        )
        if not PREVIEW_ONLY:
            floor = n * r["hash"] / CORES
            line += f" {r['hash']:>7.3f} {floor:>8.1f} {r['apply']:>8.1f} {r['apply'] / floor:>6.2f}x"
            if r["state"] != ImportState.DONE or r["created"] != n:
                line += f"  NOT DONE: {r['state']}, {r['created']} created, {r['result']}"
        print(line, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process {peak:.0f} MB; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
