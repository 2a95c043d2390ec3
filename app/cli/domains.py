"""`flask domains check NAME [--json]`: a domain's DNS as the panel sees it, for any name."""

from __future__ import annotations

import json

import click
from flask_babel import gettext as _

from app.cli.errors import Group
from app.services import dnscheck, domain_checks

domains_group = Group("domains", help="Mail domains.")


def _answer_line(answer: dict) -> str:
    who = (
        answer["server"]
        if answer["server"] == answer["address"] or not answer["address"]
        else f"{answer['server']} ({answer['address']})"
    )
    if answer["status"] == "ok":
        what = ", ".join(answer["records"]) + (f" (TTL {answer['ttl']})" if answer["ttl"] is not None else "")
    elif answer["status"] == "nodata":
        what = _("nessun record MX")
    elif answer["status"] == "nxdomain":
        what = _("il nome non esiste")
    else:
        what = answer["status"] + (f": {answer['error']}" if answer["error"] else "")
    return f"  {who}: {what}"


@domains_group.command("check")
@click.argument("name")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the verdict and every answer as one JSON object."
)
def check(name, as_json):
    """Check a domain's MX at its own authoritative servers and at the resolver (any name).

    A domain of the panel keeps the result, and a pending one becomes active once its proof is there.
    """
    report, domain, recorded = domain_checks.check_any(name)
    verdict = report.verdict
    if recorded is not None and report.verdict != dnscheck.UNKNOWN:
        verdict = recorded.verdict  # published for long enough is propagated
    reason = (
        domain_checks.describe(domain.check)
        if domain is not None and report.verdict != dnscheck.UNKNOWN
        else dnscheck.describe(report.verdict, report.code, report.facts, report.expected)
    )
    if as_json:
        data = {**report.as_dict(), "verdict": verdict, "reason": reason}
        if domain is not None:
            data["panel"] = {
                "state": domain.state,
                "activated": bool(recorded and recorded.activated),
                "verified_by": domain.verified_by,
                "kept_verdict": domain.check.verdict if domain.check else None,
                "verification_txt": domain_checks.verification_txt(domain),
            }
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"{report.domain}: {verdict} ({domain_checks.verdict_label(verdict)})")
    click.echo(f"  {reason}")
    if report.zone:
        click.echo(_("Zona %(zone)s, server autoritativi:", zone=report.zone))
    for answer in report.mx:
        click.echo(_answer_line(answer))
    if report.resolver:
        click.echo(_("Resolver:"))
        click.echo(_answer_line(report.resolver))
    for advice in report.advice:
        line = f"  {advice['record'].upper()}: {dnscheck.advice_label(advice['status'])}"
        if advice["found"]:
            line += " - " + "; ".join(advice["found"])
        if advice["status"] != "ok" and advice["suggested"]:
            line += " -> " + advice["suggested"]
        click.echo(line)
    if domain is None:
        click.echo(_("Il dominio non è nel pannello."))
    elif recorded and recorded.activated:
        how = _("il record TXT") if domain.verified_by == "txt" else _("il record MX")
        click.echo(_("Dominio attivato: la prova (%(how)s) è nel DNS.", how=how))
    elif not domain.is_active:
        click.echo(
            _(
                "Dominio in attesa di verifica: pubblica il TXT %(txt)s",
                txt=domain_checks.verification_txt(domain),
            )
        )
