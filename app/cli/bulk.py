"""`flask bulk import|template`: bulk provisioning from a spreadsheet (app/services/imports.py).

`import` reads and checks the whole file as the panel does (the preview: every problem with
its sheet, row and column), then, unless --dry-run, applies it in this process (no worker
needed) and prints the outcome. Exit codes, besides those of app/cli/__init__.py:

    0  every row applied (created, or already present); with --dry-run, a file without problems
    1  applied, but some rows were not (an error at apply time, rows left out by --valid-only),
       or the import did not finish
    2  the file has problems and nothing was applied (without --valid-only), or it cannot be
       read at all; also a bad --passwords-out
    3  no such customer

The command acts as the system (audited as "cli"), for any customer.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import click
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext

from app.cli.errors import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE, Group, refuse
from app.extensions import db
from app.models import Import, Job
from app.models.enums import ImportOp, ImportState, RowOutcome
from app.services import imports, labels
from app.services.access import Actor, customer_for
from app.services.errors import NotFound

bulk_group = Group("bulk", help="Bulk provisioning from a spreadsheet (.xlsx or .csv).")

# Outcomes that count as applied.
APPLIED = {RowOutcome.CREATED, RowOutcome.PRESENT}


def _actor() -> Actor:
    return Actor.system("cli")


def _customer(actor: Actor, customer_id: str):
    try:
        return customer_for(actor, customer_id)
    except NotFound:
        refuse(_("Errore: il cliente %(id)s non esiste.", id=customer_id), EXIT_NOT_FOUND)


def _read(path: str) -> bytes:
    """The file, up to one byte past the size limit (the service refuses it then)."""
    try:
        with open(path, "rb") as f:
            return f.read(current_app.config["IMPORT_MAX_BYTES"] + 1)
    except OSError as e:
        refuse(_("Errore: impossibile leggere %(path)s: %(why)s.", path=path, why=e.strerror or e))


def _new_file_path(path: str, option: str) -> str:
    """A path where a new file can be created: not there yet (nor a link), in a directory that is."""
    path = os.path.abspath(path)
    if os.path.lexists(path):
        refuse(
            _(
                "Errore (%(option)s): %(path)s esiste già: scegli un file nuovo (non lo sovrascrivo).",
                option=option,
                path=path,
            )
        )
    if not os.path.isdir(os.path.dirname(path)):
        refuse(
            _(
                "Errore (%(option)s): la cartella di %(path)s non esiste.",
                option=option,
                path=path,
            )
        )
    return path


def _create(path: str, mode: int, option: str) -> int:
    """A new file with its final mode before any byte is in it: never over an existing file,
    never through a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
        os.fchmod(fd, mode)  # the umask may have narrowed it: exactly this
    except OSError as e:
        refuse(
            _(
                "Errore (%(option)s): impossibile creare %(path)s: %(why)s.",
                option=option,
                path=path,
                why=e.strerror,
            )
        )
    return fd


def _fill(fd: int, data: bytes, path: str, option: str) -> None:
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        refuse(
            _(
                "Errore (%(option)s): impossibile scrivere %(path)s: %(why)s.",
                option=option,
                path=path,
                why=e.strerror,
            ),
            EXIT_ERROR,
        )


def place(problem: dict) -> str:
    """'Foglio Caselle, riga 14, colonna B' (the parts known)."""
    parts = []
    if problem.get("sheet"):
        parts.append(_("Foglio %(sheet)s", sheet=problem["sheet"]))
    if problem.get("row"):
        parts.append(_("riga %(row)s", row=problem["row"]))
    if problem.get("column"):
        parts.append(_("colonna %(column)s", column=problem["column"]))
    text = ", ".join(parts)
    return text[:1].upper() + text[1:]


def _line(problem: dict) -> str:
    where = place(problem)
    return f"{where}: {problem['message']}" if where else problem["message"]


def _preview_json(imp: Import) -> dict:
    return {
        "import": imp.id,
        "customer": imp.customer_id,
        "filename": imp.filename,
        "state": imp.state,
        "counts": imp.counts,
        "to_create": imports.to_create(imp),
        "problem_count": imp.problem_count,
        "errors": imports.errors_json(imp),
    }


def _print_preview(imp: Import, customer_name: str) -> None:
    click.echo(
        _(
            "Importazione %(id)s di «%(file)s» per %(customer)s: anteprima.",
            id=imp.id,
            file=imp.filename,
            customer=customer_name,
        )
    )
    for op in ImportOp:
        c = (imp.counts or {}).get(op.value, {})
        if not any(c.values()):
            continue
        click.echo(
            _(
                "  %(kind)s: %(create)s da creare, %(present)s già presenti, %(error)s con problemi",
                kind=labels.label("import_op", op.value),
                create=labels.number(c.get("create", 0)),
                present=labels.number(c.get("present", 0)),
                error=labels.number(c.get("error", 0)),
            )
        )
    if not imp.problem_count:
        click.echo(_("Nessun problema nel file."))
        return
    click.echo(ngettext("%(num)d problema:", "%(num)d problemi:", imp.problem_count))
    shown = imports.errors_json(imp)
    for problem in shown:
        click.echo("  " + _line(problem))
    if imp.problem_count > len(shown):
        click.echo(
            _("  … e altri %(n)s (li vedi nel pannello).", n=labels.number(imp.problem_count - len(shown)))
        )


def _apply_errors(imp: Import) -> list[dict]:
    """The rows that failed while applied, as problems with their cells."""
    out, after = [], -1
    while batch := imports.rows_page(imp, only_problems=True, after=after, limit=500):
        out += [
            {"sheet": r.sheet, "row": r.row, "column": r.column, "message": r.message}
            for r in batch
            if r.outcome == RowOutcome.ERROR
        ]
        after = batch[-1].seq
    return out


def _print_result(imp: Import, job: Job | None, apply_errors: list[dict]) -> None:
    state = labels.label("import_state", imp.state)
    click.echo(_("Importazione %(id)s: %(state)s.", id=imp.id, state=state))
    for op in ImportOp:
        per = (imp.result or {}).get(op.value, {})
        if not per:
            continue
        parts = ", ".join(
            f"{labels.label('row_outcome', outcome).lower()}: {labels.number(n)}"
            for outcome, n in sorted(per.items())
        )
        click.echo(f"  {labels.label('import_op', op.value)} — {parts}")
    if job is not None and job.state == "failed" and job.message:
        click.echo(_("Il lavoro non è riuscito: %(why)s", why=job.message), err=True)
    for problem in apply_errors:
        click.echo("  " + _line(problem))


@contextmanager
def _jobs_here():
    """The job runs in this process, as a worker would run it: the command needs none."""
    config = current_app.config
    saved = config.get("JOBS_INLINE", False)
    config["JOBS_INLINE"] = True
    try:
        yield
    finally:
        config["JOBS_INLINE"] = saved


def _fully_applied(imp: Import) -> bool:
    if imp.state != ImportState.DONE:
        return False
    return all(outcome in APPLIED for per in (imp.result or {}).values() for outcome, n in per.items() if n)


@bulk_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--customer", "customer_id", required=True, help="The customer's id")
@click.option("--dry-run", is_flag=True, help="Check the file and print the preview; apply nothing")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text")
@click.option("--valid-only", is_flag=True, help="Apply the rows without problems, leave out the others")
@click.option(
    "--passwords-out",
    default=None,
    help="Write generated passwords to this new file (mode 0600); else they wait in the panel",
)
def import_command(file, customer_id, dry_run, as_json, valid_only, passwords_out):
    """Check a filled sheet for a customer and, unless --dry-run, create what it says."""
    actor = _actor()
    customer = _customer(actor, customer_id)
    if passwords_out and not dry_run:
        passwords_out = _new_file_path(passwords_out, "--passwords-out")
    data = _read(file)
    imp = imports.preview(actor, customer.id, data, os.path.basename(file))
    out = _preview_json(imp)
    out["dry_run"] = dry_run
    if not as_json:
        _print_preview(imp, customer.name)

    def done(code: int):
        if as_json:
            click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        raise SystemExit(code)

    if dry_run or (imp.problem_count and not valid_only):
        imports.discard(actor, imp.id)  # not applied from here: the file's passwords go at once
    if dry_run:
        done(0 if not imp.problem_count else EXIT_USAGE)
    if imp.problem_count and not valid_only:
        click.echo(
            ngettext(
                "Niente applicato: il file ha %(num)d problema. Correggilo e riprova, "
                "oppure usa --valid-only per applicare solo le righe valide.",
                "Niente applicato: il file ha %(num)d problemi. Correggili e riprova, "
                "oppure usa --valid-only per applicare solo le righe valide.",
                imp.problem_count,
            ),
            err=True,
        )
        done(EXIT_USAGE)

    with _jobs_here():
        job = imports.start_apply(actor, imp.id, valid_only=valid_only)
    db.session.expire_all()
    imp = imports.get_import(actor, imp.id)
    job = db.session.get(Job, job.id)
    apply_errors = _apply_errors(imp)
    out.update(
        state=imp.state,
        job={"id": job.id, "state": job.state, "message": job.message},
        result=imp.result,
        apply_errors=apply_errors,
    )
    if not as_json:
        _print_result(imp, job, apply_errors)
    out["generated_passwords"] = _hand_over_passwords(actor, imp, passwords_out, as_json)
    applied = _fully_applied(imp)
    out["applied"] = applied
    if not applied:
        click.echo(
            _("Non tutte le righe sono state applicate: il resoconto, riga per riga, è nel pannello."),
            err=True,
        )
    done(0 if applied else EXIT_ERROR)


def _hand_over_passwords(actor: Actor, imp: Import, path: str | None, quiet: bool) -> dict | None:
    if not imp.generated_count:
        return None
    n = imp.generated_count
    if path is None:
        if not quiet:
            click.echo(
                ngettext(
                    "%(num)d password generata attende nel pannello, per un solo download.",
                    "%(num)d password generate attendono nel pannello, per un solo download.",
                    n,
                )
            )
        return {"count": n, "file": None}
    # The file first: if it cannot be made, the passwords stay in the panel.
    fd = _create(path, 0o600, "--passwords-out")
    try:
        content = imports.take_generated_passwords(actor, imp.id, None)[1]
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    _fill(fd, content, path, "--passwords-out")
    if not quiet:
        click.echo(
            ngettext(
                "%(num)d password generata scritta in %(path)s.",
                "%(num)d password generate scritte in %(path)s.",
                n,
                path=path,
            )
        )
    return {"count": n, "file": path}


@bulk_group.command("template")
@click.option("--out", "out_path", required=True, help="The new .xlsx file to write")
@click.option("--customer", "customer_id", default=None, help="Offer only the classes this customer may use")
def template_command(out_path, customer_id):
    """Write the template to fill (.xlsx) with the drop-down of the classes of service."""
    actor = _actor()
    if customer_id is not None:
        _customer(actor, customer_id)
    path = _new_file_path(out_path, "--out")
    content = imports.template_for(actor, customer_id)[1]
    _fill(_create(path, 0o644, "--out"), content, path, "--out")
    click.echo(_("Modello scritto in %(path)s.", path=path))
