"""``ingest.single`` and ``ingest.single_concurrent``: one event per durable transaction.

- ``ingest.single``: ``Ledger.append`` called once per event, sequentially on one thread.
- ``raw.insert_commit``: one plain INSERT of a ledger-sized row and a commit per event (psycopg 3).
- ``eventsourcing.single``: eventsourcing's ``insert_events`` with one stored event per call.
- ``ingest.single_concurrent``: the same total through ``Ledger.append`` from several threads sharing one
  ``Ledger``.  Appends serialise on the log-head row lock, but their commits (WAL flushes) may be grouped.
  Compared with ``raw.insert_commit_concurrent`` (the same threads, one connection each) and with
  ``ingest.single``.

Every contender first makes a few untimed warm-up writes; the events are built before the clock starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks import peers
from benchmarks.common import EVENTS_PER_S, PRODUCER, Context, Target, conninfo, make_events, rate

NAME = "ingest.single"
CONCURRENT = "ingest.single_concurrent"
TARGET = Target(2_500, EVENTS_PER_S)


def run(ctx: Context) -> None:
    ledger_single(ctx)
    raw_insert_commit(ctx, threads=1)
    eventsourcing_single(ctx)
    ctx.results.compare(NAME, "raw.insert_commit", TARGET)
    ctx.results.compare(NAME, "eventsourcing.single", TARGET)


def run_concurrent(ctx: Context) -> None:
    ledger_concurrent(ctx)
    raw_insert_commit(ctx, threads=ctx.scale.threads)
    ctx.results.compare(CONCURRENT, "raw.insert_commit_concurrent")
    ctx.results.compare(CONCURRENT, NAME)


def ledger_single(ctx: Context) -> None:
    total, warmup = ctx.scale.single_events, ctx.scale.warmup_single
    with ctx.ledger("bench_ledger_single") as ledger:
        for event in make_events(total, warmup):
            ledger.append(event, producer=PRODUCER)
        events = make_events(0, total)
        began = time.perf_counter()
        for event in events:
            ledger.append(event, producer=PRODUCER)
        seconds = time.perf_counter() - began
    ctx.results.add(NAME, rate(total, seconds), EVENTS_PER_S, f"{total:,} appends in {seconds:.1f} s")


def ledger_concurrent(ctx: Context) -> None:
    total, threads = ctx.scale.single_events, ctx.scale.threads
    with ctx.ledger("bench_ledger_concurrent") as ledger:
        for event in make_events(total, ctx.scale.warmup_single):
            ledger.append(event, producer=PRODUCER)
        shares = _split(make_events(0, total), threads)

        def work(share: Sequence[dict[str, Any]]) -> None:
            for event in share:
                ledger.append(event, producer=PRODUCER)

        seconds = _run_threads(work, shares)
        size = ledger.head().size
    expected = total + ctx.scale.warmup_single
    if size != expected:
        ctx.results.notes.append(f"WARNING: {CONCURRENT} left {size} entries, expected {expected}")
    ctx.results.add(
        CONCURRENT, rate(total, seconds), EVENTS_PER_S, f"{threads} threads, {total:,} appends in {seconds:.1f} s"
    )


def raw_insert_commit(ctx: Context, threads: int) -> None:
    total, warmup = ctx.scale.single_events, ctx.scale.warmup_single
    key = Ed25519PrivateKey.generate()
    maker = peers.RawRowMaker()
    warm = [r.with_signature(key.sign(r.body)) for r in maker.rows(make_events(total, warmup))]
    rows = [r.with_signature(key.sign(r.body)) for r in maker.rows(make_events(0, total))]
    name = "raw.insert_commit" if threads == 1 else "raw.insert_commit_concurrent"
    with ctx.database("bench_raw_insert") as database, peers.raw_connection(database) as conn:
        for row in warm:
            peers.insert_row(conn, row)
        if threads == 1:
            began = time.perf_counter()
            for row in rows:
                peers.insert_row(conn, row)
            seconds = time.perf_counter() - began
        else:
            connections = [psycopg.connect(conninfo(database.superuser_url)) for _ in range(threads)]
            try:
                pairs = list(zip(connections, _split(rows, threads), strict=True))

                def work(pair: tuple[Any, Sequence[tuple[Any, ...]]]) -> None:
                    connection, share = pair
                    for row in share:
                        peers.insert_row(connection, row)

                seconds = _run_threads(work, pairs)
            finally:
                for connection in connections:
                    connection.close()
    detail = "INSERT + commit per row" + ("" if threads == 1 else f", {threads} threads")
    ctx.results.add(name, rate(total, seconds), EVENTS_PER_S, detail)


def eventsourcing_single(ctx: Context) -> None:
    version = peers.eventsourcing_version()
    if version is None:
        return  # the batch benchmark already notes the missing package
    total, warmup = ctx.scale.single_events, ctx.scale.warmup_single
    maker = peers.StoredEventMaker()
    with ctx.database("bench_es_single") as database, peers.eventsourcing_recorder(database) as recorder:
        for event in make_events(total, warmup):
            recorder.insert_events(maker.stored([event]))
        events = make_events(0, total)
        began = time.perf_counter()
        for event in events:
            recorder.insert_events(maker.stored([event]))
        seconds = time.perf_counter() - began
    ctx.results.add(
        "eventsourcing.single", rate(total, seconds), EVENTS_PER_S, f"eventsourcing {version}, one event per call"
    )


def _split(items: Sequence[Any], parts: int) -> list[Sequence[Any]]:
    return [items[i::parts] for i in range(parts)]


def _run_threads(work: Callable[[Any], None], shares: Sequence[Any]) -> float:
    """Run ``work(share)`` on one thread per share, started together; wall-clock seconds until all finish."""
    barrier = threading.Barrier(len(shares) + 1)

    def task(share: Any) -> None:
        barrier.wait()
        work(share)

    with ThreadPoolExecutor(len(shares), thread_name_prefix="bench") as pool:
        futures = [pool.submit(task, share) for share in shares]
        barrier.wait()
        began = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - began
