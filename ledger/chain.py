"""Entry bodies, the hash chain and entry signatures (DESIGN.md section 2).  Pure: no I/O.

An entry body is the canonical JSON of ``{v, log, seq, prev, id, stream, stream_seq, type, occurred_at,
recorded_at, producer, payload_digest, subjects}``.  Its hash is the RFC 9162 leaf hash
``SHA-256(0x00 || body)``; ``prev`` is the previous entry's hash, so the chain and the Merkle tree share
one hash.  The payload never enters the body: the body commits to ``SHA-256(salt || canonical(payload))``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.canonical import canonical_bytes
from ledger.errors import VerificationError
from ledger.merkle import leaf_hash
from ledger.notes import NoteSigner

BODY_VERSION = 1
ZERO_HASH = bytes(32)
SALT_BYTES = 16
BODY_FIELDS = (
    "v",
    "log",
    "seq",
    "prev",
    "id",
    "stream",
    "stream_seq",
    "type",
    "occurred_at",
    "recorded_at",
    "producer",
    "payload_digest",
    "subjects",
)


@dataclass(frozen=True, slots=True)
class SealedEntry:
    """An entry as stored: exact body bytes, its leaf hash, and the log key's signature over the body."""

    seq: int
    body: bytes
    hash: bytes
    signature: bytes
    key_id: bytes


def payload_digest(salt: bytes, payload: Mapping[str, Any]) -> str:
    """``SHA-256(salt || canonical(payload))`` as hex; erasing payload and salt leaves every hash valid."""
    return hashlib.sha256(salt + canonical_bytes(payload)).hexdigest()


def payload_digest_of_bytes(salt: bytes, canonical_payload: bytes) -> str:
    """The payload digest when the canonical payload bytes are already at hand (as stored)."""
    return hashlib.sha256(salt + canonical_payload).hexdigest()


def subject_ref(secret: bytes, identifier: str) -> str:
    """``HMAC-SHA256(ledger secret, identifier)`` hex: lets queries find a person without storing them."""
    return hmac.new(secret, identifier.encode("utf-8"), hashlib.sha256).hexdigest()


def entry_body(
    *,
    log: str,
    seq: int,
    prev: bytes,
    event_id: str,
    stream: str,
    stream_seq: int,
    event_type: str,
    occurred_at: str,
    recorded_at: str,
    producer: str,
    payload_digest: str,
    subjects: Sequence[str],
) -> bytes:
    """The canonical bytes of an entry body; the only bytes that are hashed and signed for an entry."""
    return canonical_bytes(
        {
            "v": BODY_VERSION,
            "log": log,
            "seq": seq,
            "prev": prev.hex(),
            "id": event_id,
            "stream": stream,
            "stream_seq": stream_seq,
            "type": event_type,
            "occurred_at": occurred_at,
            "recorded_at": recorded_at,
            "producer": producer,
            "payload_digest": payload_digest,
            "subjects": sorted(subjects),
        }
    )


def seal(seq: int, body: bytes, signer: NoteSigner) -> SealedEntry:
    """Hash and sign one body with the log key."""
    return SealedEntry(seq, body, leaf_hash(body), signer.sign(body), signer.key_id)


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode a stored body; raise VerificationError if it is not a JSON object with exactly the body fields."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise VerificationError("malformed entry body: not JSON") from exc
    if not isinstance(value, dict):
        raise VerificationError("malformed entry body: not a JSON object")
    missing = [name for name in BODY_FIELDS if name not in value]
    extra = sorted(set(value) - set(BODY_FIELDS))
    if missing or extra:
        raise VerificationError(f"malformed entry body: missing {missing} extra {extra}")
    return value
