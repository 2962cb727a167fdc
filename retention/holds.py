"""Legal holds recorded as ledger events on ``ledger/holds`` and read back as :class:`LegalHold` objects.

``legal_hold.set`` carries hold_id, scope_kind, scope, actor, reason and case_id; ``legal_hold.released``
carries hold_id, actor and reason.  A hold is released from the ``occurred_at`` of its release event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from ledger.errors import ConflictError, NotFoundError, ValidationError
from ledger.service import Ledger
from ledger.store.records import EntryFilter
from retention.policy import HoldScopeKind, LegalHold
from schemas.timestamps import format_timestamp, parse_timestamp

__all__ = ["HOLD_RELEASED", "HOLD_SET", "HOLD_STREAM", "NO_CASE_ID", "load_holds", "release_hold", "set_hold"]

HOLD_STREAM = "ledger/holds"
HOLD_SET = "legal_hold.set"
HOLD_RELEASED = "legal_hold.released"
NO_CASE_ID = "none recorded"


def _payload_of(ledger: Ledger, seq: int) -> dict[str, Any]:
    record = ledger.payload(seq)
    if record is None or record.payload is None:
        return {}
    data = orjson.loads(record.payload)
    return cast(dict[str, Any], data) if isinstance(data, dict) else {}


def load_holds(ledger: Ledger) -> list[LegalHold]:
    """Every hold recorded in the ledger, in the order set, with its release when one is recorded."""
    holds: dict[str, LegalHold] = {}
    releases: dict[str, datetime] = {}
    for entry in ledger.entries(EntryFilter(stream=HOLD_STREAM)):
        payload = _payload_of(ledger, entry.seq)
        hold_id = str(payload.get("hold_id", ""))
        if not hold_id:
            continue
        occurred = parse_timestamp(entry.occurred_at, field="occurred_at")
        if entry.type == HOLD_SET and hold_id not in holds:
            holds[hold_id] = LegalHold(
                hold_id=hold_id,
                scope_kind=cast(HoldScopeKind, payload.get("scope_kind")),
                scope=str(payload.get("scope", "")),
                actor=str(payload.get("actor", "")),
                reason=str(payload.get("reason", "")),
                case_id=str(payload.get("case_id") or NO_CASE_ID),
                set_at=occurred,
            )
        elif entry.type == HOLD_RELEASED:
            releases.setdefault(hold_id, occurred)
    result = []
    for hold_id, hold in holds.items():
        released = releases.get(hold_id)
        if released is not None:
            hold = LegalHold(
                hold.hold_id,
                hold.scope_kind,
                hold.scope,
                hold.actor,
                hold.reason,
                hold.case_id,
                hold.set_at,
                max(released, hold.set_at),
            )
        result.append(hold)
    return result


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now


def set_hold(
    ledger: Ledger,
    *,
    scope_kind: str,
    scope: str,
    reason: str,
    actor: str,
    case_id: str | None = None,
    now: datetime | None = None,
) -> LegalHold:
    """Record a ``legal_hold.set`` event and return the hold it creates."""
    moment = _now(now)
    hold = LegalHold(
        hold_id=str(uuid.uuid4()),
        scope_kind=cast(HoldScopeKind, scope_kind),
        scope=scope,
        actor=actor,
        reason=reason,
        case_id=case_id or NO_CASE_ID,
        set_at=moment,
    )  # validates scope kind and non-empty fields before anything is recorded
    payload = {
        "hold_id": hold.hold_id,
        "scope_kind": hold.scope_kind,
        "scope": hold.scope,
        "actor": hold.actor,
        "reason": hold.reason,
        "case_id": hold.case_id,
    }
    event = {
        "id": str(uuid.uuid4()),
        "stream": HOLD_STREAM,
        "type": HOLD_SET,
        "occurred_at": format_timestamp(moment),
        "payload": payload,
    }
    ledger.append(event, actor)
    return hold


def release_hold(ledger: Ledger, hold_id: str, *, reason: str, actor: str, now: datetime | None = None) -> LegalHold:
    """Record a ``legal_hold.released`` event for an active hold and return the released hold."""
    if not reason.strip():
        raise ValidationError("reason must not be empty", field="reason")
    if not actor.strip():
        raise ValidationError("actor must not be empty", field="actor")
    hold = next((h for h in load_holds(ledger) if h.hold_id == hold_id), None)
    if hold is None:
        raise NotFoundError(f"no legal hold {hold_id}")
    if not hold.active:
        raise ConflictError(f"legal hold {hold_id} is already released")
    moment = max(_now(now), hold.set_at)
    event = {
        "id": str(uuid.uuid4()),
        "stream": HOLD_STREAM,
        "type": HOLD_RELEASED,
        "occurred_at": format_timestamp(moment),
        "payload": {"hold_id": hold_id, "actor": actor, "reason": reason},
    }
    ledger.append(event, actor)
    return LegalHold(
        hold.hold_id, hold.scope_kind, hold.scope, hold.actor, hold.reason, hold.case_id, hold.set_at, moment
    )
