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
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class SourceFolder:
    name: str
    flags: tuple[bytes, ...] = ()

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
    source) is "_" too."""
    for char in {separator, "*", "%"} - {""}:
        level = level.replace(char, "_")
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
        parts = levels(folder.name, source_ns)
        if parts == ["INBOX"]:
            result.append(Mapping(folder.name, "INBOX", None))
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
            result.append(Mapping(folder.name, target, role if not parts else None))
            continue
        result.append(Mapping(folder.name, target_ns.prefix + target_ns.separator.join(parts), None))
    return result
