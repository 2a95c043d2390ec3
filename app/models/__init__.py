"""SQLAlchemy models, one module per area. Import them all so Alembic sees them."""

from app.models.audit import AuditEvent
from app.models.billing import ChargeLine, LedgerEntry, Price, RechargeRequest
from app.models.catalog import ServiceClass
from app.models.customers import Allowance, CapacityRequest, Customer
from app.models.dkim import DkimKey
from app.models.imports import Import, ImportRow
from app.models.jobs import Job
from app.models.mail import (
    Alias,
    DistributionList,
    Domain,
    DomainCheck,
    ListMember,
    Mailbox,
    MailboxPeriod,
)
from app.models.migrations import Migration
from app.models.outbox import Outbox
from app.models.quota import MailboxUsage, UsageRefresh
from app.models.search import MailboxWord
from app.models.users import ApiToken, RecoveryCode, User, UserSession

__all__ = [
    "Alias",
    "Allowance",
    "ApiToken",
    "AuditEvent",
    "CapacityRequest",
    "ChargeLine",
    "Customer",
    "DistributionList",
    "DkimKey",
    "Domain",
    "DomainCheck",
    "Import",
    "ImportRow",
    "Job",
    "LedgerEntry",
    "ListMember",
    "Mailbox",
    "MailboxPeriod",
    "MailboxUsage",
    "MailboxWord",
    "Migration",
    "Outbox",
    "Price",
    "RechargeRequest",
    "RecoveryCode",
    "ServiceClass",
    "UsageRefresh",
    "User",
    "UserSession",
]
