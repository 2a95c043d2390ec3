import secrets
from datetime import datetime

import idna
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.catalog import ServiceClass
from app.models.customers import Customer
from app.models.enums import DomainState, MailboxStatus, PostPolicy

# The codes as tuples, for the services that test membership.
STATUSES = MailboxStatus.values()
POST_POLICIES = PostPolicy.values()
DOMAIN_STATES = DomainState.values()


def new_verification_token() -> str:
    return secrets.token_hex(16)


def unicode_domain(ascii_name: str) -> str:
    try:
        return idna.decode(ascii_name)
    except idna.IDNAError:
        return ascii_name


def unicode_form(ascii_name: str) -> str | None:
    """An IDN's Unicode form as the mail servers compare it (lower case), or None when the name
    has no other form ('xn--caff-8oa.example' -> 'caffè.example', 'rossi.example' -> None)."""
    shown = unicode_domain(ascii_name).lower()
    return None if shown == ascii_name else shown


class Domain(db.Model):
    """A mail domain of one customer; the name is stored in its ASCII (punycode) form."""

    __tablename__ = "domains"
    __table_args__ = (sa.CheckConstraint(DomainState.check("state"), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(253), unique=True)
    # The Unicode form of an IDN's name, lower case (NULL when it has none): SQL cannot decode
    # punycode, and the mail servers must know "anna@caffè.example" is ours as well as
    # "anna@xn--caff-8oa.example" (view mail_sender_addresses, migration 0021). Kept in step
    # with the name whenever it is set (_name_set below).
    unicode_name: Mapped[str | None] = mapped_column(sa.String(253))
    state: Mapped[str] = mapped_column(sa.String(16), default=DomainState.PENDING.value)
    # When and by whom it became active (NULL for a pending domain).
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The TXT record's token that proves the domain is the customer's: a new one at each claim.
    verification_token: Mapped[str | None] = mapped_column(sa.String(32), default=new_verification_token)
    # When and how the domain was proved: "txt", "mx" (found by the DNS check) or "staff".
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_by: Mapped[str | None] = mapped_column(sa.String(8))

    customer: Mapped[Customer] = relationship()
    check: Mapped["DomainCheck | None"] = relationship(
        back_populates="domain", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("name")
    def _name_set(self, key: str, name: str) -> str:
        self.unicode_name = unicode_form(name)
        return name

    @property
    def display_name(self) -> str:
        return unicode_domain(self.name)

    @property
    def is_active(self) -> bool:
        return self.state == DomainState.ACTIVE


VERDICTS = ("missing", "wrong", "published", "propagated")


class DomainCheck(db.Model):
    """What the DNS check last saw of a domain's MX, and when it looks again (one row per domain)."""

    __tablename__ = "domain_checks"
    __table_args__ = (
        sa.CheckConstraint(
            "verdict IS NULL OR verdict IN ('missing', 'wrong', 'published', 'propagated')", name="verdict"
        ),
    )

    domain_id: Mapped[int] = mapped_column(sa.ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True)
    # The last certain verdict; a check that could not tell (timeouts, SERVFAIL) keeps it and says why.
    verdict: Mapped[str | None] = mapped_column(sa.String(16))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    problem: Mapped[str | None] = mapped_column(sa.Text)
    # {verdict: ISO time it was first seen}, since the MX last changed state.
    first_seen: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # The TTL of what answered before our MX (the old MX, or the zone's negative TTL): how long
    # resolvers may still hold it once ours is published.
    old_ttl: Mapped[int | None] = mapped_column()
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # When the customer and staff were told an active domain's MX moved away (NULL: not since it came back).
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Staff let the domain's migrations start before its MX propagated: why, who, when.
    migration_override: Mapped[str | None] = mapped_column(sa.Text)
    migration_override_by: Mapped[str | None] = mapped_column(sa.String(254))
    migration_override_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    domain: Mapped[Domain] = relationship(back_populates="check")


class _Address:
    """Shared by mailboxes, aliases and lists: local part on a customer's domain."""

    @property
    def display_address(self) -> str:
        local, _, domain = self.address.partition("@")
        return f"{local}@{unicode_domain(domain)}"


_BYTES = {"address": 'COLLATE "C"'}


class Mailbox(_Address, db.Model):
    __tablename__ = "mailboxes"
    __table_args__ = (
        sa.CheckConstraint(MailboxStatus.check("status"), name="status"),
        sa.Index("ix_mailboxes_customer_address", "customer_id", "address"),
        # The portal's list (migration 0009): keyset pages and prefix search, in byte order on
        # PostgreSQL whatever the database's collation (SQLite compares bytes already). Names are
        # searched by their words (MailboxWord, migration 0010).
        sa.Index("ix_mailboxes_list_address", "customer_id", "address", postgresql_ops=_BYTES),
        sa.Index("ix_mailboxes_list_status", "customer_id", "status", "address", postgresql_ops=_BYTES),
        sa.Index(
            "ix_mailboxes_list_class", "customer_id", "service_class_id", "address", postgresql_ops=_BYTES
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"))
    domain_id: Mapped[int] = mapped_column(sa.ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    local_part: Mapped[str] = mapped_column(sa.String(64))
    address: Mapped[str] = mapped_column(sa.String(320), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    # "{ARGON2ID}$argon2id$...": Dovecot verifies this form itself.
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    service_class_id: Mapped[int] = mapped_column(sa.ForeignKey("service_classes.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=MailboxStatus.ACTIVE.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    domain: Mapped[Domain] = relationship()
    service_class: Mapped[ServiceClass] = relationship(lazy="joined")


class MailboxPeriod(db.Model):
    """Effective-dated history: which class and status a mailbox had, from when to when.

    valid_to is NULL for the current period. Rows outlive the mailbox
    (billing reads them), so they keep the address and customer, not a foreign key.
    """

    __tablename__ = "mailbox_periods"
    __table_args__ = (
        sa.Index("ix_mailbox_periods_customer_from", "customer_id", "valid_from"),
        sa.Index("ix_mailbox_periods_mailbox", "mailbox_id", "valid_to"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int]
    customer_id: Mapped[int]
    address: Mapped[str] = mapped_column(sa.String(320))
    service_class_id: Mapped[int] = mapped_column(sa.ForeignKey("service_classes.id"))
    status: Mapped[str] = mapped_column(sa.String(16))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)

    service_class: Mapped[ServiceClass] = relationship(lazy="joined")


class Alias(_Address, db.Model):
    """A further address that delivers to one mailbox of the same customer. Free."""

    __tablename__ = "aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # Indexed (migration 0021): the Unicode rows of mail_sender_addresses start from a domain.
    domain_id: Mapped[int] = mapped_column(sa.ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    local_part: Mapped[str] = mapped_column(sa.String(64))
    address: Mapped[str] = mapped_column(sa.String(320), unique=True)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    target: Mapped[Mailbox] = relationship(lazy="joined")


class DistributionList(_Address, db.Model):
    """An address that delivers to every member: mailboxes or external addresses. Free."""

    __tablename__ = "distribution_lists"
    __table_args__ = (sa.CheckConstraint(PostPolicy.check("post_policy"), name="post_policy"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # Indexed (migration 0021): the Unicode rows of mail_sender_addresses start from a domain.
    domain_id: Mapped[int] = mapped_column(sa.ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    local_part: Mapped[str] = mapped_column(sa.String(64))
    address: Mapped[str] = mapped_column(sa.String(320), unique=True)
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    # Who may post (PostPolicy); Postfix enforces it through the mail_lists and
    # mail_list_senders views. New lists are closed to strangers.
    post_policy: Mapped[str] = mapped_column(
        sa.String(16), default=PostPolicy.CUSTOMER.value, server_default=PostPolicy.CUSTOMER.value
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list["ListMember"]] = relationship(
        back_populates="list", cascade="all, delete-orphan", order_by="ListMember.id"
    )


class ListMember(db.Model):
    __tablename__ = "list_members"
    __table_args__ = (
        sa.CheckConstraint("(mailbox_id IS NULL) <> (external_address IS NULL)", name="one_kind"),
        sa.UniqueConstraint("list_id", "mailbox_id", name="uq_list_members_mailbox"),
        sa.UniqueConstraint("list_id", "external_address", name="uq_list_members_external"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(
        sa.ForeignKey("distribution_lists.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    external_address: Mapped[str | None] = mapped_column(sa.String(320))

    list: Mapped[DistributionList] = relationship(back_populates="members")
    mailbox: Mapped[Mailbox | None] = relationship(lazy="joined")

    @property
    def address(self) -> str:
        return self.mailbox.address if self.mailbox else self.external_address
