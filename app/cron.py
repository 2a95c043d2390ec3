"""Schedules for `rq cron app/cron.py`. Run exactly one cron process; jobs are idempotent."""

from rq import cron

from app.jobs import heartbeat, refresh_quota_usage

cron.register(heartbeat, queue_name="default", interval=60)
# Every mailbox's usage from Dovecot, for the quota bars (one doveadm call reads them all).
cron.register(refresh_quota_usage, queue_name="default", interval=15 * 60, job_timeout=30 * 60)
