"""JSON API /api/v1: background jobs (their progress and outcome) and the quota refresh that starts one."""

from __future__ import annotations

from flask import jsonify, url_for

from app.models import Job
from app.services import jobs, quota
from app.web.api import body
from app.web.api.auth import actor
from app.web.api.blueprint import bp


def job_json(job: Job) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "done": job.done,
        "total": job.total,
        "message": job.message,
        "result": job.result,
    }


@bp.get("/jobs/<id:job_id>")
def job_get(job_id: int):
    return jsonify(job_json(jobs.get_job(actor(), job_id)))


@bp.get("/customers/<id:customer_id>/jobs")
def customer_jobs(customer_id: int):
    limit = body.query_int("limit", 50, maximum=jobs.LIST_LIMIT)
    return jsonify([job_json(j) for j in jobs.jobs_for_customer(actor(), customer_id, limit)])


@bp.post("/customers/<id:customer_id>/quota-refresh")
def quota_refresh(customer_id: int):
    """202: the refresh job (the one already queued or running, if any); follow its Location."""
    job = quota.request_refresh(actor(), customer_id)
    response = jsonify(job_json(job))
    response.headers["Location"] = url_for("api.job_get", job_id=job.id)
    return response, 202
