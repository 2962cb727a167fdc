"""Reporting deadlines for major ICT-related incidents.  Pure: times in, times out (UTC), no clock.

Commission Delegated Regulation (EU) 2025/301 Art. 5, with DORA Art. 19(4):

* initial notification: within 4 hours of the classification as major and no later than 24 hours after the entity
  became aware of the incident; when the classification comes later than 24 hours after awareness, 4 hours from
  the classification (Art. 5);
* intermediate report: within 72 hours of the submission of the initial notification (Art. 5);
* final report: within one month of the latest intermediate report (Art. 5).  "One month" is the same calendar
  date in the next month, clamped to that month's last day (31 January -> 28 or 29 February), at the same
  Brussels wall-clock time.  That arithmetic is flagged for legal review: the EU time-limit rules (Regulation
  1182/71) are not confirmed to apply;
* a deadline that falls on a weekend or a Belgian public holiday may move to 12:00 (Brussels) of the next working
  day (Art. 5 (non-working days)), except for the initial and intermediate reports of credit institutions, central
  counterparties, operators of trading venues and entities identified as essential or important under NIS2.
"""

from __future__ import annotations

import calendar as month_calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ledger.dora.calendar import BRUSSELS, holiday_name, is_working_day, next_working_day, noon_brussels
from ledger.errors import ValidationError

__all__ = [
    "ENTITY_TYPES",
    "EXEMPT_FROM_WEEKEND_RULE",
    "Deadline",
    "EntityType",
    "Stage",
    "add_one_month",
    "final_deadline",
    "initial_deadline",
    "intermediate_deadline",
]

Stage = Literal["initial", "intermediate", "final"]
STAGES: tuple[Stage, ...] = ("initial", "intermediate", "final")
EntityType = Literal["credit_institution", "central_counterparty", "trading_venue_operator", "nis2_entity", "other"]
ENTITY_TYPES: tuple[str, ...] = (
    "credit_institution",
    "central_counterparty",
    "trading_venue_operator",
    "nis2_entity",
    "other",
)
EXEMPT_FROM_WEEKEND_RULE = frozenset(
    {"credit_institution", "central_counterparty", "trading_venue_operator", "nis2_entity"}
)
INITIAL_AFTER_CLASSIFICATION = timedelta(hours=4)
INITIAL_AFTER_AWARENESS = timedelta(hours=24)
INTERMEDIATE_AFTER_INITIAL = timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class Deadline:
    stage: Stage
    due_at: datetime  # UTC
    basis: str
    rule: str
    moved_from: datetime | None = None  # the deadline before the weekend/holiday rule moved it
    moved_because: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "due_at": _z(self.due_at),
            "basis": self.basis,
            "rule": self.rule,
            "moved_from": None if self.moved_from is None else _z(self.moved_from),
            "moved_because": self.moved_because,
        }


def _z(moment: datetime) -> str:
    from schemas.timestamps import format_timestamp

    return format_timestamp(moment)


def _aware(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC (elapsed-time arithmetic across daylight-saving changes needs UTC, not wall clocks)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware", field=name)
    return moment.astimezone(UTC)


def _check_entity(entity_type: str) -> None:
    if entity_type not in ENTITY_TYPES:
        raise ValidationError(f"entity type must be one of {', '.join(ENTITY_TYPES)}", field="entity_type")


def _apply_weekend_rule(deadline: Deadline, entity_type: str, weekend_rule: bool) -> Deadline:
    """RTS 2025/301 Art. 5: a deadline on a non-working day may move to 12:00 of the next working day."""
    if not weekend_rule:
        return deadline
    if deadline.stage != "final" and entity_type in EXEMPT_FROM_WEEKEND_RULE:
        return deadline  # the exception: initial and intermediate reports of these entities do not move
    local_day = deadline.due_at.astimezone(BRUSSELS).date()
    if is_working_day(local_day):
        return deadline
    reason = holiday_name(local_day) or local_day.strftime("%A")
    moved = noon_brussels(next_working_day(local_day)).astimezone(UTC)
    return Deadline(
        deadline.stage,
        moved,
        deadline.basis,
        deadline.rule + "; RTS 2025/301 Art. 5 (non-working day): moved to 12:00 of the next working day",
        deadline.due_at,
        f"{local_day.isoformat()} is {reason} in Belgium",
    )


def initial_deadline(
    aware_at: datetime, classified_major_at: datetime, *, entity_type: str = "other", weekend_rule: bool = True
) -> Deadline:
    """RTS 2025/301 Art. 5."""
    aware_at = _aware(aware_at, "aware_at")
    classified_major_at = _aware(classified_major_at, "classified_at")
    _check_entity(entity_type)
    from_classification = classified_major_at + INITIAL_AFTER_CLASSIFICATION
    cap = aware_at + INITIAL_AFTER_AWARENESS
    if classified_major_at > cap:
        deadline = Deadline(
            "initial",
            from_classification,
            "classified more than 24 hours after awareness: 4 hours from the classification",
            "RTS 2025/301 Art. 5 (initial notification)",
        )
    elif from_classification <= cap:
        deadline = Deadline(
            "initial",
            from_classification,
            "4 hours after classification as major",
            "RTS 2025/301 Art. 5 (initial notification)",
        )
    else:
        deadline = Deadline(
            "initial",
            cap,
            "24 hours after awareness (earlier than 4 hours after classification)",
            "RTS 2025/301 Art. 5 (initial notification)",
        )
    return _apply_weekend_rule(deadline, entity_type, weekend_rule)


def intermediate_deadline(
    initial_submitted_at: datetime, *, entity_type: str = "other", weekend_rule: bool = True
) -> Deadline:
    """RTS 2025/301 Art. 5: 72 hours after the initial notification was submitted (due even if nothing changed)."""
    initial_submitted_at = _aware(initial_submitted_at, "initial_submitted_at")
    _check_entity(entity_type)
    deadline = Deadline(
        "intermediate",
        initial_submitted_at + INTERMEDIATE_AFTER_INITIAL,
        "72 hours after the initial notification was submitted",
        "RTS 2025/301 Art. 5 (intermediate report)",
    )
    return _apply_weekend_rule(deadline, entity_type, weekend_rule)


def add_one_month(moment: datetime) -> datetime:
    """The same Brussels calendar date and wall-clock time one month later, clamped to the month's end."""
    local = _aware(moment, "moment").astimezone(BRUSSELS)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    day = min(local.day, month_calendar.monthrange(year, month)[1])
    later = local.replace(year=year, month=month, day=day, tzinfo=None).replace(tzinfo=BRUSSELS)
    return later.astimezone(UTC)


def final_deadline(
    latest_intermediate_submitted_at: datetime, *, entity_type: str = "other", weekend_rule: bool = True
) -> Deadline:
    """RTS 2025/301 Art. 5: one month after the latest intermediate report."""
    latest_intermediate_submitted_at = _aware(latest_intermediate_submitted_at, "intermediate_submitted_at")
    _check_entity(entity_type)
    deadline = Deadline(
        "final",
        add_one_month(latest_intermediate_submitted_at),
        "one month after the latest intermediate report (same date, clamped to month end; flagged for legal review)",
        "RTS 2025/301 Art. 5 (final report)",
    )
    return _apply_weekend_rule(deadline, entity_type, weekend_rule)
