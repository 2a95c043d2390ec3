"""The DNS check against a real DNS server on loopback (tests/dnsserver.py): the resolver on
127.0.0.1 and a zone's authoritative servers on 127.0.0.2 and 127.0.0.3, one port.

Every verdict, the servers that disagree or do not answer, IDN and odd spellings of our host,
and what the panel does with it over time: activation by proof, published -> propagated,
the warning when an MX moves away, the re-check job, the CLI and the migration gate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, Domain, Outbox
from app.services import clock, dnscheck, domain_checks, domains
from app.services.access import Actor
from app.services.addresses import domain_to_ascii
from tests import factories
from tests.dnsfixtures import asking

OURS = "10 mx.collabra.it."
NS1, NS2 = "127.0.0.2", "127.0.0.3"
# After the rows' created_at (the real clock): a domain's first hours are counted from then.
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)


@pytest.fixture
def world(app, dns):
    """The app asking the local DNS server, every check a real one (no cooldown)."""
    with asking(app.config, dns):
        yield dns
    clock.reset()


def delegate(dns, zone: str, *servers: str) -> None:
    servers = servers or (NS1, NS2)
    dns.delegate(zone, {f"ns{i}.{zone}": address for i, address in enumerate(servers, 1)})


def mx(dns, zone: str, records, *, at=(NS1, NS2), ttl: int = 3600, resolver=None) -> None:
    dns.at(*at).set(zone, "MX", records, ttl=ttl)
    if resolver is not None:
        dns.resolver.set(zone, "MX", resolver, ttl=ttl)


def check(name: str, **kw) -> dnscheck.Report:
    return dnscheck.check_name(name, **kw)


# The verdicts, for any name.


def test_every_server_answering_our_mx_is_published_and_the_resolver_seeing_it_propagated(world):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS, resolver="10 mx.vecchio.net.")
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("published", "published")
    assert report.zone == "rossi.it"
    assert sorted(a["address"] for a in report.mx) == [NS1, NS2]
    assert all(a["records"] == [OURS] and a["ttl"] == 3600 for a in report.mx)
    assert report.resolver["records"] == ["10 mx.vecchio.net."]
    assert "la tua parte è fatta" in dnscheck.describe(
        report.verdict, report.code, report.facts, report.expected
    )

    world.resolver.set("rossi.it", "MX", OURS)
    assert check("rossi.it").verdict == "propagated"


def test_no_mx_or_no_domain_is_missing(world):
    delegate(world, "rossi.it")
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("missing", "no_mx")
    assert report.ttl is not None  # the zone's negative TTL: how long "no MX" may be remembered

    report = check("nessuno-ha-questo-dominio.it")  # NXDOMAIN at the resolver: no zone to ask
    assert (report.verdict, report.code) == ("missing", "nxdomain")
    assert report.mx == []


@pytest.mark.parametrize(
    ("records", "code", "named"),
    [
        (["10 mx.vecchio.net.", "20 mx2.vecchio.net."], "other", ["mx.vecchio.net"]),
        ([OURS, "10 mx.vecchio.net."], "extra", ["mx.vecchio.net"]),
        (["5 mx.vecchio.net.", "20 mx.collabra.it."], "higher", ["mx.vecchio.net"]),
        (["0 ."], "null_mx", []),
    ],
)
def test_an_mx_that_is_not_exactly_ours_at_the_lowest_preference_is_wrong(world, records, code, named):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", records)
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("wrong", code)
    words = dnscheck.describe(report.verdict, report.code, report.facts, report.expected)
    for host in named:
        assert host in words
    if code == "higher":
        assert report.facts["preference"] == 20 and "priorità 20" in words


def test_our_host_spelled_upper_case_or_with_the_trailing_dot_is_ours(world):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", "10 MX.Collabra.IT.")
    report = check("rossi.it")
    # The server answers the capitals (DNS compression may take "it" from the question's name).
    assert report.verdict == "published" and report.mx[0]["records"][0].startswith("10 MX.Collabra.")


def test_the_settings_host_with_a_trailing_dot_or_capitals_still_matches(world, app):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS)
    app.config["PROVIDER_MX_HOST"], saved = "MX.Collabra.it.", app.config["PROVIDER_MX_HOST"]
    try:
        assert check("rossi.it").verdict == "published"
    finally:
        app.config["PROVIDER_MX_HOST"] = saved


def test_authoritative_servers_that_disagree_are_wrong_and_both_are_named(world):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS, at=(NS1,))
    mx(world, "rossi.it", "10 mx.vecchio.net.", at=(NS2,))
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("wrong", "disagree")
    words = dnscheck.describe(report.verdict, report.code, report.facts, report.expected)
    assert "ns1.rossi.it" in words and "ns2.rossi.it" in words and "mx.vecchio.net" in words


def test_a_server_that_times_out_or_fails_makes_the_check_unknown_and_says_which(world):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS)
    world.behave(NS2, "timeout")
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("unknown", "partial")
    assert report.facts["silent"] == {f"ns2.rossi.it ({NS2})": "timeout"}

    world.behave(NS1, "servfail")
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("unknown", "no_answer")
    assert set(report.facts["silent"].values()) == {"servfail", "timeout"}


def test_a_silent_server_does_not_hide_a_certain_wrong_answer(world):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", "10 mx.vecchio.net.")
    world.behave(NS2, "timeout")
    report = check("rossi.it")
    assert report.verdict == "wrong"
    assert "ns2.rossi.it" in dnscheck.describe(report.verdict, report.code, report.facts, report.expected)


def test_a_resolver_that_cannot_find_the_zone_is_unknown(world):
    delegate(world, "rossi.it")
    world.behave(world.resolver_address, "servfail")
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("unknown", "no_zone")


def test_an_idn_domain_is_asked_in_its_ascii_form(world):
    ascii_name = domain_to_ascii("caffè-bianchi.it")
    assert ascii_name.startswith("xn--")
    delegate(world, ascii_name)
    mx(world, ascii_name, OURS, resolver=OURS)
    report = check(ascii_name)
    assert report.verdict == "propagated" and report.zone == ascii_name


def test_advice_names_what_to_publish_and_keeps_the_customers_own_spf(world):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS)
    world.authorities("rossi.it").set("rossi.it", "TXT", ['"v=spf1 include:_spf.google.com -all"'])
    world.authorities("rossi.it").set("autoconfig.rossi.it", "CNAME", "mail.collabra.it.")
    advice = {a["record"]: a for a in check("rossi.it").advice}
    assert advice["spf"]["status"] == "wrong"
    assert advice["spf"]["suggested"] == "v=spf1 include:_spf.google.com include:spf.collabra.it -all"
    assert advice["dmarc"]["status"] == "missing"
    assert advice["autoconfig"]["status"] == "ok"
    assert advice["autodiscover"]["status"] == "missing"

    world.authorities("rossi.it").set(
        "rossi.it", "TXT", ['"v=spf1 mx include:spf.collabra.it ~all"', '"v=spf1 -all"']
    )
    world.authorities("rossi.it").set("_dmarc.rossi.it", "TXT", '"v=DMARC1; p=quarantine"')
    world.authorities("rossi.it").set("_autodiscover._tcp.rossi.it", "SRV", "0 0 443 mail.collabra.it.")
    advice = {a["record"]: a for a in check("rossi.it").advice}
    assert advice["spf"]["status"] == "multiple"
    assert advice["dmarc"]["status"] == "ok" and advice["autodiscover"]["status"] == "ok"


# A domain of the panel over time.


def pending_domain(name: str = "rossi.it") -> Domain:
    c = factories.customer(domain="cliente-base.example")
    actor = Actor.for_user(factories.admin(c))
    return domains.add_domain(actor, c.id, name)


def test_a_pending_domain_is_activated_by_its_txt_proof_and_not_by_a_wrong_token(world):
    domain = pending_domain()
    delegate(world, "rossi.it")
    mx(world, "rossi.it", "10 mx.vecchio.net.")
    txt = domain_checks.verification_txt(domain)
    assert txt == f"collabra-verification={domain.verification_token}"
    world.authorities("rossi.it").set(
        "rossi.it", "TXT", '"collabra-verification=0123456789abcdef0123456789abcdef"'
    )

    report, found, recorded = domain_checks.check_any("rossi.it")
    assert report.txt_found is False and not recorded.activated
    assert db.session.get(Domain, domain.id).state == "pending"

    # At one server of two only (a stale secondary, a delegation nobody tends): not proved.
    world.at(NS2).set("rossi.it", "TXT", [f'"{txt}"', '"v=spf1 -all"'])
    report, found, recorded = domain_checks.check_any("rossi.it")
    assert report.txt_found is False and db.session.get(Domain, domain.id).state == "pending"

    world.at(NS1).set("rossi.it", "TXT", [f'"{txt}"'])
    report, found, recorded = domain_checks.check_any("rossi.it")
    assert report.txt_found and recorded.activated
    domain = db.session.get(Domain, domain.id)
    assert (domain.state, domain.verified_by) == ("active", "txt")
    assert domain_checks.verification_txt(domain) is None
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "domain.verify")).one()
    assert event.target == "rossi.it" and event.changes["verified_by"] == [None, "txt"]

    # Verified stays verified: the TXT and the MX may go, the domain stays active.
    world.authorities("rossi.it").remove("rossi.it", "TXT")
    world.authorities("rossi.it").remove("rossi.it", "MX")
    domain_checks.check_any("rossi.it")
    assert db.session.get(Domain, domain.id).state == "active"


def test_a_pending_domain_whose_mx_already_points_to_us_is_activated(world):
    domain = pending_domain()
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS)
    _report, _d, recorded = domain_checks.check_any("rossi.it")
    assert recorded.activated
    assert db.session.get(Domain, domain.id).verified_by == "mx"


def test_an_mx_to_us_does_not_hand_a_name_another_customer_held_to_the_next_claimant(world):
    """Customer A leaves; its domain's MX still points to us. B claims the name: only the TXT proves it."""
    a = factories.customer(domain="rossi.it")
    domains.delete_domain(factories.SYSTEM, domains.list_domains(factories.SYSTEM, a.id)[0].id)
    domain = pending_domain("rossi.it")
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS, resolver=OURS)
    _report, _d, recorded = domain_checks.check_any("rossi.it")
    assert not recorded.activated and recorded.verdict == "propagated"
    assert db.session.get(Domain, domain.id).state == "pending"
    world.authorities("rossi.it").set("rossi.it", "TXT", f'"{domain_checks.verification_txt(domain)}"')
    assert domain_checks.check_any("rossi.it")[2].activated


def test_published_becomes_propagated_once_the_old_records_ttl_has_passed(world):
    c = factories.customer(domain="rossi.it")
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    delegate(world, "rossi.it")
    clock.set_now(T0)
    mx(world, "rossi.it", "10 mx.vecchio.net.", ttl=3600, resolver="10 mx.vecchio.net.")
    domain_checks.check_any("rossi.it")
    row = db.session.get(Domain, domain.id).check
    assert row.verdict == "wrong" and row.old_ttl == 3600
    assert row.first_seen == {"wrong": T0.isoformat()}

    clock.set_now(T0 + timedelta(minutes=5))
    mx(world, "rossi.it", OURS, ttl=300)  # the customer changed it; resolvers still hold the old one
    assert domain_checks.check_any("rossi.it")[2].verdict == "published"
    clock.set_now(T0 + timedelta(minutes=64))
    assert domain_checks.check_any("rossi.it")[2].verdict == "published"
    clock.set_now(T0 + timedelta(minutes=66))  # 61 minutes after it was first seen published
    assert domain_checks.check_any("rossi.it")[2].verdict == "propagated"
    row = db.session.get(Domain, domain.id).check
    assert row.first_seen["published"] == (T0 + timedelta(minutes=5)).isoformat()
    assert row.first_seen["propagated"] == (T0 + timedelta(minutes=66)).isoformat()
    assert domain_checks.describe(row).startswith("Il record MX punta a mx.collabra.it da abbastanza tempo")


def test_without_an_old_ttl_propagation_waits_at_most_48_hours(world):
    c = factories.customer(domain="rossi.it")
    delegate(world, "rossi.it")
    clock.set_now(T0)
    mx(world, "rossi.it", OURS, resolver="10 mx.vecchio.net.")
    assert domain_checks.check_any("rossi.it")[2].verdict == "published"
    clock.set_now(T0 + timedelta(hours=47))
    assert domain_checks.check_any("rossi.it")[2].verdict == "published"
    clock.set_now(T0 + timedelta(hours=48))
    assert domain_checks.check_any("rossi.it")[2].verdict == "propagated"
    assert c.id


def test_an_unknown_check_keeps_the_previous_verdict_and_says_why(world):
    factories.customer(domain="rossi.it")
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS, resolver=OURS)
    assert domain_checks.check_any("rossi.it")[2].verdict == "propagated"
    world.behave(NS1, "timeout")
    world.behave(NS2, "timeout")
    report, domain, recorded = domain_checks.check_any("rossi.it")
    assert report.verdict == "unknown" and recorded.verdict == "propagated"
    assert domain.check.verdict == "propagated" and domain.check.problem == "no_answer"
    assert "Nessun server DNS del dominio ha risposto" in domain_checks.describe(domain.check)


def test_an_active_domains_mx_moving_away_warns_the_customer_and_support_once(world, app):
    c = factories.customer(domain="rossi.it")
    factories.admin(c, email="it@rossi.it")
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS, resolver=OURS)
    domain_checks.check_any("rossi.it")
    mx(world, "rossi.it", "10 mx.altro.net.", resolver="10 mx.altro.net.")
    recorded = domain_checks.check_any("rossi.it")[2]
    assert recorded.warned and recorded.verdict == "wrong"
    mails = db.session.scalars(sa.select(Outbox).where(Outbox.kind == "mx_moved")).all()
    assert sorted(m.to_addresses for m in mails) == sorted(["it@rossi.it", app.config["SUPPORT_EMAIL"]])
    assert all("mx.altro.net" in m.body_text for m in mails)
    # Once: the next check of the same story sends nothing more; back to us, a later move warns again.
    assert not domain_checks.check_any("rossi.it")[2].warned
    mx(world, "rossi.it", OURS, resolver=OURS)
    domain_checks.check_any("rossi.it")
    mx(world, "rossi.it", "10 mx.altro.net.")
    assert domain_checks.check_any("rossi.it")[2].warned
    assert (
        db.session.scalar(sa.select(sa.func.count()).select_from(Outbox).where(Outbox.kind == "mx_moved"))
        == 4
    )


def test_the_recheck_job_checks_what_is_due_activates_proofs_and_plans_the_next_checks(world):
    clock.set_now(T0)
    pending = pending_domain("rossi.it")
    c = factories.customer(domain="bianchi.it")
    active = domains.list_domains(factories.SYSTEM, c.id)[0]
    delegate(world, "rossi.it")
    delegate(world, "bianchi.it")
    world.authorities("rossi.it").set("rossi.it", "TXT", f'"{domain_checks.verification_txt(pending)}"')
    mx(world, "bianchi.it", OURS, resolver=OURS)
    assert set(domain_checks.due(T0)) >= {pending.id, active.id}

    totals = domain_checks.recheck_due()
    assert totals["checked"] == 3 and totals["activated"] == 1  # with cliente-base.example (no zone)
    assert db.session.get(Domain, pending.id).state == "active"
    active_row = db.session.get(Domain, active.id).check
    assert active_row.verdict == "propagated" and active_row.next_check_at == T0 + timedelta(days=1)
    # rossi.it proved itself with the TXT but has no MX yet: checked again in 10 minutes.
    assert db.session.get(Domain, pending.id).check.next_check_at == T0 + timedelta(minutes=10)
    assert domain_checks.due(T0 + timedelta(minutes=9)) == []
    assert pending.id in domain_checks.due(T0 + timedelta(minutes=10))
    # After the first hours, a domain not yet propagated is checked hourly.
    clock.set_now(T0 + timedelta(hours=3))
    domain_checks.recheck_due()
    assert db.session.get(Domain, pending.id).check.next_check_at == T0 + timedelta(hours=4)


def test_the_migration_gate_opens_when_the_mx_has_propagated_or_staff_allow_it(world):
    c = factories.customer(domain="rossi.it")
    domain = domains.list_domains(factories.SYSTEM, c.id)[0]
    customer_actor = Actor.for_user(factories.admin(c))
    staff = Actor.for_user(factories.staff())
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS, resolver="10 mx.vecchio.net.")
    domain_checks.check_any("rossi.it")
    gate = domain_checks.migration_gate(db.session.get(Domain, domain.id))
    assert not gate.open and "MX pubblicato" in gate.reason

    from app.services.errors import PermissionDenied, ValidationError

    with pytest.raises(PermissionDenied):
        domain_checks.allow_migration(customer_actor, domain.id, "il cliente ha fretta, davvero")
    with pytest.raises(ValidationError):
        domain_checks.allow_migration(staff, domain.id, "corto")
    domain_checks.allow_migration(staff, domain.id, "Il vecchio fornitore chiude domani")
    assert domain_checks.migration_gate(db.session.get(Domain, domain.id)).open
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "domain.migration_override")
    ).one()
    assert event.changes["migration_override"] == [None, "Il vecchio fornitore chiude domani"]

    other = factories.customer(domain="bianchi.it")
    delegate(world, "bianchi.it")
    mx(world, "bianchi.it", OURS, resolver=OURS)
    domain_checks.check_any("bianchi.it")
    assert domain_checks.migration_gate(domains.list_domains(factories.SYSTEM, other.id)[0]).open


# The command line.


def test_flask_domains_check_json_works_for_any_name(world, app):
    delegate(world, "esterno.it")
    mx(world, "esterno.it", OURS, at=(NS1,))
    world.behave(NS2, "timeout")
    result = app.test_cli_runner().invoke(args=["domains", "check", "Esterno.IT", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verdict"] == "unknown" and data["domain"] == "esterno.it"
    assert {a["address"]: a["status"] for a in data["mx"]} == {NS1: "ok", NS2: "timeout"}
    assert "panel" not in data

    world.behave(NS2, "answer")
    mx(world, "esterno.it", OURS)
    result = app.test_cli_runner().invoke(args=["domains", "check", "esterno.it"])
    assert result.exit_code == 0
    assert result.output.startswith("esterno.it: published (MX pubblicato)")
    assert "Il dominio non è nel pannello." in result.output


def test_flask_domains_check_activates_a_pending_domain_once_its_proof_is_there(world, app):
    domain = pending_domain()
    delegate(world, "rossi.it")
    result = app.test_cli_runner().invoke(args=["domains", "check", "rossi.it", "--json"])
    data = json.loads(result.output)
    assert data["verdict"] == "missing"
    assert data["panel"]["state"] == "pending"
    assert data["panel"]["verification_txt"] == domain_checks.verification_txt(domain)
    world.authorities("rossi.it").set("rossi.it", "TXT", f'"{data["panel"]["verification_txt"]}"')
    result = app.test_cli_runner().invoke(args=["domains", "check", "rossi.it"])
    assert "Dominio attivato" in result.output
    assert db.session.get(Domain, domain.id).state == "active"


def test_a_check_the_servers_did_not_answer_comes_back_soon_and_an_unproved_claim_daily(world):
    clock.set_now(T0)
    factories.customer(domain="rossi.it")
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS, resolver=OURS)
    domain_checks.check_any("rossi.it")
    clock.set_now(T0 + timedelta(days=3))
    world.behave(NS1, "timeout")
    row = domain_checks.check_any("rossi.it")[1].check
    assert row.verdict == "propagated" and row.next_check_at == T0 + timedelta(days=3, hours=1)

    domain = pending_domain("bianchi.it")
    delegate(world, "bianchi.it")
    domain_checks.check_any("bianchi.it")
    clock.set_now(T0 + timedelta(days=40))
    row = domain_checks.check_any("bianchi.it")[1].check
    assert row.verdict == "missing" and row.next_check_at == T0 + timedelta(days=41)
    assert db.session.get(Domain, domain.id).state == "pending"


# The schedule and a real worker on the dns queue.


def test_the_cron_queues_one_recheck_on_the_dns_queue_and_a_real_worker_activates_the_proved_domain(
    world, app, connection, worker_app, tmp_path, database_url
):
    from rq import Queue
    from rq.cron import CronScheduler

    from app import jobs as entry
    from app.models import Job
    from tests.integration.conftest import REDIS_URL
    from tests.integration.test_jobs import WorkerProcess, fresh
    from tests.integration.test_supervision import wait_for

    scheduler = CronScheduler(connection=connection)
    scheduler.load_config_from_file("app/cron.py")
    scheduled = {j.func_name: j for j in scheduler.get_jobs()}["app.jobs.schedule_dns_checks"]
    assert (scheduled.interval, scheduled.queue_name) == (60, "dns")

    worker_app.config["REDIS_URL"] = REDIS_URL
    domain = pending_domain("rossi.it")
    delegate(world, "rossi.it")
    world.authorities("rossi.it").set("rossi.it", "TXT", f'"{domain_checks.verification_txt(domain)}"')
    first, again = entry.schedule_dns_checks(), entry.schedule_dns_checks()
    assert first == again  # one re-check at a time
    assert db.session.get(Job, first).queue == "dns"
    assert Queue("dns", connection=connection).count == 1

    worker = WorkerProcess(
        tmp_path,
        database_url,
        "--queues",
        "dns",
        DNS_TIMEOUT="0.5",
        DNS_ALLOW_PRIVATE_SERVERS="true",
        **{k: str(v) for k, v in world.config.items()},
    )
    try:
        wait_for(lambda: fresh(first).state == "done", 60, "the DNS re-check job to finish")
    finally:
        worker.stop()
    assert fresh(first).result == {"checked": 2, "activated": 1, "warned": 0, "unknown": 0, "failed": 0}
    db.session.expire_all()
    assert db.session.get(Domain, domain.id).state == "active"
    # Nothing is due now: the cron queues nothing.
    assert entry.schedule_dns_checks() is None


# What a hostile or broken zone can make the check do.


def test_a_server_that_refuses_the_zone_is_named_but_does_not_hold_the_verdict_back(world):
    delegate(world, "rossi.it", NS1, NS2, "127.0.0.4")
    mx(world, "rossi.it", OURS, at=(NS1, NS2))
    world.behave("127.0.0.4", "refused")
    report = check("rossi.it")
    assert report.verdict == "published" and report.facts["lame"] == {"ns3.rossi.it (127.0.0.4)": "refused"}
    words = dnscheck.describe(report.verdict, report.code, report.facts, report.expected)
    assert "ns3.rossi.it (127.0.0.4)" in words and "record NS" in words


def test_name_servers_on_private_addresses_are_never_asked_in_production(world, app):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS)
    app.config["DNS_ALLOW_PRIVATE_SERVERS"] = False
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("unknown", "no_zone")
    assert world.queries(NS1) == world.queries(NS2) == 0


def test_a_zone_listing_many_name_servers_is_asked_once_per_address(world):
    world.delegate("rossi.it", {f"ns{i}.rossi.it": (NS1 if i % 2 else NS2) for i in range(40)})
    mx(world, "rossi.it", OURS)
    report = check("rossi.it")
    assert report.verdict == "published" and sorted(a["address"] for a in report.mx) == [NS1, NS2]
    assert world.queries(NS1) <= 8 and world.queries(NS2) <= 8


def test_a_check_ends_by_its_deadline_whatever_the_servers_do(world, app):
    delegate(world, "rossi.it")
    world.behave(NS1, "delay", delay=2)
    world.behave(NS2, "delay", delay=2)
    app.config.update(DNS_TIMEOUT=5, DNS_CHECK_DEADLINE=0.5)
    try:
        report = check("rossi.it")
    finally:
        app.config["DNS_CHECK_DEADLINE"] = 20
    assert (report.verdict, report.code) == ("unknown", "deadline")


def test_a_new_story_of_the_mx_starts_its_own_first_seen(world):
    factories.customer(domain="rossi.it")
    delegate(world, "rossi.it")
    clock.set_now(T0)
    domain_checks.check_any("rossi.it")
    clock.set_now(T0 + timedelta(hours=1))
    mx(world, "rossi.it", OURS, resolver=OURS)
    domain_checks.check_any("rossi.it")
    clock.set_now(T0 + timedelta(hours=5))
    world.authorities("rossi.it").remove("rossi.it", "MX")
    row = domain_checks.check_any("rossi.it")[1].check
    assert row.first_seen == {"missing": (T0 + timedelta(hours=5)).isoformat()}
    # Just changed: looked at again in 10 minutes, not in an hour.
    assert row.next_check_at == T0 + timedelta(hours=5, minutes=10)


def test_the_mx_proof_does_not_hand_a_subdomain_of_a_name_another_customer_held(world):
    a = factories.customer(domain="rossi.it")
    domains.delete_domain(factories.SYSTEM, domains.list_domains(factories.SYSTEM, a.id)[0].id)
    domain = pending_domain("posta.rossi.it")
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS)
    world.authorities("rossi.it").set("posta.rossi.it", "MX", OURS)
    _report, _d, recorded = domain_checks.check_any("posta.rossi.it")
    assert recorded.verdict == "published" and not recorded.activated
    assert db.session.get(Domain, domain.id).state == "pending"


def test_a_customer_has_only_so_many_claims_waiting_for_their_proof(app):
    from app.services.errors import Conflict

    c = factories.customer(domain="base.example")
    actor = Actor.for_user(factories.admin(c))
    app.config["MAX_PENDING_DOMAINS"], saved = 3, app.config["MAX_PENDING_DOMAINS"]
    try:
        for n in range(3):
            domains.add_domain(actor, c.id, f"claim{n}.example")
        with pytest.raises(Conflict) as refused:
            domains.add_domain(actor, c.id, "claim3.example")
        assert "3 domini in attesa di verifica" in refused.value.message
        domains.add_domain(factories.SYSTEM, c.id, "staff-adds-active.example")  # staff are not limited
    finally:
        app.config["MAX_PENDING_DOMAINS"] = saved


def test_a_domain_whose_outcome_cannot_be_written_does_not_lose_the_others(world):
    """The database refuses one domain's row (a trigger here): the others of its batch are kept."""
    c = factories.customer(domain="bianchi.it")
    refused = pending_domain("rossi.it")
    for zone in ("rossi.it", "bianchi.it"):
        delegate(world, zone)
        mx(world, zone, OURS, resolver=OURS)
    dialect = db.session.get_bind().dialect.name
    if dialect == "sqlite":
        statements = [
            "CREATE TRIGGER refuse_one BEFORE INSERT ON domain_checks "
            f"WHEN NEW.domain_id = {refused.id} BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
        drop = ["DROP TRIGGER refuse_one"]
    else:
        statements = [
            "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.domain_id = {refused.id} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_one BEFORE INSERT ON domain_checks FOR EACH ROW EXECUTE FUNCTION refuse_one()",
        ]
        drop = ["DROP TRIGGER refuse_one ON domain_checks", "DROP FUNCTION refuse_one()"]
    for sql in statements:
        db.session.execute(sa.text(sql))
    db.session.commit()
    try:
        totals = domain_checks.recheck_due()
    finally:
        db.session.rollback()
        for sql in drop:
            db.session.execute(sa.text(sql))
        db.session.commit()
    assert totals["failed"] == 1 and totals["checked"] == 2  # bianchi.it and the factory's base domain
    assert domains.list_domains(factories.SYSTEM, c.id)[0].check.verdict == "propagated"
    assert db.session.get(Domain, refused.id).check is None


def test_a_unicode_domain_is_checked_and_activated_through_the_panel(world, app):
    domain = pending_domain("caffè-rossi.it")
    ascii_name = domain.name
    assert ascii_name.startswith("xn--")
    delegate(world, ascii_name)
    world.authorities(ascii_name).set(ascii_name, "TXT", f'"{domain_checks.verification_txt(domain)}"')
    result = app.test_cli_runner().invoke(args=["domains", "check", "Caffè-Rossi.it", "--json"])
    data = json.loads(result.output)
    assert data["domain"] == ascii_name and data["panel"]["activated"] is True
    assert db.session.get(Domain, domain.id).state == "active"


def test_the_mx_proof_activates_only_once_every_server_answers_our_mx(world):
    domain = pending_domain()
    delegate(world, "rossi.it")
    mx(world, "rossi.it", "10 mx.vecchio.net.")
    assert not domain_checks.check_any("rossi.it")[2].activated
    mx(world, "rossi.it", OURS, at=(NS1,))  # one server of two: not yet
    assert not domain_checks.check_any("rossi.it")[2].activated
    assert db.session.get(Domain, domain.id).state == "pending"
    mx(world, "rossi.it", OURS, at=(NS2,))
    assert domain_checks.check_any("rossi.it")[2].activated


def test_a_lone_servfail_beside_a_server_that_answers_ours_is_unknown(world):
    delegate(world, "rossi.it")
    mx(world, "rossi.it", OURS)
    world.behave(NS2, "servfail")
    report = check("rossi.it")
    assert (report.verdict, report.code) == ("unknown", "partial")
    assert report.facts["silent"] == {f"ns2.rossi.it ({NS2})": "servfail"}
    words = dnscheck.describe(report.verdict, report.code, report.facts, report.expected)
    assert "ns2.rossi.it (127.0.0.3): errore del server" in words
