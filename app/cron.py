"""Schedules for `rq cron app/cron.py`. Run exactly one cron process; jobs are idempotent."""

from rq import cron

from app.jobs import (
    dkim_check,
    expire_imports,
    heartbeat,
    schedule_billing_charge,
    schedule_dns_checks,
    schedule_migration_passes,
    schedule_quota_refresh,
    send_pending_emails,
    sweep_stale_jobs,
)

cron.register(heartbeat, queue_name="default", interval=60)
# Running jobs whose worker died are failed and retried (their heartbeat stopped).
cron.register(sweep_stale_jobs, queue_name="default", interval=60)
# Every mailbox's usage from Dovecot, for the quota bars (one doveadm call reads them all).
cron.register(schedule_quota_refresh, queue_name="default", interval=15 * 60)
# The outbox's mails that are due: new ones whose job did not run, and the retries (backoff).
cron.register(send_pending_emails, queue_name="default", interval=60)

# The Pay-per-Use daily charge. rq reads cron strings in the cron process's own timezone, not
# necessarily the provider's (PROVIDER_TIMEZONE), so it looks every hour at :05: the first look
# after the provider's midnight queues the charge of the day just ended; the others find nothing
# left to charge and queue nothing.
cron.register(schedule_billing_charge, queue_name="billing", cron="5 * * * *")

# Imports: previews never applied and generated passwords never taken are wiped after IMPORT_TTL_HOURS.
cron.register(expire_imports, queue_name="default", interval=10 * 60)

# Domains' DNS: new ones and changed MX every 10 minutes, then hourly until propagated, then daily
# (app/services/domain_checks.py decides who is due; this only looks every minute).
cron.register(schedule_dns_checks, queue_name="dns", interval=60)

# Migrations: sync passes that are due (the final one at once when the MX has propagated), copies
# waiting for a turn on their old server, and the mail of a domain whose migration ended.
cron.register(schedule_migration_passes, queue_name="default", interval=120)

# DKIM keys: a pending key's record looked up at the domain's servers (signing switches once it is
# published), retirements, keys for active domains without one, and rspamd's Redis written again.
cron.register(dkim_check, queue_name="dns", interval=10 * 60, job_timeout=60 * 60)
