"""Schedules for `rq cron app/cron.py`. Run exactly one cron process; jobs are idempotent."""

from rq import cron

from app.jobs import heartbeat

cron.register(heartbeat, queue_name="default", interval=60)
