"""Operations: liveness, readiness and health probes (public, minimal) and Prometheus metrics (admin keys)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import MetricsReader, State
from api.errors import RETRY_AFTER_SECONDS, problem_response
from api.metrics import CONTENT_TYPE, metrics_of
from api.state import AppState

router = APIRouter(tags=["operations"])
log = logging.getLogger("ledger.api")

READY_TIMEOUT_SECONDS = 2.0


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"


class LivePublic(BaseModel):
    status: Literal["alive"] = "alive"


class ReadyPublic(BaseModel):
    status: Literal["ready"] = "ready"


@router.get("/health", response_model=HealthPublic)
def health() -> HealthPublic:
    """The API answers (no key needed; says nothing about the database)."""
    return HealthPublic()


@router.get("/live", response_model=LivePublic)
def live() -> LivePublic:
    """The process is alive (no key needed)."""
    return LivePublic()


@router.get(
    "/ready",
    response_model=ReadyPublic,
    responses={503: {"description": "the database cannot be reached (problem+json, Retry-After)"}},
)
async def ready(request: Request) -> ReadyPublic | JSONResponse:
    """The database answers within two seconds (no key needed)."""
    if await _database_answers(request):
        return ReadyPublic()
    return problem_response(
        request,
        503,
        "Not ready",
        "the database cannot be reached",
        "unavailable",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
def metrics(request: Request, state: State, key: MetricsReader) -> Response:
    """Prometheus metrics in the text exposition format, version 0.0.4 (admin keys; only the key's own logs)."""
    found = metrics_of(request)
    found.set_log_sizes((head.origin, head.size) for head in state.recorder.list_logs() if key.sees_log(head.origin))
    return Response(content=found.render(key.logs), media_type=CONTENT_TYPE)


async def _database_answers(request: Request) -> bool:
    """Run the check in a worker thread and give up waiting after READY_TIMEOUT_SECONDS.

    At most one check runs per app: one stuck on a hung database is shared by the probes that arrive meanwhile
    instead of tying up one more worker thread each.
    """
    app_state = request.app.state
    running: asyncio.Future[bool] | None = getattr(app_state, "ready_check", None)
    if running is None or running.done() or running.get_loop() is not asyncio.get_running_loop():
        running = asyncio.ensure_future(asyncio.to_thread(_query_database, app_state.ledger_state))
        app_state.ready_check = running
    try:
        return await asyncio.wait_for(asyncio.shield(running), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("readiness check timed out", extra={"timeout_seconds": READY_TIMEOUT_SECONDS})
        return False


def _query_database(state: AppState) -> bool:
    try:
        state.recorder.list_logs()
    except Exception as exc:  # any failure means "not ready"; the type is logged, never the message
        log.warning("readiness check failed", extra={"error": type(exc).__name__})
        return False
    return True
