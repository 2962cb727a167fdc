"""Gather appends on the event loop and hand each group to one worker thread.

Each ``POST /v1/events`` is validated and canonicalised on the event loop as it arrives
(:meth:`Ledger.prepare_batch`), then waits on a future.  A single writer task per log takes whatever has
queued while the previous group was being written and commits it with one call
(:meth:`Ledger.commit_prepared`): one thread hop and one shared transaction per group instead of one
per request, and the preparing overlaps the previous commit.  Each request's batch stays
all-or-nothing, with its own result or error.

Load shedding: when more appends wait than the log can commit soon (``api_max_queued_appends``), a new one is
refused at once with 503 and Retry-After, before any work is done for it, so that an overloaded server answers
quickly instead of letting every request time out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from api.errors import ApiProblem
from ledger.errors import StorageUnavailable
from ledger.service import AppendResult, Ledger, PreparedBatch
from schemas.envelope import EventIn

MAX_GROUP = 2000  # requests per group; more wait for the next one


BUSY_RETRY_AFTER_SECONDS = 1


class AsyncAppender:
    def __init__(self, ledger: Ledger, max_queued: int = 1000) -> None:
        self._ledger = ledger
        self._max_queued = max_queued
        self._pending: list[tuple[PreparedBatch, asyncio.Future[list[AppendResult]]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, events: Sequence[EventIn], producer: str) -> list[AppendResult]:
        if len(self._pending) >= self._max_queued:
            raise ApiProblem(
                503,
                "Server busy",
                "too many appends are waiting to be committed; retry later",
                kind="busy",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
            )
        batch = self._ledger.prepare_batch(events, producer)  # raises ValidationError at once
        future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            batches = [batch for batch, _ in group]
            try:
                await run_in_threadpool(self._ledger.commit_prepared, batches)
            except Exception as exc:
                for batch in batches:
                    batch.error = batch.error or exc
            for batch, future in group:
                if future.done():
                    continue
                if batch.error is not None:
                    error = batch.error
                    future.set_exception(error if isinstance(error, Exception) else StorageUnavailable("append failed"))
                else:
                    future.set_result(batch.results or [])
