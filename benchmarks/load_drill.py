"""``http.load_drill``: ``POST /v1/events`` offered at a fixed rate (open loop), 1x then 2x, against ``ledger serve``.

Unlike ``http.append`` (a closed loop: each connection sends its next request when the previous one is answered,
so a slow server is simply sent less), requests here are due at fixed times, ``rate`` per second, whether or not
the server keeps up. Each due request takes an idle keep-alive connection of a pool (``POOL`` of them, opened
before the clock starts); when none is idle it waits for one, and its latency counts from the moment it was
due, so a server that falls behind shows it in its percentiles instead of hiding it. A request not answered
``TIMEOUT`` seconds after it was due counts as timed out.

- ``http.load_drill.1x``: ``Scale.load_rate`` requests/s for ``Scale.load_seconds``: every answer must be 2xx;
  the figures are the rate achieved, p95 and p99 latency and the error count;
- ``http.load_drill.2x``: twice that rate: the server is past its knee; it must shed what it cannot take with
  429/503 answers (its appends queue holds ``api_max_queued_appends``) rather than let requests time out.

The 2x turn lasts half as long as the 1x one. ``http.load_drill_2_workers`` repeats the 1x rate against
``ledger serve --workers 2`` (two processes, the way to use two cores on PostgreSQL). Each server runs as
deployed, over a fresh PostgreSQL database, with the per-key rate limit raised out of the way (one key sends
everything here); the log is audited afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import ORIGIN, Context, Target, ledger_settings, new_ledger, percentile_ms
from benchmarks.http_append import (
    HOST,
    KEY_CREATED_AT,
    SERVE_WORKERS,
    _ledger_command,
    _ledger_environment,
    _server,
)
from benchmarks.http_load import _CONTENT_LENGTH, RequestMaker

NAME = "http.load_drill"
WORKERS_NAME = "http.load_drill_2_workers"
POOL = 1500  # more than the server queues (api_max_queued_appends), so that it, not the pool, must shed
TIMEOUT = 10.0
P95_TARGET = Target(200, "ms", higher_is_better=False)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds from due time to answer, every answer
    statuses: dict[int, int] = field(default_factory=dict)
    timeouts: int = 0
    lost: int = 0  # connections closed with a request in flight

    def percentile_ms(self, q: float) -> float:
        return percentile_ms(self.latencies, q)


class _Connection(asyncio.Protocol):
    def __init__(self, pool: OpenLoop) -> None:
        self.pool = pool
        self.buffer = bytearray()
        self.need = -1
        self.status = 0
        self.due = 0.0
        self.transport: Any = None
        self.busy = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self, due: float, request: bytes) -> None:
        self.busy, self.due = True, due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            at = head.find(_CONTENT_LENGTH)
            stop = head.find(b"\r\n", at + 2)
            self.need = end + 4 + int(head[at + len(_CONTENT_LENGTH) : stop if stop >= 0 else None])
            self.status = int(head[9:12])
        if len(self.buffer) < self.need:
            return
        self.buffer.clear()
        self.need = -1
        self.busy = False
        self.pool.answered(self, self.status, time.perf_counter() - self.due)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.closed(self)


class OpenLoop:
    """Requests due at a fixed rate, sent on a pool of keep-alive connections."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.maker = RequestMaker(HOST, port, token)
        self.idle: deque[_Connection] = deque()
        self.waiting: deque[float] = deque()  # due times of requests waiting for a connection
        self.busy: set[_Connection] = set()
        self.tally = Tally()
        self.recording = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(POOL - len(self.idle) - len(self.busy)):
            _, connection = await loop.create_connection(lambda: _Connection(self), HOST, self.port)
            self.idle.append(connection)

    def answered(self, connection: _Connection, status: int, latency: float) -> None:
        self.busy.discard(connection)
        if self.recording:
            if latency > TIMEOUT:
                self.tally.timeouts += 1
            else:
                self.tally.statuses[status] = self.tally.statuses.get(status, 0) + 1
                self.tally.latencies.append(latency)
        self.idle.append(connection)
        self._dispatch()

    def closed(self, connection: _Connection) -> None:
        if connection in self.busy:
            self.busy.discard(connection)
            self.tally.lost += self.recording
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)

    def _dispatch(self) -> None:
        now = time.perf_counter()
        while self.waiting and now - self.waiting[0] > TIMEOUT:  # given up on before it was even sent
            self.waiting.popleft()
            self.tally.timeouts += self.recording
        while self.waiting and self.idle:
            connection = self.idle.popleft()
            self.busy.add(connection)
            connection.send(self.waiting.popleft(), self.maker.next())

    async def run(self, rate: float, seconds: float, *, record: bool) -> float:
        """Offer ``rate`` requests/s for ``seconds``; wait for the stragglers; the seconds the offering took."""
        await self.open()
        self.recording = record
        started = time.perf_counter()
        offered = 0
        while (now := time.perf_counter()) < started + seconds:
            due_count = int((now - started) * rate)
            while offered < due_count:
                self.waiting.append(started + offered / rate)
                offered += 1
            self._dispatch()
            await asyncio.sleep(0.001)
        deadline = time.perf_counter() + TIMEOUT + 5
        while (self.waiting or self.busy) and time.perf_counter() < deadline:
            self._dispatch()
            await asyncio.sleep(0.01)
        self.tally.timeouts += len(self.waiting) + len(self.busy) if record else 0
        self.recording = False
        return time.perf_counter() - started

    def close(self) -> None:
        for connection in [*self.idle, *self.busy]:
            connection.transport.close()


def run(ctx: Context) -> None:
    """The drill against one server process, then against ``--workers 2`` (each over a fresh database)."""
    zero_errors = Target(0, "requests", higher_is_better=False)
    _drill(ctx, NAME, [], (("1x", 1), ("2x", 2)))
    _drill(ctx, WORKERS_NAME, ["--workers", str(SERVE_WORKERS)], (("1x", 1),))
    for name in (NAME, WORKERS_NAME):
        ctx.results.compare(f"{name}.1x.p95_ms", None, P95_TARGET)
        ctx.results.compare(f"{name}.1x.errors", None, zero_errors)
    ctx.results.compare(f"{NAME}.2x.errors", None, zero_errors)


def _drill(ctx: Context, name: str, extra_args: list[str], rates: tuple[tuple[str, int], ...]) -> None:
    from ledger.access import Role
    from ledger.service import Ledger
    from ledger.store.api_keys import ApiKeyStore

    results, scale = ctx.results, ctx.scale
    with ctx.database("bench_load_drill") as database, tempfile.TemporaryDirectory(prefix="ledger-bench-load-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        with new_ledger(database.superuser_url, data_dir) as ledger:
            _, token = ApiKeyStore(ledger.recorder.engine).create(
                Role.PUBLISHER, [ORIGIN], ["controls"], "bench", KEY_CREATED_AT
            )
        env = _ledger_environment(database.superuser_url, data_dir)
        with _server(name, [*_ledger_command(), *extra_args], env, Path(tmp)) as server:
            for label, factor in rates:
                rate = scale.load_rate * factor
                seconds = scale.load_seconds / factor  # the 2x turn is half as long: it only has to show shedding
                tally, elapsed = asyncio.run(_turn(server.port, token, rate, seconds))
                ok = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
                shed = sum(n for status, n in tally.statuses.items() if status in (429, 503))
                other = sum(tally.statuses.values()) - ok - shed
                figure = f"{name}.{label}"
                results.add(
                    f"{figure}.ok_rps",
                    ok / elapsed,
                    "req/s",
                    f"2xx answers per second with {rate:,.0f} requests/s offered for {seconds:.0f} s "
                    f"(over the {elapsed:.1f} s until the last answer)",
                )
                results.add(f"{figure}.p95_ms", tally.percentile_ms(95), "ms", "from due time to answer, all answers")
                results.add(f"{figure}.p99_ms", tally.percentile_ms(99), "ms", "from due time to answer, all answers")
                results.add(f"{figure}.shed", float(shed), "requests", "answered 429 or 503 (shed at once)")
                results.add(
                    f"{figure}.errors",
                    float(other + tally.timeouts + tally.lost),
                    "requests",
                    f"other statuses {other}, timed out (> {TIMEOUT:.0f} s) {tally.timeouts}, lost {tally.lost}; "
                    f"answers by status {dict(sorted(tally.statuses.items()))}",
                )
        opened = Ledger.open(ledger_settings(data_dir, database.superuser_url), ORIGIN, run_migrations=False)
        try:
            report = opened.audit()
            if not report.ok:
                raise RuntimeError(f"the log does not audit clean after the load drill: {report.findings[:3]}")
        finally:
            opened.recorder.engine.dispose()


async def _turn(port: int, token: str, rate: float, seconds: float) -> tuple[Tally, float]:
    loop = OpenLoop(port, token)
    try:
        await loop.run(rate, min(3.0, seconds), record=False)  # warm-up
        loop.tally = Tally()
        elapsed = await loop.run(rate, seconds, record=True)
        return loop.tally, elapsed
    finally:
        loop.close()
