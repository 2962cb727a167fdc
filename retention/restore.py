"""Restore: rebuild a fresh database from the sealed segments of an object store, verifying everything.

Every segment is read in seq order and checked as ``ledger verify`` checks the database (leaf hashes,
canonical bodies, chain links, stream counters, Ed25519 signatures with keys valid at each seq, payload
digests), the rebuilt Merkle tree's root is compared with every sealed checkpoint, whose signature must verify,
and each object's SHA-256 is compared with the digest recorded in the chain by the ``snapshot.sealed`` (or
``snapshot.payloads_redacted``) event that covers it.  The first problem stops the restore with an
:class:`~ledger.errors.IntegrityError` naming the object and the seq; since the whole load is one
transaction, the target database is then left as it was.

Trust: the keys that may sign are the segment header's key list, where every key after the first must be
announced by a verified ``key.rotated`` entry of the chain signed by its predecessor.  The first key is the
anchor: pass it (or any later key) as ``trusted_keys`` to pin it; without a pin the restore trusts the first key
found in the store and says so.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger.errors import IntegrityError, ValidationError, VerificationError
from ledger.merkle import CompactRange
from ledger.notes import parse_checkpoint, parse_note, parse_verifier_key
from ledger.store.bulk import BulkLog, LoadedEntry, bulk_load
from ledger.store.database import make_engine, migrate
from ledger.store.records import CheckpointRecord, EntryRecord, KeyRecord, LogHead, NodeRecord, PayloadRecord
from ledger.verify import Auditor, Finding, SignatureChecks
from retention.disposal import DISPOSED_TYPE, ERASURE_DECIDED_TYPE, RETENTION_STREAM
from retention.sealing import REDACTED_TYPE, SEALED_TYPE, snapshot_stream
from retention.segments import (
    CHECKPOINTS,
    PAYLOADS,
    SEGMENTS,
    Segment,
    SegmentHeader,
    body_subjects,
    decode_checkpoint_object,
    decode_payloads,
    decode_segment,
    log_prefix,
    origin_of_prefix,
    parse_range_name,
    parse_size_name,
    segment_name,
)
from retention.stores.base import ObjectStore
from schemas.timestamps import format_timestamp

__all__ = ["RestoreReport", "SegmentPlan", "plan_restore", "restore"]

KEY_ROTATED_TYPE = "key.rotated"
_CHECKPOINT_CODES = frozenset({"bad-checkpoint", "root-mismatch", "fork", "truncated"})


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    first: int
    last: int
    segment: str
    payloads: str
    checkpoint: str


@dataclass(slots=True)
class RestoreReport:
    origin: str
    entries: int = 0
    segments: int = 0
    checkpoints: int = 0
    size: int = 0
    root: str = ""
    checkpoint: str = ""
    digests_checked: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "entries": self.entries,
            "segments": self.segments,
            "checkpoints": self.checkpoints,
            "size": self.size,
            "root": self.root,
            "checkpoint": self.checkpoint,
            "digests_checked": self.digests_checked,
            "notes": self.notes,
        }


# --- what the store holds ---------------------------------------------------------------------------


def find_origin(store: ObjectStore, origin: str | None) -> str:
    if origin is not None:
        return origin
    prefixes = sorted({obj.name.split("/", 1)[0] for obj in store.list()})
    if not prefixes:
        raise IntegrityError("the store holds no sealed log")
    if len(prefixes) > 1:
        names = ", ".join(origin_of_prefix(p) for p in prefixes)
        raise ValidationError(f"the store holds several logs ({names}): choose one with --log")
    return origin_of_prefix(prefixes[0])


def plan_restore(store: ObjectStore, origin: str) -> tuple[list[SegmentPlan], dict[int, str], list[str]]:
    """The segments in seq order with their payload and checkpoint objects; refuses gaps, overlaps, strays."""
    prefix = log_prefix(origin)
    segments = sorted((parse_range_name(o.name), o.name) for o in store.list(f"{prefix}{SEGMENTS}/"))
    payload_objects = {parse_range_name(o.name): o.name for o in store.list(f"{prefix}{PAYLOADS}/")}
    checkpoints = {parse_size_name(o.name): o.name for o in store.list(f"{prefix}{CHECKPOINTS}/")}
    if not segments:
        raise IntegrityError(f"the store holds no segment of log {origin}")
    plans: list[SegmentPlan] = []
    expected = 0
    for (first, last), name in segments:
        if first > expected:
            raise IntegrityError(_missing_segment(origin, expected, first, checkpoints))
        if first < expected:
            raise IntegrityError(f"object {name}: overlaps the previous segment at seq {first}")
        payload_name = payload_objects.get((first, last))
        if payload_name is None:
            raise IntegrityError(f"object {name}: its payload object is missing (seq {first})")
        checkpoint = checkpoints.get(last + 1)
        if checkpoint is None:
            raise IntegrityError(f"object {name}: the checkpoint of size {last + 1} that seals it is missing")
        plans.append(SegmentPlan(first, last, name, payload_name, checkpoint))
        expected = last + 1
    beyond = sorted(size for size in checkpoints if size > expected)
    if beyond:
        raise IntegrityError(_missing_segment(origin, expected, beyond[-1], checkpoints))
    notes = []
    unsealed = sorted(set(payload_objects) - {(p.first, p.last) for p in plans})
    if unsealed:
        notes.append(f"{len(unsealed)} payload object(s) belong to no segment and were ignored")
    return plans, {size: checkpoints[size] for size in sorted(checkpoints)}, notes


def _missing_segment(origin: str, expected: int, upto: int, checkpoints: dict[int, str]) -> str:
    """Name the segment that should start at ``expected``: its end is the first sealed checkpoint after it."""
    ends = sorted(size for size in checkpoints if expected < size <= upto)
    last = (ends[0] if ends else upto) - 1
    return (
        f"object {segment_name(origin, expected, last)}: missing from the store (seqs {expected}..{last}; "
        f"checkpoint {checkpoints.get(last + 1, 'none')} seals it); seq {expected} is the first entry lost"
    )


# --- verification state -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Keys:
    """The key list of the newest segment header and the anchors it must be traced back to."""

    keys: list[KeyRecord]
    trusted: set[str]
    announced: dict[str, tuple[int, str]] = field(default_factory=dict)  # key id -> (valid_from_seq, verifier)

    def check(self) -> list[str]:
        """Every key after the first is announced in the chain at its first seq by a verified ``key.rotated`` entry,
        and, when keys are pinned, one of them is the store's: a pinned later key vouches for the earlier ones,
        since the checkpoints it signed commit to the whole tree."""
        problems = []
        for index, key in enumerate(self.keys):
            if key.verifier_key in self.trusted or index == 0:
                continue  # the first key is the anchor: pinned itself, or vouched for by a pinned later key
            announced = self.announced.get(key.key_id)
            if announced is None or announced != (key.valid_from_seq, key.verifier_key):
                problems.append(
                    f"key {key.key_id} (valid from seq {key.valid_from_seq}) is neither trusted nor announced by a "
                    "key.rotated entry signed by its predecessor"
                )
        if self.trusted and not any(k.verifier_key in self.trusted for k in self.keys):
            problems.append("none of the store's keys is a trusted key")
        return problems


def _checkpoint_record(store: ObjectStore, name: str, size: int, origin: str) -> tuple[CheckpointRecord, bytes]:
    data = store.get(name)
    note = decode_checkpoint_object(data, name)
    try:
        parsed = parse_checkpoint(parse_note(note).text)
    except VerificationError as exc:
        raise IntegrityError(f"object {name}: {exc}") from exc
    if parsed.size != size or parsed.origin != origin:
        raise IntegrityError(f"object {name}: holds the checkpoint of {parsed.origin} size {parsed.size}")
    return CheckpointRecord(size, parsed.root, note, ""), data


def _newest_header(store: ObjectStore, plan: SegmentPlan) -> SegmentHeader:
    try:
        header = decode_segment(store.get(plan.segment), plan.segment).header
    except VerificationError as exc:
        raise IntegrityError(str(exc)) from exc
    if not header.keys:
        raise IntegrityError(f"object {plan.segment}: the header lists no key")
    return header


class _Erasures:
    """Every payload the store shows as removed, checked at the end against the decisions that removed them.

    A removal is genuine only when the entry ``by_seq`` names it is a ``retention.disposed`` or
    ``gdpr.erasure_decided`` decision (on ``ledger/retention``) whose seq ranges include the removed seq; otherwise a
    payload object was edited to hide evidence.
    """

    def __init__(self) -> None:
        self.removed_seqs = array("q")
        self.removed_by = array("q")
        self.decisions: dict[int, list[tuple[int, int]]] = {}

    def take(self, entry: EntryRecord, payload: PayloadRecord) -> None:
        if payload.payload is None:
            self.removed_seqs.append(entry.seq)
            self.removed_by.append(-1 if payload.erased_by_seq is None else payload.erased_by_seq)
            return
        if entry.stream != RETENTION_STREAM or entry.type not in (DISPOSED_TYPE, ERASURE_DECIDED_TYPE):
            return
        data = orjson.loads(payload.payload)
        runs = data.get("seq_ranges") if entry.type == DISPOSED_TYPE else data.get("erased")
        ranges = []
        for run in runs if isinstance(runs, list) else []:
            if isinstance(run, list) and len(run) == 2 and all(isinstance(v, int) for v in run):
                ranges.append((run[0], run[1]))
        self.decisions[entry.seq] = ranges

    def first_unexplained(self) -> tuple[int, int] | None:
        for seq, by in zip(self.removed_seqs, self.removed_by, strict=True):
            ranges = self.decisions.get(by)
            if ranges is None or not any(a <= seq <= b for a, b in ranges):
                return seq, by
        return None


class _Recorded:
    """Digests recorded in the chain for this store's objects (the newest record of each name wins).

    Only the events of the store the segments were sealed for count (``ledger/snapshots/<store>`` of the segment
    headers): the same log sealed into another store records that store's objects.
    """

    def __init__(self) -> None:
        self.digests: dict[str, tuple[str, int]] = {}  # name -> (sha256, seq of the recording entry)
        self.stream: str | None = None

    def take(self, entry: EntryRecord, payload: PayloadRecord) -> None:
        if entry.stream != self.stream or payload.payload is None:
            return
        data = orjson.loads(payload.payload)
        if entry.type == SEALED_TYPE:
            for obj in data.get("objects", []):
                self.digests[str(obj.get("name"))] = (str(obj.get("sha256")), entry.seq)
        elif entry.type == REDACTED_TYPE:
            self.digests[str(data.get("object"))] = (str(data.get("sha256")), entry.seq)


# --- the restore ------------------------------------------------------------------------------------


def restore(
    store: ObjectStore,
    database_url: str,
    *,
    origin: str | None = None,
    trusted_keys: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> RestoreReport:
    """Rebuild log ``origin`` (the only one in the store by default) into the fresh database ``database_url``."""
    for text in trusted_keys:
        parse_verifier_key(text)  # a malformed pin is bad input, reported before anything is read
    origin = find_origin(store, origin)
    plans, checkpoint_names, notes = plan_restore(store, origin)
    report = RestoreReport(origin=origin, notes=notes)
    newest = _newest_header(store, plans[-1])
    keys = _Keys(list(newest.keys), set(trusted_keys))
    if not trusted_keys:
        report.notes.append(
            f"trusting key {keys.keys[0].key_id} as found in the store; pin the log's key with --key to rule out a "
            "replaced store"
        )
    checkpoint_records = []
    read_digests: dict[str, str] = {}
    for size, name in checkpoint_names.items():
        record, data = _checkpoint_record(store, name, size, origin)
        checkpoint_records.append(record)
        read_digests[name] = hashlib.sha256(data).hexdigest()
    engine = make_engine(database_url)
    try:
        migrate(engine)
        _load(
            store,
            engine,
            _Target(origin, newest.log_created_at, plans, checkpoint_names, checkpoint_records),
            keys,
            read_digests,
            report,
            progress,
        )
    finally:
        engine.dispose()
    return report


def _object_for(finding: Finding, plans: Sequence[SegmentPlan], checkpoint_names: dict[int, str]) -> str:
    if finding.seq is not None and finding.code in _CHECKPOINT_CODES:
        name = checkpoint_names.get(finding.seq + 1)
        if name is not None:
            return name
    for plan in plans:
        if finding.seq is not None and plan.first <= finding.seq <= plan.last:
            return plan.payloads if finding.code.startswith("payload") else plan.segment
    return plans[-1].segment


@dataclass(frozen=True, slots=True)
class _Target:
    origin: str
    created_at: str
    plans: Sequence[SegmentPlan]
    checkpoint_names: dict[int, str]
    checkpoint_records: Sequence[CheckpointRecord]


def _load(
    store: ObjectStore,
    engine: Any,
    target_log: _Target,
    keys: _Keys,
    read_digests: dict[str, str],
    report: RestoreReport,
    progress: Callable[[int], None] | None,
) -> None:
    origin, plans, checkpoint_names = target_log.origin, target_log.plans, target_log.checkpoint_names
    checkpoint_records = target_log.checkpoint_records
    auditor = Auditor(origin, keys.keys, checkpoint_records, checkpoint_times_known=False)
    tree = CompactRange(0, [])
    recorded = _Recorded()
    erasures = _Erasures()
    stream_next: dict[str, int] = {}
    prev_hash = bytes(32)
    reader = ThreadPoolExecutor(1, thread_name_prefix="ledger-restore-read")

    def fetch(plan: SegmentPlan) -> tuple[SegmentPlan, Segment, list[PayloadRecord], SignatureChecks]:
        """Read and parse a segment, and start checking its signatures: they run while the previous segment is
        being checked and written."""
        segment, payload_rows = _read_segment(store, plan, read_digests)
        return plan, segment, payload_rows, auditor.submit_signatures(segment.entries)

    try:
        active = next((k for k in keys.keys if k.valid_until_seq is None), keys.keys[-1])
        pending = reader.submit(fetch, plans[0])
        with bulk_load(engine, origin, target_log.created_at, active.key_id) as target, _Writer(target) as writer:
            for index in range(len(plans)):
                plan, segment, payload_rows, signatures = pending.result()
                if index + 1 < len(plans):
                    pending = reader.submit(fetch, plans[index + 1])  # read ahead while this one is checked
                header = segment.header
                if header.log != origin:
                    raise IntegrityError(f"object {plan.segment}: belongs to log {header.log}")
                if recorded.stream is None:
                    recorded.stream = snapshot_stream(header.store)
                elif recorded.stream != snapshot_stream(header.store):
                    raise IntegrityError(f"object {plan.segment}: was sealed for store {header.store}, not the others'")
                batch = list(zip(segment.entries, payload_rows, strict=True))
                nodes = tree.append([entry.hash for entry in segment.entries])
                before = len(auditor.report.findings)
                auditor.check_batch(
                    batch,
                    [(((idx + 1) << level) - 1, NodeRecord(level, idx, h)) for level, idx, h in nodes],
                    signatures,
                )
                if len(auditor.report.findings) > before:
                    new = auditor.report.findings[before:]
                    finding = min(new, key=lambda f: (f.seq is None, f.seq or 0))  # the first seq concerned
                    raise IntegrityError(f"object {_object_for(finding, plans, checkpoint_names)}: {finding}")
                loaded = []
                for entry, payload in batch:
                    recorded.take(entry, payload)
                    erasures.take(entry, payload)
                    _take_rotation(entry, payload, keys)
                    stream_next[entry.stream] = entry.stream_seq + 1
                    loaded.append(LoadedEntry(entry, payload, body_subjects(entry.body)))
                writer.add(loaded, nodes)
                prev_hash = segment.entries[-1].hash
                report.entries += len(batch)
                report.segments += 1
                if progress is not None:
                    progress(len(batch))
            writer.wait()
            size = plans[-1].last + 1
            head = LogHead(0, origin, size, prev_hash, tuple(tree.hashes), 0, target_log.created_at, active.key_id)
            finished = auditor.finish(head)
            if finished.findings:
                finding = finished.findings[0]
                raise IntegrityError(f"object {_object_for(finding, plans, checkpoint_names)}: {finding}")
            unexplained = erasures.first_unexplained()
            if unexplained is not None:
                seq, by = unexplained
                owner = next(p for p in plans if p.first <= seq <= p.last)
                raise IntegrityError(
                    f"object {owner.payloads}: seq {seq}: the payload reads as removed by seq {by}, but no disposal or "
                    "erasure decision in the log removed it"
                )
            problems = keys.check()
            if problems:
                raise IntegrityError(f"object {plans[-1].segment}: {problems[0]}")
            report.digests_checked = _check_recorded(recorded, read_digests, plans, report)
            stamp = format_timestamp(datetime.now(UTC))
            checkpoints = [
                CheckpointRecord(c.size, c.root, c.note, _signing_time(c.note, keys.keys, stamp))
                for c in checkpoint_records
            ]
            target.finish(head, keys.keys, stream_next, checkpoints)
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        auditor.close()
    report.size = size
    report.root = tree.root().hex()
    report.checkpoints = len(checkpoint_records)
    report.checkpoint = checkpoint_records[-1].note if checkpoint_records else ""


class _Writer:
    """Loads each checked segment on a thread of its own while the main thread checks the next one.

    One write at a time, in order: :meth:`add` first waits for the previous write (and raises its error).  On
    leaving, an unfinished write is awaited before the transaction is rolled back or committed, so the connection
    is never used by two threads at once.
    """

    def __init__(self, target: BulkLog) -> None:
        self._target = target
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-restore-write")
        self._pending: Future[None] | None = None

    def add(self, loaded: list[LoadedEntry], nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self.wait()
        self._pending = self._pool.submit(self._target.add, loaded, nodes)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.wait()
            elif self._pending is not None:
                futures_wait([self._pending])  # its own error matters less than the one being raised
        finally:
            self._pool.shutdown(wait=True)


def _signing_time(note: str, keys: Sequence[KeyRecord], default: str) -> str:
    """A time at which the key that signed ``note`` was active (its start), so that a later audit of the restored
    database accepts a checkpoint re-signed after a rotation; the signing time itself is not in the store."""
    signed_by = {signature.key_id.hex() for signature in parse_note(note).signatures}
    for key in keys:
        if key.key_id in signed_by:
            return key.valid_from
    return default


def _read_segment(
    store: ObjectStore, plan: SegmentPlan, read_digests: dict[str, str]
) -> tuple[Segment, list[PayloadRecord]]:
    """Fetch and parse a segment and its payloads; the seqs must be exactly the ones its name promises."""
    data = store.get(plan.segment)
    payload_data = store.get(plan.payloads)
    read_digests[plan.segment] = hashlib.sha256(data).hexdigest()
    read_digests[plan.payloads] = hashlib.sha256(payload_data).hexdigest()
    try:
        segment = decode_segment(data, plan.segment)
        payloads = decode_payloads(payload_data, plan.payloads)
    except VerificationError as exc:
        raise IntegrityError(str(exc)) from exc
    header = segment.header
    if (header.first, header.last) != (plan.first, plan.last):
        raise IntegrityError(
            f"object {plan.segment}: holds seqs {header.first}..{header.last}, not the seqs its name gives "
            f"(seq {plan.first}): segments were swapped or renamed"
        )
    for offset, entry in enumerate(segment.entries):
        if entry.seq != plan.first + offset:
            raise IntegrityError(
                f"object {plan.segment}: seq {plan.first + offset} expected, seq {entry.seq} found (reordered)"
            )
    if len(segment.entries) != plan.last - plan.first + 1 or header.count != len(segment.entries):
        raise IntegrityError(f"object {plan.segment}: holds {len(segment.entries)} entries, not {header.count}")
    rows = {record.seq: record for record in payloads.payloads}
    payload_rows = []
    for entry in segment.entries:
        record = rows.get(entry.seq)
        if record is None:
            raise IntegrityError(f"object {plan.payloads}: seq {entry.seq}: no payload and no erasure record")
        payload_rows.append(record)
    return segment, payload_rows


def _take_rotation(entry: EntryRecord, payload: PayloadRecord, keys: _Keys) -> None:
    """A verified ``key.rotated`` entry announces the key that signs from the next seq on."""
    if entry.type != KEY_ROTATED_TYPE or payload.payload is None:
        return
    data = orjson.loads(payload.payload)
    if isinstance(data, dict) and isinstance(data.get("new_key_id"), str):
        keys.announced[data["new_key_id"]] = (entry.seq + 1, str(data.get("verifier_key")))


def _check_recorded(
    recorded: _Recorded, read_digests: dict[str, str], plans: Sequence[SegmentPlan], report: RestoreReport
) -> int:
    """Each object read must have the digest the chain recorded for it (the newest segment is not yet recorded)."""
    checked = 0
    for name, digest in read_digests.items():
        expected = recorded.digests.get(name)
        if expected is None:
            continue
        if expected[0] != digest:
            raise IntegrityError(
                f"object {name}: its SHA-256 differs from the digest recorded in the chain at seq {expected[1]}"
            )
        checked += 1
    unrecorded = [plan.segment for plan in plans if plan.segment not in recorded.digests]
    if unrecorded:
        report.notes.append(
            f"{len(unrecorded)} segment(s) from {unrecorded[0]} on are not yet recorded in the chain (their "
            "snapshot.sealed events come after them); their entries' signatures and the signed checkpoints cover them"
        )
    return checked
