"""Append events and read entries."""

from __future__ import annotations

from itertools import islice
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response

from api.deps import ApiKeyToken, LogParam, Reader, append_scope
from api.errors import ApiProblem
from api.metrics import record_append
from api.views import append_public, decode_cursor, encode_cursor, entries_public
from ledger.access import ApiKey
from ledger.errors import ValidationError
from ledger.store.records import EntryFilter
from schemas.api import AppendResultPublic, BatchResultPublic, EntryPage, EntryPublic
from schemas.envelope import EventIn, validate_event
from schemas.timestamps import format_timestamp, parse_timestamp

router = APIRouter(prefix="/v1", tags=["events"])

EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventIn"}}},
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "additionalProperties": False,
                    "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}}},
                }
            }
        },
    }
}


def _checked_event(key: ApiKey, raw: Any, max_payload_bytes: int, index: int | None = None) -> EventIn:
    where = "" if index is None else f"event {index}: "
    try:
        event = validate_event(raw, max_payload_bytes=max_payload_bytes)
    except ValidationError as exc:
        raise ValidationError(where + str(exc), field=exc.field, index=index) from exc
    if not key.may_append_to(event.stream):
        raise ApiProblem(403, "Forbidden", f"{where}this key may not append to that stream", kind="forbidden")
    return event


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError("the request body is not valid JSON") from None


@router.post(
    "/events",
    status_code=201,
    response_model=AppendResultPublic,
    openapi_extra=EVENT_BODY,
    responses={200: {"description": "already stored: the stored entry"}, 201: {"description": "appended"}},
)
async def append_event(request: Request, token: ApiKeyToken = None, log: LogParam = None) -> Response:
    """Append one event. The producer is the API key's name, never taken from the body."""
    state, key, ledger = await append_scope(request, token, log)
    event = _checked_event(key, await request.body(), ledger.settings.max_payload_bytes)
    result = (await state.appender(ledger).append([event], key.name))[0]
    record_append(request, ledger.origin, int(result.created), int(not result.created))
    return Response(
        append_public(result).model_dump_json(),
        status_code=201 if result.created else 200,
        headers={"Location": f"/v1/entries/{result.entry.seq}"},
        media_type="application/json",
    )


@router.post("/events:batch", status_code=201, response_model=BatchResultPublic, openapi_extra=BATCH_BODY)
async def append_batch(
    request: Request, response: Response, token: ApiKeyToken = None, log: LogParam = None
) -> BatchResultPublic:
    """Append many events in one transaction: all are stored or none (the problem names the bad index)."""
    state, key, ledger = await append_scope(request, token, log)
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) != {"events"} or not isinstance(body["events"], list):
        raise ValidationError('the body must be {"events": [...]}', field="events")
    raw_events = body["events"]
    limit = ledger.settings.api_max_batch_events
    if not raw_events or len(raw_events) > limit:
        raise ValidationError(f"a batch holds 1 to {limit} events", field="events")
    events = [
        _checked_event(key, raw, ledger.settings.max_payload_bytes, index) for index, raw in enumerate(raw_events)
    ]
    results = await state.appender(ledger).append(events, key.name)
    created = sum(r.created for r in results)
    record_append(request, ledger.origin, created, len(results) - created)
    response.status_code = 201 if created else 200
    return BatchResultPublic(
        created=created, already_stored=len(results) - created, results=[append_public(r) for r in results]
    )


@router.get("/entries/{seq}", response_model=EntryPublic)
def entry_by_seq(scope: Reader, seq: Annotated[int, Path(ge=0, le=2**53)]) -> EntryPublic:
    key, ledger = scope
    return entries_public(ledger, key, [ledger.entry(seq)])[0]


@router.get("/events/{event_id}", response_model=EntryPublic)
def entry_by_event_id(scope: Reader, event_id: Annotated[str, Path(min_length=36, max_length=36)]) -> EntryPublic:
    key, ledger = scope
    return entries_public(ledger, key, [ledger.entry_by_event_id(event_id.lower())])[0]


def _time(value: str | None, field: str) -> str | None:
    return None if value is None else format_timestamp(parse_timestamp(value, field=field))


Text = Annotated[str | None, Query(max_length=200)]


@router.get("/entries", response_model=EntryPage)
def query_entries(
    scope: Reader,
    stream: Text = None,
    stream_prefix: Text = None,
    type: Text = None,
    producer: Text = None,
    subject: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None,
    occurred_since: Text = None,
    occurred_until: Text = None,
    recorded_since: Text = None,
    recorded_until: Text = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> EntryPage:
    """Entries matching every given filter, in seq order, a page at a time (time bounds: since <= t < until)."""
    key, ledger = scope
    filters = EntryFilter(
        stream=stream,
        stream_prefix=stream_prefix,
        type=type,
        producer=producer,
        subject=subject,
        occurred_since=_time(occurred_since, "occurred_since"),
        occurred_until=_time(occurred_until, "occurred_until"),
        recorded_since=_time(recorded_since, "recorded_since"),
        recorded_until=_time(recorded_until, "recorded_until"),
    )
    return _page(ledger, key, filters, cursor, limit)


@router.get("/stream", response_model=EntryPage)
def read_stream(
    scope: Reader,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> EntryPage:
    """One stream in stream_seq order (which is also seq order)."""
    key, ledger = scope
    return _page(ledger, key, EntryFilter(stream=name), cursor, limit)


def _page(ledger: Any, key: ApiKey, filters: EntryFilter, cursor: str | None, limit: int) -> EntryPage:
    limit = min(limit, ledger.settings.api_page_size_max)
    if cursor is not None:
        filters.from_seq = decode_cursor(cursor) + 1
    found = list(islice(ledger.recorder.iter_entries(ledger.log_id, filters, batch_size=limit + 1), limit + 1))
    page, more = found[:limit], len(found) > limit
    return EntryPage(
        entries=entries_public(ledger, key, page), next_cursor=encode_cursor(page[-1].seq) if more else None
    )
