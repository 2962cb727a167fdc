"""``ingest.single`` and ``ingest.single_concurrent``: one event per durable transaction.

- ``ingest.single``: ``Ledger.append`` called once per event, sequentially on one thread.
- ``raw.insert_commit``: one plain INSERT of a ledger-sized row and a commit per event (psycopg 3).
- ``eventsourcing.single``: eventsourcing's ``insert_events`` with one stored event per call.
- ``ingest.single_concurrent``: the same total through ``Ledger.append`` from several threads sharing one
  ``Ledger``.  Appends serialise on the log-head row lock, but their commits (WAL flushes) may be grouped.
  Compared with ``raw.insert_commit_concurrent`` (the same threads, one connection each) and with
  ``ingest.single``.

The contenders of each benchmark run side by side and take turns (``benchmarks.rounds``), after a few
untimed warm-up writes; events and rows are built outside the timed calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks import peers
from benchmarks.common import EVENTS_PER_S, PRODUCER, Context, Target, conninfo, make_events, rate
from benchmarks.rounds import Contender, race

NAME = "ingest.single"
CONCURRENT = "ingest.single_concurrent"
TARGET = Target(2_500, EVENTS_PER_S)


def run(ctx: Context) -> None:
    with contextlib.ExitStack() as stack:
        contenders = [
            ledger_contender(ctx, stack, NAME, "bench_ledger_single", threads=1),
            raw_contender(ctx, stack, "raw.insert_commit", threads=1),
        ]
        if peers.eventsourcing_version() is not None:  # else the batch benchmark notes the missing package
            contenders.append(eventsourcing_contender(ctx, stack))
        _race(ctx, contenders, threads=1)
    ctx.results.compare(NAME, "raw.insert_commit", TARGET)
    ctx.results.compare(NAME, "eventsourcing.single", TARGET)


def run_concurrent(ctx: Context) -> None:
    threads = ctx.scale.threads
    with contextlib.ExitStack() as stack:
        contenders = [
            ledger_contender(ctx, stack, CONCURRENT, "bench_ledger_concurrent", threads=threads),
            raw_contender(ctx, stack, "raw.insert_commit_concurrent", threads=threads),
        ]
        _race(ctx, contenders, threads=threads)
    ctx.results.compare(CONCURRENT, "raw.insert_commit_concurrent")
    ctx.results.compare(CONCURRENT, NAME)


def _race(ctx: Context, contenders: list[Contender], threads: int) -> None:
    total = ctx.scale.single_events
    seconds = race(contenders, total, warmup=ctx.scale.warmup_single, threads=threads)
    for contender in contenders:
        spent = seconds[contender.name]
        ctx.results.add(
            contender.name, rate(total, spent), EVENTS_PER_S, f"{contender.detail}: {total:,} in {spent:.1f} s"
        )


def _events(start: int, count: int) -> Iterator[dict[str, Any]]:
    return iter(make_events(start, count))


def ledger_contender(ctx: Context, stack: contextlib.ExitStack, name: str, database: str, threads: int) -> Contender:
    """``Ledger.append`` per event; threads share the one ``Ledger`` (and its connection pool)."""
    ledger = stack.enter_context(ctx.ledger(database))
    detail = "Ledger.append" + (f", {threads} threads" if threads > 1 else "")

    def write(_worker: int, event: dict[str, Any]) -> None:
        ledger.append(event, producer=PRODUCER)

    return Contender(name, detail, _events, write)


def raw_contender(ctx: Context, stack: contextlib.ExitStack, name: str, threads: int) -> Contender:
    """One INSERT + commit per ledger-sized row (signed beforehand); one connection per thread."""
    database = stack.enter_context(ctx.database("bench_raw_insert"))
    first = stack.enter_context(peers.raw_connection(database))
    connections = [first] + [
        stack.enter_context(psycopg.connect(conninfo(database.superuser_url))) for _ in range(threads - 1)
    ]
    key = Ed25519PrivateKey.generate()
    maker = peers.RawRowMaker()

    def prepare(start: int, count: int) -> list[tuple[Any, ...]]:
        return [row.with_signature(key.sign(row.body)) for row in maker.rows(make_events(start, count))]

    def write(worker: int, row: tuple[Any, ...]) -> None:
        peers.insert_row(connections[worker], row)

    detail = "INSERT + commit per row" + (f", {threads} threads" if threads > 1 else "")
    return Contender(name, detail, prepare, write)


def eventsourcing_contender(ctx: Context, stack: contextlib.ExitStack) -> Contender:
    """eventsourcing's ``insert_events`` with one stored event per call (built inside the timed call)."""
    database = stack.enter_context(ctx.database("bench_es_single"))
    recorder = stack.enter_context(peers.eventsourcing_recorder(database))
    maker = peers.StoredEventMaker()

    def write(_worker: int, event: dict[str, Any]) -> None:
        recorder.insert_events(maker.stored([event]))

    return Contender("eventsourcing.single", f"eventsourcing {peers.eventsourcing_version()}", _events, write)
