"""The copy engine's pure parts: folder names that are not modified UTF-7, the fallback identity,
how folders are grouped for the connection pairs, the shared queue of a folder's batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from imapclient.exceptions import IMAPClientError

from app.services.migration.copy import (
    FOLDER_ATTEMPTS,
    CopyReport,
    _FolderChanged,
    _Item,
    _Run,
    _Side,
    identity,
    units,
)
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


def _run(mappings: list[Mapping]) -> _Run:
    run = _Run(None, None, CopyReport(dry_run=False, max_size=1), dry_run=False, max_size=1, batch_bytes=1,
               connect_attempts=1)  # fmt: skip
    run.set_plan(mappings, set(), units(mappings))
    return run


def _queue_batches(run: _Run, item: _Item, count: int) -> None:
    """What a comparison does once it has found `count` batches to copy."""
    with run.lock:
        item.folder.outstanding += count - 1
        run.batches.extend(_Item(item.folder, []) for _ in range(count))
    run._done()


def test_a_folder_is_compared_again_only_once_its_batches_in_flight_have_ended():
    run = _run([Mapping("INBOX", "INBOX", None), Mapping("INBOX.Clienti", "Clienti", None)])
    inbox = run._take(None)
    assert inbox.batch is None and inbox.folder.index == 0  # the comparison first
    _queue_batches(run, inbox, 4)
    folder = inbox.folder
    # Comparisons go before batches; batches of the folder a pair has open before the others.
    assert run._take(None).folder.index == 1
    first, second = run._take_batch(0), run._take_batch(0)
    assert first.folder is second.folder is folder and len(run.batches) == 2
    run.reports[0].copied = 3  # what `second` appended before its connection was lost
    assert run._lost(0, _Side((None, None)), folder, _FolderChanged("UIDVALIDITY changed")) is True
    run._done()
    # Its queued batches are dropped; `first` is still in flight: no comparison yet.
    assert run.batches == [] and folder.redo and folder.outstanding == 1
    assert all(f is not folder for f in run.scans)
    with run.lock:
        assert run._end(folder) is False
    run._done()
    assert run.scans[0] is folder and folder.attempt == 1 and folder.carried == (3, 0)
    assert folder.outstanding == 1 and not folder.redo and folder.not_before > 0


def test_a_folder_that_fails_for_good_lets_the_next_of_its_group_be_compared():
    run = _run([Mapping("INBOX.Sent Items", "Sent", "sent"), Mapping("INBOX.Posta inviata", "Sent", "sent")])
    item = run._take(None)
    folder = item.folder
    folder.attempt = FOLDER_ATTEMPTS - 1
    assert run._lost(0, _Side((None, None)), folder, _FolderChanged("again")) is True
    run._done()
    assert folder.failed and run.reports[0].errors == ["connessione persa: again"]
    (following,) = run.scans
    assert following.index == 1 and following.claims is folder.claims
    # A refusal (not a lost connection) is not retried either.
    item = run._take(None)
    run._lost(0, _Side((None, None)), item.folder, IMAPClientError("NO refused"))
    run._done()
    assert item.folder.failed and run.reports[1].errors == ["NO refused"]
    assert run._take(None) is None  # nothing left: the run is over


def test_a_server_answer_is_shown_as_text_not_as_bytes():
    from imapclient.exceptions import LoginError

    from app.mailserver.imap import _server_words

    assert _server_words(LoginError(b"[AUTHENTICATIONFAILED] Autenticazione fallita \xc3\xa8")) == (
        "[AUTHENTICATIONFAILED] Autenticazione fallita è"
    )
    assert _server_words(LoginError("già testo")) == "già testo"
    # Read as a literal, never run.
    assert _server_words(LoginError("b'__import__(\"os\")'")) == '__import__("os")'
    assert _server_words(LoginError("b'x' + b'y'")) == "b'x' + b'y'"
