"""Emails to customers and sales about capacity requests, through the outbox.

Called after the change is committed: each mail is rendered here, in its
reader's language, and written to the outbox (app/services/outbox.py), which
a `send_email` job sends through the provider's SMTP relay, so the person's
request never waits for the relay. A mail that cannot leave (relay down or
not configured, refused recipient) stays in the outbox with the reason and
is retried; it never undoes what the person did, who sees the outcome on
the page anyway. The links in a mail are made here, from the page's own
address (none when there is no page: the command line).

Each person reads the mail in their own language: a customer's admin
users in the language of their account, the customer's contact address
in the language of whoever made the request.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _

from app.extensions import db
from app.models import CapacityRequest, User
from app.services import labels, limits, outbox


def _customer_recipients(req: CapacityRequest) -> dict[str, list[str]]:
    """{language: addresses}: the customer's active admins, and its contact address in the
    language of whoever made the request."""
    # The requester's language, when the requester is one of the customer's own active users.
    requester_lang = db.session.scalar(
        sa.select(User.locale).where(
            User.id == req.requested_by_id, User.customer_id == req.customer_id, User.active.is_(True)
        )
    )
    return _customer_admins(req.customer, contact_lang=requester_lang or "it")


def _requests_url(customer_id: int) -> str | None:
    if not has_request_context():
        return None
    return url_for("portal.capacity_requests", customer_id=customer_id, _external=True)


def _footer() -> str:
    return "\n-- \n" + current_app.config["BRAND_NAME"] + "\n"


def capacity_decided(req: CapacityRequest) -> None:
    """Tell the customer how staff decided on its request, and why (after the decision's commit)."""
    _capacity_decided(req)
    _send()


def capacity_requested(req: CapacityRequest, *, created: bool) -> None:
    """Tell sales (SALES_EMAIL) that a customer asks for more, or revised what it asks."""
    _capacity_requested(req, created=created)
    _send()


def _send() -> None:
    db.session.commit()
    outbox.send_queued()


def _capacity_decided(req: CapacityRequest) -> None:
    link = _requests_url(req.customer_id)
    allowance = limits.allowance_for(req.customer_id, req.service_class_id)
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
            body = "\n".join(lines) + "\n" + _footer()
            outbox.queue_email(
                "capacity_decided", to, subject, body, customer_id=req.customer_id, locale=lang
            )


def _capacity_requested(req: CapacityRequest, created: bool) -> None:
    sales = current_app.config.get("SALES_EMAIL")
    if not sales:
        return
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
        body = "\n".join(lines) + "\n" + _footer()
        outbox.queue_email(
            "capacity_requested", [sales], subject, body, customer_id=req.customer_id, locale="it"
        )


def _customer_admins(customer, contact_lang: str = "it") -> dict[str, list[str]]:
    """{language: addresses}: the customer's active users, and its contact address (in contact_lang)."""
    by_lang: dict[str, list[str]] = {}
    seen: set[str] = set()
    rows = db.session.execute(
        sa.select(User.email, User.locale).where(User.customer_id == customer.id, User.active.is_(True))
    ).all()
    for email, lang in rows:
        by_lang.setdefault(lang, []).append(email)
        seen.add(email.lower())
    if customer.contact_email and customer.contact_email.lower() not in seen:
        by_lang.setdefault(contact_lang, []).append(customer.contact_email)
    return by_lang


def mx_moved(domain, describe) -> None:
    """Tell the customer and support that an active domain's MX no longer points to us.

    describe(): the check's reason, called in each reader's language. Queued in the caller's
    transaction: the mails leave with the check's record, or not at all.
    """
    base = current_app.config.get("PANEL_URL", "").rstrip("/")
    link = f"{base}/customers/{domain.customer_id}/domains/{domain.id}" if base else None
    recipients = _customer_admins(domain.customer)
    support = current_app.config.get("SUPPORT_EMAIL")
    for lang, to in recipients.items():
        with force_locale(lang):
            subject = _("Attenzione: la posta di %(d)s non arriva più a noi", d=domain.display_name)
            lines = [
                _("Buongiorno,"),
                "",
                _(
                    "il record MX del dominio %(d)s non punta più ai nostri server: i messaggi per le caselle "
                    "del dominio potrebbero andare altrove o essere rifiutati.",
                    d=domain.display_name,
                ),
                "",
                describe(),
            ]
            if link:
                lines += ["", _("Controlla e verifica di nuovo qui: %(url)s", url=link)]
            outbox.queue_email(
                "mx_moved",
                to,
                subject,
                "\n".join(lines) + "\n" + _footer(),
                customer_id=domain.customer_id,
                locale=lang,
            )
    if support:
        with force_locale("it"):
            subject = _("MX cambiato: %(d)s (%(cust)s)", d=domain.display_name, cust=domain.customer.name)
            body = "\n".join(
                [
                    _(
                        "Il record MX del dominio attivo %(d)s del cliente %(cust)s non punta più a noi.",
                        d=domain.display_name,
                        cust=domain.customer.name,
                    ),
                    "",
                    describe(),
                ]
            )
            outbox.queue_email(
                "mx_moved",
                [support],
                subject,
                body + "\n" + _footer(),
                customer_id=domain.customer_id,
                locale="it",
            )


def _migrations_url(domain) -> str | None:
    """The domain's migrations page in the portal, from PANEL_URL (mails sent by jobs have no
    request)."""
    base = current_app.config.get("PANEL_URL", "").rstrip("/")
    if not base:
        return None
    adapter = current_app.url_map.bind(base.split("://", 1)[-1].split("/", 1)[0])
    ids = {"customer_id": domain.customer_id, "domain_id": domain.id}
    return base + adapter.build("portal.migrations", ids)


# Messages too large to copy listed per mailbox in the end-of-migration mail; the rest counted.
TOO_LARGE_LISTED = 20


def _migration_figures(row) -> dict:
    """Per mailbox: copied over every pass, already there before the first, skipped, errors, missing."""
    report = row.report or {}
    totals = report.get("totals", {})
    copied = (report.get("all_passes") or {}).get("copied", totals.get("copied", 0))
    # What the last pass found already there, less what earlier passes of this migration copied.
    already = max(0, totals.get("already_present", 0) - (copied - totals.get("copied", 0)))
    return {
        "copied": copied,
        "already_present": already,
        "skipped_too_large": totals.get("skipped_too_large", 0),
        "errors": totals.get("errors", 0),
        "missing": totals.get("missing", 0) or 0,
    }


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{max(1, round(n / 1024))} KB"


def _too_large_lines(row) -> list[str]:
    """The messages left on the old server for their size: subject, date, size (the first few)."""
    skipped = [s for f in (row.report or {}).get("folders", []) for s in f.get("skipped_too_large", [])]
    lines = [
        "    - "
        + _(
            "%(subject)s (%(date)s, %(size)s)",
            subject=s.get("subject") or _("senza oggetto"),
            date=s.get("date") or "?",
            size=_size(s.get("size", 0)),
        )
        for s in skipped[:TOO_LARGE_LISTED]
    ]
    if len(skipped) > TOO_LARGE_LISTED:
        lines.append("    " + _("e altri %(n)d", n=len(skipped) - TOO_LARGE_LISTED))
    return lines


def migrations_done(domain, rows: list) -> None:
    """Tell the customer that the domain's migration is over: per mailbox what was copied, and the
    mailboxes of the batch not migrated (cancelled), with their last pass's figures.

    rows: the migrations of the batch (done or cancelled). Queued in the caller's transaction (the
    rows marked notified with it: one mail per batch)."""
    link = _migrations_url(domain)
    for lang, to in _customer_admins(domain.customer).items():
        with force_locale(lang):
            subject = _("Migrazione della posta completata: %(d)s", d=domain.display_name)
            lines = [
                _("Buongiorno,"),
                "",
                _(
                    "la copia della posta dal vecchio fornitore per il dominio %(d)s è conclusa.",
                    d=domain.display_name,
                ),
                "",
            ]
            for row in sorted(rows, key=lambda r: (r.state != "done", r.mailbox.address)):
                f = _migration_figures(row)
                head = row.mailbox.address
                if row.state == "cancelled":
                    head += " — " + _("non migrata: annullata")
                elif row.state != "done":
                    head += " — " + _("non migrata: non riuscita")
                lines.append(head)
                if row.state != "done" and not row.report:
                    lines += ["  " + _("nessun messaggio copiato"), ""]
                    continue
                lines += [
                    "  " + _("copiati: %(n)d", n=f["copied"]),
                    "  " + _("già presenti: %(n)d", n=f["already_present"]),
                    "  " + _("non copiati perché troppo grandi: %(n)d", n=f["skipped_too_large"]),
                    *_too_large_lines(row),
                    "  " + _("errori: %(n)d", n=f["errors"]),
                    "  " + _("mancanti: %(n)d", n=f["missing"]),
                    "",
                ]
            if any(_migration_figures(r)["skipped_too_large"] for r in rows):
                lines += [
                    _(
                        "I messaggi troppo grandi sono rimasti sul vecchio server: quelli elencati qui "
                        "sopra vanno recuperati da lì."
                    ),
                    "",
                ]
            if link:
                lines += [_("I rapporti completi: %(url)s", url=link)]
            outbox.queue_email(
                "migrations_done",
                to,
                subject,
                "\n".join(lines).rstrip("\n") + "\n" + _footer(),
                customer_id=domain.customer_id,
                locale=lang,
            )
