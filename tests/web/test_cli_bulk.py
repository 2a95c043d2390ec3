"""`flask bulk import|template`: the preview as text or JSON, applying without a worker, exit
codes, generated passwords written to a private new file, and bad input without a traceback."""

from __future__ import annotations

import io
import json
import os
import stat

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from app.extensions import db
from app.models import Import, Mailbox
from app.services import imports, passwords
from tests import factories, sheetkit

CLASS = "Business Mail 100 MB"
OTHER_CLASS = "Business Mail 5.000 MB"


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def customer(make):
    return make.customer("contract", {CLASS: 10}, name="Rossi Srl")


@pytest.fixture
def sheet(tmp_path, customer):
    d = factories.domain_of(customer)

    def write(*rows, name: str = "caselle.xlsx") -> str:
        path = tmp_path / name
        path.write_bytes(sheetkit.filled_template([CLASS], mailboxes=list(rows)))
        return str(path)

    write.domain = d
    write.good = [
        [f"mario@{d}", "Primavera-2026!", "Mario Rossi", CLASS, None],
        [f"anna@{d}", "Autunno-2026!", "Anna", CLASS, None],
    ]
    write.short = [f"corta@{d}", "abc", "Corta", CLASS, None]
    return write


def bulk(runner, *args):
    return runner.invoke(args=["bulk", *args])


def mailbox_addresses() -> set[str]:
    db.session.expire_all()
    return set(db.session.scalars(sa.select(Mailbox.address)))


def import_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Import))


def test_dry_run_json_is_the_preview_with_every_problem_and_applies_nothing(runner, customer, sheet):
    path = sheet(*sheet.good, sheet.short)
    r = bulk(runner, "import", path, "--customer", str(customer.id), "--dry-run", "--json")
    assert r.exit_code == 2, (r.output, r.stderr)
    out = json.loads(r.stdout)
    assert out["dry_run"] is True and out["filename"] == "caselle.xlsx"
    assert out["import"] == db.session.scalar(sa.select(Import.id))
    assert out["counts"]["mailbox"] == {"create": 2, "present": 0, "error": 1}
    assert out["to_create"] == 2 and out["problem_count"] == 1
    [problem] = out["errors"]
    assert set(problem) == {"sheet", "row", "column", "message"}
    assert (problem["sheet"], problem["row"], problem["column"]) == ("Caselle", 4, "B")
    assert "Primavera-2026!" not in r.output
    assert mailbox_addresses() == set()

    r = bulk(runner, "import", sheet(*sheet.good), "--customer", str(customer.id), "--dry-run", "--json")
    assert r.exit_code == 0, (r.output, r.stderr)
    assert json.loads(r.stdout)["errors"] == [] and mailbox_addresses() == set()


def test_the_text_preview_names_each_problem_cell(runner, customer, sheet):
    r = bulk(runner, "import", sheet(*sheet.good, sheet.short), "--customer", str(customer.id), "--dry-run")
    assert r.exit_code == 2
    assert "Casella: 2 da creare, 0 già presenti, 1 con problemi" in r.output
    line = next(line for line in r.output.splitlines() if "Foglio" in line)
    assert line.strip().startswith("Foglio Caselle, riga 4, colonna B: ")
    assert "password" in line.lower()


def test_import_applies_without_a_worker_and_exits_0(runner, app, customer, sheet):
    r = bulk(runner, "import", sheet(*sheet.good), "--customer", str(customer.id))
    assert r.exit_code == 0, (r.output, r.stderr)
    assert mailbox_addresses() == {f"mario@{sheet.domain}", f"anna@{sheet.domain}"}
    assert "Completata" in r.output and "Casella — creato: 2" in r.output
    mario = db.session.scalar(sa.select(Mailbox).where(Mailbox.address == f"mario@{sheet.domain}"))
    assert passwords.verify_mailbox_password(mario.password_hash, "Primavera-2026!")
    assert app.config.get("JOBS_INLINE", False) is False  # the command's own setting only
    # Again: everything is already there, nothing created twice, still 0.
    r = bulk(runner, "import", sheet(*sheet.good), "--customer", str(customer.id), "--json")
    assert r.exit_code == 0, (r.output, r.stderr)
    out = json.loads(r.stdout)
    assert out["applied"] is True and out["result"]["mailbox"] == {"present": 2}
    assert out["job"]["state"] == "done"
    assert len(mailbox_addresses()) == 2


def test_problems_refuse_to_apply_unless_valid_only_which_still_exits_non_zero(runner, customer, sheet):
    path = sheet(*sheet.good, sheet.short)
    r = bulk(runner, "import", path, "--customer", str(customer.id))
    assert r.exit_code == 2
    assert "--valid-only" in r.stderr and mailbox_addresses() == set()
    r = bulk(runner, "import", path, "--customer", str(customer.id), "--valid-only", "--json")
    assert r.exit_code == 1, (r.output, r.stderr)
    out = json.loads(r.stdout)
    assert out["applied"] is False and out["result"]["mailbox"] == {"created": 2, "skipped": 1}
    assert "Non tutte le righe sono state applicate" in r.stderr
    assert mailbox_addresses() == {f"mario@{sheet.domain}", f"anna@{sheet.domain}"}


def test_an_error_while_applying_exits_non_zero_and_names_the_row(runner, make, customer, sheet, monkeypatch):
    existing = make.mailbox(customer, local="esistente")
    real_preview = imports.preview

    def preview_then_the_world_changes(*args, **kw):
        imp = real_preview(*args, **kw)
        make.alias(customer, "mario", existing)  # taken between the preview and the apply
        return imp

    monkeypatch.setattr(imports, "preview", preview_then_the_world_changes)
    r = bulk(runner, "import", sheet(*sheet.good), "--customer", str(customer.id))
    assert r.exit_code == 1, (r.output, r.stderr)
    assert any(
        line.strip().startswith("Foglio Caselle, riga 2, colonna A: ") for line in r.output.splitlines()
    )
    assert mailbox_addresses() == {existing.address, f"anna@{sheet.domain}"}


def test_generated_passwords_go_to_a_new_private_file_or_wait_in_the_panel(runner, customer, sheet, tmp_path):
    d = sheet.domain
    gen = [f"gen@{d}", None, "Generata", CLASS, "Sì"]
    out_path = tmp_path / "password.xlsx"
    r = bulk(runner, "import", sheet(gen), "--customer", str(customer.id), "--passwords-out", str(out_path))
    assert r.exit_code == 0, (r.output, r.stderr)
    assert stat.S_IMODE(os.stat(out_path).st_mode) == 0o600
    rows = list(load_workbook(io.BytesIO(out_path.read_bytes())).active.iter_rows(values_only=True))
    [(address, password)] = [row[:2] for row in rows[1:]]
    gen_box = db.session.scalar(sa.select(Mailbox).where(Mailbox.address == address))
    assert address == f"gen@{d}" and passwords.verify_mailbox_password(gen_box.password_hash, password)
    assert password not in r.output
    # Taken: nothing waits in the panel any more.
    db.session.expire_all()
    assert db.session.scalar(sa.select(Import.generated_taken_at)) is not None

    # An existing file or a symlink is refused before anything is read or written.
    before = import_count()
    target = tmp_path / "altrove.txt"
    target.write_text("non toccare")
    link = tmp_path / "link.xlsx"
    link.symlink_to(target)
    for existing in (out_path, link):
        r = bulk(
            runner,
            "import",
            sheet([f"altro@{d}", None, "A", CLASS, "Sì"]),
            "--customer",
            str(customer.id),
            "--passwords-out",
            str(existing),
        )
        assert r.exit_code == 2 and "esiste già" in r.stderr
    assert target.read_text() == "non toccare" and import_count() == before
    assert f"altro@{d}" not in mailbox_addresses()

    r = bulk(runner, "import", sheet([f"altro@{d}", None, "A", CLASS, "Sì"]), "--customer", str(customer.id))
    assert r.exit_code == 0, (r.output, r.stderr)
    assert "1 password generata attende nel pannello" in r.output


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["import", "/nessun/file.xlsx", "--customer", "{c}"], 2, "impossibile leggere /nessun/file.xlsx"),
        (["import", "{sheet}", "--customer", "99999999999999999999"], 3, "99999999999999999999 non esiste"),
        (["import", "{pdf}", "--customer", "{c}"], 2, "Errore (file): Non è un foglio di calcolo"),
        (
            ["import", "{sheet}", "--customer", "{c}", "--passwords-out", "/nessuna/cartella/p.xlsx"],
            2,
            "non esiste",
        ),
        (["template", "--out", "{sheet}"], 2, "esiste già"),
        (["template", "--out", "{new}", "--customer", "abc"], 3, "abc non esiste"),
    ],
)
def test_bad_input_is_a_clear_message_and_a_non_zero_exit(
    runner, customer, sheet, tmp_path, args, code, words
):
    pdf = tmp_path / "contratto.pdf"
    pdf.write_bytes(b"%PDF-1.4 not a sheet")
    names = {"c": customer.id, "sheet": sheet(*sheet.good), "pdf": pdf, "new": tmp_path / "nuovo.xlsx"}
    r = bulk(runner, *[a.format(**names) for a in args])
    assert r.exit_code == code, (r.output, r.stderr)
    assert words in r.stderr
    assert "Traceback" not in r.output + r.stderr and isinstance(r.exception, SystemExit)
    assert mailbox_addresses() == set() and import_count() == 0


def test_template_writes_the_sheets_with_the_customers_classes(runner, customer, tmp_path):
    path = tmp_path / "modello.xlsx"
    r = bulk(runner, "template", "--out", str(path), "--customer", str(customer.id))
    assert r.exit_code == 0, (r.output, r.stderr)
    book = load_workbook(path)
    assert book.sheetnames[:4] == ["Caselle", "Alias", "Liste", "Istruzioni"]
    offered = [row[0] for row in book["Classi"].iter_rows(values_only=True)]
    assert offered == [CLASS]
    every = tmp_path / "tutte.xlsx"
    assert bulk(runner, "template", "--out", str(every)).exit_code == 0
    assert len(list(load_workbook(every)["Classi"].iter_rows())) == 32
    assert OTHER_CLASS in [row[0] for row in load_workbook(every)["Classi"].iter_rows(values_only=True)]
