"""JSON API /api/v1: background jobs (their progress and outcome) and the quota refresh that starts one."""

from __future__ import annotations

from flask import jsonify, url_for

from app.services import jobs, quota
from app.web.api import body
from app.web.api import serializers as out
from app.web.api.auth import actor
from app.web.api.blueprint import bp
from app.web.api.openapi import array_of, documented

JOB_LIMIT = body.Param(
    "limit",
    kind="integer",
    default=50,
    minimum=1,
    maximum=jobs.LIST_LIMIT,
    description="How many jobs, newest first.",
)


@bp.get("/jobs/<id:job_id>")
@documented("One background job: its state, progress and outcome.", "jobs", ok=out.JOB)
def job_get(job_id: int):
    return jsonify(out.job(jobs.get_job(actor(), job_id)))


@bp.get("/customers/<id:customer_id>/jobs")
@documented(
    "A customer's background jobs, newest first.",
    "jobs",
    ok=array_of(out.JOB),
    errors=(401, 404, 422),
    query=(JOB_LIMIT,),
)
def customer_jobs(customer_id: int):
    limit = body.query()["limit"]
    return jsonify([out.job(j) for j in jobs.jobs_for_customer(actor(), customer_id, limit)])


@bp.post("/customers/<id:customer_id>/quota-refresh")
@documented(
    "Start reading every mailbox's usage from the mail server; answers with the job "
    "(the one already queued or running, if any) and its Location.",
    "jobs",
    ok=out.JOB,
    status=202,
    errors=(401, 403, 404, 503),
)
def quota_refresh(customer_id: int):
    job = quota.request_refresh(actor(), customer_id)
    response = jsonify(out.job(job))
    response.headers["Location"] = url_for("api.job_get", job_id=job.id)
    return response, 202
