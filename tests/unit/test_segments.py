"""The sealed-snapshot formats: names, segments and payload objects round-trip, and parsers fail cleanly."""

from __future__ import annotations

import gzip
import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain import entry_body
from ledger.errors import VerificationError
from ledger.merkle import leaf_hash
from ledger.store.records import EntryRecord, KeyRecord, PayloadRecord
from retention.segments import (
    SegmentHeader,
    checkpoint_name,
    decode_payloads,
    decode_segment,
    encode_payloads,
    encode_segment,
    log_prefix,
    origin_of_prefix,
    parse_range_name,
    parse_size_name,
    payloads_name,
    segment_name,
)

ORIGIN = "bank.example/evidence"
KEY = KeyRecord("0a1b2c3d", f"{ORIGIN}+0a1b2c3d+AQ==", 0, None, "2026-01-01T00:00:00.000000Z", None)
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def _entry(seq: int, stream: str = "controls/iam", producer: str = "svc") -> EntryRecord:
    body = entry_body(
        log=ORIGIN,
        seq=seq,
        prev=bytes(32),
        event_id=f"00000000-0000-4000-8000-{seq:012d}",
        stream=stream,
        stream_seq=seq,
        event_type="check.result",
        occurred_at="2026-11-20T10:00:00.000000Z",
        recorded_at="2026-11-20T10:00:01.000000Z",
        producer=producer,
        payload_digest="ab" * 32,
        subjects=[],
    )
    return EntryRecord(
        seq=seq,
        event_id=f"00000000-0000-4000-8000-{seq:012d}",
        stream=stream,
        stream_seq=seq,
        type="check.result",
        producer=producer,
        occurred_at="2026-11-20T10:00:00.000000Z",
        recorded_at="2026-11-20T10:00:01.000000Z",
        body=body,
        hash=leaf_hash(body),
        signature=bytes(range(64)),
        key_id=KEY.key_id,
    )


def _header(first: int, last: int) -> SegmentHeader:
    return SegmentHeader(ORIGIN, "primary", first, last, last - first + 1, "2026-01-01T00:00:00.000000Z", (KEY,))


def test_names_sort_in_seq_order_and_parse_back() -> None:
    names = [segment_name(ORIGIN, a, a + 9) for a in (0, 10, 100, 1000, 99_990)]
    assert sorted(names) == names
    assert [parse_range_name(n) for n in names][2] == (100, 109)
    assert parse_size_name(checkpoint_name(ORIGIN, 1234)) == 1234
    assert payloads_name(ORIGIN, 5, 7).endswith("/payloads/000000000005-000000000007")


@given(st.text(min_size=1, max_size=60))
def test_log_prefix_is_one_segment_and_reversible(origin: str) -> None:
    prefix = log_prefix(origin)
    assert prefix.count("/") == 1 and prefix.endswith("/")
    assert origin_of_prefix(prefix) == origin


@pytest.mark.parametrize(
    "name", ["x/segments/1-2", "x/segments/000000000002-000000000001", "x/segments/abc", "x/segments/"]
)
def test_bad_range_names_are_refused(name: str) -> None:
    with pytest.raises(VerificationError, match="object"):
        parse_range_name(name)


def test_bad_size_name_is_refused() -> None:
    with pytest.raises(VerificationError, match="not a checkpoint name"):
        parse_size_name("x/checkpoints/12")


@settings(max_examples=50)
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=20))
def test_segment_round_trips_exact_bytes(values: list[tuple[str, str]]) -> None:
    entries = []
    for seq, (stream_tail, producer) in enumerate(values):
        entries.append(_entry(seq, stream=f"controls/{abs(hash(stream_tail)) % 97}", producer=producer or "p"))
    data = encode_segment(_header(0, len(entries) - 1), entries)
    segment = decode_segment(data, "n")
    assert segment.entries == entries  # bodies, hashes, signatures byte for byte
    assert segment.header == _header(0, len(entries) - 1)
    assert encode_segment(_header(0, len(entries) - 1), entries) == data  # deterministic (gzip mtime 0)


@settings(max_examples=50)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.binary(min_size=16, max_size=16), st.dictionaries(texts, texts, max_size=4)),
            st.none(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_payload_object_round_trips(rows: list[tuple[bytes, dict[str, str]] | None]) -> None:
    records = []
    for seq, row in enumerate(rows):
        if row is None:
            records.append(PayloadRecord(seq, None, None, "2026-01-01T00:00:00.000000Z", 99, "gdpr-erasure"))
        else:
            salt, payload = row
            records.append(PayloadRecord(seq, salt, orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)))
    data = encode_payloads(ORIGIN, 0, len(rows) - 1, records)
    decoded = decode_payloads(data, "p")
    assert decoded.payloads == records
    assert (decoded.log, decoded.first, decoded.last) == (ORIGIN, 0, len(rows) - 1)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_segment_parser_never_leaks_other_errors(junk: bytes) -> None:
    for data in (junk, gzip.compress(junk, mtime=0)):
        try:
            decode_segment(data, "objectname")
        except VerificationError as exc:
            assert "objectname" in str(exc)
        try:
            decode_payloads(data, "objectname")
        except VerificationError as exc:
            assert "objectname" in str(exc)


@settings(max_examples=200)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["seq", "body", "hash", "sig", "key", "x"]), st.integers(-(2**62), 2**62) | texts
        )
    )
)
def test_segment_parser_rejects_malformed_lines_with_verification_error(lines: list[dict[str, object]]) -> None:
    head = {
        "format": "evidence-ledger-segment",
        "v": 1,
        "log": ORIGIN,
        "store": "s",
        "first": 0,
        "last": 0,
        "count": 1,
        "log_created_at": "t",
        "keys": [],
    }
    raw = b"\n".join(orjson.dumps(x) for x in [head, *lines])
    try:
        segment = decode_segment(gzip.compress(raw, mtime=0), "seg")
    except VerificationError as exc:
        assert str(exc).startswith("object seg:")
    else:
        assert len(segment.entries) == len(lines)


def test_one_changed_character_changes_the_digest_and_still_parses() -> None:
    entries = [_entry(0), _entry(1)]
    data = encode_segment(_header(0, 1), entries)
    raw = gzip.decompress(data).replace(b"controls/iam", b"controls/iaM", 1)
    forged = gzip.compress(raw, mtime=0)
    assert hashlib.sha256(forged).digest() != hashlib.sha256(data).digest()
    assert decode_segment(forged, "s").entries[0].body != entries[0].body  # caught later by hash and signature


def test_wrong_format_and_version_are_named() -> None:
    good = gzip.decompress(encode_payloads(ORIGIN, 0, 0, [PayloadRecord(0, b"s" * 16, b"{}")]))
    with pytest.raises(VerificationError, match="not an evidence-ledger-segment"):
        decode_segment(gzip.compress(good, mtime=0), "p")
    bumped = good.replace(b'"v":1', b'"v":2', 1)
    with pytest.raises(VerificationError, match="unsupported format version"):
        decode_payloads(gzip.compress(bumped, mtime=0), "p")
