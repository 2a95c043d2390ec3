"""The bulk-provisioning file layer: which sheet is which, each cell's text or its problem,
and every file refused as a whole with a message that says what to do."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import date, datetime
from datetime import time as clock_time

import pytest
from openpyxl import load_workbook

from app import create_app
from app.services import sheets
from app.services.errors import ValidationError
from app.services.migration import sheet as migration_sheet
from app.services.sheets import ALIASES, LISTS, MAILBOXES, FileRejected, read_upload, split_values
from tests import sheetkit
from tests.conftest import TEST_CONFIG
from tests.sheetkit import ALIAS_HEADER, LIST_HEADER, MAILBOX_HEADER, Sheet

CLASSES = ["Business Mail 100 MB", "Business Mail 1 GB", "Business Mail 5.000 MB"]


@pytest.fixture(scope="module")
def sheet_app():
    # No database here: the file layer never touches one.
    return create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.fixture(autouse=True)
def context(sheet_app):
    with sheet_app.test_request_context():
        yield sheet_app


def refused(data: bytes, filename: str = "caselle.xlsx", **limits) -> str:
    with pytest.raises(FileRejected) as caught:
        read_upload(data, filename, **limits)
    assert isinstance(caught.value, ValidationError)
    assert list(caught.value.errors) == ["file"]
    return caught.value.errors["file"]


def mailbox_rows(*rows, **sheet) -> bytes:
    return sheetkit.xlsx(Sheet("Caselle", [MAILBOX_HEADER, *rows], **sheet))


def values(row: sheets.SheetRow) -> dict[str, str]:
    return {f: c.value for f, c in row.cells.items()}


def the_cell(data: bytes, field: str, filename: str = "caselle.xlsx") -> sheets.Cell:
    book = read_upload(data, filename)
    assert len(book.rows) == 1
    return book.rows[0].cells[field]


# --- Files refused as a whole ---------------------------------------------------------------


def test_an_empty_file_is_refused():
    assert "vuoto" in refused(b"")


def test_a_file_over_the_size_limit_is_refused_with_the_limit_in_mb():
    data = mailbox_rows(["a@rossi.example", "Segreta-2026!"])
    assert "al massimo 1 MB" in refused(data + b"\0" * (1024 * 1024), max_bytes=1024 * 1024)
    assert read_upload(data, "caselle.xlsx", max_bytes=1024 * 1024).rows


def test_the_size_limit_comes_from_the_configuration(context):
    data = mailbox_rows(["a@rossi.example", "Segreta-2026!"])
    context.config["IMPORT_MAX_BYTES"] = 2 * 1024 * 1024
    try:
        assert "al massimo 2 MB" in refused(data + b"\0" * (2 * 1024 * 1024))
    finally:
        del context.config["IMPORT_MAX_BYTES"]


@pytest.mark.parametrize(
    "data, filename",
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "caselle.pdf"),
        (b"GIF89a\x01\x00", "foto.gif"),
        (sheetkit.zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}), "caselle.docx"),
    ],
)
def test_a_file_that_is_not_a_workbook_is_refused_naming_the_accepted_formats(data, filename):
    message = refused(data, filename)
    assert ".xlsx" in message and ".csv" in message


def test_an_old_xls_file_is_refused_asking_for_xlsx():
    message = refused(sheetkit.xls_bytes(), "caselle.xls")
    assert ".xls" in message and ".xlsx" in message and "password" not in message


def test_a_password_protected_workbook_is_refused_asking_to_remove_the_password():
    message = refused(sheetkit.encrypted_xlsx_bytes(), "caselle.xlsx")
    assert "protetto da password" in message


def test_an_ods_file_is_refused_asking_for_xlsx():
    assert ".ods" in refused(sheetkit.ods_bytes(), "caselle.ods")
    assert ".ods" in refused(sheetkit.ods_bytes(), "caselle.xlsx")  # the content decides, not the name


@pytest.mark.parametrize(
    "data, filename, says",
    [
        (sheetkit.encrypted_xlsx_bytes(), "migrazioni.xlsx", "protetto da password: toglila"),
        (sheetkit.xls_bytes(), "migrazioni.xls", "salvalo come Cartella di lavoro Excel (.xlsx)"),
        (b"not a zip at all", "migrazioni.xlsx", "danneggiato"),
    ],
)
def test_the_migrations_sheet_refuses_a_file_with_the_mailbox_imports_words(data, filename, says):
    with pytest.raises(FileRejected) as caught:
        migration_sheet.read(data, filename)
    assert caught.value.errors == {"file": refused(data, filename)}
    assert says in caught.value.errors["file"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],  # cut short
        lambda d: d[:-30] + b"\xff" * 30,  # central directory broken
        lambda d: sheetkit.zip_of({"[Content_Types].xml": b"<Types", "xl/workbook.xml": b"<workbook"}),
        lambda d: sheetkit.zip_of(
            {n: b"" if n.startswith("xl/worksheets/") else c for n, c in _members(d).items()}
        ),
        lambda d: sheetkit.zip_of(
            {n: c for n, c in _members(d).items() if n != "xl/_rels/workbook.xml.rels"}
        ),
        lambda d: b"not a zip at all",
    ],
)
def test_a_damaged_workbook_is_refused_without_a_traceback(damage):
    data = damage(mailbox_rows(["a@rossi.example", "Segreta-2026!"]))
    assert "danneggiato" in refused(data) or ".xlsx" in refused(data)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def test_a_zip_bomb_is_refused_before_it_is_unpacked():
    data = sheetkit.zip_bomb(3 * 1024 * 1024)
    assert len(data) < 100_000
    assert "decompresso è troppo grande" in refused(data, max_unzipped=2 * 1024 * 1024)


def test_a_zip_bomb_with_lying_sizes_is_refused_too():
    data = sheetkit.lying_zip_bomb(3 * 1024 * 1024)
    message = refused(data, max_unzipped=2 * 1024 * 1024)
    assert "troppo grande" in message or "danneggiato" in message


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>Account</t></is></c><c r="B1" t="inlineStr"><is><t>Password</t></is></c></row>'
    b'<row r="2"><c r="A2" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
)


@pytest.mark.parametrize(
    "part", ["xl/worksheets/sheet1.xml", "xl/sharedStrings.xml", "xl/styles.xml", "xl/workbook.xml"]
)
def test_xml_with_a_dtd_or_entities_is_refused_not_expanded(part):
    members = _members(mailbox_rows(["a@rossi.example", "Segreta-2026!"]))
    assert part in members or part == "xl/sharedStrings.xml"  # read whenever the file has one
    members[part] = LAUGHS
    began = time.perf_counter()
    assert "danneggiato" in refused(sheetkit.zip_of(members))
    assert time.perf_counter() - began < 2


def test_inline_strings_rich_text_and_cells_without_references_are_read():
    members = _members(mailbox_rows(["a@rossi.example", "Segreta-2026!"]))
    members["xl/worksheets/sheet1.xml"] = (
        b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row><c t="inlineStr"><is><t>Account</t></is></c><c t="inlineStr"><is><t>Password</t></is></c>'
        b'<c t="inlineStr"><is><t>Classe di servizio</t></is></c></row>'
        b'<row><c t="inlineStr"><is><r><t>mario.</t></r><r><t>rossi@rossi.example</t></r></is></c>'
        b'<c t="inlineStr"><is><t xml:space="preserve">Segreta-2026!</t></is></c><c><v>5000</v></c></row>'
        b"</sheetData></worksheet>"
    )
    book = read_upload(sheetkit.zip_of(members), "caselle.xlsx")
    assert [values(r) for r in book.rows][0] | {} == {
        "address": "mario.rossi@rossi.example",
        "password": "Segreta-2026!",
        "service_class": "5000",
    } | {k: v for k, v in values(book.rows[0]).items() if k not in ("address", "password", "service_class")}
    assert book.rows[0].row == 2


def test_a_zip_of_too_many_members_is_refused():
    members = {"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}
    members |= {f"xl/media/{i}.bin": b"" for i in range(1001)}
    refused(sheetkit.zip_of(members))


def test_more_rows_than_the_maximum_are_refused_naming_the_maximum():
    rows = [[f"u{i}@rossi.example", "Segreta-2026!"] for i in range(4)]
    assert "al massimo 3 righe" in refused(mailbox_rows(*rows), max_rows=3)
    assert len(read_upload(mailbox_rows(*rows), "c.xlsx", max_rows=4).rows) == 4


def test_the_row_maximum_counts_every_sheet_and_is_written_with_thousands():
    rows = [[f"u{i}@rossi.example", "Segreta-2026!"] for i in range(600)]
    aliases = [[f"a{i}@rossi.example", "u1@rossi.example"] for i in range(401)]
    data = sheetkit.xlsx(Sheet("Caselle", [MAILBOX_HEADER, *rows]), Sheet("Alias", [ALIAS_HEADER, *aliases]))
    assert "al massimo 1.000 righe" in refused(data, max_rows=1000)


def test_a_workbook_without_a_recognised_sheet_is_refused_naming_the_expected_headers():
    data = sheetkit.xlsx(Sheet("Foglio1", [["Cliente", "Importo"], ["Rossi", 10]]))
    message = refused(data)
    assert "Account" in message and "Alias" in message and "Lista" in message


def test_a_workbook_with_headers_but_no_data_rows_is_refused():
    data = sheetkit.xlsx(Sheet("Caselle", [MAILBOX_HEADER, [None, None], ["  ", "\u00a0"]]))
    assert "non contiene righe" in refused(data)


# --- Headers --------------------------------------------------------------------------------


def test_the_guides_messy_file_is_read_as_meant():
    data, expected = sheetkit.messy_workbook()
    book = read_upload(data, "Rossi caselle.xlsx")
    assert book.problems == [] and book.ignored == []
    [info] = book.sheets
    assert (info.name, info.kind, info.header_row, info.rows) == ("Foglio1", MAILBOXES, 4, 3)
    assert info.columns == {
        "display_name": "B",
        "address": "C",
        "service_class": "D",
        "password": "F",
        "aliases": "G",
        "lists": "H",
    }
    got = [{"row": str(r.row), **values(r)} for r in book.rows]
    assert got == expected
    assert split_values(book.rows[0].value("aliases")) == ["m.rossi@rossi.example", "mario@rossi.example"]
    assert split_values(book.rows[1].value("aliases")) == ["anna@rossi.example", "a.bianchi@rossi.example"]
    assert split_values(book.rows[0].value("lists")) == [
        "info@rossi.example",
        "amministrazione@rossi.example",
    ]
    assert book.rows[0].value("generate_password") == "" and book.rows[0].column("generate_password") is None
    assert book.rows[0].column("address") == "C"


@pytest.mark.parametrize(
    "header, field",
    [
        ("E-mail", "address"),
        ("Indirizzo e-mail", "address"),
        ("UTENTE", "address"),
        ("Email address", "address"),
        ("Nome visualizzato ", "display_name"),
        ("Nominativo", "display_name"),
        ("Full name", "display_name"),
        ("CLASSE DI SERVIZIO", "service_class"),
        ("Classe di servizio (CoS)", "service_class"),
        ("Tipologia", "service_class"),
        ("Class of service", "service_class"),
        ("Password iniziale", "password"),
        ("PWD", "password"),
        ("Genera password?", "generate_password"),
        ("Altri indirizzi", "aliases"),
        ("Liste di distribuzione", "lists"),
        ("Distribution lists", "lists"),
    ],
)
def test_mailbox_headers_are_recognised_in_italian_and_english_whatever_their_form(header, field):
    base = {"address": "Account", "service_class": "Classe"}
    headers = [header] + [h for f, h in base.items() if f != field]
    data = sheetkit.xlsx(Sheet("S", [headers, ["x"] + [None] * (len(headers) - 1)]))
    book = read_upload(data, "s.xlsx")
    assert book.sheets[0].kind == MAILBOXES
    assert book.sheets[0].columns[field] == "A"


def test_casella_is_the_address_on_a_mailbox_sheet_and_the_target_on_an_alias_sheet():
    data = sheetkit.xlsx(
        Sheet(
            "Uno",
            [["Casella", "Password", "Alias"], ["mario@rossi.example", "Segreta-2026!", "m@rossi.example"]],
        ),
        Sheet("Due", [["Alias", "Casella"], ["info@rossi.example", "mario@rossi.example"]]),
    )
    book = read_upload(data, "x.xlsx")
    assert [(s.name, s.kind) for s in book.sheets] == [("Uno", MAILBOXES), ("Due", ALIASES)]
    assert values(book.rows[0]) == {
        "address": "mario@rossi.example",
        "password": "Segreta-2026!",
        "aliases": "m@rossi.example",
    }
    assert values(book.rows[1]) == {"alias": "info@rossi.example", "mailbox": "mario@rossi.example"}


def test_lista_is_the_list_on_a_list_sheet_and_a_membership_on_a_mailbox_sheet():
    data = sheetkit.xlsx(
        Sheet(
            "Liste",
            [["Descrizione", "Membri", "Lista"], ["Vendite", "a@r.example; b@r.example", "v@r.example"]],
        ),
        Sheet(
            "Caselle", [["Email", "Classe", "Lista"], ["a@r.example", "Business Mail 1 GB", "v@r.example"]]
        ),
    )
    book = read_upload(data, "x.xlsx")
    assert [(s.name, s.kind) for s in book.sheets] == [("Liste", LISTS), ("Caselle", MAILBOXES)]
    assert values(book.rows[0]) == {
        "description": "Vendite",
        "members": "a@r.example; b@r.example",
        "list": "v@r.example",
    }
    assert values(book.rows[1]) == {
        "address": "a@r.example",
        "service_class": "Business Mail 1 GB",
        "lists": "v@r.example",
    }


def test_first_and_last_name_columns_make_the_display_name():
    data = sheetkit.xlsx(
        Sheet(
            "Caselle",
            [
                ["Nome", "Cognome", "Email", "Password"],
                ["Mario ", "Rossi", "mario@r.example", "Segreta-2026!"],
                [None, "Bianchi", "bianchi@r.example", "Segreta-2026!"],
            ],
        )
    )
    book = read_upload(data, "x.xlsx")
    assert book.sheets[0].columns["display_name"] == "A"
    assert [r.value("display_name") for r in book.rows] == ["Mario Rossi", "Bianchi"]
    assert book.rows[0].column("display_name") == "A"
    assert "first_name" not in book.rows[0].cells and "last_name" not in book.rows[0].cells


def test_nome_alone_is_the_display_name_and_a_display_name_column_wins_over_first_and_last():
    data = sheetkit.xlsx(
        Sheet("A", [["Nome", "Email", "Password"], ["Mario Rossi", "m@r.example", "Segreta-2026!"]]),
        Sheet(
            "B",
            [
                ["Nome", "Cognome", "Nome visualizzato", "Email", "Password"],
                ["Mario", "Rossi", "Ufficio acquisti", "u@r.example", "Segreta-2026!"],
            ],
        ),
    )
    book = read_upload(data, "x.xlsx")
    assert [r.value("display_name") for r in book.rows] == ["Mario Rossi", "Ufficio acquisti"]


def test_a_repeated_column_is_a_problem_naming_both_cells():
    data = sheetkit.xlsx(
        Sheet(
            "Caselle",
            [
                ["Account", "Password", "Nome", "Password"],
                ["a@r.example", "Segreta-2026!", "A", "Altra-2026!"],
            ],
            start_row=3,
        )
    )
    book = read_upload(data, "x.xlsx")
    [problem] = book.problems
    assert (problem.sheet, problem.row, problem.column) == ("Caselle", 3, "D")
    assert "B3" in problem.message and "D3" in problem.message
    assert book.rows[0].value("password") == "Segreta-2026!"


def test_sheets_without_a_header_are_ignored_by_name_and_a_header_below_row_30_is_not_looked_for():
    data = sheetkit.xlsx(
        Sheet("Istruzioni", [["Come compilare"], ["Account: l'indirizzo completo"]]),
        Sheet("Caselle", [MAILBOX_HEADER, ["a@r.example", "Segreta-2026!"]]),
        Sheet("Tardi", [MAILBOX_HEADER, ["b@r.example", "Segreta-2026!"]], start_row=31),
    )
    book = read_upload(data, "x.xlsx")
    assert book.ignored == ["Istruzioni", "Tardi"]
    assert [r.value("address") for r in book.rows] == ["a@r.example"]


def test_data_rows_keep_their_real_row_numbers_and_skip_empty_rows():
    data = sheetkit.xlsx(
        Sheet(
            "Caselle",
            [
                ["Titolo"],
                MAILBOX_HEADER,
                ["a@r.example", "Segreta-2026!"],
                [None, None, None, None, None, "nota in una colonna non letta"],
                [],
                [" ", None, None, "Business Mail 1 GB"],
            ],
        )
    )
    book = read_upload(data, "x.xlsx")
    assert [(r.row, r.value("address"), r.value("service_class")) for r in book.rows] == [
        (3, "a@r.example", ""),
        (6, "", "Business Mail 1 GB"),
    ]
    assert book.sheets[0].rows == 2


def test_rows_past_a_wrong_dimension_in_the_file_are_read():
    data = mailbox_rows(*[[f"u{i}@r.example", "Segreta-2026!"] for i in range(5)])
    members = _members(data)
    path = "xl/worksheets/sheet1.xml"
    members[path] = members[path].replace(b'<dimension ref="A1:E6" />', b'<dimension ref="A1:B2" />')
    assert b'<dimension ref="A1:B2" />' in members[path]
    assert len(read_upload(sheetkit.zip_of(members), "x.xlsx").rows) == 5


# --- Cells ----------------------------------------------------------------------------------


def test_text_is_stripped_of_spaces_nbsp_and_tabs_and_keeps_its_case():
    cell = the_cell(mailbox_rows(["\u00a0\tMario.Rossi@Rossi.Example \u00a0", "Segreta-2026!"]), "address")
    assert (cell.column, cell.value, cell.problem) == ("A", "Mario.Rossi@Rossi.Example", None)


def test_a_number_where_text_is_expected_is_a_problem_that_never_shows_a_password():
    book = read_upload(mailbox_rows([12345, 87654321, 3.5]), "x.xlsx")
    row = book.rows[0]
    for field in ("address", "password", "display_name"):
        assert row.cells[field].value == ""
        assert "numero" in row.cells[field].problem and "Testo" in row.cells[field].problem
    assert all("87654321" not in (c.problem or "") for c in row.cells.values())
    assert all("87654321" not in p.message for p in book.problems)


def test_the_class_column_takes_a_number_as_text():
    rows = [["a@r.example", "Segreta-2026!", None, 5000], ["b@r.example", "Segreta-2026!", None, 100.0]]
    book = read_upload(mailbox_rows(*rows), "x.xlsx")
    assert [(r.value("service_class"), r.cells["service_class"].problem) for r in book.rows] == [
        ("5000", None),
        ("100", None),
    ]


@pytest.mark.parametrize("value", [date(2026, 1, 5), datetime(2026, 1, 5, 9, 30), clock_time(9, 30)])
def test_a_date_or_time_is_a_problem(value):
    cell = the_cell(mailbox_rows(["a@r.example", "Segreta-2026!", value]), "display_name")
    assert cell.value == "" and "data" in cell.problem


def test_a_formula_is_a_problem_asking_for_the_value():
    cell = the_cell(mailbox_rows(['=CONCAT("a","@r.example")', "Segreta-2026!"]), "address")
    assert cell.value == "" and "formula" in cell.problem and "scrivi il valore" in cell.problem


def test_an_error_value_is_a_problem():
    cell = the_cell(mailbox_rows(["a@r.example", "Segreta-2026!", "#N/A"]), "display_name")
    assert cell.value == "" and "errore" in cell.problem


def test_a_true_false_value_in_a_text_column_is_a_problem():
    cell = the_cell(mailbox_rows(["a@r.example", True]), "password")
    assert cell.value == "" and cell.problem


@pytest.mark.parametrize(
    "given, expected",
    [
        ("Sì", "1"),
        ("si", "1"),
        ("SI", "1"),
        ("Yes", "1"),
        ("y", "1"),
        ("x", "1"),
        ("X", "1"),
        ("1", "1"),
        ("true", "1"),
        ("VERO", "1"),
        (True, "1"),
        (1, "1"),
        (None, ""),
        ("  ", ""),
        ("No", ""),
        ("n", ""),
        ("0", ""),
        (0, ""),
        ("false", ""),
        ("Falso", ""),
        (False, ""),
    ],
)
def test_generate_password_reads_yes_and_no_in_their_many_forms(given, expected):
    cell = the_cell(mailbox_rows(["a@r.example", None, None, None, given]), "generate_password")
    assert (cell.value, cell.problem) == (expected, None)


@pytest.mark.parametrize("given", ["forse", 2, "=TRUE()", date(2026, 1, 1)])
def test_generate_password_refuses_anything_else(given):
    cell = the_cell(mailbox_rows(["a@r.example", None, None, None, given]), "generate_password")
    assert cell.value == "" and cell.problem


def test_split_values_takes_commas_semicolons_and_new_lines():
    assert split_values("a@x, b@x; c@x\nd@x") == ["a@x", "b@x", "c@x", "d@x"]
    assert split_values(" a@x ,, ;\r\n\u00a0b@x;") == ["a@x", "b@x"]
    assert split_values("") == []


# --- Merged cells ---------------------------------------------------------------------------


def test_merged_cells_over_the_data_are_a_problem_and_mark_their_cells():
    rows = [["Elenco"], [], [], MAILBOX_HEADER] + [
        [f"u{i}@r.example", "Segreta-2026!", None, "Business Mail 1 GB" if i == 0 else None] for i in range(5)
    ]
    data = sheetkit.xlsx(Sheet("Caselle", rows, merged=["A1:E1", "D5:D9"]))
    book = read_upload(data, "x.xlsx")
    [problem] = book.problems  # the title above the header is fine
    assert (problem.sheet, problem.row, problem.column) == ("Caselle", 5, "D")
    assert "D5:D9" in problem.message
    assert [r.row for r in book.rows] == [5, 6, 7, 8, 9]
    for row in book.rows:
        cell = row.cells["service_class"]
        assert cell.value == "" and "unita" in cell.problem
        assert row.cells["address"].problem is None


def test_a_huge_merged_range_costs_no_more_than_the_rows_read():
    rows = [MAILBOX_HEADER, ["a@r.example", "Segreta-2026!"], ["b@r.example", "Segreta-2026!"]]
    data = sheetkit.xlsx(Sheet("Caselle", rows, raw_merged=["C2:XFD1048576"]))
    started = time.monotonic()
    book = read_upload(data, "x.xlsx")
    assert time.monotonic() - started < 2
    assert [p.message for p in book.problems] == [
        "Celle unite C2:XFD1048576: separale e scrivi il valore in ogni riga."
    ]
    assert [r.row for r in book.rows] == [2, 3]
    assert all(r.cells["display_name"].problem for r in book.rows)
    assert all(r.cells["generate_password"].problem for r in book.rows)


# --- CSV ------------------------------------------------------------------------------------


def test_a_csv_with_semicolons_and_a_bom_is_read_as_one_sheet_named_after_the_file():
    rows = [
        ["Account", "Password", "Nome visualizzato", "Classe di servizio", "Genera password"],
        ["à.rossi@r.example", "", "Niccolò Rossi", "Business Mail 5.000 MB", "Sì"],
        ["b@r.example", "Segreta;2026", "B, C", "5000", ""],
    ]
    book = read_upload(sheetkit.csv_bytes(rows, delimiter=";", bom=True), "Nuove caselle.csv")
    [info] = book.sheets
    assert (info.name, info.kind, info.header_row) == ("Nuove caselle", MAILBOXES, 1)
    assert [values(r) for r in book.rows] == [
        {
            "address": "à.rossi@r.example",
            "password": "",
            "display_name": "Niccolò Rossi",
            "service_class": "Business Mail 5.000 MB",
            "generate_password": "1",
        },
        {
            "address": "b@r.example",
            "password": "Segreta;2026",
            "display_name": "B, C",
            "service_class": "5000",
            "generate_password": "",
        },
    ]
    assert [r.row for r in book.rows] == [2, 3]


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_csv_with_commas_or_tabs_in_windows_encoding(delimiter):
    rows = [
        ["Lista", "Membri", "Descrizione"],
        ["vendite@r.example", "a@r.example, b@r.example", "Perché sì"],
    ]
    data = sheetkit.csv_bytes(rows, delimiter=delimiter, encoding="cp1252")
    book = read_upload(data, "liste.csv")
    assert book.sheets[0].kind == LISTS
    assert values(book.rows[0]) == {
        "list": "vendite@r.example",
        "members": "a@r.example, b@r.example",
        "description": "Perché sì",
    }


def test_a_csv_formula_is_plain_text():
    rows = [ALIAS_HEADER, ["=1+1", "a@r.example"]]
    assert the_cell(sheetkit.csv_bytes(rows), "alias", "a.csv").value == "=1+1"


def test_a_csv_past_the_row_maximum_is_refused():
    rows = [ALIAS_HEADER] + [[f"a{i}@r.example", "b@r.example"] for i in range(11)]
    assert "al massimo 10 righe" in refused(sheetkit.csv_bytes(rows), "a.csv", max_rows=10)


# --- The template ---------------------------------------------------------------------------


def test_the_empty_template_reads_as_no_rows_and_nothing_else():
    data = sheets.template(CLASSES)
    assert "non contiene righe" in refused(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        book = sheets.read_sheets(archive, sheets.Reader(10))
    assert book.rows == [] and book.problems == []
    assert [(s.name, s.kind) for s in book.sheets] == [
        ("Caselle", MAILBOXES),
        ("Alias", ALIASES),
        ("Liste", LISTS),
    ]
    assert book.ignored == ["Istruzioni", "Classi"]


def test_the_template_offers_the_classes_in_a_drop_down_and_keeps_passwords_as_text():
    book = load_workbook(io.BytesIO(sheets.template(CLASSES)))
    assert book.sheetnames == ["Caselle", "Alias", "Liste", "Istruzioni", "Classi"]
    mailboxes, classes = book["Caselle"], book["Classi"]
    assert [c.value for c in mailboxes[1]] == MAILBOX_HEADER
    assert all(c.font.b for c in mailboxes[1])
    assert mailboxes.freeze_panes == "A2"
    assert mailboxes.column_dimensions["B"].number_format == "@"
    assert mailboxes.column_dimensions["A"].width >= 30
    assert classes.sheet_state == "hidden"
    assert [r[0].value for r in classes.iter_rows()] == CLASSES
    [class_list] = [v for v in mailboxes.data_validations.dataValidation if "D2" in str(v.sqref)]
    assert class_list.type == "list" and class_list.formula1 == "'Classi'!$A$1:$A$3"
    assert str(class_list.sqref) == "D2:D10001"
    assert class_list.showErrorMessage and class_list.errorStyle == "stop" and class_list.error
    assert [c.value for c in book["Alias"][1]] == ALIAS_HEADER
    assert [c.value for c in book["Liste"][1]] == LIST_HEADER
    guide = "\n".join(str(r[0].value or "") for r in book["Istruzioni"].iter_rows())
    for words in ("8 caratteri", "Genera password", "virgole", "20.000", "10 MB"):
        assert words in guide


def test_a_filled_template_reads_back_exactly():
    mailboxes = [
        ["mario@rossi.example", "Primavera-2026!", "Mario Rossi", "Business Mail 1 GB", None],
        ["anna@rossi.example", None, "Anna", "Business Mail 100 MB", "Sì"],
        ["00123@rossi.example", "00123456", None, "Business Mail 5.000 MB", None],
    ]
    aliases = [["info@rossi.example", "mario@rossi.example"]]
    lists = [["tutti@rossi.example", "mario@rossi.example\nanna@rossi.example", "Tutto l'ufficio"]]
    data = sheetkit.filled_template(CLASSES, mailboxes=mailboxes, aliases=aliases, lists=lists)
    book = read_upload(data, "modello.xlsx")
    assert book.problems == []
    got = {(r.kind, r.row): values(r) for r in book.rows}
    assert got == {
        (MAILBOXES, 2): {
            "address": "mario@rossi.example",
            "password": "Primavera-2026!",
            "display_name": "Mario Rossi",
            "service_class": "Business Mail 1 GB",
            "generate_password": "",
        },
        (MAILBOXES, 3): {
            "address": "anna@rossi.example",
            "password": "",
            "display_name": "Anna",
            "service_class": "Business Mail 100 MB",
            "generate_password": "1",
        },
        (MAILBOXES, 4): {
            "address": "00123@rossi.example",
            "password": "00123456",
            "display_name": "",
            "service_class": "Business Mail 5.000 MB",
            "generate_password": "",
        },
        (ALIASES, 2): {"alias": "info@rossi.example", "mailbox": "mario@rossi.example"},
        (LISTS, 2): {
            "list": "tutti@rossi.example",
            "members": "mario@rossi.example\nanna@rossi.example",
            "description": "Tutto l'ufficio",
        },
    }


def test_the_english_template_headers_are_recognised_too():
    data = sheetkit.xlsx(
        Sheet(
            "Mailboxes",
            [
                ["Account", "Password", "Display name", "Service class", "Generate password"],
                ["a@r.example", None, None, None, "Yes"],
            ],
        ),
        Sheet("Aliases", [["Alias", "Mailbox"], ["b@r.example", "a@r.example"]]),
        Sheet("Lists", [["List", "Member", "Description"], ["l@r.example", "a@r.example", None]]),
    )
    book = read_upload(data, "x.xlsx")
    assert [s.kind for s in book.sheets] == [MAILBOXES, ALIASES, LISTS]
    assert book.rows[0].value("generate_password") == "1"


# --- Writing --------------------------------------------------------------------------------


def test_write_workbook_writes_strings_that_look_like_formulas_as_text():
    risky = ['=HYPERLINK("http://evil.example","clic")', "+39 02 1234", "-1", "@SUM(A1)", "\tcmd", "\rx"]
    data = sheets.write_workbook(
        [("Caselle", ["Account", "Nome visualizzato", "Quota MB"], [["a@r.example", v, 100] for v in risky])]
    )
    ws = load_workbook(io.BytesIO(data))["Caselle"]
    assert [c.value for c in ws[1]] == ["Account", "Nome visualizzato", "Quota MB"]
    assert all(c.font.b for c in ws[1]) and ws.freeze_panes == "A2"
    cells = [ws.cell(row=r, column=2) for r in range(2, 2 + len(risky))]
    # XML reads a bare carriage return in text as a line feed; the point is that it is text.
    assert [c.value for c in cells] == [v.replace("\r", "\n") for v in risky]
    assert {c.data_type for c in cells} == {"s"}
    assert ws.cell(row=2, column=3).value == 100


def test_write_workbook_output_reads_back_through_read_upload():
    data = sheets.write_workbook(
        [
            (
                "Caselle",
                MAILBOX_HEADER,
                [["a@r.example", "=1+1", '=HYPERLINK("x")', "Business Mail 1 GB", "Sì"]],
            ),
            ("Alias", ALIAS_HEADER, iter([("b@r.example", "a@r.example")])),
        ]
    )
    book = read_upload(data, "export.xlsx")
    assert values(book.rows[0])["display_name"] == '=HYPERLINK("x")'
    assert values(book.rows[0])["password"] == "=1+1"
    assert values(book.rows[1]) == {"alias": "b@r.example", "mailbox": "a@r.example"}


def test_a_file_of_100000_rows_is_refused_quickly_naming_the_maximum():
    from openpyxl import Workbook as Book

    book = Book(write_only=True)
    ws = book.create_sheet("Caselle")
    ws.append(MAILBOX_HEADER)
    for i in range(100_000):
        ws.append([f"u{i}@rossi.example", "Segreta-2026!", f"U {i}", "Business Mail 100 MB"])
    out = io.BytesIO()
    book.save(out)
    began = time.perf_counter()
    message = refused(out.getvalue())
    assert "20.000" in message
    assert time.perf_counter() - began < 10  # it stops at the first row past the maximum


def _with_part(part: str, xml: bytes) -> bytes:
    members = _members(mailbox_rows(["a@rossi.example", "Segreta-2026!"]))
    members[part] = xml
    return sheetkit.zip_of(members)


MAIN_NS = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def test_a_small_file_of_millions_of_strings_is_refused_before_it_ties_up_the_panel():
    strings = b"<sst " + MAIN_NS + b">" + b"<si><t>ab</t></si>" * 2_000_000 + b"</sst>"
    data = _with_part("xl/sharedStrings.xml", strings)
    assert len(data) < 1_000_000
    began = time.perf_counter()
    assert "troppe celle o troppo testo" in refused(data)
    assert time.perf_counter() - began < 10


def test_a_sheet_of_millions_of_empty_rows_is_refused_before_it_ties_up_the_panel():
    sheet = (
        b"<worksheet " + MAIN_NS + b"><sheetData>"
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>Account</t></is></c>'
        b'<c r="B1" t="inlineStr"><is><t>Password</t></is></c></row>'
        + b"<row/>" * 3_000_000
        + b"</sheetData></worksheet>"
    )
    data = _with_part("xl/worksheets/sheet1.xml", sheet)
    began = time.perf_counter()
    assert "troppe celle o troppo testo" in refused(data)
    assert time.perf_counter() - began < 10


def test_reading_stops_at_its_time_limit(monkeypatch):
    monkeypatch.setattr(sheets, "READ_SECONDS", -1)
    assert "troppe celle o troppo testo" in refused(mailbox_rows(["a@rossi.example", "Segreta-2026!"]))
