"""The pure core of Kafka reconciliation (ledger.bus.reconcile.reconcile) on hand-built records.

A small log is built and signed here exactly as the ledger builds it (bodies, chain, Ed25519 signatures,
a signed checkpoint); its records are encoded with ``ledger.bus.records.entry_record``.  Each test changes
the topic (or the database) in one way and checks that the report names the right seqs with the right kinds.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pytest

from ledger.bus.reconcile import (
    ALTERED,
    CHAIN,
    CHECKPOINT,
    DUPLICATE,
    EXTRA,
    MALFORMED,
    MISSING,
    OUT_OF_ORDER,
    UNPUBLISHED,
    LogEvidence,
    ReconcileReport,
    TopicMessage,
    reconcile,
)
from ledger.bus.records import entry_record
from ledger.chain import ZERO_HASH, entry_body
from ledger.merkle import CompactRange, leaf_hash
from ledger.notes import NoteSigner, format_checkpoint, sign_note
from ledger.store.records import EntryRecord, KeyRecord

ORIGIN = "unit.bank.example/evidence"
OTHER_ORIGIN = "other.bank.example/evidence"
SIZE = 10
NOW = "2026-11-20T10:00:00.000000Z"
SIGNER = NoteSigner.from_seed(ORIGIN, bytes(range(32)))
FORGER = NoteSigner.from_seed(ORIGIN, bytes(range(1, 33)))  # same name, another key


def key_record(signer: NoteSigner = SIGNER, until: int | None = None) -> KeyRecord:
    return KeyRecord(signer.key_id.hex(), signer.verifier_key(), 0, until, NOW, None)


def build_entries(size: int = SIZE, origin: str = ORIGIN, signer: NoteSigner = SIGNER) -> list[EntryRecord]:
    """A correctly chained and signed log of ``size`` entries over two streams."""
    entries: list[EntryRecord] = []
    prev = ZERO_HASH
    stream_next: dict[str, int] = {}
    for seq in range(size):
        stream = f"controls/iam-0{seq % 2}"
        stream_seq = stream_next.get(stream, 0)
        stream_next[stream] = stream_seq + 1
        body = entry_body(
            log=origin,
            seq=seq,
            prev=prev,
            event_id=f"00000000-0000-4000-8000-{seq:012d}",
            stream=stream,
            stream_seq=stream_seq,
            event_type="check.result",
            occurred_at=NOW,
            recorded_at=NOW,
            producer="unit",
            payload_digest="00" * 32,
            subjects=[],
        )
        entries.append(sealed(seq, stream, stream_seq, body, signer))
        prev = leaf_hash(body)
    return entries


def sealed(seq: int, stream: str, stream_seq: int, body: bytes, signer: NoteSigner) -> EntryRecord:
    return EntryRecord(
        seq=seq,
        event_id=f"00000000-0000-4000-8000-{seq:012d}",
        stream=stream,
        stream_seq=stream_seq,
        type="check.result",
        producer="unit",
        occurred_at=NOW,
        recorded_at=NOW,
        body=body,
        hash=leaf_hash(body),
        signature=signer.sign(body),
        key_id=signer.key_id.hex(),
    )


def checkpoint_note(entries: Sequence[EntryRecord], size: int | None = None, signer: NoteSigner = SIGNER) -> str:
    size = len(entries) if size is None else size
    tree = CompactRange()
    tree.append([entry.hash for entry in entries[:size]])
    return sign_note(format_checkpoint(ORIGIN, size, tree.root()), [signer])


def messages(entries: Iterable[EntryRecord], origin: str = ORIGIN) -> list[TopicMessage]:
    """The topic holding these entries in this order, with offsets 0, 1, 2, ..."""
    return [(offset, *entry_record(origin, entry)) for offset, entry in enumerate(entries)]


def run(
    topic: Iterable[TopicMessage],
    database: Sequence[EntryRecord],
    note: str | None,
    *,
    keys: Sequence[KeyRecord] = (key_record(),),
    unpublished_from: int | None = None,
) -> ReconcileReport:
    evidence = LogEvidence(ORIGIN, list(keys), note)
    return reconcile(topic, iter(database), evidence, topic="entries", unpublished_from=unpublished_from)


def kinds(report: ReconcileReport) -> dict[int | None, set[str]]:
    found: dict[int | None, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.seq, set()).add(finding.kind)
    return found


@pytest.fixture(scope="module")
def log() -> list[EntryRecord]:
    return build_entries()


@pytest.fixture(scope="module")
def note(log: list[EntryRecord]) -> str:
    return checkpoint_note(log)


def test_a_faithful_topic_has_no_findings(log: list[EntryRecord], note: str) -> None:
    report = run(messages(log), log, note)
    assert report.ok, report.findings
    assert report.findings == [] and report.notes == []
    assert (report.records_read, report.distinct_seqs, report.database_size) == (SIZE, SIZE, SIZE)
    assert report.checkpoint_size == SIZE and report.checkpoint_checked
    summary = report.as_dict()["summary"]
    assert summary == {
        "records_read": SIZE,
        "distinct_seqs": SIZE,
        "database_size": SIZE,
        "checkpoint_size": SIZE,
        "checkpoint_checked": True,
        "duplicates": 0,
        "unpublished": 0,
        "other_log_records": 0,
        "findings": 0,
    }


def test_an_older_checkpoint_is_checked_on_the_records_it_covers(log: list[EntryRecord]) -> None:
    report = run(messages(log), log, checkpoint_note(log, 4))
    assert report.ok and report.checkpoint_size == 4 and report.checkpoint_checked


def test_empty_topic_empty_log(log: list[EntryRecord]) -> None:
    report = run([], [], checkpoint_note(log, 0))
    assert report.ok and report.checkpoint_checked and report.database_size == 0


def test_a_deleted_record_is_missing_and_breaks_the_checkpoint(log: list[EntryRecord], note: str) -> None:
    report = run(messages(log[:4] + log[5:]), log, note)
    assert kinds(report) == {4: {MISSING, CHECKPOINT}}
    assert report.seqs(MISSING) == [4]
    assert (report.records_read, report.distinct_seqs, report.database_size) == (SIZE - 1, SIZE - 1, SIZE)


def test_a_missing_tail_is_missing(log: list[EntryRecord]) -> None:
    report = run(messages(log[:7]), log, checkpoint_note(log, 5))
    assert kinds(report) == {7: {MISSING}, 8: {MISSING}, 9: {MISSING}}
    assert report.checkpoint_checked


def test_records_beyond_the_database_are_extra(log: list[EntryRecord]) -> None:
    report = run(messages(log), log[:8], checkpoint_note(log, 8))
    assert kinds(report) == {8: {EXTRA}, 9: {EXTRA}}
    assert report.database_size == 8


def test_a_body_altered_by_one_byte(log: list[EntryRecord], note: str) -> None:
    body = bytearray(log[3].body)
    body[body.index(b"check.result")] = ord("C")
    topic = [*log[:3], dataclasses.replace(log[3], body=bytes(body)), *log[4:]]
    report = run(messages(topic), log, note)
    # seq 3 itself; seq 4 links to the genuine seq 3, not to the altered one; the root cannot match
    assert kinds(report) == {3: {ALTERED}, 4: {CHAIN}, 9: {CHECKPOINT}}
    messages_3 = [f.message for f in report.findings if f.seq == 3]
    assert "hash is not SHA-256(0x00 || body)" in messages_3
    assert "the Ed25519 signature over the body does not verify" in messages_3
    assert "body differs from the database entry" in messages_3
    assert next(f for f in report.findings if f.seq == 3).offset == 3


@pytest.mark.parametrize("field", ["signature", "key_id", "stream"])
def test_each_compared_field_is_compared_exactly(log: list[EntryRecord], note: str, field: str) -> None:
    changed: dict[str, dict[str, Any]] = {
        "signature": {"signature": SIGNER.sign(b"something else")},
        "key_id": {"key_id": FORGER.key_id.hex()},
        "stream": {"stream": "controls/iam-99"},
    }
    topic = [*log[:6], dataclasses.replace(log[6], **changed[field]), *log[7:]]
    report = run(messages(topic), log, note)
    assert kinds(report) == {6: {ALTERED}}
    assert any(f.message.startswith(field) and "differs from the database" in f.message for f in report.findings)


def test_a_forged_record_is_caught_without_the_database(log: list[EntryRecord]) -> None:
    """An empty database: only the published keys and the bodies speak."""
    genuine = log[:3]
    forged = build_entries(4, signer=FORGER)[3]  # a well-formed continuation, signed by another key
    report = run(messages([*genuine, forged]), [], None)
    assert report.seqs(EXTRA) == [0, 1, 2, 3]
    forged_findings = [f for f in report.findings if f.seq == 3 and f.kind == ALTERED]
    assert [f.message for f in forged_findings] == [
        f"signed with key {FORGER.key_id.hex()}, which the log never published"
    ]
    assert not [f for f in report.findings if f.kind == ALTERED and f.seq != 3]


def test_a_forged_record_claiming_the_published_key_id(log: list[EntryRecord], note: str) -> None:
    forged = dataclasses.replace(build_entries(SIZE + 1, signer=FORGER)[SIZE], key_id=SIGNER.key_id.hex())
    report = run(messages([*log, forged]), log, note)
    assert kinds(report) == {SIZE: {EXTRA, ALTERED}}
    assert "the Ed25519 signature over the body does not verify" in [f.message for f in report.findings]


def test_a_key_outside_its_seqs_is_refused(log: list[EntryRecord], note: str) -> None:
    report = run(messages(log), log, note, keys=[key_record(until=8)])
    assert kinds(report) == {8: {ALTERED}, 9: {ALTERED}}
    assert all("did not sign this seq" in f.message for f in report.findings)


def test_a_record_relabelled_with_another_seq(log: list[EntryRecord], note: str) -> None:
    """Seq 5's genuine record published as seq 6 in place of the real seq 6."""
    relabelled = dataclasses.replace(log[5], seq=6)
    report = run(messages([*log[:6], relabelled, *log[7:]]), log, note)
    found = kinds(report)
    assert found[6] == {ALTERED, CHAIN}
    assert "the body names another seq than the record" in [f.message for f in report.findings]
    assert found[9] == {CHECKPOINT}


def test_swapped_records_are_out_of_order(log: list[EntryRecord], note: str) -> None:
    topic = [*log[:4], log[5], log[4], *log[6:]]
    report = run(messages(topic), log, note)
    # seq 5 arrives early (its prev is checked against the database's seq 4), seq 4 late; the records in topic
    # order cannot rebuild the checkpoint from seq 4 on
    assert kinds(report) == {4: {OUT_OF_ORDER, CHECKPOINT}}
    late = next(f for f in report.findings if f.kind == OUT_OF_ORDER)
    assert (late.seq, late.offset) == (4, 5)
    assert not report.seqs(MISSING)


def test_exact_repeats_after_a_relay_restart_are_notes_not_findings(log: list[EntryRecord], note: str) -> None:
    topic = [*log[:6], *log[3:]]  # the relay re-sent 3, 4, 5 after a crash
    report = run(messages(topic), log, note)
    assert report.ok, report.findings
    assert report.duplicates == 3
    assert [(n.seq, n.kind, n.offset) for n in report.notes] == [
        (3, DUPLICATE, 6),
        (4, DUPLICATE, 7),
        (5, DUPLICATE, 8),
    ]
    assert (report.records_read, report.distinct_seqs) == (SIZE + 3, SIZE)


def test_a_repeat_with_other_content_is_out_of_order_and_altered(log: list[EntryRecord], note: str) -> None:
    other = dataclasses.replace(log[2], signature=SIGNER.sign(b"not the body"))
    report = run(messages([*log, other]), log, note)
    assert kinds(report) == {2: {OUT_OF_ORDER, ALTERED}}
    assert report.duplicates == 0


def test_a_repeat_of_the_genuine_record_after_an_altered_one(log: list[EntryRecord], note: str) -> None:
    """The first record of seq 2 was bad; a later genuine copy is out of order but not altered."""
    bad = dataclasses.replace(log[2], signature=SIGNER.sign(b"not the body"))
    report = run(messages([*log[:2], bad, *log[3:], log[2]]), log, note)
    repeat = [f for f in report.findings if f.offset == SIZE]
    assert [f.kind for f in repeat] == [OUT_OF_ORDER]


def test_malformed_records_are_named_by_offset_and_claimed_seq(log: list[EntryRecord], note: str) -> None:
    topic = messages(log)
    offset, key, _value, headers = topic[4]
    topic[4] = (offset, key, b"{not json", headers)
    topic.append((SIZE, None, b"\x00\x01", []))
    report = run(topic, log, note)
    malformed = [(f.seq, f.offset) for f in report.findings if f.kind == MALFORMED]
    assert malformed == [(4, 4), (None, SIZE)]  # seq from the header when the value cannot be read
    assert report.seqs(MISSING) == [4]  # a malformed record does not count as the entry
    assert kinds(report)[4] == {MALFORMED, MISSING, CHECKPOINT}


def test_a_header_that_disagrees_is_malformed(log: list[EntryRecord], note: str) -> None:
    topic = messages(log)
    offset, key, value, headers = topic[7]
    topic[7] = (offset, key, value, [(name, b"8" if name == "ledger-seq" else raw) for name, raw in headers])
    report = run(topic, log, note)
    assert (7, MALFORMED, 7) in [(f.seq, f.kind, f.offset) for f in report.findings]


def test_a_broken_chain_link_signed_by_the_log(log: list[EntryRecord]) -> None:
    """The database and the topic agree and every signature verifies, but seq 6 does not link to seq 5."""
    entries = list(log[:6])
    original = orjson.loads(log[6].body)
    original["prev"] = "ab" * 32
    body = orjson.dumps(original, option=orjson.OPT_SORT_KEYS)
    entries.append(sealed(6, log[6].stream, log[6].stream_seq, body, SIGNER))
    report = run(messages(entries), entries, checkpoint_note(entries))
    assert kinds(report) == {6: {CHAIN}}
    assert report.checkpoint_checked


def test_the_first_record_must_link_to_the_zero_hash(log: list[EntryRecord]) -> None:
    original = orjson.loads(log[0].body)
    original["prev"] = "01" * 32
    first = sealed(0, log[0].stream, 0, orjson.dumps(original, option=orjson.OPT_SORT_KEYS), SIGNER)
    report = run(messages([first]), [first], None)
    assert kinds(report) == {0: {CHAIN}}


def test_a_checkpoint_with_another_root(log: list[EntryRecord]) -> None:
    wrong = sign_note(format_checkpoint(ORIGIN, 6, leaf_hash(b"not the tree")), [SIGNER])
    report = run(messages(log), log, wrong)
    assert kinds(report) == {5: {CHECKPOINT}}


def test_a_checkpoint_that_does_not_verify(log: list[EntryRecord]) -> None:
    report = run(messages(log), log, checkpoint_note(log, signer=FORGER))
    assert kinds(report) == {None: {CHECKPOINT}}
    assert report.checkpoint_size is None and not report.checkpoint_checked


def test_entries_the_relay_has_not_reached_are_unpublished(log: list[EntryRecord], note: str) -> None:
    report = run(messages(log[:6]), log, note, unpublished_from=6)
    assert report.ok, report.findings
    assert report.unpublished == 4
    assert [(n.seq, n.kind) for n in report.notes] == [(6, UNPUBLISHED), (6, UNPUBLISHED)]  # entries, checkpoint
    assert not report.checkpoint_checked


def test_entries_the_relay_says_it_published_are_missing(log: list[EntryRecord], note: str) -> None:
    report = run(messages(log[:6]), log, note, unpublished_from=8)
    assert kinds(report) == {6: {MISSING, CHECKPOINT}, 7: {MISSING}}
    assert report.unpublished == 2


def test_a_gap_before_the_relays_progress_is_missing(log: list[EntryRecord], note: str) -> None:
    report = run(messages([*log[:2], *log[3:6]]), log, note, unpublished_from=6)
    assert kinds(report) == {2: {MISSING, CHECKPOINT}}
    assert report.unpublished == 4


def test_records_of_another_log_are_left_alone(log: list[EntryRecord], note: str) -> None:
    others = build_entries(3, origin=OTHER_ORIGIN, signer=NoteSigner.from_seed(OTHER_ORIGIN, bytes(32)))
    topic = [(n, *entry_record(OTHER_ORIGIN, e)) for n, e in enumerate(others)]
    topic += [(n + 3, *entry_record(ORIGIN, e)) for n, e in enumerate(log)]
    report = run(topic, log, note)
    assert report.ok, report.findings
    assert report.other_log_records == 3 and report.records_read == SIZE + 3


def test_a_body_for_another_log_under_this_logs_record(log: list[EntryRecord], note: str) -> None:
    other_signer = NoteSigner.from_seed(OTHER_ORIGIN, bytes(32))
    foreign = build_entries(SIZE, origin=OTHER_ORIGIN, signer=other_signer)[9]
    report = run(messages([*log[:9], foreign]), log, note)
    assert kinds(report)[9] >= {ALTERED}
    assert "the body names another log than the record" in [f.message for f in report.findings]


def test_findings_render_as_dicts_and_lines(log: list[EntryRecord], note: str) -> None:
    report = run(messages(log[:9]), log, note)
    as_dict = report.as_dict()
    assert as_dict["ok"] is False and as_dict["topic"] == "entries" and as_dict["origin"] == ORIGIN
    assert as_dict["findings"] == [
        {"seq": 9, "kind": MISSING, "message": "the database entry is not on the topic", "offset": None},
        {
            "seq": 9,
            "kind": CHECKPOINT,
            "message": "seq 9 is not on the topic in order (missing, malformed or late), so the topic cannot "
            "rebuild the root of the signed checkpoint of size 10",
            "offset": None,
        },
    ]
    assert str(report.findings[0]) == "seq 9: missing: the database entry is not on the topic"


def test_signatures_are_base64_on_the_topic(log: list[EntryRecord]) -> None:
    """A guard on the test's own encoding: the records are the fixed format."""
    _offset, key, value, headers = messages(log[:1])[0]
    fields = orjson.loads(value)
    assert base64.b64decode(fields["signature"]) == log[0].signature
    assert key == log[0].stream.encode()
    assert dict(headers)["ledger-seq"] == b"0"
