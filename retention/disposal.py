"""Disposal of expired payloads and GDPR erasure of a subject's payloads (DORA.md sections 3 and 5).

Both first record their decision as one ledger event, then clear the payloads it names (payload and salt),
pointing each cleared row at that event.  Entries, hashes and proofs stay; the gap is visible and explained.
Decision events carry seqs, rules and counts only: never payload values or identifiers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ledger.errors import ValidationError
from ledger.service import Ledger
from ledger.store.records import EntryFilter, EntryRecord, PayloadRecord
from ledger.store.retention import erase_payloads
from retention.holds import load_holds
from retention.policy import (
    DEFAULT_RETENTION_WORDING,
    INCIDENT_STREAM_PREFIX,
    RULE_DISPOSAL_EXPIRED,
    Decision,
    ErasureDecision,
    LegalHold,
    RetentionPolicy,
    disposal_decision,
    erasure_decision,
    holds_covering,
)
from schemas.timestamps import format_timestamp, parse_timestamp

__all__ = [
    "DISPOSAL_REASON",
    "DISPOSED_TYPE",
    "ERASURE_DECIDED_TYPE",
    "ERASURE_REASON",
    "LEDGER_STREAM_PREFIX",
    "RETENTION_STREAM",
    "Candidate",
    "DisposalOutcome",
    "ErasureCandidate",
    "ErasureOutcome",
    "execute_disposal",
    "execute_erasure",
    "plan_disposal",
    "plan_erasure",
]

LEDGER_STREAM_PREFIX = "ledger/"
RETENTION_STREAM = "ledger/retention"
DISPOSED_TYPE = "retention.disposed"
ERASURE_DECIDED_TYPE = "gdpr.erasure_decided"
INCIDENT_CLOSED_TYPE = "incident.closed"
DISPOSAL_REASON = "disposed"
ERASURE_REASON = "gdpr-erasure"
_READ_BATCH = 500
_SUBJECT_REF = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry whose payload is still present, with its retention end and the disposal decision."""

    seq: int
    event_type: str
    stream: str
    retain_until: datetime | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class ErasureCandidate:
    """An entry about the subject whose payload is still present, with the erasure decision."""

    seq: int
    event_type: str
    stream: str
    retain_until: datetime | None
    decision: ErasureDecision


@dataclass(frozen=True, slots=True)
class DisposalOutcome:
    """``event_seq`` is the ``retention.disposed`` entry (None when nothing was eligible)."""

    event_seq: int | None
    disposed: tuple[int, ...]
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    """``event_seq`` is the ``gdpr.erasure_decided`` entry."""

    event_seq: int
    erased: tuple[int, ...]
    deferred: tuple[int, ...]
    candidates: tuple[ErasureCandidate, ...]


# --- reading ---------------------------------------------------------------------------------------------


def _with_payloads(
    ledger: Ledger, entries: Iterator[EntryRecord]
) -> Iterator[tuple[EntryRecord, PayloadRecord | None]]:
    log_id = ledger.log_id
    batch: list[EntryRecord] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= _READ_BATCH:
            found = ledger.recorder.payloads(log_id, [e.seq for e in batch])
            yield from ((e, found.get(e.seq)) for e in batch)
            batch = []
    if batch:
        found = ledger.recorder.payloads(log_id, [e.seq for e in batch])
        yield from ((e, found.get(e.seq)) for e in batch)


def _incident_id(stream: str) -> str | None:
    if not stream.startswith(INCIDENT_STREAM_PREFIX):
        return None
    rest = stream[len(INCIDENT_STREAM_PREFIX) :]
    return rest.split("/", 1)[0] or None


def _case_ids(payload: bytes | None) -> set[str]:
    if payload is None:
        return set()
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return set()
    case_id = data.get("case_id") if isinstance(data, dict) else None
    return {case_id} if isinstance(case_id, str) and case_id else set()


def _incident_closures(ledger: Ledger) -> dict[str, datetime]:
    """The latest ``incident.closed`` time of every incident stream that has one."""
    closed: dict[str, datetime] = {}
    for entry in ledger.entries(EntryFilter(type=INCIDENT_CLOSED_TYPE, stream_prefix=INCIDENT_STREAM_PREFIX)):
        moment = parse_timestamp(entry.occurred_at, field="occurred_at")
        if entry.stream not in closed or moment > closed[entry.stream]:
            closed[entry.stream] = moment
    return closed


def _retain_until(policy: RetentionPolicy, entry: EntryRecord, closures: dict[str, datetime]) -> datetime | None:
    return policy.retain_until(
        entry.type,
        parse_timestamp(entry.occurred_at, field="occurred_at"),
        incident_closed_at=closures.get(entry.stream) if entry.stream.startswith(INCIDENT_STREAM_PREFIX) else None,
        stream=entry.stream,
    )


def _covering(entry: EntryRecord, payload: PayloadRecord, holds: Sequence[LegalHold]) -> list[LegalHold]:
    return holds_covering(entry.stream, _incident_id(entry.stream), _case_ids(payload.payload), holds)


def _present(payload: PayloadRecord | None) -> bool:
    return payload is not None and payload.payload is not None and payload.erased_at is None


# --- disposal --------------------------------------------------------------------------------------------


def plan_disposal(ledger: Ledger, policy: RetentionPolicy, now: datetime) -> list[Candidate]:
    """The disposal decision for every entry whose payload is present (the ledger's own streams excluded)."""
    holds = load_holds(ledger)
    closures = _incident_closures(ledger)
    candidates: list[Candidate] = []
    for entry, payload in _with_payloads(ledger, ledger.entries(EntryFilter())):
        if entry.stream.startswith(LEDGER_STREAM_PREFIX) or payload is None or not _present(payload):
            continue
        until = _retain_until(policy, entry, closures)
        decision = disposal_decision(now, until, _covering(entry, payload, holds))
        candidates.append(Candidate(entry.seq, entry.type, entry.stream, until, decision))
    return candidates


def seq_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted seqs as inclusive ``(first, last)`` runs, so a decision about 100,000 seqs stays small."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _class_counts(policy: RetentionPolicy, types: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event_type in types:
        name = policy.class_for(event_type).name
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _append_decision(ledger: Ledger, event_type: str, now: datetime, payload: dict[str, Any], actor: str) -> int:
    event = {
        "id": str(uuid.uuid4()),
        "stream": RETENTION_STREAM,
        "type": event_type,
        "occurred_at": format_timestamp(now),
        "payload": payload,
    }
    return ledger.append(event, actor).entry.seq


def execute_disposal(
    ledger: Ledger, policy: RetentionPolicy, now: datetime, *, actor: str = "ledger"
) -> DisposalOutcome:
    """Record one signed ``retention.disposed`` event naming the eligible seqs, then clear those payloads.

    Only eligible candidates (expired, no active hold) are disposed; nothing is recorded when none is.
    """
    candidates = plan_disposal(ledger, policy, now)
    eligible = [c for c in candidates if c.decision.eligible]
    if not eligible:
        return DisposalOutcome(None, (), tuple(candidates))
    seqs = [c.seq for c in eligible]
    payload = {
        "seq_ranges": [list(pair) for pair in seq_ranges(seqs)],
        "policy": DEFAULT_RETENTION_WORDING,
        "rule": RULE_DISPOSAL_EXPIRED,
        "decided_at": format_timestamp(now),
        "counts": {
            "disposed": len(seqs),
            "kept": len(candidates) - len(seqs),
            "by_class": _class_counts(policy, [c.event_type for c in eligible]),
        },
    }
    event_seq = _append_decision(ledger, DISPOSED_TYPE, now, payload, actor)
    erase_payloads(
        ledger.recorder.engine,
        ledger.log_id,
        seqs,
        erased_by_seq=event_seq,
        reason=DISPOSAL_REASON,
        now=format_timestamp(now),
    )
    return DisposalOutcome(event_seq, tuple(seqs), tuple(candidates))


# --- GDPR erasure ----------------------------------------------------------------------------------------


def plan_erasure(ledger: Ledger, policy: RetentionPolicy, subject_ref: str, now: datetime) -> list[ErasureCandidate]:
    """The erasure decision for every entry about ``subject_ref`` whose payload is still present."""
    if not _SUBJECT_REF.fullmatch(subject_ref):
        raise ValidationError(
            "subject ref must be 64 lowercase hex digits (an HMAC, not an identifier)", field="subject"
        )
    holds = load_holds(ledger)
    closures = _incident_closures(ledger)
    candidates: list[ErasureCandidate] = []
    for entry, payload in _with_payloads(ledger, ledger.entries(EntryFilter(subject=subject_ref))):
        if entry.stream.startswith(LEDGER_STREAM_PREFIX) or payload is None or not _present(payload):
            continue
        until = _retain_until(policy, entry, closures)
        decision = erasure_decision(now, policy.class_for(entry.type), until, _covering(entry, payload, holds))
        candidates.append(ErasureCandidate(entry.seq, entry.type, entry.stream, until, decision))
    return candidates


def execute_erasure(
    ledger: Ledger, policy: RetentionPolicy, subject_ref: str, now: datetime, *, actor: str = "ledger"
) -> ErasureOutcome:
    """Record one ``gdpr.erasure_decided`` event, then clear the payloads decided 'erase'.

    The subject ref is an HMAC (DORA.md 5), not an identifier; deferred entries are listed with their
    deferral end (None: not yet known) and rule.
    """
    candidates = plan_erasure(ledger, policy, subject_ref, now)
    erase = [c.seq for c in candidates if c.decision.action == "erase"]
    deferred = [c for c in candidates if c.decision.action == "defer"]
    payload = {
        "subject_ref": subject_ref,
        "decided_at": format_timestamp(now),
        "erased": [list(pair) for pair in seq_ranges(erase)],
        "erased_rule": next((c.decision.rule for c in candidates if c.decision.action == "erase"), None),
        "deferred": [
            {
                "seq": c.seq,
                "until": None if c.decision.until is None else format_timestamp(c.decision.until),
                "rule": c.decision.rule,
            }
            for c in deferred
        ],
        "counts": {"erased": len(erase), "deferred": len(deferred)},
    }
    event_seq = _append_decision(ledger, ERASURE_DECIDED_TYPE, now, payload, actor)
    erase_payloads(
        ledger.recorder.engine,
        ledger.log_id,
        erase,
        erased_by_seq=event_seq,
        reason=ERASURE_REASON,
        now=format_timestamp(now),
    )
    return ErasureOutcome(event_seq, tuple(erase), tuple(c.seq for c in deferred), tuple(candidates))
