"""How the product names its codes and writes dates, in the reader's language.

The one place that turns stored codes (`payg`, `suspended`, `approved`,
`customer_admin`, audit actions and fields) into words, and datetimes into
the one date format of each language. Pages, the audit log and emails all
read from here, so a thing has one name everywhere.
"""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models.enums import (
    Codes,
    DomainState,
    EntryKind,
    ImportOp,
    ImportState,
    JobState,
    Locale,
    MailboxStatus,
    OutboxState,
    Plan,
    PostPolicy,
    RechargeState,
    RequestStatus,
    Role,
    RowOutcome,
    WalletState,
)

PLAN = {Plan.PAYG: _l("Pay per Use"), Plan.CONTRACT: _l("A canone")}
MAILBOX_STATUS = {
    MailboxStatus.ACTIVE: _l("Attiva"),
    MailboxStatus.SUSPENDED: _l("Sospesa"),
    MailboxStatus.DISABLED: _l("Disabilitata"),
}
REQUEST_STATUS = {
    RequestStatus.OPEN: _l("In attesa"),
    RequestStatus.APPROVED: _l("Approvata"),
    RequestStatus.REJECTED: _l("Rifiutata"),
}
ROLE = {
    Role.STAFF: _l("Supporto tecnico"),
    Role.CUSTOMER_ADMIN: _l("Amministratore cliente"),
    "system": _l("Sistema"),  # the audit trail's actor for scheduled work, not a user's role
}
DOMAIN_STATE = {DomainState.PENDING: _l("In attesa di verifica"), DomainState.ACTIVE: _l("Attivo")}
# Each language by its own name, the same in every language.
LANGUAGE = {Locale.IT: "Italiano", Locale.EN: "English"}
POST_POLICY = {
    PostPolicy.ANYONE: _l("Chiunque"),
    PostPolicy.CUSTOMER: _l("Solo le caselle del cliente"),
    PostPolicy.MEMBERS: _l("Solo i membri"),
}
JOB_STATE = {
    JobState.QUEUED: _l("In coda"),
    JobState.RUNNING: _l("In corso"),
    JobState.DONE: _l("Completato"),
    JobState.FAILED: _l("Non riuscito"),
    JobState.CANCELLED: _l("Annullato"),
}
OUTBOX_STATE = {
    OutboxState.PENDING: _l("Da inviare"),
    OutboxState.SENT: _l("Inviata"),
    OutboxState.FAILED: _l("Non inviata"),
}
WALLET_STATE = {
    WalletState.OK: _l("In regola"),
    WalletState.WARNING: _l("Credito in esaurimento"),
    WalletState.GRACE: _l("Credito esaurito: periodo di tolleranza"),
    WalletState.ON_HOLD: _l("Caselle bloccate per credito esaurito"),
}
ENTRY_KIND = {
    EntryKind.CHARGE: _l("Addebito giornaliero"),
    EntryKind.CREDIT: _l("Ricarica"),
    EntryKind.ADJUSTMENT: _l("Rettifica"),
    EntryKind.FIRST_CREDIT: _l("Credito iniziale"),
}
RECHARGE_STATE = {
    RechargeState.REQUESTED: _l("In attesa del bonifico"),
    RechargeState.CONFIRMED: _l("Accreditata"),
    RechargeState.CANCELLED: _l("Annullata"),
}
IMPORT_STATE = {
    ImportState.PREVIEWED: _l("Da confermare"),
    ImportState.APPLYING: _l("In corso"),
    ImportState.DONE: _l("Completata"),
    ImportState.FAILED: _l("Non riuscita"),
    ImportState.CANCELLED: _l("Annullata"),
    ImportState.EXPIRED: _l("Scaduta"),
}
IMPORT_OP = {
    ImportOp.MAILBOX: _l("Casella"),
    ImportOp.ALIAS: _l("Alias"),
    ImportOp.LIST: _l("Lista"),
    ImportOp.MEMBER: _l("Membro di lista"),
}
ROW_OUTCOME = {
    RowOutcome.PENDING: _l("Da fare"),
    RowOutcome.CREATED: _l("Creato"),
    RowOutcome.PRESENT: _l("Già presente"),
    RowOutcome.ERROR: _l("Errore"),
    RowOutcome.SKIPPED: _l("Non applicata"),
}
VIA = {"web": "Web", "api": "API", "cli": _l("riga di comando"), "job": _l("attività pianificata")}

KINDS = {
    "plan": PLAN,
    "mailbox_status": MAILBOX_STATUS,
    "request_status": REQUEST_STATUS,
    "role": ROLE,
    "domain_state": DOMAIN_STATE,
    "language": LANGUAGE,
    "via": VIA,
    "post_policy": POST_POLICY,
    "job_state": JOB_STATE,
    "outbox_state": OUTBOX_STATE,
    "entry_kind": ENTRY_KIND,
    "wallet_state": WALLET_STATE,
    "recharge_state": RECHARGE_STATE,
    "import_state": IMPORT_STATE,
    "import_op": IMPORT_OP,
    "row_outcome": ROW_OUTCOME,
}
# The codes behind each kind that is a stored enum: the values a form may offer.
ENUMS: dict[str, type[Codes]] = {
    "plan": Plan,
    "mailbox_status": MailboxStatus,
    "request_status": RequestStatus,
    "role": Role,
    "domain_state": DomainState,
    "language": Locale,
    "post_policy": PostPolicy,
    "job_state": JobState,
    "outbox_state": OutboxState,
    "entry_kind": EntryKind,
    "wallet_state": WalletState,
    "recharge_state": RechargeState,
    "import_state": ImportState,
    "import_op": ImportOp,
    "row_outcome": RowOutcome,
}

# What every door says of a value that is not one of an enum's codes.
INVALID = {
    MailboxStatus: _l("Stato non valido: usa active, suspended o disabled."),
    Plan: _l("Il piano deve essere «payg» (Pay per Use) o «contract» (canone)."),
    Role: _l("Il ruolo deve essere staff o customer_admin."),
    RequestStatus: _l("Stato non valido: usa open, approved o rejected."),
    PostPolicy: _l("Scegli chi può scrivere alla lista: anyone, customer o members."),
    Locale: _l("Lingua non disponibile."),
    JobState: _l("Stato non valido: usa queued, running, done, failed o cancelled."),
}

# Unknown actions (new ones) show their code, so nothing is ever hidden.
ACTION = {
    "customer.create": _l("Cliente creato"),
    "customer.update": _l("Dati cliente modificati"),
    "contract.update": _l("Contratto modificato"),
    "domain.create": _l("Dominio aggiunto"),
    "domain.approve": _l("Dominio approvato"),
    "domain.delete": _l("Dominio tolto"),
    "domain.reject": _l("Dominio rifiutato"),
    "price.set": _l("Prezzo impostato"),
    "ledger.credit": _l("Ricarica registrata"),
    "ledger.first_credit": _l("Credito iniziale registrato"),
    "ledger.adjustment": _l("Rettifica registrata"),
    "recharge.request": _l("Ricarica richiesta"),
    "recharge.confirm": _l("Ricarica confermata"),
    "recharge.cancel": _l("Ricarica annullata"),
    "mailbox.create": _l("Casella creata"),
    "mailbox.update": _l("Casella modificata"),
    "mailbox.delete": _l("Casella eliminata"),
    "alias.create": _l("Alias creato"),
    "alias.update": _l("Alias modificato"),
    "alias.delete": _l("Alias eliminato"),
    "list.create": _l("Lista creata"),
    "list.update": _l("Lista modificata"),
    "list.delete": _l("Lista eliminata"),
    "import.preview": _l("Foglio di importazione caricato"),
    "import.apply": _l("Importazione avviata"),
    "import.passwords": _l("Password generate scaricate"),
    "customer.list_limits": _l("Limiti degli indirizzi esterni delle liste modificati"),
    "customer.hold": _l("Cliente bloccato per credito esaurito"),
    "customer.hold_lift": _l("Blocco per credito esaurito tolto"),
    "capacity.request": _l("Richiesta al commerciale inviata"),
    "capacity.revise": _l("Richiesta al commerciale modificata"),
    "capacity.approve": _l("Richiesta al commerciale approvata"),
    "capacity.reject": _l("Richiesta al commerciale rifiutata"),
    "user.create": _l("Utente creato"),
    "user.password": _l("Password cambiata"),
    "user.locale": _l("Lingua cambiata"),
    "user.activate": _l("Utente riattivato"),
    "user.deactivate": _l("Utente disattivato"),
    "user.sessions_end": _l("Uscita da tutti i dispositivi"),
    "user.totp_enable": _l("Verifica in due passaggi attivata"),
    "user.totp_disable": _l("Verifica in due passaggi disattivata"),
    "user.totp_reset": _l("Verifica in due passaggi azzerata"),
    "user.recovery_code": _l("Codice di recupero usato"),
    "user.recovery_codes": _l("Codici di recupero rigenerati"),
    "token.create": _l("Token API creato"),
    "token.revoke": _l("Token API revocato"),
    "outbox.retry": _l("Email rimessa in coda"),
    "migration.create": _l("Migrazione inserita"),
    "migration.preflight": _l("Migrazione verificata"),
    "migration.start": _l("Migrazione avviata"),
    "migration.cancel": _l("Migrazione annullata"),
}

FIELD = {
    "name": _l("nome"),
    "vat_number": _l("partita IVA"),
    "vat_duplicate_reason": _l("motivo della partita IVA già in uso"),
    "contact_email": _l("email di contatto"),
    "plan": _l("piano"),
    "self_service": _l("amministrazione autonoma"),
    "display_name": _l("nome visualizzato"),
    "service_class": _l("classe"),
    "status": _l("stato"),
    "state": _l("stato"),
    "public_provider": _l("servizio di posta pubblico"),
    "override_reason": _l("motivo della deroga"),
    "password": _l("password"),
    "target": _l("destinazione"),
    "members": _l("membri"),
    "added": _l("aggiunti"),
    "removed": _l("tolti"),
    "description": _l("descrizione"),
    "post_policy": _l("chi può scrivere"),
    "list_external_per_list": _l("indirizzi esterni per lista"),
    "list_external_per_customer": _l("indirizzi esterni in tutto"),
    "extra_accounts": _l("caselle richieste"),
    "granted_accounts": _l("caselle concesse"),
    "note": _l("motivo"),
    "decision_note": _l("motivo della decisione"),
    "role": _l("ruolo"),
    "locale": _l("lingua"),
    "active": _l("attivo"),
    "token": _l("token"),
}

# Which label table reads the values of a field; "status" depends on what changed.
_VALUE_KIND = {
    "post_policy": "post_policy",
    "plan": "plan",
    "role": "role",
    "state": "domain_state",
    "locale": "language",
}
_STATUS_KIND = {"mailbox": "mailbox_status", "capacity": "request_status", "outbox": "outbox_state"}
# Fields whose value is a set of members, not an old -> new pair.
_SET_FIELDS = ("added", "removed")

# One date format per language: day first in Italian, the month spelled out in English.
DATE_FORMATS = {Locale.IT: "dd/MM/yyyy", Locale.EN: "d MMM yyyy"}


def label(kind: str, code: object) -> str:
    """The words for a code of a kind (plan, mailbox_status, ...); the code itself if unknown."""
    if code is None or code == "":
        return ""
    found = KINDS.get(kind, {}).get(code)
    return str(found) if found is not None else str(code)


def choices(kind: str) -> list[tuple[str, str]]:
    """(code, words) for every code of an enum kind, in the enum's order: a select's options."""
    return [(code.value, label(kind, code)) for code in ENUMS[kind]]


def action_label(action: str) -> str:
    found = ACTION.get(action)
    return str(found) if found is not None else action


PARTS = ("datetime", "date", "time", "datetime_seconds", "time_seconds")


def when(value: date | datetime | None, part: str = "datetime") -> str:
    """A date or datetime in the one format of the reader's language, datetimes in the panel's timezone.

    part: "datetime" (the default), "date", "time", or "datetime_seconds" / "time_seconds".
    A plain date is always written as a date.
    """
    if value is None or value == "":
        return ""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}")
    day = DATE_FORMATS.get(str(get_locale() or Locale.IT)[:2], DATE_FORMATS[Locale.IT])
    clock = "HH:mm:ss" if part.endswith("_seconds") else "HH:mm"
    if not isinstance(value, datetime):
        return format_datetime(datetime(value.year, value.month, value.day), day, rebase=False)
    pattern = {"date": day, "time": clock, "time_seconds": clock}.get(part, f"{day} {clock}")
    return format_datetime(value, pattern)


def number(value: object) -> str:
    """A count or an amount in the reader's number format: 10.000 and 12,50 in Italian."""
    from decimal import Decimal

    from flask_babel import format_decimal

    if isinstance(value, Decimal) or isinstance(value, float):
        return format_decimal(value, format="#,##0.00")
    return format_decimal(value, format="#,##0")


def change_lines(action: str, changes: object, show=str) -> list[tuple[str, str]]:
    """An audit event's changes as (field, "old → new") lines; member sets as the names they hold.

    show turns a plain value into text (addresses in their Unicode form, say).
    """
    if not isinstance(changes, dict):
        return []
    entity = action.split(".", 1)[0] if isinstance(action, str) else ""
    out = []
    for key, value in changes.items():
        name = str(FIELD.get(key, key))  # contract lines are keyed by class name, shown as they are
        if key in _SET_FIELDS:
            members = value if isinstance(value, list | tuple) else [value]
            if members:
                out.append((name, ", ".join(_value(key, entity, m, show) for m in members)))
            continue
        if isinstance(value, list | tuple) and len(value) == 2:
            old, new = value
        else:
            old, new = None, value
        if old in (None, "") and new in (None, ""):
            continue  # a field created empty says nothing
        out.append((name, f"{_value(key, entity, old, show)} → {_value(key, entity, new, show)}"))
    return out


def _value(key: str, entity: str, value: object, show) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return _("sì")
    if value is False:
        return _("no")
    if isinstance(value, list | tuple):
        return ", ".join(_value(key, entity, v, show) for v in value) or "—"
    kind = _STATUS_KIND.get(entity) if key == "status" else _VALUE_KIND.get(key)
    if kind and isinstance(value, str):
        return label(kind, value)
    return show(value)
