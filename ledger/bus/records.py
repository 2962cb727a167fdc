"""The record format of the entries topic: one Kafka record per ledger entry.  Pure: no I/O.

Other tools read this format, so it is fixed:

- key: the entry's stream, UTF-8 (records of one stream share a partition);
- value: a JSON object ``{"log": origin, "seq": int, "body": the exact canonical body as a string,
  "hash": hex, "signature": standard base64, "key_id": hex}``, plus ``"payload": {...}`` (the canonical
  payload as a JSON object) only when the relay is configured to publish payloads and the payload has not
  been erased;
- headers: ``ledger-seq`` (decimal seq), ``ledger-hash`` (hex hash), ``ledger-log`` (origin), as UTF-8 bytes.

``body`` is carried as a JSON string so that its UTF-8 encoding is byte for byte the body that was hashed
and signed: a reader checks ``SHA-256(0x00 || body)`` against ``hash`` and the signature over ``body``
without re-canonicalising anything.  Seqs can repeat after a relay crash (the relay only ever re-sends
seqs it had already sent), so readers drop a seq they have seen.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from ledger.errors import VerificationError
from ledger.store.records import EntryRecord

SEQ_HEADER = "ledger-seq"
HASH_HEADER = "ledger-hash"
LOG_HEADER = "ledger-log"
HEADER_NAMES = (SEQ_HEADER, HASH_HEADER, LOG_HEADER)

REQUIRED_FIELDS = ("log", "seq", "body", "hash", "signature", "key_id")
OPTIONAL_FIELDS = ("payload",)
HASH_BYTES = 32  # SHA-256 (RFC 9162 leaf hash)
KEY_ID_BYTES = 4  # C2SP signed-note key id

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One entry as read from the topic, decoded but not yet compared with anything."""

    log: str
    seq: int
    body: bytes
    hash: bytes
    signature: bytes
    key_id: str
    stream: str


class MalformedRecordError(VerificationError):
    """A record on the topic does not follow the record format; ``seq`` is its seq when it could be read."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        where = f" (seq {seq})" if seq is not None else ""
        super().__init__(f"malformed record{where}: {message}")
        self.seq = seq


def entry_record(origin: str, entry: EntryRecord, payload: bytes | None = None) -> tuple[bytes, bytes, Headers]:
    """``(key, value, headers)`` of the record that publishes ``entry`` of log ``origin``.

    ``payload`` is the stored canonical payload (JSON object bytes) to include, or None to leave it out.
    """
    hash_hex = entry.hash.hex()
    fields: dict[str, object] = {
        "log": origin,
        "seq": entry.seq,
        "body": entry.body.decode("utf-8"),
        "hash": hash_hex,
        "signature": base64.b64encode(entry.signature).decode("ascii"),
        "key_id": entry.key_id,
    }
    if payload is not None:
        fields["payload"] = orjson.Fragment(payload)  # already canonical JSON: embedded as is
    headers = [
        (SEQ_HEADER, str(entry.seq).encode("ascii")),
        (HASH_HEADER, hash_hex.encode("ascii")),
        (LOG_HEADER, origin.encode("utf-8")),
    ]
    return entry.stream.encode("utf-8"), orjson.dumps(fields), headers


def parse_record(key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes | None]] | None) -> TopicRecord:
    """Decode one record of the entries topic; raise MalformedRecordError (a VerificationError) if it is not
    in the record format or its headers disagree with its value.

    Only the format is checked here: whether the body, hash and signature are the ledger's is for the caller
    (reconciliation) to compare.
    """
    fields = _value_fields(value)
    seq = _seq(fields.get("seq"))
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    unknown = sorted(set(fields) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if missing or unknown:
        raise MalformedRecordError(f"missing fields {missing}, unknown fields {unknown}", seq=seq)
    if seq is None:
        raise MalformedRecordError("seq is not a non-negative integer")
    log = _text(fields, "log", seq)
    body = _text(fields, "body", seq).encode("utf-8")
    hash_hex = _text(fields, "hash", seq)
    record = TopicRecord(
        log=log,
        seq=seq,
        body=body,
        hash=_hex(hash_hex, "hash", HASH_BYTES, seq),
        signature=_base64(_text(fields, "signature", seq), seq),
        key_id=_text(fields, "key_id", seq),
        stream=_stream(key, seq),
    )
    _hex(record.key_id, "key_id", KEY_ID_BYTES, seq)
    if "payload" in fields and not isinstance(fields["payload"], dict):
        raise MalformedRecordError("payload is not a JSON object", seq=seq)
    expected = {SEQ_HEADER: str(seq), HASH_HEADER: hash_hex, LOG_HEADER: log}
    for name, text in _header_texts(headers, seq).items():
        if text != expected[name]:
            raise MalformedRecordError(f"header {name} disagrees with the value", seq=seq)
    return record


def _value_fields(value: bytes) -> dict[str, object]:
    try:
        fields = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise MalformedRecordError("value is not JSON") from None
    if not isinstance(fields, dict):
        raise MalformedRecordError("value is not a JSON object")
    return fields


def _seq(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _text(fields: dict[str, object], name: str, seq: int) -> str:
    value = fields[name]
    if not isinstance(value, str) or not value:
        raise MalformedRecordError(f"{name} is not a non-empty string", seq=seq)
    return value


def _hex(text: str, name: str, size: int, seq: int) -> bytes:
    if len(text) != 2 * size or text != text.lower():
        raise MalformedRecordError(f"{name} is not {size} bytes of lower-case hex", seq=seq)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise MalformedRecordError(f"{name} is not {size} bytes of lower-case hex", seq=seq) from None


def _base64(text: str, seq: int) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRecordError("signature is not standard base64", seq=seq) from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedRecordError("signature is not canonical base64", seq=seq)
    return raw


def _stream(key: bytes | None, seq: int) -> str:
    if not key:
        raise MalformedRecordError("the record has no key (the stream)", seq=seq)
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRecordError("the key (the stream) is not UTF-8", seq=seq) from None


def _header_texts(headers: Sequence[tuple[str, bytes | None]] | None, seq: int) -> dict[str, str]:
    """The ledger headers as text; each must be present exactly once (other headers are ignored)."""
    found: dict[str, str] = {}
    for name, raw in headers or ():
        if name not in HEADER_NAMES:
            continue
        if name in found:
            raise MalformedRecordError(f"header {name} appears twice", seq=seq)
        if raw is None:
            raise MalformedRecordError(f"header {name} has no value", seq=seq)
        try:
            found[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRecordError(f"header {name} is not UTF-8", seq=seq) from None
    missing = [name for name in HEADER_NAMES if name not in found]
    if missing:
        raise MalformedRecordError(f"missing headers {missing}", seq=seq)
    return found
