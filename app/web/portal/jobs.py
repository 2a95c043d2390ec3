"""A customer's background jobs in the portal: the job component (it polls itself) and its cancel."""

from __future__ import annotations

from flask_babel import gettext as _

from app.services import jobs
from app.web import jobs_ui
from app.web.portal import bp
from app.web.portal.common import customer_view, owned


def _job(customer_id: int, job_id: int):
    view = customer_view(customer_id)
    return view, owned(jobs.get_job(view.actor, job_id), view.customer.id, _("Lavoro non trovato."))


@bp.route("/customers/<int:customer_id>/jobs/<int:job_id>")
def job(customer_id: int, job_id: int):
    view, found = _job(customer_id, job_id)
    return jobs_ui.job_reply(found, customer=view.customer)


@bp.route("/customers/<int:customer_id>/jobs/<int:job_id>/cancel", methods=["POST"])
def job_cancel(customer_id: int, job_id: int):
    view, found = _job(customer_id, job_id)
    return jobs_ui.cancel_reply(view.actor, found, customer=view.customer)
