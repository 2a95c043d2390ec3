"""A whole domain's migrations entered from a sheet (.xlsx or .csv): mailbox, old username, old password.

The file is read with the mailbox import's reader (app/services/sheets.py: size limits, the
zip-bomb and XML guards of xlsx_rows, CSV encoding and delimiter detection, formulas and
merged cells refused, row numbers as the sheet shows them), with this sheet's own headers.
Every row is checked with the rules of one migration entered by hand
(migrations.validate_create), plus: the same mailbox twice in the sheet, a mailbox with an
open migration, a mailbox of another domain. All or nothing: one wrong row and nothing is
written, each problem naming its row and column; otherwise every migration is created as a
draft in one transaction, the passwords sealed at once.

Between the preview and the confirmation the rows travel sealed (app/services/vault.py: the
passwords encrypted and authenticated with DATA_KEYS), bound to the user, the domain and
half an hour: `seal_preview` gives the token the page keeps in its confirmation form,
`confirm` opens it and checks and creates exactly the rows that were shown. Nothing of the
sheet is kept on the server in between.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import Domain, Migration
from app.models.migrations import OPEN_STATES
from app.services import addresses, domains, limits, sheets, vault
from app.services.access import Actor, require_staff
from app.services.errors import Conflict, ValidationError
from app.services.migration import migrations

KIND = "migrations"
DEFAULT_MAX_ROWS = 2000
TOKEN_SECONDS = 30 * 60

# The fields a column can hold; the first three are the sheet's, the others override the defaults.
FIELDS = ("mailbox", "username", "password", "host", "port", "security")
REQUIRED = ("mailbox", "username", "password")

_n = sheets.normalise_header
_SYNONYMS: dict[str, frozenset[str]] = {
    "mailbox": frozenset(
        _n(w)
        for w in (
            "casella",
            "casella email",
            "casella di posta",
            "nuova casella",
            "casella di destinazione",
            "destinazione",
            "indirizzo",
            "indirizzo email",
            "email",
            "e-mail",
            "mail",
            "mailbox",
            "new mailbox",
            "address",
            "email address",
            "account",
        )
    ),  # fmt: skip
    "username": frozenset(
        _n(w)
        for w in (
            "utente",
            "nome utente",
            "vecchio utente",
            "utente vecchio",
            "vecchio nome utente",
            "utente imap",
            "username",
            "user",
            "user name",
            "old username",
            "old user",
            "login",
            "vecchio login",
            "old login",
            "imap user",
        )
    ),  # fmt: skip
    "password": frozenset(
        _n(w)
        for w in (
            "password",
            "vecchia password",
            "password vecchia",
            "old password",
            "pwd",
            "imap password",
            "password imap",
            "parola chiave",
        )
    ),  # fmt: skip
    "host": frozenset(
        _n(w)
        for w in (
            "host",
            "server",
            "server imap",
            "imap server",
            "imap host",
            "vecchio server",
            "old server",
            "host imap",
        )
    ),  # fmt: skip
    "port": frozenset(_n(w) for w in ("port", "porta", "porta imap", "imap port")),
    "security": frozenset(
        _n(w) for w in ("security", "sicurezza", "cifratura", "encryption", "protezione", "tls", "ssl")
    ),
}
_SECURITY_WORDS = {
    **dict.fromkeys(("ssl", "tls", "ssltls", "imaps", "sslt"), "ssl"),
    **dict.fromkeys(("starttls", "tlsexplicit"), "starttls"),
    **dict.fromkeys(("none", "nessuna", "nessuno", "no", "plain", "inchiaro", "chiaro"), "none"),
}
_COLUMN_TITLES = {
    "mailbox": lambda: _("Casella"),
    "username": lambda: _("Vecchio utente"),
    "password": lambda: _("Vecchia password"),
    "host": lambda: _("Server"),
    "port": lambda: _("Porta"),
    "security": lambda: _("Sicurezza"),
}


def expected_headers() -> str:
    return _(
        "Casella, Vecchio utente, Vecchia password; facoltative: Server, Porta, Sicurezza "
        "(anche in inglese: Mailbox, Old username, Old password, Host, Port, Security)"
    )


# --- Reading the file (the mailbox import's reader, this sheet's headers) -------------------


def _recognise(row_number: int, values) -> sheets.Header | None:
    found: dict[str, list[int]] = {}
    for i, value in enumerate(values, start=1):
        for key in sheets.header_keys(value):
            match = next((f for f, names in _SYNONYMS.items() if key in names), None)
            if match:
                found.setdefault(match, []).append(i)
                break
    if "mailbox" not in found or not ({"username", "password"} & found.keys()):
        return None
    columns = {f: cols[0] for f, cols in found.items()}
    repeats = [(f, cols[0], c) for f, cols in found.items() for c in cols[1:]]
    return sheets.Header(KIND, row_number, columns, repeats)


def _text(field_name: str, value: object, data_type: str) -> tuple[str, str | None]:
    if field_name == "password" and data_type == "s" and isinstance(value, str):
        # Exactly as written: spaces and invisible characters at the ends may be part of it (CR,
        # LF and NUL are refused by the rules of one migration). Only blanks: none.
        return (value if value.strip() else ""), None
    if field_name == "port" and isinstance(value, (int, float)) and not isinstance(value, bool):
        text = sheets.number_text(value)  # a port typed as a number is a number
        return text or "", None if text else _("Porta non valida.")
    return sheets.cell_text(field_name, value, data_type)


class _Reader(sheets.Reader):
    recognise = staticmethod(_recognise)
    text = staticmethod(_text)


def row_limit() -> int:
    return sheets.limit("MIGRATION_SHEET_MAX_ROWS", DEFAULT_MAX_ROWS)


def _too_many() -> sheets.FileRejected:
    return sheets.too_many_rows(row_limit())


def read(data: bytes, filename: str, *, max_rows: int | None = None) -> sheets.Workbook:
    """The sheet's rows; FileRejected (field "file") when the file as a whole cannot be used."""
    return sheets.read_file(
        data,
        filename,
        reader=_Reader,
        max_rows=max_rows or row_limit(),
        expected_headers=expected_headers(),
        no_rows=_("Il file non contiene righe sotto le intestazioni."),
        too_complex=_(
            "Il file contiene molto più di un elenco di migrazioni (troppe celle o troppo testo): "
            "copia in un file nuovo solo le righe da importare."
        ),
        strict_utf8=True,  # the passwords: not garbled by a guess at cp1252
    )


# --- Checking the rows --------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    sheet: str | None
    row: int | None
    column: str | None  # the column letter, or None for the whole row or a default of the form
    field: str | None
    message: str

    def to_dict(self) -> dict:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }


@dataclass(frozen=True, eq=False)
class PlannedRow:
    """One migration the sheet will create (never the password in what is shown)."""

    sheet: str
    row: int
    column: str | None  # the mailbox's column letter
    draft: migrations.MigrationDraft

    def to_dict(self) -> dict:
        d = self.draft
        return {
            "sheet": self.sheet,
            "row": self.row,
            "mailbox": d.mailbox.address,
            "username": d.username,
            "host": d.host,
            "port": d.port,
            "security": d.security,
            "verify_cert": d.verify_cert,
            "sync": d.sync,
        }

    def __repr__(self) -> str:
        return f"PlannedRow({self.sheet}!{self.row}: {self.draft!r})"


@dataclass(eq=False)
class Preview:
    domain: Domain
    filename: str
    defaults: dict
    rows: list[PlannedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    form_errors: dict[str, str] = field(default_factory=dict)  # a default of the form (host, port...)
    sheet_names: list[str] = field(default_factory=list)
    _source: list[sheets.SheetRow] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.form_errors

    def to_dict(self) -> dict:
        return {
            "domain": self.domain.name,
            "filename": self.filename,
            "ok": self.ok,
            "rows": [r.to_dict() for r in self.rows],
            "errors": [e.to_dict() for e in self.errors],
            "form_errors": self.form_errors,
        }


class SheetInvalid(ValidationError):
    """Some rows are wrong: nothing written. `.preview` has every problem with its row and column;
    `.errors` the same as field -> message: the form's defaults by name, a row's as
    "rows.14.password" (with "Riga 14, colonna C: " before the message)."""

    def __init__(self, preview: Preview):
        errors = dict(preview.form_errors)
        several = len(preview.sheet_names) > 1
        for e in preview.errors:
            key = ".".join(
                str(part)
                for part in (e.sheet if several else None, "rows", e.row or 0, e.field or e.column or "file")
                if part is not None
            )
            place = where(e, several)
            errors.setdefault(key, f"{place}: {e.message}" if place else e.message)
        if not errors:
            errors["file"] = _("Il foglio non contiene migrazioni da creare.")
        super().__init__(errors)
        self.preview = preview


def _security_text(text: str) -> str:
    return _SECURITY_WORDS.get(_n(text), text.strip().lower())


def defaults_from(values: Mapping) -> dict:
    """The sheet-wide defaults as a form, the CLI or the API give them (text), untouched but trimmed."""
    out: dict = {}
    for key in ("host", "port", "security"):
        value = values.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value not in (None, ""):
            out[key] = _security_text(value) if key == "security" and isinstance(value, str) else value
    verify = values.get("verify_cert", True)
    out["verify_cert"] = verify if verify not in (None, "") else True
    keep = values.get("sync", False)
    out["sync"] = keep if keep not in (None, "") else False
    return out


def _resolve_mailbox(domain: Domain, text: str) -> str:
    """'anna' or 'Anna@Esempio.it' -> 'anna@esempio.it'; ValidationError("mailbox") if not of this domain."""
    if "@" not in text:
        text = f"{text}@{domain.name}"
    local, ascii_domain = addresses.split_address(text, "mailbox")
    if ascii_domain != domain.name:
        raise ValidationError.one(
            "mailbox",
            _(
                "La casella non è del dominio %(domain)s: in questo foglio vanno solo le sue caselle.",
                domain=domain.display_name,
            ),
        )
    return f"{local}@{ascii_domain}"


def _plan(actor: Actor, domain: Domain, filename: str, defaults: dict, book_rows, problems) -> Preview:
    preview = Preview(domain, filename, defaults, _source=list(book_rows))
    for p in problems:
        preview.errors.append(RowError(p.sheet, p.row, p.column, None, p.message))
    if len(book_rows) > row_limit():  # a sealed preview made under a higher cap
        raise _too_many()
    seen: dict[str, sheets.SheetRow] = {}
    names = sorted({r.sheet for r in book_rows})
    preview.sheet_names = names
    for r in book_rows:
        row_errors: list[RowError] = []

        def problem(
            field_name: str | None, message: str, column: str | None = None, r=r, row_errors=row_errors
        ):
            row_errors.append(RowError(r.sheet, r.row, column, field_name, message))

        broken = r.problems()
        for field_name, message in broken.items():
            problem(field_name, message, r.column(field_name))
        data: dict = {}
        from_sheet: set[str] = set()
        for field_name in ("username", "password", "host", "port", "security"):
            value = r.value(field_name)
            if value not in ("", None):
                from_sheet.add(field_name)
                data[field_name] = _security_text(value) if field_name == "security" else value
            elif field_name in defaults:
                data[field_name] = defaults[field_name]
        data.setdefault("security", "ssl")
        if "port" not in data and data["security"] in ("starttls", "none"):
            data["port"] = 143
        data["verify_cert"] = defaults.get("verify_cert", True)
        data["sync"] = defaults.get("sync", False)
        address = None
        if "mailbox" not in broken:
            try:
                address = _resolve_mailbox(domain, r.value("mailbox"))
            except ValidationError as e:
                problem("mailbox", e.errors["mailbox"], r.column("mailbox"))
        data["mailbox"] = address or ""
        try:
            draft = migrations.validate_create(actor, domain.id, data)
        except ValidationError as e:
            draft = None
            for field_name, message in e.errors.items():
                if field_name in broken or (field_name == "mailbox" and address is None):
                    continue  # already said: the cell could not be read, or the address is not ours
                if field_name in from_sheet or field_name in ("mailbox", "username", "password"):
                    if field_name in r.cells:
                        problem(field_name, message, r.column(field_name))
                else:
                    preview.form_errors.setdefault(field_name, message)
        if address and not any(e.field == "mailbox" for e in row_errors):
            first = seen.get(address)
            if first is not None:
                problem(
                    "mailbox",
                    _("La casella %(a)s è già alla riga %(n)d del foglio.", a=address, n=first.row),
                    r.column("mailbox"),
                )
            else:
                seen[address] = r
        if row_errors:
            preview.errors.extend(row_errors)
        elif draft is not None:
            preview.rows.append(PlannedRow(r.sheet, r.row, r.column("mailbox"), draft))
    _open_migrations(preview)
    preview.errors.sort(key=lambda e: (e.sheet or "", e.row or 0, e.column or ""))
    return preview


def _open_migrations(preview: Preview) -> None:
    by_id = {p.draft.mailbox.id: p for p in preview.rows}
    if not by_id:
        return
    open_ids = set(
        db.session.scalars(
            sa.select(Migration.mailbox_id).where(
                Migration.mailbox_id.in_(list(by_id)), Migration.state.in_([str(s) for s in OPEN_STATES])
            )
        )
    )
    if not open_ids:
        return
    kept = []
    for p in preview.rows:
        if p.draft.mailbox.id in open_ids:
            preview.errors.append(
                RowError(
                    p.sheet, p.row, p.column, "mailbox", _("Questa casella ha già una migrazione aperta.")
                )
            )
        else:
            kept.append(p)
    preview.rows = kept
    preview.errors.sort(key=lambda e: (e.sheet or "", e.row or 0, e.column or ""))


def _allowed(actor: Actor, domain_id: object) -> Domain:
    domain = domains.get_domain(actor, domain_id)  # another customer's: NotFound
    require_staff(actor)
    return domain


def check_allowed(actor: Actor, domain_id: object) -> Domain:
    """The domain, if the actor may enter its migrations: another customer's is NotFound, a customer
    PermissionDenied (checked before the file is read)."""
    return _allowed(actor, domain_id)


def check(
    actor: Actor, domain_id: object, data: bytes, filename: object, defaults: Mapping | None = None
) -> Preview:
    """Read and check the whole sheet; writes nothing. FileRejected when the file cannot be used."""
    domain = _allowed(actor, domain_id)
    name = str(filename or "")[:255]
    book = read(data, name)
    problems = list(book.problems)
    for info in book.sheets:
        for field_name in REQUIRED:
            if field_name not in info.columns:
                message = _(
                    "Manca la colonna %(c)s (intestazioni attese: %(expected)s).",
                    c=_COLUMN_TITLES[field_name](),
                    expected=expected_headers(),
                )
                problems.append(sheets.Problem(info.name, info.header_row, None, message))
    return _plan(actor, domain, name, defaults_from(defaults or {}), book.rows, problems)


def create(actor: Actor, preview: Preview) -> list[Migration]:
    """Every row of a preview without problems as a draft migration, in one transaction (else nothing)."""
    if not preview.ok:
        raise SheetInvalid(preview)
    domain = preview.domain
    limits.lock_customer(domain.customer_id)
    _open_migrations(preview)  # again, under the customer's lock
    if not preview.ok:
        db.session.rollback()
        raise SheetInvalid(preview)
    created: list[Migration] = []
    try:
        for planned in preview.rows:
            created.append(_add(actor, planned, preview.filename))
        db.session.flush()
    except sa.exc.IntegrityError:
        db.session.rollback()  # a migration entered meanwhile for one of the mailboxes
        raise Conflict(
            _(
                "Nel frattempo è stata aperta una migrazione per una delle caselle: carica di nuovo il foglio."
            ),
            field="file",
        ) from None
    db.session.commit()
    return created


def _add(actor: Actor, planned: PlannedRow, filename: str) -> Migration:
    """The row and its audit event, not committed (the sheet commits once)."""
    return migrations.add(
        actor, planned.draft, sheet=[None, f"{filename[:120]} {planned.sheet}!{planned.row}"]
    )


def import_sheet(
    actor: Actor,
    domain_id: object,
    data: bytes,
    filename: object,
    defaults: Mapping | None = None,
    *,
    dry_run: bool = False,
) -> tuple[Preview, list[Migration]]:
    """check, then create (unless dry_run). SheetInvalid (nothing written) when a row is wrong."""
    preview = check(actor, domain_id, data, filename, defaults)
    if dry_run:
        return preview, []
    if not preview.ok:
        raise SheetInvalid(preview)
    return preview, create(actor, preview)


# --- The sealed preview (the page's confirmation) ------------------------------------------


def seal_preview(actor: Actor, preview: Preview) -> str:
    """The checked rows, passwords included, encrypted for the confirmation form: bound to this user,
    this domain, TOKEN_SECONDS."""
    rows = [
        [r.sheet, r.row, {f: [c.column, c.value] for f, c in r.cells.items() if not c.problem}]
        for r in preview._source
    ]
    payload = {
        "u": actor.user_id,
        "d": preview.domain.id,
        "x": int(time.time()) + TOKEN_SECONDS,
        "f": preview.filename,
        "o": {k: v for k, v in preview.defaults.items()},
        "r": rows,
    }
    packed = zlib.compress(json.dumps(payload, separators=(",", ":")).encode())
    return vault.seal(packed).decode("ascii")


def _expired() -> ValidationError:
    return ValidationError.one("file", _("L'anteprima è scaduta o non è valida: carica di nuovo il file."))


def confirm(actor: Actor, domain_id: object, token: object) -> list[Migration]:
    """Create the migrations of a sealed preview, checked again (another may have been entered since)."""
    domain = _allowed(actor, domain_id)
    if not isinstance(token, str) or not token or len(token) > 2_000_000:
        raise _expired()
    try:
        payload = json.loads(zlib.decompress(vault.unseal(token.encode("ascii"))))
    except (vault.VaultError, zlib.error, ValueError, UnicodeError):
        raise _expired() from None
    if (
        payload.get("u") != actor.user_id
        or payload.get("d") != domain.id
        or payload.get("x", 0) < time.time()
    ):
        raise _expired()
    rows = [
        sheets.SheetRow(KIND, sheet, number, {f: sheets.Cell(c[0], c[1]) for f, c in cells.items()})
        for sheet, number, cells in payload["r"]
    ]
    preview = _plan(actor, domain, payload.get("f", ""), payload.get("o", {}), rows, [])
    return create(actor, preview)


def domain_by_name(actor: Actor, name: object) -> Domain:
    """A domain named as people write it (IDN or not), for the CLI; NotFound when it is not there."""
    from app.services.errors import NotFound

    ascii_name = addresses.domain_to_ascii(name, "domain")
    domain = db.session.scalar(sa.select(Domain).where(Domain.name == ascii_name))
    if domain is None:
        raise NotFound(_("Dominio non trovato."))
    return _allowed(actor, domain.id)


def where(error: RowError | dict, several_sheets: bool = False) -> str:
    """ "Riga 14, colonna C": where a problem is (the sheet too when the file has several)."""
    e = error.to_dict() if isinstance(error, RowError) else error
    parts = []
    if several_sheets and e.get("sheet"):
        parts.append(_("Foglio %(s)s", s=e["sheet"]))
    if e.get("row"):
        parts.append(_("riga %(n)d", n=e["row"]) if parts else _("Riga %(n)d", n=e["row"]))
    if e.get("column"):
        parts.append(_("colonna %(c)s", c=e["column"]) if parts else _("Colonna %(c)s", c=e["column"]))
    return ", ".join(parts)
