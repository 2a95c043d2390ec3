"""Emails to customers and sales, sent through the provider's SMTP relay.

Sent after the change is committed, by a worker: `capacity_requested` and
`capacity_decided` queue a `notify` job (ids only) on the default queue, so
the person's request never waits for the relay. A mail that cannot leave
(relay down, refused recipient) is logged, fails that job and never undoes
what the person did, who sees the outcome on the page anyway. With the job
queue unreachable the mail is sent at once instead. SMTP_HOST empty (a
laptop, the tests that do not start a sink) means "not sent, logged".

Each person reads the mail in their own language: a customer's admin
users in the language of their account, the customer's contact address
in the language of whoever made the request.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import sqlalchemy as sa
from flask import current_app, has_request_context, request, url_for
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _

from app.extensions import db
from app.models import CapacityRequest, User
from app.services import labels, limits

log = logging.getLogger(__name__)


def send(to: list[str], subject: str, body: str) -> bool:
    """Send one plain-text mail; False (and a log line) when it was not sent."""
    config = current_app.config
    host = config.get("SMTP_HOST") or ""
    if not to:
        return False
    if not host:
        log.info("mail not sent (SMTP_HOST is empty): %r to %s", subject, ", ".join(to))
        return False
    msg = EmailMessage()
    msg["From"] = config["MAIL_FROM"]
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=config["MAIL_FROM"].rpartition("@")[2].strip("> ") or None)
    msg.set_content(body)
    try:
        with smtplib.SMTP(host, int(config["SMTP_PORT"]), timeout=float(config["SMTP_TIMEOUT"])) as smtp:
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException, ValueError) as e:
        log.warning("mail not sent: %r to %s: %s", subject, ", ".join(to), e)
        return False
    return True


def _customer_recipients(req: CapacityRequest) -> dict[str, list[str]]:
    """{language: addresses}: the customer's active admins, and its contact address."""
    admins = db.session.execute(
        sa.select(User.email, User.locale, User.id).where(
            User.customer_id == req.customer_id, User.active.is_(True)
        )
    ).all()
    by_lang: dict[str, list[str]] = {}
    seen: set[str] = set()
    requester_lang = next((lang for _e, lang, uid in admins if uid == req.requested_by_id), "it")
    for email, lang, _uid in admins:
        by_lang.setdefault(lang, []).append(email)
        seen.add(email.lower())
    contact = req.customer.contact_email
    if contact and contact.lower() not in seen:
        by_lang.setdefault(requester_lang, []).append(contact)
    return by_lang


def _requests_url(customer_id: int) -> str | None:
    if not has_request_context():
        return None
    return url_for("portal.capacity_requests", customer_id=customer_id, _external=True)


def _footer() -> str:
    return "\n-- \n" + current_app.config["BRAND_NAME"] + "\n"


def capacity_decided(req: CapacityRequest) -> None:
    """Tell the customer how staff decided on its request, and why (from a worker)."""
    _later("capacity_decided", req)


def capacity_requested(req: CapacityRequest, *, created: bool) -> None:
    """Tell sales (SALES_EMAIL) that a customer asks for more, or revised what it asks (from a worker)."""
    _later("capacity_requested", req, int(created))


def _later(which: str, req: CapacityRequest, flag: int = 0) -> None:
    from app.services import jobs
    from app.services.access import Actor

    if not current_app.config.get("SMTP_HOST"):
        deliver(which, req.id, flag)  # nothing leaves: only the log line, as at once
        return
    # The page's own address, for the links in the mail (a worker has no request to take it from).
    base = request.host_url if has_request_context() else ""
    args = [which, req.id, flag, base if len(base) <= jobs.MAX_ARG_LENGTH else ""]
    try:
        jobs.enqueue(Actor.system("notify", via="job"), "notify", args=args)
    except jobs.QueueUnavailable:
        log.warning("mail job not queued (%s for request %s): sending it now", which, req.id)
        deliver(which, req.id, flag)


def deliver(which: str, request_id: int, flag: int = 0, base_url: str = "") -> bool:
    """Send one of the mails above now (the `notify` job's work); False if a mail did not leave."""
    req = db.session.get(CapacityRequest, request_id)
    if req is None:
        return True  # gone with its customer: nobody to tell
    send_it = {
        "capacity_decided": lambda: _capacity_decided(req),
        "capacity_requested": lambda: _capacity_requested(req, created=bool(flag)),
    }[which]
    if base_url and not has_request_context():
        with current_app.test_request_context(base_url=base_url):
            return all(send_it())
    return all(send_it())


def _capacity_decided(req: CapacityRequest) -> list[bool]:
    link = _requests_url(req.customer_id)
    allowance = limits.allowance_for(req.customer_id, req.service_class_id)
    sent = []
    for lang, to in _customer_recipients(req).items():
        with force_locale(lang):
            cls = req.service_class.name
            asked = ngettext(
                "la richiesta di %(num)d casella %(cls)s in più del %(day)s",
                "la richiesta di %(num)d caselle %(cls)s in più del %(day)s",
                req.extra_accounts,
                cls=cls,
                day=labels.when(req.created_at, "date"),
            )
            if req.status == "approved":
                subject = _("Richiesta al commerciale approvata: %(cls)s", cls=cls)
                lines = [
                    _("Buongiorno,"),
                    "",
                    _("%(what)s è stata approvata.", what=asked[:1].upper() + asked[1:]),
                ]
                if req.granted_accounts != req.extra_accounts:
                    lines.append(
                        ngettext(
                            "Concessa %(num)d casella invece delle %(asked)d richieste.",
                            "Concesse %(num)d caselle invece delle %(asked)d richieste.",
                            req.granted_accounts,
                            asked=req.extra_accounts,
                        )
                    )
                lines.append(
                    ngettext(
                        "Il contratto ora prevede %(num)d casella %(cls)s.",
                        "Il contratto ora prevede %(num)d caselle %(cls)s.",
                        allowance,
                        cls=cls,
                    )
                )
            else:
                subject = _("Richiesta al commerciale rifiutata: %(cls)s", cls=cls)
                lines = [
                    _("Buongiorno,"),
                    "",
                    _("%(what)s è stata rifiutata.", what=asked[:1].upper() + asked[1:]),
                ]
            if req.decision_note:
                lines += ["", _("Motivo: %(reason)s", reason=req.decision_note)]
            if link:
                lines += ["", _("Tutte le tue richieste: %(url)s", url=link)]
            sent.append(send(to, subject, "\n".join(lines) + "\n" + _footer()))
    return sent


def _capacity_requested(req: CapacityRequest, created: bool) -> list[bool]:
    sales = current_app.config.get("SALES_EMAIL")
    if not sales:
        return []
    with force_locale("it"):
        cls = req.service_class.name
        subject = (
            _("Nuova richiesta al commerciale: %(cust)s, %(cls)s", cust=req.customer.name, cls=cls)
            if created
            else _("Richiesta al commerciale modificata: %(cust)s, %(cls)s", cust=req.customer.name, cls=cls)
        )
        lines = [
            ngettext(
                "%(cust)s chiede %(num)d casella %(cls)s in più.",
                "%(cust)s chiede %(num)d caselle %(cls)s in più.",
                req.extra_accounts,
                cust=req.customer.name,
                cls=cls,
            ),
            _("Motivo: %(reason)s", reason=req.note),
        ]
        if has_request_context():
            lines += [
                "",
                _("Da gestire qui: %(url)s", url=url_for("admin.capacity_requests", _external=True)),
            ]
        return [send([sales], subject, "\n".join(lines) + "\n" + _footer())]
