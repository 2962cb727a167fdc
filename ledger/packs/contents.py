"""The parts of a pack that come from the domain modules: incident dossiers, retention state, the verifier."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.errors import LedgerError
from ledger.service import Ledger
from ledger.store.records import EntryRecord, PayloadRecord
from schemas.timestamps import format_timestamp

VERIFIER = Path(__file__).with_name("verifier.py")


def incident_dossier(ledger: Ledger, incident_id: str, now: datetime, disclosed: Any) -> dict[str, Any] | None:
    """The incident's view rebuilt from the entries the pack discloses only (worksheets, reports as submitted,
    deadlines met or missed), so the dossier restates nothing the pack does not prove; None if none is disclosed."""
    import orjson

    from ledger.dora.timeline import IncidentEvent, build_view
    from ledger.store.records import EntryFilter

    entries = [e for e in ledger.entries(EntryFilter(stream=f"incident/{incident_id}")) if e.seq in disclosed]
    if not entries:
        return None
    payloads = ledger.recorder.payloads(ledger.log_id, [e.seq for e in entries])
    events = []
    for entry in entries:
        record = payloads.get(entry.seq)
        data = None if record is None or record.payload is None else orjson.loads(record.payload)
        events.append(IncidentEvent(entry.seq, entry.type, entry.occurred_at, data))
    settings = ledger.settings
    try:
        view = build_view(
            incident_id, events, now, entity_type=settings.dora_entity_type, weekend_rule=settings.dora_weekend_rule
        )
    except LedgerError:
        return None
    return {**view.as_dict(), "disclosed_seqs": [e.seq for e in entries]}


class RetentionLines:
    """retention.jsonl: a header (policy wording, holds), then one line per disclosed entry (class, retain-until,
    holds, erasure), made from the entry and payload rows the export reads anyway."""

    def __init__(self, ledger: Ledger, policy: Any, now: datetime) -> None:
        from retention.disposal import _incident_closures
        from retention.holds import load_holds
        from retention.policy import RetentionPolicy

        self.rules = policy if policy is not None else RetentionPolicy()
        self.now = now
        self.holds = load_holds(ledger)
        self.active = [h for h in self.holds if h.active]
        self.closures = _incident_closures(ledger)

    def header(self) -> dict[str, Any]:
        from retention.policy import DEFAULT_RETENTION_WORDING

        return {
            "policy": DEFAULT_RETENTION_WORDING,
            "at": format_timestamp(self.now),
            "active_holds": len(self.active),
            "holds": [
                {
                    "hold_id": h.hold_id,
                    "scope_kind": h.scope_kind,
                    "scope": h.scope,
                    "case_id": h.case_id,
                    "set_at": format_timestamp(h.set_at),
                    "released_at": None if h.released_at is None else format_timestamp(h.released_at),
                }
                for h in self.holds
            ],
        }

    def line(self, entry: EntryRecord, payload: PayloadRecord | None) -> dict[str, Any]:
        from retention.disposal import _case_ids, _incident_id
        from retention.policy import holds_covering
        from schemas.timestamps import parse_timestamp

        closed = self.closures.get(entry.stream) if entry.stream.startswith("incident/") else None
        try:
            until = self.rules.retain_until(
                entry.type,
                parse_timestamp(entry.occurred_at, field="occurred_at"),
                incident_closed_at=closed,
                stream=entry.stream,
            )
        except LedgerError:
            until = None
        covering = holds_covering(
            entry.stream,
            _incident_id(entry.stream),
            _case_ids(None if payload is None else payload.payload),
            self.active,
        )
        erased = None
        if payload is not None and payload.payload is None:
            erased = {"at": payload.erased_at, "by_seq": payload.erased_by_seq, "reason": payload.erasure_reason}
        return {
            "seq": entry.seq,
            "class": self.rules.class_for(entry.type).name,
            "retain_until": None if until is None else format_timestamp(until),
            "held_by": [h.hold_id for h in covering],
            "erased": erased,
        }


def verifier_source() -> bytes:
    return VERIFIER.read_bytes()


def readme_text(origin: str, verifier_key: str) -> str:
    return f"""Evidence pack of the log {origin}

Verify it offline, on any machine with Python 3.11 or newer and the `cryptography` package:

    python -m pip install cryptography
    python verify.py THIS-PACK.zip --key '{verifier_key}'

(`python -m pip install pynacl` as well makes it about 1.5 times faster, with the same verdicts.)

Obtain the key from the entity through a channel you trust, not from this pack. The verifier checks the file
digests and the manifest signature, every disclosed entry's signature, hash and payload digest, the chain links
and that every seq of the range is present, the Merkle root of the range against the signed checkpoint, the
inclusion proofs and (when present) the consistency proof from your earlier checkpoint. It prints one line per
check and a verdict, and exits 0 only when everything holds (--json for machine-readable output).

Entries outside the scope appear as their leaf hash only: they prove that nothing in the range was left out
without disclosing it. report.pdf is the readable report; manifest.json lists every file with its SHA-256.
"""
