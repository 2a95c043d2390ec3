"""`flask billing charge|verify`: the Pay-per-Use daily charge and the ledger's check."""

from __future__ import annotations

from datetime import date

import click
from flask_babel import gettext as _

from app.cli.errors import EXIT_ERROR, EXIT_USAGE, Group, refuse
from app.services import billing, clock

billing_group = Group("billing", help="Pay-per-Use point accounts.")


@billing_group.command("charge")
@click.option(
    "--date",
    "until",
    default=None,
    help="Charge every day not yet charged up to this one (YYYY-MM-DD; default yesterday)",
)
def charge(until):
    """Charge every Pay-per-Use customer every day not yet charged, in order (safe to run again)."""
    if until is None:
        day = clock.yesterday()
    else:
        try:
            day = date.fromisoformat(until)
        except ValueError:
            refuse(_("Errore: data non valida %(value)s: scrivi AAAA-MM-GG.", value=until), EXIT_USAGE)
        if day >= clock.today():
            refuse(
                _("Errore: si addebitano solo giorni finiti: al più ieri (%(day)s).", day=clock.yesterday()),
                EXIT_USAGE,
            )
    run = billing.charge_and_review(day, label="cli")
    click.echo(
        _(
            "Addebitati %(charged)s giorni-cliente fino al %(day)s (%(skipped)s già addebitati da un altro processo).",
            charged=run.charged,
            day=day.isoformat(),
            skipped=run.skipped,
        )
    )


@billing_group.command("verify")
def verify():
    """Check every balance equals the sum of its entries and no day is charged twice (exit 1 if not)."""
    problems = billing.verify()
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(EXIT_ERROR)
    click.echo(_("Conti a punti in ordine."))
