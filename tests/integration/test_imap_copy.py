"""`flask migration copy` between two real Dovecots on loopback (tests/integration/imap_servers.py).

The old provider has a `.` separator and an `INBOX.` prefix, no SPECIAL-USE,
English and Italian folder names, nested and accented folders; ours has `/`,
SPECIAL-USE and a master user. The copy must map every folder, keep flags
and dates, skip the too-large message, copy nothing twice and leave the
source untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from imapclient import IMAPClient

from app.mailserver.imap import Endpoint, ImapError, close, connect
from app.services.migration import DEFAULT_MAX_SIZE, run_copy
from app.services.migration.copy import _fetch_parsed, _fetch_raw, folder_meta
from app.services.migration.folders import Namespace, SourceFolder, map_folders
from tests.conftest import CI
from tests.integration.imap_servers import MASTER, MASTER_PASSWORD, start_imap_server
from tests.integration.mailservers import HOST

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair():
    problem = None
    if shutil.which("dovecot") is None and not os.path.exists("/usr/sbin/dovecot"):
        problem = "missing dovecot: run scripts/install-mailservers.sh as root on Debian"
    elif os.geteuid() != 0:
        problem = "the Dovecot test instances need root"
    if problem:
        if CI:
            pytest.fail(f"CI=true: {problem}")
        pytest.skip(problem)
    old = start_imap_server("old")
    try:
        ours = start_imap_server("ours")
    except Exception:
        old.stop()
        raise
    yield old, ours
    old.stop()
    ours.stop()


def _accounts(pair):
    old, ours = pair
    tag = uuid.uuid4().hex[:8]
    src_user, dst_user = f"vecchio{tag}", f"mario{tag}@esempio.it"
    old.add_user(src_user, "pw-vecchia")
    ours.add_user(dst_user, "pw-nuova-non-usata")
    return src_user, dst_user


def _client(server, user, password) -> IMAPClient:
    client = IMAPClient(HOST, port=server.port, ssl=False, timeout=30)
    client.login(user, password)
    client.normalise_times = False
    return client


def _message(subject: str, *, message_id: str | None, date: str, body: bytes = b"Ciao.\r\n") -> bytes:
    head = [
        "From: Anna <anna@vecchio.example>",
        "To: mario@esempio.it",
        f"Subject: {subject}",
        f"Date: {date}",
    ]
    if message_id:
        head.insert(0, f"Message-ID: <{message_id}>")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


OLD_DATE = datetime(2009, 3, 14, 9, 26, 53, tzinfo=timezone(timedelta(hours=1)))

# source folder -> [(subject, flags, has Message-ID)], and its expected name on our side.
LAYOUT = {
    "INBOX": ("INBOX", [("benvenuto", (b"\\Seen",), True), ("urgente", (b"\\Flagged", b"$Label1"), True),
                        ("senza id", (b"\\Seen", b"\\Answered"), False), ("doppio", (), False),
                        ("doppio", (), False)]),
    "INBOX.Sent Items": ("Sent", [("inviato en", (b"\\Seen",), True)]),
    "INBOX.Posta inviata": ("Sent", [("inviato it", (b"\\Seen",), False)]),
    "INBOX.Bozze": ("Drafts", [("bozza", (b"\\Draft",), True)]),
    "INBOX.Cestino": ("Trash", [("cestinato", (b"\\Seen", b"\\Deleted"), True)]),
    "INBOX.Posta indesiderata": ("Junk", [("spam", (), True)]),
    "INBOX.Archivio": ("Archive", [("archiviato", (b"\\Seen",), True)]),
    "INBOX.Archivio.2019": ("Archive/2019", [("vecchio", (b"\\Seen",), True)]),
    "INBOX.Clienti": ("Clienti", []),
    "INBOX.Clienti.Rossi & Figli": ("Clienti/Rossi & Figli", [("preventivo", (), True)]),
    "INBOX.Città.Però": ("Città/Però", [("accentata", (b"\\Seen",), False)]),
    "INBOX.Fatture è già": ("Fatture è già", [("fattura", (), True)]),
}  # fmt: skip
BIG_FOLDER = "INBOX.Archivio.2019"


def _seed(client: IMAPClient) -> None:
    n = 0
    for folder, (_target, messages) in LAYOUT.items():
        if folder != "INBOX":
            client.create_folder(folder)
            client.subscribe_folder(folder)
        for subject, flags, has_id in messages:
            n += 1
            date = OLD_DATE + timedelta(days=n)
            raw = _message(
                subject, message_id=f"{subject.replace(' ', '.')}.{n}@vecchio.example" if has_id else None,
                date=date.strftime("%a, %d %b %Y %H:%M:%S %z"),
            )  # fmt: skip
            client.append(folder, raw, flags=flags, msg_time=date)
    # 2 MB: over the 1 MiB limit the test passes with --max-size-mb 1.
    big = _message("allegato enorme", message_id="enorme@vecchio.example", date="Mon, 1 Jun 2015 10:00:00 +0200",
                   body=(b"x" * 76 + b"\r\n") * 27000)  # fmt: skip
    client.append(BIG_FOLDER, big, flags=(b"\\Seen",), msg_time=datetime(2015, 6, 1, 8, 0, tzinfo=UTC))


def _snapshot(client: IMAPClient) -> dict:
    """Every folder's UIDVALIDITY, UIDNEXT, count and each message's flags and date (\\Recent aside)."""
    state = {}
    for flags, _sep, name in client.list_folders():
        if b"\\Noselect" in flags:
            continue
        status = client.folder_status(name, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"])
        client.select_folder(name, readonly=True)
        uids = client.search("ALL")
        data = client.fetch(uids, ["FLAGS", "INTERNALDATE"]) if uids else {}
        state[name] = (
            status,
            {
                u: (sorted(f for f in d[b"FLAGS"] if f != b"\\Recent"), d[b"INTERNALDATE"])
                for u, d in data.items()
            },
        )
    return state


def _contents(client: IMAPClient) -> dict:
    """Our side: folder -> sorted [(subject, flags, UTC date)]."""
    result = {}
    for flags, _sep, name in client.list_folders():
        if b"\\Noselect" in flags:
            continue
        client.select_folder(name, readonly=True)
        uids = client.search("ALL")
        items = []
        if uids:
            for d in client.fetch(
                uids, ["FLAGS", "INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
            ).values():
                subject = d[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
                flags = tuple(sorted(f for f in d[b"FLAGS"] if f != b"\\Recent"))
                items.append((subject, flags, d[b"INTERNALDATE"].astimezone(UTC)))
        result[name] = sorted(items)
    return result


def _expected() -> dict:
    expected: dict = {}
    n = 0
    for _folder, (target, messages) in LAYOUT.items():
        expected.setdefault(target, [])
        for subject, flags, _has_id in messages:
            n += 1
            expected[target].append(
                (subject, tuple(sorted(flags)), (OLD_DATE + timedelta(days=n)).astimezone(UTC))
            )
    for target in expected:
        expected[target].sort()
    return expected


def _cli(app, src_user, dst_user, pair, *args):
    old, ours = pair
    return app.test_cli_runner().invoke(
        args=[
            "migration", "copy",
            f"imap://{src_user}@{HOST}:{old.port}",
            f"imap://{dst_user.replace('@', '%40')}*{MASTER}@{HOST}:{ours.port}",
            *args,
        ],
        # Our side offers STARTTLS (required by imap://), its certificate verified against this CA.
        env={"SOURCE_PASSWORD": "pw-vecchia", "DEST_PASSWORD": MASTER_PASSWORD, "SSL_CERT_FILE": ours.cert},
    )  # fmt: skip


def test_the_default_limit_is_29_mib(app):
    assert DEFAULT_MAX_SIZE == 30_408_704
    option = next(p for p in app.cli.commands["migration"].commands["copy"].params if p.name == "max_size_mb")
    assert int(option.default * 1024 * 1024) == 30_408_704


def test_folder_mapping_by_attribute_then_by_name():
    source = Namespace("INBOX.", ".")
    ours = Namespace("", "/")
    folders = [
        SourceFolder("INBOX"),
        SourceFolder("INBOX.Elementi inviati"),
        SourceFolder("INBOX.Outbox-copie", (b"\\HasNoChildren", b"\\Sent")),
        SourceFolder("INBOX.Deleted Items.Vecchi"),
        SourceFolder("INBOX.Spam"),
        SourceFolder("INBOX.Progetti.Sent"),  # a "Sent" below another folder is a plain folder
        SourceFolder("INBOX.Vuota", (b"\\Noselect",)),
        SourceFolder("INBOX.a/b"),
    ]
    mapped = {m.source: (m.target, m.role) for m in map_folders(folders, source, ours, {"sent": "Inviata"})}
    assert mapped == {
        "INBOX": ("INBOX", None),
        "INBOX.Elementi inviati": ("Inviata", "sent"),
        "INBOX.Outbox-copie": ("Inviata", "sent"),
        "INBOX.Deleted Items.Vecchi": ("Trash/Vecchi", None),
        "INBOX.Spam": ("Junk", "junk"),
        "INBOX.Progetti.Sent": ("Progetti/Sent", None),
        "INBOX.a/b": ("a_b", None),
    }


def test_copy_maps_every_folder_keeps_flags_and_dates_and_never_copies_twice(app, pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    _seed(source)
    before = _snapshot(source)
    # The fast metadata reader agrees with imapclient's parser, message by message.
    # So does its "every message" form (FETCH 1:*, no SEARCH), which wants the folder's EXISTS.
    for folder in ("INBOX", BIG_FOLDER, "INBOX.Città.Però"):
        exists = source.select_folder(folder, readonly=True)[b"EXISTS"]
        uids = source.search("ALL")
        fast = _fetch_raw(source, uids)
        assert fast is not None and fast == _fetch_parsed(source, uids) and len(fast) == len(uids)
        assert _fetch_raw(source, None, exists) == fast
        assert _fetch_raw(source, None, exists + 1) is None  # a count that does not match: the parser
        assert [m.uid for m in folder_meta(source, exists + 1)] == sorted(uids)
        assert list(folder_meta(source, exists)) == list(folder_meta(source))
    total = sum(len(m) for _t, m in LAYOUT.values()) + 1

    # Preflight: counts, names on our side, the big one; nothing written.
    result = _cli(app, src_user, dst_user, pair, "--dry-run", "--json", "--max-size-mb", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["totals"]["source_count"] == total
    assert report["totals"]["copied"] == 0
    assert {f["source"]: f["target"] for f in report["folders"]} == {k: v[0] for k, v in LAYOUT.items()}
    big = [b for f in report["folders"] for b in f["skipped_too_large"]]
    assert [(b["subject"], b["size"] > 2_000_000) for b in big] == [("allegato enorme", True)]
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    assert [name for _f, _s, name in target.list_folders()] == ["INBOX"]
    assert target.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"] == 0

    # The copy.
    result = _cli(app, src_user, dst_user, pair, "--json", "--max-size-mb", "1")
    assert result.exit_code == 0, result.output
    totals = json.loads(result.stdout)["totals"]
    assert totals == {
        **totals,
        "copied": total - 1,
        "already_present": 0,
        "skipped_too_large": 1,
        "errors": 0,
        "missing": 0,
    }
    contents = _contents(target)
    assert contents == _expected()
    assert "Sent Items" not in contents and "Posta inviata" not in contents
    special = {name: flags for flags, _s, name in target.list_folders()}
    assert b"\\Sent" in special["Sent"] and b"\\Trash" in special["Trash"]
    subscribed = {name for _f, _s, name in target.list_sub_folders()}
    assert {"Sent", "Drafts", "Clienti/Rossi & Figli", "Città/Però", "Fatture è già"} <= subscribed

    # A re-run copies nothing (one connection pair this time); the source never changed.
    result = _cli(app, src_user, dst_user, pair, "--json", "--max-size-mb", "1", "--parallel", "1")
    assert result.exit_code == 0, result.output
    totals = json.loads(result.stdout)["totals"]
    assert (totals["copied"], totals["already_present"], totals["skipped_too_large"]) == (0, total - 1, 1)
    assert _contents(target) == _expected()
    assert _snapshot(source) == before

    # Without --json: a line per folder, the skipped message, the totals.
    result = _cli(app, src_user, dst_user, pair, "--max-size-mb", "1")
    assert result.exit_code == 0, result.output
    assert "INBOX.Posta inviata -> Sent: 1 messaggi, 0 copiati, 1 già presenti" in result.output
    assert "troppo grande, non copiato: allegato enorme (Mon, 1 Jun 2015 10:00:00 +0200, " in result.output
    assert f"0 copiati, {total - 1} già presenti, 1 troppo grandi, 0 errori" in result.output
    source.logout()
    target.logout()


def test_a_refused_message_fails_alone_and_the_rest_of_its_batch_is_copied(app, pair, caplog):
    """Our side refuses messages over 1,500 kB: MULTIAPPEND says NO, single APPENDs isolate it."""
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    for i in range(5):
        body = (b"y" * 76 + b"\r\n") * (21000 if i == 2 else 10)
        raw = _message(
            f"lotto {i}",
            message_id=f"lotto{i}@vecchio.example",
            date="Tue, 2 Jun 2015 10:00:00 +0200",
            body=body,
        )
        source.append("INBOX", raw, flags=(b"\\Seen",))
    caplog.set_level(logging.INFO, logger="app.services.migration.copy")
    report = run_copy(
        Endpoint(HOST, old.port, src_user, "pw-vecchia", security="none"),
        Endpoint(HOST, ours.port, dst_user, MASTER_PASSWORD, security="none", master_user=MASTER),
        max_size=3 * 1024 * 1024,
    ).to_dict()
    (inbox,) = report["folders"]
    assert (inbox["copied"], inbox["already_present"], len(inbox["errors"])) == (4, 0, 1)
    assert "lotto 2" in inbox["errors"][0]
    assert "MULTIAPPEND refused in INBOX" in caplog.text
    assert inbox["missing"] == 1
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    assert sorted(s for s, _f, _d in _contents(target)["INBOX"]) == [
        "lotto 0",
        "lotto 1",
        "lotto 3",
        "lotto 4",
    ]
    source.logout()
    target.logout()


def test_bad_urls_and_missing_passwords_are_refused_before_any_connection(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["migration", "copy", "imap://a@127.0.0.1:1", "imap://b@127.0.0.1:1"],
        env={"SOURCE_PASSWORD": "", "DEST_PASSWORD": "x"},
    )
    assert result.exit_code == 2 and "SOURCE_PASSWORD" in result.output
    env = {"SOURCE_PASSWORD": "x", "DEST_PASSWORD": "y"}
    result = runner.invoke(
        args=["migration", "copy", "imap://a@127.0.0.1:1", "imap://b@127.0.0.1:1", "--parallel", "0"],
        env={"SOURCE_PASSWORD": "x", "DEST_PASSWORD": "y"},
    )
    assert result.exit_code == 2 and "--parallel" in result.output
    for bad in ("http://a@h:1", "imap://h:143", "imap://a:segreta@h:143", "imap://a@h:99999"):
        result = runner.invoke(args=["migration", "copy", bad, "imap://b@127.0.0.1:1"], env=env)
        assert result.exit_code == 2, (bad, result.output)
        assert "segreta" not in result.output


_COPY_SCRIPT = """
import os
import sys
import threading
from app.mailserver.imap import Endpoint, ImapError, close, connect
from app.services.migration import run_copy
old_port, ours_port, src_user, dst_user, master = sys.argv[1:]
master_password = os.environ["DEST_PASSWORD"]  # never on a command line (ps shows it)
run_copy(
    Endpoint("127.0.0.1", int(old_port), src_user, "pw-vecchia", security="none"),
    Endpoint("127.0.0.1", int(ours_port), dst_user, master_password, security="none", master_user=master),
    batch_bytes=1,  # one message per round trip: slow enough to be killed half-way
)
"""


def test_a_copy_killed_half_way_ends_complete_with_no_duplicates_when_run_again(app, pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    total = 600
    messages = [
        {
            "msg": _message(f"numero {i}", message_id=f"n{i}@vecchio.example" if i % 3 else None,
                            date="Wed, 3 Jun 2015 10:00:00 +0200", body=b"z" * 1500 + b"\r\n"),
            "flags": (b"\\Seen",),
            "date": OLD_DATE + timedelta(minutes=i),
        }
        for i in range(total)
    ]  # fmt: skip
    for start in range(0, total, 100):
        assert source.multiappend("INBOX", messages[start : start + 100])[0] == "OK"
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)

    args = [str(old.port), str(ours.port), src_user, dst_user, MASTER]
    env = {**os.environ, "DEST_PASSWORD": MASTER_PASSWORD}
    process = subprocess.Popen([sys.executable, "-c", _COPY_SCRIPT, *args], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while (done := target.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"]) < 100:
            assert process.poll() is None and time.monotonic() < deadline, (
                "the copy ended before it could be killed"
            )
            time.sleep(0.01)
        process.kill()
    finally:
        process.wait(timeout=10)
    # A batch the server had fully received when the client died may still land: let it settle.
    done, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.5:
        now = target.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"]
        if now != done:
            done, stable_since = now, time.monotonic()
        time.sleep(0.05)
    assert 100 <= done < total

    report = run_copy(
        Endpoint(HOST, old.port, src_user, "pw-vecchia", security="none"),
        Endpoint(HOST, ours.port, dst_user, MASTER_PASSWORD, security="none", master_user=MASTER),
    ).to_dict()["totals"]
    assert report["already_present"] == done
    assert (report["copied"], report["errors"], report["missing"]) == (total - done, 0, 0)
    subjects = [s for s, _f, _d in _contents(target)["INBOX"]]
    assert sorted(subjects) == sorted(f"numero {i}" for i in range(total))
    source.logout()
    target.logout()


def test_a_refused_login_stops_with_a_message_that_does_not_hold_the_password(app, pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    result = app.test_cli_runner().invoke(
        args=[
            "migration",
            "copy",
            f"imap://{src_user}@{HOST}:{old.port}",
            f"imap://{dst_user}@{HOST}:{ours.port}",
        ],
        env={"SOURCE_PASSWORD": "Sbagliata-123", "DEST_PASSWORD": "x"},
    )
    assert result.exit_code == 1, result.output
    assert "Errore: Sorgente:" in result.output and src_user in result.output
    assert "Sbagliata-123" not in result.output


def test_starttls_verifies_the_certificate_by_default(app, pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    endpoint = Endpoint(HOST, ours.port, dst_user, MASTER_PASSWORD, security="starttls", master_user=MASTER)
    started = time.monotonic()
    with pytest.raises(ImapError, match="certificato rifiutato") as refused:
        connect(endpoint)
    assert not refused.value.retryable and time.monotonic() - started < 5
    for trusted in (
        dataclasses.replace(endpoint, ca_file=ours.cert),
        dataclasses.replace(endpoint, verify=False),
    ):
        client = connect(trusted)
        assert client.folder_exists("INBOX")
        close(client)

    # The command too: imap:// to a server offering STARTTLS uses it, and verifies.
    result = app.test_cli_runner().invoke(
        args=[
            "migration",
            "copy",
            f"imap://{src_user}@{HOST}:{old.port}",
            f"imap://{dst_user}*{MASTER}@{HOST}:{ours.port}",
        ],
        env={"SOURCE_PASSWORD": "pw-vecchia", "DEST_PASSWORD": MASTER_PASSWORD, "SSL_CERT_FILE": ""},
    )
    assert result.exit_code == 1 and "certificato rifiutato" in result.output, result.output


class _CuttingProxy:
    """A TCP relay to `port` that cuts every open connection once, after `cut_after` bytes from the server."""

    def __init__(self, port: int, cut_after: int):
        self.port_to, self.cut_after, self.sent, self.cut = port, cut_after, 0, False
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((HOST, self.port_to))
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_server: bool):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if from_server:
                    with self.lock:
                        self.sent += len(data)
                        if not self.cut and self.sent > self.cut_after:
                            self.cut = True
                            for a, b in self.pairs:
                                for s in (a, b):
                                    with contextlib.suppress(OSError):
                                        s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self):
        self.listener.close()


def test_a_connection_cut_mid_copy_is_resumed_with_no_duplicates(app, pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    total = 60
    messages = [
        {"msg": _message(f"taglio {i}", message_id=None, date="Thu, 4 Jun 2015 10:00:00 +0200", body=b"w" * 3000 + b"\r\n"),
         "date": OLD_DATE + timedelta(minutes=i)}
        for i in range(total)
    ]  # fmt: skip
    assert source.multiappend("INBOX", messages)[0] == "OK"
    proxy = _CuttingProxy(old.port, cut_after=100_000)  # about a third of the bodies
    try:
        report = run_copy(
            Endpoint(HOST, proxy.port, src_user, "pw-vecchia", security="none"),
            Endpoint(HOST, ours.port, dst_user, MASTER_PASSWORD, security="none", master_user=MASTER),
            batch_bytes=10_000,
        ).to_dict()
    finally:
        proxy.close()
    assert proxy.cut
    (inbox,) = report["folders"]
    assert (inbox["copied"], inbox["already_present"], inbox["errors"], inbox["missing"]) == (total, 0, [], 0)
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    assert sorted(s for s, _f, _d in _contents(target)["INBOX"]) == sorted(
        f"taglio {i}" for i in range(total)
    )
    source.logout()
    target.logout()


def test_two_source_folders_into_one_keep_different_messages_that_share_a_message_id(pair):
    """ "Sent Items" and "Posta inviata" both become Sent: a different message of the second one
    with the same Message-ID (another case) as one of the first must be copied, not taken for it."""
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    for folder, body in (
        ("INBOX.Sent Items", b"Prima.\r\n"),
        ("INBOX.Posta inviata", b"Seconda, diversa.\r\n"),
    ):
        source.create_folder(folder)
        raw = _message("stesso id", message_id="Stesso@x" if "Sent" in folder else "stesso@x",
                       date="Mon, 1 Jun 2015 10:00:00 +0200", body=body)  # fmt: skip
        source.append(folder, raw, msg_time=datetime(2015, 6, 1, 8, 0, tzinfo=UTC))
    close(source)
    endpoints = (
        Endpoint(HOST, old.port, src_user, "pw-vecchia", security="none"),
        Endpoint(HOST, ours.port, dst_user, MASTER_PASSWORD, security="none", master_user=MASTER),
    )
    report = run_copy(*endpoints).to_dict()
    assert report["totals"]["copied"] == 2 and report["totals"]["missing"] == 0
    ours_client = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    ours_client.select_folder("Sent", readonly=True)
    bodies = sorted(
        d[b"BODY[TEXT]"] for d in ours_client.fetch(ours_client.search("ALL"), ["BODY.PEEK[TEXT]"]).values()
    )
    close(ours_client)
    assert bodies == [b"Prima.\r\n", b"Seconda, diversa.\r\n"]
    # And a re-run finds both there.
    again = run_copy(*endpoints).to_dict()["totals"]
    assert (again["copied"], again["already_present"]) == (0, 2)


def test_a_password_beyond_ascii_logs_in_and_is_never_shown(pair):
    old, _ours = pair
    user = f"accenti{uuid.uuid4().hex[:8]}"
    with open(old.root / "conf" / "users", "a") as f:
        f.write(f"{user}:{{PLAIN}}Però-2024::::::\n")
    deadline = time.monotonic() + 6
    while True:  # Dovecot re-reads its users file at most once a second
        try:
            close(connect(Endpoint(HOST, old.port, user, "Però-2024", security="none"), attempts=1))
            break
        except ImapError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    with pytest.raises(ImapError) as refused:
        connect(Endpoint(HOST, old.port, user, "Perà-2099", security="none"), attempts=1)
    assert "Perà-2099" not in refused.value.message
    for bad in ("pw\r\nA1 DELETE INBOX", "pw\x00"):
        with pytest.raises(ValueError) as invalid:
            Endpoint(HOST, old.port, user, bad, security="none")
        assert bad not in str(invalid.value)


def test_a_hostile_folder_name_becomes_a_safe_level_of_ours():
    mapped = map_folders(
        [SourceFolder("INBOX.Offerte*%"), SourceFolder("INBOX.a/b"), SourceFolder("INBOX..vuoto")],
        Namespace("INBOX.", "."),
        Namespace("", "/"),
    )
    assert [m.target for m in mapped] == ["Offerte__", "a_b", "_/vuoto"]


# --- folders in parallel, the dry run's measure, hostile servers ------------------------------


def _endpoints(pair, src_user, dst_user, source_port=None):
    old, ours = pair
    return (
        Endpoint(HOST, source_port or old.port, src_user, "pw-vecchia", security="none"),
        Endpoint(HOST, ours.port, dst_user, MASTER_PASSWORD, security="none", master_user=MASTER),
    )


def _seed_folders(client: IMAPClient, folders: dict[str, int], body: bytes = b"v" * 2000 + b"\r\n") -> int:
    """`count` messages in each folder, a third without Message-ID; returns the total."""
    total = 0
    for folder, count in folders.items():
        if folder != "INBOX":
            client.create_folder(folder)
        messages = [
            {"msg": _message(f"{folder} {i}", message_id=f"{folder}.{i}@vecchio.example".replace(" ", "_") if i % 3 else None,
                             date="Fri, 5 Jun 2015 10:00:00 +0200", body=body),
             "flags": (b"\\Seen",) if i % 2 else (), "date": OLD_DATE + timedelta(minutes=i)}
            for i in range(count)
        ]  # fmt: skip
        for start in range(0, count, 100):
            assert client.multiappend(folder, messages[start : start + 100])[0] == "OK"
        total += count
    return total


def test_folders_copied_in_parallel_arrive_once_with_merged_targets_in_the_plans_order(app, pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    _seed(source)
    before = _snapshot(source)
    endpoints = _endpoints(pair, src_user, dst_user)
    planned = [
        f["source"] for f in run_copy(*endpoints, dry_run=True, max_size=1024 * 1024).to_dict()["folders"]
    ]

    calls, threads, inside = [], set(), threading.Lock()

    def progress(folder):
        # Called one at a time, in this thread.
        assert inside.acquire(blocking=False), "progress called while another call runs"
        try:
            threads.add(threading.get_ident())
            calls.append((folder.source, folder.copied))
            time.sleep(0.01)
        finally:
            inside.release()

    report = run_copy(
        *endpoints, max_size=1024 * 1024, parallel=3, batch_bytes=1, progress=progress
    ).to_dict()
    total = sum(len(messages) for _t, messages in LAYOUT.values())
    assert [f["source"] for f in report["folders"]] == planned
    assert report["totals"] == {
        **report["totals"],
        "copied": total,
        "already_present": 0,
        "skipped_too_large": 1,
        "errors": 0,
        "missing": 0,
    }
    assert threads == {threading.get_ident()} and calls
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    contents = _contents(target)
    assert contents == _expected()
    assert "Sent Items" not in contents and "Posta inviata" not in contents
    # Nothing of the pairs is left behind.
    assert not [t for t in threading.enumerate() if t.name.startswith("imap-copy-")]

    again = run_copy(*endpoints, max_size=1024 * 1024, parallel=3).to_dict()
    assert (again["totals"]["copied"], again["totals"]["already_present"]) == (0, total)
    assert [f["source"] for f in again["folders"]] == planned
    assert _contents(target) == _expected()
    assert _snapshot(source) == before
    close(source)
    close(target)


def test_a_dry_run_counts_what_a_real_run_would_copy(app, pair):
    """On a re-run's preflight only the messages still missing on our side count as to copy."""
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    _seed(source)
    endpoints = _endpoints(pair, src_user, dst_user)
    total = sum(len(messages) for _t, messages in LAYOUT.values())

    first = run_copy(*endpoints, dry_run=True, max_size=1024 * 1024).to_dict()
    totals = first["totals"]
    big = sum(s["size"] for f in first["folders"] for s in f["skipped_too_large"])
    assert (totals["to_copy"], totals["already_present"], totals["skipped_too_large"]) == (total, 0, 1)
    assert totals["to_copy_bytes"] == totals["source_bytes"] - big
    assert all(f["to_copy"] == f["source_count"] - len(f["skipped_too_large"]) for f in first["folders"])

    run_copy(*endpoints, max_size=1024 * 1024)
    nothing = run_copy(*endpoints, dry_run=True, max_size=1024 * 1024).to_dict()["totals"]
    # Sent Items and Posta inviata share Sent: each finds only its own message there.
    assert (nothing["to_copy"], nothing["to_copy_bytes"], nothing["already_present"]) == (0, 0, total)

    # Two messages gone from our side, one new in the source: three to copy, with their bytes.
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    target.select_folder("INBOX")
    uids = sorted(target.search("ALL"))[:2]
    sizes = [d[b"RFC822.SIZE"] for d in target.fetch(uids, ["RFC822.SIZE"]).values()]
    target.delete_messages(uids)
    target.expunge()
    new = _message("nuovo", message_id="nuovo@vecchio.example", date="Sat, 6 Jun 2015 10:00:00 +0200")
    source.append("INBOX.Bozze", new, msg_time=OLD_DATE)
    later = run_copy(*endpoints, dry_run=True, max_size=1024 * 1024).to_dict()
    assert (later["totals"]["to_copy"], later["totals"]["to_copy_bytes"]) == (3, sum(sizes) + len(new))
    by_source = {f["source"]: f for f in later["folders"]}
    assert (by_source["INBOX"]["to_copy"], by_source["INBOX.Bozze"]["to_copy"]) == (2, 1)
    # Nothing was written by the dry runs: our side still lacks them.
    assert target.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"] == len(LAYOUT["INBOX"][1]) - 2
    close(source)
    close(target)


def test_a_connection_cut_mid_copy_with_pairs_in_parallel_ends_complete_with_no_duplicates(pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    folders = {"INBOX": 40, "INBOX.Uno": 30, "INBOX.Due": 30, "INBOX.Tre": 20, "INBOX.Quattro": 10}
    total = _seed_folders(source, folders, body=b"w" * 3000 + b"\r\n")
    close(source)
    proxy = _CuttingProxy(old.port, cut_after=150_000)  # every open connection cut, mid-copy
    try:
        report = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port), batch_bytes=10_000, parallel=3)
    finally:
        proxy.close()
    assert proxy.cut
    totals = report.to_dict()["totals"]
    assert (totals["copied"], totals["already_present"], totals["errors"], totals["missing"]) == (
        total,
        0,
        0,
        0,
    )
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    for folder, count in folders.items():
        name = folder.removeprefix("INBOX.")
        target.select_folder(name, readonly=True)
        subjects = [
            d[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
            for d in target.fetch(target.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]).values()
        ]
        assert sorted(subjects) == sorted(f"{folder} {i}" for i in range(count)), folder
    close(target)


def _settled(read, *, quiet=1.0, limit=15.0):
    """`read()` once it has given the same value for `quiet` seconds."""
    deadline = time.monotonic() + limit
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
    raise AssertionError(f"still changing after {limit} s: {value}")


class _Cancelled(Exception):
    """Stands for the panel's JobCancelled."""


def test_an_exception_raised_by_progress_stops_every_pair_and_leaves_unchanged(pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    folders = {"INBOX": 150, "INBOX.Uno": 150, "INBOX.Due": 150, "INBOX.Tre": 150}
    total = _seed_folders(source, folders)
    close(source)
    calls = []
    cancel = _Cancelled("annullata")

    def progress(folder):
        calls.append(folder.source)
        if len(calls) == 5:
            raise cancel

    started = time.monotonic()
    with pytest.raises(_Cancelled) as stopped:
        run_copy(*_endpoints(pair, src_user, dst_user), batch_bytes=1, parallel=3, progress=progress)
    assert stopped.value is cancel
    assert time.monotonic() - started < 10
    assert len(calls) == 5
    # Every pair has ended: nothing more arrives on our side.
    assert not [t for t in threading.enumerate() if t.name.startswith("imap-copy-") and t.is_alive()]
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)

    def count():
        return sum(
            target.folder_status(name, [b"MESSAGES"])[b"MESSAGES"]
            for flags, _s, name in target.list_folders()
            if b"\\Noselect" not in flags
        )

    # An APPEND the server had whole when its connection was cut may still be saved (at most one
    # a pair); once those are, nothing more arrives on our side.
    cut = count()
    copied = _settled(count)
    assert cut <= copied <= cut + 3
    time.sleep(1.0)
    assert count() == copied < total
    # And a run to the end copies the rest, nothing twice.
    report = run_copy(*_endpoints(pair, src_user, dst_user), parallel=3).to_dict()["totals"]
    assert (report["copied"] + report["already_present"], report["errors"], report["missing"]) == (
        total,
        0,
        0,
    )
    assert count() == total
    close(target)


class _RewritingProxy(_CuttingProxy):
    """A TCP relay to `port` that rewrites what passes with `to_client(bytes)` and `to_server(bytes)`
    (each chunk as read: the tests keep their answers small)."""

    def __init__(self, port: int, to_client, to_server=lambda data: data):
        self.to_client, self.to_server = to_client, to_server
        super().__init__(port, cut_after=10**12)

    def _pipe(self, src, dst, from_server):
        try:
            while data := src.recv(65536):
                dst.sendall(self.to_client(data) if from_server else self.to_server(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def test_folders_whose_names_are_not_modified_utf7_are_copied_under_a_safe_name(pair):
    """The old server lists "INBOX.Caf\\xc3\\xa9" (raw UTF-8) and "INBOX.bad&Jjo" (a broken shift):
    both are copied under the name read leniently, and the others as usual."""
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    total = _seed_folders(source, {"INBOX": 2, "INBOX.Café": 3, "INBOX.bad&Jjo": 2, "INBOX.Normale": 1})
    close(source)
    # Dovecot itself only lists valid names (INBOX.Caf&AOk-, INBOX.bad&-Jjo): the relay garbles them
    # on the way out and restores them on the way in.
    swaps = [(b"INBOX.Caf&AOk-", b"INBOX.Caf\xc3\xa9"), (b"INBOX.bad&-Jjo", b"INBOX.bad&Jjo")]

    def out(data):
        for valid, broken in swaps:
            data = data.replace(valid, broken)
        return data

    def back(data):
        for valid, broken in swaps:
            data = data.replace(broken, valid)
        return data

    proxy = _RewritingProxy(old.port, out, back)
    try:
        raw = IMAPClient(HOST, port=proxy.port, ssl=False, timeout=10)
        raw.login(src_user, "pw-vecchia")
        # imapclient's own reading garbles them (so EXAMINE would name folders that do not exist).
        assert "INBOX.CafÃ©" in {name for _f, _s, name in raw.list_folders()}
        close(raw)
        report = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port), parallel=2).to_dict()
        again = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port)).to_dict()["totals"]
    finally:
        proxy.close()
    by_source = {f["source"]: f for f in report["folders"]}
    assert by_source["INBOX.Café"]["target"] == "Café" and by_source["INBOX.Café"]["invalid_name"]
    assert by_source["INBOX.bad&Jjo"]["target"] == "bad&Jjo" and by_source["INBOX.bad&Jjo"]["invalid_name"]
    assert not by_source["INBOX.Normale"]["invalid_name"]
    totals = report["totals"]
    assert (totals["copied"], totals["errors"], totals["missing"]) == (total, 0, 0)
    assert (again["copied"], again["already_present"]) == (0, total)
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    counts = {
        name: target.folder_status(name, [b"MESSAGES"])[b"MESSAGES"] for _f, _s, name in target.list_folders()
    }
    assert {k: counts.get(k) for k in ("INBOX", "Café", "bad&Jjo", "Normale")} == {
        "INBOX": 2, "Café": 3, "bad&Jjo": 2, "Normale": 1,
    }  # fmt: skip
    close(target)


def test_a_source_that_reports_sizes_inexactly_copies_nothing_twice(pair):
    """Messages without Message-ID: their identity does not use RFC822.SIZE, which this source
    (a relay adding 7 to every size it reports) gets wrong."""
    import re

    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    total = _seed_folders(source, {"INBOX": 12, "INBOX.Altro": 6})
    close(source)

    def inexact(data):
        return re.sub(rb"RFC822\.SIZE (\d+)", lambda m: b"RFC822.SIZE %d" % (int(m.group(1)) + 7), data)

    proxy = _RewritingProxy(old.port, inexact)
    try:
        first = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port)).to_dict()["totals"]
        again = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port)).to_dict()["totals"]
    finally:
        proxy.close()
    assert (first["copied"], first["missing"], first["errors"]) == (total, 0, 0)
    assert (again["copied"], again["already_present"], again["missing"]) == (0, total, 0)


class _HostileServer:
    """Answers a login and an EXAMINE, then any FETCH with `answer` (bytes, or an iterator of
    chunks), as a server sending far more than asked would."""

    def __init__(self, answer):
        self.answer = answer
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _addr = self.listener.accept()
        with conn:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1] pronto\r\n")
            reader = conn.makefile("rb")
            try:
                while line := reader.readline():
                    tag, command = line.split(b" ", 2)[:2]
                    command = command.strip().upper()
                    if command == b"CAPABILITY":
                        conn.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK fatto\r\n")
                    elif command == b"LOGIN":
                        conn.sendall(tag + b" OK [CAPABILITY IMAP4rev1] dentro\r\n")
                    elif command == b"EXAMINE":
                        conn.sendall(
                            b"* 3 EXISTS\r\n* OK [UIDVALIDITY 1]\r\n" + tag + b" OK [READ-ONLY] ok\r\n"
                        )
                    elif command == b"UID":
                        for chunk in [self.answer] if isinstance(self.answer, bytes) else self.answer:
                            conn.sendall(chunk)
                            self.sent += len(chunk)
                    else:
                        conn.sendall(tag + b" OK ok\r\n")
            except OSError:
                pass

    def close(self):
        self.listener.close()


def _huge_literal():
    # A header block announced at 2 GB (imaplib would allocate it at once), then 5 MB of it.
    yield b"* 1 FETCH (UID 1 RFC822.SIZE 10 BODY[HEADER.FIELDS (DATE)] {2000000000}\r\n"
    for _ in range(50):
        yield b"x" * 100_000


def _endless_answer():
    # Small literals, each under the bound, that never end.
    for i in range(1, 10**9):
        yield (
            (
                b'* %d FETCH (UID %d RFC822.SIZE 10 FLAGS () INTERNALDATE "01-Jan-2020 00:00:00 +0000" '
                b"BODY[HEADER.FIELDS (DATE)] {50000}\r\n" % (i, i)
            )
            + b"x" * 50_000
            + b")\r\n"
        )


@pytest.mark.parametrize("answer", [_huge_literal, _endless_answer])
def test_what_a_hostile_server_sends_for_one_answer_is_bounded(answer):
    from app.mailserver.imap import RESPONSE_LIMIT, response_too_large

    server = _HostileServer(answer())
    try:
        client = connect(Endpoint(HOST, server.port, "u", "p", security="none"), attempts=1)
        client.normalise_times = False
        client.select_folder("INBOX", readonly=True)
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.abort, match="blocco di 2000000000 byte|risposta del server supera"):
            list(folder_meta(client, 3))
        assert response_too_large(client)
        close(client)
        assert time.monotonic() - started < 20
        # What was read stayed within the bound (the server's socket buffers aside).
        assert server.sent < RESPONSE_LIMIT + 16 * 1024 * 1024
    finally:
        server.close()


class _OneConnectionProxy(_CuttingProxy):
    """A relay that serves only its first connection; the others are closed at once (an old
    provider's connection limit)."""

    def __init__(self, port: int):
        self.accepted = 0
        super().__init__(port, cut_after=10**12)

    def _accept(self):
        while True:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted > 1:
                client.close()
                continue
            server = socket.create_connection((HOST, self.port_to))
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()


def test_pairs_that_cannot_connect_leave_the_work_to_the_first(pair, caplog):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    total = _seed_folders(source, {"INBOX": 5, "INBOX.Uno": 5, "INBOX.Due": 5, "INBOX.Tre": 5})
    close(source)
    proxy = _OneConnectionProxy(old.port)
    caplog.set_level(logging.WARNING, logger="app.services.migration.copy")
    try:
        report = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port), parallel=3).to_dict()
    finally:
        proxy.close()
    assert proxy.accepted > 1
    assert "another connection pair could not be opened" in caplog.text
    assert (report["totals"]["copied"], report["totals"]["missing"], report["errors"]) == (total, 0, [])


class _InflatingProxy(_CuttingProxy):
    """A relay that, on a connection that has opened `folder`, announces every body 99 times
    larger than it is (a hostile or broken server): the body's literal goes over its bound."""

    def __init__(self, port: int, folder: bytes):
        self.folder, self.marked, self.examined = folder, set(), 0
        super().__init__(port, cut_after=10**12)

    def _pipe(self, src, dst, from_server):
        key = dst if from_server else src  # the client's socket names the connection
        try:
            while data := src.recv(65536):
                if not from_server and b"EXAMINE" in data:
                    if self.folder in data:
                        self.marked.add(key)
                        self.examined += 1
                    else:
                        self.marked.discard(key)
                if from_server and key in self.marked:
                    data = data.replace(b"BODY[] {", b"BODY[] {99")
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def test_a_folder_whose_server_announces_too_much_fails_alone_and_is_not_retried(pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    _seed_folders(source, {"INBOX": 4, "INBOX.Cattiva": 3, "INBOX.Buona": 4})
    close(source)
    proxy = _InflatingProxy(old.port, b'"INBOX.Cattiva"')
    try:
        # Bodies of ~2 kB announced as ~99x that: over the bound of twice max_size (100 kB).
        report = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port), max_size=50_000, parallel=1)
    finally:
        proxy.close()
    by_source = {f.source: f for f in report.folders}
    bad = by_source["INBOX.Cattiva"]
    assert len(bad.errors) == 1 and "ha annunciato un blocco" in bad.errors[0], bad.errors
    assert proxy.examined == 1  # not retried
    # The others were copied (those after it on a fresh pair).
    assert [
        (by_source[f].copied, by_source[f].errors, by_source[f].missing) for f in ("INBOX", "INBOX.Buona")
    ] == [
        (4, [], 0),
        (4, [], 0),
    ]


class _WatchingProxy(_CuttingProxy):
    """A TCP relay to `port` that counts, per connection, the body FETCHes sent for each folder
    EXAMINEd on it; with `cut_after`, every open connection is cut once as _CuttingProxy does."""

    def __init__(self, port: int, cut_after: int = 10**12):
        self.fetches: dict[tuple[int, bytes | None], int] = {}
        super().__init__(port, cut_after=cut_after)

    def _pipe(self, src, dst, from_server):
        if from_server:
            return super()._pipe(src, dst, from_server)
        folder = None
        try:
            while data := src.recv(65536):
                for line in data.split(b"\r\n"):
                    words = line.split(b" ", 3)
                    if len(words) >= 3 and words[1].upper() == b"EXAMINE":
                        folder = words[2].strip(b'"')
                    if b"BODY.PEEK[]" in line:
                        with self.lock:
                            self.fetches[(id(src), folder)] = self.fetches.get((id(src), folder), 0) + 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def connections_fetching(self, folder: bytes) -> int:
        with self.lock:
            return len({conn for conn, name in self.fetches if name == folder})


def test_a_large_folders_batches_are_shared_by_the_pairs_and_copied_once(pair):
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    folders = {"INBOX": 90, "INBOX.Uno": 6}
    total = _seed_folders(source, folders, body=b"z" * 3000 + b"\r\n")
    proxy = _WatchingProxy(old.port)
    try:
        report = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port), batch_bytes=10_000, parallel=3)
    finally:
        proxy.close()
    # INBOX's batches (about 30) were taken by more than one pair.
    assert proxy.connections_fetching(b"INBOX") >= 2, proxy.fetches
    totals = report.to_dict()["totals"]
    assert (totals["copied"], totals["already_present"], totals["errors"], totals["missing"]) == (
        total,
        0,
        0,
        0,
    )
    by_source = {f.source: f for f in report.folders}
    assert (by_source["INBOX"].copied, by_source["INBOX"].to_copy, by_source["INBOX"].missing) == (90, 90, 0)
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    for folder, count in folders.items():
        target.select_folder(folder.removeprefix("INBOX.") if folder != "INBOX" else folder, readonly=True)
        fetched = target.fetch(target.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "FLAGS"])
        subjects = sorted(
            d[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip() for d in fetched.values()
        )
        assert subjects == sorted(f"{folder} {i}" for i in range(count)), folder
        assert sum(b"\\Seen" in d[b"FLAGS"] for d in fetched.values()) == count // 2
    again = run_copy(*_endpoints(pair, src_user, dst_user), parallel=3).to_dict()["totals"]
    assert (again["copied"], again["already_present"]) == (0, total)
    close(source)
    close(target)


def test_a_cut_while_a_folders_batches_are_spread_over_pairs_ends_complete_with_no_duplicates(pair):
    """Every connection is cut while three pairs copy one folder's batches: the folder is compared
    again once its batches in flight have ended, and nothing is copied twice."""
    old, ours = pair
    src_user, dst_user = _accounts(pair)
    source = _client(old, src_user, "pw-vecchia")
    total = _seed_folders(source, {"INBOX": 120}, body=b"k" * 3000 + b"\r\n")
    close(source)
    proxy = _WatchingProxy(old.port, cut_after=200_000)
    try:
        report = run_copy(*_endpoints(pair, src_user, dst_user, proxy.port), batch_bytes=10_000, parallel=3)
    finally:
        proxy.close()
    assert proxy.cut
    assert proxy.connections_fetching(b"INBOX") >= 2, proxy.fetches
    (inbox,) = report.to_dict()["folders"]
    assert (inbox["copied"], inbox["already_present"], inbox["errors"], inbox["missing"]) == (total, 0, [], 0)
    assert (inbox["to_copy"], inbox["source_count"]) == (total, total)
    target = _client(ours, f"{dst_user}*{MASTER}", MASTER_PASSWORD)
    assert sorted(s for s, _f, _d in _contents(target)["INBOX"]) == sorted(f"INBOX {i}" for i in range(total))
    close(target)
