"""How the old provider's folders are named on our side.

The source's personal namespace (prefix and separator, e.g. "INBOX." and
".") is removed and the remaining levels are joined with our separator
under our prefix. A special-use folder (Sent, Drafts, Trash, Junk,
Archive) is recognised by its SPECIAL-USE attribute first, then by a
well-known top-level name in one of several languages, and lands in the
folder that has that attribute on our side (or our default name), so a
mailbox never ends with both "Sent Items" and "Sent"; its sub-folders
follow it. Names are kept as they are, accents included (imapclient
encodes IMAP's modified UTF-7).

A source name that is not valid modified UTF-7 (raw 8-bit bytes, a broken
"&...-" run) is read leniently (`decode_name`: the valid runs decoded, raw
bytes as UTF-8, the rest kept as text) and copied under that name; the
source folder itself is still opened by its exact bytes (`wire`).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from imapclient import imap_utf7

ROLES = ("sent", "drafts", "trash", "junk", "archive")
ROLE_FLAGS = {
    b"\\sent": "sent",
    b"\\drafts": "drafts",
    b"\\trash": "trash",
    b"\\junk": "junk",
    b"\\archive": "archive",
}
DEFAULT_NAMES = {"sent": "Sent", "drafts": "Drafts", "trash": "Trash", "junk": "Junk", "archive": "Archive"}

# Lower-case top-level names, by role. Italian first, then English and the neighbours.
WELL_KNOWN = {
    "sent": (
        "posta inviata", "inviata", "inviati", "elementi inviati", "messaggi inviati", "posta in uscita inviata",
        "sent", "sent items", "sent messages", "sent mail", "sent-mail", "inbox.sent",
        "gesendet", "gesendete elemente", "gesendete objekte", "envoyés", "éléments envoyés", "messages envoyés",
        "enviados", "elementos enviados", "mensajes enviados",
    ),
    "drafts": ("bozze", "drafts", "draft", "entwürfe", "brouillons", "borradores"),
    "trash": (
        "cestino", "posta eliminata", "elementi eliminati", "messaggi eliminati",
        "trash", "deleted items", "deleted messages", "deleted", "bin",
        "papierkorb", "gelöschte elemente", "gelöschte objekte", "corbeille", "éléments supprimés",
        "papelera", "elementos eliminados",
    ),
    "junk": (
        "posta indesiderata", "indesiderata", "spam", "junk", "junk e-mail", "junk email", "junk mail",
        "bulk mail", "spam-verdacht", "courrier indésirable", "pourriel", "correo no deseado",
    ),
    "archive": ("archivio", "archivi", "archive", "archives", "archiv", "archivo", "archivos"),
}  # fmt: skip
_BY_NAME = {name: role for role, names in WELL_KNOWN.items() for name in names}


@dataclass(frozen=True)
class Namespace:
    prefix: str
    separator: str


def _strict(raw: bytes) -> str | None:
    """The name when `raw` is valid modified UTF-7 in its one canonical form, else None."""
    try:
        if not raw.isascii():
            return None
        name = imap_utf7.decode(raw)
        return name if imap_utf7.encode(name) == raw else None
    except (UnicodeError, ValueError, binascii.Error):
        return None


def decode_name(raw: bytes | str | int) -> tuple[str, bool]:
    """A folder name as LIST gave it (bytes) -> (the name, whether it was valid modified UTF-7).

    An invalid one is read leniently: each valid "&...-" run decoded, other bytes as UTF-8
    (what servers sending raw 8-bit names mean; an undecodable byte becomes U+FFFD), a stray
    "&" kept as it is."""
    if isinstance(raw, int):  # a name like 2019, which the parser took for a number
        raw = str(raw).encode()
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    name = _strict(raw)
    if name is not None:
        return name, True
    out, i = [], 0
    while i < len(raw):
        if raw[i] == 0x26:  # "&"
            end = raw.find(b"-", i + 1)
            run = _strict(raw[i : end + 1]) if end != -1 else None
            if run is not None:
                out.append(run)
                i = end + 1
            else:
                out.append("&")
                i += 1
            continue
        end = raw.find(b"&", i)
        end = len(raw) if end == -1 else end
        out.append(raw[i:end].decode("utf-8", "replace"))
        i = end
    return "".join(out), False


@dataclass(frozen=True)
class SourceFolder:
    name: str
    flags: tuple[bytes, ...] = ()
    # The name's exact bytes on the source (modified UTF-7, or whatever it sent); None: encode `name`.
    wire: bytes | None = None
    valid_name: bool = True

    @property
    def selectable(self) -> bool:
        lowered = {f.lower() for f in self.flags}
        return b"\\noselect" not in lowered and b"\\nonexistent" not in lowered

    @property
    def special_use(self) -> str | None:
        for flag in self.flags:
            role = ROLE_FLAGS.get(flag.lower())
            if role:
                return role
        return None


@dataclass(frozen=True)
class Mapping:
    source: str
    target: str
    role: str | None
    source_wire: bytes | None = None  # how to name the source folder to its server; None: encode `source`
    valid_name: bool = True  # False: the source's name was not valid modified UTF-7 (read leniently)


def levels(name: str, namespace: Namespace) -> list[str]:
    """A source name's levels below its namespace ("INBOX.Clienti.Rossi" -> ["Clienti", "Rossi"])."""
    if name.upper() == "INBOX":
        return ["INBOX"]
    if namespace.prefix and name.startswith(namespace.prefix):
        name = name[len(namespace.prefix) :]
    elif namespace.prefix and namespace.separator and name.upper().startswith(namespace.prefix.upper()):
        name = name[len(namespace.prefix) :]
    return name.split(namespace.separator) if namespace.separator else [name]


def _safe_level(level: str, separator: str) -> str:
    """A level as our side may hold it: our separator would make a new level, and the LIST
    wildcards * and % match other folders; each becomes "_", and an empty level (".." in the
    source) is "_" too, as is a control character."""
    for char in {separator, "*", "%"} - {""}:
        level = level.replace(char, "_")
    level = "".join("_" if ord(c) < 0x20 or c == "\x7f" else c for c in level)
    return level or "_"


def role_by_name(top: str) -> str | None:
    return _BY_NAME.get(top.strip().lower())


def map_folders(
    source_folders: list[SourceFolder],
    source_ns: Namespace,
    target_ns: Namespace,
    target_special: dict[str, str] | None = None,
) -> list[Mapping]:
    """Each selectable source folder with its name on our side.

    target_special: role -> our folder carrying that SPECIAL-USE attribute (from our LIST).
    """
    target_special = target_special or {}
    result = []
    for folder in source_folders:
        if not folder.selectable:
            continue
        extra = {"source_wire": folder.wire, "valid_name": folder.valid_name}
        parts = levels(folder.name, source_ns)
        if parts == ["INBOX"]:
            result.append(Mapping(folder.name, "INBOX", None, **extra))
            continue
        parts = [_safe_level(p, target_ns.separator) for p in parts]
        role = folder.special_use if len(parts) == 1 or folder.special_use else None
        if role is None:
            role = role_by_name(parts[0])
        if role:
            base = target_special.get(role) or target_ns.prefix + DEFAULT_NAMES[role]
            if folder.special_use and len(parts) > 1:
                # The attribute is on this folder itself, wherever it sits.
                parts = []
            else:
                parts = parts[1:]
            target = target_ns.separator.join([base, *parts]) if parts else base
            # Only the folder itself has the role; sub-folders are plain folders inside it.
            result.append(Mapping(folder.name, target, role if not parts else None, **extra))
            continue
        result.append(Mapping(folder.name, target_ns.prefix + target_ns.separator.join(parts), None, **extra))
    return result
