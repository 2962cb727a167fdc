"""The event envelope a producer submits, and :func:`validate_event`, the ingest entry point.

``validate_event`` accepts the raw body (bytes or str, parsed with orjson) or an already decoded mapping and
returns an :class:`EventIn` or raises :class:`ledger.errors.ValidationError`: nothing else escapes, and no
message repeats a submitted value (they may be personal data), only the field path and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Self

import orjson
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from ledger.errors import ValidationError
from schemas._errors import PROBLEM_SEPARATOR, ledger_error, problems_of
from schemas._json import UNICODE_MESSAGE, find_invalid_unicode
from schemas.payloads import PAYLOAD_MODELS
from schemas.types import (
    MAX_SAFE_INTEGER,
    EventType,
    JsonObject,
    Label,
    StreamName,
    StrictModel,
    SubjectId,
    SubjectRef,
    UtcDatetime,
    Uuid,
)

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "MAX_SUBJECTS", "EventIn", "validate_event"]

DEFAULT_MAX_PAYLOAD_BYTES: Final = 256 * 1024
"""Largest payload accepted by default, measured as compact JSON (``len(orjson.dumps(payload))``)."""

MAX_SUBJECTS: Final = 32
"""Most person references one event may carry (``subjects`` and ``subject_refs`` together)."""

_ENVELOPE_ALLOWANCE: Final = 64 * 1024
_CONTEXT_LIMIT: Final = "max_payload_bytes"


class EventIn(StrictModel):
    """An event as a producer submits it, before the ledger chains it.

    Build it with :func:`validate_event`, which also checks the payload size against a configurable limit
    and turns every failure into :class:`ledger.errors.ValidationError`.  ``EventIn.model_validate`` applies
    the same rules (pass ``context={"max_payload_bytes": n}`` to change the limit) but raises pydantic's
    error.  The instance is frozen; ``payload`` is a plain dict and must be treated as read-only.
    """

    id: Uuid
    """Producer-chosen event id: a UUID of any version, stored in lower case; it identifies the event when a
    producer retries."""
    stream: StreamName
    """The stream the event belongs to, e.g. ``controls/iam/mfa``; ``stream_seq`` counts within it."""
    type: EventType
    """Dotted event type; types in :data:`schemas.payloads.PAYLOAD_MODELS` have a typed payload."""
    occurred_at: UtcDatetime
    """When the event happened: RFC 3339 with an offset on input, an aware UTC datetime once validated."""
    producer: Label | None = None
    """Ignored by the ledger: it records the *authenticated* identity of the submitter instead.  Kept so
    that producers may send it (and so that it is refused when malformed)."""
    subjects: Annotated[list[SubjectId], Field(max_length=MAX_SUBJECTS)] = Field(default_factory=list)
    """Identifiers of the persons the event is about, in clear.  The ledger replaces each by
    ``HMAC-SHA256(ledger secret, identifier)``: they never enter the chain in clear."""
    subject_refs: Annotated[list[SubjectRef], Field(max_length=MAX_SUBJECTS)] = Field(default_factory=list)
    """Person references already keyed by the producer (64 lowercase hex digits), taken as they are."""
    payload: JsonObject
    """The event's content: a JSON object without floats (decimals travel as strings)."""
    expected_stream_seq: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)] | None = None
    """Optimistic concurrency: the ``stream_seq`` this event must receive, or the append is refused."""

    def typed_payload(self) -> BaseModel | None:
        """The payload as an instance of its type's model, or ``None`` for a type without one.

        Validation already succeeded when this event was built; this builds the model again (a few
        microseconds) rather than keeping a second copy of every payload on the hot path.
        """
        model = PAYLOAD_MODELS.get(self.type)
        return None if model is None else model.model_validate(self.payload)

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, payload: dict[str, object], info: ValidationInfo) -> dict[str, object]:
        context = info.context if isinstance(info.context, Mapping) else {}
        limit = context.get(_CONTEXT_LIMIT, DEFAULT_MAX_PAYLOAD_BYTES)
        try:
            size = len(orjson.dumps(payload))
        except orjson.JSONEncodeError:  # the scan already passed: only invalid Unicode is left
            path = find_invalid_unicode(payload, []) or []
            raise PydanticCustomError("ledger_json", UNICODE_MESSAGE, {"subpath": path}) from None
        if size > limit:
            raise PydanticCustomError(
                "ledger_payload_size",
                "is {size} bytes as compact JSON; the limit is {limit} bytes",
                {"size": size, "limit": limit},
            )
        return payload

    @model_validator(mode="after")
    def _subjects_and_payload_type(self) -> Self:
        if len(self.subjects) + len(self.subject_refs) > MAX_SUBJECTS:
            raise PydanticCustomError(
                "ledger_subjects",
                f"subjects and subject_refs together must have at most {MAX_SUBJECTS} items",
                {"subpath": ["subject_refs"]},
            )
        model = PAYLOAD_MODELS.get(self.type)
        if model is not None:
            try:
                model.model_validate(self.payload)
            except PydanticValidationError as exc:
                problems = problems_of(exc, prefix=("payload",))
                raise PydanticCustomError(
                    "ledger_payload",
                    PROBLEM_SEPARATOR.join(f"{field}: {message}" for field, message in problems),
                    {"problems": [list(problem) for problem in problems]},
                ) from None
        return self


def validate_event(
    data: Mapping[str, object] | bytes | str,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> EventIn:
    """Parse and validate one event; raise :class:`ledger.errors.ValidationError` naming the first bad field.

    ``data`` is the JSON body (bytes, bytearray, memoryview or str) or a decoded mapping.  The payload must be
    at most ``max_payload_bytes`` as compact JSON; a raw body larger than four times that plus 64 KiB is
    refused before parsing.  Duplicate keys in the JSON are not detected: the last one wins (orjson).
    """
    if isinstance(data, bytes | bytearray | memoryview | str):
        if len(data) > 4 * max_payload_bytes + _ENVELOPE_ALLOWANCE:
            raise ValidationError("event: body is too large", field=None)
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            # The decoder's own message may quote the input; give the position only.
            raise ValidationError(f"event: invalid JSON at line {exc.lineno} column {exc.colno}", field=None) from None
    if not isinstance(data, Mapping):
        raise ValidationError("event: must be a JSON object", field=None)
    try:
        return EventIn.model_validate(
            data if type(data) is dict else dict(data), context={_CONTEXT_LIMIT: max_payload_bytes}
        )
    except PydanticValidationError as exc:
        # ``from None``: pydantic's error text includes the input, which must not reach logs via __cause__.
        raise ledger_error(problems_of(exc)) from None
