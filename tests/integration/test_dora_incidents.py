"""DORA incidents against a real (SQLite) ledger and the CLI (DORA.md sections 1 and 2).

Expected times are written from the rules, not from what ``ledger.dora`` returns:

* initial notification: min(classification as major + 4 h, awareness + 24 h); 4 h from a classification made more
  than 24 h after awareness (RTS 2025/301 Art. 5);
* intermediate report: initial submission + 72 h; final report: latest intermediate + one month (same date);
* a deadline on a Belgian non-working day moves to 12:00 Brussels of the next working day, except the initial and
  intermediate reports of credit institutions (and CCPs, trading venues, NIS2 entities).

September 2025 is used throughout: Brussels is on CEST (UTC+2) all month and to 26 October, and no Belgian public
holiday falls in September or early October, so only weekends move deadlines.  12:00 Brussels = 10:00Z.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.dora.classification import RULE_VERSION, classify
from ledger.dora.incidents import due_reports, export_report, incident_view, recurring_incidents
from ledger.errors import ValidationError
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.records import EntryFilter, EntryRecord
from ledger.verify import build_verifiers
from schemas.payloads import IncidentClassified

ORIGIN = "dora.bank.example/evidence"
PRODUCER = "svc:incident-desk"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _inp(value: Any, estimated: bool = False) -> dict[str, Any]:
    return {"value": value, "estimated": estimated, "source": "ops"}


# Gate holds (Art. 6(a)); every threshold known and clearly not met.
NON_MAJOR: dict[str, Any] = {
    "affects_critical_functions": _inp(True),
    "affects_authorised_financial_services": _inp(False),
    "malicious_unauthorised_access": _inp(False),
    "malicious_access_may_cause_data_loss": _inp(False),
    "clients_affected": _inp(1_000),
    "clients_total": _inp(100_000),
    "relevant_client_or_counterpart_affected": _inp(False),
    "media_attention": _inp(False),
    "repeated_complaints": _inp(False),
    "regulatory_requirements_at_risk": _inp(False),
    "likely_client_loss": _inp(False),
    "duration_minutes": _inp(60),
    "critical_service_downtime_minutes": _inp(30),
    "member_states_affected": _inp(["BE"]),
    "data_impact": _inp(False),
    "gross_costs_losses_eur": _inp("5000.00"),
}
# Two thresholds met (Art. 8(1)): clients (20% > 10%, Art. 9(1)) and duration (1500 min > 24 h, Art. 9(3)).
MAJOR: dict[str, Any] = {**NON_MAJOR, "clients_affected": _inp(20_000), "duration_minutes": _inp(1_500)}
MAJOR_CRITERIA = ["clients", "duration"]


class Incident:
    """Appends the lifecycle events of one incident on stream incident/<id>, as a producer would."""

    def __init__(self, ledger: Ledger, incident_id: str) -> None:
        self.ledger = ledger
        self.id = incident_id
        self.stream = f"incident/{incident_id}"

    def event(self, type_: str, at: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "stream": self.stream,
            "type": type_,
            "occurred_at": at,
            "payload": {"incident_id": self.id, **payload},
        }

    def add(self, type_: str, at: str, payload: dict[str, Any]) -> EntryRecord:
        result = self.ledger.append(self.event(type_, at, payload), PRODUCER)
        assert result.created
        return result.entry

    def detected(self, at: str) -> EntryRecord:
        return self.add("incident.detected", at, {"aware_at": at, "detected_by": "soc"})

    def classified(self, at: str, inputs: dict[str, Any] = MAJOR, **extra: Any) -> EntryRecord:
        return self.add("incident.classified", at, {"classified_at": at, "classified_by": "ciso", **inputs, **extra})

    def reclassified(self, at: str, inputs: dict[str, Any], reason: str) -> EntryRecord:
        payload = {"classified_at": at, "classified_by": "ciso", "reason": reason, **inputs}
        return self.add("incident.reclassified", at, payload)

    def submitted(self, at: str, *stages: str, authority: str = "FSMA") -> EntryRecord:
        payload = {"stages": list(stages), "authority": authority, "submitted_at": at, "submitted_by": "compliance"}
        return self.add("incident.report_submitted", at, payload)

    def delay_notice(self, at: str, stage: str) -> EntryRecord:
        return self.add("incident.delay_notice", at, {"stage": stage, "notified_at": at, "reason": "data pending"})

    def recovered(self, at: str) -> EntryRecord:
        return self.add("incident.recovered", at, {"recovered_at": at})

    def root_cause(self, at: str, cause: str) -> EntryRecord:
        return self.add("incident.root_cause", at, {"root_cause": cause})

    def closed(self, at: str) -> EntryRecord:
        return self.add("incident.closed", at, {"closed_at": at})


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.create(Settings(data_dir=tmp_path), ORIGIN)


def _states(ledger: Ledger, incident_id: str, now: str) -> dict[str, Any]:
    return {d.stage: d for d in incident_view(ledger, incident_id, _t(now)).deadlines}


def _due(status: Any) -> datetime:
    assert status.deadline is not None, status
    return status.deadline.due_at


def _stream(ledger: Ledger, stream: str) -> list[EntryRecord]:
    return list(ledger.entries(EntryFilter(stream=stream)))


def _payload(ledger: Ledger, seq: int) -> dict[str, Any]:
    record = ledger.payload(seq)
    assert record is not None and record.payload is not None
    return json.loads(record.payload)


def _lifecycle(ledger: Ledger, incident_id: str = "INC-1") -> dict[str, EntryRecord]:
    """Monday 1 September 2025 to Wednesday 1 October 2025: every report on time, no deadline on a weekend."""
    inc = Incident(ledger, incident_id)
    return {
        "detected": inc.detected("2025-09-01T06:00:00Z"),
        "classified": inc.classified("2025-09-01T09:00:00Z"),
        "initial": inc.submitted("2025-09-01T12:00:00Z", "initial"),
        "intermediate": inc.submitted("2025-09-03T10:00:00Z", "intermediate"),
        "recovered": inc.recovered("2025-09-03T18:00:00Z"),
        "final": inc.submitted("2025-09-30T10:00:00Z", "final"),
        "root_cause": inc.root_cause("2025-09-30T11:00:00Z", "config-change"),
        "closed": inc.closed("2025-10-01T09:00:00Z"),
    }


# --- 1. the full lifecycle -------------------------------------------------------------------------------


def test_full_lifecycle_is_signed_and_every_deadline_met(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    steps = _lifecycle(ledger)

    verifiers = build_verifiers(ledger.recorder.keys(ledger.log_id))
    for name, entry in steps.items():
        stored = ledger.entry(entry.seq)
        assert stored.stream == "incident/INC-1" and stored.producer == PRODUCER, name
        key, verifier = verifiers[stored.key_id]
        assert key.covers_seq(stored.seq) and verifier.verify(stored.body, stored.signature), name
    types = [e.type for e in _stream(ledger, "incident/INC-1")]
    assert types == [
        "incident.detected",
        "incident.classified",
        "dora.classification_evaluated",
        "incident.report_submitted",
        "incident.report_submitted",
        "incident.recovered",
        "incident.report_submitted",
        "incident.root_cause",
        "incident.closed",
    ]
    report = ledger.audit()
    assert report.ok, report

    # a ledger opened afresh: the view comes from the stored entries alone
    view = incident_view(Ledger.open(Settings(data_dir=tmp_path)), "INC-1", _t("2025-10-02T00:00:00Z"))
    assert view.major
    assert view.aware_at == "2025-09-01T06:00:00Z"
    assert view.recovered_at == "2025-09-03T18:00:00Z"
    assert view.root_cause == "config-change"
    assert view.closed_at == "2025-10-01T09:00:00Z"
    assert [c.engine.met_codes for c in view.classifications] == [MAJOR_CRITERIA]
    by_stage = {d.stage: d for d in view.deadlines}
    assert [d.stage for d in view.deadlines] == ["initial", "intermediate", "final"]
    assert {s: d.state for s, d in by_stage.items()} == {"initial": "met", "intermediate": "met", "final": "met"}
    # initial: min(09:00 + 4 h, 06:00 + 24 h) = 13:00 on Monday
    assert _due(by_stage["initial"]) == _t("2025-09-01T13:00:00Z")
    # intermediate: initial submitted Monday 12:00 + 72 h = Thursday 12:00
    assert _due(by_stage["intermediate"]) == _t("2025-09-04T12:00:00Z")
    # final: intermediate Wednesday 3 September 10:00 + one month = Friday 3 October 10:00
    assert _due(by_stage["final"]) == _t("2025-10-03T10:00:00Z")
    for stage in ("initial", "intermediate", "final"):
        status = by_stage[stage]
        assert status.deadline is not None and status.deadline.moved_from is None
        assert status.submitted_seq == steps[stage].seq
    assert by_stage["initial"].seconds_left == 3600
    assert by_stage["intermediate"].seconds_left == 26 * 3600


@pytest.mark.parametrize(
    ("aware", "classified", "due"),
    [
        # the 24-hour cap comes first: aware Monday 06:00, classified Tuesday 04:00 -> Tuesday 06:00
        ("2025-09-01T06:00:00Z", "2025-09-02T04:00:00Z", "2025-09-02T06:00:00Z"),
        # classified more than 24 hours after awareness: 4 hours from the classification
        ("2025-09-01T06:00:00Z", "2025-09-02T08:00:00Z", "2025-09-02T12:00:00Z"),
    ],
)
def test_initial_deadline_24_hour_cap(tmp_path: Path, aware: str, classified: str, due: str) -> None:
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-CAP")
    inc.detected(aware)
    inc.classified(classified)

    initial = _states(ledger, "INC-CAP", classified)["initial"]

    assert initial.state == "due"
    assert _due(initial) == _t(due)


def test_final_follows_the_latest_intermediate(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-2")
    inc.detected("2025-09-01T06:00:00Z")
    inc.classified("2025-09-01T09:00:00Z")
    inc.submitted("2025-09-01T12:00:00Z", "initial")
    first = inc.submitted("2025-09-02T10:00:00Z", "intermediate")
    inc.recovered("2025-09-03T08:00:00Z")
    inc.submitted("2025-09-03T10:00:00Z", "intermediate")  # the update on recovery

    states = _states(ledger, "INC-2", "2025-09-10T00:00:00Z")

    # intermediate judged on the first one (due Thursday 4 September 12:00); final one month after the latest
    assert states["intermediate"].state == "met" and states["intermediate"].submitted_seq == first.seq
    assert states["final"].state == "due"
    assert _due(states["final"]) == _t("2025-10-03T10:00:00Z")


def _weekend_incidents(ledger: Ledger) -> None:
    # initial due Saturday 6 September 01:00Z (03:00 Brussels): Friday 21:00 classification + 4 h
    sat = Incident(ledger, "INC-SAT1")
    sat.detected("2025-09-05T20:00:00Z")
    sat.classified("2025-09-05T21:00:00Z")
    # intermediate due Saturday 13 September 09:00Z (initial Wednesday 09:00 + 72 h);
    # final due Saturday 11 October 09:00Z (intermediate Thursday 11 September 09:00 + one month)
    later = Incident(ledger, "INC-SAT2")
    later.detected("2025-09-10T07:00:00Z")
    later.classified("2025-09-10T08:00:00Z")
    later.submitted("2025-09-10T09:00:00Z", "initial")
    later.submitted("2025-09-11T09:00:00Z", "intermediate")


def test_deadline_on_a_saturday_moves_to_noon_brussels_next_working_day(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _weekend_incidents(ledger)
    now = "2025-09-05T22:00:00Z"

    initial = _states(ledger, "INC-SAT1", now)["initial"]
    assert initial.state == "due"
    assert _due(initial) == _t("2025-09-08T10:00:00Z")  # Monday 12:00 Brussels (CEST)
    assert initial.deadline is not None and initial.deadline.moved_from == _t("2025-09-06T01:00:00Z")
    later = _states(ledger, "INC-SAT2", now)
    assert _due(later["intermediate"]) == _t("2025-09-15T10:00:00Z")
    assert later["intermediate"].deadline is not None
    assert later["intermediate"].deadline.moved_from == _t("2025-09-13T09:00:00Z")
    assert _due(later["final"]) == _t("2025-10-13T10:00:00Z")

    # credit institutions: initial and intermediate do not move, the final report still does
    credit = Ledger.open(Settings(data_dir=tmp_path, dora_entity_type="credit_institution"))
    initial = {d.stage: d for d in incident_view(credit, "INC-SAT1", _t(now)).deadlines}["initial"]
    assert _due(initial) == _t("2025-09-06T01:00:00Z")
    assert initial.deadline is not None and initial.deadline.moved_from is None
    later = {d.stage: d for d in incident_view(credit, "INC-SAT2", _t(now)).deadlines}
    assert _due(later["intermediate"]) == _t("2025-09-13T09:00:00Z")
    assert _due(later["final"]) == _t("2025-10-13T10:00:00Z")

    # LEDGER_DORA_WEEKEND_RULE=false never moves
    fixed = Ledger.open(Settings(data_dir=tmp_path, dora_weekend_rule=False))
    later = {d.stage: d for d in incident_view(fixed, "INC-SAT2", _t(now)).deadlines}
    assert _due(later["final"]) == _t("2025-10-11T09:00:00Z")


# --- 2. missed and overdue ---------------------------------------------------------------------------------


def test_late_initial_is_missed_and_absent_initial_is_overdue(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    late = Incident(ledger, "INC-LATE")
    late.detected("2025-09-01T06:00:00Z")
    late.classified("2025-09-01T09:00:00Z")  # initial due 13:00
    late.submitted("2025-09-01T15:00:00Z", "initial")
    none = Incident(ledger, "INC-NONE")
    none.detected("2025-09-01T06:00:00Z")
    none.classified("2025-09-01T09:00:00Z")

    missed = _states(ledger, "INC-LATE", "2025-09-01T16:00:00Z")["initial"]
    assert missed.state == "missed"
    assert missed.submitted_at == "2025-09-01T15:00:00Z"
    assert missed.seconds_left == -7200
    assert missed.delay_notice_seq is None and missed.delay_notified_in_time is None

    states = _states(ledger, "INC-NONE", "2025-09-01T16:00:00Z")
    assert states["initial"].state == "overdue"
    assert states["initial"].seconds_left == -3 * 3600
    assert _due(states["initial"]) == _t("2025-09-01T13:00:00Z")
    assert states["intermediate"].state == "waiting" and states["final"].state == "waiting"
    # before the deadline the same stage is due, with the time left
    assert _states(ledger, "INC-NONE", "2025-09-01T12:00:00Z")["initial"].state == "due"
    assert _states(ledger, "INC-NONE", "2025-09-01T12:00:00Z")["initial"].seconds_left == 3600


def test_delay_notice_is_shown_and_the_late_stage_still_counts_as_late(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    late = Incident(ledger, "INC-LATE")
    late.detected("2025-09-01T06:00:00Z")
    late.classified("2025-09-01T09:00:00Z")  # initial due 13:00
    notice = late.delay_notice("2025-09-01T12:00:00Z", "initial")
    late.submitted("2025-09-01T15:00:00Z", "initial")
    pending = Incident(ledger, "INC-PENDING")
    pending.detected("2025-09-01T06:00:00Z")
    pending.classified("2025-09-01T09:00:00Z")
    pending_notice = pending.delay_notice("2025-09-01T12:30:00Z", "initial")
    tardy = Incident(ledger, "INC-TARDY")
    tardy.detected("2025-09-01T06:00:00Z")
    tardy.classified("2025-09-01T09:00:00Z")
    tardy.delay_notice("2025-09-01T14:00:00Z", "initial")  # after the deadline

    missed = _states(ledger, "INC-LATE", "2025-09-01T16:00:00Z")["initial"]
    assert missed.state == "missed"
    assert missed.delay_notice_seq == notice.seq and missed.delay_notified_in_time is True

    overdue = _states(ledger, "INC-PENDING", "2025-09-01T16:00:00Z")["initial"]
    assert overdue.state == "overdue" and overdue.seconds_left == -3 * 3600
    assert overdue.delay_notice_seq == pending_notice.seq and overdue.delay_notified_in_time is True
    assert overdue.note == "delay notified before the deadline"
    view = incident_view(ledger, "INC-PENDING", _t("2025-09-01T16:00:00Z"))
    assert [n["seq"] for n in view.delay_notices] == [pending_notice.seq]

    too_late = _states(ledger, "INC-TARDY", "2025-09-01T16:00:00Z")["initial"]
    assert too_late.state == "overdue" and too_late.delay_notified_in_time is False
    assert too_late.note == "delay notified after the deadline"


# --- 3. reclassification -----------------------------------------------------------------------------------


def test_reclassified_non_major_then_major_again(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-R")
    inc.detected("2025-09-01T06:00:00Z")
    inc.classified("2025-09-01T09:00:00Z")
    inc.reclassified("2025-09-01T11:00:00Z", NON_MAJOR, "fewer clients affected than first estimated")

    view = incident_view(ledger, "INC-R", _t("2025-09-01T14:00:00Z"))
    assert not view.major
    states = {d.stage: d for d in view.deadlines}
    assert states["initial"].state == "not_required"
    assert all(d.state not in ("due", "overdue") for d in view.deadlines)
    assert [c.kind for c in view.classifications] == ["classified", "reclassified"]
    # the ledger evaluated the reclassification too
    assert [e.type for e in _stream(ledger, "incident/INC-R")].count("dora.classification_evaluated") == 2

    inc.reclassified("2025-09-01T15:00:00Z", MAJOR, "duration now over 24 hours")
    states = _states(ledger, "INC-R", "2025-09-01T15:30:00Z")
    assert states["initial"].state in ("due", "overdue")
    assert states["initial"].deadline is not None

    inc.submitted("2025-09-01T16:00:00Z", "initial")
    states = _states(ledger, "INC-R", "2025-09-01T17:00:00Z")
    assert states["intermediate"].state == "due"
    assert _due(states["intermediate"]) == _t("2025-09-04T16:00:00Z")


def test_reclassified_back_to_major_restarts_the_initial_clock(tmp_path: Path) -> None:
    """Classified major at 09:00, non-major from 11:00 (before the 13:00 deadline), major again at 15:00.

    RTS 2025/301 Art. 5: the initial notification is due within 4 hours of the classification as major.  Between
    11:00 and 15:00 the incident was not major and no notification was required, so at 15:00 the entity cannot
    already be overdue: the deadline is min(15:00 + 4 h, aware 06:00 + 24 h) = 19:00.
    """
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-R2")
    inc.detected("2025-09-01T06:00:00Z")
    inc.classified("2025-09-01T09:00:00Z")
    inc.reclassified("2025-09-01T11:00:00Z", NON_MAJOR, "fewer clients affected than first estimated")
    inc.reclassified("2025-09-01T15:00:00Z", MAJOR, "duration now over 24 hours")

    initial = _states(ledger, "INC-R2", "2025-09-01T15:30:00Z")["initial"]

    assert (initial.state, _due(initial)) == ("due", _t("2025-09-01T19:00:00Z"))


def test_reclassified_non_major_after_submission_keeps_the_submitted_stage(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-R3")
    inc.detected("2025-09-01T06:00:00Z")
    inc.classified("2025-09-01T09:00:00Z")
    inc.submitted("2025-09-01T12:00:00Z", "initial")
    inc.reclassified("2025-09-02T09:00:00Z", NON_MAJOR, "impact smaller than reported")

    states = _states(ledger, "INC-R3", "2025-09-10T00:00:00Z")

    assert states["initial"].state == "met"
    assert states["intermediate"].state == "not_required"


# --- 4. stages submitted together --------------------------------------------------------------------------


def test_combined_submission_satisfies_both_stages(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-C")
    inc.detected("2025-09-01T06:00:00Z")
    inc.classified("2025-09-01T09:00:00Z")
    both = inc.submitted("2025-09-01T12:00:00Z", "initial", "intermediate")

    states = _states(ledger, "INC-C", "2025-09-02T00:00:00Z")

    assert states["initial"].state == "met" and states["intermediate"].state == "met"
    assert states["initial"].submitted_seq == both.seq == states["intermediate"].submitted_seq
    assert _due(states["intermediate"]) == _t("2025-09-04T12:00:00Z")
    assert states["final"].state == "due"
    # final: one month after the intermediate (submitted with the initial on Monday 12:00) = Wednesday 1 October
    assert _due(states["final"]) == _t("2025-10-01T12:00:00Z")


# --- 5. the ledger's own evaluation ------------------------------------------------------------------------


def test_ledger_records_its_evaluation_beside_each_classification(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-E")
    event = inc.event(
        "incident.classified",
        "2025-09-01T09:00:00Z",
        {"classified_at": "2025-09-01T09:00:00Z", "classified_by": "ciso", "major": True, **NON_MAJOR},
    )
    first = ledger.append(event, PRODUCER)
    assert first.created

    entries = _stream(ledger, "incident/INC-E")
    assert [(e.type, e.producer) for e in entries] == [
        ("incident.classified", PRODUCER),
        ("dora.classification_evaluated", "ledger:dora"),
    ]
    evaluated = _payload(ledger, entries[1].seq)
    engine = classify(IncidentClassified.model_validate(event["payload"]))
    assert evaluated["source_event_id"] == event["id"]
    assert evaluated["stated_major"] is True and evaluated["engine_major"] is False
    assert evaluated["disagreement"] is True
    assert evaluated["worksheet"] == json.loads(json.dumps(engine.as_dict()))
    assert evaluated["worksheet"]["rule_version"] == RULE_VERSION
    view = incident_view(ledger, "INC-E", _t("2025-09-01T10:00:00Z"))
    assert view.classifications[0].disagreement and view.major  # the entity's stated conclusion counts

    # a retry of the same event appends neither the event nor the evaluation again
    size = ledger.head().size
    again = ledger.append(event, PRODUCER)
    assert not again.created and again.entry.seq == first.entry.seq
    assert ledger.head().size == size
    assert len(_stream(ledger, "incident/INC-E")) == 2

    # agreement: the stated conclusion matches the engine, or none is stated
    inc.classified("2025-09-01T10:00:00Z", MAJOR, major=True)
    inc.classified("2025-09-01T11:00:00Z", MAJOR)
    evaluations = [e for e in _stream(ledger, "incident/INC-E") if e.type == "dora.classification_evaluated"]
    assert [_payload(ledger, e.seq)["disagreement"] for e in evaluations] == [True, False, False]
    assert [_payload(ledger, e.seq)["agrees"] for e in evaluations] == [False, True, None]
    assert ledger.audit().ok


def test_producers_cannot_send_dora_events(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    inc = Incident(ledger, "INC-E")
    inc.classified("2025-09-01T09:00:00Z")
    size = ledger.head().size
    forged = inc.event("dora.classification_evaluated", "2025-09-01T09:00:00Z", {"disagreement": False})
    forged_threat = {
        "id": str(uuid.uuid4()),
        "stream": "threat/T-1",
        "type": "dora.threat_evaluated",
        "occurred_at": "2025-09-01T09:00:00Z",
        "payload": {"threat_id": "T-1", "agrees": True},
    }

    for bad in (forged, forged_threat):
        with pytest.raises(ValidationError):
            ledger.append(bad, PRODUCER)
        assert ledger.head().size == size
    # in a batch with a valid event: the batch is refused as a whole
    valid = inc.event("incident.recovered", "2025-09-01T12:00:00Z", {"recovered_at": "2025-09-01T12:00:00Z"})
    with pytest.raises(ValidationError):
        ledger.append_batch([valid, forged], PRODUCER)
    assert ledger.head().size == size


def test_threat_classified_gets_a_threat_evaluation(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    event = {
        "id": str(uuid.uuid4()),
        "stream": "threat/T-1",
        "type": "threat.classified",
        "occurred_at": "2025-09-01T09:00:00Z",
        "payload": {
            "threat_id": "T-1",
            "classified_at": "2025-09-01T09:00:00Z",
            "classified_by": "ciso",
            "could_affect_critical_functions_or_others": _inp(True),
            "high_probability": _inp(True),
            "would_meet_critical_services": _inp(True),
            "would_meet_clients": _inp(False),
            "would_meet_geography": _inp(False),
            "significant": False,
        },
    }
    ledger.append(event, PRODUCER)

    entries = _stream(ledger, "threat/T-1")
    assert [(e.type, e.producer) for e in entries] == [
        ("threat.classified", PRODUCER),
        ("dora.threat_evaluated", "ledger:dora"),
    ]
    evaluated = _payload(ledger, entries[1].seq)
    assert evaluated["source_event_id"] == event["id"]
    assert evaluated["assessment"]["significant"] is True  # Art. 10 (a), (b) and (c) all hold
    assert evaluated["disagreement"] is True

    size = ledger.head().size
    assert not ledger.append(event, PRODUCER).created
    assert ledger.head().size == size


# --- 6. reports due ----------------------------------------------------------------------------------------

DUE_NOW = "2025-09-01T16:00:00Z"


def _due_incidents(ledger: Ledger) -> None:
    soon = Incident(ledger, "INC-A")  # initial due 17:00: in 1 h
    soon.detected("2025-09-01T12:00:00Z")
    soon.classified("2025-09-01T13:00:00Z")
    late = Incident(ledger, "INC-B")  # initial due 12:00: overdue by 4 h
    late.detected("2025-09-01T06:00:00Z")
    late.classified("2025-09-01T08:00:00Z")
    intermediate = Incident(ledger, "INC-D")  # initial met; intermediate due Monday 19:00: in 3 h
    intermediate.detected("2025-08-29T16:00:00Z")
    intermediate.classified("2025-08-29T17:00:00Z")
    intermediate.submitted("2025-08-29T19:00:00Z", "initial")
    far = Incident(ledger, "INC-F")  # intermediate due Thursday: outside the look-ahead
    far.detected("2025-09-01T08:00:00Z")
    far.classified("2025-09-01T09:00:00Z")
    far.submitted("2025-09-01T10:00:00Z", "initial")
    minor = Incident(ledger, "INC-N")  # never major
    minor.detected("2025-09-01T08:00:00Z")
    minor.classified("2025-09-01T09:00:00Z", NON_MAJOR)


def test_due_reports_within_four_hours(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _due_incidents(ledger)

    items = due_reports(ledger, timedelta(hours=4), _t(DUE_NOW))

    assert [(i.incident_id, i.status.stage, i.status.state, i.status.seconds_left) for i in items] == [
        ("INC-B", "initial", "overdue", -4 * 3600),
        ("INC-A", "initial", "due", 3600),
        ("INC-D", "intermediate", "due", 3 * 3600),
    ]


def test_cli_due_and_deadlines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = _ledger(data)
    _due_incidents(ledger)

    due = _cli(data, "dora", "due", "--within", "4h", "--now", DUE_NOW)
    assert due.returncode == 0, due.stderr
    lines = due.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["INC-B", "INC-A", "INC-D"]
    assert "initial: OVERDUE by 4h00m" in lines[0]
    assert "initial: due in 1h00m" in lines[1]
    assert "intermediate: due in 3h00m" in lines[2]

    shown = _cli(data, "dora", "deadlines", "INC-D", "--now", DUE_NOW, "--json")
    assert shown.returncode == 0, shown.stderr
    printed = json.loads(shown.stdout)
    expected = incident_view(ledger, "INC-D", _t(DUE_NOW)).as_dict()
    assert [d["state"] for d in printed["deadlines"]] == ["met", "due", "waiting"]
    assert printed["deadlines"] == json.loads(json.dumps(expected["deadlines"]))


# --- 7. recurring incidents (Art. 8(2)) --------------------------------------------------------------------

# Each alone: 600 minutes and EUR 40,000, no threshold met.  Three together: 1800 min > 24 h and EUR 120,000.
RECURRING = {**NON_MAJOR, "duration_minutes": _inp(600), "gross_costs_losses_eur": _inp("40000.00")}
SMALL = {**NON_MAJOR, "duration_minutes": _inp(30), "gross_costs_losses_eur": _inp("1000.00")}


def _recurring_incidents(ledger: Ledger) -> None:
    for incident_id, aware, inputs, cause in (
        ("REC-1", "2025-01-15T09:00:00Z", RECURRING, "config-change"),
        ("REC-2", "2025-03-10T09:00:00Z", RECURRING, "config-change"),
        ("REC-3", "2025-06-20T09:00:00Z", RECURRING, "config-change"),
        ("REC-OLD", "2024-12-20T09:00:00Z", RECURRING, "config-change"),  # before the six months
        ("REC-NET", "2025-04-01T09:00:00Z", RECURRING, "network"),  # another root cause
        ("SMALL-1", "2025-02-03T09:00:00Z", SMALL, "disk-full"),  # together still not major
        ("SMALL-2", "2025-05-05T09:00:00Z", SMALL, "disk-full"),
    ):
        inc = Incident(ledger, incident_id)
        inc.detected(aware)
        classified = (_t(aware) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        inc.classified(classified, inputs)
        inc.root_cause(classified, cause)


def test_recurring_incidents(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _recurring_incidents(ledger)
    assert not any(incident_view(ledger, i, _t("2025-07-01T00:00:00Z")).major for i in ("REC-1", "REC-2", "REC-3"))

    groups = recurring_incidents(ledger, "2025-06")

    assert [(g.root_cause, g.incidents) for g in groups] == [("config-change", ("REC-1", "REC-2", "REC-3"))]
    assert groups[0].classification.major
    assert groups[0].classification.met_codes == ["duration", "economic"]
    # one month later REC-1 (January) leaves the window: REC-2 + REC-3 make 1200 min and EUR 80,000, not major
    assert recurring_incidents(ledger, "2025-07") == []

    cli = _cli(tmp_path, "dora", "recurring", "--month", "2025-06")
    assert cli.returncode == 0, cli.stderr
    assert "root cause config-change: incidents REC-1, REC-2, REC-3 together are MAJOR" in cli.stdout
    assert "duration, economic" in cli.stdout
    assert "disk-full" not in cli.stdout and "network" not in cli.stdout


# --- 8. classification dry run -----------------------------------------------------------------------------


def test_cli_classify_appends_nothing_and_names_a_bad_field(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = _ledger(data)
    _lifecycle(ledger)
    size = ledger.head().size
    inputs = {"incident_id": "INC-9", "classified_at": "2025-09-01T09:00:00Z", "classified_by": "ciso", **MAJOR}
    good = tmp_path / "inputs.json"
    good.write_text(json.dumps(inputs))

    done = _cli(data, "dora", "classify", str(good))

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["major"] is True and result["path"] == "two-thresholds"
    assert result["criteria_met"] == MAJOR_CRITERIA
    assert [c["code"] for c in result["criteria"]] == [
        "clients",
        "reputation",
        "duration",
        "geography",
        "data_losses",
        "economic",
    ]
    assert result["rule_version"] == RULE_VERSION
    assert Ledger.open(Settings(data_dir=data)).head().size == size

    missing = {k: v for k, v in inputs.items() if k != "affects_critical_functions"}
    for bad_inputs, field in (
        (missing, "affects_critical_functions"),
        ({**inputs, "clients_affected": _inp("lots")}, "clients_affected"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(bad_inputs))
        refused = _cli(data, "dora", "classify", str(bad))
        assert refused.returncode == 2
        assert refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert field in refused.stderr
    assert Ledger.open(Settings(data_dir=data)).head().size == size


# --- 9. report export --------------------------------------------------------------------------------------


def test_export_report(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = _ledger(data)
    _lifecycle(ledger)

    report = export_report(ledger, "INC-1", ["initial"])

    assert report["authority"] == "FSMA"
    assert report["2.1"] == "INC-1"
    assert report["2.2"] == "2025-09-01T06:00:00Z"
    assert report["2.3"] == "2025-09-01T09:00:00Z"
    assert report["2.5"] == ["clients (RTS 2024/1772 Art. 9(1), Art. 1)", "duration (RTS 2024/1772 Art. 9(3), Art. 3)"]
    assert report["2.6"] == ["BE"]
    nbb = export_report(Ledger.open(Settings(data_dir=data, dora_supervisor="NBB")), "INC-1", ["initial"])
    assert nbb["authority"] == "NBB" and nbb["2.1"] == "INC-1"
    with pytest.raises(ValidationError):
        export_report(ledger, "INC-1", ["preliminary"])

    out = tmp_path / "initial.json"
    done = _cli(data, "dora", "export", "INC-1", "--stage", "initial", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(report))

    routed = _cli(data, "dora", "export", "INC-1", "--stage", "initial", env={"LEDGER_DORA_SUPERVISOR": "NBB"})
    assert routed.returncode == 0, routed.stderr
    assert json.loads(routed.stdout)["authority"] == "NBB"


def _cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, "LEDGER_DATA_DIR": str(data_dir), **(env or {})},
        cwd=data_dir.parent,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done
