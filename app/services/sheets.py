"""Bulk provisioning sheets: read a customer's filled workbook (.xlsx or .csv), write one.

Only the file is handled here: which sheets hold mailboxes, aliases or lists, which column is
which field, and each cell's text or the reason it cannot be read as text. Whether an address
is free or a class exists is the import service's business.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import re
import time as time_module
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import current_app, has_app_context
from flask_babel import gettext as _
from openpyxl import Workbook as XlsxWorkbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter, quote_sheetname, range_boundaries
from openpyxl.worksheet.datavalidation import DataValidation

from app.services import xlsx_rows
from app.services.errors import ValidationError

MAILBOXES, ALIASES, LISTS = "mailboxes", "aliases", "lists"
KINDS = (MAILBOXES, ALIASES, LISTS)

FIELDS = {
    MAILBOXES: (
        "address",
        "password",
        "display_name",
        "service_class",
        "generate_password",
        "aliases",
        "lists",
    ),
    ALIASES: ("alias", "mailbox"),
    LISTS: ("list", "members", "description"),
}

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_ROWS = 20_000
DEFAULT_MAX_UNZIPPED = 50 * 1024 * 1024
MAX_ZIP_MEMBERS = 1000
HEADER_SEARCH_ROWS = 30
MAX_MERGED_RANGES = 10_000
TEMPLATE_ROWS = 10_000  # rows of the template's Caselle sheet with the class drop-down

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"


# --- What a read gives --------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    column: str  # column letter, "B"
    value: str  # normalised text, "" when empty
    problem: str | None = None  # why it could not be read as text; value is "" then


@dataclass(frozen=True)
class SheetRow:
    kind: str
    sheet: str
    row: int  # 1-based row number in the sheet
    cells: Mapping[str, Cell]  # field -> Cell, for the fields the sheet has a column for

    def value(self, field: str) -> str:
        cell = self.cells.get(field)
        return cell.value if cell else ""

    def column(self, field: str) -> str | None:
        cell = self.cells.get(field)
        return cell.column if cell else None

    def problems(self) -> dict[str, str]:
        """field -> why its cell could not be read."""
        return {f: c.problem for f, c in self.cells.items() if c.problem}


@dataclass(frozen=True)
class SheetInfo:
    name: str
    kind: str
    header_row: int
    columns: Mapping[str, str]  # field -> column letter
    rows: int  # data rows read


@dataclass(frozen=True)
class Problem:
    """A problem not inside a data cell: a header, a merged range, a part of the file left out."""

    sheet: str | None
    row: int | None
    column: str | None
    message: str


@dataclass
class Workbook:
    sheets: list[SheetInfo] = field(default_factory=list)
    rows: list[SheetRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # sheets without a recognised header


class FileRejected(ValidationError):
    """The whole file is refused; the message says why and what to do."""

    def __init__(self, message: str):
        super().__init__({"file": message})


# --- Headers ------------------------------------------------------------------------------


def normalise_header(text: object) -> str:
    """'Classe di servizio ' -> 'classediservizio': casefolded, no accents, letters and digits only."""
    decomposed = unicodedata.normalize("NFKD", str(text).casefold())
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


def _names(*words: str) -> frozenset[str]:
    return frozenset(normalise_header(w) for w in words)


_ADDRESS = _names(
    "account", "indirizzo", "indirizzo email", "indirizzo di posta", "email", "e-mail", "mail",
    "posta elettronica", "casella", "casella email", "casella di posta", "utente", "username",
    "nome utente", "address", "email address", "mail address", "mailbox", "user", "login",
)  # fmt: skip
_PASSWORD = _names(
    "password", "pwd", "parola chiave", "parola d'ordine", "password iniziale", "initial password"
)
_DISPLAY_NAME = _names(
    "nome visualizzato", "nominativo", "nome e cognome", "cognome e nome", "nome completo",
    "display name", "full name", "name", "nome",
)  # fmt: skip
_FIRST_NAME = _names("nome", "nome proprio", "first name", "given name", "firstname")
_LAST_NAME = _names("cognome", "last name", "surname", "family name")
_SERVICE_CLASS = _names(
    "classe di servizio", "classe", "cos", "class of service", "service class", "class",
    "tipo casella", "tipo di casella", "tipologia", "tipologia casella", "piano", "plan",
)  # fmt: skip
_GENERATE = _names("genera password", "password generata", "generare password", "generate password")
_ALIASES_OF_MAILBOX = _names("alias", "aliases", "altri indirizzi", "indirizzi alias", "other addresses")
_LISTS_OF_MAILBOX = _names(
    "liste", "lista", "liste di distribuzione", "lista di distribuzione", "distribution lists",
    "distribution list", "lists", "list", "gruppi", "groups",
)  # fmt: skip
_ALIAS = _names("alias", "indirizzo alias", "aliases", "alias address")
_ALIAS_TARGET = _names(
    "casella", "casella email", "casella di posta", "casella di destinazione", "destinazione",
    "destinatario", "mailbox", "target", "inoltra a", "forward to", "deliver to", "consegna a",
    "account",
)  # fmt: skip
_LIST = _names(
    "lista", "lista di distribuzione", "indirizzo lista", "list", "distribution list", "list address"
)
_MEMBERS = _names(
    "membro", "membri", "member", "members", "iscritti", "iscritto", "destinatari", "recipients"
)
_DESCRIPTION = _names("descrizione", "description", "note", "notes")

_SYNONYMS = {
    MAILBOXES: {
        "address": _ADDRESS,
        "password": _PASSWORD,
        "display_name": _DISPLAY_NAME,
        "service_class": _SERVICE_CLASS,
        "generate_password": _GENERATE,
        "aliases": _ALIASES_OF_MAILBOX,
        "lists": _LISTS_OF_MAILBOX,
        "first_name": _FIRST_NAME,
        "last_name": _LAST_NAME,
    },
    ALIASES: {"alias": _ALIAS, "mailbox": _ALIAS_TARGET},
    LISTS: {"list": _LIST, "members": _MEMBERS, "description": _DESCRIPTION},
}

_PARENTHESISED = re.compile(r"\([^)]*\)|\[[^\]]*\]")


def header_keys(value: object) -> tuple[str, ...]:
    """The header's normalised forms: whole, and without a bracketed note ('Classe (CoS)')."""
    if not isinstance(value, str):
        return ()
    keys = [normalise_header(value), normalise_header(_PARENTHESISED.sub(" ", value))]
    return tuple(dict.fromkeys(k for k in keys if k))


@dataclass
class Header:
    kind: str
    row: int
    columns: dict[str, int]  # field -> 1-based column index, first one found
    repeats: list[tuple[str, int, int]]  # (field, first column, repeated column)
    display_from: tuple[int | None, int | None] | None = None  # (first, last) name columns


def _map_header(kind: str, keys_by_col: dict[int, tuple[str, ...]]) -> dict[str, list[int]]:
    """field -> the columns whose header names it, for a sheet of that kind."""
    synonyms = _SYNONYMS[kind]
    has_last_name = kind == MAILBOXES and any(k in _LAST_NAME for keys in keys_by_col.values() for k in keys)
    found: dict[str, list[int]] = {}
    for col, keys in keys_by_col.items():
        matches = [f for f, names in synonyms.items() if any(k in names for k in keys)]
        if "first_name" in matches and "display_name" in matches:
            # 'Nome' beside 'Cognome' is the first name; alone, it is the name to show.
            matches.remove("display_name" if has_last_name else "first_name")
        if matches:
            found.setdefault(matches[0], []).append(col)
    return found


def _recognise(row_number: int, values: Sequence[object]) -> Header | None:
    """The header of a sheet, if this row is one: its kind is decided by the whole row, as
    'Casella' is the address on a mailbox sheet but the target on an alias sheet."""
    keys_by_col = {i + 1: k for i, v in enumerate(values) if (k := header_keys(v))}
    if len(keys_by_col) < 2:
        return None
    mb = _map_header(MAILBOXES, keys_by_col)
    li = _map_header(LISTS, keys_by_col)
    al = _map_header(ALIASES, keys_by_col)
    if "address" in mb and {"password", "service_class", "generate_password"} & mb.keys():
        kind, found = MAILBOXES, mb
    elif "list" in li and "members" in li:
        kind, found = LISTS, li
    elif "alias" in al and "mailbox" in al:
        kind, found = ALIASES, al
    elif "address" in mb and {"display_name", "first_name", "last_name"} & mb.keys():
        kind, found = MAILBOXES, mb
    else:
        return None
    columns = {f: cols[0] for f, cols in found.items()}
    repeats = [(f, cols[0], c) for f, cols in found.items() for c in cols[1:]]
    header = Header(kind, row_number, columns, repeats)
    if kind == MAILBOXES:
        first, last = columns.pop("first_name", None), columns.pop("last_name", None)
        if "display_name" not in columns and (first or last):
            header.display_from = (first, last)
    return header


def _expected_headers() -> str:
    return _(
        "Caselle: Account, Password, Nome visualizzato, Classe di servizio, Genera password; "
        "Alias: Alias, Casella; Liste: Lista, Membro, Descrizione"
    )


# --- Cells --------------------------------------------------------------------------------

# Spaces of every kind (NBSP from web pages, tabs, new lines) and the invisible ones Excel keeps.
_INVISIBLE = "\u200b\u2060\ufeff"
_EDGES = re.compile(r"^[\s\u200b\u2060\ufeff]+|[\s\u200b\u2060\ufeff]+$")
_YES = _names("sì", "si", "yes", "y", "x", "1", "true", "vero", "s")
_NO = _names("no", "n", "0", "false", "falso")


def _strip(text: str) -> str:
    text = text.strip()
    if text and text[0] not in _INVISIBLE and text[-1] not in _INVISIBLE:
        return text
    return _EDGES.sub("", text)


def number_text(value: int | float) -> str | None:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return str(int(value))
    return str(value)


def cell_text(field_name: str, value: object, data_type: str) -> tuple[str, str | None]:
    """(text, problem) for one cell's raw value; never puts the value in the problem."""
    if data_type == "s" and field_name != "generate_password" and isinstance(value, str):
        return _strip(value), None  # the common case first
    if data_type == "f":
        return "", _("La cella contiene una formula: scrivi il valore.")
    if data_type == "e":
        return "", _("La cella contiene un errore (come #N/D): scrivi il valore.")
    if value is None:
        return "", None
    if field_name == "generate_password":
        return _yes_no(value)
    if isinstance(value, (datetime, date, time, timedelta)) or data_type == "d":
        return "", _("La cella contiene una data o un'ora, non un testo: formatta la colonna come Testo.")
    if isinstance(value, bool):
        return "", _("La cella contiene un valore logico (VERO/FALSO), non un testo.")
    if isinstance(value, (int, float)):
        if field_name == "service_class" and (text := number_text(value)) is not None:
            return text, None
        return "", _("La cella contiene un numero, non un testo: formatta la colonna come Testo.")
    if not isinstance(value, str):
        return "", _("La cella non contiene un testo.")
    return _strip(value), None


def _yes_no(value: object) -> tuple[str, str | None]:
    if isinstance(value, bool):
        return ("1" if value else ""), None
    if isinstance(value, (int, float)) and value in (0, 1):
        return ("1" if value == 1 else ""), None
    if isinstance(value, str):
        key = normalise_header(value)
        if not key:
            return "", None
        if key in _YES:
            return "1", None
        if key in _NO:
            return "", None
    return "", _("Scrivi Sì per generare la password, o lascia vuoto.")


def split_values(text: str) -> list[str]:
    """Several values in one cell: 'a@x, b@x; c@x\\nd@x' -> ['a@x', 'b@x', 'c@x', 'd@x']."""
    return [v for part in re.split(r"[,;\r\n]+", text or "") if (v := _strip(part))]


# --- Merged cells -------------------------------------------------------------------------


class _Merged:
    """The merged ranges of one sheet, as row intervals per column, for quick lookups."""

    def __init__(self, ranges: list[tuple[int, int, int, int]], columns: Iterable[int]):
        self.ranges = ranges  # (min_col, min_row, max_col, max_row)
        self._by_col: dict[int, tuple[list[int], list[int]]] = {}
        for col in set(columns):
            spans = sorted((r[1], r[3]) for r in ranges if r[0] <= col <= r[2])
            starts, ends = [], []
            for lo, hi in spans:
                if ends and lo <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], hi)
                else:
                    starts.append(lo)
                    ends.append(hi)
            self._by_col[col] = (starts, ends)

    def covers(self, col: int, row: int) -> bool:
        spans = self._by_col.get(col)
        if not spans:
            return False
        i = bisect.bisect_right(spans[0], row) - 1
        return i >= 0 and row <= spans[1][i]


def _contains(archive: zipfile.ZipFile, name: str, word: bytes) -> bool:
    tail = b""
    with archive.open(name) as member:
        while chunk := member.read(1024 * 1024):
            if word in tail + chunk[: len(word)] or word in chunk:
                return True
            tail = chunk[-len(word) :]
    return False


def _merged_ranges(archive: zipfile.ZipFile, path: str) -> tuple[list[tuple[int, int, int, int]], bool]:
    """The sheet's <mergeCell ref="B5:B9"> ranges (read-only mode does not give them), and
    whether there were more than MAX_MERGED_RANGES."""
    ranges: list[tuple[int, int, int, int]] = []
    if not _contains(archive, path.lstrip("/"), b"mergeCell"):
        return ranges, False  # most sheets: no second parse of the XML
    for ref in xlsx_rows.merged_ranges(archive, path.lstrip("/")):
        try:
            bounds = range_boundaries(ref)
        except (TypeError, ValueError):
            continue
        if None not in bounds:
            if len(ranges) >= MAX_MERGED_RANGES:
                return ranges, True
            ranges.append(bounds)
    return ranges, False


# --- Reading ------------------------------------------------------------------------------


def limit(name: str, default: int, given: int | None = None) -> int:
    """`given`, else the app's setting `name`, else `default`."""
    if given is not None:
        return given
    if has_app_context():
        return int(current_app.config.get(name, default))
    return default


def _megabytes(n: int) -> str:
    mb = n / (1024 * 1024)
    return f"{mb:.0f}" if mb >= 1 else f"{mb:.2f}".replace(".", ",")


def _thousands(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def read_upload(
    data: bytes,
    filename: str,
    *,
    max_bytes: int | None = None,
    max_rows: int | None = None,
    max_unzipped: int | None = None,
) -> Workbook:
    """The mailboxes, aliases and lists of an uploaded .xlsx or .csv; FileRejected when the file
    as a whole cannot be used."""
    return read_file(
        data,
        filename,
        reader=Reader,
        max_rows=limit("IMPORT_MAX_ROWS", DEFAULT_MAX_ROWS, max_rows),
        expected_headers=_expected_headers(),
        no_rows=_("Il file non contiene righe da importare sotto le intestazioni."),
        too_complex=_(
            "Il file contiene molto più di un elenco di caselle (troppe celle o troppo testo) e non "
            "si riesce a leggerlo: copia in un file nuovo solo i fogli e le righe da importare."
        ),
        max_bytes=max_bytes,
        max_unzipped=max_unzipped,
    )


def read_file(
    data: bytes,
    filename: str,
    *,
    reader: type[Reader],
    max_rows: int,
    expected_headers: str,
    no_rows: str,
    too_complex: str,
    max_bytes: int | None = None,
    max_unzipped: int | None = None,
    strict_utf8: bool = False,
) -> Workbook:
    """An uploaded .xlsx or .csv read by `reader` (Reader, or a subclass with another sheet's
    headers and cells), at most max_rows data rows; FileRejected when the file as a whole cannot
    be used. The caller words what is its own: the headers expected (when no sheet has them), no
    data row, a file far bigger than its kind of list (xlsx_rows.TooComplex). strict_utf8: a CSV
    that is UTF-8 but for some bytes is refused (naming the line) rather than read as cp1252."""
    max_bytes = limit("IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES, max_bytes)
    max_unzipped = limit("IMPORT_MAX_UNZIPPED", DEFAULT_MAX_UNZIPPED, max_unzipped)
    if not data:
        raise FileRejected(_("Il file è vuoto."))
    if len(data) > max_bytes:
        raise FileRejected(_("Il file è troppo grande: al massimo %(mb)s MB.", mb=_megabytes(max_bytes)))
    name = (filename or "").strip()
    extension = name.rsplit(".", 1)[-1].casefold() if "." in name else ""
    if data.startswith(_OLE2_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise FileRejected(
                _(
                    "Il file è protetto da password: toglila (File > Informazioni > Proteggi) e caricalo di nuovo."
                )
            )
        raise FileRejected(
            _("È un file .xls del vecchio Excel: aprilo e salvalo come Cartella di lavoro Excel (.xlsx).")
        )
    if data.startswith(b"PK"):
        book = _read_xlsx(
            data, extension, reader(max_rows), max_unzipped=max_unzipped, too_complex=too_complex
        )
    elif extension in ("csv", "txt"):
        book = _read_csv(data, _sheet_name_from(name), reader(max_rows), strict_utf8=strict_utf8)
    elif extension in ("xlsx", "xlsm", "xltx", "xltm"):
        raise FileRejected(
            _("Il file è danneggiato: non si riesce a leggerlo come cartella di lavoro Excel.")
        )
    else:
        raise FileRejected(_("Non è un foglio di calcolo: sono accettati i formati .xlsx e .csv."))
    if not book.sheets:
        raise FileRejected(
            _(
                "Nel file non c'è un foglio con le intestazioni attese (%(expected)s).",
                expected=expected_headers,
            )
        )
    if not book.rows:
        raise FileRejected(no_rows)
    return book


def _sheet_name_from(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return (base.rsplit(".", 1)[0] if "." in base else base) or "CSV"


def too_many_rows(max_rows: int) -> FileRejected:
    return FileRejected(
        _(
            "Il file ha troppe righe: al massimo %(n)s righe in tutto, dividilo in più file.",
            n=_thousands(max_rows),
        )
    )


def _corrupted() -> FileRejected:
    return FileRejected(
        _(
            "Il file è danneggiato: non si riesce a leggerlo come cartella di lavoro Excel. Salvalo di nuovo come .xlsx."
        )
    )


def _head(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        return member.read(100)


def _check_archive(data: bytes, extension: str, max_unzipped: int) -> None:
    """Refuse what is not an Excel workbook, and a zip that unpacks to more than max_unzipped
    bytes, counting the bytes really produced (the sizes in its headers can lie)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise _corrupted() from None
    with archive:
        members = archive.infolist()
        names = {m.filename for m in members}
        if "mimetype" in names or extension in ("ods", "ots"):
            try:
                is_ods = extension in ("ods", "ots") or _head(archive, "mimetype").startswith(_ODS_MIME)
            except Exception:
                is_ods = False
            if is_ods:
                raise FileRejected(
                    _("È un foglio OpenDocument (.ods): salvalo come Cartella di lavoro Excel (.xlsx).")
                )
        if len(members) > MAX_ZIP_MEMBERS:
            raise _corrupted()
        if not any(n.casefold().endswith("workbook.xml") for n in names):  # a .docx, a zip of photos
            raise FileRejected(_("Non è un foglio di calcolo: sono accettati i formati .xlsx e .csv."))
        too_big = FileRejected(
            _("Il file decompresso è troppo grande: al massimo %(mb)s MB.", mb=_megabytes(max_unzipped))
        )
        if sum(m.file_size for m in members) > max_unzipped:
            raise too_big
        total = 0
        try:
            for member in members:
                with archive.open(member) as stream:
                    while chunk := stream.read(1024 * 1024):
                        total += len(chunk)
                        if total > max_unzipped:
                            raise too_big
        except FileRejected:
            raise
        except Exception:  # CRC errors, encrypted members, unknown compression: all one refusal
            raise _corrupted() from None


# However it is built, a file is not read longer than this, nor past what its rows can explain:
# per data row allowed, shared strings, row elements (empty ones included) and cells walked.
READ_SECONDS = 15
STRINGS_PER_ROW = 20
ROW_ELEMENTS_PER_ROW = 5
CELLS_PER_ROW = 100


def _read_xlsx(
    data: bytes, extension: str, reader: Reader, *, max_unzipped: int, too_complex: str
) -> Workbook:
    _check_archive(data, extension, max_unzipped)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return read_sheets(archive, reader)
    except FileRejected:
        raise
    except xlsx_rows.TooComplex:
        raise FileRejected(too_complex) from None
    except Exception:  # a missing part, XML that is not, a DTD: all one refusal
        raise _corrupted() from None


HEADER_MAX_COLUMNS = 100  # a header further right than this is not looked for

# rows(min_row, max_col): the sheet's rows from min_row on, each as (value, data_type) pairs
# from column A to at most max_col, one per sheet row, empty rows included.
Rows = Callable[[int, int], Iterator[Sequence[tuple[object, str]]]]


class Reader:
    """Gathers the rows of the sheets, whatever the file format. Another kind of sheet (the
    migrations') is read by a subclass with its own `recognise` and `text`."""

    # recognise(row_number, values): the sheet's Header if this row is one (values: the row's
    # text cells, None for the others); else None.
    recognise = staticmethod(_recognise)
    # text(field, value, data_type): (text, problem) for one data cell's raw value.
    text = staticmethod(cell_text)

    def __init__(self, max_rows: int):
        self.book = Workbook()
        self.max_rows = max_rows

    def sheet(self, name: str, rows: Rows, merged_ranges=None) -> None:
        """merged_ranges(): the sheet's merged ranges as (min_col, min_row, max_col, max_row)."""
        header = self._header(rows)
        if header is None:
            self.book.ignored.append(name)
            return
        for _field, first, again in header.repeats:
            cells = {
                "a": get_column_letter(first) + str(header.row),
                "b": get_column_letter(again) + str(header.row),
            }
            message = _(
                "Colonna ripetuta: %(a)s e %(b)s hanno la stessa intestazione; lascia una sola colonna.",
                **cells,
            )
            self.book.problems.append(Problem(name, header.row, get_column_letter(again), message))
        used = set(header.columns.values()) | {c for c in header.display_from or () if c}
        merged = self._merged(name, header, used, merged_ranges) if merged_ranges else None
        count = 0
        data = rows(header.row + 1, max(used))
        try:
            for number, cells in enumerate(data, start=header.row + 1):
                row = self._row(name, header, number, cells, merged)
                if row is None:
                    continue
                if len(self.book.rows) >= self.max_rows:
                    raise too_many_rows(self.max_rows)
                self.book.rows.append(row)
                count += 1
        finally:
            data.close()
        columns = {f: get_column_letter(c) for f, c in header.columns.items()}
        if header.display_from:
            columns["display_name"] = get_column_letter(next(c for c in header.display_from if c))
        self.book.sheets.append(SheetInfo(name, header.kind, header.row, columns, count))

    def _header(self, rows: Rows) -> Header | None:
        top = rows(1, HEADER_MAX_COLUMNS)
        try:
            for number, cells in enumerate(top, start=1):
                if number > HEADER_SEARCH_ROWS:
                    return None
                if header := self.recognise(number, [v if t == "s" else None for v, t in cells]):
                    return header
        finally:
            top.close()
        return None

    def _merged(self, name: str, header: Header, used: set[int], merged_ranges) -> _Merged | None:
        ranges, too_many = merged_ranges()
        # Merged titles above the header are fine; a range over the data hides values.
        ranges = [r for r in ranges if r[3] > header.row and any(r[0] <= c <= r[2] for c in used)]
        for min_col, min_row, max_col, max_row in ranges:
            ref = f"{get_column_letter(min_col)}{min_row}:{get_column_letter(max_col)}{max_row}"
            self.book.problems.append(
                Problem(
                    name,
                    min_row,
                    get_column_letter(min_col),
                    _("Celle unite %(ref)s: separale e scrivi il valore in ogni riga.", ref=ref),
                )
            )
        if too_many:
            self.book.problems.append(
                Problem(name, None, None, _("Troppe celle unite: separale e scrivi il valore in ogni riga."))
            )
        return _Merged(ranges, used) if ranges else None

    def _row(self, name, header: Header, number: int, cells, merged: _Merged | None) -> SheetRow | None:
        def raw(col: int) -> tuple[object, str]:
            return cells[col - 1] if col <= len(cells) else (None, "n")

        def read(field_name: str, col: int) -> Cell:
            letter = get_column_letter(col)
            if merged and merged.covers(col, number):
                return Cell(letter, "", _("Cella unita ad altre: scrivi il valore in ogni riga."))
            value, data_type = raw(col)
            text, problem = self.text(field_name, value, data_type)
            return Cell(letter, text, problem)

        cols = list(header.columns.values()) + [c for c in header.display_from or () if c]
        if all(_blank(*raw(c)) for c in cols):
            return None
        result = {f: read(f, col) for f, col in header.columns.items()}
        if header.display_from:
            parts = [read("display_name", c) for c in header.display_from if c]
            problem = next((p.problem for p in parts if p.problem), None)
            text = "" if problem else " ".join(p.value for p in parts if p.value)
            result["display_name"] = Cell(parts[0].column, text, problem)
        return SheetRow(header.kind, name, number, result)


def _blank(value: object, data_type: str) -> bool:
    return data_type != "f" and (value is None or (isinstance(value, str) and not _strip(value)))


def read_sheets(archive: zipfile.ZipFile, reader: Reader) -> Workbook:
    """Every worksheet's cells streamed from its XML (app/services/xlsx_rows.py), gathered by
    `reader`; nothing checked of the workbook as a whole (read_file does)."""
    deadline = time_module.monotonic() + READ_SECONDS
    allowed = reader.max_rows + HEADER_SEARCH_ROWS
    strings = xlsx_rows.shared_strings(archive, allowed * STRINGS_PER_ROW, deadline)
    dates = xlsx_rows.date_styles(archive)
    for name, path in xlsx_rows.sheets(archive):

        def rows(min_row: int, max_col: int, path=path):
            return xlsx_rows.rows(
                archive,
                path,
                strings,
                dates,
                min_row,
                max_col,
                allowed * ROW_ELEMENTS_PER_ROW,
                allowed * CELLS_PER_ROW,
                deadline,
            )

        def merged_ranges(path=path):
            return _merged_ranges(archive, path)

        reader.sheet(name, rows, merged_ranges)
    return reader.book


def _csv_delimiter(text: str, recognise: Callable[[int, Sequence[object]], Header | None]) -> str:
    """The delimiter among , ; and tab that gives a recognisable header; else the one found
    on most lines. Excel writes ';' where ',' is the decimal sign, ',' elsewhere."""
    lines = [line for line in text[:50_000].splitlines()[:HEADER_SEARCH_ROWS] if line.strip()]
    candidates = sorted(
        ",;\t",
        key=lambda d: (sum(d in line for line in lines), sum(line.count(d) for line in lines)),
        reverse=True,
    )
    for delimiter in candidates:
        try:
            records = csv.reader(io.StringIO(text[:50_000], newline=""), delimiter=delimiter)
            for number, record in enumerate(records, start=1):
                if number > HEADER_SEARCH_ROWS:
                    break
                if recognise(number, record[:HEADER_MAX_COLUMNS]):
                    return delimiter
        except csv.Error:
            continue
    return candidates[0]


# A valid UTF-8 sequence of more than one byte: a file holding one is UTF-8, not cp1252 (where
# such pairs, "Ã©" and the like, are not written by people).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def _read_csv(data: bytes, name: str, reader: Reader, *, strict_utf8: bool) -> Workbook:
    if b"\x00" in data:
        raise FileRejected(_("Non è un foglio di calcolo: sono accettati i formati .xlsx e .csv."))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if strict_utf8 and _UTF8_SEQUENCE.search(data):
            # UTF-8 but for some bytes (a paste from elsewhere, a file cut short): read as cp1252 it
            # would garble every accented letter, passwords included. Refused, with where.
            line = data.count(b"\n", 0, e.start) + 1
            raise FileRejected(
                _(
                    "Il file CSV è in UTF-8 ma contiene caratteri non validi (riga %(n)d): salvalo di "
                    "nuovo come CSV UTF-8 e ricontrolla quella riga.",
                    n=line,
                )
            ) from None
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise FileRejected(_("Il file CSV non è leggibile: salvalo come CSV UTF-8.")) from None
    delimiter = _csv_delimiter(text, reader.recognise)

    def rows(min_row: int, max_col: int, delimiter=delimiter):
        records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for number, record in enumerate(records, start=1):
            if number >= min_row:
                yield [(v, "s") for v in record[:max_col]]

    try:
        reader.sheet(name, rows)
    except csv.Error:
        raise FileRejected(_("Il file CSV è danneggiato: controlla virgolette e separatori.")) from None
    return reader.book


# --- Writing ------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(ws, value: object, *, bold: bool = False) -> WriteOnlyCell | object:
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if not bold and not (isinstance(value, str) and value.startswith(_FORMULA_START)):
        return value
    cell = WriteOnlyCell(ws, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # text, never a formula, whatever it starts with
    if bold:
        cell.font = Font(bold=True)
    return cell


def _width(header: str) -> float:
    return min(60, max(14, len(header) + 4))


def write_workbook(sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[object]]]]) -> bytes:
    """An .xlsx of (sheet name, headers, rows): header bold and frozen, every string as text."""
    book = XlsxWorkbook(write_only=True)
    for title, headers, rows in sheets:
        ws = book.create_sheet(title)
        for i, h in enumerate(headers, start=1):
            ws.column_dimensions[get_column_letter(i)].width = _width(str(h))
        ws.freeze_panes = "A2"
        ws.append([_text_cell(ws, h, bold=True) for h in headers])
        for row in rows:
            ws.append([_text_cell(ws, v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def template(class_names: Sequence[str]) -> bytes:
    """The workbook customers download, fill and upload."""
    book = XlsxWorkbook()
    bold = Font(bold=True)

    def header(ws, titles: Sequence[str], widths: Sequence[float]) -> None:
        for i, (title, width) in enumerate(zip(titles, widths, strict=True), start=1):
            cell = ws.cell(row=1, column=i, value=title)
            cell.font = bold
            ws.column_dimensions[get_column_letter(i)].width = width
        ws.freeze_panes = "A2"

    mailboxes = book.active
    mailboxes.title = _("Caselle")
    header(
        mailboxes,
        [_("Account"), _("Password"), _("Nome visualizzato"), _("Classe di servizio"), _("Genera password")],
        [34, 20, 30, 30, 18],
    )
    # Text, so that a password of digits typed in stays text (and as typed: no leading 0 lost).
    mailboxes.column_dimensions["B"].number_format = "@"

    aliases = book.create_sheet(_("Alias"))
    header(aliases, [_("Alias"), _("Casella")], [34, 34])
    lists = book.create_sheet(_("Liste"))
    header(lists, [_("Lista"), _("Membro"), _("Descrizione")], [34, 40, 40])
    lists["B1"].alignment = Alignment(wrap_text=True)

    max_rows = limit("IMPORT_MAX_ROWS", DEFAULT_MAX_ROWS)
    max_bytes = limit("IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES)
    guide = book.create_sheet(_("Istruzioni"))
    guide.column_dimensions["A"].width = 110
    lines = [
        _("Come compilare questo file"),
        "",
        _("Caselle: una riga per casella."),
        _("Account: l'indirizzo completo, su un dominio del tuo account (mario.rossi@tuodominio.it)."),
        _(
            "Password: almeno 8 caratteri, non una password comune e diversa dall'indirizzo. "
            "Oppure lasciala vuota e scrivi Sì in Genera password: la creiamo noi."
        ),
        _("Nome visualizzato: il nome che vedono i destinatari (facoltativo)."),
        _("Classe di servizio: scegli il nome dall'elenco a tendina, scritto com'è."),
        _("Alias: un indirizzo in più che consegna a una casella (Alias, Casella)."),
        _(
            "Liste: una lista per riga; più membri nella stessa cella vanno separati da virgole, "
            "punti e virgola o a capo."
        ),
        _(
            "Al massimo %(rows)s righe in tutto e %(mb)s MB. Formati accettati: .xlsx e .csv.",
            rows=_thousands(max_rows),
            mb=_megabytes(max_bytes),
        ),
        _("Non unire celle e non usare formule: scrivi il valore in ogni cella."),
    ]
    for line in lines:
        guide.append([line])
    guide["A1"].font = Font(bold=True, size=14)

    classes_sheet = book.create_sheet(_("Classi"))
    for name in class_names:
        classes_sheet.append([name])
        cell = classes_sheet.cell(row=classes_sheet.max_row, column=1)
        cell.data_type = "s"
    classes_sheet.sheet_state = "hidden"
    if class_names:
        source = f"{quote_sheetname(classes_sheet.title)}!$A$1:$A${len(class_names)}"
        validation = DataValidation(
            type="list",
            formula1=source,
            allow_blank=True,
            showErrorMessage=True,
            errorStyle="stop",
            errorTitle=_("Classe di servizio"),
            error=_("Scegli una classe di servizio dall'elenco."),
        )
        validation.add(f"D2:D{TEMPLATE_ROWS + 1}")
        mailboxes.add_data_validation(validation)
    generate = DataValidation(type="list", formula1=f'"{_("Sì")}"', allow_blank=True)
    generate.add(f"E2:E{TEMPLATE_ROWS + 1}")
    mailboxes.add_data_validation(generate)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
