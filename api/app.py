"""``create_app``: the FastAPI application over the ledger.  Routes stay thin; see api/routes/."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.deps import reject_unknown_query
from api.errors import PROBLEM_RESPONSES, install_error_handlers
from api.metrics import metrics_of
from api.middleware import install_middleware
from api.routes import audits, dora, events, keys, ops, packs, proofs, reconcile, retention
from api.state import AppState
from ledger.errors import LedgerError, StorageUnavailable
from ledger.service import Ledger
from ledger.settings import Settings
from schemas.envelope import EventIn

if TYPE_CHECKING:
    from ledger.bus.relay import LogWorkerThread

API_VERSION = "1"
SEALER_RETRY_SECONDS = 5.0
log = logging.getLogger("ledger.api")


SERVE_WORKER_ENV = "LEDGER_SERVE_WORKER_LOG_LEVEL"
"""Set by ``ledger serve --workers N`` for its worker processes: their log level (they log JSON lines too)."""


def create_app(settings: Settings | None = None, *, background_workers: bool = True) -> FastAPI:
    """Build the API for the configured store (the embedded default, or PostgreSQL).

    ``background_workers``: whether the app's lifespan runs the sealer and the Kafka workers.  The worker
    processes of ``ledger serve --workers N`` do not: their supervising process runs them, once.
    """
    settings = settings or Settings()
    state = AppState(settings, Ledger.open_recorder(settings, run_migrations=False))
    try:
        state.ensure_schema()
    except StorageUnavailable:
        log.warning("database unreachable at start-up; serving 503 until it answers")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers = start_background_workers(settings) if background_workers else []
        try:
            yield
        finally:
            for worker in workers:
                worker.stop()
            state.recorder.engine.dispose()

    app = FastAPI(
        title="Evidence ledger API",
        version=API_VERSION,
        description="Append compliance events to a signed, hash-chained log; read them, prove them, audit them.",
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.ledger_state = state
    install_error_handlers(app)
    install_middleware(app, settings)
    for module in (ops, events, proofs, audits, keys, reconcile, retention, dora, packs):
        app.include_router(module.router)
    metrics = metrics_of(app)
    metrics.add_scrape_hook(lambda logs: metrics.set_overdue_reports(dora.overdue_reports(state, logs)))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def create_worker_app() -> FastAPI:
    """The app of one worker process of ``ledger serve --workers N`` (a uvicorn factory): settings from the
    environment, JSON logging at the level the command was given, no background workers."""
    from api.middleware import configure_json_logging

    configure_json_logging(os.environ.get(SERVE_WORKER_ENV, "info"))
    return create_app(Settings(), background_workers=False)


def start_background_workers(settings: Settings) -> list[LogWorkerThread]:
    """The background workers of ``ledger serve``: the sealer (unless LEDGER_SEAL_ENABLED is false) and the
    Kafka workers when a broker is configured."""
    workers = _start_bus_workers(settings)
    if settings.seal_enabled:
        from ledger.bus.relay import LogWorkerThread

        log.info("sealing to the %s store", settings.seal_store_name)
        workers.append(LogWorkerThread(settings, "sealer", _seal_forever).start())
    return workers


def _seal_forever(ledger: Ledger, stop: threading.Event) -> None:
    """Seal the log into the default store until ``stop``; a store that cannot be opened yet is retried, so an
    outage only delays sealing (``Sealer.run_forever`` then rides out the later ones)."""
    from ledger.bus.relay import backoff_seconds

    failures = 0
    while not stop.is_set():
        try:
            sealer = retention.default_sealer(ledger)
        except LedgerError as exc:
            failures += 1
            pause = backoff_seconds(SEALER_RETRY_SECONDS, failures)
            log.warning("sealer: cannot open the store yet: %s (retrying in %.1f s)", exc, pause)
            stop.wait(pause)
            continue
        sealer.run_forever(stop)
        return


def _start_bus_workers(settings: Settings) -> list[LogWorkerThread]:
    """With a Kafka broker configured, the relay publishes committed entries from a background thread, and
    with an ingest topic configured too, a second thread appends the services' events from it."""
    if not settings.kafka_bootstrap_servers:
        return []
    from ledger.bus.ingest import IngestConsumer
    from ledger.bus.relay import LogWorkerThread, relay_thread

    log.info("relaying entries to Kafka topic %s", settings.kafka_topic)
    workers = [relay_thread(settings).start()]
    if settings.kafka_ingest_topic:
        log.info("ingesting events from Kafka topic %s", settings.kafka_ingest_topic)

        def ingest(ledger: Ledger, stop: threading.Event) -> None:
            IngestConsumer(ledger, settings).run_forever(stop)

        workers.append(LogWorkerThread(settings, "ingest", ingest).start())
    return workers


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated spec plus the schemas of the bodies routes read raw: the event envelope, DORA inputs."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    models: tuple[type[BaseModel], ...] = (EventIn, *dora.REQUEST_SCHEMAS)
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    app.openapi_schema = spec
    return spec
