"""DORA incidents: classification and threat assessment dry runs, incident views, reports due, report export.

Everything is rebuilt from the signed events of the ``incident/<id>`` streams (ledger/dora/incidents.py); these
routes append nothing.  Classification inputs are published as ``incident.classified`` events through
``POST /v1/events``, and the ledger records its own ``dora.classification_evaluated`` beside each.  The
``ledger_dora_reports_overdue`` gauge is computed from the same streams when ``/metrics`` is scraped.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from api.deps import DoraClassifier, DoraExporter, DoraReader
from api.state import AppState
from ledger.dora.classification import ThreatInputs, assess_threat, classify
from ledger.dora.incidents import due_reports, export_report, incident_ids, incident_view, parse_within
from ledger.dora.timeline import IncidentView
from ledger.errors import LedgerError, NotFoundError, StorageUnavailable, ValidationError
from ledger.service import Ledger
from schemas._errors import ledger_error, problems_of
from schemas.api import (
    ClassificationPublic,
    DeadlineStatusPublic,
    DueReportPublic,
    IncidentReportPublic,
    IncidentSummaryPublic,
    IncidentViewPublic,
    ReportStageName,
    ThreatAssessmentPublic,
)
from schemas.payloads import IncidentClassified, ThreatClassified

router = APIRouter(prefix="/v1/dora", tags=["dora"])
log = logging.getLogger("ledger.api")

REQUEST_SCHEMAS: tuple[type[BaseModel], ...] = (IncidentClassified, ThreatClassified)
"""Bodies read from the raw request (so that errors name the field); api/app.py adds them to the spec."""

Model = TypeVar("Model", bound=BaseModel)


def _body_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


IncidentId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=180,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="the incident id: its events are on stream incident/<id>",
    ),
]
Within = Annotated[
    str,
    Query(min_length=1, max_length=16, description="look-ahead: a number and m, h or d, e.g. 30m, 4h or 2d"),
]
Stages = Annotated[
    list[ReportStageName],
    Query(min_length=1, max_length=3, description="the stages reported together (repeat: ?stage=a&stage=b)"),
]


async def _validated_body(request: Request, model: type[Model]) -> Model:
    """The JSON body as ``model``; a problem names the first bad field and never repeats a submitted value."""
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ValidationError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ledger_error(problems_of(exc)) from None


@router.post(
    "/classify",
    response_model=ClassificationPublic,
    openapi_extra=_body_of(IncidentClassified),
    responses={200: {"description": "the engine's worksheet; nothing is appended"}},
)
async def classify_incident(request: Request, scope: DoraClassifier) -> ClassificationPublic:
    """Classify an incident under RTS 2024/1772 Art. 8(1) from ``incident.classified`` inputs (a dry run)."""
    inputs = await _validated_body(request, IncidentClassified)
    return ClassificationPublic.model_validate(classify(inputs).as_dict())


@router.post(
    "/threats/assess",
    response_model=ThreatAssessmentPublic,
    openapi_extra=_body_of(ThreatClassified),
    responses={200: {"description": "the assessment; nothing is appended"}},
)
async def assess_cyber_threat(request: Request, scope: DoraClassifier) -> ThreatAssessmentPublic:
    """Assess a cyber threat under RTS 2024/1772 Art. 10 from ``threat.classified`` inputs (a dry run)."""
    threat = await _validated_body(request, ThreatClassified)
    inputs = ThreatInputs(
        threat.could_affect_critical_functions_or_others.value,
        threat.high_probability.value,
        threat.would_meet_critical_services.value,
        threat.would_meet_clients.value,
        threat.would_meet_geography.value,
    )
    return ThreatAssessmentPublic.model_validate(assess_threat(inputs).as_dict())


@router.get("/incidents", response_model=list[IncidentSummaryPublic])
def list_incidents(scope: DoraReader) -> list[IncidentSummaryPublic]:
    """Every incident of the log in id order: whether it is major and the report due or overdue now, if any."""
    _, ledger = scope
    now = datetime.now(UTC)
    return [_summary(incident_view(ledger, incident_id, now)) for incident_id in incident_ids(ledger)]


@router.get("/incidents/{incident_id}", response_model=IncidentViewPublic)
def read_incident(incident_id: IncidentId, scope: DoraExporter) -> IncidentViewPublic:
    # officers only: the view shows payload content (classification inputs, reports as submitted), which auditors
    # do not see elsewhere either; auditors have the list and the due feed, which carry no payload values
    """The incident's timeline, classifications (each with the engine's worksheet and any disagreement),
    reports, delay notices and every deadline as met, missed, due or overdue, now."""
    _, ledger = scope
    return IncidentViewPublic.model_validate(_view(ledger, incident_id).as_dict())


@router.get("/due", response_model=list[DueReportPublic])
def reports_due(scope: DoraReader, within: Within = "24h") -> list[DueReportPublic]:
    """Reports overdue or due within the look-ahead, across every incident: the most overdue first, then the
    soonest due."""
    _, ledger = scope
    look_ahead = _look_ahead(within)
    return [DueReportPublic.model_validate(item.as_dict()) for item in due_reports(ledger, look_ahead)]


@router.get("/incidents/{incident_id}/report", response_model=IncidentReportPublic)
def export_incident_report(incident_id: IncidentId, stage: Stages, scope: DoraExporter) -> IncidentReportPublic:
    """The report for the configured supervisor (LEDGER_DORA_SUPERVISOR: NBB or FSMA) as JSON keyed by the
    field numbers of ITS (EU) 2025/302 Annex I; several stages may be reported together."""
    _, ledger = scope
    if len(set(stage)) != len(stage):
        raise ValidationError("stage must not list a stage twice", field="stage")
    _view(ledger, incident_id)  # 404 for an unknown incident, with a message that does not repeat the id
    try:
        report = export_report(ledger, incident_id, list(stage))
    except ValidationError as exc:
        if exc.field != "incident":
            raise
        raise ValidationError(str(exc), field="incident_id") from None
    return IncidentReportPublic.model_validate(report)


def _view(ledger: Ledger, incident_id: str) -> IncidentView:
    try:
        return incident_view(ledger, incident_id)
    except NotFoundError:
        raise NotFoundError("no such incident") from None


def _look_ahead(within: str) -> timedelta:
    try:
        return parse_within(within)
    except OverflowError:  # more days than a timedelta holds
        raise ValidationError("the look-ahead is too long", field="within") from None


def _summary(view: IncidentView) -> IncidentSummaryPublic:
    pending = next((d for d in view.deadlines if d.state in ("due", "overdue")), None)
    return IncidentSummaryPublic(
        incident_id=view.incident_id,
        major=view.major,
        next_deadline=None if pending is None else DeadlineStatusPublic.model_validate(pending.as_dict()),
    )


# --- the ledger_dora_reports_overdue gauge (computed at scrape; see api/metrics.py) -----------------------


def overdue_reports(state: AppState, logs: Collection[str] | None) -> list[tuple[str, int]]:
    """Per log (those of ``logs`` that exist; every log when None), the report deadlines passed without the
    report.  Reads the ``incident/<id>`` streams only.  An incident whose view cannot be built is left out
    with a warning rather than failing the scrape; a database outage still fails it (503)."""
    now = datetime.now(UTC)
    counts = []
    for head in state.recorder.list_logs():
        if logs is not None and head.origin not in logs:
            continue
        ledger = state.cached_ledger(head.origin) or state.existing_log(head.origin)
        counts.append((head.origin, sum(_overdue_in(ledger, incident_id, now) for incident_id in incident_ids(ledger))))
    return counts


def _overdue_in(ledger: Ledger, incident_id: str, now: datetime) -> int:
    try:
        view = incident_view(ledger, incident_id, now)
    except StorageUnavailable:
        raise
    except (LedgerError, PydanticValidationError, KeyError, TypeError, ValueError) as exc:
        log.warning("incident left out of the overdue reports gauge", extra={"error": type(exc).__name__})
        return 0
    return sum(1 for status in view.deadlines if status.state == "overdue")
