"""Every closed set of codes the product stores, each defined once.

Each member equals its stored string ("active" == MailboxStatus.ACTIVE), so the
database keeps plain strings and templates may compare with literals. The
CHECK constraints, the API's validation and document, the labels and the CLI
choices are all built from these classes: adding a member here is the whole change
(plus its label in app/services/labels.py and a migration for the CHECK).
"""

from __future__ import annotations

import enum


class Codes(enum.StrEnum):
    """A StrEnum with the two questions the rest of the code asks of it."""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)

    @classmethod
    def has(cls, value: object) -> bool:
        """Whether value is one of the codes (`value in cls` warns on Python 3.11 for a non-member)."""
        return isinstance(value, str) and value in cls._value2member_map_

    @classmethod
    def check(cls, column: str) -> str:
        """The SQL of a CHECK constraint that keeps column within the codes."""
        return f"{column} IN ({', '.join(repr(v) for v in cls.values())})"


class MailboxStatus(Codes):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DISABLED = "disabled"


class Plan(Codes):
    PAYG = "payg"
    CONTRACT = "contract"


class Role(Codes):
    """Who a user is; the audit trail also names a third actor, "system" (not a user's role)."""

    STAFF = "staff"
    CUSTOMER_ADMIN = "customer_admin"


class RequestStatus(Codes):
    """A capacity request: open until staff approve or reject it."""

    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


class DomainState(Codes):
    """A domain a customer adds waits (pending) until its ownership is proved or support
    approves it; only active domains reach the mail servers' views."""

    PENDING = "pending"
    ACTIVE = "active"


class PostPolicy(Codes):
    """Who may post to a distribution list: anyone, only the customer's own (authenticated)
    mailboxes, or only its members."""

    ANYONE = "anyone"
    CUSTOMER = "customer"
    MEMBERS = "members"


class Locale(Codes):
    """The panel's languages; the first is the default."""

    IT = "it"
    EN = "en"


class JobState(Codes):
    """A background job: queued, then running, then one final state that never changes."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MigrationState(Codes):
    """A mailbox's migration from the old provider: entered, checked, then copied by a job.

    The old password is wiped on entering done or cancelled (a failed one may be started again).
    A sync migration rests in `syncing` between its passes (open, the password kept) until its
    final pass."""

    DRAFT = "draft"
    PREFLIGHT_OK = "preflight_ok"
    QUEUED = "queued"
    RUNNING = "running"
    SYNCING = "syncing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImapSecurity(Codes):
    SSL = "ssl"
    STARTTLS = "starttls"
    NONE = "none"


class OutboxState(Codes):
    """An email of the outbox: pending until it leaves (sent), or until its attempts run out (failed)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class EntryKind(Codes):
    """A ledger entry of a Pay-per-Use customer's point account: a daily charge (negative),
    a received payment, the first credit at signature, or a staff adjustment (with a reason)."""

    CHARGE = "charge"
    CREDIT = "credit"
    ADJUSTMENT = "adjustment"
    FIRST_CREDIT = "first_credit"


class RechargeState(Codes):
    """A recharge request: requested until staff confirm the payment received, or cancel it."""

    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class WalletState(Codes):
    """A Pay-per-Use point account at a glance: in good standing, 14 days of credit or fewer,
    below zero within the grace period, or on hold (no mailbox logs in)."""

    OK = "ok"
    WARNING = "warning"
    GRACE = "grace"
    ON_HOLD = "on_hold"


class ImportState(Codes):
    """A spreadsheet import: checked and waiting, then applied by a job to one final state.

    The secrets it holds (the file's passwords) are wiped on entering any final state."""

    PREVIEWED = "previewed"
    APPLYING = "applying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ImportOp(Codes):
    """What one row of an import creates: a mailbox, an alias, a list, or a list member."""

    MAILBOX = "mailbox"
    ALIAS = "alias"
    LIST = "list"
    MEMBER = "member"


class RowOutcome(Codes):
    """What became of one row of an import: waiting, created, already there, refused, or left out
    (it had problems and the customer applied the valid rows only)."""

    PENDING = "pending"
    CREATED = "created"
    PRESENT = "present"
    ERROR = "error"
    SKIPPED = "skipped"


ALL = (
    MailboxStatus,
    Plan,
    Role,
    RequestStatus,
    DomainState,
    PostPolicy,
    Locale,
    JobState,
    OutboxState,
    EntryKind,
    RechargeState,
    WalletState,
    ImportState,
    ImportOp,
    RowOutcome,
)
