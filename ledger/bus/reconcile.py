"""Reconciliation of the entries topic with the database and the latest signed checkpoint.

The core, :func:`reconcile`, is pure: it takes the topic's records in topic order, the database's entries in
seq order and what the log publishes (origin, keys, latest signed checkpoint), and returns a
:class:`ReconcileReport` listing every difference by seq.  :func:`read_topic` and :func:`reconcile_topic` are
the thin outside layer: they read the topic with kafka-python and the database through the ledger.

Kinds of finding (each names the seq it concerns):

- ``missing``: an entry of the database is not on the topic;
- ``extra``: a record on the topic has a seq the database does not hold;
- ``altered``: a record differs from its database entry (body, hash, signature, key id or stream, compared
  exactly), or does not stand on its own: its hash is not ``SHA-256(0x00 || body)`` (RFC 9162 2.1.1), its body
  does not parse or names another seq, log or stream, or its signature does not verify with a key the log
  published for that seq.  The last checks need no database, so a forged record is caught even beyond it;
- ``out-of-order``: a seq appears after a higher one (a late record, or a seq repeated with other content);
- ``malformed``: a record is not in the record format (:mod:`ledger.bus.records`); named by offset, and by
  seq when the record says one;
- ``chain``: a record's body ``prev`` is not the hash of the previous seq's record;
- ``checkpoint``: the topic's records 0..n-1 do not rebuild the root of the latest signed checkpoint of size
  n (or that checkpoint does not verify).

An exact repeat of a seq already seen is what a relay does after a crash: it is a ``duplicate`` note, not a
finding.  Entries the relay has not published yet (at or beyond its recorded progress and beyond the last
record on the topic) are counted as ``unpublished``, not missing.

Memory: records are streamed, never kept.  Per distinct seq seen on the topic the reconciliation keeps a
16-byte digest (in a bytearray for seqs the database holds, about 16 bytes each, so 160 MB for ten million
entries; in a dict for seqs beyond it), so that a repeated seq can be told apart from a different record
under the same seq.  Database entries passed over while the topic skips seqs wait in a dict of digests until
the topic delivers them or the end shows them missing; findings are capped at :data:`MAX_FINDINGS`.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ledger.bus.broker import kafka_errors
from ledger.bus.records import SEQ_HEADER, MalformedRecordError, TopicRecord, parse_record
from ledger.chain import ZERO_HASH, parse_body
from ledger.errors import NotFoundError, PublishError, VerificationError
from ledger.merkle import CompactRange, leaf_hash
from ledger.notes import open_checkpoint
from ledger.store.records import EntryFilter, EntryRecord, KeyRecord
from ledger.verify import build_verifiers

if TYPE_CHECKING:
    from ledger.service import Ledger

__all__ = [
    "ALTERED",
    "CHAIN",
    "CHECKPOINT",
    "DUPLICATE",
    "EXTRA",
    "MALFORMED",
    "MISSING",
    "OUT_OF_ORDER",
    "UNPUBLISHED",
    "LogEvidence",
    "ReconcileFinding",
    "ReconcileReport",
    "Reconciler",
    "TopicMessage",
    "TopicReading",
    "read_topic",
    "reconcile",
    "reconcile_topic",
]

MISSING: Final = "missing"
EXTRA: Final = "extra"
ALTERED: Final = "altered"
OUT_OF_ORDER: Final = "out-of-order"
MALFORMED: Final = "malformed"
CHAIN: Final = "chain"
CHECKPOINT: Final = "checkpoint"
DUPLICATE: Final = "duplicate"
"""Note: an exact repeat of a seq already read (the relay re-sends after a crash)."""
UNPUBLISHED: Final = "unpublished"
"""Note: database entries the relay has not reached yet."""

MAX_FINDINGS: Final = 100_000
"""Findings (and, separately, notes) kept in a report; the counts in the report stay exact beyond it."""

KAFKA_TIMEOUT_MS: Final = 10_000
POLL_TIMEOUT_MS: Final = 1_000
STALL_SECONDS: Final = 30.0
"""Reading gives up when the broker delivers nothing for this long before the end offsets are reached."""

_DIGEST_SIZE: Final = 16
_NO_DIGEST: Final = bytes(_DIGEST_SIZE)

Headers = Sequence[tuple[str, bytes | None]]
TopicMessage = tuple[int, bytes | None, bytes, Headers]
"""One record as read from the topic: ``(offset, key, value, headers)``."""


# --- the report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReconcileFinding:
    """One difference (or note): the seq it concerns (None when unknown or log-wide), its kind, a message,
    and the record's offset on the topic when a record is involved."""

    seq: int | None
    kind: str
    message: str
    offset: int | None = None

    def __str__(self) -> str:
        where = "topic" if self.seq is None else f"seq {self.seq}"
        at = "" if self.offset is None else f" (offset {self.offset})"
        return f"{where}: {self.kind}: {self.message}{at}"

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "message": self.message, "offset": self.offset}


@dataclass(slots=True)
class ReconcileReport:
    """What a reconciliation found; ``ok`` when there are no findings (notes are not failures)."""

    origin: str
    topic: str = ""
    records_read: int = 0
    distinct_seqs: int = 0
    database_size: int = 0
    checkpoint_size: int | None = None
    checkpoint_checked: bool = False
    duplicates: int = 0
    unpublished: int = 0
    other_log_records: int = 0
    findings_total: int = 0
    findings: list[ReconcileFinding] = field(default_factory=list)
    notes: list[ReconcileFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.findings_total == 0

    def seqs(self, kind: str) -> list[int]:
        """The seqs of the findings of one kind, in report order."""
        return [f.seq for f in self.findings if f.kind == kind and f.seq is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "topic": self.topic,
            "ok": self.ok,
            "summary": {
                "records_read": self.records_read,
                "distinct_seqs": self.distinct_seqs,
                "database_size": self.database_size,
                "checkpoint_size": self.checkpoint_size,
                "checkpoint_checked": self.checkpoint_checked,
                "duplicates": self.duplicates,
                "unpublished": self.unpublished,
                "other_log_records": self.other_log_records,
                "findings": self.findings_total,
            },
            "findings": [f.as_dict() for f in self.findings],
            "notes": [n.as_dict() for n in self.notes],
        }


@dataclass(frozen=True, slots=True)
class LogEvidence:
    """What the log publishes and the reconciliation trusts: its origin, its keys (with the seqs each key
    signs), and its latest signed checkpoint note (None when it has none)."""

    origin: str
    keys: Sequence[KeyRecord]
    checkpoint_note: str | None = None


# --- the pure core ------------------------------------------------------------------------------------------


def _digest(body: bytes, hash_: bytes, signature: bytes, key_id: str, stream: str) -> bytes:
    """A digest of exactly the fields reconciliation compares; equal digests mean the same record."""
    digest = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    for part in (body, hash_, signature, key_id.encode("utf-8"), stream.encode("utf-8")):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def _record_digest(record: TopicRecord) -> bytes:
    return _digest(record.body, record.hash, record.signature, record.key_id, record.stream)


def _entry_digest(entry: EntryRecord) -> bytes:
    return _digest(entry.body, entry.hash, entry.signature, entry.key_id, entry.stream)


class _SeqDigests:
    """seq -> digest of the first record read with that seq.  Seqs below ``dense_limit`` (seqs the database
    holds) live in a bytearray, 16 bytes each; others, which only a bad topic has, in a dict."""

    __slots__ = ("_dense", "_sparse")

    def __init__(self) -> None:
        self._dense = bytearray()
        self._sparse: dict[int, bytes] = {}

    def get(self, seq: int) -> bytes | None:
        start = seq * _DIGEST_SIZE
        if start + _DIGEST_SIZE <= len(self._dense):
            value = bytes(self._dense[start : start + _DIGEST_SIZE])
            if value != _NO_DIGEST:
                return value
        return self._sparse.get(seq)

    def put(self, seq: int, digest: bytes, dense_limit: int) -> None:
        start = seq * _DIGEST_SIZE
        if seq < dense_limit:
            if len(self._dense) < start + _DIGEST_SIZE:
                self._dense.extend(bytes(start + _DIGEST_SIZE - len(self._dense)))
            self._dense[start : start + _DIGEST_SIZE] = digest
        else:
            self._sparse[seq] = digest


class _Database:
    """The database's entries, pulled in seq order as the topic asks for them."""

    __slots__ = ("_entries", "_next", "last_seq", "pulled")

    def __init__(self, entries: Iterator[EntryRecord]) -> None:
        self._entries = entries
        self._next: EntryRecord | None = next(entries, None)
        self.pulled = 0
        self.last_seq = -1

    @property
    def known_size(self) -> int:
        """One past the highest seq pulled so far (seqs below it are known to be in the database or not)."""
        return self.last_seq + 1

    def pull(self) -> EntryRecord | None:
        entry = self._next
        if entry is not None:
            self._next = next(self._entries, None)
            self.pulled += 1
            self.last_seq = entry.seq
        return entry

    def peek_seq(self) -> int | None:
        return None if self._next is None else self._next.seq


class Reconciler:
    """Streaming reconciliation: :meth:`add` each record in topic order, then :meth:`finish`."""

    def __init__(
        self,
        entries: Iterator[EntryRecord],
        evidence: LogEvidence,
        *,
        topic: str = "",
        unpublished_from: int | None = None,
    ) -> None:
        self.report = ReconcileReport(origin=evidence.origin, topic=topic)
        self._origin = evidence.origin
        self._keys = build_verifiers(evidence.keys)
        self._db = _Database(entries)
        self._unpublished_from = unpublished_from
        self._seen = _SeqDigests()
        self._waiting: dict[int, bytes] = {}  # database entries the topic skipped, by seq: their digests
        self._db_differs: dict[int, bytes | None] = {}  # seqs whose first record differed: the entry's digest
        self._max_seq = -1  # highest seq read so far
        self._last_hash = b""  # hash of the record at _max_seq, recomputed from its body
        self._tree: CompactRange | None = None
        self._checkpoint_size = 0
        self._checkpoint_root = b""
        self._open_checkpoint(evidence)

    # --- findings

    def _find(self, seq: int | None, kind: str, message: str, offset: int | None = None) -> None:
        self.report.findings_total += 1
        if len(self.report.findings) < MAX_FINDINGS:
            self.report.findings.append(ReconcileFinding(seq, kind, message, offset))

    def _note(self, seq: int | None, kind: str, message: str, offset: int | None = None) -> None:
        if len(self.report.notes) < MAX_FINDINGS:
            self.report.notes.append(ReconcileFinding(seq, kind, message, offset))

    # --- the checkpoint

    def _open_checkpoint(self, evidence: LogEvidence) -> None:
        if evidence.checkpoint_note is None:
            return
        verifiers = [verifier for _key, verifier in self._keys.values()]
        try:
            checkpoint, _opened = open_checkpoint(evidence.checkpoint_note, verifiers, origin=self._origin)
        except VerificationError as exc:
            self._find(None, CHECKPOINT, f"the latest signed checkpoint does not verify: {exc}")
            return
        self.report.checkpoint_size = checkpoint.size
        self._checkpoint_size = checkpoint.size
        self._checkpoint_root = checkpoint.root
        self._tree = CompactRange()
        self._check_root()

    def _grow_tree(self, seq: int, hash_: bytes) -> None:
        """Extend the tree with the topic's records 0, 1, 2, ... while they come in order (RFC 9162 2.1.1)."""
        tree = self._tree
        if tree is None or self.report.checkpoint_checked or tree.size != seq:
            return
        tree.append([hash_])
        self._check_root()

    def _check_root(self) -> None:
        tree = self._tree
        if tree is None or tree.size != self._checkpoint_size:
            return
        self.report.checkpoint_checked = True
        if tree.root() != self._checkpoint_root:
            size = self._checkpoint_size
            self._find(
                size - 1,
                CHECKPOINT,
                f"the topic's records 0..{size - 1} do not rebuild the root of the signed checkpoint of size {size}",
            )

    # --- records

    def add(self, message: TopicMessage) -> None:
        """Reconcile one record read from the topic (records must come in topic order)."""
        offset, key, value, headers = message
        self.report.records_read += 1
        try:
            record = parse_record(key, value, headers)
        except VerificationError as exc:
            self._find(_seq_of(exc, headers), MALFORMED, str(exc), offset)
            return
        if record.log != self._origin:
            self.report.other_log_records += 1  # another log's record on a shared topic: not this log's business
            return
        seq = record.seq
        digest = _record_digest(record)
        first = self._seen.get(seq)
        if first is not None:
            self._repeat(record, digest, first, offset)
            return
        hash_ = leaf_hash(record.body)
        body = self._check_alone(record, hash_, offset)
        self.report.distinct_seqs += 1
        if seq <= self._max_seq:
            self._late(record, digest, offset)
        else:
            self._in_order(record, hash_, body, offset)
        self._seen.put(seq, digest, self._db.known_size)

    def _repeat(self, record: TopicRecord, digest: bytes, first: bytes, offset: int) -> None:
        seq = record.seq
        if digest == first:
            self.report.duplicates += 1
            self._note(seq, DUPLICATE, "an exact repeat of a record already read (relay restart)", offset)
            return
        self._find(seq, OUT_OF_ORDER, f"seq {seq} appears again with other content after seq {self._max_seq}", offset)
        self._check_alone(record, leaf_hash(record.body), offset)
        expected = self._db_differs.get(seq, first)
        if expected is not None and digest != expected:
            self._find(seq, ALTERED, "the repeated record differs from the database entry", offset)

    def _late(self, record: TopicRecord, digest: bytes, offset: int) -> None:
        """A seq first read after a higher one: the topic is out of order here."""
        seq = record.seq
        self._find(seq, OUT_OF_ORDER, f"seq {seq} arrives after seq {self._max_seq}", offset)
        expected = self._waiting.pop(seq, None)
        if expected is None:
            self._db_differs[seq] = None
            self._find(seq, EXTRA, "the database holds no entry with this seq", offset)
        elif digest != expected:
            self._db_differs[seq] = expected
            self._find(seq, ALTERED, "the record differs from the database entry", offset)

    def _in_order(self, record: TopicRecord, hash_: bytes, body: dict[str, Any] | None, offset: int) -> None:
        seq = record.seq
        entry, db_previous = self._entry(seq)
        if entry is None:
            self._db_differs[seq] = None
            where = "lies beyond the last database entry" if self._db.peek_seq() is None else "is not in the database"
            self._find(seq, EXTRA, f"seq {seq} {where}", offset)
        else:
            differing = _differing_fields(record, entry)
            if differing:
                self._db_differs[seq] = _entry_digest(entry)
                verb = "differs" if len(differing) == 1 else "differ"
                self._find(seq, ALTERED, f"{', '.join(differing)} {verb} from the database entry", offset)
        if body is not None:
            self._check_link(seq, body, db_previous, offset)
        self._grow_tree(seq, hash_)
        self._max_seq, self._last_hash = seq, hash_

    def _entry(self, seq: int) -> tuple[EntryRecord | None, bytes | None]:
        """The database entry ``seq`` (None if there is none) and the database's hash of ``seq - 1`` if it was
        passed over just now.  Entries passed over that the topic skipped wait for a late record."""
        db = self._db
        previous: bytes | None = None
        while (next_seq := db.peek_seq()) is not None and next_seq <= seq:
            entry = db.pull()
            assert entry is not None
            if entry.seq == seq:
                return entry, previous
            if entry.seq == seq - 1:
                previous = entry.hash
            if self._seen.get(entry.seq) is None:
                self._waiting[entry.seq] = _entry_digest(entry)
        return None, previous

    def _check_link(self, seq: int, body: dict[str, Any], db_previous: bytes | None, offset: int) -> None:
        """The body's prev must be the previous seq's hash (DESIGN.md section 2: the hash chain)."""
        if seq == 0:
            previous, source = ZERO_HASH, "zero hash"
        elif seq == self._max_seq + 1:
            previous, source = self._last_hash, f"hash of the topic's record {seq - 1}"
        elif db_previous is not None:  # seq - 1 is not on the topic (yet): the database's hash of it
            previous, source = db_previous, f"database hash of entry {seq - 1}"
        else:
            return
        if body["prev"] != previous.hex():
            self._find(seq, CHAIN, f"prev is not the {source}", offset)

    def _check_alone(self, record: TopicRecord, hash_: bytes, offset: int) -> dict[str, Any] | None:
        """What a record must satisfy without the database: hash, body and signature.  Returns the body."""
        seq = record.seq
        if hash_ != record.hash:
            self._find(seq, ALTERED, "hash is not SHA-256(0x00 || body)", offset)  # RFC 9162 2.1.1
        body: dict[str, Any] | None
        try:
            body = parse_body(record.body)
        except VerificationError as exc:
            self._find(seq, ALTERED, f"the body does not parse: {exc}", offset)
            body = None
        if body is not None:
            named = [
                name
                for name, expected in (("seq", seq), ("log", self._origin), ("stream", record.stream))
                if type(body[name]) is not type(expected) or body[name] != expected
            ]
            if named:
                self._find(seq, ALTERED, f"the body names another {', '.join(named)} than the record", offset)
        problem = self._signature_problem(record)
        if problem:
            self._find(seq, ALTERED, problem, offset)
        return body

    def _signature_problem(self, record: TopicRecord) -> str | None:
        pair = self._keys.get(record.key_id)
        if pair is None:
            return f"signed with key {record.key_id}, which the log never published"
        key, verifier = pair
        if not key.covers_seq(record.seq):
            return f"signed with key {record.key_id}, which did not sign this seq"
        if not verifier.verify(record.body, record.signature):
            return "the Ed25519 signature over the body does not verify"
        return None

    # --- the end

    def finish(self) -> ReconcileReport:
        """Entries never read on the topic are missing (or not yet published); then sort the findings."""
        db = self._db
        unseen: Iterable[int] = sorted(self._waiting)
        for seq in unseen:
            self._missing(seq)
        while (entry := db.pull()) is not None:
            if self._seen.get(entry.seq) is None:
                self._missing(entry.seq)
        self.report.database_size = db.pulled
        self._finish_checkpoint()
        if self.report.unpublished:
            first = max(self._max_seq + 1, self._unpublished_from or 0)
            self._note(first, UNPUBLISHED, f"{self.report.unpublished} entries from seq {first} are not published yet")
        self.report.findings.sort(key=lambda f: (f.seq is None, f.seq or 0))  # stable: check order within a seq
        self.report.notes.sort(key=lambda f: (f.seq is None, f.seq or 0))
        return self.report

    def _missing(self, seq: int) -> None:
        if self._unpublished_from is not None and seq >= self._unpublished_from and seq > self._max_seq:
            self.report.unpublished += 1
        else:
            self._find(seq, MISSING, "the database entry is not on the topic")

    def _finish_checkpoint(self) -> None:
        tree = self._tree
        if tree is None or self.report.checkpoint_checked:
            return
        gap = tree.size  # the first seq that did not come in order
        size = self._checkpoint_size
        if self._unpublished_from is not None and gap >= self._unpublished_from and gap > self._max_seq:
            self._note(gap, UNPUBLISHED, f"the signed checkpoint of size {size} is not covered by the topic yet")
            return
        self._find(
            gap,
            CHECKPOINT,
            f"seq {gap} is not on the topic in order (missing, malformed or late), so the topic cannot rebuild "
            f"the root of the signed checkpoint of size {size}",
        )


def _differing_fields(record: TopicRecord, entry: EntryRecord) -> list[str]:
    pairs = (
        ("body", record.body, entry.body),
        ("hash", record.hash, entry.hash),
        ("signature", record.signature, entry.signature),
        ("key_id", record.key_id, entry.key_id),
        ("stream (key)", record.stream, entry.stream),
    )
    return [name for name, on_topic, stored in pairs if on_topic != stored]


def _seq_of(error: VerificationError, headers: Headers | None) -> int | None:
    """The seq a malformed record claims: from the value when it could be read, else from its header."""
    if isinstance(error, MalformedRecordError) and error.seq is not None:
        return error.seq
    return _header_seq(headers)


def _header_seq(headers: Headers | None) -> int | None:
    for name, raw in headers or ():
        if name == SEQ_HEADER and raw is not None and raw.isdigit() and len(raw) <= 20:
            return int(raw)
    return None


def reconcile(
    records: Iterable[TopicMessage],
    entries: Iterator[EntryRecord],
    evidence: LogEvidence,
    *,
    topic: str = "",
    unpublished_from: int | None = None,
) -> ReconcileReport:
    """Compare the topic's records (in topic order) with the database's entries (in seq order) and the
    log's latest signed checkpoint; report every difference by seq.  Never raises on bad records.

    ``unpublished_from`` is the relay's recorded progress for this topic, when it has any: database entries
    at or beyond it and beyond the last record read are counted as unpublished instead of missing.
    """
    reconciler = Reconciler(entries, evidence, topic=topic, unpublished_from=unpublished_from)
    for message in records:
        reconciler.add(message)
    return reconciler.finish()


# --- reading the topic (kafka-python) -------------------------------------------------------------------------


def _consumer(bootstrap: str, client_id: str) -> Any:
    from kafka import KafkaConsumer

    with kafka_errors(f"connecting to the Kafka broker at {bootstrap}"):
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            group_id=None,  # consumer groups do not work on every broker (Tansu): partitions are assigned
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            request_timeout_ms=30_000,
            bootstrap_timeout_ms=KAFKA_TIMEOUT_MS,
        )


def _partition_numbers(bootstrap: str, topic: str, client_id: str) -> list[int]:
    consumer = _consumer(bootstrap, client_id)
    try:
        with kafka_errors(f"reading the partitions of topic {topic!r}"):
            numbers = consumer.partitions_for_topic(topic) or set()
    finally:
        consumer.close()
    if not numbers:
        raise NotFoundError(f"topic {topic!r} does not exist on the broker")
    return sorted(numbers)


class _PartitionReader:
    """One partition read from its beginning up to the end offset found when the reader opened.

    The end is the larger of the partition's end offset (ListOffsets) and the high watermark of the first fetch
    response: brokers that report the end offset as the last record batch's base offset + 1 (Tansu does) are
    read to their true end all the same.
    """

    def __init__(self, bootstrap: str, topic: str, partition: int, client_id: str) -> None:
        from kafka import TopicPartition

        self._consumer = _consumer(bootstrap, client_id)
        self._partition = TopicPartition(topic, partition)
        self._first: list[Any] = []
        try:
            with kafka_errors(f"opening partition {partition} of topic {topic!r}"):
                self._consumer.assign([self._partition])
                self._consumer.seek_to_beginning(self._partition)
                listed = int(self._consumer.end_offsets([self._partition])[self._partition])
                self.end = max(listed, self._first_fetch())
        except BaseException:
            self.close()
            raise

    def _first_fetch(self) -> int:
        """Fetch once (keeping the record it returns) and return the high watermark the broker reported."""
        consumer, partition = self._consumer, self._partition
        deadline = time.monotonic() + STALL_SECONDS
        while True:
            self._first = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=1).get(partition, [])
            highwater = consumer.highwater(partition)
            if highwater is not None:
                return int(highwater)
            if self._first or time.monotonic() > deadline:
                return 0  # no high watermark reported: rely on the listed end offset

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def messages(self) -> Iterator[TopicMessage]:
        consumer, partition = self._consumer, self._partition
        quiet_since = time.monotonic()
        records, self._first = self._first, []
        try:
            while True:
                for record in records:
                    if record.offset >= self.end:
                        return
                    yield record.offset, record.key, record.value, list(record.headers or ())
                with kafka_errors("reading the topic"):
                    position = consumer.position(partition)
                    if position is None or position >= self.end:
                        return
                    records = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=1000).get(partition, [])
                if records:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > STALL_SECONDS:
                    raise PublishError(
                        f"reading the topic stalled at offset {position} of partition {partition.partition} "
                        f"(end offset {self.end})"
                    )
        finally:
            self.close()


class TopicReading:
    """The records :func:`read_topic` delivers: an iterator that also closes the broker connections (use it as
    a context manager, or call :meth:`close`, when it may not be read to the end)."""

    def __init__(self, readers: Sequence[_PartitionReader]) -> None:
        self._readers = list(readers)
        streams = [reader.messages() for reader in self._readers]
        self._messages = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_merge_key)

    def __iter__(self) -> TopicReading:
        return self

    def __next__(self) -> TopicMessage:
        return next(self._messages)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()

    def __enter__(self) -> TopicReading:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_topic(bootstrap: str, topic: str, *, client_id: str = "ledger-reconcile") -> TopicReading:
    """Every record of ``topic`` from its beginning up to the end offsets found now, then stop.

    No consumer group: each partition is assigned explicitly.  The end offsets are found when this function
    is called (not when iteration starts), so a caller can read the database after it and know that every
    record read was published before.  With one partition (the default) the records come in topic order;
    with several, the partitions are merged by their ``ledger-seq`` header (each partition is in seq order
    when the relay publishes in order) and offsets are per partition.  Raises PublishError when the broker
    fails and NotFoundError when the topic does not exist.
    """
    readers: list[_PartitionReader] = []
    try:
        for number in _partition_numbers(bootstrap, topic, client_id):
            readers.append(_PartitionReader(bootstrap, topic, number, client_id))
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    return TopicReading(readers)


def _merge_key(message: TopicMessage) -> int:
    seq = _header_seq(message[3])
    return -1 if seq is None else seq


# --- reconciling a ledger's topic ----------------------------------------------------------------------------


def reconcile_topic(
    ledger: Ledger,
    bootstrap: str,
    topic: str,
    *,
    read: Callable[[str, str], TopicReading] = read_topic,
) -> ReconcileReport:
    """Reconcile ``topic`` with the ledger's database and its latest signed checkpoint.

    The order of the reads makes a reconciliation of a live log honest: the relay's progress first, then the
    topic's end offsets, then the checkpoint, then the database size.  Every record read was therefore
    published before the database was read (so it is in the database unless something is wrong), the
    checkpoint is within the entries compared, and entries beyond the relay's progress are not yet published
    rather than missing.  The relay's progress counts only when the relay has published to this topic; for
    any other topic (a copy, say) every entry must be there.
    """
    from ledger.store.bus import BusStore

    recorder = ledger.recorder
    log_id = ledger.log_id
    progress = BusStore(recorder.engine).relay_next_seq(log_id, topic)
    with read(bootstrap, topic) as records:
        latest = recorder.latest_checkpoint(log_id)
        size = ledger.head().size
        limit = progress or size
        if latest is not None and latest.size > limit:  # prefer a checkpoint the relay has already covered
            within = [c for c in recorder.checkpoints(log_id) if c.size <= limit]
            latest = within[-1] if within else latest
        entries = recorder.iter_entries(log_id, EntryFilter(to_seq=size - 1)) if size else iter(())
        evidence = LogEvidence(ledger.origin, ledger.keys(), None if latest is None else latest.note)
        return reconcile(records, entries, evidence, topic=topic, unpublished_from=progress or None)
