"""``ledger retention status``: what a store holds for a log, whether it enforces WORM, and what no longer matches.

Every object recorded in the chain is read back and its SHA-256 compared with the recorded digest; sealed
checkpoints must verify with the log's keys and carry the root the database gives for their size; payload
objects must no longer hold payloads that were erased; objects the chain does not record are listed.  The
WORM verdict is the store's own observation (Azurite accepts immutability headers and enforces nothing, and
the report says so).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import LedgerError, NotFoundError, VerificationError
from ledger.notes import open_note, parse_checkpoint
from ledger.service import Ledger
from ledger.store.retention import erased_after
from ledger.verify import build_verifiers
from retention.holds import load_holds
from retention.policy import DEFAULT_RETENTION_WORDING
from retention.sealing import SealRecord, load_seal_records
from retention.segments import SEGMENTS, decode_payloads, log_prefix, parse_size_name
from retention.stores.base import ObjectStore

__all__ = ["StatusFinding", "StoreStatus", "store_status"]


@dataclass(frozen=True, slots=True)
class StatusFinding:
    object: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"object {self.object}: {self.code}: {self.message}"


@dataclass(slots=True)
class StoreStatus:
    store_name: str
    store: str
    worm_enforced: bool
    worm_detail: str
    policy: str = DEFAULT_RETENTION_WORDING
    segments: int = 0
    sealed_entries: int = 0
    unsealed_entries: int = 0
    last_sealed_seq: int | None = None
    latest_retain_until: str | None = None
    held_segments: int = 0  # segments the store reports under legal hold now (read back)
    active_holds: int = 0
    objects_checked: int = 0
    findings: list[StatusFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "store_name": self.store_name,
            "store": self.store,
            "ok": self.ok,
            "policy": self.policy,
            "worm": {"enforced": self.worm_enforced, "detail": self.worm_detail},
            "segments": self.segments,
            "sealed_entries": self.sealed_entries,
            "unsealed_entries": self.unsealed_entries,
            "last_sealed_seq": self.last_sealed_seq,
            "latest_retain_until": self.latest_retain_until,
            "held_segments": self.held_segments,
            "active_holds": self.active_holds,
            "objects_checked": self.objects_checked,
            "findings": [{"object": f.object, "code": f.code, "message": f.message} for f in self.findings],
        }


def store_status(ledger: Ledger, store: ObjectStore, store_name: str, *, description: str) -> StoreStatus:
    worm = store.worm_report()
    status = StoreStatus(store_name, description, worm.enforced, worm.detail)
    records = load_seal_records(ledger, store_name)
    status.segments = len(records)
    status.active_holds = sum(1 for hold in load_holds(ledger) if hold.active)
    if records:
        status.last_sealed_seq = records[-1].last
        status.sealed_entries = records[-1].last + 1
        status.latest_retain_until = max((r.retain_until for r in records if r.retain_until), default=None)
    status.unsealed_entries = ledger.head().size - status.sealed_entries
    verifiers = build_verifiers(ledger.keys())
    erased = _erased_by_segment(ledger, records)
    recorded: set[str] = set()
    for record in records:
        for obj in record.objects.values():
            recorded.add(obj.name)
            data = _check_object(store, obj.name, obj.sha256, record.event_seq, status)
            if data is None:
                continue
            if obj.role == "checkpoint":
                _check_checkpoint(ledger, obj.name, data, verifiers, status)
            elif obj.role == "payloads" and erased.get(record.first):
                _check_redacted(obj.name, data, erased[record.first], status)
    for stored in store.list(log_prefix(ledger.origin)):
        if stored.name not in recorded:
            status.findings.append(
                StatusFinding(
                    stored.name,
                    "unrecorded",
                    "not recorded in the chain (a seal interrupted before it was recorded, or a stray object)",
                )
            )
    return status


def _check_object(
    store: ObjectStore, name: str, expected: str, recorded_at_seq: int, status: StoreStatus
) -> bytes | None:
    try:
        stored = store.stat(name)
        data = store.get(name)
        if stored.legal_hold and name.split("/")[-2] == SEGMENTS:
            status.held_segments += 1
    except NotFoundError:
        status.findings.append(
            StatusFinding(name, "missing", f"recorded at seq {recorded_at_seq}, absent from the store")
        )
        return None
    except LedgerError as exc:  # an unreadable sidecar, for instance
        status.findings.append(StatusFinding(name, "unreadable", str(exc)))
        return None
    status.objects_checked += 1
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        status.findings.append(
            StatusFinding(
                name, "digest-mismatch", f"SHA-256 {actual} differs from {expected} recorded at seq {recorded_at_seq}"
            )
        )
        return data
    if stored.sha256_hex != expected:
        status.findings.append(
            StatusFinding(name, "metadata-mismatch", "the digest kept with the object differs from the recorded one")
        )
    return data


def _check_checkpoint(ledger: Ledger, name: str, data: bytes, verifiers: dict[str, Any], status: StoreStatus) -> None:
    size = parse_size_name(name)
    # signed by the key of its size, or re-signed after a rotation by a later key
    candidates = [v for key, v in verifiers.values() if key.not_retired_before(size)]
    try:
        opened = open_note(data.decode("utf-8"), candidates)
        checkpoint = parse_checkpoint(opened.text)
    except (VerificationError, UnicodeDecodeError) as exc:
        status.findings.append(StatusFinding(name, "bad-checkpoint", f"does not verify with the log's keys: {exc}"))
        return
    if checkpoint.size != size or checkpoint.root != ledger.root(size):
        status.findings.append(StatusFinding(name, "bad-checkpoint", "root or size differs from the log's tree"))


def _erased_by_segment(ledger: Ledger, records: list[SealRecord]) -> dict[int, set[int]]:
    if not records:
        return {}
    result: dict[int, set[int]] = {}
    starts = [(r.first, r.last) for r in records]
    for seq, _by in erased_after(ledger.recorder.engine, ledger.log_id, -1, records[-1].last):
        for first, last in starts:
            if first <= seq <= last:
                result.setdefault(first, set()).add(seq)
                break
    return result


def _check_redacted(name: str, data: bytes, erased: set[int], status: StoreStatus) -> None:
    try:
        payloads = decode_payloads(data, name)
    except VerificationError as exc:
        status.findings.append(StatusFinding(name, "malformed", str(exc)))
        return
    still = sorted(p.seq for p in payloads.payloads if p.seq in erased and p.payload is not None)
    if still:
        status.findings.append(
            StatusFinding(
                name,
                "erasure-pending",
                f"still holds {len(still)} payload(s) erased in the ledger (first seq {still[0]}); run `ledger seal`",
            )
        )
