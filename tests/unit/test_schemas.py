"""Tests of the event envelope, the typed payloads, the shared types and the timestamp helpers.

Every rejection is checked three ways: it raises ``ledger.errors.ValidationError`` (nothing else), its
``field`` and message name the field path, and the message does not repeat the rejected value.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import ValidationError
from schemas import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_SAFE_INTEGER,
    PAYLOAD_MODELS,
    ApprovalDecision,
    CheckResult,
    EventIn,
    IncidentClassified,
    format_timestamp,
    parse_timestamp,
    validate_event,
)

SECRET = "Jane-Doe-secret-7f3a"  # stands for personal data: must never appear in an error message

Event = dict[str, Any]


# --- valid examples ----------------------------------------------------------------------------------


def envelope(event_type: str, payload: dict[str, Any], **extra: Any) -> Event:
    return {
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "stream": "controls/iam/mfa",
        "type": event_type,
        "occurred_at": "2026-11-23T10:00:00Z",
        "payload": payload,
        **extra,
    }


def check_result() -> Event:
    return envelope(
        "check.result",
        {
            "control_id": "IAM-01",
            "check_id": "mfa-enforced-admins",
            "status": "pass",
            "framework_refs": ["DORA Art. 9(4)(c)", "ISO27001:A.8.15"],
            "evidence": [
                {
                    "name": "mfa-report.json",
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "size": 18234,
                    "uri": "https://evidence.blob.core.windows.net/reports/mfa-report.json",
                }
            ],
            "observed_at": "2026-11-23T09:58:12.345+01:00",
            "summary": "All 42 administrators enrol MFA.",
            "details": {"admins": 42, "ratio": "1.00", "tool": {"name": "scanner", "version": "3.2.1"}},
        },
        producer="scanner@bank.be",
        subjects=["E12345"],
        expected_stream_seq=7,
    )


def approval_decision() -> Event:
    return envelope(
        "approval.decision",
        {
            "subject": {"kind": "change", "ref": "CHG-2026-0117"},
            "decision": "approved",
            "requester": "alice",
            "approver": "bob",
            "rationale": "Tested in staging; rollback plan attached.",
            "decided_at": "2026-11-23T10:00:00Z",
        },
        stream="changes/CHG-2026-0117",
        subjects=["alice", "bob"],
    )


def bool_input(value: bool) -> dict[str, Any]:
    return {"value": value, "estimated": False}


def incident_classified() -> Event:
    return envelope(
        "incident.classified",
        {
            "incident_id": "INC-2026-0042",
            "classified_at": "2026-11-23T11:30:00Z",
            "classified_by": "soc-duty-officer",
            "rule_version": "rts-2024-1772/v1",
            "affects_critical_functions": bool_input(True),
            "affects_authorised_financial_services": bool_input(True),
            "malicious_unauthorised_access": bool_input(False),
            "malicious_access_may_cause_data_loss": bool_input(False),
            "clients_affected": {
                "value": 120000,
                "estimated": True,
                "source": "crm",
                "as_of": "2026-11-23T11:00:00Z",
            },
            "clients_total": {"value": 900000, "estimated": False},
            "counterparts_affected": {"value": 3, "estimated": False},
            "counterparts_total": {"value": 40, "estimated": False},
            "transactions_affected_count": {"value": 5000, "estimated": True},
            "transactions_daily_average_count": {"value": 80000, "estimated": False},
            "transactions_affected_value_eur": {"value": "1234567.89", "estimated": True},
            "transactions_daily_average_value_eur": {"value": "98000000", "estimated": False},
            "relevant_client_or_counterpart_affected": bool_input(False),
            "media_attention": bool_input(True),
            "repeated_complaints": bool_input(False),
            "regulatory_requirements_at_risk": bool_input(False),
            "likely_client_loss": bool_input(False),
            "duration_minutes": {"value": 1500, "estimated": False},
            "critical_service_downtime_minutes": {"value": 95, "estimated": False},
            "member_states_affected": {"value": ["BE", "LU", "NL"], "estimated": False},
            "data_impact": bool_input(False),
            "gross_costs_losses_eur": {"value": "150000.00", "estimated": True, "source": "finance"},
        },
        stream="incident/INC-2026-0042",
    )


def minimal_incident() -> Event:
    event = incident_classified()
    optional = set(IncidentClassified.model_fields) - {
        name for name, info in IncidentClassified.model_fields.items() if info.is_required()
    }
    for name in optional:
        event["payload"].pop(name, None)
    return event


def free_form() -> Event:
    return envelope(
        "key.rotated",
        {"key_id": "log-2026", "not_after": "2027-01-01T00:00:00Z", "bits": 256},
        subjects=["E12345"],
        subject_refs=["5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"],
    )


VALID_EVENTS: dict[str, Callable[[], Event]] = {
    "check.result": check_result,
    "approval.decision": approval_decision,
    "incident.classified": incident_classified,
    "incident.classified (gate only)": minimal_incident,
    "unknown type, free-form payload": free_form,
}


@pytest.mark.parametrize("make", VALID_EVENTS.values(), ids=VALID_EVENTS.keys())
@pytest.mark.parametrize(
    "encode", [lambda e: e, orjson.dumps, lambda e: orjson.dumps(e).decode()], ids=["dict", "bytes", "str"]
)
def test_valid_events_pass(make: Callable[[], Event], encode: Callable[[Event], Any]) -> None:
    data = make()
    event = validate_event(encode(data))
    assert isinstance(event, EventIn)
    assert event.payload == data["payload"]  # stored as sent, not rewritten by the typed model
    assert event.type == data["type"]


def test_typed_payload_is_available() -> None:
    assert isinstance(validate_event(check_result()).typed_payload(), CheckResult)
    assert isinstance(validate_event(approval_decision()).typed_payload(), ApprovalDecision)
    assert isinstance(validate_event(incident_classified()).typed_payload(), IncidentClassified)
    assert validate_event(free_form()).typed_payload() is None
    assert set(PAYLOAD_MODELS) == {
        "check.result",
        "approval.decision",
        "incident.classified",
        "incident.reclassified",
        "incident.detected",
        "incident.report_submitted",
        "incident.delay_notice",
        "incident.recovered",
        "incident.closed",
        "incident.root_cause",
        "threat.classified",
    }


def test_envelope_is_normalised() -> None:
    data = check_result()
    data["id"] = "0F8FAD5B-D9CB-469F-A165-70867728950E"
    data["occurred_at"] = "2026-11-23t11:00:00.123456789+01:00"
    event = validate_event(data)
    assert event.id == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert event.occurred_at == datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    dumped = event.model_dump(mode="json")
    assert dumped["occurred_at"] == "2026-11-23T10:00:00.123456Z"
    assert validate_event(orjson.dumps(dumped)) == event


def test_optional_envelope_fields_default() -> None:
    event = validate_event(envelope("key.rotated", {}))
    assert event.producer is None
    assert event.subjects == []
    assert event.subject_refs == []
    assert event.expected_stream_seq is None


def test_event_is_frozen() -> None:
    event = validate_event(free_form())
    with pytest.raises(Exception, match="frozen"):
        event.stream = "other"  # type: ignore[misc]


def test_json_schema_can_be_generated() -> None:
    schema = EventIn.model_json_schema()
    assert schema["properties"]["occurred_at"]["format"] == "date-time"
    assert schema["additionalProperties"] is False
    for model in PAYLOAD_MODELS.values():
        assert model.model_json_schema()["additionalProperties"] is False


# --- rejections ----------------------------------------------------------------------------------


def rejected(data: Any, field: str | None, *, secret: object = SECRET, **kwargs: Any) -> ValidationError:
    """Expect ``data`` rejected at ``field``, with a message that names the field and hides ``secret``."""
    with pytest.raises(ValidationError) as caught:
        validate_event(data, **kwargs)
    error = caught.value
    assert type(error) is ValidationError
    assert error.field == field, str(error)
    message = str(error)
    if field is not None:
        assert message.startswith(f"{field}: "), message
    if secret is not None:
        assert str(secret) not in message, message
    assert error.__cause__ is None  # pydantic's error text (which quotes the input) is not chained
    return error


def with_field(make: Callable[[], Event], path: str, value: Any) -> Event:
    """A copy of a valid event with ``path`` (dotted; ``[n]`` for list items) set to ``value``."""
    data = make()
    target: Any = data
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    target[int(last) if last.isdigit() else last] = value
    return data


def without_field(make: Callable[[], Event], path: str) -> Event:
    data = make()
    target: Any = data
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    del target[last]
    return data


ENVELOPE_CASES = [
    ("id", f"{SECRET}", "must be a UUID"),
    ("id", "{0f8fad5b-d9cb-469f-a165-70867728950e}", "must be a UUID"),
    ("id", "0f8fad5bd9cb469fa16570867728950e", "must be a UUID"),
    ("id", "0f8fad5b-d9cb-469f-a165-70867728950e\n", "must be a UUID"),
    ("id", "00000000-0000-0000-0000-000000000000", "nil UUID"),
    ("id", 12345, "must be a string"),
    ("stream", f"/{SECRET}", "separated by single '/'"),
    ("stream", f"{SECRET}/", "separated by single '/'"),
    ("stream", f"controls//{SECRET}", "separated by single '/'"),
    ("stream", f"controls/{SECRET} x", "separated by single '/'"),
    ("stream", f"controls/{SECRET}\n", "separated by single '/'"),
    ("stream", f"controls/.{SECRET}", "separated by single '/'"),
    ("stream", "", "must not be empty"),
    ("stream", "a" * 201, "at most 200 characters"),
    ("type", "Check.Result", "dot-separated lowercase words"),
    ("type", "evidence", "dot-separated lowercase words"),
    ("type", "check..result", "dot-separated lowercase words"),
    ("type", "a." + "b" * 99, "at most 100 characters"),
    ("occurred_at", "2026-13-01T00:00:00Z", "not a valid calendar date"),
    ("occurred_at", "2026-02-30T00:00:00Z", "not a valid calendar date"),
    ("occurred_at", "2026-11-23 10:00", "RFC 3339"),
    ("occurred_at", "2026-11-23T10:00:00", "no UTC offset"),
    ("occurred_at", "2026-11-23T10:00:00+25:00", "offset out of range"),
    ("occurred_at", "2026-11-23T10:00:00+01:60", "offset out of range"),
    ("occurred_at", "2026-11-23T10:00:00+0100", "RFC 3339"),
    ("occurred_at", "2026-11-23T24:00:00Z", "not a valid calendar date"),
    ("occurred_at", "2016-12-31T23:59:60Z", "leap second"),
    ("occurred_at", "1969-12-31T23:59:59Z", "between 1970"),
    ("occurred_at", "1970-01-01T00:30:00+01:00", "between 1970"),
    ("occurred_at", "9999-12-31T23:00:00-05:00", "between 1970"),
    ("occurred_at", "26-11-23T10:00:00Z", "RFC 3339"),
    ("occurred_at", "+12026-11-23T10:00:00Z", "RFC 3339"),
    ("occurred_at", "2026-11-23", "RFC 3339"),
    ("occurred_at", "2026-11-23T10:00:00.Z", "RFC 3339"),
    ("occurred_at", "2026-11-23T10:00:00.1234567890Z", "RFC 3339"),
    ("occurred_at", "２０２６-11-23T10:00:00Z", "RFC 3339"),  # full-width digits
    ("occurred_at", 1763892000, "RFC 3339"),
    ("producer", "", "must not be empty"),
    ("producer", SECRET * 20, "at most 256 characters"),
    ("subjects", [SECRET] * 33, "at most 32 items"),
    ("subjects[0]", "", "must not be empty"),
    ("subjects[0]", SECRET * 20, "at most 256 characters"),
    ("subjects[0]", f" {SECRET}", "whitespace"),
    ("subjects[0]", 42, "must be a string"),
    ("subjects", SECRET, "must be a JSON array"),
    ("subject_refs", ["ab" * 32] * 33, "at most 32 items"),
    ("subject_refs[0]", SECRET, "64 lowercase hexadecimal digits"),
    ("subject_refs[0]", "AB" * 32, "64 lowercase hexadecimal digits"),
    ("expected_stream_seq", -1, "must be >= 0"),
    ("expected_stream_seq", MAX_SAFE_INTEGER + 1, "must be <="),
    ("expected_stream_seq", 3.0, "must be an integer"),
    ("expected_stream_seq", True, "must be an integer"),
    ("expected_stream_seq", "3", "must be an integer"),
    ("payload", [SECRET], "must be a JSON object"),
    ("payload", SECRET, "must be a JSON object"),
]


@pytest.mark.parametrize(("path", "value", "expected"), ENVELOPE_CASES)
def test_envelope_rules(path: str, value: Any, expected: str) -> None:
    data = with_field(free_form, path, value)
    error = rejected(data, path)
    assert expected in str(error)


def test_subjects_and_refs_together_are_capped() -> None:
    data = with_field(free_form, "subjects", [f"E{n}" for n in range(20)])
    data["subject_refs"] = ["ab" * 32] * 13
    error = rejected(data, "subject_refs")
    assert "together" in str(error)


@pytest.mark.parametrize("field", ["id", "stream", "type", "occurred_at", "payload"])
def test_required_envelope_fields(field: str) -> None:
    error = rejected(without_field(free_form, field), field)
    assert str(error) == f"{field}: is required"


def test_unknown_top_level_field_is_named() -> None:
    data = free_form()
    data["stream_seq"] = SECRET
    error = rejected(data, "stream_seq")
    assert str(error) == "stream_seq: unknown field"


def test_several_problems_are_listed_first_one_is_the_field() -> None:
    data = free_form()
    data["stream"] = "/x"
    data["type"] = "X"
    data["extra"] = 1
    error = rejected(data, "stream")
    assert "type: " in str(error)
    assert "extra: unknown field" in str(error)


# --- the payload: float-free, integer-safe, size-capped -------------------------------------------


def test_float_deep_in_free_form_payload_names_its_path() -> None:
    data = free_form()
    data["payload"]["metrics"] = {"ratio": 0.25, "name": SECRET}
    error = rejected(data, "payload.metrics.ratio", secret="0.25")
    assert str(error) == "payload.metrics.ratio: floats are not allowed; send decimals as strings"


def test_float_in_json_text_is_rejected() -> None:
    body = b'{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","stream":"s","type":"a.b",'
    body += b'"occurred_at":"2026-11-23T10:00:00Z","payload":{"list":[1,{"x":[2,3.5]}]}}'
    rejected(body, "payload.list[1].x[1]", secret="3.5")
    rejected(body.replace(b"3.5", b"1e3"), "payload.list[1].x[1]")
    rejected(body.replace(b"3.5", b"3.0"), "payload.list[1].x[1]")


@pytest.mark.parametrize("number", [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**64, 10**30])
def test_integers_beyond_2_53_are_rejected(number: int) -> None:
    data = free_form()
    data["payload"]["big"] = [number]
    error = rejected(orjson.dumps(data) if number < 2**64 else data, "payload.big[0]", secret=str(number))
    assert "2**53-1" in str(error)
    # orjson reads integers beyond 64 bits as floats: the message still names the real problem
    text = orjson.dumps(free_form()).replace(b'"bits":256', b'"bits":' + str(number).encode())
    assert "2**53-1" in str(rejected(text, "payload.bits", secret=str(number)))


def test_safe_integer_bounds_are_accepted() -> None:
    data = free_form()
    data["payload"]["bounds"] = [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, True, None, ""]
    assert validate_event(orjson.dumps(data)).payload["bounds"][0] == MAX_SAFE_INTEGER


@pytest.mark.parametrize(
    "value",
    [(1, 2), Decimal("1.5"), {1, 2}, b"bytes", datetime(2026, 1, 1, tzinfo=UTC), float("nan")],
    ids=["tuple", "decimal", "set", "bytes", "datetime", "nan"],
)
def test_python_values_that_are_not_json_are_rejected(value: object) -> None:
    data = free_form()
    data["payload"]["nested"] = {"value": value}
    rejected(data, "payload.nested.value")


def test_non_string_key_is_rejected() -> None:
    data = free_form()
    data["payload"]["nested"] = {1: "x"}
    error = rejected(data, "payload.nested")
    assert "keys must be strings" in str(error)


def test_lone_surrogate_is_rejected_with_its_path() -> None:
    data = free_form()
    data["payload"]["nested"] = ["ok", "bad \ud800"]
    rejected(data, "payload.nested[1]")
    subject = with_field(free_form, "subjects", ["E1\udc00"])
    assert "Unicode" in str(rejected(subject, "subjects[0]"))


def test_nesting_depth_is_capped() -> None:
    deep: Any = "leaf"
    for _ in range(70):
        deep = [deep]
    data = free_form()
    data["payload"]["deep"] = deep
    error = rejected(data, f"payload.deep{'[0]' * 63}")
    assert "deeper than 64" in str(error)
    error = rejected(orjson.dumps(data), f"payload.deep{'[0]' * 63}")


def test_odd_keys_are_quoted_in_paths() -> None:
    data = free_form()
    data["payload"]["a.b c"] = {"x": 1.5}
    rejected(data, 'payload["a.b c"].x')


def test_payload_size_limit_is_configurable() -> None:
    data = free_form()
    data["payload"]["blob"] = "x" * 1000
    size = len(orjson.dumps(data["payload"]))
    assert validate_event(data, max_payload_bytes=size).payload == data["payload"]
    error = rejected(data, "payload", max_payload_bytes=size - 1)
    assert str(error) == f"payload: is {size} bytes as compact JSON; the limit is {size - 1} bytes"


def test_default_payload_limit_is_256_kib() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 262144
    data = free_form()
    data["payload"] = {"blob": ""}
    overhead = len(orjson.dumps(data["payload"]))
    data["payload"]["blob"] = "x" * (DEFAULT_MAX_PAYLOAD_BYTES - overhead)
    validate_event(orjson.dumps(data))
    data["payload"]["blob"] += "x"
    rejected(orjson.dumps(data), "payload")


def test_huge_body_is_refused_before_parsing() -> None:
    assert str(rejected(b" " * (5 * 1024 + 65537), None, max_payload_bytes=1024)) == "event: body is too large"


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"id": }', b"\xff\xfe", b'{"a":1}garbage', b"NaN", b'{"a": Infinity}', b'"\\ud800"'],
)
def test_invalid_json_is_rejected(body: bytes) -> None:
    error = rejected(body, None)
    assert str(error).startswith("event: invalid JSON at line ")


@pytest.mark.parametrize("body", [b"[]", b"42", b'"text"', b"null", b"true"])
def test_json_that_is_not_an_object_is_rejected(body: bytes) -> None:
    assert str(rejected(body, None)) == "event: must be a JSON object"


@pytest.mark.parametrize("value", [None, 42, [1], object()])
def test_python_input_that_is_not_a_mapping_is_rejected(value: Any) -> None:
    assert str(rejected(value, None)) == "event: must be a JSON object"


# --- check.result ---------------------------------------------------------------------------------

CHECK_CASES = [
    ("payload.status", SECRET, "must be one of pass, fail, error, not_applicable"),
    ("payload.status", "PASS", "must be one of pass, fail, error, not_applicable"),
    ("payload.control_id", "", "must not be empty"),
    ("payload.control_id", 7, "must be a string"),
    ("payload.framework_refs[1]", "", "must not be empty"),
    ("payload.framework_refs", SECRET, "must be a JSON array"),
    ("payload.evidence[0].sha256", SECRET, "64 lowercase hexadecimal digits"),
    (
        "payload.evidence[0].sha256",
        "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
        "hexadecimal",
    ),
    ("payload.evidence[0].size", -1, "must be >= 0"),
    ("payload.evidence[0].size", "18234", "must be an integer"),
    ("payload.evidence[0].uri", "h" * 2049, "at most 2048 characters"),
    ("payload.evidence[0].name", "", "must not be empty"),
    ("payload.observed_at", "2026-11-23T09:58:12", "no UTC offset"),
    ("payload.observed_at", "2026-13-01T00:00:00Z", "not a valid calendar date"),
    ("payload.summary", SECRET * 101, "at most 2000 characters"),
    ("payload.details", SECRET, "must be a JSON object"),
]


@pytest.mark.parametrize(("path", "value", "expected"), CHECK_CASES)
def test_check_result_rules(path: str, value: Any, expected: str) -> None:
    error = rejected(with_field(check_result, path, value), path)
    assert expected in str(error)


def test_check_result_status_message() -> None:
    error = rejected(with_field(check_result, "payload.status", "skipped"), "payload.status", secret="skipped")
    assert str(error) == "payload.status: must be one of pass, fail, error, not_applicable"


@pytest.mark.parametrize("field", ["control_id", "check_id", "status", "observed_at"])
def test_check_result_required_fields(field: str) -> None:
    assert str(rejected(without_field(check_result, f"payload.{field}"), f"payload.{field}")).endswith("is required")


def test_unknown_field_in_typed_payload_is_rejected() -> None:
    data = check_result()
    data["payload"]["severity"] = SECRET
    assert str(rejected(data, "payload.severity")) == "payload.severity: unknown field"
    data = check_result()
    data["payload"]["evidence"][0]["owner"] = SECRET
    assert str(rejected(data, "payload.evidence[0].owner")) == "payload.evidence[0].owner: unknown field"


def test_float_in_check_result_details_is_rejected_with_path() -> None:
    data = check_result()
    data["payload"]["details"]["tool"]["score"] = 9.5
    rejected(data, "payload.details.tool.score", secret="9.5")


def test_float_in_typed_integer_field_gets_the_float_message() -> None:
    error = rejected(with_field(check_result, "payload.evidence[0].size", 12.0), "payload.evidence[0].size")
    assert "floats are not allowed" in str(error)


# --- approval.decision ----------------------------------------------------------------------------


@pytest.mark.parametrize("approver", ["alice", "Alice", " ALICE "])
def test_approver_must_differ_from_requester(approver: str) -> None:
    data = with_field(approval_decision, "payload.approver", approver)
    error = rejected(data, "payload.approver", secret="alice")
    assert str(error) == "payload.approver: must differ from requester (four-eyes principle)"


def test_four_eyes_message_hides_identity() -> None:
    data = approval_decision()
    data["payload"]["requester"] = data["payload"]["approver"] = SECRET
    rejected(data, "payload.approver")


APPROVAL_CASES = [
    ("payload.decision", "maybe", "must be one of approved, rejected"),
    ("payload.rationale", "", "must not be empty"),
    ("payload.rationale", "   \n\t", "must not be blank"),
    ("payload.rationale", "r" * 4001, "at most 4000 characters"),
    ("payload.subject.kind", "", "must not be empty"),
    ("payload.subject", SECRET, "must be a JSON object"),
    ("payload.requester", "", "must not be empty"),
    ("payload.decided_at", "yesterday", "RFC 3339"),
]


@pytest.mark.parametrize(("path", "value", "expected"), APPROVAL_CASES)
def test_approval_rules(path: str, value: Any, expected: str) -> None:
    error = rejected(with_field(approval_decision, path, value), path)
    assert expected in str(error)


def test_approval_subject_needs_its_reference() -> None:
    rejected(without_field(approval_decision, "payload.subject.ref"), "payload.subject.ref")


# --- incident.classified --------------------------------------------------------------------------

GATE_INPUTS = [
    "affects_critical_functions",
    "affects_authorised_financial_services",
    "malicious_unauthorised_access",
    "malicious_access_may_cause_data_loss",
]


@pytest.mark.parametrize("field", [*GATE_INPUTS, "incident_id", "classified_at", "classified_by"])
def test_incident_required_fields(field: str) -> None:
    assert str(rejected(without_field(incident_classified, f"payload.{field}"), f"payload.{field}")).endswith(
        "is required"
    )


def test_incident_optional_inputs_may_be_null() -> None:
    data = incident_classified()
    data["payload"]["media_attention"] = None
    model = validate_event(data).typed_payload()
    assert isinstance(model, IncidentClassified)
    assert model.media_attention is None


INCIDENT_CASES = [
    ("payload.affects_critical_functions", True, "must be a JSON object"),
    ("payload.affects_critical_functions.value", "yes", "must be true or false"),
    ("payload.affects_critical_functions.value", 1, "must be true or false"),
    ("payload.clients_affected.value", -1, "must be >= 0"),
    ("payload.clients_affected.value", "120000", "must be an integer"),
    ("payload.clients_affected.value", True, "must be an integer"),
    ("payload.clients_affected.source", "", "must not be empty"),
    ("payload.clients_affected.as_of", "2026-11-23T11:00:00", "no UTC offset"),
    ("payload.gross_costs_losses_eur.value", "1e5", "non-negative decimal number"),
    ("payload.gross_costs_losses_eur.value", "0150000", "non-negative decimal number"),
    ("payload.gross_costs_losses_eur.value", "150000.", "non-negative decimal number"),
    ("payload.gross_costs_losses_eur.value", "-5", "non-negative decimal number"),
    ("payload.gross_costs_losses_eur.value", "1 000", "non-negative decimal number"),
    ("payload.gross_costs_losses_eur.value", "1" * 41, "at most 40 characters"),
    ("payload.gross_costs_losses_eur.value", 150000, "must be a string"),
    ("payload.transactions_affected_value_eur.value", "１２", "non-negative decimal number"),
    ("payload.member_states_affected.value[1]", "be", "two upper-case letters"),
    ("payload.member_states_affected.value[1]", "US", "EU/EEA Member State"),
    ("payload.member_states_affected.value[1]", "EL", "Greece is GR"),
    ("payload.member_states_affected.value", ["BE", "BE"], "twice"),
    ("payload.member_states_affected.value", "BE", "must be a JSON array"),
    ("payload.duration_minutes.value", -5, "must be >= 0"),
]


@pytest.mark.parametrize(("path", "value", "expected"), INCIDENT_CASES)
def test_incident_rules(path: str, value: Any, expected: str) -> None:
    error = rejected(with_field(incident_classified, path, value), path)
    assert expected in str(error)


def test_incident_input_needs_estimated_flag() -> None:
    rejected(
        without_field(incident_classified, "payload.clients_total.estimated"),
        "payload.clients_total.estimated",
    )


def test_incident_decimal_as_float_is_rejected() -> None:
    data = with_field(incident_classified, "payload.gross_costs_losses_eur.value", 150000.5)
    assert "floats are not allowed" in str(rejected(data, "payload.gross_costs_losses_eur.value"))


def test_data_loss_needs_malicious_access() -> None:
    data = with_field(incident_classified, "payload.malicious_access_may_cause_data_loss.value", True)
    error = rejected(data, "payload.malicious_access_may_cause_data_loss")
    assert "9(5)(b)" in str(error)
    data["payload"]["malicious_unauthorised_access"]["value"] = True
    validate_event(data)


@pytest.mark.parametrize(
    ("part", "whole"),
    [("clients_affected", "clients_total"), ("counterparts_affected", "counterparts_total")],
)
def test_affected_cannot_exceed_total(part: str, whole: str) -> None:
    data = incident_classified()
    data["payload"][part]["value"] = data["payload"][whole]["value"] + 1
    assert str(rejected(data, f"payload.{part}")) == f"payload.{part}: must not exceed {whole}"


def test_transactions_affected_may_exceed_the_daily_average() -> None:
    data = incident_classified()
    data["payload"]["transactions_affected_count"]["value"] = 200000  # a multi-day incident
    validate_event(data)


def test_unknown_incident_input_is_rejected() -> None:
    data = incident_classified()
    data["payload"]["primary_criteria_met"] = bool_input(True)
    rejected(data, "payload.primary_criteria_met")


# --- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:00Z", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23t10:00:00z", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T11:00:00+01:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T05:30:00-04:30", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T10:00:00-00:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T10:00:00.5Z", datetime(2026, 11, 23, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-23T10:00:00.123456999Z", datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)),  # truncated
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2028-02-29T00:00:00Z", datetime(2028, 2, 29, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["2026-13-01T00:00:00Z", "2026-11-23 10:00", "2026-11-23T10:00:00", "2026-11-23T10:00:00+25:00", "", "Z"],
)
def test_parse_timestamp_rejects_with_field_name(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_timestamp(text, field="decided_at")
    assert caught.value.field == "decided_at"
    assert str(caught.value).startswith("decided_at: ")


def test_parse_timestamp_rejects_non_strings() -> None:
    with pytest.raises(ValidationError):
        parse_timestamp(1763892000)  # type: ignore[arg-type]


def test_format_timestamp_is_fixed_width_utc() -> None:
    assert format_timestamp(datetime(2026, 11, 23, 10, tzinfo=UTC)) == "2026-11-23T10:00:00.000000Z"
    cet = timezone(timedelta(hours=1))
    assert format_timestamp(datetime(2026, 1, 1, 0, 30, 0, 42, tzinfo=cet)) == "2025-12-31T23:30:00.000042Z"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 1),
        datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
        datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))),
    ],
    ids=["naive", "before-1970", "after-9999-in-utc"],
)
def test_format_timestamp_rejects(moment: datetime) -> None:
    with pytest.raises(ValidationError):
        format_timestamp(moment)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=45)), timezone(-timedelta(hours=11))]),
    )
)
def test_timestamp_round_trip(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert len(text) == 27
    assert parse_timestamp(text) == moment
    assert format_timestamp(parse_timestamp(text)) == text


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
)
def test_formatted_timestamps_sort_in_time_order(a: datetime, b: datetime) -> None:
    a, b = a.replace(tzinfo=UTC), b.replace(tzinfo=UTC)
    assert (format_timestamp(a) < format_timestamp(b)) == (a < b)


def test_aware_datetime_is_accepted_for_occurred_at() -> None:
    data = free_form()
    data["occurred_at"] = datetime(2026, 11, 23, 11, tzinfo=timezone(timedelta(hours=1)))
    assert validate_event(data).occurred_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    data["occurred_at"] = datetime(2026, 11, 23, 11)
    assert "no UTC offset" in str(rejected(data, "occurred_at"))


# --- parser properties: junk in, ValidationError out ----------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FIELDS = [
    "id",
    "stream",
    "type",
    "occurred_at",
    "producer",
    "subjects",
    "subject_refs",
    "payload",
    "expected_stream_seq",
]


def outcome(data: Any) -> EventIn | ValidationError:
    try:
        return validate_event(data)
    except ValidationError as error:
        assert type(error) is ValidationError
        assert error.__cause__ is None
        return error


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_junk_bytes_and_text_raise_only_validation_error(junk: bytes | str) -> None:
    outcome(junk)


@settings(max_examples=300)
@given(json_values)
def test_random_json_raises_only_validation_error(value: Any) -> None:
    outcome(value)
    outcome(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS) if _dumpable(value) else b"{}")


@settings(max_examples=500)
@given(
    make=st.sampled_from(list(VALID_EVENTS.values())),
    field=st.sampled_from(FIELDS),
    value=json_values,
)
def test_any_envelope_field_with_any_value_raises_only_validation_error(
    make: Callable[[], Event], field: str, value: Any
) -> None:
    data = make()
    data[field] = value
    result = outcome(data)
    if isinstance(result, ValidationError) and isinstance(value, str) and len(value) >= 8:
        assert value not in str(result).split(": ", 1)[-1]


@settings(max_examples=500)
@given(make=st.sampled_from(list(VALID_EVENTS.values())), data=st.data())
def test_any_payload_leaf_with_any_value_raises_only_validation_error(
    make: Callable[[], Event], data: st.DataObject
) -> None:
    event = make()
    paths = list(_leaf_paths(event["payload"]))
    path = data.draw(st.sampled_from(paths))
    value = data.draw(json_values)
    target: Any = event["payload"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    outcome(event)
    if _dumpable(event):
        outcome(orjson.dumps(event))


def _plain_json(value: Any) -> bool:
    """Reference rule for payload values: JSON without floats and with safe integers."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_SAFE_INTEGER
    if isinstance(value, list):
        return all(_plain_json(item) for item in value)
    if isinstance(value, dict):
        return all(_plain_json(item) for item in value.values())
    return False


@settings(max_examples=500)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_free_form_payload_is_accepted_exactly_when_plain_json(payload: dict[str, Any]) -> None:
    result = outcome(envelope("audit.note", payload))
    assert isinstance(result, EventIn) == _plain_json(payload), result
    if isinstance(result, ValidationError):
        assert result.field is not None
        assert result.field.startswith("payload")


@settings(max_examples=200)
@given(st.text(alphabet=string.printable + "Zz+-:.T", max_size=40))
def test_random_timestamps_raise_only_validation_error(text: str) -> None:
    try:
        parsed = parse_timestamp(text)
    except ValidationError:
        return
    assert parsed.tzinfo is UTC


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        paths.append((*prefix, key))
        paths.extend(_leaf_paths(item, (*prefix, key)))
    return paths


def _dumpable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def test_messages_never_quote_values_for_a_whole_invalid_event() -> None:
    data = {
        "id": SECRET,
        "stream": SECRET + " ",
        "type": SECRET,
        "occurred_at": SECRET,
        "producer": SECRET * 50,
        "subjects": [SECRET + " "],
        "subject_refs": [SECRET],
        "payload": {"x": SECRET, "y": 1.5},
        "expected_stream_seq": SECRET,
    }
    error = outcome(data)
    assert isinstance(error, ValidationError)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)


def test_deepcopy_of_valid_event_is_unchanged_by_validation() -> None:
    data = check_result()
    before = copy.deepcopy(data)
    validate_event(data)
    assert data == before
