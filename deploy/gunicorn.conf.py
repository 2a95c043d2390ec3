"""gunicorn settings for the panel (deploy/panel-web.service: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`).

Every value can be changed from the environment file without editing this one.
"""

import multiprocessing
import os

# nginx in front, on the same host: it terminates TLS and buffers slow clients,
# so gunicorn listens on loopback only and plain sync workers are enough.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

# Sync workers, 2 x cores + 1 (gunicorn's own rule of thumb): a request either
# waits on PostgreSQL (a worker per core more keeps the CPU busy meanwhile) or
# burns one core hashing a password (argon2id, parallelism 1, ~0.2 s, 64 MiB each),
# so more workers than that only queue hashes and multiply memory.
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"

# Nothing slow runs in a request (bulk work and quota readings are RQ jobs; the
# health page's probes give up after HEALTH_TIMEOUT): a request still running after
# 30 s is stuck, and its worker is replaced. nginx waits a little longer (60 s).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On stop or reload, requests in flight get this long to finish.
graceful_timeout = 30
# Replace each worker now and then, so a slow leak never grows unbounded.
max_requests = 2000
max_requests_jitter = 200

# X-Forwarded-Proto is believed only from nginx on this host; the app's ProxyFix
# (TRUSTED_PROXY_HOPS) takes the client's address from X-Forwarded-For.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# Logs to stderr: journald keeps them (journalctl -u panel-web). nginx writes the access log.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
capture_output = True
