"""A domain's migrations entered from a sheet: the service (all or nothing, every problem at its row and
column, the passwords sealed at once), the sealed preview, `flask migration import` and the API."""

from __future__ import annotations

import io
import logging
import time
import uuid
import zipfile

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from app.extensions import db
from app.models import AuditEvent, Migration
from app.services import domains, vault
from app.services.access import Actor
from app.services.errors import NotFound, PermissionDenied, ValidationError
from app.services.migration import migrations, sheet
from tests import factories

SECRET = "Vecchia-" + uuid.uuid4().hex[:10]


def _staff() -> Actor:
    return Actor.for_user(factories.staff(), via="api")


def _setup(*locals_: str):
    c = factories.customer(domain=f"foglio{uuid.uuid4().hex[:8]}.example")
    boxes = [factories.mailbox(c, local) for local in locals_]
    return c, domains.list_domains(factories.SYSTEM, c.id)[0], boxes


def _xlsx(rows: list[list[object]], title: str = "Migrazioni") -> bytes:
    book = Workbook()
    ws = book.active
    ws.title = title
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _count(domain_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Migration).where(Migration.domain_id == domain_id)
    )


def test_a_clean_csv_creates_every_draft_at_once_with_sealed_passwords(app, caplog):
    c, domain, (anna, bruno, carla) = _setup("anna", "bruno", "carla")
    staff = _staff()
    # Italian headers in a free order, ';' as Excel writes it in Italy, the local part or the address.
    csv = (
        "Vecchia password;Casella;Vecchio utente;Server;Porta;Sicurezza\r\n"
        f"{SECRET}1;anna;anna.old;;;\r\n"
        f"{SECRET}2;{bruno.address.upper()};bruno.old;imap.altro.it;143;STARTTLS\r\n"
        ";;;;;\r\n"  # a blank row is skipped
        f"{SECRET}3;carla;carla.old;;995;SSL/TLS\r\n"
    ).encode("cp1252")
    caplog.set_level(logging.DEBUG)
    defaults = {"host": "IMAP.Vecchio.IT", "security": "ssl", "verify_cert": "1"}
    preview, created = sheet.import_sheet(staff, domain.id, csv, "migra.csv", defaults, dry_run=True)
    assert preview.ok and created == [] and _count(domain.id) == 0  # a preview writes nothing
    shown = preview.to_dict()
    assert [
        (r["row"], r["mailbox"], r["username"], r["host"], r["port"], r["security"]) for r in shown["rows"]
    ] == [
        (2, anna.address, "anna.old", "imap.vecchio.it", 993, "ssl"),
        (3, bruno.address, "bruno.old", "imap.altro.it", 143, "starttls"),
        (5, carla.address, "carla.old", "imap.vecchio.it", 995, "ssl"),
    ]
    assert SECRET not in str(shown) and SECRET not in repr(preview.rows)

    preview, created = sheet.import_sheet(staff, domain.id, csv, "migra.csv", defaults)
    assert len(created) == 3 and _count(domain.id) == 3
    rows = db.session.scalars(
        sa.select(Migration).where(Migration.domain_id == domain.id).order_by(Migration.id)
    )
    for i, row in enumerate(rows, start=1):
        assert row.state == "draft" and row.verify_cert is True
        assert SECRET.encode() not in row.secret and vault.unseal_text(row.secret) == f"{SECRET}{i}"
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.customer_id == c.id, AuditEvent.action == "migration.create")
    ).all()
    assert len(events) == 3 and all("migra.csv" in str(e.changes) for e in events)
    assert SECRET not in str([e.changes for e in events]) and SECRET not in caplog.text

    # The same sheet again: every mailbox has its open migration now; nothing more is written.
    with pytest.raises(sheet.SheetInvalid) as again:
        sheet.import_sheet(staff, domain.id, csv, "migra.csv", defaults)
    assert {(e.row, e.column) for e in again.value.preview.errors} == {(2, "B"), (3, "B"), (5, "B")}
    assert _count(domain.id) == 3


def test_one_wrong_row_and_nothing_is_written_each_problem_at_its_row_and_column(app):
    c, domain, (anna, bruno, carla, dario, elena) = _setup("anna", "bruno", "carla", "dario", "elena")
    other, _, (foreign,) = _setup("zeno")
    staff = _staff()
    migrations.create(
        staff, domain.id, {"host": "x.it", "username": "u", "password": "p", "mailbox": elena.address}
    )
    data = _xlsx(
        [
            ["Elenco migrazioni"],  # a title above the header
            ["Mailbox", "Old username", "Old password", "Port"],
            ["anna", "anna.old", SECRET, 993],  # row 3: fine (the port as a number)
            ["bruno", "bruno.old", '=HYPERLINK("http://x")', None],  # row 4: a formula
            ["anna", "anna.bis", SECRET, None],  # row 5: anna twice
            [foreign.address, "z", SECRET, None],  # row 6: another customer's mailbox
            ["nessuno", "n", SECRET, None],  # row 7: no such mailbox
            ["carla", "carla.old", "a\r\nA1 DELETE INBOX", None],  # row 8: a line break in the password
            ["dario", "", SECRET, 70000],  # row 9: no username, a bad port
            ["elena", "elena.old", SECRET, None],  # row 10: an open migration already
        ]
    )
    with pytest.raises(sheet.SheetInvalid) as bad:
        sheet.import_sheet(staff, domain.id, data, "migra.xlsx", {"host": "imap.vecchio.it"})
    found = {(e.row, e.column, e.field) for e in bad.value.preview.errors}
    assert found == {
        (4, "C", "password"),
        (5, "A", "mailbox"),
        (6, "A", "mailbox"),
        (7, "A", "mailbox"),
        (8, "C", "password"),
        (9, "B", "username"),
        (9, "D", "port"),
        (10, "A", "mailbox"),
    }, found
    messages = {(e.row, e.field): e.message for e in bad.value.preview.errors}
    assert "formula" in messages[(4, "password")]
    assert "riga 3" in messages[(5, "mailbox")]
    assert domain.name in messages[(6, "mailbox")]
    assert "rows.6.mailbox" in bad.value.errors and bad.value.errors["rows.6.mailbox"].startswith(
        "Riga 6, colonna A"
    )
    assert _count(domain.id) == 1 and _count(domains.list_domains(factories.SYSTEM, other.id)[0].id) == 0

    # No server anywhere: one problem for the form's default, not one per row.
    with pytest.raises(sheet.SheetInvalid) as bad:
        sheet.import_sheet(
            staff, domain.id, _xlsx([["Casella", "Utente", "Password"], ["anna", "a", "p"]]), "x.xlsx"
        )
    assert set(bad.value.preview.form_errors) == {"host"} and bad.value.preview.errors == []
    # A missing column is said once, at the header.
    with pytest.raises(sheet.SheetInvalid) as bad:
        sheet.import_sheet(
            staff, domain.id, _xlsx([["Casella", "Utente"], ["anna", "a"]]), "x.xlsx", {"host": "h.it"}
        )
    assert [(e.row, e.column) for e in bad.value.preview.errors] == [(1, None)]
    assert bad.value.preview.errors[0].message.startswith("Manca la colonna Vecchia password")


def test_the_file_guards_and_the_row_cap(app, monkeypatch):
    from flask import current_app

    _, domain, _boxes = _setup("anna")
    staff = _staff()
    header = "casella,utente,password\n"
    too_many = (header + "".join(f"u{i},x,y\n" for i in range(2001))).encode()
    with pytest.raises(ValidationError) as big:
        sheet.check(staff, domain.id, too_many, "m.csv", {"host": "h.it"})
    assert "2.000" in big.value.errors["file"]
    for data, name in (
        (b"", "m.csv"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1xxxx", "m.xls"),
        (b"%PDF-1.4", "m.pdf"),
    ):
        with pytest.raises(ValidationError) as bad:
            sheet.check(staff, domain.id, data, name)
        assert set(bad.value.errors) == {"file"}
    # A zip that unpacks to far more than it weighs is refused before it is parsed.
    monkeypatch.setitem(current_app.config, "IMPORT_MAX_UNZIPPED", 1024 * 1024)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", "<" + "a" * (5 * 1024 * 1024) + "/>")
    with pytest.raises(ValidationError) as bad:
        sheet.check(staff, domain.id, bomb.getvalue(), "m.xlsx")
    assert "decompresso" in bad.value.errors["file"]
    with pytest.raises(ValidationError) as bad:  # a CSV without the expected headers
        sheet.check(staff, domain.id, b"nome,cognome\nMario,Rossi\n", "m.csv")
    assert "Casella" in bad.value.errors["file"]


def test_a_full_sheet_is_checked_quickly_and_its_sealed_preview_fits_a_form(app):
    _, domain, _boxes = _setup("anna")
    staff = _staff()
    rows = "".join(
        f"utente.numero.{i},vecchio.utente.{i}@vecchio.example,{uuid.uuid4().hex}\n" for i in range(2000)
    )
    started = time.monotonic()
    preview = sheet.check(
        staff, domain.id, ("casella,utente,password\n" + rows).encode(), "m.csv", {"host": "h.it"}
    )
    assert time.monotonic() - started < 30
    assert len(preview.errors) == 2000  # no such mailboxes
    token = sheet.seal_preview(staff, preview)
    assert len(token) < 400_000  # under a form field's 500 kB


def test_only_staff_and_never_another_tenant(app):
    c, domain, _boxes = _setup("anna")
    other, _, _ = _setup("zeno")
    data = b"casella,utente,password\nanna,a,p\n"
    with pytest.raises(NotFound):
        sheet.check(Actor.for_user(factories.admin(other)), domain.id, data, "m.csv", {"host": "h.it"})
    with pytest.raises(PermissionDenied):
        sheet.check(Actor.for_user(factories.admin(c)), domain.id, data, "m.csv", {"host": "h.it"})


def test_the_sealed_preview_creates_what_was_shown_for_its_user_domain_and_time_only(app, monkeypatch):
    _, domain, (anna,) = _setup("anna")
    _, other_domain, _ = _setup("anna")
    staff, colleague = _staff(), _staff()
    data = f"casella,utente,password\nanna,anna.old,{SECRET}\n".encode()
    preview = sheet.check(staff, domain.id, data, "m.csv", {"host": "h.it", "sync": "1"})
    token = sheet.seal_preview(staff, preview)
    assert SECRET not in token and SECRET.encode() not in token.encode()
    for who, where in ((colleague, domain.id), (staff, other_domain.id)):
        with pytest.raises(ValidationError):
            sheet.confirm(who, where, token)
    with pytest.raises(ValidationError):
        sheet.confirm(staff, domain.id, token[:-4] + "AAAA")  # altered
    monkeypatch.setattr(sheet.time, "time", lambda: time.monotonic() + 10**10)
    with pytest.raises(ValidationError):
        sheet.confirm(staff, domain.id, token)  # expired
    monkeypatch.undo()
    assert _count(domain.id) == 0
    created = sheet.confirm(staff, domain.id, token)
    assert [m.mailbox_id for m in created] == [anna.id] and vault.unseal_text(created[0].secret) == SECRET
    assert created[0].sync is True  # the sheet-wide choice travels sealed with the rows
    with pytest.raises(sheet.SheetInvalid):  # twice: the mailbox has its open migration
        sheet.confirm(staff, domain.id, token)
    assert _count(domain.id) == 1


def test_flask_migration_import(app, tmp_path):
    _, domain, (anna, bruno) = _setup("anna", "bruno")
    runner = app.test_cli_runner()
    bad = tmp_path / "migra.csv"
    bad.write_text(f"casella,utente,password\nanna,a,{SECRET}\nbruno,,{SECRET}\n")
    result = runner.invoke(args=["migration", "import", str(bad), "--domain", domain.name, "--host", "h.it"])
    assert result.exit_code == 2, result.output
    assert "Riga 3, colonna B" in result.output and SECRET not in result.output
    assert _count(domain.id) == 0
    good = tmp_path / "ok.csv"
    good.write_text(f"casella,utente,password\nanna,a,{SECRET}\nbruno,b,{SECRET}\n")
    args = [
        "migration",
        "import",
        str(good),
        "--domain",
        domain.name,
        "--host",
        "h.it",
        "--security",
        "starttls",
    ]
    result = runner.invoke(args=[*args, "--no-verify", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Riga 2: " + anna.address in result.output and _count(domain.id) == 0
    result = runner.invoke(args=[*args, "--no-verify", "--sync"])
    assert result.exit_code == 0, result.output
    assert bruno.address in result.output and SECRET not in result.output
    rows = db.session.scalars(sa.select(Migration).where(Migration.domain_id == domain.id)).all()
    assert {(r.port, r.security, r.verify_cert, r.sync) for r in rows} == {(143, "starttls", False, True)}
    result = runner.invoke(
        args=["migration", "import", str(good), "--domain", "nessuno.example", "--host", "h.it"]
    )
    assert result.exit_code != 0 and _count(domain.id) == 2


def test_the_api_previews_refuses_per_row_and_creates(app, client):
    from app.services import users
    from tests.web.test_openapi import _fits

    c, domain, (anna, bruno) = _setup("anna", "bruno")
    other, _, _ = _setup("zeno")
    doc = client.get("/api/v1/openapi.json").get_json()

    def token(user):
        return {"Authorization": f"Bearer {users.create_token(factories.SYSTEM, user, 'tests')[1]}"}

    staff, admin, stranger = (
        token(factories.staff()),
        token(factories.admin(c)),
        token(factories.admin(other)),
    )
    url = f"/api/v1/domains/{domain.id}/migrations/sheet"

    def post(headers, content: bytes, query: str = "", **form):
        form["file"] = (io.BytesIO(content), "migra.csv")
        return client.post(url + query, data=form, headers=headers, content_type="multipart/form-data")

    good = f"mailbox,old username,old password\nanna,a,{SECRET}\n{bruno.address},b,{SECRET}\n".encode()
    assert post(stranger, good, host="h.it").status_code == 404
    assert post(admin, good, host="h.it").status_code == 403
    wrong = f"mailbox,old username,old password\nanna,a,{SECRET}\nanna,b,x\n".encode()
    r = post(staff, wrong, host="h.it")
    assert r.status_code == 422 and "rows.3.mailbox" in r.get_json()["errors"]
    assert set(r.get_json()) == {"errors"} and all(
        isinstance(v, str) for v in r.get_json()["errors"].values()
    )
    r = post(staff, good, host="h.it", dry_run="true")
    assert r.status_code == 200 and r.get_json()["created"] == [] and _count(domain.id) == 0
    assert [x["mailbox"] for x in r.get_json()["rows"]] == [anna.address, bruno.address]
    _fits(doc, "/api/v1/domains/{domain_id}/migrations/sheet", "post", 200, r.get_json())
    r = post(staff, good, query="?host=h.it&port=1993&security=ssl&verify_cert=false", sync="true")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert SECRET not in r.get_data(as_text=True)
    assert [(m["mailbox"], m["port"], m["verify_cert"], m["state"], m["sync"]) for m in body["created"]] == [
        (anna.address, 1993, False, "draft", True),
        (bruno.address, 1993, False, "draft", True),
    ]
    _fits(doc, "/api/v1/domains/{domain_id}/migrations/sheet", "post", 201, body)
    r = post(staff, b"", host="h.it")
    assert r.status_code == 422 and "file" in r.get_json()["errors"]


def test_a_password_is_kept_exactly_as_written_spaces_and_invisible_characters_too(app):
    c, domain, (anna, bruno, carla) = _setup("anna", "bruno", "carla")
    staff = _staff()
    spaced, invisible = f"  {SECRET} ", f"\u200b{SECRET}\ufeff"
    csv = f"Casella,Vecchio utente,Vecchia password\nanna, anna.old ,{spaced}\nbruno,bruno.old,{invisible}\n"
    _preview, created = sheet.import_sheet(staff, domain.id, csv.encode(), "migra.csv", {"host": "imap.v.it"})
    by_box = {m.mailbox_id: m for m in created}
    assert vault.unseal_text(by_box[anna.id].secret) == spaced
    assert vault.unseal_text(by_box[bruno.id].secret) == invisible
    assert by_box[anna.id].username == "anna.old"  # the other cells are trimmed as ever
    # The same from an .xlsx, through the sealed preview the page uses.
    data = _xlsx([["Casella", "Vecchio utente", "Vecchia password"], ["carla", "carla.old", f"\t{SECRET}  "]])
    preview = sheet.check(staff, domain.id, data, "migra.xlsx", {"host": "imap.v.it"})
    assert preview.ok
    (made,) = sheet.confirm(staff, domain.id, sheet.seal_preview(staff, preview))
    assert vault.unseal_text(made.secret) == f"\t{SECRET}  "
    # A line break inside the password is still refused, at its cell; only blanks is no password.
    bad = f'Casella,Vecchio utente,Vecchia password\nanna,a,"{SECRET}\nx"\nbruno,b,"   "\n'
    with pytest.raises(sheet.SheetInvalid) as refused:
        sheet.import_sheet(staff, domain.id, bad.encode(), "migra.csv", {"host": "imap.v.it"})
    found = {(e.row, e.column, e.field) for e in refused.value.preview.errors}
    assert found == {(2, "C", "password"), (3, "C", "password")}, found  # rows as records


def test_a_utf8_file_with_a_bad_byte_is_refused_a_cp1252_file_is_read(app):
    c, domain, (anna, bruno) = _setup("anna", "bruno")
    staff = _staff()
    header = "Casella;Vecchio utente;Vecchia password\r\n"
    # Mostly UTF-8 (accented letters in the passwords), one byte that is not: not read as cp1252.
    utf8 = (
        (header + f"anna;anna.old;Città{SECRET}\r\n").encode()
        + f"bruno;bruno.old;{SECRET}".encode()
        + b"\xe8\r\n"
    )
    with pytest.raises(ValidationError) as refused:
        sheet.check(staff, domain.id, utf8, "migra.csv", {"host": "imap.v.it"})
    assert "UTF-8" in refused.value.errors["file"] and "riga 3" in refused.value.errors["file"]
    # A real cp1252 file (Excel's "CSV" in Italy): read as such, the accents intact.
    cp = (header + f"anna;anna.old;Città{SECRET}\r\nbruno;bruno.old;perché{SECRET}\r\n").encode("cp1252")
    _preview, created = sheet.import_sheet(staff, domain.id, cp, "migra.csv", {"host": "imap.v.it"})
    assert sorted(vault.unseal_text(m.secret) for m in created) == sorted(
        [f"Città{SECRET}", f"perché{SECRET}"]
    )
    assert _count(domain.id) == 2
