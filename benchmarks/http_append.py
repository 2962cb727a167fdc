"""``http.append``: single-event ``POST /v1/events`` against the real server, 16 connections at once.

- ``http.append``: ``ledger serve --host 127.0.0.1 --port PORT`` in a subprocess, over a fresh PostgreSQL
  database (``LEDGER_DATABASE_URL``) and a temporary ``LEDGER_DATA_DIR``.  The log and a publisher key are
  created here first; the per-key rate limit is raised out of the way.  The server runs as deployed:
  one uvicorn worker, its default log level (``info``, so one JSON access-log line per request, written
  to a file here), every middleware, authentication, validation and a durable commit per request (or per
  group of requests: concurrent appends share commits).
- ``http.append_2_workers``: the same server with ``--workers 2`` (two processes answering requests, each with
  its own commit queue, over the same log; their appends are serialised by the log head's row lock).
- ``http.bare_fastapi``: the floor for the same requests: a bare FastAPI app (``benchmarks.bare_app``)
  that reads the JSON body and answers 201, served by uvicorn with the same options, in a subprocess.

The load comes from ``benchmarks.http_load``: 16 keep-alive HTTP/1.1 connections, each sending its next
request as soon as the answer is in, every request with a new event id.  The client runs in this
process, on the same 2 CPUs as the server and PostgreSQL, so it is kept lean; its CPU share is reported.

The servers run side by side and take turns (as in ``benchmarks.rounds``): a warm-up each, then
``Scale.http_rounds`` turns each with the order rotating, ``Scale.http_seconds`` of measured load in all.
A figure's rate counts the answers completed inside its measured windows; its latencies are those
answers' send-to-answer times.  Afterwards the ledger's log is audited (``Ledger.audit()``) and its size
compared with the number of 2xx answers the client received.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchmarks.common import ORIGIN, Context, Target, conninfo, ledger_settings, new_ledger
from benchmarks.http_load import LoadClient, RequestMaker, Tally

NAME = "http.append"
WORKERS_NAME = "http.append_2_workers"
SERVE_WORKERS = 2
BARE = "http.bare_fastapi"
HOST = "127.0.0.1"
CONNECTIONS = 16
REQUESTS_PER_S = "req/s"
MILLISECONDS = "ms"
RPS_TARGET = Target(1_000, REQUESTS_PER_S)
P99_TARGET = Target(50, MILLISECONDS, higher_is_better=False)
RATIO_TARGET = 0.5
KEY_CREATED_AT = "2026-11-20T00:00:00.000000Z"
KEY_NAME = "bench"  # the producer of every appended event
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server under test: its process, port and log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    cpu_seconds: float = 0.0
    """CPU time of the server process (all threads) during the measured turns."""

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")

    def cpu_time(self) -> float:
        """utime + stime of the process and its living child processes (``ledger serve --workers N``), every
        thread included (``/proc/PID/stat``)."""
        return sum(_process_cpu_seconds(pid) for pid in _process_tree(self.process.pid))


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from ``/proc/PID/task/TID/children``."""
    found, index = [pid], 0
    while index < len(found):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{found[index]}/task").iterdir():
                found.extend(int(child) for child in (task / "children").read_text().split())
        index += 1
    return found


def _process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # exited since it was listed
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Contender:
    name: str
    server: Server
    client: LoadClient
    database_url: str | None = None
    """The server's database, whose PostgreSQL backends' CPU time is read when they run on this machine."""
    client_cpu_seconds: float = 0.0
    database_cpu_seconds: float | None = None
    turn_answers: int = 0
    """Answers received during the measured turns, those completed after a window closed included."""
    machine_busy: list[float] = field(default_factory=list)
    """Busy CPUs (0 to nproc) over each measured turn, from ``/proc/stat``."""


def run(ctx: Context) -> None:
    results, scale = ctx.results, ctx.scale
    with (
        ctx.database("bench_http_ledger") as database,
        tempfile.TemporaryDirectory(prefix="ledger-bench-http-") as tmp,
    ):
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        with new_ledger(database.superuser_url, data_dir) as ledger:
            from ledger.access import Role
            from ledger.store.api_keys import ApiKeyStore

            _, token = ApiKeyStore(ledger.recorder.engine).create(
                Role.PUBLISHER, [ORIGIN], ["controls"], KEY_NAME, KEY_CREATED_AT
            )
            size_before = ledger.head().size
        commits_before = _checkpoints(database.superuser_url)
        with contextlib.ExitStack() as stack:
            environment = _ledger_environment(database.superuser_url, data_dir)
            ledger_server = stack.enter_context(_server(NAME, _ledger_command(), environment, Path(tmp)))
            workers_server = stack.enter_context(
                _server(WORKERS_NAME, [*_ledger_command(), "--workers", str(SERVE_WORKERS)], environment, Path(tmp))
            )
            bare_server = stack.enter_context(
                _server(BARE, [sys.executable, "-m", "benchmarks.bare_app"], _clean_environment(), Path(tmp))
            )
            contenders = [
                Contender(NAME, ledger_server, _client(ledger_server, token), database.superuser_url),
                Contender(WORKERS_NAME, workers_server, _client(workers_server, token), database.superuser_url),
                Contender(BARE, bare_server, _client(bare_server, token)),
            ]
            gc.collect()
            gc.disable()  # no collector pauses in the client while it measures (it makes little garbage)
            try:
                asyncio.run(_race(contenders, scale.http_seconds, scale.http_warmup_seconds, scale.http_rounds))
            finally:
                gc.enable()
        # The servers have stopped: every append they acknowledged is committed.
        for contender in contenders:
            _report(ctx, contender)
        for contender in contenders[:2]:
            tally = contender.client.tally
            if tally.non_2xx or tally.connection_errors:
                results.notes.append(
                    f"WARNING: {contender.name} had {tally.non_2xx:,} non-2xx answers {_statuses(tally)} and "
                    f"{tally.connection_errors:,} lost connections; first such answer ends: {tally.first_error!r}; "
                    f"server log: {_error_lines(contender.server)}"
                )
        ok_answers = sum(contender.client.tally.ok for contender in contenders[:2])
        appended = _audit(ctx, data_dir, database.superuser_url, size_before, ok_answers)
        commits = _checkpoints(database.superuser_url) - commits_before
        results.add(
            f"{NAME}.events_per_commit",
            appended / commits if commits else 0.0,
            "events",
            f"{appended:,} entries in {commits:,} append transactions (a signed checkpoint each: interval 1); "
            "concurrent appends share transactions (both ledger servers together)",
        )

    for name in (NAME, WORKERS_NAME):
        results.compare(f"{name}.rps", f"{BARE}.rps", RPS_TARGET, ratio_target=RATIO_TARGET)
        results.compare(f"{name}.p50_ms", f"{BARE}.p50_ms")
        results.compare(f"{name}.p99_ms", f"{BARE}.p99_ms", P99_TARGET)


# --- servers -------------------------------------------------------------------------------------------


def _ledger_command() -> list[str]:
    script = Path(sys.executable).with_name("ledger")
    return [str(script) if script.exists() else "ledger", "serve", "--host", HOST]


def _clean_environment() -> dict[str, str]:
    """This process's environment without any ``LEDGER_*`` variable."""
    return {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}


def _ledger_environment(url: str, data_dir: Path) -> dict[str, str]:
    """The server's settings: those of ``ledger_settings`` (the log was created with them) plus the API's."""
    settings = ledger_settings(data_dir, url)
    env = _clean_environment()
    env.update(
        LEDGER_DATABASE_URL=url,
        LEDGER_DATA_DIR=str(data_dir),
        LEDGER_CHECKPOINT_INTERVAL=str(settings.checkpoint_interval),
        LEDGER_MAX_BATCH_EVENTS=str(settings.max_batch_events),
        LEDGER_API_RATE_LIMIT_PER_SECOND="1000000",
        LEDGER_API_RATE_LIMIT_BURST="1000000",
    )
    return env


@contextlib.contextmanager
def _server(name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> Iterator[Server]:
    """Start a server on a free port, wait until it accepts connections, stop it (SIGTERM) afterwards."""
    from tests.services import free_port

    port = free_port()
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = _start([*argv, "--port", str(port)], env, log_file)
    server = Server(name, process, port, log_path)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start(argv: list[str], env: dict[str, str], log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)


def _wait_until_listening(server: Server) -> None:
    import socket

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        server.check_alive()
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not listen within {START_TIMEOUT:.0f} s: {server.log_tail()}")
        time.sleep(0.1)


def _error_lines(server: Server, count: int = 3) -> str:
    """The last few lines of the server's log that are not access-log lines."""
    lines = [line for line in server.log_tail(200_000).splitlines() if '"ledger.api.access"' not in line]
    return " / ".join(lines[-count:])[:1500]


def _client(server: Server, token: str) -> LoadClient:
    return LoadClient(HOST, server.port, RequestMaker(HOST, server.port, token), CONNECTIONS)


# --- the race ------------------------------------------------------------------------------------------


async def _race(contenders: list[Contender], seconds: float, warmup: float, rounds: int) -> None:
    """Warm each server up, then give each ``rounds`` turns of ``seconds / rounds``, rotating the order."""
    try:
        for contender in contenders:
            await contender.client.run(warmup, record=False)
            contender.server.check_alive()
        turn = seconds / rounds
        for number in range(rounds):
            for i in range(len(contenders)):
                contender = contenders[(number + i) % len(contenders)]
                database_before = _backend_ticks(contender.database_url)
                answers_before = contender.client.tally.answered
                server_before, client_before, machine_before = (
                    contender.server.cpu_time(),
                    time.process_time(),
                    _machine_ticks(),
                )
                await contender.client.run(turn, record=True)
                contender.client_cpu_seconds += time.process_time() - client_before
                contender.server.cpu_seconds += contender.server.cpu_time() - server_before
                contender.machine_busy.append(_busy_cpus(machine_before, _machine_ticks()))
                contender.turn_answers += contender.client.tally.answered - answers_before
                database = _backends_cpu_seconds(database_before, _backend_ticks(contender.database_url))
                if database is not None:
                    contender.database_cpu_seconds = (contender.database_cpu_seconds or 0.0) + database
                contender.server.check_alive()
    finally:
        for contender in contenders:
            await contender.client.close()


def _backend_ticks(url: str | None) -> dict[int, int] | None:
    """CPU ticks of each PostgreSQL backend connected to the database at ``url`` (the server's pool), or
    None when there is none or they are not visible here (PostgreSQL in a container)."""
    if url is None:
        return None
    import psycopg

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    ticks = {}
    for (pid,) in rows:
        with contextlib.suppress(OSError):  # a backend may have just exited
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks or None


def _backends_cpu_seconds(before: dict[int, int] | None, after: dict[int, int] | None) -> float | None:
    """CPU seconds the backends used between two readings (new backends count in full; exited ones are lost)."""
    if before is None or after is None:
        return None
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / CLOCK_TICKS


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from the first line of ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def _busy_cpus(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return (busy / total) * (os.cpu_count() or 1) if total else 0.0


# --- figures -------------------------------------------------------------------------------------------


def _server_runtime(workers: int = 1) -> str:
    """What uvicorn's ``auto`` picks in this environment (every server runs in it)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    processes = "1 worker" if workers == 1 else f"{workers} worker processes"
    return f"uvicorn, {processes}, {loop} loop, {http}"


def _statuses(tally: Tally) -> str:
    return "{" + ", ".join(f"{status}: {count:,}" for status, count in sorted(tally.statuses.items())) + "}"


def _report(ctx: Context, contender: Contender) -> None:
    results, tally, name = ctx.results, contender.client.tally, contender.name
    seconds = tally.measured_seconds
    busy = sum(contender.machine_busy) / len(contender.machine_busy) if contender.machine_busy else 0.0
    runtime = _server_runtime(SERVE_WORKERS if name == WORKERS_NAME else 1)
    if name == NAME:
        results.facts["http_server_runtime"] = runtime
    results.add(
        f"{name}.rps",
        tally.rate(),
        REQUESTS_PER_S,
        f"{CONNECTIONS} connections, {len(tally.latencies):,} answers in {seconds:.1f} s; {runtime}",
    )
    results.add(f"{name}.p50_ms", tally.percentile_ms(50), MILLISECONDS, "send to complete answer, median")
    results.add(f"{name}.p99_ms", tally.percentile_ms(99), MILLISECONDS, "send to complete answer, 99th percentile")
    results.add(
        f"{name}.non_2xx",
        tally.non_2xx,
        "answers",
        f"of {tally.answered:,} (warm-up included) {_statuses(tally)}; lost connections {tally.connection_errors}",
    )
    others = []
    if contender.database_cpu_seconds is not None:
        others.append(f"its PostgreSQL backends {100 * contender.database_cpu_seconds / seconds:.0f}%")
    others.append(f"load client {100 * contender.client_cpu_seconds / seconds:.0f}%")
    others.append(f"whole machine {100 * busy:.0f}% of {100 * (os.cpu_count() or 1)}%")
    results.add(
        f"{name}.cpu_pct",
        100 * contender.server.cpu_seconds / seconds if seconds else 0.0,
        "% of 1 CPU",
        "server process (with its worker processes) during its turns; " + ", ".join(others),
    )
    results.add(
        f"{name}.cpu_ms_per_request",
        1000 * contender.server.cpu_seconds / contender.turn_answers if contender.turn_answers else 0.0,
        MILLISECONDS,
        f"server CPU time per answer over the measured turns ({contender.turn_answers:,} answers)",
    )


def _checkpoints(url: str) -> int:
    """Checkpoints stored in the database: with a checkpoint interval of 1, one per append transaction."""
    import psycopg

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
    return int(row[0]) if row else 0


def _own_entries(url: str, from_seq: int) -> int:
    """Entries from ``from_seq`` on that the ledger recorded itself (any producer but the benchmark's key)."""
    import psycopg

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM entries WHERE seq >= %s AND producer <> %s", (from_seq, KEY_NAME)
        ).fetchone()
    return int(row[0]) if row else 0


def _audit(ctx: Context, data_dir: Path, url: str, size_before: int, ok_answers: int) -> int:
    """Audit the log the servers wrote; its growth must equal their 2xx answers (all 201: ids are new).
    Returns the number of entries appended."""
    from ledger.service import Ledger

    results = ctx.results
    ledger = Ledger.open(ledger_settings(data_dir, url), ORIGIN)
    try:
        began = time.perf_counter()
        report = ledger.audit()
        spent = time.perf_counter() - began
        size = ledger.head().size
    finally:
        ledger.recorder.engine.dispose()
    appended = size - size_before
    # the sealer runs inside the servers and records each sealed segment in the log as the ledger's own entry
    own = _own_entries(url, size_before)
    matches = appended - own == ok_answers
    results.facts["http_audit_ok"] = report.ok
    results.facts["http_log_matches_2xx"] = matches
    results.add(
        f"{NAME}.log_entries",
        appended,
        "entries",
        f"Ledger.audit() ok={report.ok} in {spent:.1f} s; less the ledger's own {own} (sealed segments), equals "
        f"the {ok_answers:,} 2xx answers of both ledger servers: {matches}",
    )
    if not report.ok:
        results.notes.append(f"WARNING: the audit after {NAME} reported findings: {report!r}"[:2000])
    if not matches:
        results.notes.append(
            f"WARNING: {NAME}: the log grew by {appended:,} entries ({own} of them the ledger's own) but the "
            f"clients got {ok_answers:,} 2xx answers"
        )
    return appended
