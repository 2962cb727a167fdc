"""Append and query orchestration: the one place that ties the pure core to a store and a key.

``Ledger`` validates and prepares events outside the lock, then, under the log-head lock, assigns seqs,
builds bodies, chains, signs, extends the Merkle tree and writes everything in one transaction.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ledger import merkle
from ledger.canonical import canonical_bytes
from ledger.chain import SALT_BYTES, entry_body, payload_digest_of_bytes, subject_ref
from ledger.dora.evaluation import DORA_PRODUCER, SOURCE_TYPES, evaluation_events, is_reserved
from ledger.errors import ConfigurationError, ConflictError, NotFoundError, ValidationError
from ledger.keys import KeyStore
from ledger.notes import NoteSigner, format_checkpoint, sign_note
from ledger.randomness import random_bytes
from ledger.settings import Settings
from ledger.store.database import make_engine, migrate
from ledger.store.recorder import AppendTransaction, SqlRecorder
from ledger.store.records import (
    CheckpointRecord,
    EntryFilter,
    EntryRecord,
    KeyRecord,
    LogHead,
    NewEntry,
    PayloadRecord,
)
from ledger.verify import Auditor, AuditReport, iter_batches
from schemas.envelope import EventIn, validate_event
from schemas.timestamps import format_timestamp

SYSTEM_PRODUCER = "ledger"
KEY_STREAM = "ledger/keys"
PARALLEL_SIGNING_MIN = 256
_SIGNING_POOL = ThreadPoolExecutor(2, thread_name_prefix="ledger-sign")


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The stored entry for an event and whether this call created it (False: it was already there)."""

    entry: EntryRecord
    created: bool


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An event validated and canonicalised outside the lock."""

    index: int
    event_id: str
    stream: str
    event_type: str
    occurred_at: str
    producer: str
    payload: bytes
    salt: bytes
    payload_digest: str
    subjects: tuple[str, ...]
    expected_stream_seq: int | None


@dataclass(slots=True)
class _Pending:
    """One caller's batch, prepared and waiting for a group commit (``results`` or ``error`` once done)."""

    prepared: list[_Prepared]
    visible: int | None = None  # results returned to the caller: the caller's events, not the ledger's own
    results: list[AppendResult] | None = None
    error: Exception | None = None
    done: bool = False


PreparedBatch = _Pending


@dataclass(slots=True)
class _Plan:
    """What one transaction will write, built batch by batch on the locked head."""

    head: LogHead
    signer: NoteSigner
    tree: merkle.CompactRange
    prev: bytes
    recorded_at: str
    known: dict[str, tuple[EntryRecord, bytes | None]]
    stream_next: dict[str, int]
    new_entries: list[NewEntry] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    touched: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    from_size: int
    to_size: int
    hashes: list[bytes]

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_size": self.from_size,
            "to_size": self.to_size,
            "hashes": [h.hex() for h in self.hashes],
        }


def utc_now() -> str:
    return format_timestamp(datetime.now(UTC))


def _sign_all(signer: NoteSigner, bodies: Sequence[bytes]) -> list[bytes]:
    if len(bodies) < PARALLEL_SIGNING_MIN:
        return [signer.sign(body) for body in bodies]
    half = len(bodies) // 2
    first = _SIGNING_POOL.submit(lambda: [signer.sign(b) for b in bodies[:half]])
    rest = [signer.sign(b) for b in bodies[half:]]
    return first.result() + rest


class Ledger:
    """One log in one store, with the key that signs it."""

    def __init__(self, recorder: SqlRecorder, settings: Settings, origin: str) -> None:
        self.recorder = recorder
        self.settings = settings
        self.origin = origin
        self.key_store = KeyStore(settings)
        self._log_id = recorder.get_log(origin).log_id
        self._signer: NoteSigner | None = None
        self._subject_secret: bytes | None = None
        self._writer_lock = threading.Lock()  # one writing thread per Ledger; others queue (group commit)
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []

    # --- opening and creating ---------------------------------------------------------------------

    @staticmethod
    def open_recorder(settings: Settings, *, run_migrations: bool = True) -> SqlRecorder:
        engine = make_engine(settings.resolved_database_url(), timeout_seconds=settings.database_timeout_seconds)
        if run_migrations:
            migrate(engine)
        return SqlRecorder(engine)

    @classmethod
    def open(cls, settings: Settings, origin: str | None = None, *, run_migrations: bool = True) -> Ledger:
        recorder = cls.open_recorder(settings, run_migrations=run_migrations)
        return cls(recorder, settings, cls._pick_origin(recorder, origin or settings.log_origin))

    @staticmethod
    def _pick_origin(recorder: SqlRecorder, origin: str | None) -> str:
        if origin:
            return origin
        heads = recorder.list_logs()
        if not heads:
            raise ConfigurationError("no log exists yet: run `ledger init --origin NAME` first")
        if len(heads) > 1:
            names = ", ".join(h.origin for h in heads)
            raise ConfigurationError(f"several logs exist ({names}): choose one with LEDGER_LOG_ORIGIN")
        return heads[0].origin

    @classmethod
    def create(cls, settings: Settings, origin: str, *, signer: NoteSigner | None = None) -> Ledger:
        """Create a log with a new Ed25519 key (or the given one) and its subject secret."""
        recorder = cls.open_recorder(settings)
        if any(head.origin == origin for head in recorder.list_logs()):
            raise ConflictError(f"log {origin!r} already exists")
        key_store = KeyStore(settings)
        if signer is None:
            if settings.signing_key is not None:
                signer = key_store.signer(origin, _key_id_of(settings))
            else:
                signer = NoteSigner.generate(origin)
                key_store.save_signer(signer)
        if signer.name != origin:
            raise ConfigurationError(f"the signing key is named {signer.name!r}, not the log origin {origin!r}")
        key_store.subject_secret(create=True)
        now = utc_now()
        key = KeyRecord(signer.key_id.hex(), signer.verifier_key(), 0, None, now, None)
        recorder.create_log(origin, key, now)
        ledger = cls(recorder, settings, origin)
        ledger._signer = signer
        return ledger

    # --- keys -------------------------------------------------------------------------------------

    def keys(self) -> list[KeyRecord]:
        """Every published key, active key first, then the older ones newest first."""
        keys = self.recorder.keys(self._log_id)
        return sorted(keys, key=lambda k: (k.valid_until_seq is not None, -k.valid_from_seq))

    def active_key(self) -> KeyRecord:
        return self.keys()[0]

    def signer(self) -> NoteSigner:
        """The private key that signs new entries (the log's active key)."""
        return self._signer_for(self.head().active_key_id)

    def _signer_for(self, key_id: str) -> NoteSigner:
        """Cached signer; reloaded when another process has rotated the key (seen on the locked head)."""
        if self._signer is None or self._signer.key_id.hex() != key_id:
            self._signer = self.key_store.signer(self.origin, key_id)
        return self._signer

    def _derived_id_key(self) -> bytes:
        """Keys the ids of events the ledger derives (a purpose-specific key from the subject secret)."""
        return hashlib.sha256(b"ledger derived event ids\n" + self.subject_secret()).digest()

    def subject_secret(self) -> bytes:
        if self._subject_secret is None:
            self._subject_secret = self.key_store.subject_secret()
        return self._subject_secret

    def rotate_key(self, reason: str, actor: str = SYSTEM_PRODUCER) -> KeyRecord:
        """Add a new signing key; the old key signs the ``key.rotated`` event that announces it."""
        new_signer = NoteSigner.generate(self.origin)
        self.key_store.save_signer(new_signer)
        now = utc_now()
        payload = {
            "previous_key_id": "",
            "new_key_id": new_signer.key_id.hex(),
            "verifier_key": new_signer.verifier_key(),
            "reason": reason,
            "actor": actor,
        }
        event_id = _new_event_id()
        event = {
            "id": event_id,
            "stream": KEY_STREAM,
            "type": "key.rotated",
            "occurred_at": now,
            "payload": payload,
        }
        with self._writer_lock, self.recorder.append_transaction(self._log_id, [event_id], [KEY_STREAM]) as txn:
            plan = self._start_plan(txn, [event_id])
            old_signer = plan.signer
            payload["previous_key_id"] = old_signer.key_id.hex()
            prepared = [
                self._prepare(0, validate_event(event, max_payload_bytes=self.settings.max_payload_bytes), actor)
            ]
            results = self._plan(plan, prepared)
            self._finish_plan(txn, plan, commit=False, checkpoint=False)
            handover = results[0].entry.seq + 1
            txn.close_key(old_signer.key_id.hex(), handover, now)
            new_key = KeyRecord(new_signer.key_id.hex(), new_signer.verifier_key(), handover, None, now, None)
            txn.add_key(new_key)
            txn.set_active_key(new_key.key_id)
            txn.add_checkpoint(self._checkpoint_record(txn.head, [new_signer, old_signer]))
        self._signer = new_signer
        return new_key

    # --- appending --------------------------------------------------------------------------------

    def append(self, event: EventIn | Mapping[str, Any], producer: str) -> AppendResult:
        return self.append_batch([event], producer)[0]

    def append_batch(self, events: Sequence[EventIn | Mapping[str, Any]], producer: str) -> list[AppendResult]:
        """Append events in one transaction: all are stored, or none (the error names the bad index).

        Concurrent callers in this process share transactions (group commit): while one thread writes,
        the others queue, and the next writer takes every queued batch into one transaction and one
        durable commit.  Each batch is still all-or-nothing: a batch that conflicts fails alone.
        """
        if not events:
            return []
        pending = self._pending_batch(events, producer)
        self._run_pending([pending])
        if pending.error is not None:
            raise pending.error
        assert pending.results is not None
        return pending.results

    def prepare_batch(self, events: Sequence[EventIn | Mapping[str, Any]], producer: str) -> PreparedBatch:
        """Validate and canonicalise a batch without touching the store (no lock, no I/O).

        With :meth:`commit_prepared` this lets a caller that gathers requests itself (the HTTP API's event
        loop) prepare each request as it arrives and commit many in one call.
        """
        return self._pending_batch(events, producer)

    def commit_prepared(self, batches: Sequence[PreparedBatch]) -> None:
        """Append prepared batches, sharing transactions; each gets its ``results`` or its own ``error``."""
        self._run_pending(list(batches))

    def commit_prepared_with(
        self,
        batches: Sequence[PreparedBatch],
        before_write: Callable[[AppendTransaction, Sequence[PreparedBatch]], None],
    ) -> None:
        """Commit exactly these batches in one transaction together with the caller's own writes.

        ``before_write`` runs inside the transaction after every batch was planned (a batch that conflicts
        has its ``error`` set and will store nothing), so a consumer can record its offsets and dead letters
        atomically with the entries: a crash before the commit loses and stores nothing, after it all.
        """
        with self._writer_lock:
            with self._queue_lock:
                group, self._queue = [*self._queue, *batches], []
            failure = self._commit_group(group, before_write=lambda txn: before_write(txn, batches))
        if failure is not None:
            raise failure

    def _pending_batch(self, events: Sequence[EventIn | Mapping[str, Any]], producer: str) -> _Pending:
        if not events:
            raise ValidationError("a batch holds at least one event")
        if len(events) > self.settings.max_batch_events:
            raise ValidationError(
                f"batch of {len(events)} events exceeds the limit of {self.settings.max_batch_events}"
            )
        validated = [self._validated(i, e) for i, e in enumerate(events)]
        prepared = [self._prepare(i, event, producer) for i, event in enumerate(validated)]
        for event in validated:  # the ledger's own evaluation beside each DORA classification (same transaction)
            if event.type not in SOURCE_TYPES:
                continue
            for extra in evaluation_events(event, self._derived_id_key()):
                derived = validate_event(extra, max_payload_bytes=self.settings.max_payload_bytes)
                prepared.append(self._prepare(len(prepared), derived, DORA_PRODUCER))
        return _Pending(prepared, visible=len(validated))

    def _run_pending(self, pendings: Sequence[_Pending]) -> None:
        """Queue batches; whoever holds the writer lock next commits everything queued (group commit)."""
        if not pendings:
            return
        with self._queue_lock:
            self._queue.extend(pendings)
        with self._writer_lock:
            if not all(p.done for p in pendings):
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit_group(group)

    def _commit_group(
        self, group: list[_Pending], before_write: Callable[[AppendTransaction], None] | None = None
    ) -> Exception | None:
        """Plan every queued batch on one locked head and write them in one transaction.

        Returns the exception that made the whole transaction fail (then every batch carries it), else None.
        """
        prepared = [item for pending in group for item in pending.prepared]
        try:
            event_ids = sorted({p.event_id for p in prepared})
            stream_names = sorted({p.stream for p in prepared})
            with self.recorder.append_transaction(self._log_id, event_ids, stream_names) as txn:
                plan = self._start_plan(txn, event_ids)
                for pending in group:
                    try:
                        pending.results = self._plan(plan, pending.prepared)[: pending.visible]
                    except (ConflictError, ValidationError) as exc:
                        pending.error = exc
                if before_write is not None:
                    before_write(txn)
                self._finish_plan(txn, plan, commit=True)
        except Exception as exc:
            for pending in group:
                if pending.error is None:
                    pending.error, pending.results = exc, None
            return exc
        finally:
            for pending in group:
                pending.done = True
        return None

    def _validated(self, index: int, event: EventIn | Mapping[str, Any]) -> EventIn:
        if isinstance(event, EventIn):
            validated = event
        else:
            try:
                validated = validate_event(event, max_payload_bytes=self.settings.max_payload_bytes)
            except ValidationError as exc:
                raise ValidationError(f"event {index}: {exc}", field=exc.field, index=index) from exc
        if is_reserved(validated.type):
            raise ValidationError(
                f"event {index}: types dora.* are recorded by the ledger itself", field="type", index=index
            )
        return validated

    def _prepare(self, index: int, event: EventIn, producer: str) -> _Prepared:
        payload = canonical_bytes(event.payload)
        salt = random_bytes(SALT_BYTES)
        secret = self.subject_secret() if event.subjects else b""
        refs = {subject_ref(secret, identifier) for identifier in event.subjects}
        refs.update(event.subject_refs)
        return _Prepared(
            index=index,
            event_id=event.id,
            stream=event.stream,
            event_type=event.type,
            occurred_at=format_timestamp(event.occurred_at),
            producer=producer,
            payload=payload,
            salt=salt,
            payload_digest=payload_digest_of_bytes(salt, payload),
            subjects=tuple(sorted(refs)),
            expected_stream_seq=event.expected_stream_seq,
        )

    def _start_plan(self, txn: AppendTransaction, event_ids: Sequence[str]) -> _Plan:
        head = txn.head
        existing = txn.existing_events(event_ids)
        payloads = txn.payloads([e.seq for e in existing.values()]) if existing else {}
        known = {eid: (entry, _payload_bytes(payloads.get(entry.seq))) for eid, entry in existing.items()}
        return _Plan(
            head=head,
            signer=self._signer_for(head.active_key_id),
            tree=merkle.CompactRange(head.size, list(head.frontier)),
            prev=head.head_hash,
            recorded_at=utc_now(),
            known=known,
            stream_next=txn.prefetched_stream_heads(),
        )

    def _plan(self, plan: _Plan, prepared: Sequence[_Prepared]) -> list[AppendResult]:
        """Add one batch to the plan, or raise without changing the plan (the batch is all-or-nothing)."""
        results: list[AppendResult | None] = [None] * len(prepared)
        fresh: list[_Prepared] = []
        first_of: dict[str, _Prepared] = {}
        for item in prepared:
            known = plan.known.get(item.event_id)
            if known is not None:
                _check_same_event(item, known[0], known[1])
                results[item.index] = AppendResult(known[0], False)
            elif item.event_id in first_of:
                _check_same_prepared(item, first_of[item.event_id])
            else:
                first_of[item.event_id] = item
                fresh.append(item)
        stream_next: dict[str, int] = {}
        entries_meta: list[tuple[_Prepared, int, int]] = []
        for offset, item in enumerate(fresh):
            stream_seq = stream_next.get(item.stream, plan.stream_next.get(item.stream, 0))
            if item.expected_stream_seq is not None and item.expected_stream_seq != stream_seq:
                raise ConflictError(
                    f"event {item.index}: stream is at stream_seq {stream_seq}, "
                    f"expected_stream_seq was {item.expected_stream_seq}",
                    index=item.index,
                )
            stream_next[item.stream] = stream_seq + 1
            entries_meta.append((item, plan.tree.size + offset, stream_seq))
        sealed = self._seal(entries_meta, plan.prev, plan.recorded_at, plan.signer)
        if sealed:
            plan.nodes.extend(plan.tree.append([n.entry.hash for n in sealed]))
            plan.prev = sealed[-1].entry.hash
            plan.new_entries.extend(sealed)
        for (item, _seq, _stream_seq), new in zip(entries_meta, sealed, strict=True):
            plan.known[item.event_id] = (new.entry, item.payload)
            results[item.index] = AppendResult(new.entry, True)
        for item in prepared:
            if results[item.index] is None:
                results[item.index] = AppendResult(plan.known[item.event_id][0], False)
        plan.stream_next.update(stream_next)
        plan.touched.update(stream_next)
        return [r for r in results if r is not None]

    def _finish_plan(self, txn: AppendTransaction, plan: _Plan, *, commit: bool, checkpoint: bool = True) -> None:
        """Write the planned entries, tree nodes, stream heads and head, with a checkpoint when one is due."""
        if not plan.new_entries:
            return
        head = plan.head
        new_head = replace(
            head,
            size=plan.tree.size,
            head_hash=plan.prev,
            frontier=tuple(plan.tree.hashes),
            appends_since_checkpoint=head.appends_since_checkpoint + 1,
        )
        record = None
        if checkpoint and new_head.appends_since_checkpoint >= self.settings.checkpoint_interval:
            record = self._checkpoint_record(new_head, [plan.signer], root=plan.tree.root())
            new_head = replace(new_head, appends_since_checkpoint=0)
        txn.write(plan.new_entries, plan.nodes, plan.touched, new_head, record, commit=commit)

    def _seal(
        self,
        entries_meta: Sequence[tuple[_Prepared, int, int]],
        prev: bytes,
        recorded_at: str,
        signer: NoteSigner,
    ) -> list[NewEntry]:
        bodies: list[bytes] = []
        hashes: list[bytes] = []
        for item, seq, stream_seq in entries_meta:
            body = entry_body(
                log=self.origin,
                seq=seq,
                prev=prev,
                event_id=item.event_id,
                stream=item.stream,
                stream_seq=stream_seq,
                event_type=item.event_type,
                occurred_at=item.occurred_at,
                recorded_at=recorded_at,
                producer=item.producer,
                payload_digest=item.payload_digest,
                subjects=item.subjects,
            )
            prev = merkle.leaf_hash(body)
            bodies.append(body)
            hashes.append(prev)
        signatures = _sign_all(signer, bodies)
        key_id = signer.key_id.hex()
        sealed = []
        for (item, seq, stream_seq), body, digest, signature in zip(
            entries_meta, bodies, hashes, signatures, strict=True
        ):
            record = EntryRecord(
                seq=seq,
                event_id=item.event_id,
                stream=item.stream,
                stream_seq=stream_seq,
                type=item.event_type,
                producer=item.producer,
                occurred_at=item.occurred_at,
                recorded_at=recorded_at,
                body=body,
                hash=digest,
                signature=signature,
                key_id=key_id,
            )
            sealed.append(NewEntry(record, item.salt, item.payload, item.subjects))
        return sealed

    def _checkpoint_record(
        self, head: LogHead, signers: Sequence[NoteSigner], root: bytes | None = None
    ) -> CheckpointRecord:
        if root is None:
            root = merkle.CompactRange(head.size, list(head.frontier)).root()
        note = sign_note(format_checkpoint(self.origin, head.size, root), list(signers))
        return CheckpointRecord(head.size, root, note, utc_now())

    # --- reading ----------------------------------------------------------------------------------

    @property
    def log_id(self) -> int:
        """The log's key in the store (fixed for the life of the log; no I/O)."""
        return self._log_id

    def head(self) -> LogHead:
        return self.recorder.get_log(self.origin)

    def entries(self, filters: EntryFilter | None = None) -> Iterator[EntryRecord]:
        return self.recorder.iter_entries(self._log_id, filters or EntryFilter())

    def entry(self, seq: int) -> EntryRecord:
        return self.recorder.entry_by_seq(self._log_id, seq)

    def entry_by_event_id(self, event_id: str) -> EntryRecord:
        return self.recorder.entry_by_event_id(self._log_id, event_id)

    def payload(self, seq: int) -> PayloadRecord | None:
        return self.recorder.payloads(self._log_id, [seq]).get(seq)

    # --- checkpoints and proofs -------------------------------------------------------------------

    def checkpoint(self, size: int | None = None) -> str:
        """The signed checkpoint note at ``size`` (default: the current size), signing one if none is stored."""
        head = self.head()
        if size is None:
            size = head.size
        if size < 0 or size > head.size:
            raise NotFoundError(f"the log has {head.size} entries; no checkpoint of size {size}")
        stored = self.recorder.checkpoints(self._log_id, size)
        if stored:
            return stored[-1].note
        root = self.root(size)
        record = CheckpointRecord(
            size, root, sign_note(format_checkpoint(self.origin, size, root), [self.signer()]), utc_now()
        )
        self.recorder.add_checkpoint(self._log_id, record)
        return record.note

    def cosigned_checkpoint(self, size: int | None = None) -> str:
        """:meth:`checkpoint` with every stored witness cosignature appended (C2SP tlog-cosignature lines)."""
        from ledger.witnessing import cosigned_checkpoint

        return cosigned_checkpoint(self, size)

    def root(self, size: int) -> bytes:
        """MTH of the first ``size`` entries, from O(log n) stored subtree hashes."""
        if size == 0:
            return merkle.EMPTY_ROOT
        return self._range_hashes([(0, size)])[0]

    def _range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = merkle.proof_nodes(ranges)
        nodes = self._stored_nodes(wanted)
        return [merkle.range_hash_from_nodes(start, end, nodes) for start, end in ranges]

    def _stored_nodes(
        self, wanted: set[tuple[int, int]], size: int | None = None, field: str = "size"
    ) -> dict[tuple[int, int], bytes]:
        """The stored hashes of ``wanted``, read with the log's size in one round trip; with ``size``, a tree size
        the caller asked for, which must not exceed the log's."""
        current, nodes = self.recorder.tree_nodes(self._log_id, wanted)
        if size is not None and size > current:
            raise ValidationError(f"tree size {size} is outside 1..{current}", field=field)
        missing = wanted - nodes.keys()
        if missing:
            raise NotFoundError(f"stored tree nodes are missing: {sorted(missing)[:3]}")
        return nodes

    def _tree_size(self, size: int | None, field: str = "size") -> int:
        """The tree size asked for (checked against the log's size when the nodes are read), or the log's."""
        if size is None:
            return self.head().size
        if size < 1:
            raise ValidationError(f"tree size {size} is outside 1..{self.head().size}", field=field)
        return size

    def inclusion_proof(self, seq: int, size: int | None = None) -> InclusionProof:
        return self.inclusion_proofs([seq], size)[0]

    def inclusion_proofs(self, seqs: Sequence[int], size: int | None = None) -> list[InclusionProof]:
        """Inclusion proofs of several entries in one tree, from one read of the log's size and the stored nodes
        they need (the leaves among them)."""
        tree_size = self._tree_size(size)
        for seq in seqs:
            if seq < 0 or seq >= tree_size:
                raise ValidationError(f"seq {seq} is not in a tree of size {tree_size}", field="seq")
        paths = [merkle.inclusion_ranges(seq, tree_size) for seq in seqs]
        wanted = merkle.proof_nodes(itertools.chain.from_iterable(paths)) | {(0, seq) for seq in seqs}
        nodes = self._stored_nodes(wanted, size)
        return [
            InclusionProof(
                seq,
                tree_size,
                nodes[(0, seq)],
                [merkle.range_hash_from_nodes(start, end, nodes) for start, end in path],
            )
            for seq, path in zip(seqs, paths, strict=True)
        ]

    def consistency_proof(self, from_size: int, to_size: int | None = None) -> ConsistencyProof:
        new_size = self._tree_size(to_size)
        if from_size < 1 or from_size > new_size:
            raise ValidationError(f"from_size {from_size} is outside 1..{new_size}", field="from_size")
        ranges = merkle.consistency_ranges(from_size, new_size)
        nodes = self._stored_nodes(merkle.proof_nodes(ranges), to_size)
        return ConsistencyProof(from_size, new_size, [merkle.range_hash_from_nodes(s, e, nodes) for s, e in ranges])

    # --- audit ------------------------------------------------------------------------------------

    def audit(self, batch_size: int = 4000, progress: Any = None) -> AuditReport:
        """Check everything stored for the log and report every finding (never raises on bad evidence)."""
        head = self.head()
        with Auditor(self.origin, self.recorder.keys(self._log_id), self.recorder.checkpoints(self._log_id)) as auditor:
            nodes = _Peekable(self.recorder.iter_nodes(self._log_id))
            subjects = _Peekable(self.recorder.iter_subjects(self._log_id))
            for batch in iter_batches(self.recorder.iter_entries_with_payloads(self._log_id), batch_size):
                last = batch[-1][0].seq
                auditor.check_batch(
                    batch,
                    nodes.take_while(lambda item, last=last: item[0] <= last),
                    stored_subjects=subjects.take_while(lambda item, last=last: item[0] <= last),
                )
                if progress is not None:
                    progress(len(batch))
            # Nodes and index rows beyond the audited entries: those of appends committed since the entries were
            # read are not checked; the others (below the head read first, or at or beyond the head read after
            # them) belong to no entry.
            leftover_nodes, leftover_subjects = list(nodes.rest()), list(subjects.rest())
            later = self.head().size if leftover_nodes or leftover_subjects else head.size
            auditor.check_leftover_nodes(leftover_nodes, unchecked=range(head.size, later))
            auditor.check_leftover_subjects(leftover_subjects, unchecked=range(head.size, later))
            return auditor.finish(head, self.recorder.stream_next_seqs(self._log_id))


class _Peekable:
    def __init__(self, iterator: Iterator[Any]) -> None:
        self._iterator = iterator
        self._head: list[Any] = []

    def take_while(self, predicate: Any) -> list[Any]:
        taken: list[Any] = []
        while True:
            if not self._head:
                try:
                    self._head.append(next(self._iterator))
                except StopIteration:
                    return taken
            if not predicate(self._head[0]):
                return taken
            taken.append(self._head.pop())

    def rest(self) -> Iterator[Any]:
        yield from self._head
        yield from self._iterator


def _payload_bytes(record: PayloadRecord | None) -> bytes | None:
    return None if record is None else record.payload


def _check_same_event(item: _Prepared, stored: EntryRecord, payload: bytes | None) -> None:
    """A re-sent event must be the same event; an erased payload cannot be compared and is not held against it."""
    same = (
        stored.stream == item.stream
        and stored.type == item.event_type
        and stored.producer == item.producer
        and stored.occurred_at == item.occurred_at
        and (payload is None or payload == item.payload)
    )
    if not same:
        raise ConflictError(
            f"event {item.index}: event id {item.event_id} is already stored with different content",
            index=item.index,
        )


def _check_same_prepared(item: _Prepared, first: _Prepared) -> None:
    if (item.stream, item.event_type, item.occurred_at, item.payload) != (
        first.stream,
        first.event_type,
        first.occurred_at,
        first.payload,
    ):
        raise ConflictError(
            f"event {item.index}: event id {item.event_id} appears twice in the batch with different content",
            index=item.index,
        )


def _new_event_id() -> str:
    return str(uuid.uuid4())


def _key_id_of(settings: Settings) -> str:
    assert settings.signing_key is not None
    return NoteSigner.from_private_key(settings.signing_key.get_secret_value().strip()).key_id.hex()
