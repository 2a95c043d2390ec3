"""The outbox: every email the panel sends is a row first, then a send (app/models/outbox.py).

A caller renders its mail in the recipient's language (Flask-Babel's
`force_locale`, as app/services/notify.py does) and calls `queue_email` in
its own transaction, so the mail exists exactly when what it tells does.
After that commit, `send_queued()` hands the new rows to a `send_email` job
(best effort: if the job queue is down, the cron's `send_pending`, every
minute, sends whatever is due anyway).

`send_pending` claims due rows with one conditional UPDATE (FOR UPDATE SKIP
LOCKED on PostgreSQL; SQLite runs one writer at a time), so two senders never
take the same mail; it sends them over one SMTP connection and marks each
sent, or records why not and when to try again (BACKOFF_MINUTES). After
MAX_ATTEMPTS, or a refusal the relay calls permanent (5xx), the mail is
failed, and staff may put it back in the queue from the customer's page.
With SMTP_HOST empty (a laptop, `make run`) nothing is sent: the mails stay
pending with that reason, and leave once a relay is configured.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Outbox
from app.models.base import utcnow
from app.models.enums import Locale, OutboxState
from app.services import audit, fields
from app.services.access import Actor, customer_for, require_staff
from app.services.errors import Conflict, NotFound

log = logging.getLogger(__name__)

# Minutes to wait after the 1st, 2nd, ... failed attempt; the last figure repeats.
BACKOFF_MINUTES = (1, 5, 15, 60, 180, 360, 720)
# Attempts in all before a mail is failed (about 22 hours of retries).
MAX_ATTEMPTS = 8
# Mails one send takes at most (the cron goes on with another batch while they fill it).
BATCH = 50
# Mails shown on the staff card.
CARD_LIMIT = 50
ERROR_LENGTH = 300
# Where a session keeps the ids it queued, for send_queued() after its commit.
_QUEUED = "outbox_queued"


@sa.event.listens_for(Session, "after_rollback")
def _forget_queued(session, *_args) -> None:
    # Rows of a transaction that was rolled back were never written: nothing to send.
    session.info.pop(_QUEUED, None)


def queue_email(
    kind: str,
    to: str | Sequence[str],
    subject: str,
    body: str,
    *,
    customer_id: int | None,
    locale: str,
    dedupe_key: str | None = None,
) -> Outbox | None:
    """Write one mail to the outbox, in the caller's transaction (nothing is committed here).

    `to`: an address or a list of them (duplicates dropped); `body`: plain
    text, already in the recipients' language (`locale`). With a
    `dedupe_key` that a mail already has, nothing is written and the answer is
    None (so "this warning level once" is one key). After the commit, call
    `send_queued()` to send it now; otherwise the cron sends it within a minute.
    """
    addresses = _addresses(to)
    if not addresses:
        return None
    if not Locale.has(locale):
        locale = Locale.IT.value
    now = utcnow()
    values = {
        "customer_id": customer_id,
        "kind": kind[:32],
        "to_addresses": ", ".join(addresses),
        "subject": " ".join(subject.split())[:500],
        "body_text": body,
        "locale": str(locale),
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        "dedupe_key": dedupe_key,
    }
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Outbox).values(**values)
    if dedupe_key is not None:
        # One statement: a mail queued meanwhile by another transaction is not duplicated either.
        insert = insert.on_conflict_do_nothing(index_elements=["dedupe_key"])
    new_id = db.session.execute(insert.returning(Outbox.id)).scalar()
    if new_id is None:
        return None
    db.session.info.setdefault(_QUEUED, []).append(new_id)
    return db.session.get(Outbox, new_id)


def _addresses(to: str | Sequence[str]) -> list[str]:
    items = to.split(",") if isinstance(to, str) else to
    seen: set[str] = set()
    out = []
    for item in items:
        address = str(item).strip()
        if any(c.isspace() or not c.isprintable() for c in address) or (address and "@" not in address):
            raise ValueError(f"not an email address: {address!r}")
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def send_queued() -> None:
    """Send now the mails this session queued (call it after the commit that wrote them).

    A `send_email` job carries their ids; with the job queue unreachable
    they stay pending for the cron. With no relay configured nothing is
    tried: the rows are only marked with that reason.
    """
    from app.services import jobs

    ids = db.session.info.pop(_QUEUED, None)
    if not ids:
        return
    if not current_app.config.get("SMTP_HOST"):
        send_pending(ids=ids)
        return
    try:
        jobs.enqueue(Actor.system("outbox", via="job"), "send_email", args=ids)
    except jobs.QueueUnavailable:
        log.warning("mail job not queued for outbox rows %s: the cron will send them", ids)


@dataclass
class Sent:
    """What one send_pending did."""

    sent: int = 0
    retrying: int = 0  # not sent, pending again for a later attempt
    failed: int = 0  # not sent, and no more attempts
    waiting: int = 0  # not tried: no relay configured

    @property
    def taken(self) -> int:
        return self.sent + self.retrying + self.failed

    @property
    def all_sent(self) -> bool:
        return not (self.retrying or self.failed or self.waiting)


def send_pending(limit: int = BATCH, ids: Sequence[int] | None = None) -> Sent:
    """Send up to `limit` mails that are due (of `ids` only, if given); commits each outcome."""
    config = current_app.config
    if not config.get("SMTP_HOST"):
        return Sent(waiting=_note_unconfigured(ids))
    token = uuid.uuid4().hex
    rows = _claim(token, limit, ids)
    done = Sent()
    if not rows:
        return done
    smtp = None
    try:
        for i, row in enumerate(rows):
            if smtp is None:
                try:
                    smtp = _connect(config)
                except (OSError, smtplib.SMTPException) as e:
                    where = f"{config['SMTP_HOST']}:{config['SMTP_PORT']}"
                    reason = _(
                        "Server di posta in uscita non raggiungibile (%(where)s): %(error)s",
                        where=where,
                        error=_describe(e),
                    )
                    for rest in rows[i:]:
                        _not_sent(rest, token, reason, permanent=False, done=done)
                    break
            try:
                message = _message(row, config)
            except (ValueError, TypeError) as e:  # a row no relay could take (written by hand?)
                _not_sent(row, token, _clip(str(e)), permanent=True, done=done)
                continue
            try:
                refused = smtp.send_message(message, to_addrs=row.recipients)
            except smtplib.SMTPRecipientsRefused as e:
                codes = [code for code, _msg in e.recipients.values()]
                reason = _("Destinatari rifiutati: %(error)s", error=_describe(e))
                _not_sent(row, token, reason, permanent=all(500 <= c < 600 for c in codes), done=done)
            except smtplib.SMTPResponseException as e:
                reason = _("Rifiutata dal server di posta in uscita: %(error)s", error=_describe(e))
                _not_sent(row, token, reason, permanent=500 <= e.smtp_code < 600, done=done)
                if e.smtp_code == 421:  # the relay is closing the connection
                    smtp = _close(smtp)
            except (OSError, smtplib.SMTPException) as e:
                reason = _(
                    "Connessione al server di posta in uscita interrotta: %(error)s", error=_describe(e)
                )
                _not_sent(row, token, reason, permanent=False, done=done)
                smtp = _close(smtp)
            else:
                note = None
                if refused:
                    note = _("Non consegnata a: %(who)s", who=_describe_refused(refused))
                _settle(row, token, state=OutboxState.SENT, sent_at=utcnow(), last_error=note)
                done.sent += 1
    finally:
        _close(smtp)
    return done


def _note_unconfigured(ids: Sequence[int] | None) -> int:
    """No relay: the pending mails say so (no attempt is counted: they are not lost, only waiting)."""
    reason = _("Non inviata: il server di posta in uscita non è configurato (SMTP_HOST vuoto).")
    pending = Outbox.state == OutboxState.PENDING
    scope = [pending, Outbox.id.in_(list(ids))] if ids else [pending]
    db.session.execute(
        sa.update(Outbox)
        .where(*scope, sa.or_(Outbox.last_error.is_(None), Outbox.last_error != reason))
        .values(last_error=reason)
        .execution_options(synchronize_session=False)
    )
    waiting = db.session.scalar(sa.select(sa.func.count()).select_from(Outbox).where(*scope)) or 0
    db.session.commit()
    if waiting:
        log.info("%d mail(s) not sent: SMTP_HOST is empty", waiting)
    return waiting


def _claim(token: str, limit: int, ids: Sequence[int] | None) -> list[Outbox]:
    """Take up to `limit` due mails for this sender, until its lease ends; committed."""
    now = utcnow()
    lease = timedelta(seconds=60 + float(current_app.config["SMTP_TIMEOUT"]) * (limit + 1))
    free = [
        Outbox.state == OutboxState.PENDING,
        Outbox.next_attempt_at <= now,
        sa.or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now),
    ]
    due = sa.select(Outbox.id).where(*free).order_by(Outbox.next_attempt_at, Outbox.id).limit(limit)
    if ids is not None:
        due = due.where(Outbox.id.in_(list(ids)))
    # PostgreSQL: rows another sender is claiming right now are skipped, not waited for.
    # SQLite has no row locks (the clause is left out): its writers take turns, and the
    # conditions repeated below see what the other one claimed.
    due = due.with_for_update(skip_locked=True)
    claimed = (
        db.session.execute(
            sa.update(Outbox)
            .where(Outbox.id.in_(due.scalar_subquery()), *free)
            .values(claimed_by=token, claimed_until=now + lease)
            .returning(Outbox.id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    db.session.commit()
    if not claimed:
        return []
    return list(db.session.scalars(sa.select(Outbox).where(Outbox.id.in_(claimed)).order_by(Outbox.id)))


def _settle(row: Outbox, token: str, **values) -> bool:
    """Write a claimed mail's outcome (only while this sender holds it), committed."""
    moved = db.session.execute(
        sa.update(Outbox)
        .where(Outbox.id == row.id, Outbox.claimed_by == token)
        .values(attempts=Outbox.attempts + 1, claimed_by=None, claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if moved != 1:
        log.warning("outbox mail %s: its claim ended before its outcome was written", row.id)
    return moved == 1


def _not_sent(row: Outbox, token: str, reason: str, *, permanent: bool, done: Sent) -> None:
    attempts = row.attempts + 1
    log.warning("mail not sent: %r to %s: %s", row.subject, row.to_addresses, reason)
    if permanent or attempts >= MAX_ATTEMPTS:
        _settle(row, token, state=OutboxState.FAILED, last_error=reason)
        done.failed += 1
        return
    wait = BACKOFF_MINUTES[min(attempts, len(BACKOFF_MINUTES)) - 1]
    _settle(row, token, last_error=reason, next_attempt_at=utcnow() + timedelta(minutes=wait))
    done.retrying += 1


def _connect(config) -> smtplib.SMTP:
    smtp = smtplib.SMTP(config["SMTP_HOST"], int(config["SMTP_PORT"]), timeout=float(config["SMTP_TIMEOUT"]))
    smtp.ehlo_or_helo_if_needed()
    return smtp


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return None
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
    return None


def _message(row: Outbox, config) -> EmailMessage:
    sender = config["MAIL_FROM"]
    domain = sender.rpartition("@")[2].strip("> ") or None
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.to_addresses
    msg["Subject"] = row.subject
    msg["Date"] = row.created_at  # the header takes a datetime and writes it as RFC 5322 wants
    # The same for every attempt at this mail: a receiver that got it twice can tell.
    msg["Message-ID"] = make_msgid(
        idstring=f"outbox-{row.id}-{int(row.created_at.timestamp())}", domain=domain
    )
    msg.set_content(row.body_text)
    msg["Content-Language"] = row.locale  # after the content: set_content drops Content-* headers
    return msg


def _describe(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        text = _describe_refused(error.recipients)
    elif isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        message = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        text = f"{error.smtp_code} {message}"
    elif isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error) or type(error).__name__
    return _clip(text)


def _describe_refused(refused: dict) -> str:
    parts = []
    for address, (code, message) in refused.items():
        message = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        parts.append(f"{address} ({code} {message})")
    return _clip("; ".join(parts))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 1] + "…"


# For staff.


def for_customer(actor: Actor, customer_id: object, limit: int = CARD_LIMIT) -> list[Outbox]:
    """A customer's mails, newest first (the back office's card)."""
    require_staff(actor)
    customer = customer_for(actor, customer_id)
    return list(
        db.session.scalars(
            sa.select(Outbox)
            .where(Outbox.customer_id == customer.id)
            .order_by(Outbox.created_at.desc(), Outbox.id.desc())
            .limit(limit)
        )
    )


def retry(actor: Actor, customer_id: object, outbox_id: object) -> Outbox:
    """Put a failed mail of the customer back in the queue, with a new series of attempts, and send it now."""
    require_staff(actor)
    customer = customer_for(actor, customer_id)
    rid = fields.row_id(outbox_id)
    row = db.session.get(Outbox, rid) if rid is not None else None
    if row is None or row.customer_id != customer.id:
        raise NotFound(_("Email non trovata."))
    moved = db.session.execute(
        sa.update(Outbox)
        .where(Outbox.id == row.id, Outbox.state == OutboxState.FAILED)
        .values(state=OutboxState.PENDING, attempts=0, next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.rollback()
        raise Conflict(_("Questa email non è tra quelle non inviate: non c'è niente da riprovare."))
    audit.record(
        actor,
        "outbox.retry",
        customer_id=customer.id,
        target=f"{row.subject} → {row.to_addresses}",
        changes={"status": [OutboxState.FAILED.value, OutboxState.PENDING.value]},
    )
    db.session.commit()
    db.session.info.setdefault(_QUEUED, []).append(row.id)
    send_queued()
    db.session.refresh(row)
    return row
