"""`flask dkim ensure | check | sync`: the domains' DKIM keys (app/services/dkim.py)."""

from __future__ import annotations

import click

from app.cli.errors import Group
from app.services import dkim

dkim_group = Group("dkim", help="Domains' DKIM keys and rspamd's Redis.")


@dkim_group.command("ensure")
@click.option("--limit", type=int, default=10_000, show_default=True, help="Keys made at most in this run.")
def ensure(limit):
    """A signing key for every active domain without one (then rspamd's Redis is written)."""
    made = dkim.ensure_all(limit=limit)
    written = dkim.sync_redis()
    click.echo(f"keys made: {made}; Redis: {written['written']} written, {written['removed']} removed")


@dkim_group.command("check")
def check():
    """What the cron does: missing keys, the TXT records' check (pending keys switch), retirements, sync."""
    totals = dkim.run()
    click.echo(", ".join(f"{k}: {v}" for k, v in totals.items()))


@dkim_group.command("sync")
def sync():
    """Write rspamd's DKIM hashes again from the database (RSPAMD_REDIS_URL)."""
    written = dkim.sync_redis()
    click.echo(f"Redis: {written['written']} written, {written['removed']} removed")
