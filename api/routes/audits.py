"""Server-side audits: run a full audit of the log now, keep its report, read earlier runs."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Auditor, State
from api.metrics import record_audit
from api.state import AppState
from ledger.access import ApiKey
from ledger.errors import LedgerError
from ledger.service import Ledger
from ledger.verify import AuditReport
from schemas.api import AuditRunPublic

router = APIRouter(prefix="/v1", tags=["audits"])

_INTERNAL = {"error": "InternalError", "message": "the audit did not finish"}
RunId = Annotated[str, Path(min_length=1, max_length=36, description="the id POST /v1/audits returned")]


@router.post(
    "/audits",
    status_code=201,
    response_model=AuditRunPublic,
    responses={201: {"description": "the audit ran; status is passed or failed, the report lists every finding"}},
)
async def run_audit(request: Request, response: Response, scope: Auditor, state: State) -> AuditRunPublic:
    """Audit everything stored for the log (chain, signatures, payload digests, tree, checkpoints) now."""
    key, ledger = scope
    run, report = await run_in_threadpool(_audit_and_record, state, key, ledger)
    record_audit(request, ledger.origin, report.ok, len(report.findings))
    response.headers["Location"] = f"/v1/audits/{run.id}"
    return run


@router.get("/audits", response_model=list[AuditRunPublic])
def latest_audits(
    scope: Auditor, state: State, limit: Annotated[int, Query(ge=1, le=100, description="runs to return")] = 20
) -> list[AuditRunPublic]:
    """The latest audit runs of the log, newest first."""
    _, ledger = scope
    return [AuditRunPublic.model_validate(run) for run in state.audit_runs.latest(ledger.log_id, limit)]


@router.get("/audits/{run_id}", response_model=AuditRunPublic)
def audit_run(scope: Auditor, state: State, run_id: RunId) -> AuditRunPublic:
    """One audit run of the log, with its report (404 for a run of another log)."""
    _, ledger = scope
    return AuditRunPublic.model_validate(state.audit_runs.get(ledger.log_id, run_id))


def _audit_and_record(state: AppState, key: ApiKey, ledger: Ledger) -> tuple[AuditRunPublic, AuditReport]:
    """Record the start, audit, record the outcome; an audit that cannot finish is kept as ``error``."""
    run_id = str(uuid.uuid4())
    log_id = ledger.log_id
    state.audit_runs.start(run_id, log_id, requested_by=key.key_id, started_at=state.now())
    try:
        report = ledger.audit()
    except Exception as exc:
        error = {"error": type(exc).__name__, "message": str(exc)} if isinstance(exc, LedgerError) else _INTERNAL
        with contextlib.suppress(LedgerError):  # the audit's own error matters more than a failed bookkeeping write
            state.audit_runs.finish(run_id, "error", error, finished_at=state.now())
        raise
    status = "passed" if report.ok else "failed"
    state.audit_runs.finish(run_id, status, report.as_dict(), finished_at=state.now())
    return AuditRunPublic.model_validate(state.audit_runs.get(log_id, run_id)), report
