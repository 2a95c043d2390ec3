"""Bulk provisioning from a spreadsheet: upload and preview, apply as a job, the report.

1. preview(): the file is read (app/services/sheets.py) and checked in full against the
   customer, as the forms check one account: addresses, duplicates in the file and against
   what exists, classes, passwords, aliases and list members, the contract's room per class
   and a Pay-per-Use credit. Every problem is kept with its sheet, row and column. What is
   stored is the import and its rows (the passwords sealed, app/services/vault.py); no
   mailbox, alias or list is written.
2. start_apply(): a `bulk_import` job (queue `bulk`) creates what the rows say through the
   same service functions as the pages (validate_*, apply_*), which check the contract and
   the credit again under the customer's lock. Password hashing is the slow part: the job
   starts IMPORT_PARALLEL - 1 `bulk_import_part` jobs that claim batches of mailbox rows
   beside it, so each worker process hashes its own. A row's outcome is written in the
   transaction that creates its account, so a worker killed half-way and the job run again
   create nothing twice and lose nothing; an address already there is "present".
3. The end: a report (.xlsx, no secret in it) kept with the import; generated passwords
   sealed into a file that can be downloaded once; every other secret wiped. A preview never
   applied, a generated file never taken, are wiped after IMPORT_TTL_HOURS (expire_abandoned).
"""

from __future__ import annotations

import functools
import secrets
import string
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePath

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext

from app.extensions import db
from app.models import Alias, DistributionList, Import, ImportRow, Job, ListMember, Mailbox, User
from app.models.enums import ImportOp, ImportState, Plan, RowOutcome
from app.models.jobs import ACTIVE_STATES
from app.services import (
    addresses,
    aliases,
    audit,
    billing,
    classes,
    clock,
    jobs,
    labels,
    limits,
    lists,
    mailboxes,
    passwords,
    sheets,
    users,
    vault,
)
from app.services.access import Actor, customer_for, get_scoped, require_manage
from app.services.context import CustomerContext
from app.services.errors import Conflict, DomainError, NotFound, ValidationError

# Problems kept (and shown) per import; problem_count counts them all.
MAX_PROBLEMS = 5000
# Mailbox rows one process claims at a time: small enough that the processes finish together.
CHUNK = 10
# Characters of generated passwords: no look-alikes (0/O, 1/l/I).
_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
GENERATED_LENGTH = 16

CREATE, PRESENT, ERROR = "create", "present", "error"


# ---------------------------------------------------------------------------------------------
# Preview


@dataclass(eq=False)
class _Op:
    op: str
    sheet: str
    row: int
    column: str | None
    address: str
    member: str | None = None
    data: dict = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    generate: bool = False
    action: str = CREATE
    message: str = ""
    class_column: str | None = None  # where the class was written (the contract's problems point there)


class _Plan:
    """The rows of one file being checked: operations, and problems with their cells."""

    def __init__(self, context: CustomerContext):
        self.context = context
        self.ops: list[_Op] = []
        self.problems: list[dict] = []
        self.order: dict[str, int] = {}  # sheet name -> position in the file
        self.by_row: dict[tuple[str, int], _Op] = {}  # (sheet, row) -> the mailbox written there

    @functools.cached_property
    def taken(self) -> dict[str, str]:
        """Every address already used on the customer's domains -> "mailbox", "alias" or "list".

        An address on a customer's domain can only be that customer's: three queries by
        domain, whatever the size of the file, instead of thousands of addresses in IN lists.
        """
        ids = [d.id for d in self.context.domains.values()]
        out: dict[str, str] = {}
        if not ids:
            return out
        for model, kind in ((Mailbox, "mailbox"), (Alias, "alias"), (DistributionList, "list")):
            for address in db.session.scalars(sa.select(model.address).where(model.domain_id.in_(ids))):
                out.setdefault(address, kind)
        return out

    def mailboxes(self, wanted: Iterable[str]) -> set[str]:
        """Those of wanted that are already mailboxes of the customer."""
        return {a for a in wanted if self.taken.get(a) == "mailbox"}

    def problem(self, sheet, row, column, message: str, op: _Op | None = None) -> None:
        self.problems.append({"sheet": sheet, "row": row, "column": column, "message": message})
        if op is not None:
            self.fail(op, message)

    @staticmethod
    def fail(op: _Op, message: str) -> None:
        if op.action != ERROR:
            op.action, op.message = ERROR, message

    def add(self, op: _Op) -> _Op:
        self.ops.append(op)
        return op


def _where(sheet: str, row: int) -> str:
    return _("riga %(row)d del foglio %(sheet)s", row=row, sheet=sheet)


def _first_message(error: ValidationError) -> str:
    return next(iter(error.errors.values()), error.message)


def generate_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_LENGTH))


# A stand-in that passes the password policy while checking a row whose password is to be
# generated: the real one is drawn when the row is applied.
_PLACEHOLDER = "Gen-" + "x7Qp" * 4

_MAILBOX_COLUMNS = {
    "address": lambda: _("Account"),
    "service_class": lambda: _("Classe di servizio"),
}


def _missing_columns(plan: _Plan, wb: sheets.Workbook) -> set[str]:
    """Sheets lacking a column they cannot do without: one problem each, and their rows refused."""
    broken: set[str] = set()
    for info in wb.sheets:
        needed: list[str] = []
        if info.kind == sheets.MAILBOXES:
            needed = [name() for f, name in _MAILBOX_COLUMNS.items() if f not in info.columns]
            if "password" not in info.columns and "generate_password" not in info.columns:
                needed.append(_("Password"))
        elif info.kind == sheets.ALIASES:
            needed = [
                n for f, n in (("alias", _("Alias")), ("mailbox", _("Casella"))) if f not in info.columns
            ]
        elif info.kind == sheets.LISTS:
            needed = [n for f, n in (("list", _("Lista")), ("members", _("Membro"))) if f not in info.columns]
        if needed:
            broken.add(info.name)
            plan.problem(
                info.name,
                info.header_row,
                None,
                ngettext(
                    "Manca la colonna %(names)s: aggiungila all'intestazione.",
                    "Mancano le colonne %(names)s: aggiungile all'intestazione.",
                    len(needed),
                    names=", ".join(needed),
                ),
            )
    return broken


def _cell_problems(plan: _Plan, r: sheets.SheetRow) -> set[str]:
    """Report the cells the reader could not take as text; their fields are not checked further."""
    bad: set[str] = set()
    for name, cell in r.cells.items():
        if cell.problem:
            bad.add(name)
            plan.problem(r.sheet, r.row, cell.column, cell.problem)
    return bad


def _plan_mailboxes(plan: _Plan, rows: list[sheets.SheetRow], broken: set[str]) -> dict[str, _Op]:
    context = plan.context
    by_address: dict[str, _Op] = {}
    for r in rows:
        bad = _cell_problems(plan, r)
        raw = r.value("address")
        op = plan.add(_Op(ImportOp.MAILBOX, r.sheet, r.row, r.column("address"), raw.strip().lower()))
        plan.by_row[(r.sheet, r.row)] = op
        if r.sheet in broken:
            plan.fail(op, _("Il foglio non ha tutte le colonne necessarie."))
            continue
        if bad:
            plan.fail(op, _("Una cella della riga non si può leggere."))
        password = r.value("password")
        generate = r.value("generate_password") == "1"
        if not password and not generate and "password" not in bad and "generate_password" not in bad:
            column = r.column("password") or r.column("generate_password")
            plan.problem(
                r.sheet,
                r.row,
                column,
                _("Manca la password: scrivila, oppure scrivi Sì nella colonna «Genera password»."),
                op,
            )
        try:
            draft = mailboxes.validate_mailbox(
                context,
                address=raw,
                password=password or _PLACEHOLDER,
                display_name=r.value("display_name"),
                service_class=r.value("service_class"),
            )
        except ValidationError as e:
            for name, message in e.errors.items():
                if name not in bad and not (name == "password" and not password):
                    plan.problem(r.sheet, r.row, r.column(name), message, op)
            plan.fail(op, _first_message(e))
            continue
        op.address = draft.address
        op.data = {
            "display_name": draft.display_name,
            "service_class_id": draft.service_class.id,
            "service_class": draft.service_class.name,
        }
        op.password = password or None
        op.generate = not password
        op.class_column = r.column("service_class")
        first = by_address.get(op.address)
        if first is not None:
            plan.problem(
                r.sheet,
                r.row,
                op.column,
                _("%(a)s compare già nella %(where)s.", a=op.address, where=_where(first.sheet, first.row)),
                op,
            )
            continue
        if op.action != ERROR:
            by_address[op.address] = op
    return by_address


def _mark_existing_mailboxes(plan: _Plan, by_address: dict[str, _Op]) -> None:
    mine = plan.mailboxes(by_address)
    taken = addresses.in_use(a for a in by_address if a not in mine and a in plan.taken)
    for address, op in by_address.items():
        if address in mine:
            op.action = PRESENT
        elif address in taken:
            plan.problem(op.sheet, op.row, op.column, taken[address], op)


def _check_room(plan: _Plan, by_address: dict[str, _Op]) -> None:
    """The contract's allowance per class: the rows past it are refused, each saying by how many."""
    context = plan.context
    creating = [op for op in by_address.values() if op.action == CREATE]
    wanted = Counter(op.data["service_class_id"] for op in creating)
    rooms = limits.room_for(context.customer, wanted)
    for class_id, room in rooms.items():
        if room.fits:
            continue
        cls = context.class_index.resolve(class_id)
        message = limits.limit_exceeded(context.customer, cls, room).message
        of_class = [op for op in creating if op.data["service_class_id"] == class_id]
        for op in of_class[max(0, len(of_class) - room.missing) :]:
            plan.problem(op.sheet, op.row, op.class_column or op.column, message, op)


def _check_credit(plan: _Plan, by_address: dict[str, _Op], sheet: str | None) -> None:
    customer = plan.context.customer
    if customer.plan != Plan.PAYG:
        return
    prices = billing.price_list(clock.today())
    added = sum(
        prices.get(op.data["service_class_id"], 0) for op in by_address.values() if op.action == CREATE
    )
    if added <= 0:
        return
    total = billing.daily_cost(customer) + added
    balance = customer.balance_centipoints
    if balance >= total:
        return
    plan.problem(
        sheet,
        None,
        None,
        _(
            "Credito insufficiente: con le caselle del file il costo giornaliero sarebbe di %(points)s punti "
            "(%(eur)s EUR) e il saldo è di %(balance)s punti. Ricarica il conto, o togli delle righe.",
            points=labels.number(billing.points(total)),
            eur=labels.number(billing.eur(total)),
            balance=labels.number(billing.points(balance)),
        ),
    )


def _target_address(value: str) -> str | None:
    try:
        local, domain = addresses.split_address(value, "target")
    except ValidationError:
        return None
    return f"{local}@{domain}"


def _plan_aliases(
    plan: _Plan, wb: sheets.Workbook, by_address: dict[str, _Op], broken: set[str]
) -> list[_Op]:
    context = plan.context
    wanted: list[tuple[sheets.SheetRow, str, str, str | None, _Op | None]] = []
    for r in wb.rows:
        if r.kind == sheets.ALIASES:
            bad = _cell_problems(plan, r)
            if r.sheet in broken or bad:
                op = plan.add(
                    _Op(ImportOp.ALIAS, r.sheet, r.row, r.column("alias"), r.value("alias").lower())
                )
                plan.fail(op, _("Una cella della riga non si può leggere."))
                continue
            wanted.append((r, r.value("alias"), r.value("mailbox"), r.column("alias"), None))
        elif r.kind == sheets.MAILBOXES and r.value("aliases"):
            owner = plan.by_row.get((r.sheet, r.row))
            for value in sheets.split_values(r.value("aliases")):
                wanted.append(
                    (r, value, r.value("address"), r.column("aliases"), owner or _Op("", "", 0, None, ""))
                )
    ops: list[_Op] = []
    seen: dict[str, _Op] = {}
    targets_known = plan.mailboxes({t for t in (_target_address(w[2]) for w in wanted) if t})
    for r, alias_value, target_value, column, owner in wanted:
        op = plan.add(_Op(ImportOp.ALIAS, r.sheet, r.row, column, alias_value.strip().lower()))
        ops.append(op)
        if owner is not None and owner.action == ERROR:
            plan.fail(op, _("La casella della riga ha errori: l'alias non sarà creato."))
            continue
        try:
            local, domain = context.address(alias_value, "alias")
        except ValidationError as e:
            plan.problem(r.sheet, r.row, column, _first_message(e), op)
            continue
        op.address = f"{local}@{domain.name}"
        target = _target_address(target_value)
        target_column = r.column("mailbox") if r.kind == sheets.ALIASES else r.column("address")
        target_op = by_address.get(target) if target else None
        if target is None or (target_op is None and target not in targets_known):
            plan.problem(
                r.sheet,
                r.row,
                target_column,
                _("«%(t)s» non è una casella di questo cliente né del file.", t=target_value[:100]),
                op,
            )
            continue
        if target_op is not None and target_op.action == ERROR:
            plan.problem(
                r.sheet,
                r.row,
                target_column,
                _("La casella %(t)s ha errori nel file: l'alias non sarà creato.", t=target),
                op,
            )
            continue
        op.data = {"target": target}
        first = seen.get(op.address) or by_address.get(op.address)
        if first is not None:
            plan.problem(
                r.sheet,
                r.row,
                column,
                _("%(a)s compare già nella %(where)s.", a=op.address, where=_where(first.sheet, first.row)),
                op,
            )
            continue
        seen[op.address] = op
    # Already there: the same alias to the same mailbox is "present"; anything else is taken.
    mine = (
        dict(
            db.session.execute(
                sa.select(Alias.address, Mailbox.address)
                .join(Mailbox, Mailbox.id == Alias.target_id)
                .where(Alias.customer_id == context.customer.id)
            ).all()
        )
        if any(plan.taken.get(a) == "alias" for a in seen)
        else {}
    )
    taken = addresses.in_use(a for a in seen if a not in mine and a in plan.taken)
    for address, op in seen.items():
        if address in mine:
            if mine[address] == op.data["target"]:
                op.action = PRESENT
            else:
                plan.problem(
                    op.sheet,
                    op.row,
                    op.column,
                    _("L'alias %(a)s esiste già e porta a %(t)s.", a=address, t=mine[address]),
                    op,
                )
        elif address in taken:
            plan.problem(op.sheet, op.row, op.column, taken[address], op)
    return ops


@dataclass
class _ListPlan:
    op: _Op
    members: dict[str, _Op] = field(default_factory=dict)


def _plan_lists(
    plan: _Plan, wb: sheets.Workbook, by_address: dict[str, _Op], aliases_seen: set[str], broken: set[str]
) -> None:
    context = plan.context
    customer_id = context.customer.id
    found: dict[str, _ListPlan] = {}
    bad_lists: list[_Op] = []
    # (row, list value, list column, member values, member column, description, owner op)
    mentions = []
    for r in wb.rows:
        if r.kind == sheets.LISTS:
            bad = _cell_problems(plan, r)
            if r.sheet in broken or "list" in bad:
                op = plan.add(_Op(ImportOp.LIST, r.sheet, r.row, r.column("list"), r.value("list").lower()))
                plan.fail(op, _("Una cella della riga non si può leggere."))
                continue
            members = [] if "members" in bad else sheets.split_values(r.value("members"))
            mentions.append(
                (
                    r,
                    r.value("list"),
                    r.column("list"),
                    members,
                    r.column("members"),
                    r.value("description"),
                    None,
                )
            )
        elif r.kind == sheets.MAILBOXES and r.value("lists"):
            owner = plan.by_row.get((r.sheet, r.row))
            for value in sheets.split_values(r.value("lists")):
                mentions.append(
                    (
                        r,
                        value,
                        r.column("lists"),
                        [r.value("address")],
                        r.column("lists"),
                        "",
                        owner or _Op("", "", 0, None, "", action=ERROR),
                    )
                )
    for r, list_value, list_column, members, member_column, description, owner in mentions:
        try:
            local, domain = context.address(list_value, "list")
        except ValidationError as e:
            op = plan.add(_Op(ImportOp.LIST, r.sheet, r.row, list_column, list_value.strip().lower()))
            plan.problem(r.sheet, r.row, list_column, _first_message(e), op)
            bad_lists.append(op)
            continue
        address = f"{local}@{domain.name}"
        lp = found.get(address)
        if lp is None:
            op = plan.add(_Op(ImportOp.LIST, r.sheet, r.row, list_column, address, data={"description": ""}))
            lp = found[address] = _ListPlan(op)
            other = by_address.get(address)
            if other is not None or address in aliases_seen:
                where = _where(other.sheet, other.row) if other else _("foglio degli alias")
                plan.problem(
                    r.sheet,
                    r.row,
                    list_column,
                    _("%(a)s compare già nella %(where)s.", a=address, where=where),
                    op,
                )
        if description and not lp.op.data.get("description"):
            lp.op.data["description"] = description[:200]
        for value in members:
            member = plan.add(
                _Op(ImportOp.MEMBER, r.sheet, r.row, member_column, address, member=value.strip().lower())
            )
            if owner is not None and owner.action == ERROR:
                plan.fail(member, _("La casella della riga ha errori: non sarà aggiunta alla lista."))
                continue
            try:
                local_m, domain_m = addresses.split_address(value, "members")
                normal = f"{local_m}@{domain_m}"
            except ValidationError:
                try:
                    normal = addresses.external_address(value, "members")
                except ValidationError as e:
                    plan.problem(r.sheet, r.row, member_column, _first_message(e), member)
                    continue
            member.member = normal
            if normal in lp.members:
                member.action = PRESENT  # named twice in the file: added once
                continue
            lp.members[normal] = member
    # What exists already: lists of this customer (their members), and addresses taken otherwise.
    addresses_ = [a for a in found if plan.taken.get(a) == "list"]
    existing_lists = (
        {
            d.address: d
            for d in db.session.scalars(
                sa.select(DistributionList).where(
                    DistributionList.customer_id == customer_id, DistributionList.address.in_(addresses_)
                )
            )
        }
        if addresses_
        else {}
    )
    taken = addresses.in_use(a for a in found if a not in existing_lists and a in plan.taken)
    all_members = {m for lp in found.values() for m in lp.members}
    # Lists among the members: ours by the customer's addresses, others' among the outside ones.
    outside = sorted(m for m in all_members if m.partition("@")[2] not in context.domains)
    other_lists = {m for m in all_members if plan.taken.get(m) == "list"}
    for start in range(0, len(outside), addresses.IN_USE_CHUNK):
        chunk = outside[start : start + addresses.IN_USE_CHUNK]
        other_lists.update(
            db.session.scalars(sa.select(DistributionList.address).where(DistributionList.address.in_(chunk)))
        )
    known_mailboxes = plan.mailboxes(all_members)
    per_list, per_customer = lists.external_limits(context.customer)
    external_total = lists.external_count(customer_id)
    for address, lp in found.items():
        op = lp.op
        existing = existing_lists.get(address)
        current: set[str] = set()
        current_external = 0
        if existing is not None:
            op.action = PRESENT if op.action != ERROR else ERROR
            for m in existing.members:
                current.add(m.address)
                current_external += m.external_address is not None
        elif address in taken:
            plan.problem(op.sheet, op.row, op.column, taken[address], op)
        new_external = 0
        count = len(current)
        for normal, member in lp.members.items():
            if member.action == ERROR:
                continue
            if op.action == ERROR:
                plan.fail(member, _("La lista %(l)s ha errori: il membro non sarà aggiunto.", l=address))
                continue
            if normal in current:
                member.action = PRESENT
                continue
            if normal == address:
                plan.problem(
                    member.sheet,
                    member.row,
                    member.column,
                    _("Una lista non può contenere sé stessa."),
                    member,
                )
                continue
            if normal in other_lists or normal in found:
                plan.problem(
                    member.sheet,
                    member.row,
                    member.column,
                    _("%(a)s è una lista di distribuzione: una lista non può contenerne un'altra.", a=normal),
                    member,
                )
                continue
            internal = normal.partition("@")[2] in context.domains
            if internal:
                mailbox_op = by_address.get(normal)
                if mailbox_op is None and normal not in known_mailboxes:
                    plan.problem(
                        member.sheet,
                        member.row,
                        member.column,
                        _("%(a)s non è una casella di questo cliente né del file.", a=normal),
                        member,
                    )
                    continue
                if mailbox_op is not None and mailbox_op.action == ERROR:
                    plan.problem(
                        member.sheet,
                        member.row,
                        member.column,
                        _("La casella %(a)s ha errori nel file: non sarà aggiunta alla lista.", a=normal),
                        member,
                    )
                    continue
            if count + 1 > lists.MAX_MEMBERS:
                plan.problem(
                    member.sheet,
                    member.row,
                    member.column,
                    _("La lista %(l)s avrebbe più di %(n)d membri.", l=address, n=lists.MAX_MEMBERS),
                    member,
                )
                continue
            if not internal:
                if current_external + new_external + 1 > per_list:
                    plan.problem(
                        member.sheet,
                        member.row,
                        member.column,
                        _(
                            "Troppi indirizzi esterni nella lista %(l)s: il limite è %(limit)d per lista.",
                            l=address,
                            limit=per_list,
                        ),
                        member,
                    )
                    continue
                if external_total + 1 > per_customer:
                    plan.problem(
                        member.sheet,
                        member.row,
                        member.column,
                        _(
                            "Troppi indirizzi esterni in tutte le liste: il limite è %(limit)d per cliente.",
                            limit=per_customer,
                        ),
                        member,
                    )
                    continue
                new_external += 1
                external_total += 1
            count += 1
        if op.action == CREATE and not any(m.action == CREATE for m in lp.members.values()):
            op.data["empty"] = True


def _plan_file(context: CustomerContext, wb: sheets.Workbook) -> _Plan:
    plan = _Plan(context)
    plan.order = {info.name: i for i, info in enumerate(wb.sheets)}
    for p in wb.problems:
        plan.problem(p.sheet, p.row, p.column, p.message)
    broken = _missing_columns(plan, wb)
    mailbox_rows = [r for r in wb.rows if r.kind == sheets.MAILBOXES]
    by_address = _plan_mailboxes(plan, mailbox_rows, broken)
    _mark_existing_mailboxes(plan, by_address)
    _check_room(plan, by_address)
    first_sheet = mailbox_rows[0].sheet if mailbox_rows else None
    _check_credit(plan, by_address, first_sheet)
    alias_ops = _plan_aliases(plan, wb, by_address, broken)
    aliases_seen = {op.address for op in alias_ops if op.action != ERROR}
    _plan_lists(plan, wb, by_address, aliases_seen, broken)
    plan.problems.sort(
        key=lambda p: (plan.order.get(p["sheet"], -1), p["row"] or 0, p["column"] or "", p["message"])
    )
    return plan


def clean_filename(filename: object) -> str:
    """The upload's name as shown in the history: its last part, printable, at most 255 characters."""
    name = PurePath(str(filename or "").replace("\\", "/")).name if filename else ""
    name = "".join(c for c in name if c.isprintable() and c not in '"\\;')[:255].strip(" .")
    return name or "foglio.xlsx"


def preview(actor: Actor, customer_id: object, data: bytes, filename: object) -> Import:
    """Read and check a whole file for the customer; store the import and its rows, nothing else.

    Raises sheets.FileRejected (a ValidationError on "file") for a file that cannot be read.
    """
    context = CustomerContext.load(actor, customer_id)
    name = clean_filename(filename)
    cfg = current_app.config
    wb = sheets.read_upload(data, name, max_bytes=cfg["IMPORT_MAX_BYTES"], max_rows=cfg["IMPORT_MAX_ROWS"])
    plan = _plan_file(context, wb)
    counts: dict[str, dict[str, int]] = {op.value: {CREATE: 0, PRESENT: 0, ERROR: 0} for op in ImportOp}
    for op in plan.ops:
        counts[op.op][op.action] += 1
    now = clock.now()
    imp = Import(
        customer_id=context.customer.id,
        created_by_id=actor.user_id,
        created_by=actor.label[:254],
        created_at=now,
        filename=name,
        size_bytes=len(data),
        state=ImportState.PREVIEWED,
        counts=counts,
        problems=plan.problems[:MAX_PROBLEMS],
        problem_count=len(plan.problems),
        valid_only=False,
        expires_at=now + timedelta(hours=cfg["IMPORT_TTL_HOURS"]),
        generated_count=0,
    )
    db.session.add(imp)
    db.session.flush()
    rows = [
        {
            "import_id": imp.id,
            "seq": seq,
            "op": op.op,
            "sheet": op.sheet[:100],
            "row": op.row,
            "column": op.column,
            "address": op.address[:320],
            "member": op.member[:320] if op.member else None,
            "data": op.data,
            "secret": vault.seal(op.password) if op.password and op.action == CREATE else None,
            "generate": op.generate and op.action == CREATE,
            "action": op.action,
            "outcome": RowOutcome.PENDING,
            "message": op.message[:500],
        }
        for seq, op in enumerate(plan.ops)
    ]
    for start in range(0, len(rows), 1000):
        db.session.execute(ImportRow.__table__.insert(), rows[start : start + 1000])
    audit.record(
        actor,
        "import.preview",
        customer_id=context.customer.id,
        target=name,
        changes={"rows": [None, len(plan.ops)], "problems": [None, len(plan.problems)]},
    )
    db.session.commit()
    return imp


# ---------------------------------------------------------------------------------------------
# Reading imports


def template_for(actor: Actor, customer_id: object = None) -> tuple[str, bytes]:
    """(file name, .xlsx) of the template for a customer: its drop-down offers the classes it may
    create (a contract's classes with an allowance, or every class for Pay per Use); without a
    customer, every class."""
    every = classes.all_classes()
    customer = customer_for(actor, customer_id) if customer_id is not None else None
    if customer is not None and customer.plan == Plan.CONTRACT:
        offered = {a.service_class_id for a in customer.allowances if a.max_accounts > 0}
        every = [c for c in every if c.id in offered]
    return "modello-importazione.xlsx", sheets.template([c.name for c in every])


def get_import(actor: Actor, import_id: object) -> Import:
    return get_scoped(actor, Import, import_id, _("Importazione non trovata."))


def imports_for_customer(actor: Actor, customer_id: object, limit: int = 50) -> list[Import]:
    customer = customer_for(actor, customer_id)
    return list(
        db.session.scalars(
            sa.select(Import)
            .where(Import.customer_id == customer.id)
            .order_by(Import.created_at.desc(), Import.id.desc())
            .limit(limit)
        )
    )


ROWS_PAGE = 100


def rows_page(
    imp: Import,
    *,
    op: str | None = None,
    only_problems: bool = False,
    after: int = -1,
    limit: int = ROWS_PAGE,
) -> list[ImportRow]:
    """The import's rows in file order after seq `after`: all, one kind, or those with a problem."""
    stmt = sa.select(ImportRow).where(ImportRow.import_id == imp.id, ImportRow.seq > after)
    if op:
        stmt = stmt.where(ImportRow.op == op)
    if only_problems:
        stmt = stmt.where(sa.or_(ImportRow.action == ERROR, ImportRow.outcome == RowOutcome.ERROR))
    return list(db.session.scalars(stmt.order_by(ImportRow.seq).limit(limit)))


def outcome_counts(import_id: int) -> dict[str, dict[str, int]]:
    """{op: {outcome: n}} as the rows say now."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for op, outcome, n in db.session.execute(
        sa.select(ImportRow.op, ImportRow.outcome, sa.func.count())
        .where(ImportRow.import_id == import_id)
        .group_by(ImportRow.op, ImportRow.outcome)
    ):
        out[op][outcome] = n
    return dict(out)


def to_create(imp: Import) -> int:
    return sum(c.get(CREATE, 0) for c in (imp.counts or {}).values())


def errors_json(imp: Import) -> list[dict]:
    return [dict(p) for p in imp.problems or []]


# ---------------------------------------------------------------------------------------------
# Apply


def start_apply(actor: Actor, import_id: object, *, valid_only: bool = False) -> Job:
    """Start creating what a previewed import says: a job on the `bulk` queue.

    Refused (409) when the preview found problems, unless valid_only (the rows with a
    problem are then left out, and the report says so), and when the import is not waiting.
    """
    imp = get_import(actor, import_id)
    customer = customer_for(actor, imp.customer_id)
    require_manage(actor, customer)
    if imp.state != ImportState.PREVIEWED:
        raise Conflict(
            _(
                "Questa importazione non è più da confermare (%(state)s).",
                state=labels.label("import_state", imp.state),
            )
        )
    if imp.problem_count and not valid_only:
        raise Conflict(
            ngettext(
                "Il foglio ha %(num)d problema: correggilo e carica di nuovo il file, oppure applica solo le righe valide.",
                "Il foglio ha %(num)d problemi: correggili e carica di nuovo il file, oppure applica solo le righe valide.",
                imp.problem_count,
            )
        )
    moved = db.session.execute(
        sa.update(Import)
        .where(Import.id == imp.id, Import.state == ImportState.PREVIEWED)
        .values(
            state=ImportState.APPLYING,
            valid_only=valid_only,
            applied_by=actor.label[:254],
            applied_at=clock.now(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        db.session.rollback()
        raise Conflict(_("Questa importazione è già stata avviata."))
    db.session.execute(
        sa.update(ImportRow)
        .where(ImportRow.import_id == imp.id, ImportRow.action == ERROR)
        .values(outcome=RowOutcome.SKIPPED, secret=None)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        actor,
        "import.apply",
        customer_id=imp.customer_id,
        target=imp.filename,
        changes={"valid_only": [None, valid_only]} if valid_only else {},
    )
    db.session.commit()
    return _enqueue(actor, imp)


def _enqueue(actor: Actor, imp: Import) -> Job:
    total = db.session.scalar(
        sa.select(sa.func.count()).where(
            ImportRow.import_id == imp.id, ImportRow.outcome != RowOutcome.SKIPPED
        )
    )
    job = jobs.enqueue(actor, "bulk_import", customer_id=imp.customer_id, args=[imp.id], total=total)
    db.session.execute(sa.update(Import).where(Import.id == imp.id).values(job_id=job.id))
    db.session.commit()
    return job


def resumable(imp: Import) -> bool:
    """An import left applying by a job that ended (it failed, its worker died for good)."""
    if imp.state != ImportState.APPLYING:
        return False
    job = db.session.get(Job, imp.job_id) if imp.job_id else None
    while job is not None and (retry := jobs.retried_as(job)) is not None:
        job = retry
    return job is None or job.state not in ACTIVE_STATES


def resume(actor: Actor, import_id: object) -> Job:
    """Run an interrupted import again: what was created stays, the rest is done."""
    imp = get_import(actor, import_id)
    require_manage(actor, customer_for(actor, imp.customer_id))
    # Under the customer's lock: two resumes at once start one job (enqueue commits its row,
    # which the second finds running once it has the lock).
    limits.lock_customer(imp.customer_id)
    db.session.refresh(imp)
    if not resumable(imp) or _running_for(imp):
        db.session.rollback()
        raise Conflict(_("Questa importazione non è interrotta: non c'è niente da riprendere."))
    return _enqueue(actor, imp)


def _running_for(imp: Import) -> bool:
    """Whether a bulk_import job of this import is queued or running (whichever row the import names)."""
    active = db.session.scalars(
        sa.select(Job.args).where(
            Job.kind == "bulk_import", Job.customer_id == imp.customer_id, Job.state.in_(ACTIVE_STATES)
        )
    )
    return any(args == [imp.id] for args in active)


def _claim(import_id: int, me: int) -> list[ImportRow]:
    """Up to CHUNK pending mailbox rows nobody has, now this job's: the ids first (PostgreSQL:
    FOR UPDATE SKIP LOCKED, so rows another process is claiming are passed over, not waited
    for), then the claim itself, conditional: a row taken meanwhile is left to its taker.

    Two statements on purpose: as one UPDATE ... WHERE id IN (SELECT ... LIMIT ... SKIP LOCKED),
    PostgreSQL may run the subquery again for each row and claim far more than CHUNK.
    """
    ids = list(
        db.session.scalars(
            sa.select(ImportRow.id)
            .where(
                ImportRow.import_id == import_id,
                ImportRow.op == ImportOp.MAILBOX,
                ImportRow.outcome == RowOutcome.PENDING,
                ImportRow.claimed_by.is_(None),
            )
            .order_by(ImportRow.seq)
            .limit(CHUNK)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        db.session.execute(
            sa.update(ImportRow)
            .where(ImportRow.id.in_(ids), ImportRow.claimed_by.is_(None))
            .values(claimed_by=me, claimed_at=clock.now())
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return list(
        db.session.scalars(
            sa.select(ImportRow)
            .where(
                ImportRow.import_id == import_id,
                ImportRow.op == ImportOp.MAILBOX,
                ImportRow.outcome == RowOutcome.PENDING,
                ImportRow.claimed_by == me,
            )
            .order_by(ImportRow.seq)
            .options(sa.orm.undefer(ImportRow.secret))
        )
    )


def _other_claimants(import_id: int, me: int) -> set[int]:
    """The jobs other than this one holding pending rows of the import."""
    return set(
        db.session.scalars(
            sa.select(ImportRow.claimed_by)
            .where(
                ImportRow.import_id == import_id,
                ImportRow.outcome == RowOutcome.PENDING,
                ImportRow.claimed_by.is_not(None),
                ImportRow.claimed_by != me,
            )
            .distinct()
        )
    )


def _release_dead_claims(import_id: int, me: int) -> int:
    """Hand back the rows claimed by jobs that no longer run (killed, failed): someone else does them."""
    claimants = _other_claimants(import_id, me)
    if not claimants:
        return 0
    alive = set(
        db.session.scalars(sa.select(Job.id).where(Job.id.in_(claimants), Job.state.in_(ACTIVE_STATES)))
    )
    dead = claimants - alive
    if dead:
        db.session.execute(
            sa.update(ImportRow)
            .where(
                ImportRow.import_id == import_id,
                ImportRow.outcome == RowOutcome.PENDING,
                ImportRow.claimed_by.in_(dead),
            )
            .values(claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    return len(claimants)


def _error(row_id: int, error: DomainError) -> None:
    db.session.rollback()
    message = _first_message(error) if isinstance(error, ValidationError) else error.message
    db.session.execute(
        sa.update(ImportRow)
        .where(ImportRow.id == row_id)
        .values(outcome=RowOutcome.ERROR, message=message[:500], secret=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _create_mailboxes(context: CustomerContext, rows: list[ImportRow], import_id: int) -> None:
    customer_id = context.customer.id
    for row in rows:
        row_id = row.id
        if _state(import_id) != ImportState.APPLYING:
            return  # cancelled or ended meanwhile: the rest stays pending (then "not done")
        existing = db.session.scalar(sa.select(Mailbox.customer_id).where(Mailbox.address == row.address))
        if existing == customer_id:
            row.outcome, row.secret = RowOutcome.PRESENT, None
            db.session.commit()
            continue
        try:
            if row.generate:
                password = generate_password()
            elif row.secret is not None:
                password = vault.unseal_text(row.secret)
            else:
                raise DomainError(_("La password di questa riga non è più disponibile: ricarica il file."))
            draft = mailboxes.validate_mailbox(
                context,
                address=row.address,
                password=password,
                display_name=row.data.get("display_name", ""),
                service_class=row.data.get("service_class_id"),
            )
            _apply_mailbox_row(context, row, draft, password, import_id)
        except _Ended:
            return
        except DomainError as e:
            _error(row_id, e)
        except vault.VaultError:
            _error(
                row_id, DomainError(_("La password di questa riga non si può più leggere: ricarica il file."))
            )


class _Ended(Exception):
    """The import stopped applying while a row waited for a hashing slot."""


def _apply_mailbox_row(
    context: CustomerContext, row: ImportRow, draft, password: str, import_id: int
) -> None:
    """Hash and write one row's mailbox, its outcome in the same transaction.

    The customer's hashing slots may all be taken for a while (its other work, or for up to a
    minute those of a worker that was killed holding them): that is a wait, not a failure of
    the row, so the row is tried again until a slot frees or the import stops applying.
    """
    row_id = row.id
    config = current_app.config
    deadline = time.monotonic() + config["ARGON2_SLOT_HOLD_SECONDS"] + config["ARGON2_WAIT_SECONDS"] + 60
    while True:
        # Nothing open while the password is hashed; the row's outcome commits with the mailbox.
        db.session.commit()
        row = db.session.get(ImportRow, row_id)
        row.outcome = RowOutcome.CREATED
        row.message = ""
        row.secret = vault.seal(password) if row.generate else None
        try:
            mailboxes.apply_mailbox(context.actor, draft)
            return
        except passwords.HashingBusy:
            db.session.rollback()
            if time.monotonic() > deadline:
                raise
            if _state(import_id) != ImportState.APPLYING:
                raise _Ended from None
            time.sleep(1)


def _process_mailboxes(ctx, imp: Import, context: CustomerContext, *, wait: bool) -> int:
    """Claim and create mailbox rows until none is left; wait: also until the others' claims end.
    How many rows this process claimed."""
    me = ctx.job_id
    claimed = 0
    while True:
        if _state(imp.id) != ImportState.APPLYING:
            return claimed
        if wait:
            ctx.raise_if_cancelled()
        rows = _claim(imp.id, me)
        if rows:
            claimed += len(rows)
            _create_mailboxes(context, rows, imp.id)
            if wait:
                _report_progress(ctx, imp.id)
            continue
        if _unclaimed(imp.id):
            time.sleep(0.05)  # rows another process was claiming just then: try again
            continue
        if not wait:
            return claimed
        if not _release_dead_claims(imp.id, me):
            return claimed
        _report_progress(ctx, imp.id)
        time.sleep(0.5)


def _unclaimed(import_id: int) -> bool:
    return (
        db.session.scalar(
            sa.select(ImportRow.id)
            .where(
                ImportRow.import_id == import_id,
                ImportRow.op == ImportOp.MAILBOX,
                ImportRow.outcome == RowOutcome.PENDING,
                ImportRow.claimed_by.is_(None),
            )
            .limit(1)
        )
        is not None
    )


def _wait_for_claims(import_id: int, me: int) -> None:
    """Until no running job holds a claimed row of the import (each stops at its next row once
    the import is no longer applying), so that the end sees every mailbox they created."""
    deadline = time.monotonic() + current_app.config["JOB_STALE_SECONDS"] + 30
    while time.monotonic() < deadline:
        db.session.rollback()
        claimants = _other_claimants(import_id, me)
        if not claimants or not db.session.scalar(
            sa.select(sa.func.count()).where(Job.id.in_(claimants), Job.state.in_(ACTIVE_STATES))
        ):
            return
        time.sleep(0.5)


def _state(import_id: int) -> str | None:
    return db.session.scalar(sa.select(Import.state).where(Import.id == import_id))


def _report_progress(ctx, import_id: int) -> None:
    counts = outcome_counts(import_id)
    done = sum(
        n
        for per in counts.values()
        for o, n in per.items()
        if o not in (RowOutcome.PENDING, RowOutcome.SKIPPED)
    )
    total = sum(n for per in counts.values() for o, n in per.items() if o != RowOutcome.SKIPPED)
    errors = sum(per.get(RowOutcome.ERROR, 0) for per in counts.values())
    ctx.progress(
        done,
        total,
        ngettext(
            "%(done)s di %(total)s righe · %(num)d errore",
            "%(done)s di %(total)s righe · %(num)d errori",
            errors,
            done=labels.number(done),
            total=labels.number(total),
        ),
    )


def _pending(import_id: int, op: str) -> list[ImportRow]:
    return list(
        db.session.scalars(
            sa.select(ImportRow)
            .where(
                ImportRow.import_id == import_id, ImportRow.op == op, ImportRow.outcome == RowOutcome.PENDING
            )
            .order_by(ImportRow.seq)
        )
    )


ALIAS_BATCH = 200


def _create_aliases(ctx, imp: Import, context: CustomerContext) -> None:
    """The alias rows, ALIAS_BATCH at a time in one transaction each (their outcomes with them);
    a batch that meets a conflict is done again one row at a time, so each row says why."""
    customer_id = context.customer.id
    pending = _pending(imp.id, ImportOp.ALIAS)
    for start in range(0, len(pending), ALIAS_BATCH):
        ctx.raise_if_cancelled()
        batch = [db.session.get(ImportRow, r.id) for r in pending[start : start + ALIAS_BATCH]]
        present = dict(
            db.session.execute(
                sa.select(Alias.address, Mailbox.address)
                .join(Mailbox, Mailbox.id == Alias.target_id)
                .where(Alias.customer_id == customer_id, Alias.address.in_([r.address for r in batch]))
            ).all()
        )
        drafts, rows = [], []
        for row in batch:
            target = row.data.get("target")
            if present.get(row.address) == target:
                row.outcome = RowOutcome.PRESENT
                continue
            try:
                drafts.append(aliases.validate_alias(context, address=row.address, target=target))
                rows.append(row)
            except DomainError as e:
                row.outcome, row.message = (
                    RowOutcome.ERROR,
                    _first_message(e)[:500] if isinstance(e, ValidationError) else e.message[:500],
                )
        db.session.commit()  # the present and refused rows
        for row in rows:
            row.outcome, row.message = RowOutcome.CREATED, ""
        try:
            aliases.apply_aliases(context.actor, drafts)
        except DomainError:
            db.session.rollback()
            _create_aliases_one_by_one(context, [r.id for r in rows])
        _report_progress(ctx, imp.id)


def _create_aliases_one_by_one(context: CustomerContext, row_ids: list[int]) -> None:
    for row_id in row_ids:
        row = db.session.get(ImportRow, row_id)
        try:
            draft = aliases.validate_alias(context, address=row.address, target=row.data.get("target"))
            row.outcome, row.message = RowOutcome.CREATED, ""
            aliases.apply_alias(context.actor, draft)
        except DomainError as e:
            _error(row_id, e)


def _create_lists(ctx, imp: Import, context: CustomerContext) -> None:
    customer_id = context.customer.id
    members_by_list: dict[str, list[ImportRow]] = defaultdict(list)
    for m in _pending(imp.id, ImportOp.MEMBER):
        members_by_list[m.address].append(m)
    for n, row in enumerate(_pending(imp.id, ImportOp.LIST)):
        ctx.raise_if_cancelled()
        row_id = row.id
        members = members_by_list.pop(row.address, [])
        good: list[ImportRow] = list(members)
        try:  # all at once (two queries); on a refusal, one by one to say which and why
            lists.check_members(context, [m.member for m in members], row.address)
        except DomainError:
            good = []
            for m in members:
                try:
                    lists.check_member(context, m.member, row.address)
                    good.append(m)
                except DomainError as e:
                    _error(m.id, e)
        good = [db.session.get(ImportRow, m.id) for m in good]
        dlist = db.session.scalar(sa.select(DistributionList).where(DistributionList.address == row.address))
        row = db.session.get(ImportRow, row_id)
        if dlist is not None and dlist.customer_id == customer_id:
            row.outcome = RowOutcome.PRESENT
            db.session.commit()
            _add_members(context, dlist.id, good)
            continue
        try:
            draft = lists.validate_list(
                context,
                address=row.address,
                members=[m.member for m in good],
                description=row.data.get("description", ""),
            )
            row.outcome, row.message = RowOutcome.CREATED, ""
            for m in good:
                m.outcome, m.message = RowOutcome.CREATED, ""
            lists.apply_list(context.actor, draft)
        except DomainError as e:
            _error(row_id, e)
            for m in good:
                _error(
                    m.id,
                    DomainError(_("La lista non è stata creata: %(why)s", why=getattr(e, "message", ""))),
                )
        if n % 20 == 19:
            _report_progress(ctx, imp.id)
    # Members of lists that were already there.
    for address, members in members_by_list.items():
        dlist = db.session.scalar(
            sa.select(DistributionList).where(
                DistributionList.address == address, DistributionList.customer_id == customer_id
            )
        )
        if dlist is None:
            for m in members:
                _error(m.id, DomainError(_("La lista %(l)s non esiste.", l=address)))
            continue
        _add_members(context, dlist.id, members)


def _add_members(context: CustomerContext, list_id: int, rows: list[ImportRow]) -> None:
    present = set(
        db.session.scalars(
            sa.select(sa.func.coalesce(Mailbox.address, ListMember.external_address))
            .select_from(ListMember)
            .outerjoin(Mailbox, Mailbox.id == ListMember.mailbox_id)
            .where(ListMember.list_id == list_id)
        )
    )
    for m in rows:
        row_id = m.id
        m = db.session.get(ImportRow, row_id)
        if m.outcome != RowOutcome.PENDING:
            continue
        if m.member in present:
            m.outcome = RowOutcome.PRESENT
            db.session.commit()
            continue
        try:
            m.outcome, m.message = RowOutcome.CREATED, ""
            lists.add_member(context.actor, list_id, m.member)
            present.add(m.member)
        except DomainError as e:
            _error(row_id, e)


def _context(ctx, imp: Import) -> CustomerContext:
    from app.models import Customer

    customer = db.session.get(Customer, imp.customer_id)
    actor = Actor(ctx.actor.user_id, ctx.actor.label, "system", imp.customer_id, None, "job")
    return CustomerContext(actor, customer)


def run_apply(ctx, import_id: int) -> dict:
    """The `bulk_import` job: mailboxes (with helpers hashing beside it), then aliases and lists, then the end."""
    imp = db.session.get(Import, import_id)
    if imp is None or imp.state != ImportState.APPLYING:
        return {"import": import_id, "skipped": True}
    context = _context(ctx, imp)
    try:
        _release_dead_claims(imp.id, ctx.job_id)
        pending = db.session.scalar(
            sa.select(sa.func.count()).where(
                ImportRow.import_id == imp.id,
                ImportRow.op == ImportOp.MAILBOX,
                ImportRow.outcome == RowOutcome.PENDING,
            )
        )
        cfg = current_app.config
        helpers = min(cfg["IMPORT_PARALLEL"], cfg["ARGON2_PER_CUSTOMER"]) - 1
        helpers = max(0, min(helpers, pending // CHUNK))
        for _i in range(helpers):
            try:
                jobs.enqueue(context.actor, "bulk_import_part", customer_id=imp.customer_id, args=[imp.id])
            except jobs.QueueUnavailable:
                break
        _report_progress(ctx, imp.id)
        _process_mailboxes(ctx, imp, context, wait=True)
        ctx.raise_if_cancelled()
        if _state(imp.id) != ImportState.APPLYING:
            return {"import": imp.id, "ended": _state(imp.id)}  # ended elsewhere: nothing more to do
        _create_aliases(ctx, imp, context)
        _create_lists(ctx, imp, context)
        _report_progress(ctx, imp.id)
    except jobs.JobCancelled:
        db.session.rollback()
        _stop(imp.id)
        _wait_for_claims(imp.id, ctx.job_id)
        finish(imp.id, ImportState.CANCELLED)
        raise
    result = finish(imp.id, ImportState.DONE)
    return {"import": imp.id, **{op: per for op, per in result.items()}}


def _stop(import_id: int) -> None:
    """Cancelled: the import says so at once, so that every helper stops at its next row."""
    db.session.execute(
        sa.update(Import)
        .where(Import.id == import_id, Import.state == ImportState.APPLYING)
        .values(state=ImportState.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def cancelled_before_start(import_id: int) -> None:
    """The import's job was cancelled before a worker took it: the import ends cancelled."""
    if _state(import_id) == ImportState.APPLYING:
        _stop(import_id)
        finish(import_id, ImportState.CANCELLED)


def run_part(ctx, import_id: int) -> dict:
    """A `bulk_import_part` job: create mailbox rows beside the main job while there are some."""
    imp = db.session.get(Import, import_id)
    if imp is None or imp.state != ImportState.APPLYING:
        return {"import": import_id, "skipped": True}
    return {"import": import_id, "claimed": _process_mailboxes(ctx, imp, _context(ctx, imp), wait=False)}


def finish(import_id: int, state: str) -> dict:
    """End an import: rows never reached say so, the report is written, the secrets are wiped.

    Once only: the move to the final state is conditional (an import being applied, or one just
    marked cancelled), so a second caller (a retried job, a racing resume) changes nothing.
    """
    now = clock.now()
    settable = (
        (ImportState.APPLYING, ImportState.CANCELLED)
        if state == ImportState.CANCELLED
        else (ImportState.APPLYING,)
    )
    moved = db.session.execute(
        sa.update(Import)
        .where(Import.id == import_id, Import.finished_at.is_(None), Import.state.in_(settable))
        .values(state=state, finished_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    imp = db.session.get(Import, import_id)
    if not moved:
        db.session.rollback()
        return dict(db.session.get(Import, import_id).result or {})
    db.session.refresh(imp)
    if state != ImportState.DONE:
        db.session.execute(
            sa.update(ImportRow)
            .where(ImportRow.import_id == import_id, ImportRow.outcome == RowOutcome.PENDING)
            .values(outcome=RowOutcome.SKIPPED, message=_("Non eseguita: l'importazione è stata interrotta."))
            .execution_options(synchronize_session=False)
        )
    generated = list(
        db.session.execute(
            sa.select(ImportRow.address, ImportRow.secret)
            .where(
                ImportRow.import_id == import_id,
                ImportRow.generate.is_(True),
                ImportRow.outcome == RowOutcome.CREATED,
                ImportRow.secret.is_not(None),
            )
            .order_by(ImportRow.seq)
        )
    )
    if generated:
        table = [(address, vault.unseal_text(secret)) for address, secret in generated]
        imp.generated = vault.seal(
            sheets.write_workbook([(_("Password generate"), [_("Casella"), _("Password")], table)])
        )
        imp.generated_count = len(table)
        imp.generated_expires_at = now + timedelta(hours=current_app.config["IMPORT_TTL_HOURS"])
    db.session.execute(
        sa.update(ImportRow)
        .where(ImportRow.import_id == import_id, ImportRow.secret.is_not(None))
        .values(secret=None)
        .execution_options(synchronize_session=False)
    )
    imp.result = outcome_counts(import_id)
    imp.report = build_report(imp)
    db.session.commit()
    return imp.result


def build_report(imp: Import) -> bytes:
    """The outcome of every row: sheet, row, column, what, address, outcome, why. No secret."""

    def lines():
        after = -1
        while True:
            batch = rows_page(imp, after=after, limit=2000)
            if not batch:
                return
            for r in batch:
                yield (
                    r.sheet,
                    r.row,
                    r.column or "",
                    str(labels.label("import_op", r.op)),
                    r.address,
                    r.member or r.data.get("target") or "",
                    r.data.get("service_class", ""),
                    str(labels.label("row_outcome", r.outcome)),
                    r.message,
                )
            after = batch[-1].seq

    headers = [
        _("Foglio"),
        _("Riga"),
        _("Colonna"),
        _("Tipo"),
        _("Indirizzo"),
        _("Membro o destinazione"),
        _("Classe di servizio"),
        _("Esito"),
        _("Motivo"),
    ]
    return sheets.write_workbook([(_("Esito"), headers, lines())])


def report(actor: Actor, import_id: object) -> tuple[str, bytes]:
    """(file name, .xlsx) of a finished import's report."""
    imp = get_import(actor, import_id)
    if imp.report is None:
        raise NotFound(_("Il resoconto sarà pronto quando l'importazione sarà finita."))
    stem = PurePath(imp.filename).stem or "foglio"
    return f"{stem}-esito.xlsx", imp.report


def generated_available(imp: Import) -> bool:
    """The generated passwords of a finished import wait for their one download."""
    return bool(
        imp.generated_count
        and imp.generated_taken_at is None
        and imp.generated_expires_at is not None
        and imp.generated_expires_at > clock.now()
    )


def take_generated_passwords(actor: Actor, import_id: object, current_password: object) -> tuple[str, bytes]:
    """The generated passwords, once: the user confirms with their own password, then the file is wiped."""
    imp = get_import(actor, import_id)
    require_manage(actor, customer_for(actor, imp.customer_id))
    if actor.user_id is not None:
        user = db.session.get(User, actor.user_id)
        users.check_current_password(actor, user, current_password)
    if imp.generated is None or not generated_available(imp):
        raise NotFound(_("Le password generate sono già state scaricate, o sono scadute."))
    data = vault.unseal(imp.generated)
    moved = db.session.execute(
        sa.update(Import)
        .where(Import.id == imp.id, Import.generated.is_not(None))
        .values(generated=None, generated_taken_at=clock.now())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        db.session.rollback()
        raise NotFound(_("Le password generate sono già state scaricate, o sono scadute."))
    audit.record(actor, "import.passwords", customer_id=imp.customer_id, target=imp.filename)
    db.session.commit()
    stem = PurePath(imp.filename).stem or "foglio"
    return f"{stem}-password.xlsx", data


def discard(actor: Actor, import_id: object) -> None:
    """A preview that will not be applied (the CLI's --dry-run): its secrets are wiped at once."""
    imp = get_import(actor, import_id)
    if imp.state != ImportState.PREVIEWED:
        return
    db.session.execute(
        sa.update(Import)
        .where(Import.id == imp.id, Import.state == ImportState.PREVIEWED)
        .values(state=ImportState.EXPIRED, finished_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.update(ImportRow)
        .where(ImportRow.import_id == imp.id)
        .values(secret=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def expire_abandoned() -> dict:
    """Wipe what waited too long: previews never applied, generated passwords never taken, and
    imports whose job ended without finishing them (then failed, with their report)."""
    now = clock.now()
    expired = list(
        db.session.scalars(
            sa.select(Import.id).where(Import.state == ImportState.PREVIEWED, Import.expires_at < now)
        )
    )
    for import_id in expired:
        moved = db.session.execute(
            sa.update(Import)
            .where(Import.id == import_id, Import.state == ImportState.PREVIEWED)
            .values(state=ImportState.EXPIRED, finished_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved:
            db.session.execute(
                sa.update(ImportRow)
                .where(ImportRow.import_id == import_id)
                .values(secret=None)
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
    taken = db.session.execute(
        sa.update(Import)
        .where(Import.generated.is_not(None), Import.generated_expires_at < now)
        .values(generated=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    stale = 0
    ttl = timedelta(hours=current_app.config["IMPORT_TTL_HOURS"])
    for imp in db.session.scalars(
        sa.select(Import).where(Import.state == ImportState.APPLYING, Import.applied_at < now - ttl)
    ).all():
        if resumable(imp):
            finish(imp.id, ImportState.FAILED)
            stale += 1
    return {"expired": len(expired), "generated_wiped": taken, "failed": stale}
