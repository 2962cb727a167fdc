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
