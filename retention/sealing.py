"""The sealer: writes the log's entries to an object store in segments and records every object in the chain.

A seal of the entries ``first..last`` writes the segment, its payload object and the signed checkpoint of
size ``last + 1`` (formats in :mod:`retention.segments`), reads each object's protection back from the store,
then appends one ``snapshot.sealed`` event on ``ledger/snapshots/<store name>`` naming every object with its
SHA-256 and size.  That event lies in the next segment, so every segment but the newest is also covered by a
digest in the signed chain.

Segments hold ``every_entries`` entries; a shorter segment is sealed when ``every_seconds`` have passed since
the last seal and entries other than the sealer's own events are waiting.  Sealing is idempotent and resumes
after a crash: progress is the newest ``snapshot.sealed`` event, object bytes are deterministic, and an object
already present with the same digest is taken as written (a different digest is an integrity error naming
it).  One sealer per log and store works at a time (a database lock).

WORM: with ``worm`` on, segment and checkpoint objects carry a retention date (the latest end of retention of
the entries they hold, from the retention policy) and, while a legal hold covers any of their entries, a legal
hold.  Payload objects carry neither: erasure must be able to rewrite them, and their integrity rests on the
payload digests inside the signed bodies.  When a payload is disposed of or erased after its seal, the payload
object is rewritten without it and a ``snapshot.payloads_redacted`` event records the new digest.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger.errors import ConflictError, IntegrityError, LedgerError, NotFoundError, StorageUnavailable
from ledger.service import Ledger
from ledger.store.locks import try_exclusive
from ledger.store.records import EntryFilter, EntryRecord, PayloadRecord
from ledger.store.retention import erased_after, last_entry_seq, last_entry_seq_of_type
from retention.disposal import INCIDENT_CLOSED_TYPE, _case_ids, _incident_closures, _incident_id
from retention.holds import HOLD_STREAM, load_holds
from retention.policy import (
    DEFAULT_RETENTION_WORDING,
    INCIDENT_STREAM_PREFIX,
    LegalHold,
    RetentionPolicy,
    add_years,
    holds_covering,
)
from retention.segments import (
    SEQ_DIGITS,
    SegmentHeader,
    checkpoint_name,
    encode_payloads,
    encode_segment,
    keys_of,
    parse_range_name,
    payloads_name,
    segment_name,
)
from retention.stores.base import ObjectStore, StoredObject, WormReport
from schemas.timestamps import format_timestamp, parse_timestamp

__all__ = [
    "REDACTED_TYPE",
    "SEALED_TYPE",
    "SNAPSHOT_STREAM_PREFIX",
    "SealConfig",
    "SealRecord",
    "SealedObject",
    "Sealer",
    "load_seal_records",
    "snapshot_stream",
]

log = logging.getLogger("ledger.sealer")

SNAPSHOT_STREAM_PREFIX = "ledger/snapshots/"
SEALED_TYPE = "snapshot.sealed"
REDACTED_TYPE = "snapshot.payloads_redacted"
EXTENDED_TYPE = "snapshot.retention_extended"
SEALER_PRODUCER = "ledger-sealer"
_ID_NAMESPACE = uuid.UUID("6c0b7a52-8f3e-4d8e-9a0c-5e1f2b3c4d5e")


def snapshot_stream(store_name: str) -> str:
    return SNAPSHOT_STREAM_PREFIX + store_name


@dataclass(frozen=True, slots=True)
class SealConfig:
    every_entries: int = 10_000
    every_seconds: float = 900.0
    worm: bool = True
    policy: RetentionPolicy = field(default_factory=RetentionPolicy)


@dataclass(frozen=True, slots=True)
class SealedObject:
    name: str
    role: str  # segment, payloads or checkpoint
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "sha256": self.sha256, "size": self.size}


@dataclass(slots=True)
class SealRecord:
    """One seal as recorded in the chain, with the newest digest recorded for each of its objects."""

    event_seq: int
    first: int
    last: int
    root: str
    objects: dict[str, SealedObject]
    retain_until: str | None
    legal_hold: bool

    def object(self, role: str) -> SealedObject:
        return next(o for o in self.objects.values() if o.role == role)


def _payload_dict(ledger: Ledger, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
    found = ledger.recorder.payloads(ledger.log_id, seqs)
    result: dict[int, dict[str, Any]] = {}
    for seq, record in found.items():
        if record.payload is not None:
            value = orjson.loads(record.payload)
            if isinstance(value, dict):
                result[seq] = value
    return result


def load_seal_records(ledger: Ledger, store_name: str) -> list[SealRecord]:
    """Every seal of ``store_name`` recorded in the chain, in seq order, redactions applied."""
    stream_entries = list(ledger.entries(EntryFilter(stream=snapshot_stream(store_name))))
    payloads = _payload_dict(ledger, [e.seq for e in stream_entries])
    records: list[SealRecord] = []
    by_name: dict[str, SealRecord] = {}
    for entry in stream_entries:
        data = payloads.get(entry.seq, {})
        if entry.type == SEALED_TYPE:
            objects = {
                o["name"]: SealedObject(o["name"], o["role"], o["sha256"], int(o["size"])) for o in data["objects"]
            }
            record = SealRecord(
                entry.seq,
                int(data["first"]),
                int(data["last"]),
                str(data["root"]),
                objects,
                data.get("retain_until"),
                bool(data.get("legal_hold")),
            )
            records.append(record)
            for name in objects:
                by_name[name] = record
        elif entry.type == EXTENDED_TYPE:
            owner = by_name.get(str(data.get("object")))
            if owner is not None:
                owner.retain_until = data.get("retain_until")
        elif entry.type == REDACTED_TYPE:
            name = data.get("object")
            owner = by_name.get(str(name))
            if owner is not None:
                old = owner.objects[str(name)]
                owner.objects[str(name)] = SealedObject(old.name, old.role, str(data["sha256"]), int(data["size"]))
    return records


@dataclass(slots=True)
class SealReport:
    """What one :meth:`Sealer.run_once` did."""

    sealed: list[SealRecord] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    holds_changed: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    busy: bool = False


class Sealer:
    """Seals one log into one object store under the name ``store_name``."""

    def __init__(
        self, ledger: Ledger, store: ObjectStore, store_name: str = "primary", config: SealConfig | None = None
    ):
        self.ledger = ledger
        self.store = store
        self.store_name = store_name
        self.stream = snapshot_stream(store_name)
        self.config = config or SealConfig()
        self._worm: WormReport | None = None
        self._holds_seen: int | None = -2  # seq of the newest hold event applied (-2: never applied)
        self._holds_supported = True
        self._redacted_through = -1
        self._closures_seen = -1  # seq of the newest incident.closed event whose retention was applied

    # --- the cycle ------------------------------------------------------------------------------------

    def run_once(self, *, force: bool = False, now: datetime | None = None) -> SealReport:
        """Seal what is due (``force``: everything unsealed), redact erased payloads, apply holds."""
        return self._cycle(seal_due=True, force=force, now=now)

    def catch_up(self, *, now: datetime | None = None) -> SealReport:
        """Rewrite payload objects after erasure and bring the store's legal holds and retention dates in line.

        When payload objects were rewritten, everything unsealed is sealed at once, so that the redaction
        events (and the disposal or erasure decision) are themselves in the store and a restore can check the
        rewritten objects against them.
        """
        return self._cycle(seal_due=False, force=True, now=now)

    def _cycle(self, *, seal_due: bool, force: bool, now: datetime | None) -> SealReport:
        report = SealReport()
        with try_exclusive(self.ledger.recorder.engine, f"seal:{self.ledger.origin}:{self.store_name}") as held:
            if not held:
                report.busy = True
                report.notes.append("another sealer holds the lock for this log and store; nothing done")
                return report
            records = load_seal_records(self.ledger, self.store_name)
            moment = now or datetime.now(UTC)
            if seal_due:  # our own snapshot events appended below wait for the next cycle
                self._seal_all(records, self.ledger.head().size, report, force=force, now=moment)
            report.redacted = self._redact(records)
            report.holds_changed = self._apply_holds(records, report)
            report.extended = self._extend_retention(records, moment)
            if not seal_due and report.redacted:
                size = self.ledger.head().size
                self._seal_all(records, size, report, force=True, now=moment, include_own=True)
        return report

    def _seal_all(
        self,
        records: list[SealRecord],
        size: int,
        report: SealReport,
        *,
        force: bool,
        now: datetime,
        include_own: bool = False,
    ) -> None:
        while segment := self._next_segment(records, size, force=force, now=now, include_own=include_own):
            record = self._seal(segment[0], segment[1], now)
            records.append(record)
            report.sealed.append(record)

    def run_forever(self, stop: threading.Event, poll_seconds: float = 5.0) -> None:
        """Seal until ``stop`` is set; a store or database outage delays sealing, never appends."""
        failures = 0
        while not stop.is_set():
            try:
                report = self.run_once()
                failures = 0
                for record in report.sealed:
                    log.info("sealed seqs %d..%d into %s", record.first, record.last, self.store_name)
            except LedgerError as exc:
                failures += 1
                log.warning("sealing delayed: %s", exc)
            except Exception as exc:  # never let a bug end the server's sealing thread silently
                failures += 1
                log.exception("sealing failed unexpectedly (%s)", type(exc).__name__)
            stop.wait(min(poll_seconds * (2 ** min(failures, 5)), 300.0))

    # --- what is due ----------------------------------------------------------------------------------

    def _next_segment(
        self, records: list[SealRecord], size: int, *, force: bool, now: datetime, include_own: bool = False
    ) -> tuple[int, int] | None:
        first = records[-1].last + 1 if records else 0
        if size - first <= 0:
            return None
        interrupted = self._interrupted_seal(first, size)
        if interrupted is not None:
            return interrupted  # finish the seal a crash interrupted, over the same range, whatever came since
        if size - first >= self.config.every_entries:
            return first, first + self.config.every_entries - 1
        if not force:
            since = self._last_seal_time(records)
            if (now - since).total_seconds() < self.config.every_seconds:
                return None
        if not include_own and not self._waiting_beyond_own_events(first):
            return None  # only our own snapshot events are waiting: sealing them would never end
        return first, size - 1

    def _interrupted_seal(self, first: int, size: int) -> tuple[int, int] | None:
        """A segment object from ``first`` already in the store but not recorded: a seal cut short by a crash."""
        prefix = segment_name(self.ledger.origin, first, first)[:-SEQ_DIGITS]
        for stored in self.store.list(prefix):
            start, last = parse_range_name(stored.name)
            if start == first and last < size:
                return first, last
        return None

    def _last_seal_time(self, records: list[SealRecord]) -> datetime:
        if records:
            return parse_timestamp(self.ledger.entry(records[-1].event_seq).recorded_at, field="recorded_at")
        return parse_timestamp(self.ledger.head().created_at, field="created_at")

    def _waiting_beyond_own_events(self, first: int) -> bool:
        for entry in self.ledger.entries(EntryFilter(from_seq=first)):
            if not entry.stream.startswith(SNAPSHOT_STREAM_PREFIX):
                return True
        return False

    # --- one seal -------------------------------------------------------------------------------------

    def _read(self, first: int, last: int) -> tuple[list[EntryRecord], list[PayloadRecord]]:
        entries: list[EntryRecord] = []
        payloads: list[PayloadRecord] = []
        for entry, payload in self.ledger.recorder.iter_entries_with_payloads(self.ledger.log_id, first):
            if entry.seq > last:
                break
            if entry.seq != first + len(entries):
                raise IntegrityError(f"seq {first + len(entries)}: entry missing from the database while sealing")
            if payload is None:
                raise IntegrityError(f"seq {entry.seq}: payload row missing from the database while sealing")
            entries.append(entry)
            payloads.append(payload)
        if len(entries) != last - first + 1:
            raise IntegrityError(f"seq {first + len(entries)}: entry missing from the database while sealing")
        return entries, payloads

    def _seal(self, first: int, last: int, now: datetime) -> SealRecord:
        ledger = self.ledger
        entries, payloads = self._read(first, last)
        tree_size = last + 1
        note = ledger.checkpoint(tree_size)
        root = ledger.root(tree_size)
        head = ledger.head()
        header = SegmentHeader(
            log=ledger.origin,
            store=self.store_name,
            first=first,
            last=last,
            count=len(entries),
            log_created_at=head.created_at,
            keys=keys_of(k for k in ledger.recorder.keys(ledger.log_id) if k.valid_from_seq <= last),
        )
        retain_until = self._retain_until(entries, now) if self.config.worm else None
        retain_text = None if retain_until is None else format_timestamp(retain_until)
        hold = self.config.worm and self._segment_held(entries, payloads)
        written = [
            self._put(
                segment_name(ledger.origin, first, last), "segment", encode_segment(header, entries), retain_until, hold
            ),
            self._put(
                payloads_name(ledger.origin, first, last),
                "payloads",
                encode_payloads(ledger.origin, first, last, payloads),
                None,
                False,
                replaceable=True,
            ),
            self._put(
                checkpoint_name(ledger.origin, tree_size), "checkpoint", note.encode("utf-8"), retain_until, hold
            ),
        ]
        objects = [obj for obj, _stored in written]
        read_back = written[0][1]
        worm = self.worm_report()
        payload = {
            "store": self.store_name,
            "first": first,
            "last": last,
            "count": len(entries),
            "tree_size": tree_size,
            "root": root.hex(),
            "objects": [o.as_dict() for o in objects],
            "retain_until": retain_text,
            "legal_hold": hold,
            "policy": DEFAULT_RETENTION_WORDING,
            "worm": {
                "requested": self.config.worm,
                "enforced": worm.enforced,
                "detail": worm.detail,
                "retain_until_read_back": None
                if read_back.retain_until is None
                else format_timestamp(read_back.retain_until),
                "legal_hold_read_back": read_back.legal_hold,
            },
        }
        event = {
            "id": str(uuid.uuid5(_ID_NAMESPACE, f"{ledger.origin}\n{self.store_name}\n{first}-{last}")),
            "stream": self.stream,
            "type": SEALED_TYPE,
            "occurred_at": entries[-1].recorded_at,
            "payload": payload,
        }
        result = ledger.append(event, SEALER_PRODUCER)
        return SealRecord(
            result.entry.seq,
            first,
            last,
            root.hex(),
            {o.name: o for o in objects},
            retain_text,
            hold,
        )

    def _put(
        self,
        name: str,
        role: str,
        data: bytes,
        retain_until: datetime | None,
        hold: bool,
        *,
        replaceable: bool = False,
    ) -> tuple[SealedObject, StoredObject]:
        digest = hashlib.sha256(data).hexdigest()
        try:
            stored = self.store.put(name, data, retain_until=retain_until, legal_hold=hold)
        except ConflictError:
            stored = self._existing(name, digest, data, replaceable)
        if stored.sha256_hex != digest:
            raise IntegrityError(f"object {name}: the store reports digest {stored.sha256_hex}, not {digest}")
        return SealedObject(name, role, digest, len(data)), stored

    def _existing(self, name: str, digest: str, data: bytes, replaceable: bool) -> StoredObject:
        """An object is already there (a seal retried after a crash): same bytes, or replace a payload object."""
        stored = self.store.stat(name)
        if stored.sha256_hex == digest and hashlib.sha256(self.store.get(name)).hexdigest() == digest:
            return stored
        if not replaceable:
            raise IntegrityError(f"object {name}: already in the store with other content; refusing to seal over it")
        self._replace(name, data)
        return self.store.stat(name)

    def _replace(self, name: str, data: bytes) -> None:
        with contextlib.suppress(NotFoundError):
            self.store.delete(name)
        self.store.put(name, data)

    def worm_report(self) -> WormReport:
        if self._worm is None:
            self._worm = self.store.worm_report()
        return self._worm

    # --- retention dates and holds -------------------------------------------------------------------

    def _retain_until(self, entries: Sequence[EntryRecord], now: datetime) -> datetime:
        """The latest end of retention among the entries.

        Retention of an incident stream runs from its closure; for an incident still open it has not started,
        so the seal counts it from now, a floor that a later closure can only extend.
        """
        policy = self.config.policy
        has_incidents = any(e.stream.startswith(INCIDENT_STREAM_PREFIX) for e in entries)
        closures = {s: format_timestamp(t) for s, t in _incident_closures(self.ledger).items()} if has_incidents else {}
        floor = format_timestamp(now)
        latest: dict[str, str] = {}  # class name -> latest start (fixed-width timestamps compare as times)
        for entry in entries:
            start = entry.occurred_at
            if entry.stream.startswith(INCIDENT_STREAM_PREFIX):
                closed = closures.get(entry.stream)
                start = floor if closed is None else max(start, closed)
            name = policy.class_for(entry.type).name
            if start > latest.get(name, ""):
                latest[name] = start
        ends = [
            add_years(parse_timestamp(start, field="occurred_at"), years)
            for name, start in latest.items()
            if (years := policy.classes[name].years) is not None
        ]
        return max(ends) if ends else add_years(now, 7)

    def _active_holds(self) -> list[LegalHold]:
        return [hold for hold in load_holds(self.ledger) if hold.active]

    def _segment_held(self, entries: Sequence[EntryRecord], payloads: Sequence[PayloadRecord]) -> bool:
        holds = self._active_holds()
        if not holds:
            return False
        for entry, payload in zip(entries, payloads, strict=True):
            if holds_covering(entry.stream, _incident_id(entry.stream), _case_ids(payload.payload), holds):
                return True
        return False

    def _held_seqs(self, holds: Iterable[LegalHold]) -> list[int]:
        """Every seq an active hold covers (case holds read payloads; the others use the stream index)."""
        seqs: set[int] = set()
        ledger = self.ledger
        for hold in holds:
            if hold.scope_kind == "stream":
                filters = [EntryFilter(stream=hold.scope)]
            elif hold.scope_kind == "stream_prefix":
                prefix = hold.scope.rstrip("/")
                filters = [EntryFilter(stream=prefix), EntryFilter(stream_prefix=prefix + "/")]
            elif hold.scope_kind == "incident":
                stream = INCIDENT_STREAM_PREFIX + hold.scope
                filters = [EntryFilter(stream=stream), EntryFilter(stream_prefix=stream + "/")]
            else:
                for entry, payload in ledger.recorder.iter_entries_with_payloads(ledger.log_id):
                    if payload is not None and hold.scope in _case_ids(payload.payload):
                        seqs.add(entry.seq)
                continue
            for filters_one in filters:
                seqs.update(entry.seq for entry in ledger.entries(filters_one))
        return sorted(seqs)

    def _apply_holds(self, records: list[SealRecord], report: SealReport) -> list[str]:
        """Set or clear the store's legal hold on sealed objects when the ledger's holds changed."""
        if not self.config.worm or not records:
            return []
        newest = last_entry_seq(self.ledger.recorder.engine, self.ledger.log_id, HOLD_STREAM, "legal_hold.set")
        released = last_entry_seq(self.ledger.recorder.engine, self.ledger.log_id, HOLD_STREAM, "legal_hold.released")
        marker = max(newest if newest is not None else -1, released if released is not None else -1)
        if marker == self._holds_seen or not self._holds_supported:
            return []
        held = self._held_seqs(self._active_holds())
        starts = [r.first for r in records]
        wanted: set[int] = set()
        for seq in held:
            index = bisect.bisect_right(starts, seq) - 1
            if index >= 0 and seq <= records[index].last:
                wanted.add(index)
        changed: list[str] = []
        for index, record in enumerate(records):
            for obj in record.objects.values():
                if obj.role == "payloads":
                    continue
                on = index in wanted
                try:
                    if self.store.stat(obj.name).legal_hold != on:
                        self.store.set_legal_hold(obj.name, on)
                        changed.append(obj.name)
                except StorageUnavailable as exc:
                    if "does not implement legal holds" in str(exc):
                        self._holds_supported = False
                        report.notes.append("the store does not implement legal holds; holds are kept in the ledger")
                        return changed
                    raise
                except NotFoundError:
                    report.notes.append(f"object {obj.name} is missing from the store")
        self._holds_seen = marker
        return changed

    def _extend_retention(self, records: list[SealRecord], now: datetime) -> list[str]:
        """When an incident closes, its retention starts: extend the retain-until of the sealed objects holding it.

        A seal counts an open incident from the seal time (a floor), so the closure can only lengthen the date;
        the store is asked to extend its policy and a ``snapshot.retention_extended`` event records the new date.
        """
        if not self.config.worm or not records:
            return []
        engine, log_id = self.ledger.recorder.engine, self.ledger.log_id
        newest = last_entry_seq_of_type(engine, log_id, INCIDENT_CLOSED_TYPE)
        if newest is None or newest <= self._closures_seen:
            return []
        closed_streams = {
            entry.stream
            for entry in self.ledger.entries(EntryFilter(type=INCIDENT_CLOSED_TYPE, from_seq=self._closures_seen + 1))
        }
        starts = [r.first for r in records]
        touched: set[int] = set()
        for stream in closed_streams:
            for entry in self.ledger.entries(EntryFilter(stream=stream)):
                index = bisect.bisect_right(starts, entry.seq) - 1
                if index >= 0 and entry.seq <= records[index].last:
                    touched.add(index)
        extended: list[str] = []
        for index in sorted(touched):
            record = records[index]
            entries, _payloads = self._read(record.first, record.last)
            wanted = self._retain_until(entries, now)
            current = (
                None if record.retain_until is None else parse_timestamp(record.retain_until, field="retain_until")
            )
            if current is not None and wanted <= current:
                continue
            text = format_timestamp(wanted)
            for obj in record.objects.values():
                if obj.role == "payloads":
                    continue
                self.store.extend_retention(obj.name, wanted)
                self.ledger.append(
                    {
                        "id": str(uuid.uuid4()),
                        "stream": self.stream,
                        "type": EXTENDED_TYPE,
                        "occurred_at": format_timestamp(datetime.now(UTC)),
                        "payload": {
                            "store": self.store_name,
                            "object": obj.name,
                            "retain_until": text,
                            "previous_retain_until": record.retain_until,
                            "reason": "an incident held in this segment closed: its retention runs from the closure",
                        },
                    },
                    SEALER_PRODUCER,
                )
                extended.append(obj.name)
            record.retain_until = text
        self._closures_seen = newest
        return extended

    # --- redaction of erased payloads ----------------------------------------------------------------

    def _redact(self, records: list[SealRecord]) -> list[str]:
        """Rewrite the payload objects of segments holding payloads erased since they were written."""
        if not records:
            return []
        ledger = self.ledger
        erased = erased_after(ledger.recorder.engine, ledger.log_id, self._redacted_through, records[-1].last)
        if not erased:
            return []
        starts = [r.first for r in records]
        affected = sorted({bisect.bisect_right(starts, seq) - 1 for seq, _by in erased})
        through = max(by for _seq, by in erased)
        rewritten: list[str] = []
        for index in affected:
            record = records[index]
            current = record.object("payloads")
            _entries, payloads = self._read(record.first, record.last)
            data = encode_payloads(ledger.origin, record.first, record.last, payloads)
            digest = hashlib.sha256(data).hexdigest()
            if digest == current.sha256:
                continue
            self._replace(current.name, data)
            event = {
                "id": str(uuid.uuid4()),
                "stream": self.stream,
                "type": REDACTED_TYPE,
                "occurred_at": format_timestamp(datetime.now(UTC)),
                "payload": {
                    "store": self.store_name,
                    "object": current.name,
                    "first": record.first,
                    "last": record.last,
                    "sha256": digest,
                    "size": len(data),
                    "previous_sha256": current.sha256,
                    "through_event_seq": through,
                    "reason": "payloads disposed of or erased after the seal",
                },
            }
            ledger.append(event, SEALER_PRODUCER)
            record.objects[current.name] = SealedObject(current.name, "payloads", digest, len(data))
            rewritten.append(current.name)
        self._redacted_through = through
        return rewritten
