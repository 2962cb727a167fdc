"""An incident's timeline and deadline status, rebuilt from its ledger events alone.  Pure: events and ``now`` in.

The events of stream ``incident/<id>``, in seq order: ``incident.detected`` (awareness), ``incident.classified``
and ``incident.reclassified`` (inputs; the ledger's own ``dora.classification_evaluated`` beside each),
``incident.report_submitted`` (stages, authority, submission time), ``incident.delay_notice``,
``incident.recovered``, ``incident.root_cause`` and ``incident.closed``.

Which classification counts: the entity's stated conclusion (``major`` in the payload) when it gives one, else
the engine's result; a disagreement is shown.  Deadlines (RTS 2025/301 Art. 5) follow the first classification
as major; a reclassification to non-major before a stage was submitted makes that stage no longer required.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ledger.dora.classification import Classification, classify
from ledger.dora.deadlines import Deadline, final_deadline, initial_deadline, intermediate_deadline
from schemas.payloads import IncidentClassified, IncidentReclassified
from schemas.timestamps import format_timestamp, parse_timestamp

__all__ = ["DeadlineStatus", "IncidentEvent", "IncidentView", "build_view"]

DeadlineState = Literal["met", "missed", "due", "overdue", "not_required", "waiting"]


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    seq: int
    type: str
    occurred_at: str
    payload: dict[str, Any] | None  # None once erased or disposed


@dataclass(frozen=True, slots=True)
class DeadlineStatus:
    stage: str
    state: DeadlineState
    deadline: Deadline | None
    submitted_at: str | None = None
    submitted_seq: int | None = None
    seconds_left: int | None = None  # positive: time left; negative: overdue by
    delay_notice_seq: int | None = None
    delay_notified_in_time: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "state": self.state,
            "deadline": None if self.deadline is None else self.deadline.as_dict(),
            "submitted_at": self.submitted_at,
            "submitted_seq": self.submitted_seq,
            "seconds_left": self.seconds_left,
            "delay_notice_seq": self.delay_notice_seq,
            "delay_notified_in_time": self.delay_notified_in_time,
            "note": self.note,
        }

    def describe(self) -> str:
        due = "" if self.deadline is None else f" (due {format_timestamp(self.deadline.due_at)})"
        if self.state == "due" and self.seconds_left is not None:
            return f"{self.stage}: due in {_duration(self.seconds_left)}{due}"
        if self.state == "overdue" and self.seconds_left is not None:
            return f"{self.stage}: OVERDUE by {_duration(-self.seconds_left)}{due}"
        if self.state in ("met", "missed"):
            return f"{self.stage}: {self.state.upper()}, submitted {self.submitted_at}{due}"
        return f"{self.stage}: {self.state.replace('_', ' ')}{due}{' - ' + self.note if self.note else ''}"


def _duration(seconds: int) -> str:
    hours, rest = divmod(abs(seconds), 3600)
    days, hours = divmod(hours, 24)
    minutes = rest // 60
    return (f"{days}d " if days else "") + f"{hours}h{minutes:02d}m"


@dataclass(slots=True)
class ClassificationStep:
    seq: int
    kind: str  # classified or reclassified
    classified_at: str
    classified_by: str
    engine: Classification
    stated_major: bool | None
    reason: str | None

    @property
    def major(self) -> bool:
        return self.engine.major if self.stated_major is None else self.stated_major

    @property
    def disagreement(self) -> bool:
        return self.stated_major is not None and self.stated_major != self.engine.major

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "classified_at": self.classified_at,
            "classified_by": self.classified_by,
            "major": self.major,
            "stated_major": self.stated_major,
            "engine_major": self.engine.major,
            "disagreement": self.disagreement,
            "criteria_met": self.engine.met_codes,
            "path": self.engine.path,
            "estimated": self.engine.estimated,
            "rule_version": self.engine.rule_version,
            "reason": self.reason,
            "worksheet": self.engine.as_dict(),
        }


@dataclass(slots=True)
class IncidentView:
    incident_id: str
    stream: str
    aware_at: str | None = None
    classifications: list[ClassificationStep] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    delay_notices: list[dict[str, Any]] = field(default_factory=list)
    recovered_at: str | None = None
    closed_at: str | None = None
    root_cause: str | None = None
    deadlines: list[DeadlineStatus] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def major(self) -> bool:
        return bool(self.classifications) and self.classifications[-1].major

    def as_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "stream": self.stream,
            "major": self.major,
            "aware_at": self.aware_at,
            "classifications": [c.as_dict() for c in self.classifications],
            "reports": self.reports,
            "delay_notices": self.delay_notices,
            "recovered_at": self.recovered_at,
            "closed_at": self.closed_at,
            "root_cause": self.root_cause,
            "deadlines": [d.as_dict() for d in self.deadlines],
            "timeline": self.events,
            "notes": self.notes,
        }


def _t(text: str) -> datetime:
    return parse_timestamp(text, field="timestamp")


def build_view(
    incident_id: str,
    events: Sequence[IncidentEvent],
    now: datetime,
    *,
    entity_type: str = "other",
    weekend_rule: bool = True,
) -> IncidentView:
    view = IncidentView(incident_id, f"incident/{incident_id}")
    for event in events:
        data = event.payload
        view.events.append({"seq": event.seq, "type": event.type, "occurred_at": event.occurred_at})
        if data is None:
            view.notes.append(f"seq {event.seq}: payload erased or disposed; the step is shown without its content")
            continue
        if event.type == "incident.detected":
            view.aware_at = view.aware_at or str(data["aware_at"])
        elif event.type in ("incident.classified", "incident.reclassified"):
            model = IncidentReclassified if event.type == "incident.reclassified" else IncidentClassified
            inputs = model.model_validate(data)
            view.classifications.append(
                ClassificationStep(
                    event.seq,
                    event.type.split(".", 1)[1],
                    inputs.classified_at,
                    inputs.classified_by,
                    classify(inputs),
                    inputs.major,
                    data.get("reason"),
                )
            )
        elif event.type == "incident.report_submitted":
            view.reports.append({**data, "seq": event.seq})
        elif event.type == "incident.delay_notice":
            view.delay_notices.append({**data, "seq": event.seq})
        elif event.type == "incident.recovered":
            view.recovered_at = str(data["recovered_at"])
        elif event.type == "incident.closed":
            view.closed_at = str(data["closed_at"])
        elif event.type == "incident.root_cause":
            view.root_cause = str(data["root_cause"])
    view.deadlines = _deadlines(view, now, entity_type, weekend_rule)
    return view


def _first_report(view: IncidentView, stage: str, after: datetime | None = None) -> dict[str, Any] | None:
    for report in sorted(view.reports, key=lambda r: (_t(r["submitted_at"]), r["seq"])):
        if stage in report["stages"] and (after is None or _t(report["submitted_at"]) >= after):
            return report
    return None


def _latest_report(view: IncidentView, stage: str) -> dict[str, Any] | None:
    found = [r for r in view.reports if stage in r["stages"]]
    return max(found, key=lambda r: (_t(r["submitted_at"]), r["seq"])) if found else None


def _status(
    stage: str, deadline: Deadline, report: dict[str, Any] | None, view: IncidentView, now: datetime
) -> DeadlineStatus:
    notice = next((n for n in view.delay_notices if n["stage"] == stage), None)
    notice_seq = None if notice is None else int(notice["seq"])
    in_time = None if notice is None else _t(notice["notified_at"]) <= deadline.due_at
    if report is not None:
        submitted = _t(report["submitted_at"])
        state: DeadlineState = "met" if submitted <= deadline.due_at else "missed"
        return DeadlineStatus(
            stage,
            state,
            deadline,
            report["submitted_at"],
            int(report["seq"]),
            int((deadline.due_at - submitted).total_seconds()),
            notice_seq,
            in_time,
        )
    left = int((deadline.due_at - now).total_seconds())
    note = ""
    if left < 0 and notice is not None:
        note = "delay notified before the deadline" if in_time else "delay notified after the deadline"
    return DeadlineStatus(
        stage, "due" if left >= 0 else "overdue", deadline, None, None, left, notice_seq, in_time, note
    )


def _major_periods(view: IncidentView) -> list[tuple[datetime, datetime | None]]:
    """(start, end) of each stretch during which the incident stood classified as major (end None: still major)."""
    periods: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = None
    for step in view.classifications:
        if step.major and start is None:
            start = _t(step.classified_at)
        elif not step.major and start is not None:
            periods.append((start, _t(step.classified_at)))
            start = None
    if start is not None:
        periods.append((start, None))
    return periods


def _initial(
    view: IncidentView, aware: datetime, now: datetime, entity_type: str, weekend_rule: bool
) -> DeadlineStatus:
    """RTS 2025/301 Art. 5: 4 hours from the classification as major (capped at awareness + 24 hours).

    A reclassification to non-major ends the obligation for the future, never for the past: a deadline that passed
    while the incident was major stays missed.  A later reclassification back to major starts a new clock.
    """
    periods = _major_periods(view)

    def deadline_for(start: datetime) -> Deadline:
        return initial_deadline(aware, start, entity_type=entity_type, weekend_rule=weekend_rule)

    report = _first_report(view, "initial")
    if report is not None:
        submitted = _t(report["submitted_at"])
        start = max((p[0] for p in periods if p[0] <= submitted), default=periods[0][0])
        return _status("initial", deadline_for(start), report, view, now)
    for start, end in periods:
        if end is not None and deadline_for(start).due_at < end:
            status = _status("initial", deadline_for(start), None, view, now)
            return DeadlineStatus(
                "initial",
                "missed",
                status.deadline,
                seconds_left=status.seconds_left,
                delay_notice_seq=status.delay_notice_seq,
                delay_notified_in_time=status.delay_notified_in_time,
                note=f"passed while the incident was major, before its reclassification at {format_timestamp(end)}",
            )
    start, end = periods[-1]
    if end is not None:
        return DeadlineStatus(
            "initial", "not_required", deadline_for(start), note="reclassified as non-major before it was due"
        )
    return _status("initial", deadline_for(start), None, view, now)


def _deadlines(view: IncidentView, now: datetime, entity_type: str, weekend_rule: bool) -> list[DeadlineStatus]:
    first_major = next((c for c in view.classifications if c.major), None)
    if first_major is None:
        return [DeadlineStatus(s, "not_required", None, note="never classified as major") for s in _STAGES]
    if view.aware_at is None:
        view.notes.append("no incident.detected event: the 24-hour cap counts from the first classification")
    aware = _t(view.aware_at) if view.aware_at else _t(first_major.classified_at)
    current_major = view.classifications[-1].major
    results = []
    initial = _initial(view, aware, now, entity_type, weekend_rule)
    results.append(initial)
    if initial.submitted_at is None:
        later: DeadlineState = "waiting" if current_major else "not_required"
        note = "after the initial notification" if current_major else "the incident is classified non-major"
        results += [DeadlineStatus(s, later, None, note=note) for s in _STAGES[1:]]
        return results
    intermediate = _status(
        "intermediate",
        intermediate_deadline(_t(initial.submitted_at), entity_type=entity_type, weekend_rule=weekend_rule),
        _first_report(view, "intermediate"),
        view,
        now,
    )
    results.append(_unless_reclassified(intermediate, current_major))
    latest = _latest_report(view, "intermediate")
    if latest is None:
        results.append(DeadlineStatus("final", "waiting", None, note="after the latest intermediate report"))
        return results
    final = _status(
        "final",
        final_deadline(_t(latest["submitted_at"]), entity_type=entity_type, weekend_rule=weekend_rule),
        _first_report(view, "final"),
        view,
        now,
    )
    results.append(_unless_reclassified(final, current_major))
    return results


def _unless_reclassified(status: DeadlineStatus, current_major: bool) -> DeadlineStatus:
    if current_major or status.submitted_at is not None:
        return status
    return DeadlineStatus(
        status.stage, "not_required", status.deadline, note="reclassified as non-major before it was submitted"
    )


_STAGES = ("initial", "intermediate", "final")
