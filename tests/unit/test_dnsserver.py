"""The tests' DNS server (tests/dnsserver.py), asked over the network with plain dnspython."""

from __future__ import annotations

import threading
import time

import pytest
from dns import exception as dns_exception
from dns import flags, message, rcode, rdatatype
from dns import query as dns_query

from tests.dnsserver import DnsProcess, Question

RESOLVER, NS1, NS2, NS3 = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
OUR_MX = "10 mx.collabra.it."


def ask(server, address, name, rdtype, tcp=False, timeout=2.0, **query_options):
    q = message.make_query(name, rdtype, **query_options)
    send = dns_query.tcp if tcp else dns_query.udp
    return send(q, address, port=server.port, timeout=timeout)


def answer_texts(response) -> list[str]:
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


@pytest.fixture
def example(dns):
    dns.delegate("example.it", {"ns1.example.it": NS1, "ns2.example.it": NS2}, ttl=3600, negative_ttl=300)
    return dns


def test_an_authoritative_answer_carries_the_records_and_aa(example):
    example.authorities("example.it").set("example.it", "MX", [OUR_MX], ttl=1800)

    for address in (NS1, NS2):
        response = ask(example, address, "example.it", "MX")
        assert response.rcode() == rcode.NOERROR
        assert response.flags & flags.AA
        assert not response.flags & flags.RA
        assert answer_texts(response) == [OUR_MX]
        assert response.answer[0].ttl == 1800


def test_the_resolver_answers_as_a_recursive_one_with_the_delegation(example):
    response = ask(example, RESOLVER, "example.it", "NS")
    assert response.flags & flags.RA and not response.flags & flags.AA
    assert answer_texts(response) == ["ns1.example.it.", "ns2.example.it."]
    assert answer_texts(ask(example, RESOLVER, "ns2.example.it", "A")) == [NS2]
    soa = ask(example, RESOLVER, "example.it", "SOA").answer[0]
    assert soa[0].mname.to_text() == "ns1.example.it." and soa[0].minimum == 300
    # The authoritative servers have the zone's SOA and NS too, and their in-zone name servers' A.
    assert answer_texts(ask(example, NS2, "example.it", "NS")) == ["ns1.example.it.", "ns2.example.it."]
    assert answer_texts(ask(example, NS1, "ns1.example.it", "A")) == [NS1]


def test_a_name_server_outside_the_zone_has_its_address_on_the_resolver_only(dns):
    dns.delegate("example.it", {"dns1.registrar.net": NS3})

    assert answer_texts(ask(dns, RESOLVER, "dns1.registrar.net", "A")) == [NS3]
    assert ask(dns, NS3, "dns1.registrar.net", "A").rcode() == rcode.REFUSED
    assert dns.authorities("example.it").where == ("example.it", False)
    assert ask(dns, NS3, "example.it", "SOA").flags & flags.AA


def test_a_name_without_the_type_is_nodata_with_the_zone_soa_and_its_negative_ttl(example):
    example.at(NS1).set("example.it", "TXT", ['"hello"'])

    response = ask(example, NS1, "example.it", "MX")

    assert response.rcode() == rcode.NOERROR and response.flags & flags.AA
    assert response.answer == []
    [soa] = response.authority
    assert soa.rdtype == rdatatype.SOA and soa.name.to_text() == "example.it."
    assert soa.ttl == 300  # the lower of the SOA's TTL (3600) and its MINIMUM (300)


def test_a_name_that_does_not_exist_is_nxdomain_with_the_soa(example):
    response = ask(example, NS2, "nothere.example.it", "MX")

    assert response.rcode() == rcode.NXDOMAIN and response.flags & flags.AA
    assert [r.rdtype for r in response.authority] == [rdatatype.SOA]


def test_a_name_above_another_exists_without_records(example):
    example.at(NS1).set("sel._domainkey.example.it", "TXT", ['"v=DKIM1; p=abc"'])

    assert ask(example, NS1, "_domainkey.example.it", "TXT").rcode() == rcode.NOERROR
    example.at(NS1).remove("sel._domainkey.example.it")
    assert ask(example, NS1, "_domainkey.example.it", "TXT").rcode() == rcode.NXDOMAIN
    assert ask(example, NS1, "sel._domainkey.example.it", "TXT").rcode() == rcode.NXDOMAIN


def test_a_name_under_no_zone_of_an_authoritative_server_is_refused(example):
    response = ask(example, NS1, "example.com", "MX")
    assert response.rcode() == rcode.REFUSED and not response.flags & flags.AA
    # NS3 serves no zone at all.
    assert ask(example, NS3, "example.it", "MX").rcode() == rcode.REFUSED


def test_the_resolver_says_nxdomain_for_a_domain_nobody_delegated(dns):
    response = ask(dns, RESOLVER, "nobody-registered-this.it", "MX")
    assert response.rcode() == rcode.NXDOMAIN
    assert response.authority[0].name.to_text() == "."


def test_each_address_answers_its_own_data(example):
    example.at(NS1).set("example.it", "MX", [OUR_MX])
    example.at(NS2).set("example.it", "MX", ["10 mx.old-provider.net."])
    example.resolver.set("example.it", "MX", ["20 backup.example.net."], ttl=60)

    assert answer_texts(ask(example, NS1, "example.it", "MX")) == [OUR_MX]
    assert answer_texts(ask(example, NS2, "example.it", "MX")) == ["10 mx.old-provider.net."]
    resolver_answer = ask(example, RESOLVER, "example.it", "MX")
    assert answer_texts(resolver_answer) == ["20 backup.example.net."]
    assert resolver_answer.answer[0].ttl == 60


def test_everywhere_sets_the_resolver_and_the_zones_servers_and_set_replaces(example):
    example.everywhere("example.it").set("example.it", "MX", ["10 mx.old-provider.net."])
    example.everywhere("example.it").set("example.it", "MX", [OUR_MX, "20 mx2.collabra.it."])

    for address in (RESOLVER, NS1, NS2):
        assert answer_texts(ask(example, address, "example.it", "MX")) == [OUR_MX, "20 mx2.collabra.it."]
    example.authorities("example.it").remove("example.it", "MX")
    assert ask(example, NS1, "example.it", "MX").answer == []
    assert answer_texts(ask(example, RESOLVER, "example.it", "MX")) == [OUR_MX, "20 mx2.collabra.it."]


def test_a_cname_answers_every_type(example):
    example.at(NS1).set("autoconfig.example.it", "CNAME", ["autoconfig.collabra.it."])

    response = ask(example, NS1, "autoconfig.example.it", "A")

    assert [(r.rdtype, r[0].to_text()) for r in response.answer] == [
        (rdatatype.CNAME, "autoconfig.collabra.it.")
    ]


def test_names_compare_without_case(example):
    example.at(NS1).set("MixedCase.Example.IT", "MX", ["10 MX.Collabra.IT."])

    for name in ("mixedcase.example.it", "MIXEDCASE.EXAMPLE.IT", "mIxEdCaSe.ExAmPlE.iT."):
        response = ask(example, NS1, name, "MX")
        assert response.rcode() == rcode.NOERROR
        # The host keeps its case, but for the labels name compression shares with the question.
        assert answer_texts(response)[0].startswith("10 MX.Collabra.")
        assert answer_texts(response)[0].lower() == "10 mx.collabra.it."


def test_an_idn_domain_is_served_under_its_punycode_name(dns):
    dns.delegate("città.it", {"ns1.città.it": NS1})
    dns.at(NS1).set("città.it", "MX", ["10 mx.città.it."])

    by_punycode = ask(dns, NS1, "xn--citt-3na.it", "MX")
    assert answer_texts(by_punycode) == ["10 mx.xn--citt-3na.it."]
    assert answer_texts(ask(dns, NS1, "città.it", "MX")) == ["10 mx.xn--citt-3na.it."]
    assert answer_texts(ask(dns, RESOLVER, "ns1.xn--citt-3na.it", "A")) == [NS1]


def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(example):
    strings = [f'"v=record{i} {"x" * 60}"' for i in range(20)]  # about 1,500 bytes
    example.at(NS1).set("example.it", "TXT", strings)

    over_udp = ask(example, NS1, "example.it", "TXT")
    assert over_udp.flags & flags.TC and over_udp.answer == []
    over_tcp = ask(example, NS1, "example.it", "TXT", tcp=True)
    assert not over_tcp.flags & flags.TC and len(over_tcp.answer[0]) == 20
    # A client that announces a larger EDNS buffer gets it whole over UDP.
    edns = ask(example, NS1, "example.it", "TXT", use_edns=0, payload=4096)
    assert not edns.flags & flags.TC and len(edns.answer[0]) == 20
    small_edns = ask(example, NS1, "example.it", "TXT", use_edns=0, payload=1232)
    assert small_edns.flags & flags.TC
    # dnspython's own fallback gets the whole answer.
    q = message.make_query("example.it", "TXT")
    response, used_tcp = dns_query.udp_with_fallback(q, NS1, port=example.port, timeout=2)
    assert used_tcp and len(response.answer[0]) == 20


def test_an_address_that_times_out_never_answers(example):
    example.behave(NS2, "timeout")

    with pytest.raises(dns_exception.Timeout):
        ask(example, NS2, "example.it", "SOA", timeout=0.5)
    with pytest.raises(dns_exception.Timeout):
        ask(example, NS2, "example.it", "SOA", tcp=True, timeout=0.5)
    assert ask(example, NS1, "example.it", "SOA").rcode() == rcode.NOERROR
    assert example.queries(NS2) == 2


def test_servfail_and_refused_behaviours(example):
    example.behave(NS1, "servfail")
    example.behave(NS2, "refused")

    assert ask(example, NS1, "example.it", "MX").rcode() == rcode.SERVFAIL
    assert ask(example, NS2, "example.it", "MX").rcode() == rcode.REFUSED
    example.behave(NS1, "answer")
    assert ask(example, NS1, "example.it", "MX").rcode() == rcode.NOERROR


def test_a_behaviour_for_one_name_and_type_leaves_the_others_alone(example):
    example.behave(NS1, "servfail", name="EXAMPLE.it", rdtype="TXT")

    assert ask(example, NS1, "example.it", "TXT").rcode() == rcode.SERVFAIL
    assert ask(example, NS1, "example.it", "MX").rcode() == rcode.NOERROR
    assert ask(example, NS1, "www.example.it", "TXT").rcode() == rcode.NXDOMAIN
    example.behave(NS1, "timeout", name="www.example.it")
    with pytest.raises(dns_exception.Timeout):
        ask(example, NS1, "www.example.it", "A", timeout=0.5)
    # The other way round: the address times out but for one name.
    example.behave(NS2, "timeout")
    example.behave(NS2, "answer", name="example.it", rdtype="MX")
    assert ask(example, NS2, "example.it", "MX").rcode() == rcode.NOERROR
    with pytest.raises(dns_exception.Timeout):
        ask(example, NS2, "example.it", "TXT", timeout=0.5)


def test_delayed_queries_wait_side_by_side(example):
    delay = 0.6
    example.behave(NS1, "delay", delay=delay)
    results = []

    def one():
        started = time.monotonic()
        response = ask(example, NS1, "example.it", "SOA", timeout=5)
        results.append((response.rcode(), time.monotonic() - started))

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started

    assert [r[0] for r in results] == [rcode.NOERROR, rcode.NOERROR]
    assert all(took >= delay for _, took in results)
    assert elapsed < 2 * delay  # one delay, not two in a row
    assert ask(example, NS2, "example.it", "SOA", timeout=delay / 2).rcode() == rcode.NOERROR


def test_counters_and_questions(example):
    ask(example, RESOLVER, "example.it", "NS")
    ask(example, NS1, "Example.it", "MX")
    ask(example, NS1, "example.it", "TXT", tcp=True)

    assert example.queries() == {RESOLVER: 1, NS1: 2, NS2: 0, NS3: 0, "127.0.0.5": 0}
    assert example.queries(NS1) == 2
    assert example.questions(NS1) == [
        Question(NS1, "example.it.", "MX", "udp"),
        Question(NS1, "example.it.", "TXT", "tcp"),
    ]


def test_reset_empties_every_address_and_its_behaviour(example):
    example.at(NS1).set("example.it", "MX", [OUR_MX])
    example.behave(NS2, "timeout")
    ask(example, NS1, "example.it", "MX")

    example.reset()

    assert example.queries() == dict.fromkeys(example.addresses, 0)
    assert ask(example, NS1, "example.it", "MX").rcode() == rcode.REFUSED
    assert ask(example, NS2, "example.it", "MX").rcode() == rcode.REFUSED  # answers again
    assert ask(example, RESOLVER, "example.it", "NS").rcode() == rcode.NXDOMAIN


def test_a_new_delegation_replaces_the_zones_data(example):
    example.at(NS1).set("example.it", "MX", [OUR_MX])

    example.delegate("example.it", {"ns.example.it": NS3})

    assert ask(example, NS1, "example.it", "MX").rcode() == rcode.REFUSED
    assert answer_texts(ask(example, RESOLVER, "example.it", "NS")) == ["ns.example.it."]
    assert ask(example, RESOLVER, "ns1.example.it", "A").rcode() == rcode.NXDOMAIN
    assert ask(example, NS3, "example.it", "MX").answer == []


def test_mistakes_are_told_plainly(example):
    with pytest.raises(ValueError, match="serves no zone containing example.com"):
        example.at(NS1).set("example.com", "MX", [OUR_MX])
    with pytest.raises(ValueError, match="not an address of this server: 127.0.0.99"):
        example.at("127.0.0.99").set("example.it", "MX", [OUR_MX])
    with pytest.raises(ValueError, match="127.0.0.1 is the resolver"):
        example.delegate("example.org", {"ns.example.org": RESOLVER})
    with pytest.raises(ValueError, match="unknown mode"):
        example.behave(NS1, "slow")
    with pytest.raises(ValueError, match="was not delegated"):
        example.everywhere("example.org").set("example.org", "MX", [OUR_MX])
    # Nothing was half done: the resolver did not get the record of a call that failed on NS3.
    with pytest.raises(ValueError, match="127.0.0.4 serves no zone"):
        example.at(RESOLVER, NS3).set("example.it", "TXT", ['"x"'])
    assert ask(example, RESOLVER, "example.it", "TXT").answer == []


def test_the_config_points_the_app_at_the_server(dns):
    assert dns.config == {"DNS_NAMESERVERS": f"127.0.0.1:{dns.port}", "DNS_AUTHORITATIVE_PORT": dns.port}
    assert dns.resolver_address == RESOLVER
    assert dns.authoritative_addresses == [NS1, NS2, NS3, "127.0.0.5"]


def test_the_server_runs_in_a_process_of_its_own():
    with DnsProcess(addresses=3) as server:
        with server.batch():
            for i in range(200):
                server.delegate(f"d{i}.example.it", {f"ns1.d{i}.example.it": NS1, "ns.dns.example.net": NS2})
                server.everywhere(f"d{i}.example.it").set(f"d{i}.example.it", "MX", [OUR_MX])
        server.behave(NS2, "servfail")

        assert answer_texts(ask(server, NS1, "d199.example.it", "MX")) == [OUR_MX]
        assert ask(server, NS2, "d0.example.it", "MX").rcode() == rcode.SERVFAIL
        assert answer_texts(ask(server, RESOLVER, "ns.dns.example.net", "A")) == [NS2]
        assert server.queries() == {RESOLVER: 1, NS1: 1, NS2: 1}
        with pytest.raises(ValueError, match="serves no zone"):
            server.at(NS1).set("example.com", "MX", [OUR_MX])
        with pytest.raises(ValueError, match="was not delegated"), server.batch():
            server.everywhere("example.org").set("example.org", "MX", [OUR_MX])
