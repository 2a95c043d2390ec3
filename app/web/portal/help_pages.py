"""Help pages: client settings, the setup guide of each mail program, the FAQ, and a mailbox's
Apple configuration profile. Hosts and ports come from app/services/client_settings.py."""

from __future__ import annotations

from flask import current_app, make_response, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.services import autoconfig, client_settings, mailboxes
from app.web import current_actor
from app.web.portal import bp
from app.web.portal.common import customer_view, owned
from app.web.respond import render

# (key, title, where it runs): one page each, /help/guides/<key>, in the order the client
# settings page lists them.
GUIDES = (
    ("thunderbird", _l("Thunderbird"), _l("Windows, Mac e Linux")),
    ("outlook", _l("Outlook per Windows e Mac"), _l("Microsoft 365 e versioni recenti")),
    ("apple", _l("Apple Mail, iPhone e iPad"), _l("con il profilo da installare")),
    ("android", _l("Android (app Gmail)"), _l("smartphone e tablet")),
)


def _help_context() -> dict:
    config = current_app.config
    host = client_settings.mail_host()
    return {
        "mail_host": host,
        "mx_host": config["PROVIDER_MX_HOST"],
        "webmail_url": config.get("WEBMAIL_URL") or f"https://{host}",
        "sales_email": config.get("SALES_EMAIL"),
    }


def _client_context() -> dict:
    """The servers and an example address for the signed-in user (their customer's domain)."""
    actor = current_actor()
    customer_id = None if actor.is_staff else actor.customer_id
    example = client_settings.example(actor)
    return {
        **_help_context(),
        "servers": client_settings.servers(),
        "imap": client_settings.preferred("imap"),
        "pop3": client_settings.preferred("pop3"),
        "smtp": client_settings.outgoing(),
        "example_address": example.address,
        "example_domain": example.domain,
        "guides": [(key, title, devices, url_for(f"portal.guide_{key}")) for key, title, devices in GUIDES],
        "mailboxes_url": url_for("portal.mailboxes", customer_id=customer_id) if customer_id else None,
        "domains_url": url_for("portal.domains", customer_id=customer_id) if customer_id else None,
        # The document Thunderbird would get for the customer's domain (only once it is active).
        "thunderbird_url": url_for(
            "autoconfig.thunderbird",
            emailaddress=f"{client_settings.EXAMPLE_LOCAL_PART}@{example.active_domain}",
        )
        if example.active_domain
        else None,
        "autodiscover_url": url_for("autoconfig.outlook", _external=True),
    }


@bp.route("/help/client-settings", endpoint="client_settings")
def client_settings_page():
    return render("portal/client_settings.html", **_client_context())


def _guide_view(key: str, title):
    def view():
        return render("portal/client_guide.html", guide=key, title=title, **_client_context())

    view.__name__ = f"guide_{key}"
    return view


for _key, _title, _devices in GUIDES:
    bp.add_url_rule(f"/help/guides/{_key}", endpoint=f"guide_{_key}", view_func=_guide_view(_key, _title))


@bp.route("/help/faq")
def faq():
    return render("portal/faq.html", **_help_context())


@bp.route("/customers/<int:customer_id>/mailboxes/<int:mailbox_id>/mobileconfig")
def mailbox_mobileconfig(customer_id: int, mailbox_id: int):
    """The mailbox's Apple configuration profile (no password in it), to install on an iPhone,
    iPad or Mac."""
    view = customer_view(customer_id)
    mailbox = owned(
        mailboxes.get_mailbox(view.actor, mailbox_id), view.customer.id, _("Casella non trovata.")
    )
    response = make_response(autoconfig.mobileconfig(mailbox))
    response.headers["Content-Type"] = "application/x-apple-aspen-config"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{autoconfig.mobileconfig_filename(mailbox)}"'
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response
