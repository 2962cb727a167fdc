"""Turn ledger records into API models (no I/O beyond what the ledger returns)."""

from __future__ import annotations

import base64
import binascii

import orjson

from api.errors import ApiProblem
from ledger.access import ApiKey, Permission
from ledger.service import AppendResult, Ledger
from ledger.store.records import EntryRecord, PayloadRecord
from schemas.api import AppendResultPublic, EntryPublic


def entry_public(
    entry: EntryRecord, payload: PayloadRecord | None = None, *, show_payload: bool = False
) -> EntryPublic:
    view = EntryPublic(
        seq=entry.seq,
        event_id=entry.event_id,
        stream=entry.stream,
        stream_seq=entry.stream_seq,
        type=entry.type,
        producer=entry.producer,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
        body=entry.body.decode("utf-8"),
        hash=entry.hash.hex(),
        signature=base64.b64encode(entry.signature).decode(),
        key_id=entry.key_id,
    )
    if not show_payload:
        return view.model_copy(update={"payload_state": "hidden"})
    if payload is None or payload.payload is None:
        erasure = None
        if payload is not None and payload.erased_at is not None:
            erasure = {
                "erased_at": payload.erased_at,
                "erased_by_seq": payload.erased_by_seq,
                "reason": payload.erasure_reason,
            }
        return view.model_copy(update={"payload_state": "erased", "erasure": erasure})
    return view.model_copy(update={"payload": orjson.loads(payload.payload), "payload_state": "present"})


def entries_public(ledger: Ledger, key: ApiKey, entries: list[EntryRecord]) -> list[EntryPublic]:
    show = key.may(Permission.READ_PAYLOAD)
    payloads = ledger.recorder.payloads(ledger.log_id, [e.seq for e in entries]) if show and entries else {}
    return [entry_public(e, payloads.get(e.seq), show_payload=show) for e in entries]


def append_public(result: AppendResult) -> AppendResultPublic:
    return AppendResultPublic(created=result.created, entry=entry_public(result.entry))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The last seq a cursor points after; a clear 400 for anything that is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("s") or not text[1:].isdigit() or len(text) > 20:
        raise ApiProblem(400, "Bad cursor", "the cursor is not one this API returned", kind="bad-cursor")
    return int(text[1:])
