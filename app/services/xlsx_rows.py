"""The cells of an .xlsx, streamed straight from its XML: values and kinds, nothing else.

A sheet of 15,000 rows reads in a fraction of the time openpyxl's read-only mode takes
(which builds a cell object per value): here one expat pass per part, a list per row.
What it gives per cell is (value, kind), kind as openpyxl names them: "s" text, "n"
number, "d" a number formatted as a date or time, "b" logical, "e" error, "f" formula.

The XML is parsed with expat, refusing any DTD or entity declaration (what defusedxml
refuses): a file cannot expand entities into gigabytes or reach outside itself. The zip
members' real sizes are the caller's to check before (app/services/sheets.py does).
"""

from __future__ import annotations

import posixpath
import time
import zipfile
from collections.abc import Iterator
from xml.parsers import expat

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format

from app.services import safexml

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CHUNK = 1 << 16


class BadPart(ValueError):
    """A part of the file is not what an .xlsx has there."""


class TooComplex(ValueError):
    """The file holds far more than any sheet of accounts (strings, rows, cells), or its
    reading took longer than allowed: it is not read further."""


def _parser() -> expat.XMLParserType:
    return safexml.parser(BadPart)


def _feed(parser, archive: zipfile.ZipFile, path: str, deadline: float | None = None) -> Iterator[None]:
    """Parse one member chunk by chunk, yielding after each chunk (the handlers collect)."""
    with archive.open(path) as source:
        while chunk := source.read(CHUNK):
            if deadline is not None and time.monotonic() > deadline:
                raise TooComplex("reading took too long")
            parser.Parse(chunk, False)
            yield
        parser.Parse(b"", True)
        yield


def _parse(archive: zipfile.ZipFile, path: str, start=None, end=None, text=None, deadline=None) -> None:
    parser = _parser()
    if start:
        parser.StartElementHandler = start
    if end:
        parser.EndElementHandler = end
    if text:
        parser.CharacterDataHandler = text
    for _ in _feed(parser, archive, path, deadline):
        pass


def sheets(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(name, member path) of every worksheet, in the workbook's order."""
    found: list[tuple[str, str]] = []
    targets: dict[str, str] = {}

    def on_sheet(name, attrs):
        if name == f"{MAIN} sheet":
            found.append((attrs.get("name", ""), attrs.get(f"{REL} id", "")))

    def on_rel(name, attrs):
        if name == f"{PKG_REL} Relationship":
            targets[attrs.get("Id", "")] = attrs.get("Target", "")

    workbook = _workbook_path(archive)
    _parse(archive, workbook, start=on_sheet)
    folder = posixpath.dirname(workbook)
    rels = posixpath.join(folder, "_rels", posixpath.basename(workbook) + ".rels")
    _parse(archive, rels, start=on_rel)
    out = []
    for name, rid in found:
        target = targets.get(rid)
        if not target:
            continue
        path = (
            target.lstrip("/")
            if target.startswith("/")
            else posixpath.normpath(posixpath.join(folder, target))
        )
        if path in archive.NameToInfo:
            out.append((name, path))
    return out


def _workbook_path(archive: zipfile.ZipFile) -> str:
    found: list[str] = []
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"

    def on_rel(name, attrs):
        if name == f"{PKG_REL} Relationship" and attrs.get("Type") == office:
            found.append(attrs.get("Target", "").lstrip("/"))

    if "_rels/.rels" in archive.NameToInfo:
        _parse(archive, "_rels/.rels", start=on_rel)
    path = found[0] if found else "xl/workbook.xml"
    if path not in archive.NameToInfo:
        raise BadPart("no workbook part")
    return path


def _part(archive: zipfile.ZipFile, name: str) -> str | None:
    for candidate in (f"xl/{name}", name):
        if candidate in archive.NameToInfo:
            return candidate
    return None


def shared_strings(
    archive: zipfile.ZipFile, limit: int | None = None, deadline: float | None = None
) -> list[str]:
    """The workbook's shared strings; rich text runs joined, phonetic guides left out.
    More than `limit` of them: TooComplex."""
    path = _part(archive, "sharedStrings.xml")
    strings: list[str] = []
    if path is None:
        return strings
    state = {"in_t": False, "skip": 0, "parts": []}

    def start(name, _attrs):
        if name == f"{MAIN} t":
            state["in_t"] = True
        elif name == f"{MAIN} rPh":
            state["skip"] += 1
        elif name == f"{MAIN} si":
            state["parts"] = []

    def end(name):
        if name == f"{MAIN} t":
            state["in_t"] = False
        elif name == f"{MAIN} rPh":
            state["skip"] -= 1
        elif name == f"{MAIN} si":
            strings.append("".join(state["parts"]))
            if limit is not None and len(strings) > limit:
                raise TooComplex("too many strings")

    def text(data):
        if state["in_t"] and not state["skip"]:
            state["parts"].append(data)

    _parse(archive, path, start, end, text, deadline)
    return strings


def date_styles(archive: zipfile.ZipFile) -> set[int]:
    """The cell styles (their index, a cell's s="...") whose number format shows a date or a time."""
    path = _part(archive, "styles.xml")
    if path is None:
        return set()
    custom: dict[int, str] = {}
    xfs: list[int] = []
    depth = {"cellXfs": False}

    def start(name, attrs):
        if name == f"{MAIN} numFmt":
            try:
                custom[int(attrs.get("numFmtId", "-1"))] = attrs.get("formatCode", "")
            except ValueError:
                pass
        elif name == f"{MAIN} cellXfs":
            depth["cellXfs"] = True
        elif name == f"{MAIN} xf" and depth["cellXfs"]:
            try:
                xfs.append(int(attrs.get("numFmtId", "0")))
            except ValueError:
                xfs.append(0)

    def end(name):
        if name == f"{MAIN} cellXfs":
            depth["cellXfs"] = False

    _parse(archive, path, start, end)
    dates = set()
    for index, fmt_id in enumerate(xfs):
        code = custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id, "General"))
        if is_date_format(code):
            dates.add(index)
    return dates


def merged_ranges(archive: zipfile.ZipFile, path: str) -> list[str]:
    """The refs of the sheet's merged ranges ("B5:B9")."""
    refs: list[str] = []

    def start(name, attrs):
        if name == f"{MAIN} mergeCell":
            refs.append(attrs.get("ref", ""))

    _parse(archive, path, start)
    return refs


def _column_index(ref: str) -> int:
    n = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            n = n * 26 + (ord(ch) - 64)
        else:
            break
    return n


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "E" not in text.upper() else value


def rows(
    archive: zipfile.ZipFile,
    path: str,
    strings: list[str],
    dates: set[int],
    min_row: int = 1,
    max_col: int = 16384,
    max_rows: int | None = None,
    max_cells: int | None = None,
    deadline: float | None = None,
) -> Iterator[list[tuple[object, str]]]:
    """The sheet's rows from min_row on, one per sheet row (empty rows as []), each a list of
    (value, kind) from column A to at most max_col, empty cells as (None, "n"). More than
    max_rows row elements or max_cells cell elements walked (however empty): TooComplex."""
    ready: list[tuple[int, list]] = []
    st = {"row": 0, "cells": None, "col": 0, "t": "n", "s": 0, "f": False, "v": None, "buf": None}

    walked = {"row": 0, "c": 0}
    limit = {"row": max_rows, "c": max_cells}

    def start(name, attrs):
        tag = name.rpartition(" ")[2]
        if tag in walked:
            walked[tag] += 1
            if limit[tag] is not None and walked[tag] > limit[tag]:
                raise TooComplex(f"too many {tag} elements")
        if tag == "row":
            r = attrs.get("r")
            st["row"] = int(r) if r and r.isdigit() else st["row"] + 1
            st["cells"] = []
            st["col"] = 0
        elif tag == "c":
            ref = attrs.get("r", "")
            col = _column_index(ref) if ref else st["col"] + 1
            st["col"] = col
            st["t"] = attrs.get("t", "n")
            s = attrs.get("s")
            st["s"] = int(s) if s and s.isdigit() else 0
            st["f"] = False
            st["v"] = None
        elif tag in ("v", "t"):
            st["buf"] = []
        elif tag == "f":
            st["f"] = True

    def end(name):
        tag = name.rpartition(" ")[2]
        if tag in ("v", "t") and st["buf"] is not None:
            text = "".join(st["buf"])
            st["v"] = text if st["v"] is None or tag == "v" else st["v"] + text
            st["buf"] = None
        elif tag == "c":
            col = st["col"]
            if col > max_col or st["cells"] is None:
                return
            kind, raw = st["t"], st["v"]
            if st["f"]:
                value, data_type = raw, "f"
            elif raw is None:
                value, data_type = None, "n"
            elif kind == "s":
                try:
                    value, data_type = strings[int(raw)], "s"
                except (ValueError, IndexError):
                    value, data_type = None, "e"
            elif kind in ("str", "inlineStr"):
                value, data_type = raw, "s"
            elif kind == "b":
                value, data_type = raw.strip() in ("1", "true"), "b"
            elif kind == "e":
                value, data_type = raw, "e"
            else:
                value = _number(raw)
                data_type = "d" if st["s"] in dates else "n"
            cells = st["cells"]
            while len(cells) < col - 1:
                cells.append((None, "n"))
            if len(cells) == col - 1:
                cells.append((value, data_type))
        elif tag == "row":
            if st["row"] >= min_row:
                ready.append((st["row"], st["cells"]))
            st["cells"] = None

    def text(data):
        if st["buf"] is not None:
            st["buf"].append(data)

    parser = _parser()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.buffer_text = True
    expected = min_row
    for _ in _feed(parser, archive, path, deadline):
        for number, cells in ready:
            if number < expected:
                continue  # rows out of order: the first one written wins
            while expected < number:
                yield []
                expected += 1
            yield cells
            expected += 1
        ready.clear()
