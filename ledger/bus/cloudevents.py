"""Reading one message of the ingest topic: the ledger's envelope JSON, or a CloudEvents 1.0 event.

A message is CloudEvents when its JSON object has a ``specversion`` attribute, or when its Kafka
``content-type`` header says ``application/cloudevents+json`` (the structured content mode of the CloudEvents
Kafka protocol binding, section 3.2); anything else is the ledger's own envelope (:mod:`schemas.envelope`).

CloudEvents 1.0 structured-mode JSON maps onto the envelope as follows:

=====================  ===================================================================================
CloudEvents            envelope
=====================  ===================================================================================
``specversion``        must be ``"1.0"``
``id``                 ``id`` when it is a UUID; otherwise a UUIDv5 of (``source``, ``id``) in
                       :data:`CLOUDEVENTS_ID_NAMESPACE`, since CloudEvents ids are unique per source only
                       (CloudEvents 1.0 section 3.1.1: "source + id MUST be unique for each distinct event")
``source``             required; only used to derive the id
``type``               ``type``: must be dotted lowercase words (``check.result``), else the event is refused
``time``               ``occurred_at``: required here (optional in CloudEvents)
``datacontenttype``    absent, ``application/json`` or a ``+json`` media type
``data``               ``payload``: required, a JSON object (``data_base64`` is refused)
``ledgerstream``       ``stream`` (extension attribute, required)
``ledgersubjectrefs``  ``subject_refs`` (extension attribute, optional): keyed person references, as a string
                       separated by commas or spaces (CloudEvents extension values are strings) or a JSON array
``subject``            not stored: in CloudEvents it names the object within the source, not a person
=====================  ===================================================================================

Every function here raises :class:`ledger.errors.ValidationError` and nothing else, with a message that names
attributes and what was expected, never a submitted value.  The binary content mode (``ce_*`` headers) and
batches (``application/cloudevents-batch+json``) are refused with a reason.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from ledger.errors import ValidationError
from schemas._errors import PROBLEM_SEPARATOR
from schemas.envelope import DEFAULT_MAX_PAYLOAD_BYTES, EventIn, validate_event

__all__ = [
    "CLOUDEVENTS_CONTENT_TYPE",
    "CLOUDEVENTS_ID_NAMESPACE",
    "cloudevent_id",
    "event_from_cloudevent",
    "is_cloudevent",
    "max_message_bytes",
    "parse_ingest_message",
]

CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json"
CLOUDEVENTS_BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"
SPEC_VERSION: Final = "1.0"

CLOUDEVENTS_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://cloudevents.io/ledger/event-id")
"""UUIDv5 namespace of ids derived from (source, id): a fixed value, so a re-delivered event gets the same id."""

_ENVELOPE_ALLOWANCE: Final = 64 * 1024
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
_REF_SEPARATORS: Final = re.compile(r"[\s,]+")

# Envelope field -> the CloudEvents attribute it came from, to name the right thing in a refusal.
_ATTRIBUTE_OF: Final = {
    "id": "id",
    "stream": "ledgerstream",
    "type": "type",
    "occurred_at": "time",
    "payload": "data",
    "subject_refs": "ledgersubjectrefs",
}
_LEADING_FIELD: Final = re.compile(r"^(id|stream|type|occurred_at|payload|subject_refs)(?=$|[.\[:])")


def max_message_bytes(max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> int:
    """Largest message value read at all: the same bound :func:`schemas.envelope.validate_event` puts on a body."""
    return 4 * max_payload_bytes + _ENVELOPE_ALLOWANCE


def parse_ingest_message(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> EventIn:
    """Turn one ingest message (its value and Kafka headers) into a validated event, or raise ValidationError."""
    if _header(headers, "ce_specversion") is not None:
        raise ValidationError(
            "message: CloudEvents binary content mode is not supported; send structured mode "
            f"({CLOUDEVENTS_CONTENT_TYPE})"
        )
    if not value:
        raise ValidationError("message: the value is empty")
    limit = max_message_bytes(max_payload_bytes)
    if len(value) > limit:
        raise ValidationError(f"message: {len(value)} bytes exceeds the limit of {limit} bytes")
    content_type = _media_type(_header(headers, "content-type"))
    if content_type == CLOUDEVENTS_BATCH_CONTENT_TYPE:
        raise ValidationError("message: CloudEvents batches are not supported; send one event per message")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # The decoder's own message may quote the input; give the position only.
        raise ValidationError(f"message: invalid JSON at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValidationError("message: must be a JSON object")
    if content_type == CLOUDEVENTS_CONTENT_TYPE or is_cloudevent(data):
        return event_from_cloudevent(data, max_payload_bytes=max_payload_bytes)
    return validate_event(data, max_payload_bytes=max_payload_bytes)


def is_cloudevent(data: Mapping[str, Any]) -> bool:
    """CloudEvents are recognised by their ``specversion`` attribute (the envelope has no such field)."""
    return "specversion" in data


def event_from_cloudevent(data: Mapping[str, Any], *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> EventIn:
    """Map a decoded CloudEvents 1.0 structured-mode event onto the envelope and validate it."""
    if data.get("specversion") != SPEC_VERSION:
        raise ValidationError(f'specversion: must be "{SPEC_VERSION}" (CloudEvents 1.0)', field="specversion")
    source = _required_string(data, "source")
    event_id = cloudevent_id(source, _required_string(data, "id"))
    _required_string(data, "type")
    _check_data_content_type(data.get("datacontenttype"))
    if "data_base64" in data:
        raise ValidationError("data_base64: binary data is not supported; send a JSON object in data", field="data")
    for name, meaning in (("time", "when the event occurred"), ("ledgerstream", "the ledger stream")):
        if data.get(name) is None:
            raise ValidationError(f"{name}: is required ({meaning})", field=name)
    if data.get("data") is None:
        raise ValidationError("data: is required (a JSON object, the event's payload)", field="data")
    envelope: dict[str, Any] = {
        "id": event_id,
        "stream": data["ledgerstream"],
        "type": data["type"],
        "occurred_at": data["time"],
        "payload": data["data"],
    }
    refs = data.get("ledgersubjectrefs")
    if refs is not None:
        envelope["subject_refs"] = _subject_refs(refs)
    try:
        return validate_event(envelope, max_payload_bytes=max_payload_bytes)
    except ValidationError as exc:
        raise _renamed(exc) from None


def cloudevent_id(source: str, event_id: str) -> str:
    """The envelope id of a CloudEvent: its own id when that is a UUID, else UUIDv5 of (source, id)."""
    if _UUID.fullmatch(event_id) and event_id.lower() != _NIL_UUID:
        return event_id.lower()
    try:
        name = orjson.dumps([source, event_id])  # unambiguous: no separator can be forged inside either string
    except orjson.JSONEncodeError:
        raise ValidationError("id: source and id must be valid Unicode", field="id") from None
    return str(uuid.uuid5(CLOUDEVENTS_ID_NAMESPACE, name.decode()))


def _required_string(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        raise ValidationError(f"{name}: is required (CloudEvents 1.0)", field=name)
    if not isinstance(value, str):
        raise ValidationError(f"{name}: must be a string", field=name)
    if not value:
        raise ValidationError(f"{name}: must not be empty", field=name)
    return value


def _check_data_content_type(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError("datacontenttype: must be a string", field="datacontenttype")
    media_type = _media_type(value)
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ValidationError(
            "datacontenttype: must be application/json (data must be a JSON object)", field="datacontenttype"
        )


def _subject_refs(value: object) -> object:
    """``ledgersubjectrefs`` as a list: a string is split on commas and white space; anything else is passed on."""
    if isinstance(value, str):
        return [ref for ref in _REF_SEPARATORS.split(value) if ref]
    return value


def _renamed(exc: ValidationError) -> ValidationError:
    """The same refusal, naming the CloudEvents attributes instead of the envelope fields they became."""
    problems = str(exc).split(PROBLEM_SEPARATOR)
    message = PROBLEM_SEPARATOR.join(_LEADING_FIELD.sub(lambda m: _ATTRIBUTE_OF[m.group(1)], p) for p in problems)
    field = None if exc.field is None else _LEADING_FIELD.sub(lambda m: _ATTRIBUTE_OF[m.group(1)], exc.field)
    return ValidationError(message, field=field)


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    """A Kafka header's value as text (header names compared without regard to case)."""
    for key, value in headers or ():
        if isinstance(key, str) and key.lower() == name:
            if value is None:
                return ""
            return bytes(value).decode("utf-8", errors="replace")
    return None


def _media_type(content_type: str | None) -> str:
    """``type/subtype`` in lower case, without parameters (RFC 9110 section 8.3.1)."""
    if content_type is None:
        return ""
    return content_type.split(";", 1)[0].strip().lower()
