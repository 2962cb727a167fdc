"""Load shedding: appends beyond what waits for a commit are refused at once with 503, and change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api.appender import AsyncAppender
from api.errors import ApiProblem
from ledger.service import Ledger
from ledger.settings import Settings
from tests.events import check_result

ORIGIN = "shedding.bank.example/ledger"


def test_appends_beyond_the_queue_limit_get_503_and_are_not_stored(tmp_path: Path) -> None:
    ledger = Ledger.create(Settings(data_dir=tmp_path), ORIGIN)
    appender = AsyncAppender(ledger, max_queued=3)
    events = [check_result() for _ in range(10)]

    async def burst(events: list[dict[str, object]]) -> list[object]:
        # all ten arrive before the writer runs: three queue, seven are refused
        tasks = [asyncio.ensure_future(appender.append([event], "svc")) for event in events]
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(burst(events))
    refused = [outcome for outcome in outcomes if isinstance(outcome, ApiProblem)]
    stored = [outcome for outcome in outcomes if isinstance(outcome, list)]
    assert len(stored) == 3 and len(refused) == 7, outcomes
    assert all(problem.status == 503 and problem.headers == {"Retry-After": "1"} for problem in refused)
    assert all(problem.kind == "busy" for problem in refused)
    assert ledger.head().size == 3
    assert {entry.event_id for entry in ledger.entries()} == {e["id"] for e in events[:3]}

    # once the queue has drained, appends are taken again
    again = [check_result() for _ in range(3)]
    assert all(isinstance(outcome, list) for outcome in asyncio.run(burst(again)))
    assert ledger.head().size == 6
    assert ledger.audit().ok
    ledger.recorder.engine.dispose()


def test_requests_beyond_the_in_flight_limit_get_503_at_once() -> None:
    """With max_in_flight requests being served, the next one is answered 503 Server busy before it reaches the
    application; health checks are never refused; once one finishes, requests are taken again."""
    from api.middleware import RequestLimitsMiddleware

    release = asyncio.Event()
    reached: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        reached.append(str(scope["path"]))
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    middleware = RequestLimitsMiddleware(app, 1024, 1e9, 10**9, max_in_flight=2)

    async def call(path: str) -> int:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "path": path, "method": "GET", "headers": [], "client": ("127.0.0.1", 1)}
        await middleware(scope, receive, send)  # type: ignore[arg-type]
        return int(sent[0]["status"])  # type: ignore[call-overload]

    async def scenario() -> tuple[list[int], int, int, list[int]]:
        slow = [asyncio.ensure_future(call("/slow")) for _ in range(2)]
        await asyncio.sleep(0.01)
        refused = await call("/v1/events")
        health = await call("/health")
        release.set()
        done = await asyncio.gather(*slow)
        return done, refused, health, [await call("/v1/events")]

    done, refused, health, after = asyncio.run(scenario())
    assert refused == 503 and reached.count("/v1/events") == 1  # the refused one never reached the app
    assert health == 200
    assert done == [200, 200] and after == [200]
