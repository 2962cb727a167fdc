"""Reading ingest messages: the envelope, CloudEvents 1.0 structured mode, and refusals that name no value."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.bus.cloudevents import (
    CLOUDEVENTS_ID_NAMESPACE,
    cloudevent_id,
    event_from_cloudevent,
    max_message_bytes,
    parse_ingest_message,
)
from ledger.errors import ValidationError

REF_A = "a" * 64
REF_B = "b" * 64
SECRET_VALUE = "Jane-Doe-4711"  # must never appear in a refusal


def check_payload(status: str = "pass") -> dict[str, Any]:
    return {
        "control_id": "IAM-01",
        "check_id": "IAM-01-7",
        "status": status,
        "framework_refs": ["DORA Art. 9(4)(d)"],
        "evidence": [],
        "observed_at": "2026-11-20T10:00:00Z",
    }


def cloudevent(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "https://ci.bank.example/iam-checker",
        "type": "check.result",
        "time": "2026-11-20T10:00:00+01:00",
        "subject": "host-001",
        "datacontenttype": "application/json",
        "ledgerstream": "controls/iam-01/host-001",
        "data": check_payload(),
    }
    for name, value in changes.items():
        if value is ...:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def envelope(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "00000000-0000-4000-8000-000000000001",
        "stream": "controls/iam-01/host-001",
        "type": "check.result",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": check_payload(),
    }
    event.update(changes)
    return event


def refusal(value: bytes | None, headers: list[tuple[str, bytes | None]] | None = None) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_ingest_message(value, headers or [])
    message = str(caught.value)
    assert SECRET_VALUE not in message
    return message


# --- the envelope ------------------------------------------------------------------------------------


def test_envelope_message_is_read_as_the_envelope() -> None:
    event = parse_ingest_message(orjson.dumps(envelope(subject_refs=[REF_A])))
    assert event.id == "00000000-0000-4000-8000-000000000001"
    assert event.stream == "controls/iam-01/host-001"
    assert event.type == "check.result"
    assert event.payload == check_payload()
    assert event.subject_refs == [REF_A]


def test_envelope_errors_are_the_envelope_errors() -> None:
    message = refusal(orjson.dumps(envelope(stream="/bad//stream", payload={"secret": SECRET_VALUE, "n": 1.5})))
    assert "stream:" in message
    assert "/bad//stream" not in message


# --- CloudEvents mapping -----------------------------------------------------------------------------


def test_cloudevent_maps_onto_the_envelope() -> None:
    event = parse_ingest_message(orjson.dumps(cloudevent(ledgersubjectrefs=f"{REF_A}, {REF_B}")))
    assert event.id == str(
        uuid.uuid5(CLOUDEVENTS_ID_NAMESPACE, '["https://ci.bank.example/iam-checker","A234-1234-1234"]')
    )
    assert event.stream == "controls/iam-01/host-001"
    assert event.type == "check.result"
    assert event.occurred_at.isoformat() == "2026-11-20T09:00:00+00:00"
    assert event.payload == check_payload()
    assert event.subject_refs == [REF_A, REF_B]
    assert event.subjects == []  # the CloudEvents subject names an object of the source, not a person


def test_cloudevent_uuid_id_is_kept_in_lower_case() -> None:
    event = parse_ingest_message(orjson.dumps(cloudevent(id="5C4D2D8E-2E5B-4A39-9E8E-0A1B2C3D4E5F")))
    assert event.id == "5c4d2d8e-2e5b-4a39-9e8e-0a1b2c3d4e5f"


def test_derived_ids_are_deterministic_and_scoped_by_source() -> None:
    first = cloudevent_id("urn:service:a", "42")
    assert first == cloudevent_id("urn:service:a", "42")
    assert uuid.UUID(first).version == 5
    assert first != cloudevent_id("urn:service:b", "42")
    assert first != cloudevent_id("urn:service:a", "43")
    # no separator trick: ("a,b", "c") and ("a", "b,c") differ
    assert cloudevent_id("a,b", "c") != cloudevent_id("a", "b,c")
    assert cloudevent_id("urn:x", "00000000-0000-0000-0000-000000000000") != "00000000-0000-0000-0000-000000000000"


def test_subject_refs_as_array_and_datacontenttype_variants() -> None:
    event = event_from_cloudevent(
        cloudevent(ledgersubjectrefs=[REF_B], datacontenttype="application/json; charset=utf-8")
    )
    assert event.subject_refs == [REF_B]
    assert event_from_cloudevent(cloudevent(datacontenttype=...)).type == "check.result"
    assert event_from_cloudevent(cloudevent(datacontenttype="application/vnd.bank+json")).type == "check.result"


def test_content_type_header_marks_a_cloudevent() -> None:
    headers = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    assert parse_ingest_message(orjson.dumps(cloudevent()), headers).stream == "controls/iam-01/host-001"
    # Announced as a CloudEvent but lacking specversion: refused as a CloudEvent, not read as an envelope.
    message = refusal(orjson.dumps(envelope()), [("Content-Type", b"application/cloudevents+json")])
    assert message.startswith("specversion:")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"specversion": "0.3"}, "specversion: must be"),
        ({"specversion": 1.0}, "specversion: must be"),
        ({"id": ...}, "id: is required"),
        ({"id": ""}, "id: must not be empty"),
        ({"id": 7}, "id: must be a string"),
        ({"source": ...}, "source: is required"),
        ({"type": ...}, "type: is required"),
        ({"type": "com.Example.Object.Deleted"}, "type: must be two or more dot-separated lowercase words"),
        ({"type": "deleted"}, "type: must be two or more"),
        ({"time": ...}, "time: is required"),
        ({"time": "2026-11-20T10:00:00"}, "time: has no UTC offset"),
        ({"ledgerstream": ...}, "ledgerstream: is required"),
        ({"ledgerstream": "a//b"}, "ledgerstream: must be segments"),
        ({"data": ...}, "data: is required"),
        ({"data": [1, 2]}, "data: must be a JSON object"),
        ({"data": {"control_id": SECRET_VALUE}}, "data.check_id: is required"),
        ({"data_base64": "AAAA", "data": ...}, "data_base64: binary data is not supported"),
        ({"datacontenttype": "text/plain"}, "datacontenttype: must be application/json"),
        ({"datacontenttype": 5}, "datacontenttype: must be a string"),
        ({"ledgersubjectrefs": SECRET_VALUE}, "ledgersubjectrefs[0]: must be 64 lowercase hexadecimal digits"),
        ({"ledgersubjectrefs": 12}, "ledgersubjectrefs: must be a JSON array"),
    ],
)
def test_bad_cloudevents_are_refused_naming_the_attribute(changes: dict[str, Any], expected: str) -> None:
    message = refusal(orjson.dumps(cloudevent(**changes)))
    assert message.startswith(expected), message


def test_refusal_field_names_the_cloudevents_attribute() -> None:
    with pytest.raises(ValidationError) as caught:
        event_from_cloudevent(cloudevent(time="yesterday"))
    assert caught.value.field == "time"


# --- framing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "message: the value is empty"),
        (b"", "message: the value is empty"),
        (b"{not json", "message: invalid JSON at line 1 column 2"),
        (b"[1, 2]", "message: must be a JSON object"),
        (b'"text"', "message: must be a JSON object"),
        (b"\xff\xfe", "message: invalid JSON"),
    ],
)
def test_framing_errors(value: bytes | None, expected: str) -> None:
    assert refusal(value).startswith(expected)


def test_oversize_message_is_refused_before_parsing() -> None:
    limit = max_message_bytes(1024)
    big = orjson.dumps(envelope(payload={"blob": "x" * limit}))
    with pytest.raises(ValidationError, match=f"exceeds the limit of {limit} bytes"):
        parse_ingest_message(big, max_payload_bytes=1024)


def test_oversize_payload_is_refused() -> None:
    payload = {**check_payload(), "note": "x" * 2000}
    with pytest.raises(ValidationError, match=r"data: is .* bytes as compact JSON; the limit is 1024 bytes"):
        parse_ingest_message(orjson.dumps(cloudevent(type="note.added", data=payload)), max_payload_bytes=1024)


def test_binary_mode_and_batches_are_refused() -> None:
    assert "binary content mode is not supported" in refusal(b"{}", [("ce_specversion", b"1.0")])
    batch: list[tuple[str, bytes | None]] = [("content-type", b"application/cloudevents-batch+json")]
    assert "batches are not supported" in refusal(orjson.dumps([cloudevent()]), batch)


# --- nothing but ValidationError, whatever arrives -----------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_attribute_values = st.one_of(
    _json,
    st.sampled_from(
        [
            "1.0",
            "check.result",
            "controls/a",
            "2026-11-20T10:00:00Z",
            "application/json",
            "00000000-0000-4000-8000-000000000001",
            "\ud800",
            REF_A,
        ]
    ),
)
_attribute_names = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "datacontenttype",
        "data",
        "data_base64",
        "ledgerstream",
        "ledgersubjectrefs",
        "stream",
        "occurred_at",
        "payload",
        "subject_refs",
        "subjects",
        "expected_stream_seq",
    ]
)
_headers = st.lists(
    st.tuples(
        st.sampled_from(["content-type", "Content-Type", "ce_specversion", "ce_id", "other"]),
        st.one_of(
            st.none(),
            st.binary(max_size=40),
            st.sampled_from([b"application/cloudevents+json", b"application/cloudevents-batch+json"]),
        ),
    ),
    max_size=3,
)


def _only_validation_errors(value: bytes | None, headers: list[tuple[str, bytes | None]]) -> None:
    with contextlib.suppress(ValidationError):
        parse_ingest_message(value, headers, max_payload_bytes=4096)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), st.binary(max_size=200)), _headers)
def test_random_bytes_raise_only_validation_errors(
    value: bytes | None, headers: list[tuple[str, bytes | None]]
) -> None:
    _only_validation_errors(value, headers)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_attribute_names, _attribute_values, max_size=10), _headers)
def test_random_objects_raise_only_validation_errors(
    attributes: dict[str, Any], headers: list[tuple[str, bytes | None]]
) -> None:
    try:
        value = orjson.dumps(attributes)
    except (orjson.JSONEncodeError, TypeError):
        value = repr(attributes).encode("utf-8", errors="surrogatepass")
    _only_validation_errors(value, headers)
    with pytest.raises(ValidationError):  # a mapping given directly is checked the same way
        event_from_cloudevent({**attributes, "specversion": "0.1"})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_attribute_names, _attribute_values, max_size=6))
def test_mutated_cloudevents_raise_only_validation_errors(changes: dict[str, Any]) -> None:
    try:
        value = orjson.dumps({**cloudevent(), **changes})
    except (orjson.JSONEncodeError, TypeError):
        return
    _only_validation_errors(value, [])
    with contextlib.suppress(ValidationError):
        event_from_cloudevent({**cloudevent(), **changes})


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_any_source_and_id_give_a_uuid_or_a_validation_error(source: str, event_id: str) -> None:
    try:
        result = cloudevent_id(source, event_id)
    except ValidationError:
        return
    assert uuid.UUID(result)
