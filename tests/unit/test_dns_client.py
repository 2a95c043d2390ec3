"""The DNS client reads only what answers the question, and the zone snippet quotes what it copies."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rrset

from app.mailserver import dns as dnsclient
from app.services.dnscheck import Record


def _reply(question: str, *rrsets: dns.rrset.RRset) -> dns.message.Message:
    reply = dns.message.make_response(dns.message.make_query(question, "MX"))
    reply.flags |= dns.flags.AA
    reply.answer.extend(rrsets)
    return reply


def test_records_about_another_name_in_the_answer_are_not_the_names_own():
    """A CNAME chain answered by the server (www -> the apex, with the apex's MX) is not www's MX."""
    reply = _reply(
        "www.rossi.it",
        dns.rrset.from_text("www.rossi.it.", 300, "IN", "CNAME", "rossi.it."),
        dns.rrset.from_text("rossi.it.", 300, "IN", "MX", "10 mx.collabra.it."),
    )
    answer = dnsclient.Client()._read(
        dnsclient.Answer("ns1", "192.0.2.1", dnsclient.ERROR), reply, dns.rdatatype.MX, authoritative=True
    )
    assert (answer.status, answer.records) == (dnsclient.NODATA, [])

    own = _reply("WWW.Rossi.it", dns.rrset.from_text("www.rossi.it.", 300, "IN", "MX", "10 mx.collabra.it."))
    answer = dnsclient.Client()._read(
        dnsclient.Answer("ns1", "192.0.2.1", dnsclient.ERROR), own, dns.rdatatype.MX, authoritative=True
    )
    assert (answer.status, answer.records, answer.ttl) == (dnsclient.OK, ["10 mx.collabra.it."], 300)


def test_a_txt_value_is_quoted_and_split_as_a_zone_file_wants():
    line = Record("rossi.it", "TXT", 'v=spf1 a" include:spf.collabra.it ~all\\', "spf").zone_line()
    assert line == 'rossi.it.\t3600\tIN\tTXT\t"v=spf1 a\\" include:spf.collabra.it ~all\\\\"'
    long = Record("rossi.it", "TXT", "x" * 300, "spf").zone_line()
    assert long.endswith('"' + "x" * 255 + '" "' + "x" * 45 + '"')
    assert (
        Record("rossi.it", "MX", "10 mx.collabra.it.", "mx").zone_line()
        == "rossi.it.\t3600\tIN\tMX\t10 mx.collabra.it."
    )


def test_parse_nameservers_reads_hosts_and_ports():
    assert dnsclient.parse_nameservers("127.0.0.1:5353, 9.9.9.9,[::1]:53") == [
        ("127.0.0.1", 5353),
        ("9.9.9.9", 53),
        ("::1", 53),
    ]
