"""The staff health page: is each part of the service up, and what the background work is doing."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.services import health
from app.web import staff_required
from app.web.admin import bp
from app.web.respond import render

LABELS = {
    "database": _l("Database"),
    "redis": _l("Redis (code dei lavori)"),
    "dovecot": _l("Dovecot (IMAP)"),
    "doveadm": _l("Dovecot (API doveadm, lettura dello spazio)"),
    "postfix": _l("Postfix (SMTP)"),
    "rspamd": _l("Rspamd (firma DKIM e antispam)"),
    "rspamd_milter": _l("Rspamd (milter di Postfix)"),
    "rspamd_redis": _l("Redis di rspamd (chiavi DKIM)"),
    "workers": _l("Worker RQ attivi"),
}


@bp.route("/health", endpoint="health")
@staff_required
def health_page():
    report = health.report()
    # Always 200: the page is the answer, whatever is down (it says which).
    down = [str(LABELS[c.name]) for c in report.checks if not c.ok]
    return render("admin/health.html", report=report, labels=LABELS, down=down)
