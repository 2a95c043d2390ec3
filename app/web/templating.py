"""Everything templates can call besides their context: the one list of filters and globals.

Codes and dates are written by app/services/labels.py; the rest is here. Globals (not a
context processor) where the value does not depend on the request, so macros imported
without context see them too and no page pays for them before it uses them.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from flask_babel import format_decimal, get_locale

from app.services import domains, labels
from app.services.addresses import idna_display
from app.web import current_actor


def fmt_int(n) -> str:
    """1234 -> "1.234" (in the reader's language)."""
    return format_decimal(n, format="#,##0")


def readable(text: object) -> str:
    """Addresses and domains as people write them: xn--caff-rossi-26a.it -> caffè-rossi.it."""
    text = "" if text is None else str(text)
    if "xn--" not in text:
        return text
    words = []
    for word in text.split(" "):
        local, at, domain = word.rpartition("@")
        words.append(f"{local}{at}{idna_display(domain)}" if "xn--" in domain else word)
    return " ".join(words)


def change_lines(action: str, changes: object) -> list[tuple[str, str]]:
    """An audit event's changes as (field, text) lines, with codes named and addresses readable."""
    return labels.change_lines(action, changes, show=readable)


def tel_uri(phone: str) -> str | None:
    """A dialable tel: URI (RFC 3966) for a phone number written for people: "+39 010 5961255"."""
    digits = "".join(ch for ch in phone if ch.isdigit() and ch.isascii())
    if not digits:
        return None
    international = phone.strip().startswith("+")
    return f"tel:{'+' if international else ''}{digits}"


def help_contacts() -> dict:
    """Support and sales contacts, for the footer of every page and the help pages (templates/_contacts.html)."""
    config = current_app.config
    phone = (config.get("SUPPORT_PHONE") or "").strip()
    return {
        "support_email": (config.get("SUPPORT_EMAIL") or "").strip(),
        "support_phone": phone,
        "support_tel": tel_uri(phone),
        "sales_email": (config.get("SALES_EMAIL") or "").strip(),
    }


def pending_domains(customer_id: int, loaded=None) -> dict[int, str]:
    """The customer's domains not served yet ({id: name}), once per request: pages mark their addresses.

    loaded: the customer's domains when the page has them already, to spare a query.
    """
    cache = g.setdefault("pending_domains", {})
    if customer_id not in cache:
        if loaded is not None:
            cache[customer_id] = {d.id: d.display_name for d in loaded if not d.is_active}
        else:
            cache[customer_id] = domains.pending_names(customer_id)
    return cache[customer_id]


def pending_domain_count() -> int:
    """For the staff navigation: how many domains wait for approval."""
    return domains.count_pending(current_actor())


def register_templating(app: Flask, htmx_url: str, htmx_sri: str) -> None:
    from app.services import jobs
    from app.web import jobs_ui
    from app.web.portal import quota as quota_ui
    from app.web.portal import recharge as recharge_ui
    from app.web.portal import wallet as wallet_ui
    from app.web.portal.mailboxes import mailbox_page_url, mailbox_row_kit

    app.add_template_filter(labels.when, "when")
    app.jinja_env.globals.update(
        label=labels.label,
        action_label=labels.action_label,
        choices=labels.choices,
        change_lines=change_lines,
        readable=readable,
        fmt_int=fmt_int,
        help_contacts=help_contacts,
        pending_domains=pending_domains,
        pending_domain_count=pending_domain_count,
        htmx_url=htmx_url,
        htmx_sri=htmx_sri,
        # The job component (templates/_job.html).
        job_urls=jobs_ui.job_urls,
        job_summary=jobs_ui.job_summary,
        job_waiting_long=jobs_ui.waiting_long,
        job_state_badges=jobs_ui.STATE_BADGES,
        job_kind_labels=jobs_ui.KIND_LABELS,
        # Mailbox usage (templates/portal/_usage_bar.html, _usage_refresh.html).
        size_label=quota_ui.size_label,
        usage_percent=quota_ui.usage_percent,
        nearly_full=quota_ui.nearly_full,
        reading_time=quota_ui.reading_time,
        clock_time=quota_ui.clock_time,
        quota_refresh_job=lambda customer_id: jobs.active_job("quota_refresh", customer_id),
        # The mailbox list's rows: words and URLs made once per request.
        mailbox_row_kit=mailbox_row_kit,
        mailbox_page_url=mailbox_page_url,
        # Points and EUR for people (docs/billing.md), and the portal's credit banner.
        fmt_points=wallet_ui.fmt_points,
        fmt_eur=wallet_ui.fmt_eur,
        recharge_points=recharge_ui.recharge_points,
        recharge_eur=recharge_ui.recharge_eur,
        recharge_balance_eur=recharge_ui.recharge_balance_eur,
        credit_banner=recharge_ui.credit_banner,
    )

    @app.context_processor
    def _per_request():
        return {"brand_name": current_app.config["BRAND_NAME"], "current_locale": str(get_locale())}
