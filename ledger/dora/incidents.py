"""Incidents read back from the ledger: timelines, deadlines due, recurring incidents, report export.

Everything here is rebuilt from the signed entries of the ``incident/<id>`` streams; nothing is kept elsewhere.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select

from ledger.dora.classification import Classification, aggregate_recurring, classify
from ledger.dora.export import ReportIdentity, build_report
from ledger.dora.timeline import DeadlineStatus, IncidentEvent, IncidentView, build_view
from ledger.errors import NotFoundError, ValidationError
from ledger.service import Ledger
from ledger.store.recorder import translated
from ledger.store.records import EntryFilter
from ledger.store.tables import streams
from schemas.payloads import IncidentClassified
from schemas.timestamps import format_timestamp, parse_timestamp

__all__ = [
    "DueItem",
    "RecurringGroup",
    "due_reports",
    "export_report",
    "incident_ids",
    "incident_view",
    "parse_within",
    "recurring_incidents",
]

INCIDENT_PREFIX = "incident/"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_WITHIN = re.compile(r"([0-9]{1,6})([mhd])")
RECURRING_WINDOW_MONTHS = 6


def _stream(incident_id: str) -> str:
    if not _ID.fullmatch(incident_id) or len(incident_id) > 180:
        raise ValidationError("incident id must be letters, digits, '.', '_' or '-'", field="incident")
    return INCIDENT_PREFIX + incident_id


def incident_ids(ledger: Ledger) -> list[str]:
    """Every incident with a stream in the log, in name order."""
    query = (
        select(streams.c.stream)
        .where(streams.c.log_id == ledger.log_id, streams.c.stream.like(INCIDENT_PREFIX + "%"))
        .order_by(streams.c.stream)
    )
    with translated("listing incidents"), ledger.recorder.engine.connect() as conn:
        names = [row.stream for row in conn.execute(query)]
    return [name[len(INCIDENT_PREFIX) :] for name in names if "/" not in name[len(INCIDENT_PREFIX) :]]


def _events(ledger: Ledger, incident_id: str) -> list[IncidentEvent]:
    entries = list(ledger.entries(EntryFilter(stream=_stream(incident_id))))
    if not entries:
        raise NotFoundError("no such incident")
    payloads = ledger.recorder.payloads(ledger.log_id, [e.seq for e in entries])
    result = []
    for entry in entries:
        record = payloads.get(entry.seq)
        data = None if record is None or record.payload is None else orjson.loads(record.payload)
        result.append(IncidentEvent(entry.seq, entry.type, entry.occurred_at, data))
    return result


def incident_view(ledger: Ledger, incident_id: str, now: datetime | None = None) -> IncidentView:
    settings = ledger.settings
    return build_view(
        incident_id,
        _events(ledger, incident_id),
        now or datetime.now(UTC),
        entity_type=settings.dora_entity_type,
        weekend_rule=settings.dora_weekend_rule,
    )


@dataclass(frozen=True, slots=True)
class DueItem:
    incident_id: str
    status: DeadlineStatus

    def as_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, **self.status.as_dict()}


def parse_within(text: str) -> timedelta:
    """``30m``, ``4h`` or ``2d``."""
    match = _WITHIN.fullmatch(text.strip())
    if match is None:
        raise ValidationError("give a duration such as 30m, 4h or 2d", field="within")
    amount, unit = int(match.group(1)), match.group(2)
    return {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]


def due_reports(ledger: Ledger, within: timedelta, now: datetime | None = None) -> list[DueItem]:
    """Reports overdue, or due within ``within``, across every incident, soonest first."""
    moment = now or datetime.now(UTC)
    items = []
    for incident_id in incident_ids(ledger):
        for status in incident_view(ledger, incident_id, moment).deadlines:
            if status.state == "overdue" or (
                status.state == "due"
                and status.seconds_left is not None
                and status.seconds_left <= within.total_seconds()
            ):
                items.append(DueItem(incident_id, status))
    return sorted(items, key=lambda item: item.status.seconds_left or 0)


def export_report(ledger: Ledger, incident_id: str, stages: list[str], now: datetime | None = None) -> dict[str, Any]:
    settings = ledger.settings
    identity = ReportIdentity(settings.dora_entity_name, settings.dora_entity_lei, settings.dora_entity_type)
    return build_report(incident_view(ledger, incident_id, now), stages, identity, settings.dora_supervisor)


# --- recurring incidents (RTS 2024/1772 Art. 8(2)) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecurringGroup:
    root_cause: str
    incidents: tuple[str, ...]
    classification: Classification

    def as_dict(self) -> dict[str, Any]:
        return {
            "root_cause": self.root_cause,
            "incidents": list(self.incidents),
            "major": self.classification.major,
            "criteria_met": self.classification.met_codes,
            "classification": self.classification.as_dict(),
        }


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    """The six calendar months ending with ``month`` (YYYY-MM), as [start, end) in UTC."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValidationError("month must be YYYY-MM", field="month")
    year, number = int(match.group(1)), int(match.group(2))
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    first = year * 12 + (number - 1) - (RECURRING_WINDOW_MONTHS - 1)
    return datetime(first // 12, first % 12 + 1, 1, tzinfo=UTC), end


def recurring_incidents(ledger: Ledger, month: str, now: datetime | None = None) -> list[RecurringGroup]:
    """Art. 8(2) check for ``month``: non-major incidents of the six months up to its end, grouped by root cause.

    A group of two or more whose aggregated inputs meet Art. 8(1) counts as one major incident.  Aggregation
    (the RTS is silent): see :func:`ledger.dora.classification.aggregate_recurring`.  An incident counts when the
    entity became aware of it (or, lacking that, first classified it) inside the window.
    """
    start, end = _month_bounds(month)
    groups: dict[str, list[tuple[str, IncidentClassified]]] = defaultdict(list)
    for incident_id in incident_ids(ledger):
        view = incident_view(ledger, incident_id, now)
        if not view.classifications or view.major or view.root_cause is None:
            continue
        when = parse_timestamp(view.aware_at or view.classifications[0].classified_at, field="aware_at")
        if not start <= when < end:
            continue
        latest = view.classifications[-1]
        source = next(e for e in _events(ledger, incident_id) if e.seq == latest.seq)
        inputs = IncidentClassified.model_validate(_classified_fields(dict(source.payload or {})))
        groups[view.root_cause].append((incident_id, inputs))
    results = []
    for root_cause, members in sorted(groups.items()):
        if len(members) < 2:
            continue
        combined = aggregate_recurring(
            "+".join(m[0] for m in members)[:256],
            format_timestamp(end - timedelta(microseconds=1)),
            "ledger",
            [m[1] for m in members],
        )
        result = classify(combined)
        if result.major:
            results.append(RecurringGroup(root_cause, tuple(m[0] for m in members), result))
    return results


def _classified_fields(data: dict[str, Any]) -> dict[str, Any]:
    allowed = set(IncidentClassified.model_fields)
    return {key: value for key, value in data.items() if key in allowed}
