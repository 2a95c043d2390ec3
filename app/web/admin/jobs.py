"""Any background job in the back office (provider-wide ones too): the job component and its cancel."""

from __future__ import annotations

from app.services import jobs
from app.web import current_actor, jobs_ui, staff_required
from app.web.admin import bp


@bp.route("/jobs/<int:job_id>", endpoint="job")
@staff_required
def job_page(job_id: int):
    return jobs_ui.job_reply(jobs.get_job(current_actor(), job_id))


@bp.route("/jobs/<int:job_id>/cancel", methods=["POST"], endpoint="job_cancel")
@staff_required
def job_cancel(job_id: int):
    actor = current_actor()
    return jobs_ui.cancel_reply(actor, jobs.get_job(actor, job_id))
