"""The copy from an old provider's IMAP account into one of ours.

The source is only read: every folder is opened with EXAMINE and bodies
are fetched with BODY.PEEK, so no flag changes there. Per folder:

1. one FETCH per 1,000 UIDs reads each message's size, INTERNALDATE, flags
   and a few headers on both sides, giving each message an identity: its
   Message-ID, or when it has none "INTERNALDATE (UTC) + a hash of Date,
   From, To, Subject and Content-Type" (not the size, which some servers
   report inexactly), stable across runs. A message whose
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

The work is shared by `parallel` connection pairs (a source and a target
connection each) through one queue: a folder's comparison (steps 1-2, on one
pair; folders largest first), then its batches, which any free pair takes,
EXAMINE-ing the folder when it has another one open; the pair that ends a
folder's last batch verifies it. Source folders that land in one folder of
ours ("Sent Items" and "Posta inviata" into Sent) are compared one after the
other, each once the previous one is copied and counted. The progress
callback is called in the thread that called `run_copy`, one call at a time;
an exception it raises stops every pair at once (their connections are cut)
and leaves `run_copy` as it is.

A dropped connection reconnects that pair with backoff; its folder's queued
batches are dropped and, once the batches other pairs have in flight have
ended, the folder is compared again (the identities make that safe: nothing
is copied twice). Memory holds two batches of bodies per pair and the
identities of the folders being copied, never the whole mailbox.
"""

from __future__ import annotations

import contextvars
import email.header
import email.utils
import hashlib
import imaplib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from flask_babel import gettext as _
from imapclient import IMAPClient, imap_utf7
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import _quote
from imapclient.response_parser import parse_response

from app.mailserver import imap
from app.services.migration.folders import Mapping, Namespace, SourceFolder, decode_name, map_folders

log = logging.getLogger(__name__)

# 29 MiB: the largest message our side accepts (RFC822.SIZE).
DEFAULT_MAX_SIZE = 29 * 1024 * 1024
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
BATCH_MESSAGES = 200
META_CHUNK = 1000
HEADERS = b"BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT CONTENT-TYPE)]"
META_ITEMS = [
    "RFC822.SIZE",
    "INTERNALDATE",
    "FLAGS",
    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT CONTENT-TYPE)]",
]
FOLDER_ATTEMPTS = 4
# Connection pairs per mailbox: the folders copied at the same time. More pairs gain little once
# our server's APPENDs are the bottleneck, and old providers limit connections per user (often
# 10 to 20 per IP, and the panel runs two mailboxes of one host at a time).
DEFAULT_PARALLEL = 3
# A pair opened besides the first tries this many times; failing, the others do the work.
EXTRA_PAIR_ATTEMPTS = 2


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
    # What this run found to copy (not on our side yet, not too large): a dry run's measure of a
    # real run's work; in a real run what it copied or failed to.
    to_copy: int = 0
    to_copy_bytes: int = 0
    # The source's name was not valid modified UTF-7: read leniently (see folders.decode_name).
    invalid_name: bool = False


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
            "to_copy": sum(x.to_copy for x in f),
            "to_copy_bytes": sum(x.to_copy_bytes for x in f),
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


FALLBACK_FIELDS = ("date", "from", "to", "subject", "content-type")


def identity(date: datetime | None, header_block: bytes) -> tuple[str, dict[str, str]]:
    """Message-ID when there is one, else INTERNALDATE + a hash of Date, From, To, Subject and
    Content-Type (a multipart's boundary is as good as unique). Not the size: some servers
    report RFC822.SIZE inexactly, and our copy of the message would then differ from it."""
    fields = _headers(header_block or b"")
    message_id = fields.get("message-id", "").strip()
    if message_id:
        return "id:" + message_id.strip("<>").strip().lower(), fields
    digest = hashlib.sha256(
        "\n".join(" ".join(fields.get(k, "").split()) for k in FALLBACK_FIELDS).encode()
    ).hexdigest()[:24]
    return f"x:{_utc_seconds(date)}:{digest}", fields


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
            key, fields = identity(date, header_block)
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


def list_source(client: IMAPClient, subscribed: bool = False) -> list[tuple[SourceFolder, bytes | None]]:
    """LIST (or LSUB) with the names as the server sent them: each folder, its name read by
    `decode_name` (never an exception for a name that is not modified UTF-7), and its separator."""
    client.folder_encode = False
    try:
        listed = client.list_sub_folders() if subscribed else client.list_folders()
    finally:
        client.folder_encode = True
    result = []
    for flags, separator, raw in listed:
        wire = str(raw).encode() if isinstance(raw, int) else raw
        name, valid = decode_name(wire)
        result.append((SourceFolder(name, tuple(flags), wire=wire, valid_name=valid), separator))
    return result


def _namespaces(client: IMAPClient):
    """NAMESPACE's answer (asked once per connection), or None."""
    if not hasattr(client, "_copy_namespaces"):
        try:
            client._copy_namespaces = client.namespace()  # type: ignore[attr-defined]
        except (IMAPClientError, UnicodeError, ValueError):
            client._copy_namespaces = None  # type: ignore[attr-defined]
    return client._copy_namespaces  # type: ignore[attr-defined]


def _namespace(
    client: IMAPClient, listed: list[tuple[SourceFolder, bytes | None]] | None = None
) -> Namespace:
    spaces = _namespaces(client)
    personal = spaces.personal if spaces else None
    if personal:
        prefix, separator = personal[0]
        return Namespace(prefix or "", separator or "")
    # No NAMESPACE (old Courier, say): an "INBOX." prefix is guessed when every folder has it.
    folders = listed if listed is not None else list_source(client)
    separators = [sep for _f, sep in folders if sep]
    separator = separators[0].decode() if separators else "/"
    others = [f.name for f, _s in folders if f.name.upper() != "INBOX"]
    prefix = "INBOX" + separator
    if others and all(name.upper().startswith(prefix.upper()) for name in others):
        return Namespace(name_prefix(others[0], prefix), separator)
    return Namespace("", separator)


def _other_namespaces(client: IMAPClient) -> list[str]:
    """The prefixes of other users' and shared folders: never copied into the mailbox."""
    spaces = _namespaces(client)
    if spaces is None:
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
    listed = list_source(source)
    source_ns = _namespace(source, listed)
    target_ns = _namespace(target)
    others = _other_namespaces(source)
    folders = [
        folder
        for folder, _sep in listed
        if not any(prefix and folder.name.startswith(prefix) for prefix in others)
    ]
    try:
        subscribed = {folder.name for folder, _s in list_source(source, subscribed=True)}
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


def _fetch_bodies(source: IMAPClient, batch: list[Meta], max_size: int) -> dict:
    """The batch's bodies. What the server may send is bounded: a body at most twice `max_size`,
    the whole answer at most twice the sizes it announced plus 1 MiB (some servers' RFC822.SIZE
    is a little off; a server sending much more is not followed)."""
    announced = sum(m.size for m in batch)
    with imap.response_limits(source, literal=2 * max_size, response=2 * announced + 1024 * 1024):
        return source.fetch([m.uid for m in batch], ["BODY.PEEK[]"])


def _copy_batch(
    target: IMAPClient, folder: str, batch: list[Meta], answer: dict, report: FolderReport
) -> None:
    items = []
    for meta in batch:
        data = answer.get(meta.uid)
        body = data.get(b"BODY[]") if data else None
        if body is None:
            report.errors.append(
                _(
                    "UID %(uid)s (%(subject)r): il vecchio server non ha inviato il messaggio",
                    uid=meta.uid,
                    subject=meta.subject,
                )
            )
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


def source_wire(mapping: Mapping) -> bytes:
    """The source folder's name as its server knows it."""
    return mapping.source_wire if mapping.source_wire is not None else imap_utf7.encode(mapping.source)


def examine(source: IMAPClient, mapping: Mapping) -> dict:
    """EXAMINE the source folder by its exact name (nothing changes there); the SELECT answer."""
    source._command_and_check("select", _quote(source_wire(mapping)), True)
    return source._process_select_response(source._imap.untagged_responses)


def _target_state(target: IMAPClient, name: str) -> str:
    """ "selectable", "missing", or "noselect" (a parent that exists only through its children,
    which the folder of another pair may have just created)."""
    if name.upper() == "INBOX":
        return "selectable"
    listed = target.list_folders("", name)
    if not listed:
        return "missing"
    for flags, _sep, listed_name in listed:
        if listed_name == name:
            lowered = {f.lower() for f in flags}
            return "noselect" if {b"\\noselect", b"\\nonexistent"} & lowered else "selectable"
    return "missing"


def _ensure_folder(target: IMAPClient, name: str, state: str, subscribe: bool) -> None:
    if state != "selectable":
        try:
            target.create_folder(name)
        except IMAPClientError as e:
            # Created meanwhile (another pair made it a parent, say): fine if it is there now.
            if _target_state(target, name) != "selectable":
                raise e from None
    if subscribe:
        target.subscribe_folder(name)


def scan_folder(
    source: IMAPClient,
    target: IMAPClient,
    mapping: Mapping,
    report: FolderReport,
    *,
    dry_run: bool,
    max_size: int,
    subscribe: bool,
    claimed: Counter,
) -> tuple[list[Meta], Counter, Counter, int | None]:
    """Steps 1 and 2 for one source folder (our folder created when missing): what to copy, the
    source's identities (`wanted`), those found on our side (`matched`), and the source folder's
    UIDVALIDITY. `claimed`: what earlier source folders mapped to the same target ("Sent Items"
    and "Posta inviata" both to Sent) account for there, so a different message of this folder
    is never taken for one of theirs. The report's counts start again from zero."""
    for name in ("copied", "copied_bytes", "already_present", "source_count", "source_bytes", "to_copy"):
        setattr(report, name, 0)
    report.to_copy_bytes = 0
    report.skipped_too_large, report.errors, report.missing = [], [], None
    report.invalid_name = not mapping.valid_name

    present: Counter = Counter()
    state = _target_state(target, mapping.target)
    if state == "selectable":
        present = identities(target, mapping.target) - claimed
    elif not dry_run:
        _ensure_folder(target, mapping.target, state, subscribe=False)

    selected = examine(source, mapping)
    todo: list[Meta] = []
    wanted: Counter = Counter()
    matched: Counter = Counter()
    for meta in folder_meta(source, selected.get(b"EXISTS")):
        report.source_count += 1
        report.source_bytes += meta.size
        wanted[meta.identity] += 1
        if present[meta.identity] > 0:
            present[meta.identity] -= 1
            matched[meta.identity] += 1
            report.already_present += 1
        elif meta.size > max_size:
            report.skipped_too_large.append(_too_large(meta))
        else:
            todo.append(meta)
            report.to_copy += 1
            report.to_copy_bytes += meta.size
    if subscribe and not dry_run:
        _ensure_folder(target, mapping.target, "selectable", subscribe=True)
    return todo, wanted, matched, selected.get(b"UIDVALIDITY")


def verify_folder(
    target: IMAPClient, mapping: Mapping, report: FolderReport, wanted: Counter, claimed: Counter
) -> None:
    """Step 4: what of the source is still not on our side (the skipped ones apart)."""
    have = identities(target, mapping.target) - claimed
    missing = sum(max(0, n - have[key]) for key, n in wanted.items())
    report.missing = max(0, missing - len(report.skipped_too_large))


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
    """Copy one source folder on one connection pair (the run shares a folder's batches between
    its pairs instead); this folder's messages are added to `claimed` once it is done."""
    claimed = claimed if claimed is not None else Counter()
    todo, wanted, matched, _validity = scan_folder(
        source,
        target,
        mapping,
        report,
        dry_run=dry_run,
        max_size=max_size,
        subscribe=subscribe,
        claimed=claimed,
    )
    if dry_run:
        # What this folder found there is not there for the next one mapped to the same target.
        claimed.update(matched)
        return
    batches = list(_batches(todo, batch_bytes))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_fetch_bodies, source, batches[0], max_size) if batches else None
        for i, batch in enumerate(batches):
            answer = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(_fetch_bodies, source, batches[i + 1], max_size)
            _copy_batch(target, mapping.target, batch, answer, report)
            del answer
            if progress:
                progress(report)
    if todo:
        verify_folder(target, mapping, report, wanted, claimed)
    else:
        report.missing = 0  # every message was found on our side (the skipped ones apart)
    claimed.update(wanted)


# --- folders in parallel ------------------------------------------------------


def _claim_key(target: str) -> str:
    return "INBOX" if target.upper() == "INBOX" else target


def units(mappings: list[Mapping]) -> list[list[int]]:
    """The plan's folders grouped by their folder of ours (indexes, in the plan's order): a group's
    folders are compared one after the other (the next once the previous is copied and counted),
    as the claims on that folder require."""
    groups: dict[str, list[int]] = {}
    for index, mapping in enumerate(mappings):
        groups.setdefault(_claim_key(mapping.target), []).append(index)
    return list(groups.values())


def folder_sizes(client: IMAPClient, mappings: list[Mapping]) -> dict[int, int]:
    """Each source folder's size (bytes with STATUS=SIZE, else its messages), by index in
    `mappings`: one STATUS per folder, all sent before the first answer is read (one round trip
    in all). A folder the server does not answer for counts 0."""
    item = "SIZE" if client.has_capability("STATUS=SIZE") else "MESSAGES"
    conn = client._imap
    wires = [source_wire(m) for m in mappings]
    tags = [conn._command("STATUS", _quote(wire), f"({item})") for wire in wires]
    for tag in tags:
        try:
            conn._command_complete("STATUS", tag)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error:
            continue  # BAD for this one: its answer is simply missing
    _typ, data = conn._untagged_response("OK", [None], "STATUS")
    by_wire: dict[bytes, int] = {}
    try:
        parsed = parse_response([d for d in data if d is not None])
    except (IMAPClientError, ValueError):
        return {}
    for i in range(0, len(parsed) - 1, 2):
        name, items = parsed[i], parsed[i + 1]
        wire = str(name).encode() if isinstance(name, int) else name
        values = dict(zip(items[::2], items[1::2], strict=False)) if isinstance(items, tuple) else {}
        value = values.get(item.encode())
        if isinstance(wire, bytes) and isinstance(value, int):
            by_wire[wire] = value
    return {i: by_wire.get(wire, 0) for i, wire in enumerate(wires)}


def _wait_quietly(future) -> None:
    """The fetch ahead has ended (its batch goes back to the queue; its error does not matter)."""
    if future is not None:
        try:
            future.result()
        except Exception:  # noqa: BLE001
            pass


class _Stopped(Exception):
    """The run is stopping (cancelled, or a side gone for good): this pair ends."""


class _FolderChanged(IMAPClientError):
    """The source folder's UIDVALIDITY changed since its identities were read: compared again."""


Pair = tuple[IMAPClient, IMAPClient]


@dataclass(eq=False)
class _Folder:
    """One source folder's progress in the run (changed under _Run.lock)."""

    index: int
    unit: list[int]  # its group (one folder of ours), in the plan's order
    position: int  # its place in the group
    claims: Counter  # shared by the group: what its earlier folders account for
    attempt: int = 0
    not_before: float = 0.0  # a folder compared again after a lost connection waits its pause
    carried: tuple[int, int] = (0, 0)  # copied by attempts that lost their connection
    outstanding: int = 0  # its work queued or under way (comparison, batches, verification)
    wanted: Counter = field(default_factory=Counter)
    uidvalidity: int | None = None
    redo: bool = False  # a batch lost its connection: compared again once its other batches end
    failed: bool = False  # not retried: its remaining batches are dropped


@dataclass(eq=False)
class _Item:
    folder: _Folder
    batch: list[Meta] | None = None  # None: the folder's comparison


class _Side:
    """A pair's connections and the source folder examined on it."""

    def __init__(self, pair: Pair):
        self.source, self.target = pair
        self.examined: int | None = None


class _Run:
    """The copy of one mailbox on up to `workers` connection pairs, each in a thread of its own,
    sharing one queue of work: a folder's comparison (on one pair), then its batches, which any
    free pair takes (EXAMINE-ing that folder when it has another one open); the calling thread
    hands the progress on and waits."""

    def __init__(
        self,
        source_endpoint: imap.Endpoint,
        target_endpoint: imap.Endpoint,
        report: CopyReport,
        *,
        dry_run: bool,
        max_size: int,
        batch_bytes: int,
        connect_attempts: int,
    ):
        self.source_endpoint, self.target_endpoint = source_endpoint, target_endpoint
        self.report = report
        self.dry_run, self.max_size, self.batch_bytes = dry_run, max_size, batch_bytes
        self.connect_attempts = connect_attempts
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.mappings: list[Mapping] = []
        self.subscribed: set[str] = set()
        self.reports: list[FolderReport] = []
        self.started: list[bool] = []
        self.scans: list[_Folder] = []  # folders to compare, in order
        self.batches: list[_Item] = []  # batches to copy, in order
        self.busy = 0  # items taken and not ended: more work may come from them
        self.dirty: dict[int, FolderReport] = {}
        self.pairs: dict[int, Pair] = {}
        self.running = 0
        self.failure: BaseException | None = None
        self.planned = threading.Event()  # set_plan was called (or the run ended before it)
        self.threads: list[threading.Thread] = []

    def _open(self, attempts: int) -> Pair:
        """Both sides logged in; ImapError with `side` ("source" or "target") set."""
        try:
            src = imap.connect(self.source_endpoint, attempts=attempts, stop=self.stop)
        except imap.ImapError as e:
            e.side = "source"  # type: ignore[attr-defined]
            raise
        try:
            dst = imap.connect(self.target_endpoint, attempts=attempts, stop=self.stop)
        except imap.ImapError as e:
            imap.close(src)
            e.side = "target"  # type: ignore[attr-defined]
            raise
        return src, dst

    def open_pair(self, attempts: int) -> Pair:
        try:
            return self._open(attempts)
        except imap.ImapError as e:
            if e.side == "source":  # type: ignore[attr-defined]
                raise CopyFailed(_("Sorgente: %(error)s", error=e.message)) from None
            raise CopyFailed(_("Destinazione: %(error)s", error=e.message)) from None

    def set_plan(self, mappings: list[Mapping], subscribed: set[str], order: list[list[int]]) -> None:
        with self.changed:
            self.mappings, self.subscribed = mappings, subscribed
            self.reports = [FolderReport(source=m.source, target=m.target, role=m.role) for m in mappings]
            self.started = [False] * len(mappings)
            for unit in order:
                self.scans.append(
                    _Folder(index=unit[0], unit=unit, position=0, claims=Counter(), outstanding=1)
                )
            self.changed.notify_all()
        self.planned.set()

    # -- the queue (in the pairs' threads) --

    def notify(self, folder_report: FolderReport) -> None:
        """After each batch: the calling thread is told; a stopping run ends this pair here."""
        with self.changed:
            self.dirty[id(folder_report)] = folder_report
            self.changed.notify_all()
        if self.stop.is_set():
            raise _Stopped

    def _set_pair(self, worker: int, pair: Pair | None) -> None:
        with self.lock:
            if pair is None:
                self.pairs.pop(worker, None)
            else:
                self.pairs[worker] = pair
        if pair is not None and self.stop.is_set():
            raise _Stopped

    def _pick_batch(self, examined: int | None) -> _Item | None:
        """The first batch of the folder examined on this pair, else the first one queued."""
        if not self.batches:
            return None
        for i, item in enumerate(self.batches):
            if item.folder.index == examined:
                return self.batches.pop(i)
        return self.batches.pop(0)

    def _take(self, examined: int | None) -> _Item | None:
        """The next work for a pair: a comparison due, else a batch; waits while other pairs may
        still add some. None: the run is over (or stopping)."""
        self.planned.wait()
        with self.changed:
            while not self.stop.is_set():
                now = time.monotonic()
                due = [f for f in self.scans if f.not_before <= now]
                if due:
                    self.scans.remove(due[0])
                    self.started[due[0].index] = True
                    self.busy += 1
                    return _Item(due[0])
                item = self._pick_batch(examined)
                if item is not None:
                    self.busy += 1
                    return item
                if not self.scans and not self.busy:
                    return None
                wait = min((f.not_before - now for f in self.scans), default=1.0)
                self.changed.wait(max(0.01, min(wait, 1.0)))
            return None

    def _take_batch(self, examined: int | None) -> _Item | None:
        """A batch to fetch ahead while one is appended, if one is queued (never waits)."""
        with self.lock:
            if self.stop.is_set():
                return None
            item = self._pick_batch(examined)
            if item is not None:
                self.busy += 1
            return item

    def _next_in_group(self, folder: _Folder) -> None:
        """Under the lock: the folder is done; the next of its group is compared now."""
        if folder.position + 1 < len(folder.unit):
            self.scans.append(
                _Folder(
                    index=folder.unit[folder.position + 1],
                    unit=folder.unit,
                    position=folder.position + 1,
                    claims=folder.claims,
                    outstanding=1,
                )
            )

    def _end(self, folder: _Folder) -> bool:
        """Under the lock: one piece of the folder's work ended (not the taker's `busy`). True when
        its verification is due now, to be done by the caller (counted as one more piece)."""
        folder.outstanding -= 1
        if folder.outstanding > 0:
            return False
        report = self.reports[folder.index]
        if folder.redo and not folder.failed:
            # Compared again from what is on our side now: every batch of the lost attempt has ended.
            folder.redo = False
            folder.attempt += 1
            folder.carried = (folder.carried[0] + report.copied, folder.carried[1] + report.copied_bytes)
            folder.outstanding = 1
            folder.not_before = time.monotonic() + 2.0 ** (folder.attempt - 1)
            self.scans.insert(0, folder)
            return False
        if folder.failed:
            self._next_in_group(folder)
            return False
        folder.outstanding = 1
        return True

    def _done(self, taken: int = 1) -> None:
        with self.changed:
            self.busy -= taken
            self.changed.notify_all()

    def _finish(self, folder: _Folder, verified: bool) -> None:
        """Under the lock: the folder's copy is complete (verified, or nothing to copy)."""
        report = self.reports[folder.index]
        if not verified:
            report.missing = 0  # every message was found on our side (the skipped ones apart)
        # What the lost attempts copied is found again as "already present": it was copied now.
        copied, copied_bytes = folder.carried
        report.copied += copied
        report.copied_bytes += copied_bytes
        report.already_present -= copied
        report.to_copy += copied
        report.to_copy_bytes += copied_bytes
        folder.claims.update(folder.wanted)
        folder.outstanding = 0
        self._next_in_group(folder)

    def _lost(self, number: int, side: _Side, folder: _Folder, error: Exception) -> bool:
        """A piece of the folder's work failed on this pair (the piece is ended here). The folder is
        compared again once its other batches end, or reported failed; a broken pair reconnects
        after a pause. False: the run stops (a side cannot be reached again)."""
        if self.stop.is_set():
            raise _Stopped from None
        changed = isinstance(error, _FolderChanged)
        broken = isinstance(error, imap.RETRYABLE)  # the connection cannot be used any more
        too_large = imap.response_too_large(side.source) or imap.response_too_large(side.target)
        retry = changed or (broken and not too_large) or imap.busy(error)
        mapping, report = self.mappings[folder.index], self.reports[folder.index]
        pause = 2.0**folder.attempt
        with self.changed:
            if folder.failed:
                pass
            elif not retry or folder.attempt == FOLDER_ATTEMPTS - 1:
                report.errors.append(
                    str(error) if not retry else _("connessione persa: %(error)s", error=error)
                )
                folder.failed = True
            else:
                if not folder.redo:
                    log.warning("connection lost or server busy in %s (%s): again", mapping.source, error)
                folder.redo = True
            # Its queued batches are not copied now: the folder is compared again (or has failed).
            kept = [item for item in self.batches if item.folder is not folder]
            folder.outstanding -= len(self.batches) - len(kept)
            self.batches = kept
            self._end(folder)
            self.dirty[id(report)] = report
            self.changed.notify_all()
        side.examined = None
        if not broken:
            return True
        self._set_pair(number, None)
        imap.close(side.source)
        imap.close(side.target)
        if retry and self.stop.wait(pause):
            raise _Stopped from None
        try:
            side.source, side.target = self.open_pair(self.connect_attempts)
        except CopyFailed as gone:
            # The report so far is kept; a re-run resumes from what is there. The other pairs end
            # at their next batch.
            self.report.errors.append(gone.message)
            self.stop.set()
            return False
        self._set_pair(number, (side.source, side.target))
        return True

    def _scan(self, side: _Side, folder: _Folder) -> None:
        """The folder's comparison; its batches queued (or, with nothing to copy, it is done)."""
        mapping, report = self.mappings[folder.index], self.reports[folder.index]
        side.examined = None
        todo, wanted, matched, validity = scan_folder(
            side.source,
            side.target,
            mapping,
            report,
            dry_run=self.dry_run,
            max_size=self.max_size,
            subscribe=mapping.source in self.subscribed,
            claimed=folder.claims,
        )
        side.examined = folder.index
        with self.changed:
            folder.wanted, folder.uidvalidity = wanted, validity
            self.dirty[id(report)] = report
            self.changed.notify_all()
            if self.dry_run:
                # What this folder found there is not there for the next one mapped to the same target.
                folder.claims.update(matched)
                folder.outstanding = 0
                self._next_in_group(folder)
            elif not todo:
                self._finish(folder, verified=False)
            else:
                batches = list(_batches(todo, self.batch_bytes))
                folder.outstanding += len(batches) - 1  # the comparison ends here
                self.batches.extend(_Item(folder, batch) for batch in batches)

    def _verify(self, number: int, side: _Side, folder: _Folder) -> bool:
        """The folder's final count on our side (the caller holds one piece for it)."""
        mapping, report = self.mappings[folder.index], self.reports[folder.index]
        try:
            verify_folder(side.target, mapping, report, folder.wanted, folder.claims)
        except (*imap.RETRYABLE, IMAPClientError) as e:
            return self._lost(number, side, folder, e)
        with self.changed:
            self._finish(folder, verified=True)
            self.dirty[id(report)] = report
            self.changed.notify_all()
        return True

    def _fetch(self, side: _Side, item: _Item) -> dict:
        """In the fetch-ahead thread (the source connection is its alone meanwhile): the batch's
        bodies, its folder EXAMINEd first when another one is open on this pair."""
        folder, source = item.folder, side.source
        if side.examined != folder.index:
            side.examined = None
            selected = examine(source, self.mappings[folder.index])
            if folder.uidvalidity is not None and selected.get(b"UIDVALIDITY") != folder.uidvalidity:
                raise _FolderChanged("UIDVALIDITY changed")
            side.examined = folder.index
        return _fetch_bodies(source, item.batch or [], self.max_size)

    def _append(self, side: _Side, item: _Item, answer: dict) -> None:
        """The batch appended on our side, its counts added to the folder's report."""
        folder = item.folder
        mapping, report = self.mappings[folder.index], self.reports[folder.index]
        result = FolderReport(source=report.source, target=report.target)
        try:
            _copy_batch(side.target, mapping.target, item.batch or [], answer, result)
        finally:
            # What was appended before a lost connection counts: the comparison finds it again.
            with self.lock:
                report.copied += result.copied
                report.copied_bytes += result.copied_bytes
                report.errors.extend(result.errors)

    def _put_back(self, item: _Item) -> None:
        """A batch fetched ahead and not appended (this pair's connection was lost): queued again,
        or ended with its folder when that is compared again or has failed."""
        with self.changed:
            folder = item.folder
            if folder.redo or folder.failed:
                self._end(folder)  # never a verification: the folder is compared again or has failed
            else:
                self.batches.insert(0, item)
            self.busy -= 1
            self.changed.notify_all()

    def _work(self, number: int, side: _Side) -> None:
        """This pair's loop: take work until there is none (or the run stops)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"imap-copy-{number}-fetch") as pool:
            while (item := self._take(side.examined)) is not None:
                folder = item.folder
                if item.batch is None:
                    try:
                        self._scan(side, folder)
                    except (*imap.RETRYABLE, IMAPClientError) as e:
                        ok = self._lost(number, side, folder, e)
                        self._done()
                        if not ok:
                            return
                        continue
                    self._done()
                    if self.stop.is_set():
                        raise _Stopped
                    continue
                # Batches, the next one fetched (on the source) while this one is appended (on ours).
                pending = pool.submit(self._fetch, side, item)
                while item is not None:
                    folder = item.folder
                    try:
                        answer = pending.result()
                    except (*imap.RETRYABLE, IMAPClientError) as e:
                        ok = self._lost(number, side, folder, e)
                        self._done()
                        if not ok:
                            return
                        break
                    following = self._take_batch(side.examined)
                    ahead = pool.submit(self._fetch, side, following) if following is not None else None
                    try:
                        self._append(side, item, answer)
                    except (*imap.RETRYABLE, IMAPClientError) as e:
                        del answer
                        _wait_quietly(ahead)  # the source connection is no longer in use
                        ok = self._lost(number, side, folder, e)
                        self._done()
                        if following is not None:
                            self._put_back(following)
                        if not ok:
                            return
                        break
                    del answer
                    with self.lock:
                        verify = self._end(folder)
                    if verify:
                        # The fetch ahead ends first: a verification that loses its connection
                        # closes both sides of the pair.
                        if ahead is not None:
                            futures_wait([ahead])
                        if not self._verify(number, side, folder):
                            self._done()
                            if following is not None:
                                self._put_back(following)
                            return
                    self._done()
                    self.notify(self.reports[folder.index])
                    item, pending = following, ahead

    def worker(self, number: int, pair: Pair | None) -> None:
        side: _Side | None = None
        try:
            if pair is None:
                try:
                    pair = self._open(EXTRA_PAIR_ATTEMPTS)
                except imap.ImapError as e:
                    log.warning(
                        "another connection pair could not be opened (%s): fewer in parallel", e.message
                    )
                    return
            side = _Side(pair)
            self._set_pair(number, pair)
            self._work(number, side)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread, which raises it
            with self.changed:
                if self.failure is None:
                    self.failure = e
            self.stop.set()
        finally:
            with self.lock:
                current = self.pairs.pop(number, None) or ((side.source, side.target) if side else pair)
            if current is not None:
                imap.close(current[0])
                imap.close(current[1])
            with self.changed:
                self.running -= 1
                self.changed.notify_all()

    # -- in the calling thread --

    def abort_all(self) -> None:
        with self.lock:
            pairs = list(self.pairs.values())
        for source, target in pairs:
            imap.abort(source)
            imap.abort(target)

    def start(self, number: int, pair: Pair | None) -> None:
        """A pair's thread: `pair`, or with None one it opens (meanwhile the plan is made)."""
        thread = threading.Thread(
            target=contextvars.copy_context().run,  # the app's context (gettext) in each
            args=(self.worker, number, pair),
            name=f"imap-copy-{number}",
            daemon=True,
        )
        with self.lock:
            self.running += 1
        self.threads.append(thread)
        thread.start()

    def cancel(self) -> None:
        """Every pair stops now (their connections cut); their threads are waited for a while."""
        self.stop.set()
        self.planned.set()
        self.abort_all()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=30)

    def run(self, first: Pair, progress: Callable[[FolderReport], None] | None) -> None:
        try:
            self.start(0, first)
            while True:
                with self.changed:
                    while not self.dirty and self.running and self.failure is None:
                        self.changed.wait(1.0)
                    ready = list(self.dirty.values())
                    self.dirty.clear()
                    finished = self.running == 0
                if progress:
                    for folder_report in ready:
                        progress(folder_report)
                if self.failure is not None:
                    raise self.failure
                if finished:
                    break
        except BaseException:
            # Cancelled from `progress`, a pair's unexpected error, an interrupt: every pair stops now.
            self.cancel()
            raise
        for thread in self.threads:
            thread.join()


def run_copy(
    source_endpoint: imap.Endpoint,
    target_endpoint: imap.Endpoint,
    *,
    dry_run: bool = False,
    max_size: int = DEFAULT_MAX_SIZE,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    progress: Callable[[FolderReport], None] | None = None,
    connect_attempts: int = 5,
    parallel: int = DEFAULT_PARALLEL,
) -> CopyReport:
    """Copy (or with dry_run, only measure) every folder; returns the report. Raises CopyFailed.

    `parallel`: connection pairs copying folders at the same time (1: one after the other; a dry
    run uses one). `progress(folder_report)` is called after each batch, in this thread, one call
    at a time (a folder whose batches end close together may be reported once); what it raises
    stops every pair and leaves here unchanged."""
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    started = time.monotonic()
    report = CopyReport(dry_run=dry_run, max_size=max_size)
    run = _Run(
        source_endpoint,
        target_endpoint,
        report,
        dry_run=dry_run,
        max_size=max_size,
        batch_bytes=batch_bytes,
        connect_attempts=connect_attempts,
    )
    first = run.open_pair(connect_attempts)
    try:
        # The other pairs log in while the plan is made (they find nothing to do in a mailbox of
        # fewer folders than pairs).
        for number in range(1, 1 if dry_run else parallel):
            run.start(number, None)
        mappings, subscribed = plan(*first)
        order = units(mappings)
        if not dry_run and 1 < parallel < len(order):
            # Largest first: the last folders to start are the small ones, so the pairs end together.
            sizes = folder_sizes(first[0], mappings)
            order.sort(key=lambda unit: -sum(sizes.get(i, 0) for i in unit))
    except BaseException:
        run.cancel()
        imap.close(first[0])
        imap.close(first[1])
        raise
    run.set_plan(mappings, subscribed, order)
    try:
        run.run(first, progress)
    finally:
        # The plan's order, the folders that were begun.
        report.folders = [r for r, begun in zip(run.reports, run.started, strict=True) if begun]
        report.seconds = time.monotonic() - started
    return report
