"""The copy engine's pure parts: folder names that are not modified UTF-7, the fallback identity,
how folders are grouped for the connection pairs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from app.services.migration.copy import identity, units
from app.services.migration.folders import Mapping, Namespace, SourceFolder, decode_name, map_folders


def test_valid_modified_utf7_names_are_decoded_and_marked_valid():
    assert decode_name(b"INBOX.Citt&AOA-") == ("INBOX.Città", True)
    assert decode_name(b"Rossi &- Figli") == ("Rossi & Figli", True)
    assert decode_name(2019) == ("2019", True)


def test_invalid_names_are_read_leniently_never_raising():
    assert decode_name(b"INBOX.Caf\xc3\xa9") == ("INBOX.Café", False)  # raw UTF-8
    assert decode_name(b"INBOX.bad&Jjo") == ("INBOX.bad&Jjo", False)  # a shift never closed
    assert decode_name(b"x&AOA-y&Jjo") == ("xày&Jjo", False)  # the valid run kept
    assert decode_name(b"a&-b\xff") == ("a&b\ufffd", False)  # an undecodable byte
    assert decode_name(b"odd&AOk,-") == ("odd&AOk,-", False)  # bad base64 is text


def test_an_invalid_name_maps_to_a_safe_folder_of_ours_and_keeps_its_bytes():
    raw = b"INBOX.Caf\xc3\xa9.Sub\x01"
    name, valid = decode_name(raw)
    (mapping,) = map_folders(
        [SourceFolder(name, (), wire=raw, valid_name=valid)], Namespace("INBOX.", "."), Namespace("", "/")
    )
    assert (mapping.target, mapping.source_wire, mapping.valid_name) == ("Café/Sub_", raw, False)


def test_the_fallback_identity_ignores_the_size_and_uses_the_boundary():
    date = datetime(2015, 6, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    head = b"Date: Mon, 1 Jun 2015 10:00:00 +0200\r\nFrom: a@b\r\nTo: c@d\r\nSubject: x\r\n"
    one, _f = identity(date, head + b'Content-Type: multipart/mixed; boundary="a1"\r\n')
    two, _f = identity(date, head + b'Content-Type: multipart/mixed; boundary="b2"\r\n')
    assert one != two and one.startswith("x:")
    # The same instant in another zone is the same message.
    assert identity(date.astimezone(UTC), head)[0] == identity(date, head)[0]
    # Folded headers and spacing do not matter.
    assert identity(date, head.replace(b"Subject: x", b"Subject:  x"))[0] == identity(date, head)[0]
    assert identity(date, b"Message-ID: <Abc@X>\r\n" + head)[0] == "id:abc@x"


def test_folders_landing_in_one_of_ours_go_to_one_pair_in_the_plans_order():
    mappings = [
        Mapping("INBOX", "INBOX", None),
        Mapping("INBOX.Sent Items", "Sent", "sent"),
        Mapping("INBOX.Clienti", "Clienti", None),
        Mapping("INBOX.Posta inviata", "Sent", "sent"),
        Mapping("inbox", "inbox", None),
    ]
    assert units(mappings) == [[0, 4], [1, 3], [2]]
