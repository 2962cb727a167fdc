"""DORA incidents through the HTTP API: classification dry runs, incident views, reports due, report export, and
the ``ledger_dora_reports_overdue`` gauge.

Everything runs on the embedded store (SQLite in a temporary data directory) through the real application.
Incidents are published as a publisher would, through ``POST /v1/events``.  The views use the current time, so
event times are relative to ``datetime.now(UTC)``; the weekend rule is off, so that no deadline moves to the
next working day and "due" versus "overdue" does not depend on the day the tests run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.access import Role
from ledger.dora.classification import RULE_VERSION
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.records import EntryFilter
from schemas.timestamps import format_timestamp

ORIGIN = "dora.bank.example/evidence"
OTHER = "other.bank.example/evidence"
PROBLEM_JSON = "application/problem+json"


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for the embedded store in ``data_dir``, whatever ``LEDGER_*`` variables the shell has."""
    defaults: dict[str, Any] = {
        "database_url": None,
        "log_origin": None,
        "signing_key": None,
        "subject_secret": None,
        "blob_connection_string": None,
        "snapshot_dir": None,
        "seal_enabled": False,
        "dora_weekend_rule": False,
        "dora_supervisor": "FSMA",
        "dora_entity_type": "other",
    }
    return Settings(data_dir=data_dir, **(defaults | overrides))


@dataclass
class Api:
    client: TestClient
    ledger: Ledger
    tokens: dict[str, str]

    def call(self, method: str, path: str, caller: str = "officer", **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.client.request(
            method, path, headers={"X-API-Key": self.tokens[caller]}, **kwargs
        )
        return response

    def publish(self, event: dict[str, Any]) -> httpx.Response:
        return self.call("POST", "/v1/events", "publisher", json=event)


def _app(tmp_path: Path, **overrides: Any) -> tuple[Settings, Ledger, dict[str, str]]:
    settings = embedded_settings(tmp_path / "data", **overrides)
    ledger = Ledger.create(settings, ORIGIN)
    Ledger.create(settings, OTHER)
    store = ApiKeyStore(ledger.recorder.engine)
    tokens = {}
    for role in Role:
        prefixes = ["incident", "threat"] if role is Role.PUBLISHER else []
        tokens[role.value] = store.create(role, [ORIGIN], prefixes, f"{role.value}-key", utc_now())[1]
    tokens["officer@other"] = store.create(Role.OFFICER, [OTHER], [], "officer-other", utc_now())[1]
    return settings, ledger, tokens


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings, ledger, tokens = _app(tmp_path)
    with TestClient(create_app(settings)) as client:
        yield Api(client, ledger, tokens)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- events of an incident's lifecycle -------------------------------------------------------------------


def _at(moment: datetime) -> str:
    return format_timestamp(moment)


def _input(value: Any) -> dict[str, Any]:
    return {"value": value, "estimated": False, "source": "monitoring"}


def major_inputs(incident_id: str, classified_at: datetime, **changes: Any) -> dict[str, Any]:
    """Inputs the engine classifies as major: the gate, and two thresholds (duration and data losses)."""
    inputs = {
        "incident_id": incident_id,
        "classified_at": _at(classified_at),
        "classified_by": "incident-desk",
        "affects_critical_functions": _input(True),
        "affects_authorised_financial_services": _input(False),
        "malicious_unauthorised_access": _input(False),
        "malicious_access_may_cause_data_loss": _input(False),
        "duration_minutes": _input(1500),
        "data_impact": _input(True),
        "member_states_affected": _input(["BE"]),
    }
    return inputs | changes


def event(incident_id: str, event_type: str, when: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"incident/{incident_id}",
        "type": event_type,
        "occurred_at": _at(when),
        "payload": payload,
    }


def detected(incident_id: str, aware_at: datetime) -> dict[str, Any]:
    payload = {"incident_id": incident_id, "aware_at": _at(aware_at), "detected_by": "soc"}
    return event(incident_id, "incident.detected", aware_at, payload)


def classified(incident_id: str, when: datetime, **changes: Any) -> dict[str, Any]:
    return event(incident_id, "incident.classified", when, major_inputs(incident_id, when, **changes))


def submitted(incident_id: str, when: datetime, *stages: str) -> dict[str, Any]:
    payload = {
        "incident_id": incident_id,
        "stages": list(stages),
        "authority": "FSMA",
        "authority_reference": "FSMA-2026-17",
        "submitted_at": _at(when),
        "submitted_by": "compliance-officer",
    }
    return event(incident_id, "incident.report_submitted", when, payload)


def publish_all(api: Api, *events: dict[str, Any]) -> None:
    for item in events:
        made = api.publish(item)
        assert made.status_code == 201, made.text


def on_time_incident(api: Api, now: datetime) -> None:
    """INC-OK: aware 3 h ago, major 2 h ago (initial due in 2 h), initial submitted 1 h ago (intermediate in 71 h)."""
    publish_all(
        api,
        detected("INC-OK", now - timedelta(hours=3)),
        classified("INC-OK", now - timedelta(hours=2), major=True),
        submitted("INC-OK", now - timedelta(hours=1), "initial"),
    )


def late_incident(api: Api, now: datetime) -> None:
    """INC-LATE: aware 30 h ago, major 29 h ago (initial due 25 h ago), nothing submitted."""
    publish_all(
        api,
        detected("INC-LATE", now - timedelta(hours=30)),
        classified("INC-LATE", now - timedelta(hours=29)),
    )


# --- incident views ---------------------------------------------------------------------------------------


def test_a_published_lifecycle_shows_the_engines_classification_and_the_deadlines(api: Api) -> None:
    on_time_incident(api, datetime.now(UTC))

    stream = api.call("GET", "/v1/stream?name=incident/INC-OK").json()["entries"]
    assert [e["type"] for e in stream] == [
        "incident.detected",
        "incident.classified",
        "dora.classification_evaluated",
        "incident.report_submitted",
    ]
    evaluated = stream[2]
    assert evaluated["producer"] == "ledger:dora" and stream[1]["producer"] == "publisher-key"
    assert evaluated["payload"]["engine_major"] is True and evaluated["payload"]["disagreement"] is False
    assert evaluated["payload"]["worksheet"]["rule_version"] == RULE_VERSION

    assert api.call("GET", "/v1/dora/incidents/INC-OK", "auditor").status_code == 403  # payload content: officers
    for caller in ("officer",):
        response = api.call("GET", "/v1/dora/incidents/INC-OK", caller)
        assert response.status_code == 200, response.text
        view = response.json()
        assert view["incident_id"] == "INC-OK" and view["stream"] == "incident/INC-OK" and view["major"] is True
        [step] = view["classifications"]
        assert step["seq"] == stream[1]["seq"] and step["kind"] == "classified"
        assert step["stated_major"] is True and step["engine_major"] is True and step["disagreement"] is False
        assert step["criteria_met"] == ["duration", "data_losses"] and step["path"] == "two-thresholds"
        worksheet = step["worksheet"]
        assert worksheet["major"] is True and worksheet["rule_version"] == RULE_VERSION
        assert worksheet["gate"]["met"] is True and worksheet["thresholds_met"] == 2
        assert [c["code"] for c in worksheet["criteria"]] == [
            "clients",
            "reputation",
            "duration",
            "geography",
            "data_losses",
            "economic",
        ]
        [report] = view["reports"]
        assert report["stages"] == ["initial"] and report["seq"] == stream[3]["seq"]
        assert [e["type"] for e in view["timeline"]] == [e["type"] for e in stream]

        initial, intermediate, final = view["deadlines"]
        assert initial["stage"] == "initial" and initial["state"] == "met"
        assert initial["submitted_seq"] == stream[3]["seq"] and initial["seconds_left"] > 0
        assert intermediate["stage"] == "intermediate" and intermediate["state"] == "due"
        assert 70 * 3600 < intermediate["seconds_left"] <= 71 * 3600
        assert intermediate["deadline"]["rule"].startswith("RTS 2025/301 Art. 5")
        assert final["state"] == "waiting" and final["deadline"] is None


def test_a_classification_that_disagrees_with_the_engine_is_flagged(api: Api) -> None:
    now = datetime.now(UTC)
    publish_all(api, detected("INC-DIS", now - timedelta(hours=2)), classified("INC-DIS", now, major=False))

    [step] = api.call("GET", "/v1/dora/incidents/INC-DIS").json()["classifications"]
    assert step["stated_major"] is False and step["engine_major"] is True
    assert step["disagreement"] is True and step["major"] is False  # the entity's stated conclusion counts
    [evaluated] = [e for e in api.ledger.entries(EntryFilter(stream="incident/INC-DIS")) if e.type.startswith("dora.")]
    assert evaluated.producer == "ledger:dora"
    shown = api.call("GET", f"/v1/entries/{evaluated.seq}").json()
    assert shown["payload"]["disagreement"] is True and shown["payload"]["agrees"] is False


def test_incidents_are_listed_with_their_next_deadline(api: Api) -> None:
    now = datetime.now(UTC)
    on_time_incident(api, now)
    late_incident(api, now)
    publish_all(api, classified("INC-MINOR", now, duration_minutes=_input(30)))

    listed = api.call("GET", "/v1/dora/incidents", "auditor")
    assert listed.status_code == 200, listed.text
    by_id = {item["incident_id"]: item for item in listed.json()}
    assert list(by_id) == ["INC-LATE", "INC-MINOR", "INC-OK"]
    assert by_id["INC-LATE"]["major"] is True
    assert by_id["INC-LATE"]["next_deadline"]["stage"] == "initial"
    assert by_id["INC-LATE"]["next_deadline"]["state"] == "overdue"
    assert by_id["INC-OK"]["next_deadline"]["stage"] == "intermediate"
    assert by_id["INC-OK"]["next_deadline"]["state"] == "due"
    assert by_id["INC-MINOR"] == {"incident_id": "INC-MINOR", "major": False, "next_deadline": None}


def test_unknown_and_malformed_incident_ids(api: Api) -> None:
    missing = problem(api.call("GET", "/v1/dora/incidents/INC-NOWHERE"), 404)
    assert missing["detail"] == "no such incident" and "INC-NOWHERE" not in missing["detail"]
    for malformed in ("-INC", "INC%201", "INC~1", "x" * 181):
        body = problem(api.call("GET", f"/v1/dora/incidents/{malformed}"), 422)
        assert "incident_id" in body["field"]
    problem(api.call("GET", "/v1/dora/incidents/INC-NOWHERE/report?stage=initial"), 404)
    assert api.call("GET", "/v1/dora/incidents").json() == []


# --- reports due and the gauge ----------------------------------------------------------------------------


def _overdue_gauge(text: str) -> float:
    match = re.search(rf'^ledger_dora_reports_overdue{{log="{re.escape(ORIGIN)}"}} (\S+)$', text, re.MULTILINE)
    assert match is not None, text
    return float(match.group(1))


def test_a_deadline_passed_without_a_report_is_overdue_in_due_and_in_the_gauge(api: Api) -> None:
    assert _overdue_gauge(api.call("GET", "/metrics", "admin").text) == 0
    now = datetime.now(UTC)
    on_time_incident(api, now)
    late_incident(api, now)

    soon = api.call("GET", "/v1/dora/due?within=4h")
    assert soon.status_code == 200, soon.text
    [overdue] = soon.json()
    assert overdue["incident_id"] == "INC-LATE" and overdue["stage"] == "initial"
    assert overdue["state"] == "overdue" and -26 * 3600 < overdue["seconds_left"] < -24 * 3600

    later = api.call("GET", "/v1/dora/due?within=4d", "auditor").json()
    assert [(i["incident_id"], i["stage"], i["state"]) for i in later] == [
        ("INC-LATE", "initial", "overdue"),  # overdue first, then the soonest due
        ("INC-OK", "intermediate", "due"),
    ]
    default = api.call("GET", "/v1/dora/due").json()  # look-ahead of 24 hours by default
    assert [i["incident_id"] for i in default] == ["INC-LATE"]

    metrics = api.call("GET", "/metrics", "admin")
    assert metrics.status_code == 200, metrics.text
    assert _overdue_gauge(metrics.text) >= 1
    assert "# TYPE ledger_dora_reports_overdue gauge" in metrics.text


def test_the_look_ahead_is_validated_and_named(api: Api) -> None:
    for within in ("4", "h", "4w", "-4h", "4.5h", "1e3d", "99999999999999d", " "):
        body = problem(api.call("GET", "/v1/dora/due", params={"within": within}), 422)
        assert body["field"] == "within", body
        assert body["detail"] in ("give a duration such as 30m, 4h or 2d", "the look-ahead is too long"), body
    problem(api.call("GET", "/v1/dora/due?within=4h&soon=1"), 422)  # undefined query parameters are refused


# --- report export ----------------------------------------------------------------------------------------


def test_an_officer_exports_the_report_for_the_configured_supervisor(api: Api) -> None:
    on_time_incident(api, datetime.now(UTC))
    response = api.call("GET", "/v1/dora/incidents/INC-OK/report?stage=initial&stage=intermediate")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["authority"] == "FSMA" and report["template"] == "ITS (EU) 2025/302 Annex I"
    assert report["1.1"] == "initial notification + intermediate report"
    assert report["2.1"] == "INC-OK" and report["3.1"] == "FSMA-2026-17"
    assert report["2.6"] == ["BE"] and report["unnumbered"]["classification"]["major"] is True
    assert [d["stage"] for d in report["deadlines"]] == ["initial", "intermediate", "final"]

    for query in ("", "?stage=initial&stage=initial", "?stage=preliminary", "?stage=initial&stage=final&stage=x"):
        body = problem(api.call("GET", f"/v1/dora/incidents/INC-OK/report{query}"), 422)
        assert "stage" in body["field"]


def test_a_report_of_an_unclassified_incident_is_refused(api: Api) -> None:
    publish_all(api, detected("INC-NEW", datetime.now(UTC)))
    body = problem(api.call("GET", "/v1/dora/incidents/INC-NEW/report?stage=initial"), 422)
    assert body["field"] == "incident_id" and "no classification" in body["detail"]


def test_the_report_goes_to_the_nbb_when_it_is_the_supervisor(tmp_path: Path) -> None:
    settings, ledger, tokens = _app(tmp_path, dora_supervisor="NBB")
    with TestClient(create_app(settings)) as client:
        api = Api(client, ledger, tokens)
        on_time_incident(api, datetime.now(UTC))
        report = api.call("GET", "/v1/dora/incidents/INC-OK/report?stage=initial").json()
    assert report["authority"] == "NBB" and report["authority_name"] == "National Bank of Belgium"
    assert report["1.1"] == "initial notification"


# --- roles ------------------------------------------------------------------------------------------------


def test_publishers_cannot_read_incidents_and_auditors_cannot_export(api: Api) -> None:
    on_time_incident(api, datetime.now(UTC))
    for path in (
        "/v1/dora/incidents/INC-OK",
        "/v1/dora/incidents",
        "/v1/dora/due?within=4h",
        "/v1/dora/incidents/INC-OK/report?stage=initial",
    ):
        assert "may not" in problem(api.call("GET", path, "publisher"), 403)["detail"]
    for caller in ("auditor", "admin"):
        problem(api.call("GET", "/v1/dora/incidents/INC-OK/report?stage=initial", caller), 403)
    problem(api.call("GET", "/v1/dora/incidents/INC-OK", "admin"), 403)
    problem(api.call("POST", "/v1/dora/classify", "admin", json=major_inputs("X", datetime.now(UTC))), 403)


def test_a_key_of_another_log_sees_no_such_log(api: Api) -> None:
    on_time_incident(api, datetime.now(UTC))
    for method, path, body in [
        ("POST", "/v1/dora/classify", major_inputs("X", datetime.now(UTC))),
        ("GET", "/v1/dora/incidents", None),
        ("GET", "/v1/dora/incidents/INC-OK", None),
        ("GET", "/v1/dora/due", None),
        ("GET", "/v1/dora/incidents/INC-OK/report?stage=initial", None),
    ]:
        query = "&" if "?" in path else "?"
        response = api.call(method, f"{path}{query}log={ORIGIN}", "officer@other", json=body)
        assert problem(response, 404)["detail"] == "no such log"


def test_a_publisher_cannot_send_the_ledgers_own_evaluation(api: Api) -> None:
    on_time_incident(api, datetime.now(UTC))
    before = api.ledger.head().size
    forged = event(
        "INC-OK",
        "dora.classification_evaluated",
        datetime.now(UTC),
        {"incident_id": "INC-OK", "engine_major": False, "disagreement": False},
    )
    body = problem(api.publish(forged), 422)
    assert body["field"] == "type" and "recorded by the ledger itself" in body["detail"]
    batch = api.call("POST", "/v1/events:batch", "publisher", json={"events": [forged]})
    assert problem(batch, 422)["index"] == 0
    assert api.ledger.head().size == before


# --- dry runs ---------------------------------------------------------------------------------------------


def test_classify_is_a_dry_run_for_publishers_officers_and_auditors(api: Api) -> None:
    before = api.ledger.head().size
    for caller in ("publisher", "officer", "auditor"):
        response = api.call("POST", "/v1/dora/classify", caller, json=major_inputs("INC-9", datetime.now(UTC)))
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["major"] is True and result["path"] == "two-thresholds"
        assert result["criteria_met"] == ["duration", "data_losses"] and result["rule_version"] == RULE_VERSION
        assert result["could_become_major"] is False and result["estimated"] is False
    minor = major_inputs("INC-9", datetime.now(UTC), data_impact=_input(False), gross_costs_losses_eur=None)
    result = api.call("POST", "/v1/dora/classify", json={k: v for k, v in minor.items() if v is not None}).json()
    assert result["major"] is False and result["could_become_major"] is True  # clients, economic... unknown
    assert api.ledger.head().size == before
    assert api.call("GET", "/v1/dora/incidents").json() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"affects_critical_functions": None}, "affects_critical_functions"),
        ({"duration_minutes": {"value": 1.5, "estimated": False}}, "duration_minutes.value"),
        ({"duration_minutes": {"value": "1500", "estimated": False}}, "duration_minutes.value"),
        ({"clients_affected": _input(11), "clients_total": _input(10)}, "clients_affected"),
        (
            {"malicious_access_may_cause_data_loss": _input(True), "malicious_unauthorised_access": _input(False)},
            "malicious_access_may_cause_data_loss",
        ),
        ({"member_states_affected": _input(["BE", "BE"])}, "member_states_affected.value"),
        ({"classified_at": "yesterday"}, "classified_at"),
        ({"rating": "severe"}, "rating"),
    ],
)
def test_invalid_classification_inputs_name_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    inputs = {k: v for k, v in (major_inputs("INC-9", datetime.now(UTC)) | change).items() if v is not None}
    body = problem(api.call("POST", "/v1/dora/classify", json=inputs), 422)
    assert body["field"] == field, body
    assert "severe" not in body["detail"] and "yesterday" not in body["detail"]


def test_bodies_that_are_not_json_objects_are_refused(api: Api) -> None:
    for raw in (b"{", b"[]", b"null", b"\xff"):
        headers = {"X-API-Key": api.tokens["officer"], "Content-Type": "application/json"}
        for path in ("/v1/dora/classify", "/v1/dora/threats/assess"):
            problem(api.client.post(path, content=raw, headers=headers), 422)


def _threat(**changes: Any) -> dict[str, Any]:
    threat = {
        "threat_id": "THR-1",
        "classified_at": _at(datetime.now(UTC)),
        "classified_by": "threat-intel",
        "could_affect_critical_functions_or_others": _input(True),
        "high_probability": _input(True),
        "would_meet_critical_services": _input(False),
        "would_meet_clients": _input(True),
        "would_meet_geography": _input(False),
    }
    return threat | changes


def test_a_threat_is_assessed_without_appending(api: Api) -> None:
    before = api.ledger.head().size
    significant = api.call("POST", "/v1/dora/threats/assess", "publisher", json=_threat())
    assert significant.status_code == 200, significant.text
    result = significant.json()
    assert result["significant"] is True and result["rule"] == "RTS 2024/1772 Art. 10"
    assert result["notification"].startswith("voluntary") and result["rule_version"] == RULE_VERSION
    assert len(result["reasons"]) == 3
    unlikely = api.call("POST", "/v1/dora/threats/assess", "auditor", json=_threat(high_probability=_input(False)))
    assert unlikely.json()["significant"] is False and "Art. 10(b): not met" in unlikely.json()["reasons"]
    body = problem(api.call("POST", "/v1/dora/threats/assess", json=_threat(high_probability=None)), 422)
    assert body["field"] == "high_probability"
    assert api.ledger.head().size == before
