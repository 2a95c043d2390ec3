"""The copy from an old provider's IMAP account into one of ours.

The source is only read: every folder is opened with EXAMINE and bodies
are fetched with BODY.PEEK, so no flag changes there. Per folder:

1. one FETCH per 1,000 UIDs reads each message's size, INTERNALDATE, flags
   and a few headers on both sides, giving each message an identity: its
   Message-ID, or when it has none "size + INTERNALDATE (UTC) + a hash of
   Date, From, To and Subject", stable across runs. A message whose
   identity is already on our side (as many times as it is in the source)
   is "already present", so a re-run or a resume copies nothing twice;
2. messages over `max_size` (RFC822.SIZE) are skipped and reported with
   subject, date and size;
3. the rest are fetched in batches bounded by `batch_bytes` (one message
   larger than that travels alone) and appended with MULTIAPPEND when our
   server offers it, flags (less \\Recent) and INTERNALDATE kept. A batch
   refused with NO is retried one message at a time, so only the bad one
   is reported. The next batch is fetched while one is appended;
4. a final count of our side gives the source messages still missing.

A dropped connection reconnects both sides with backoff and redoes the
folder (the identities make that safe). Memory holds two batches of bodies
and the folder's identities, never the whole mailbox.
"""

from __future__ import annotations

import email.header
import email.utils
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from flask_babel import gettext as _
from imapclient import IMAPClient
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import IMAPClientError

from app.mailserver import imap
from app.services.migration.folders import Mapping, Namespace, SourceFolder, map_folders

log = logging.getLogger(__name__)

# 29 MiB: the largest message our side accepts (RFC822.SIZE).
DEFAULT_MAX_SIZE = 29 * 1024 * 1024
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
BATCH_MESSAGES = 200
META_CHUNK = 1000
HEADERS = b"BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)]"
META_ITEMS = [
    "RFC822.SIZE",
    "INTERNALDATE",
    "FLAGS",
    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)]",
]
FOLDER_ATTEMPTS = 4


class CopyFailed(Exception):
    """The copy could not go on (login refused, a server gone for good)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Meta:
    uid: int
    size: int
    date: datetime | None
    flags: tuple[bytes, ...]
    identity: str
    subject: str
    header_date: str


@dataclass
class FolderReport:
    source: str
    target: str
    role: str | None = None
    source_count: int = 0
    source_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    already_present: int = 0
    skipped_too_large: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    missing: int | None = None


@dataclass
class CopyReport:
    dry_run: bool
    max_size: int
    folders: list[FolderReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> dict:
        f = self.folders
        missing = [x.missing for x in f if x.missing is not None]
        return {
            "folders": len(f),
            "source_count": sum(x.source_count for x in f),
            "source_bytes": sum(x.source_bytes for x in f),
            "copied": sum(x.copied for x in f),
            "copied_bytes": sum(x.copied_bytes for x in f),
            "already_present": sum(x.already_present for x in f),
            "skipped_too_large": sum(len(x.skipped_too_large) for x in f),
            "errors": sum(len(x.errors) for x in f) + len(self.errors),
            "missing": sum(missing) if missing else None,
        }

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "max_size": self.max_size,
            "seconds": round(self.seconds, 3),
            "totals": self.totals(),
            "folders": [asdict(x) for x in self.folders],
            "errors": list(self.errors),
        }


# --- identities ----------------------------------------------------------------


def _decode(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


def _headers(raw: bytes) -> dict[str, str]:
    """The few header fields fetched, unfolded, by lower-case name."""
    fields: dict[str, str] = {}
    name = None
    for line in raw.decode("utf-8", "replace").splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
        elif ":" in line:
            name, _sep, value = line.partition(":")
            name = name.strip().lower()
            fields.setdefault(name, value.strip())
    return fields


def _utc_seconds(date: datetime | None) -> str:
    if date is None:
        return "-"
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return str(int(date.timestamp()))


def identity(size: int, date: datetime | None, header_block: bytes) -> tuple[str, dict[str, str]]:
    """Message-ID when there is one, else size + INTERNALDATE + a hash of some headers."""
    fields = _headers(header_block or b"")
    message_id = fields.get("message-id", "").strip()
    if message_id:
        return "id:" + message_id.strip("<>").strip().lower(), fields
    digest = hashlib.sha256(
        "\n".join(" ".join(fields.get(k, "").split()) for k in ("date", "from", "to", "subject")).encode()
    ).hexdigest()[:24]
    return f"x:{size}:{_utc_seconds(date)}:{digest}", fields


def _chunks(seq: list, size: int) -> Iterator[list]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def join_seq(uids: list[int]) -> str:
    """Sorted UIDs as an IMAP set, runs collapsed ("1:5,9")."""
    parts, start, prev = [], None, None
    for uid in uids:
        if start is None:
            start = prev = uid
        elif uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
            start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_EMPTY_HEADERS = re.compile(rb'BODY\[HEADER\.FIELDS \([^)]*\)\] (?:""|NIL)')


def _fetch_raw(
    client: IMAPClient, uids: list[int] | None, expected: int | None = None
) -> dict[int, tuple[int, datetime | None, tuple, bytes]] | None:
    """The metadata FETCH read straight from imaplib: imapclient's general parser costs ~0.5 ms a
    message, which is most of a re-run. None when an answer is not in the expected shape, and the
    caller falls back to imapclient's parser. Without `uids`, every message ("1:*"), `expected`
    of them (the folder's EXISTS)."""
    seq = join_seq(uids) if uids is not None else "1:*"
    typ, data = client._imap.uid("FETCH", seq, "(" + " ".join(META_ITEMS) + ")")
    if typ != "OK":
        return None
    records: list[list] = []  # [text around the literal, literal]
    for item in data:
        if isinstance(item, tuple):
            records.append([item[0], item[1]])
        elif isinstance(item, bytes) and records and not _UID.search(item):
            records[-1][0] += item  # what follows the literal: ")" or more items
        elif isinstance(item, bytes):
            records.append([item, None])
        elif item is None:
            continue
        else:
            return None
    result = {}
    for text, literal in records:
        uid, size = _UID.search(text), _SIZE.search(text)
        if uid is None or size is None:
            continue  # an unsolicited FETCH (a flag changed elsewhere)
        if literal is None and not _EMPTY_HEADERS.search(text):
            return None
        date_match = _DATE.search(text)
        flags_match = _FLAGS.search(text)
        date = parse_to_datetime(date_match.group(1), normalise=False) if date_match else None
        flags = tuple(flags_match.group(1).split()) if flags_match else ()
        result[int(uid.group(1))] = (int(size.group(1)), date, flags, literal or b"")
    if len(result) != (len(uids) if uids is not None else expected):
        return None  # a message expunged meanwhile, or items in an order not read here: the full parser
    return result


def _fetch_parsed(
    client: IMAPClient, uids: list[int]
) -> dict[int, tuple[int, datetime | None, tuple, bytes]]:
    answer = client.fetch(uids, META_ITEMS)
    return {
        uid: (
            int(data.get(b"RFC822.SIZE", 0)),
            data.get(b"INTERNALDATE"),
            tuple(data.get(b"FLAGS", ())),
            data.get(HEADERS) or b"",
        )
        for uid, data in answer.items()
    }


def folder_meta(client: IMAPClient, exists: int | None = None) -> Iterator[Meta]:
    """Every message of the selected folder, META_CHUNK per FETCH. With the folder's EXISTS (from
    SELECT / EXAMINE) up to META_CHUNK, one FETCH 1:* and no SEARCH: a round trip less per folder,
    which is most of a re-run against a distant server."""
    if exists == 0:
        return
    chunks: Iterator[list[int] | None]
    if exists is not None and exists <= META_CHUNK:
        chunks = iter([None])
    else:
        chunks = _chunks(sorted(client.search("ALL")), META_CHUNK)
    for chunk in chunks:
        answer = _fetch_raw(client, chunk, exists)
        if answer is None:
            if chunk is None:  # the folder changed since EXAMINE, or an unexpected shape
                chunk = sorted(client.search("ALL"))
            answer = _fetch_parsed(client, chunk)
        for uid in chunk if chunk is not None else sorted(answer):
            data = answer.get(uid)
            if data is None:  # expunged meanwhile
                continue
            size, date, flags, header_block = data
            key, fields = identity(size, date, header_block)
            yield Meta(
                uid=uid,
                size=size,
                date=date,
                flags=tuple(f for f in flags if f.lower() != b"\\recent"),
                identity=key,
                subject=fields.get("subject", ""),
                header_date=fields.get("date", ""),
            )


def identities(client: IMAPClient, folder: str) -> Counter:
    selected = client.select_folder(folder, readonly=True)
    return Counter(m.identity for m in folder_meta(client, selected.get(b"EXISTS")))


# --- folders on both sides ----------------------------------------------------


def _namespace(client: IMAPClient) -> Namespace:
    try:
        personal = client.namespace().personal
    except IMAPClientError:
        personal = None
    if personal:
        prefix, separator = personal[0]
        return Namespace(prefix or "", separator or "")
    # No NAMESPACE (old Courier, say): an "INBOX." prefix is guessed when every folder has it.
    folders = client.list_folders()
    separators = [sep for _f, sep, _n in folders if sep]
    separator = separators[0].decode() if separators else "/"
    others = [name for _f, _s, name in folders if name.upper() != "INBOX"]
    prefix = "INBOX" + separator
    if others and all(name.upper().startswith(prefix.upper()) for name in others):
        return Namespace(name_prefix(others[0], prefix), separator)
    return Namespace("", separator)


def _other_namespaces(client: IMAPClient) -> list[str]:
    """The prefixes of other users' and shared folders: never copied into the mailbox."""
    try:
        spaces = client.namespace()
    except IMAPClientError:
        return []
    return [prefix for space in (spaces.other, spaces.shared) for prefix, _sep in (space or ()) if prefix]


def name_prefix(name: str, prefix: str) -> str:
    return name[: len(prefix)]


def _special_targets(client: IMAPClient) -> dict[str, str]:
    found: dict[str, str] = {}
    for flags, _sep, name in client.list_folders():
        role = SourceFolder(name, tuple(flags)).special_use
        if role and role not in found:
            found[role] = name
    return found


def plan(source: IMAPClient, target: IMAPClient) -> tuple[list[Mapping], set[str]]:
    """The folder mapping, and the source folders the user is subscribed to."""
    source_ns = _namespace(source)
    target_ns = _namespace(target)
    others = _other_namespaces(source)
    folders = [
        SourceFolder(name, tuple(flags))
        for flags, _sep, name in source.list_folders()
        if not any(prefix and name.startswith(prefix) for prefix in others)
    ]
    try:
        subscribed = {name for _f, _s, name in source.list_sub_folders()}
    except IMAPClientError:
        subscribed = set()
    mappings = map_folders(folders, source_ns, target_ns, _special_targets(target))
    # INBOX first, then the rest in the source's order.
    mappings.sort(key=lambda m: m.target != "INBOX")
    return mappings, subscribed


# --- the copy ----------------------------------------------------------------


def _too_large(meta: Meta) -> dict:
    return {
        "uid": meta.uid,
        "subject": _decode(meta.subject),
        "date": meta.header_date or (meta.date.isoformat() if meta.date else ""),
        "size": meta.size,
    }


def _batches(todo: list[Meta], batch_bytes: int) -> Iterator[list[Meta]]:
    batch: list[Meta] = []
    size = 0
    for meta in todo:
        if batch and (size + meta.size > batch_bytes or len(batch) >= BATCH_MESSAGES):
            yield batch
            batch, size = [], 0
        batch.append(meta)
        size += meta.size
    if batch:
        yield batch


def _append_one(target: IMAPClient, folder: str, meta: Meta, body: bytes, report: FolderReport) -> None:
    try:
        target.append(folder, body, flags=meta.flags, msg_time=meta.date)
    except imap.RETRYABLE:
        raise
    except IMAPClientError as e:
        if imap.busy(e):
            raise  # "try again later": the folder is retried after a pause, not this message failed
        report.errors.append(f"UID {meta.uid} ({meta.subject!r}, {meta.size} B): {e}")
        return
    report.copied += 1
    report.copied_bytes += meta.size


def _fetch_bodies(source: IMAPClient, batch: list[Meta]) -> dict:
    return source.fetch([m.uid for m in batch], ["BODY.PEEK[]"])


def _copy_batch(
    target: IMAPClient, folder: str, batch: list[Meta], answer: dict, report: FolderReport
) -> None:
    items = []
    for meta in batch:
        data = answer.get(meta.uid)
        body = data.get(b"BODY[]") if data else None
        if body is None:
            report.errors.append(f"UID {meta.uid} ({meta.subject!r}): the source sent no body")
            continue
        items.append((meta, body))
    del answer
    if not items:
        return
    if len(items) > 1 and target.has_capability("MULTIAPPEND"):
        messages = [
            {"msg": body, "flags": meta.flags, **({"date": meta.date} if meta.date else {})}
            for meta, body in items
        ]
        try:
            typ, _data = target.multiappend(folder, messages)
        except imap.RETRYABLE:
            raise
        except IMAPClientError as e:
            if imap.busy(e):
                raise
            typ = "NO"
        if typ == "OK":
            report.copied += len(items)
            report.copied_bytes += sum(m.size for m, _b in items)
            return
        log.info("MULTIAPPEND refused in %s: one message at a time", folder)
    for meta, body in items:
        _append_one(target, folder, meta, body, report)


def _ensure_folder(target: IMAPClient, name: str, subscribe: bool) -> None:
    if name.upper() != "INBOX" and not target.folder_exists(name):
        target.create_folder(name)
    if subscribe:
        target.subscribe_folder(name)


def copy_folder(
    source: IMAPClient,
    target: IMAPClient,
    mapping: Mapping,
    report: FolderReport,
    *,
    dry_run: bool,
    max_size: int,
    batch_bytes: int,
    subscribe: bool,
    progress: Callable[[FolderReport], None] | None = None,
    claimed: Counter | None = None,
) -> None:
    """Copy one source folder. `claimed`: what earlier source folders mapped to the same target
    ("Sent Items" and "Posta inviata" both to Sent) have already accounted for there, so a
    different message of this folder is never taken for one of theirs; this folder's own
    messages are added to it once it is done."""
    claimed = claimed if claimed is not None else Counter()
    # Counted afresh on each attempt: a retried folder starts again from what is there.
    for name in ("copied", "copied_bytes", "already_present", "source_count", "source_bytes"):
        setattr(report, name, 0)
    report.skipped_too_large, report.errors, report.missing = [], [], None

    present: Counter = Counter()
    exists = target.folder_exists(mapping.target) if mapping.target.upper() != "INBOX" else True
    if exists:
        present = identities(target, mapping.target) - claimed
    elif not dry_run:
        _ensure_folder(target, mapping.target, subscribe=False)

    selected = source.select_folder(mapping.source, readonly=True)  # EXAMINE: nothing changes there
    todo: list[Meta] = []
    wanted: Counter = Counter()
    for meta in folder_meta(source, selected.get(b"EXISTS")):
        report.source_count += 1
        report.source_bytes += meta.size
        wanted[meta.identity] += 1
        if present[meta.identity] > 0:
            present[meta.identity] -= 1
            report.already_present += 1
        elif meta.size > max_size:
            report.skipped_too_large.append(_too_large(meta))
        else:
            todo.append(meta)
    if dry_run:
        return
    if subscribe:
        _ensure_folder(target, mapping.target, subscribe=True)

    # The next batch is fetched (in a thread: the source's connection is used by it alone meanwhile)
    # while this one is appended: the two servers and the two connections work at the same time.
    # Two batches of bodies in memory at most. An error in either leaves the `with` only once the
    # fetch in flight has ended, so a reconnection never shares a connection with it.
    batches = list(_batches(todo, batch_bytes))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_fetch_bodies, source, batches[0]) if batches else None
        for i, batch in enumerate(batches):
            answer = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(_fetch_bodies, source, batches[i + 1])
            _copy_batch(target, mapping.target, batch, answer, report)
            del answer
            if progress:
                progress(report)

    if not todo:
        report.missing = 0  # every message was found on our side (the skipped ones apart)
        claimed.update(wanted)
        return
    # Verification: what of the source is still not on our side (the skipped ones apart).
    have = identities(target, mapping.target) - claimed
    missing = sum(max(0, n - have[key]) for key, n in wanted.items())
    report.missing = max(0, missing - len(report.skipped_too_large))
    claimed.update(wanted)


def run_copy(
    source_endpoint: imap.Endpoint,
    target_endpoint: imap.Endpoint,
    *,
    dry_run: bool = False,
    max_size: int = DEFAULT_MAX_SIZE,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    progress: Callable[[FolderReport], None] | None = None,
    connect_attempts: int = 5,
) -> CopyReport:
    """Copy (or with dry_run, only measure) every folder; returns the report. Raises CopyFailed."""
    started = time.monotonic()
    report = CopyReport(dry_run=dry_run, max_size=max_size)

    def open_both() -> tuple[IMAPClient, IMAPClient]:
        try:
            src = imap.connect(source_endpoint, attempts=connect_attempts)
        except imap.ImapError as e:
            raise CopyFailed(_("Sorgente: %(error)s", error=e.message)) from None
        try:
            dst = imap.connect(target_endpoint, attempts=connect_attempts)
        except imap.ImapError as e:
            imap.close(src)
            raise CopyFailed(_("Destinazione: %(error)s", error=e.message)) from None
        return src, dst

    source, target = open_both()
    try:
        mappings, subscribed = plan(source, target)
        claims: dict[str, Counter] = {}  # per target folder: what its source folders accounted for
        for mapping in mappings:
            folder_report = FolderReport(source=mapping.source, target=mapping.target, role=mapping.role)
            report.folders.append(folder_report)
            pause = 1.0
            carried = (0, 0)  # copied by attempts that lost their connection
            for attempt in range(FOLDER_ATTEMPTS):
                try:
                    copy_folder(
                        source,
                        target,
                        mapping,
                        folder_report,
                        dry_run=dry_run,
                        max_size=max_size,
                        batch_bytes=batch_bytes,
                        subscribe=mapping.source in subscribed,
                        progress=progress,
                        claimed=claims.setdefault(
                            mapping.target.upper() if mapping.target.upper() == "INBOX" else mapping.target,
                            Counter(),
                        ),
                    )
                    # What the lost attempts copied is found again as "already present": it was copied now.
                    folder_report.copied += carried[0]
                    folder_report.copied_bytes += carried[1]
                    folder_report.already_present -= carried[0]
                    break
                except (*imap.RETRYABLE, IMAPClientError) as e:
                    retry = isinstance(e, imap.RETRYABLE) or imap.busy(e)
                    if not retry or attempt == FOLDER_ATTEMPTS - 1:
                        folder_report.errors.append(str(e) if not retry else f"connection lost: {e}")
                        break
                    log.warning("connection lost or server busy in %s (%s): reconnecting", mapping.source, e)
                    carried = (carried[0] + folder_report.copied, carried[1] + folder_report.copied_bytes)
                    imap.close(source)
                    imap.close(target)
                    time.sleep(pause)
                    pause *= 2
                    try:
                        source, target = open_both()
                    except CopyFailed as gone:
                        # The report so far is kept; a re-run resumes from what is there.
                        source = target = None
                        report.errors.append(gone.message)
                        report.seconds = time.monotonic() - started
                        return report
    finally:
        imap.close(source)
        imap.close(target)
    report.seconds = time.monotonic() - started
    return report
