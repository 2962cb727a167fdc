"""A lean HTTP/1.1 load generator for ``http.append``: asyncio protocols on raw sockets, keep-alive.

The client shares the machine with the server under test and PostgreSQL, so it does as little as it can:

- one ``asyncio.Protocol`` per connection (no streams, no coroutine per request, no HTTP library);
- each connection has one request in flight and sends the next as soon as the answer is complete
  (a closed loop: concurrency = connections);
- requests are pre-built: one byte template per stream, split around the event id, so a request costs
  one ``bytes.join`` of the two halves and a counter-based UUID;
- an answer is parsed only as far as its status code and ``Content-Length``.

Every request carries a unique event id (a random UUID prefix per ``RequestMaker`` plus a 48-bit counter).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from benchmarks.common import STREAMS, make_event, percentile_ms

PATH = "/v1/events"
_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CLOSE = b"\r\nconnection: close"
DRAIN_TIMEOUT = 60.0  # seconds for the requests in flight at the end of a turn to be answered


class RequestMaker:
    """``POST /v1/events`` requests with the workload's events (``make_event``), each with a fresh id."""

    def __init__(self, host: str, port: int, token: str) -> None:
        prefix = str(uuid.uuid4())[:23]  # xxxxxxxx-xxxx-4xxx-yxxx: a random version-4 prefix
        self._prefix = (prefix + "-").encode()
        self._count = 0
        self._templates: list[tuple[bytes, bytes]] = []
        for n in range(STREAMS):
            event = make_event(n)
            event["id"] = _PLACEHOLDER
            body = orjson.dumps(event)
            head = (
                f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            before, after = (head + body).split(_PLACEHOLDER.encode())
            self._templates.append((before + self._prefix, after))
        self.body_bytes = len(body)

    @property
    def made(self) -> int:
        return self._count

    def next(self) -> bytes:
        n = self._count
        self._count = n + 1
        before, after = self._templates[n % STREAMS]
        return b"%b%012x%b" % (before, n, after)


@dataclass
class Tally:
    """What one client saw: latencies of the answers inside measured windows, every status, lost connections."""

    latencies: list[float] = field(default_factory=list)
    """Seconds from send to complete answer, for answers completed inside a measured window."""
    measured_seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    """Every answer by status, warm-up and drain included."""
    connection_errors: int = 0
    """Connections lost with a request in flight (that request got no answer)."""
    first_error: str | None = None
    """The end of the first non-2xx answer (its body says what went wrong)."""

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        return self.answered - self.ok

    def rate(self) -> float:
        return len(self.latencies) / self.measured_seconds if self.measured_seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the measured latencies, in milliseconds."""
        return percentile_ms(self.latencies, q)


class _Connection(asyncio.Protocol):
    __slots__ = ("_buffer", "_client", "_need", "_sent_at", "_status", "busy", "closing", "retired", "transport")

    def __init__(self, client: LoadClient) -> None:
        self._client = client
        self._buffer = bytearray()
        self._need = -1  # bytes of the current answer (head + body) once its head is parsed
        self._status = 0
        self._sent_at = 0.0
        self.busy = False
        self.closing = False  # the server said "Connection: close"
        self.retired = False  # closed by the client between turns
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self) -> None:
        client = self._client
        self.busy = True
        client.busy += 1
        self._sent_at = time.perf_counter()
        self.transport.write(client.maker.next())

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._need < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            at = head.find(_CONTENT_LENGTH)
            if at < 0:
                raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
            stop = head.find(b"\r\n", at + 2)
            self._need = end + 4 + int(head[at + len(_CONTENT_LENGTH) : stop if stop >= 0 else None])
            self._status = int(head[9:12])
            self.closing = _CLOSE in head
        if len(buffer) < self._need:
            return
        now = time.perf_counter()
        if len(buffer) != self._need:
            raise RuntimeError("the server sent more than one answer to one request")
        client = self._client
        tally = client.tally
        status = self._status
        if not 200 <= status < 300 and tally.first_error is None:
            tally.first_error = bytes(buffer).decode("utf-8", "replace")[-600:]
        buffer.clear()
        self._need = -1
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if client.recording and now <= client.window_end:
            tally.latencies.append(now - self._sent_at)
        self.busy = False
        client.busy -= 1
        if not client.stopping and not self.closing:
            self.send()
        elif client.stopping and client.busy == 0:
            client.drained()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.retired:
            return
        client = self._client
        if self.busy:
            self.busy = False
            client.busy -= 1
            client.tally.connection_errors += 1
        client.lost(self)


class LoadClient:
    """``connections`` keep-alive connections to one server, driven in turns by ``run``."""

    def __init__(self, host: str, port: int, maker: RequestMaker, connections: int) -> None:
        self.host, self.port, self.maker = host, port, maker
        self.connections = connections
        self.tally = Tally()
        self.busy = 0
        self.recording = False
        self.stopping = True
        self.window_end = 0.0
        self._open: list[_Connection] = []
        self._drained: asyncio.Future[None] | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        for _ in range(self.connections - len(self._open)):
            await self._connect()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        self._open.append(protocol)
        return protocol

    async def run(self, seconds: float, *, record: bool) -> None:
        """Keep every connection busy for ``seconds``; then wait for the answers still due.

        Each turn starts on new connections: the server may close keep-alive connections that sat idle
        during the other servers' turns (uvicorn does after 5 s), and that must not cost a request."""
        self._retire_all()
        await self.connect()
        loop = asyncio.get_running_loop()
        self._drained = loop.create_future()
        self.recording, self.stopping = record, False
        started = time.perf_counter()
        self.window_end = started + seconds
        for connection in list(self._open):
            connection.send()
        await asyncio.sleep(seconds)
        self.stopping = True
        if record:
            self.tally.measured_seconds += seconds  # answers are counted up to window_end = started + seconds
        if self.busy:
            await asyncio.wait_for(self._drained, DRAIN_TIMEOUT)
        self.recording = False

    def drained(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def lost(self, connection: _Connection) -> None:
        """A connection closed: replace it (and keep it busy when a turn is on)."""
        if connection in self._open:
            self._open.remove(connection)
        if self.stopping:
            if self.busy == 0:
                self.drained()
            return
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._replace())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self) -> None:
        connection = await self._connect()
        if not self.stopping:
            connection.send()

    def _retire_all(self) -> None:
        for connection in self._open:
            connection.retired = True
            connection.transport.close()
        self._open.clear()

    async def close(self) -> None:
        self._closed = True
        self._retire_all()
        await asyncio.sleep(0)
