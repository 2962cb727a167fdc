"""Reconciliation of the Kafka entries topic with the log, for auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import Auditor, State
from api.errors import ApiProblem
from ledger.bus.reconcile import reconcile_topic

router = APIRouter(prefix="/v1", tags=["reconciliations"])

TopicName = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=249,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Kafka topic to read (default: the topic the relay publishes to)",
    ),
]


class ReconcileFindingPublic(BaseModel):
    """One difference between the topic and the log, or a note (duplicate, unpublished)."""

    seq: int | None
    kind: str
    message: str
    offset: int | None


class ReconcileSummaryPublic(BaseModel):
    records_read: int
    distinct_seqs: int
    database_size: int
    checkpoint_size: int | None
    checkpoint_checked: bool
    duplicates: int
    unpublished: int
    other_log_records: int
    findings: int


class ReconciliationPublic(BaseModel):
    """The report: ``ok`` when the topic holds exactly the log's entries, in order, as signed."""

    origin: str
    topic: str
    ok: bool
    summary: ReconcileSummaryPublic
    findings: list[ReconcileFindingPublic]
    notes: list[ReconcileFindingPublic]


@router.get(
    "/reconciliations/kafka",
    response_model=ReconciliationPublic,
    responses={200: {"description": "the reconciliation ran; findings name each missing, extra or altered seq"}},
)
async def reconcile_kafka(scope: Auditor, state: State, topic: TopicName = None) -> ReconciliationPublic:
    """Read the entries topic from its beginning and compare it with the log and its latest signed checkpoint:
    count, each seq's body, hash and signature, the chain links, the order.

    The whole topic is read for each request (a worker thread does it); 503 when the broker cannot be reached,
    404 when the topic does not exist or this server is not configured with a Kafka broker.
    """
    _, ledger = scope
    settings = state.settings
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ApiProblem(404, "Not found", "this server is not configured with a Kafka broker", kind="not-found")
    report = await run_in_threadpool(reconcile_topic, ledger, bootstrap, topic or settings.kafka_topic)
    return ReconciliationPublic.model_validate(report.as_dict())
