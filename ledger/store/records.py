"""Plain records passed between the store and the service (no SQLAlchemy types leak out of store/)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LogHead:
    """The head of one log, read under its row lock when appending."""

    log_id: int
    origin: str
    size: int
    head_hash: bytes
    frontier: tuple[bytes, ...]
    appends_since_checkpoint: int
    created_at: str
    active_key_id: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A public key of a log with its validity period (seqs are [from, until), until None = active)."""

    key_id: str
    verifier_key: str
    valid_from_seq: int
    valid_until_seq: int | None
    valid_from: str
    valid_until: str | None

    def covers_seq(self, seq: int) -> bool:
        return self.valid_from_seq <= seq and (self.valid_until_seq is None or seq < self.valid_until_seq)

    def covers_size(self, size: int) -> bool:
        """Whether this key was the log's key when the tree had this size."""
        return self.valid_from_seq <= size and (self.valid_until_seq is None or size <= self.valid_until_seq)

    def covers_time(self, moment: str) -> bool:
        """Whether this key was active at ``moment`` (fixed-width RFC 3339 strings compare as times)."""
        return self.valid_from <= moment and (self.valid_until is None or moment <= self.valid_until)

    def not_retired_before(self, size: int) -> bool:
        """Whether this key was still in use when the tree reached ``size`` or later (so it may have re-signed a
        checkpoint of that size after a rotation)."""
        return self.valid_until_seq is None or self.valid_until_seq >= size

    def may_sign_checkpoint(self, size: int, created_at: str) -> bool:
        """A checkpoint is signed by the key of its size, or re-signed later by the key active then."""
        return self.covers_size(size) or self.covers_time(created_at)


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """A stored entry: the signed body plus the columns extracted from it for queries."""

    seq: int
    event_id: str
    stream: str
    stream_seq: int
    type: str
    producer: str
    occurred_at: str
    recorded_at: str
    body: bytes
    hash: bytes
    signature: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class PayloadRecord:
    """A payload beside its entry; ``payload`` and ``salt`` are None once erased or disposed."""

    seq: int
    salt: bytes | None
    payload: bytes | None
    erased_at: str | None = None
    erased_by_seq: int | None = None
    erasure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry about to be written, with what goes beside it."""

    entry: EntryRecord
    salt: bytes
    payload: bytes
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    size: int
    root: bytes
    note: str
    created_at: str


@dataclass(frozen=True, slots=True)
class NodeRecord:
    level: int
    idx: int
    hash: bytes


@dataclass(slots=True)
class EntryFilter:
    """Query filters; every given filter must hold.  Seq bounds are inclusive."""

    stream: str | None = None
    stream_prefix: str | None = None
    type: str | None = None
    producer: str | None = None
    subject: str | None = None
    occurred_since: str | None = None
    occurred_until: str | None = None
    recorded_since: str | None = None
    recorded_until: str | None = None
    from_seq: int | None = None
    to_seq: int | None = None
    types: tuple[str, ...] = field(default_factory=tuple)
