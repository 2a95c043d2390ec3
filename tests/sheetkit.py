"""Workbooks for tests, built in memory: what customers upload, right and wrong.

data = sheetkit.xlsx(sheetkit.Sheet("Caselle", [MAILBOX_HEADER, ["a@x.it", "Segreta-123", ...]]))
data = sheetkit.filled_template(["Business Mail 100 MB"], mailboxes=[[...]], aliases=[[...]])
data = sheetkit.csv_bytes([MAILBOX_HEADER, [...]], delimiter=";", bom=True)
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

from openpyxl import Workbook, load_workbook

from app.services import sheets

MAILBOX_HEADER = ["Account", "Password", "Nome visualizzato", "Classe di servizio", "Genera password"]
ALIAS_HEADER = ["Alias", "Casella"]
LIST_HEADER = ["Lista", "Membro", "Descrizione"]


@dataclass
class Sheet:
    """One worksheet: rows from A1 down (None leaves a cell empty; a string starting with '='
    is a formula); merged: ranges such as "B5:B9"; start_row: the row of rows[0]."""

    name: str
    rows: Sequence[Sequence[object]]
    merged: Sequence[str] = ()
    start_row: int = 1
    text_columns: Sequence[str] = ()  # columns written with number format Text ("@")
    hidden: bool = False
    # Merged ranges written straight into the sheet's XML: openpyxl would make a cell object
    # for each cell of a range, and a whole-sheet range has billions.
    raw_merged: Sequence[str] = ()


def xlsx(*sheets: Sheet) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for spec in sheets:
        ws = book.create_sheet(spec.name)
        for r, values in enumerate(spec.rows, start=spec.start_row):
            for c, value in enumerate(values, start=1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
        for letter in spec.text_columns:
            for cell in ws[letter]:
                cell.number_format = "@"
        for ref in spec.merged:
            ws.merge_cells(ref)
        if spec.hidden:
            ws.sheet_state = "hidden"
    data = save(book)
    for index, spec in enumerate(sheets, start=1):
        if spec.raw_merged:
            data = _add_merged(data, f"xl/worksheets/sheet{index}.xml", spec.raw_merged)
    return data


def _add_merged(data: bytes, path: str, refs: Sequence[str]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    cells = "".join(f'<mergeCell ref="{ref}"/>' for ref in refs)
    xml = members[path]
    assert b"<mergeCells" not in xml
    members[path] = xml.replace(
        b"</sheetData>", f'</sheetData><mergeCells count="{len(refs)}">{cells}</mergeCells>'.encode(), 1
    )
    return zip_of(members)


def save(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def filled_template(
    class_names: Sequence[str],
    mailboxes: Sequence[Sequence[object]] = (),
    aliases: Sequence[Sequence[object]] = (),
    lists: Sequence[Sequence[object]] = (),
) -> bytes:
    """The downloadable template with rows filled in from row 2, as a customer would."""
    book = load_workbook(io.BytesIO(sheets.template(class_names)))
    mailbox_sheet, alias_sheet, list_sheet = book.worksheets[:3]
    for ws, rows in ((mailbox_sheet, mailboxes), (alias_sheet, aliases), (list_sheet, lists)):
        for r, values in enumerate(rows, start=2):
            for c, value in enumerate(values, start=1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
    return save(book)


def csv_bytes(
    rows: Sequence[Sequence[object]], *, delimiter: str = ",", bom: bool = False, encoding: str = "utf-8"
) -> bytes:
    import csv

    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    data = out.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def messy_workbook() -> tuple[bytes, list[dict[str, str]]]:
    """The guide's example of a file as customers really fill it: one sheet "Foglio1", title
    rows, the header on row 4 in another order with extra columns, trailing spaces, upper-case
    addresses, classes written out, several aliases and lists in one cell. Returns the file and
    the rows expected from it (field -> value)."""
    rows = [
        ["Elenco caselle da creare - Rossi S.r.l.", None, None, None, None, None, None, None],
        ["Compilato da: Ufficio IT", None, None, None, None, None, None, None],
        [None] * 8,
        [
            "Reparto",
            "Nome visualizzato ",
            "E-mail",
            "CLASSE DI SERVIZIO",
            "Note interne",
            "Password",
            "Alias",
            "Liste di distribuzione",
        ],
        [
            "Amministrazione",
            "Mario Rossi ",
            "Mario.Rossi@Rossi.example ",
            "Business Mail 5.000 MB",
            "capo",
            "Primavera-2026!",
            "m.rossi@rossi.example, mario@rossi.example",
            "info@rossi.example;amministrazione@rossi.example",
        ],
        [
            "Vendite",
            "\u00a0Anna Bianchi",
            "ANNA.BIANCHI@ROSSI.EXAMPLE",
            " Business Mail 100 MB ",
            None,
            "Estate-2026!x",
            "anna@rossi.example\na.bianchi@rossi.example",
            "vendite@rossi.example, info@rossi.example",
        ],
        [None] * 8,
        ["Magazzino", "Luca Verdi", "luca.verdi@rossi.example\t", "business mail 1 GB", None, "Autunno-2026!y", None, None],
    ]  # fmt: skip
    book = Workbook()
    ws = book.active
    ws.title = "Foglio1"
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values, start=1):
            if value is not None:
                ws.cell(row=r, column=c, value=value)
    ws.merge_cells("A1:H1")  # a merged title above the header is fine
    expected = [
        {
            "row": "5",
            "address": "Mario.Rossi@Rossi.example",
            "display_name": "Mario Rossi",
            "service_class": "Business Mail 5.000 MB",
            "password": "Primavera-2026!",
            "aliases": "m.rossi@rossi.example, mario@rossi.example",
            "lists": "info@rossi.example;amministrazione@rossi.example",
        },
        {
            "row": "6",
            "address": "ANNA.BIANCHI@ROSSI.EXAMPLE",
            "display_name": "Anna Bianchi",
            "service_class": "Business Mail 100 MB",
            "password": "Estate-2026!x",
            "aliases": "anna@rossi.example\na.bianchi@rossi.example",
            "lists": "vendite@rossi.example, info@rossi.example",
        },
        {
            "row": "8",
            "address": "luca.verdi@rossi.example",
            "display_name": "Luca Verdi",
            "service_class": "business mail 1 GB",
            "password": "Autunno-2026!y",
            "aliases": "",
            "lists": "",
        },
    ]
    return save(book), expected


def zip_of(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_bomb(unzipped_bytes: int) -> bytes:
    """A real workbook with one more member of unzipped_bytes zeros (it compresses ~1000:1)."""
    data = xlsx(Sheet("Caselle", [MAILBOX_HEADER, ["a@rossi.example", "Segreta-2026!"]]))
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xl/media/padding.bin", "w") as member:
            chunk = b"\0" * (1024 * 1024)
            left = unzipped_bytes
            while left > 0:
                member.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    return out.getvalue()


def lying_zip_bomb(unzipped_bytes: int) -> bytes:
    """zip_bomb whose headers declare the big member as 1 byte long."""
    data = bytearray(zip_bomb(unzipped_bytes))
    name = b"xl/media/padding.bin"
    # Local header: uncompressed size at offset 22; central directory entry: at offset 24.
    local = data.find(b"PK\x03\x04")
    while local != -1:
        if data[local + 30 : local + 30 + len(name)] == name:
            struct.pack_into("<I", data, local + 22, 1)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        if data[central + 46 : central + 46 + len(name)] == name:
            struct.pack_into("<I", data, central + 24, 1)
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def _ole2(stream_names: Sequence[str]) -> bytes:
    """A minimal OLE2 compound file: header, and a directory sector naming the streams (as the
    old .xls and the password-protected .xlsx are)."""
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHH", header, 24, 0x3E, 3, 0xFFFE, 9)
    directory = bytearray()
    for name in ["Root Entry", *stream_names]:
        entry = bytearray(128)
        encoded = name.encode("utf-16-le")
        entry[: len(encoded)] = encoded
        struct.pack_into("<H", entry, 64, len(encoded) + 2)
        entry[66] = 5 if name == "Root Entry" else 2
        directory += entry
    directory += b"\0" * (-len(directory) % 512)
    return bytes(header) + bytes(directory)


def xls_bytes() -> bytes:
    return _ole2(["Workbook", "\x05SummaryInformation"])


def encrypted_xlsx_bytes() -> bytes:
    return _ole2(["EncryptionInfo", "EncryptedPackage", "\x06DataSpaces"])


def ods_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", b"application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        archive.writestr("content.xml", b"<office:document-content/>")
        archive.writestr("META-INF/manifest.xml", b"<manifest/>")
    return out.getvalue()
