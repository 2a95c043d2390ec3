"""Schedules for `rq cron app/cron.py`. Run exactly one cron process; jobs are idempotent."""

from rq import cron

from app.jobs import heartbeat, schedule_quota_refresh, send_pending_emails, sweep_stale_jobs

cron.register(heartbeat, queue_name="default", interval=60)
# Running jobs whose worker died are failed and retried (their heartbeat stopped).
cron.register(sweep_stale_jobs, queue_name="default", interval=60)
# Every mailbox's usage from Dovecot, for the quota bars (one doveadm call reads them all).
cron.register(schedule_quota_refresh, queue_name="default", interval=15 * 60)
# The outbox's mails that are due: new ones whose job did not run, and the retries (backoff).
cron.register(send_pending_emails, queue_name="default", interval=60)
