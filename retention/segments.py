"""The sealed-snapshot formats: object names, segments, payload objects and checkpoint objects.  Pure.

A seal of the entries ``first..last`` of a log writes three objects (``<log>`` is the log origin,
percent-encoded so that it is one path segment):

* ``<log>/segments/<first>-<last>``: gzip of JSON Lines.  Line 1 is a header
  ``{"format": "evidence-ledger-segment", "v": 1, "log", "store", "first", "last", "count", "log_created_at",
  "keys"}``; every further line is one entry ``{"seq", "body", "hash", "sig", "key"}`` in seq order, where
  ``body`` is the exact canonical body (as a JSON string), ``hash`` and ``key`` hex and ``sig`` base64.
* ``<log>/payloads/<first>-<last>``: gzip of JSON Lines, header ``{"format": "evidence-ledger-payloads", "v": 1,
  "log", "first", "last"}``, then per entry ``{"seq", "salt", "payload"}`` (salt hex, payload the canonical JSON
  as a string) or, once removed, ``{"seq", "erased": {"at", "by_seq", "reason"}}``.  Payloads live apart so
  that erasure can rewrite this object while the segment stays untouched.
* ``<log>/checkpoints/<size>``: the signed checkpoint note of tree size ``last + 1``, as UTF-8 text (a few
  hundred bytes that any C2SP signed-note tool reads as it is, so it is not compressed).

Numbers in names are zero-padded to 12 digits so that a store's name order is seq order.  gzip is written with
a zero timestamp, so the same entries always give the same bytes (sealing can be retried and compared).
Parsers raise :class:`~ledger.errors.VerificationError` naming what is wrong, never ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import orjson

from ledger.errors import VerificationError
from ledger.store.records import EntryRecord, KeyRecord, PayloadRecord

SEGMENT_FORMAT = "evidence-ledger-segment"
PAYLOADS_FORMAT = "evidence-ledger-payloads"
FORMAT_VERSION = 1
SEQ_DIGITS = 12
GZIP_LEVEL = 6
SEGMENTS = "segments"
PAYLOADS = "payloads"
CHECKPOINTS = "checkpoints"
_RANGE_NAME = re.compile(r"(\d{12})-(\d{12})")
_SIZE_NAME = re.compile(r"\d{12}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{8}")


# --- names ----------------------------------------------------------------------------------------------


def log_prefix(origin: str) -> str:
    """The first path segment of every object of a log: its origin, percent-encoded (``/`` included)."""
    return quote(origin, safe="") + "/"


def origin_of_prefix(prefix: str) -> str:
    return unquote(prefix.rstrip("/"))


def segment_name(origin: str, first: int, last: int) -> str:
    return f"{log_prefix(origin)}{SEGMENTS}/{first:0{SEQ_DIGITS}d}-{last:0{SEQ_DIGITS}d}"


def payloads_name(origin: str, first: int, last: int) -> str:
    return f"{log_prefix(origin)}{PAYLOADS}/{first:0{SEQ_DIGITS}d}-{last:0{SEQ_DIGITS}d}"


def checkpoint_name(origin: str, size: int) -> str:
    return f"{log_prefix(origin)}{CHECKPOINTS}/{size:0{SEQ_DIGITS}d}"


def parse_range_name(name: str) -> tuple[int, int]:
    """``(first, last)`` from a segment or payload object name; VerificationError if it is not one."""
    match = _RANGE_NAME.fullmatch(name.rsplit("/", 1)[-1])
    if match is None:
        raise VerificationError(f"object {name}: not a segment name (<first>-<last>, 12 digits each)")
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise VerificationError(f"object {name}: last seq precedes first seq")
    return first, last


def parse_size_name(name: str) -> int:
    tail = name.rsplit("/", 1)[-1]
    if _SIZE_NAME.fullmatch(tail) is None:
        raise VerificationError(f"object {name}: not a checkpoint name (12-digit tree size)")
    return int(tail)


# --- records --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    log: str
    store: str
    first: int
    last: int
    count: int
    log_created_at: str
    keys: tuple[KeyRecord, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    header: SegmentHeader
    entries: list[EntryRecord]


@dataclass(frozen=True, slots=True)
class PayloadsObject:
    log: str
    first: int
    last: int
    payloads: list[PayloadRecord]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise VerificationError(f"object {name}: not a valid gzip stream") from exc


def _key_json(key: KeyRecord) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "verifier_key": key.verifier_key,
        "valid_from_seq": key.valid_from_seq,
        "valid_until_seq": key.valid_until_seq,
        "valid_from": key.valid_from,
        "valid_until": key.valid_until,
    }


# --- encoding -------------------------------------------------------------------------------------------


def encode_segment(header: SegmentHeader, entries: Sequence[EntryRecord]) -> bytes:
    """The gzip'd JSON Lines of a segment (deterministic bytes)."""
    head = {
        "format": SEGMENT_FORMAT,
        "v": FORMAT_VERSION,
        "log": header.log,
        "store": header.store,
        "first": header.first,
        "last": header.last,
        "count": header.count,
        "log_created_at": header.log_created_at,
        "keys": [_key_json(k) for k in header.keys],
    }
    lines = [orjson.dumps(head)]
    b64 = base64.b64encode
    for entry in entries:
        lines.append(
            orjson.dumps(
                {
                    "seq": entry.seq,
                    "body": entry.body.decode("utf-8"),
                    "hash": entry.hash.hex(),
                    "sig": b64(entry.signature).decode("ascii"),
                    "key": entry.key_id,
                }
            )
        )
    return _gzip(b"\n".join(lines) + b"\n")


def encode_payloads(origin: str, first: int, last: int, records: Sequence[PayloadRecord]) -> bytes:
    """The gzip'd JSON Lines of a payload object (deterministic bytes)."""
    head = {"format": PAYLOADS_FORMAT, "v": FORMAT_VERSION, "log": origin, "first": first, "last": last}
    lines = [orjson.dumps(head)]
    for record in records:
        if record.payload is None or record.salt is None:
            erased = {"at": record.erased_at, "by_seq": record.erased_by_seq, "reason": record.erasure_reason}
            lines.append(orjson.dumps({"seq": record.seq, "erased": erased}))
        else:
            lines.append(
                orjson.dumps({"seq": record.seq, "salt": record.salt.hex(), "payload": record.payload.decode("utf-8")})
            )
    return _gzip(b"\n".join(lines) + b"\n")


# --- decoding -------------------------------------------------------------------------------------------


def _lines(data: bytes, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(_gunzip(data, name).split(b"\n"), start=1):
        if not line:
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise VerificationError(f"object {name}: line {number} is not JSON") from exc
        if not isinstance(value, dict):
            raise VerificationError(f"object {name}: line {number} is not a JSON object")
        yield number, value


def _field(record: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise VerificationError(f"{where}: field {key!r} is missing or of the wrong type")
    return value


def _optional(record: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = record.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise VerificationError(f"{where}: field {key!r} is of the wrong type")
    return value


def _parse_key(raw: Any, where: str) -> KeyRecord:
    if not isinstance(raw, dict):
        raise VerificationError(f"{where}: a key is not a JSON object")
    key_id = _field(raw, "key_id", str, where)
    if _KEY_ID.fullmatch(key_id) is None:
        raise VerificationError(f"{where}: key id is not 8 hex digits")
    return KeyRecord(
        key_id=key_id,
        verifier_key=_field(raw, "verifier_key", str, where),
        valid_from_seq=_field(raw, "valid_from_seq", int, where),
        valid_until_seq=_optional(raw, "valid_until_seq", int, where),
        valid_from=_field(raw, "valid_from", str, where),
        valid_until=_optional(raw, "valid_until", str, where),
    )


def _check_header(head: dict[str, Any], fmt: str, name: str) -> None:
    if head.get("format") != fmt:
        raise VerificationError(f"object {name}: not an {fmt} object")
    if head.get("v") != FORMAT_VERSION:
        raise VerificationError(f"object {name}: unsupported format version {head.get('v')!r}")


def decode_segment(data: bytes, name: str) -> Segment:
    """Parse a segment object; every entry line is checked for form (not for cryptographic validity)."""
    lines = _lines(data, name)
    try:
        _number, head = next(lines)
    except StopIteration:
        raise VerificationError(f"object {name}: empty segment") from None
    _check_header(head, SEGMENT_FORMAT, name)
    where = f"object {name}: header"
    keys_raw = _field(head, "keys", list, where)
    header = SegmentHeader(
        log=_field(head, "log", str, where),
        store=_field(head, "store", str, where),
        first=_field(head, "first", int, where),
        last=_field(head, "last", int, where),
        count=_field(head, "count", int, where),
        log_created_at=_field(head, "log_created_at", str, where),
        keys=tuple(_parse_key(k, where) for k in keys_raw),
    )
    entries = [_parse_entry(record, f"object {name}: line {number}") for number, record in lines]
    return Segment(header, entries)


def _parse_entry(record: dict[str, Any], where: str) -> EntryRecord:
    seq = _field(record, "seq", int, where)
    body_text = _field(record, "body", str, where)
    hash_hex = _field(record, "hash", str, where)
    key_id = _field(record, "key", str, where)
    if _HEX64.fullmatch(hash_hex) is None:
        raise VerificationError(f"{where}: hash is not 64 lowercase hex digits")
    if _KEY_ID.fullmatch(key_id) is None:
        raise VerificationError(f"{where}: key id is not 8 hex digits")
    try:
        signature = base64.b64decode(_field(record, "sig", str, where), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"{where}: signature is not base64") from exc
    body = body_text.encode("utf-8")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise VerificationError(f"{where}: body is not JSON") from exc
    if not isinstance(parsed, dict):
        raise VerificationError(f"{where}: body is not a JSON object")
    columns: dict[str, Any] = {}
    for column, key, kind in _BODY_COLUMNS:
        value = parsed.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise VerificationError(f"{where}: body field {key!r} is missing or of the wrong type")
        columns[column] = value
    return EntryRecord(seq=seq, body=body, hash=bytes.fromhex(hash_hex), signature=signature, key_id=key_id, **columns)


_BODY_COLUMNS: tuple[tuple[str, str, type], ...] = (
    ("event_id", "id", str),
    ("stream", "stream", str),
    ("stream_seq", "stream_seq", int),
    ("type", "type", str),
    ("producer", "producer", str),
    ("occurred_at", "occurred_at", str),
    ("recorded_at", "recorded_at", str),
)


def body_subjects(body: bytes) -> tuple[str, ...]:
    """The subject refs a body commits to (empty if the body does not carry a list of strings)."""
    try:
        subjects = orjson.loads(body).get("subjects")
    except (orjson.JSONDecodeError, AttributeError):
        return ()
    if not isinstance(subjects, list):
        return ()
    return tuple(s for s in subjects if isinstance(s, str))


def decode_payloads(data: bytes, name: str) -> PayloadsObject:
    lines = _lines(data, name)
    try:
        _number, head = next(lines)
    except StopIteration:
        raise VerificationError(f"object {name}: empty payload object") from None
    _check_header(head, PAYLOADS_FORMAT, name)
    where = f"object {name}: header"
    result = PayloadsObject(
        log=_field(head, "log", str, where),
        first=_field(head, "first", int, where),
        last=_field(head, "last", int, where),
        payloads=[],
    )
    for number, record in lines:
        result.payloads.append(_parse_payload(record, f"object {name}: line {number}"))
    return result


def _parse_payload(record: dict[str, Any], where: str) -> PayloadRecord:
    seq = _field(record, "seq", int, where)
    erased = record.get("erased")
    if erased is not None:
        if not isinstance(erased, dict):
            raise VerificationError(f"{where}: 'erased' is not a JSON object")
        return PayloadRecord(
            seq=seq,
            salt=None,
            payload=None,
            erased_at=_field(erased, "at", str, where),
            erased_by_seq=_optional(erased, "by_seq", int, where),
            erasure_reason=_optional(erased, "reason", str, where),
        )
    salt_hex = _field(record, "salt", str, where)
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError as exc:
        raise VerificationError(f"{where}: salt is not hex") from exc
    return PayloadRecord(seq=seq, salt=salt, payload=_field(record, "payload", str, where).encode("utf-8"))


def decode_checkpoint_object(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"object {name}: checkpoint is not UTF-8 text") from exc


def keys_of(records: Iterable[KeyRecord]) -> tuple[KeyRecord, ...]:
    return tuple(sorted(records, key=lambda k: (k.valid_from_seq, k.valid_from)))
