"""``ingest.batch``: events/s through ``Ledger.append_batch`` in batches of 1,000, against two baselines.

- ``ingest.batch``: validate, canonicalise, chain, sign, extend the Merkle tree, store the nodes and sign
  a checkpoint, all in one durable transaction per batch.
- ``raw.copy_plus_sign``: the same number of ledger-sized rows written with one binary ``COPY`` and one
  commit per batch into a plain table, plus the time to Ed25519-sign the same bodies on one thread.
- ``eventsourcing.batch``: the eventsourcing library's PostgreSQL application recorder, one
  ``insert_events`` call (one transaction) per batch.
- ``ingest.batch.peak_rss_mb``: the process's RSS high-water mark right after the ledger run (the ledger
  runs first, so baselines do not count), beside the high-water mark before it.

Each contender gets one untimed warm-up batch; event dicts are built outside the timed sections, batch by
batch, so that the workload itself does not inflate the memory figure.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks import peers
from benchmarks.common import (
    BATCH_SIZE,
    EVENTS_PER_S,
    MEGABYTES,
    PRODUCER,
    Context,
    Stopwatch,
    Target,
    batches,
    make_events,
    peak_rss_mb,
    rate,
)

NAME = "ingest.batch"
TARGET = Target(15_000, EVENTS_PER_S)


def run(ctx: Context) -> None:
    ledger_batch(ctx)
    raw_copy_plus_sign(ctx)
    eventsourcing_batch(ctx)
    ctx.results.compare(NAME, "raw.copy_plus_sign", TARGET)
    ctx.results.compare(NAME, "eventsourcing.batch", TARGET)
    ctx.results.compare(f"{NAME}.peak_rss_mb", "process.peak_rss_before_mb")


def ledger_batch(ctx: Context) -> None:
    total = ctx.scale.batch_events
    results = ctx.results
    results.add("process.peak_rss_before_mb", peak_rss_mb(), MEGABYTES, "RSS high-water before the ledger run")
    with ctx.ledger("bench_ledger_batch") as ledger:
        ledger.append_batch(make_events(total, BATCH_SIZE), producer=PRODUCER)  # warm-up, not timed
        stopwatch = Stopwatch()
        for start, count in batches(total):
            events = make_events(start, count)
            with stopwatch:
                ledger.append_batch(events, producer=PRODUCER)
        rss = peak_rss_mb()
        results.add(NAME, rate(total, stopwatch.seconds), EVENTS_PER_S, f"{total:,} events in {stopwatch.seconds:.1f} s")
        results.add(f"{NAME}.peak_rss_mb", rss, MEGABYTES, "RSS high-water after the ledger run")
        head = ledger.head()
        first = ledger.entry(0)
        payload = ledger.payload(0)
        results.facts["ledger_body_bytes"] = len(first.body)
        results.facts["ledger_payload_bytes"] = len(payload.payload or b"") if payload else None
        began = time.perf_counter()
        report = ledger.audit()
        audit_seconds = time.perf_counter() - began
        results.add(
            "audit", rate(head.size, audit_seconds), EVENTS_PER_S, f"Ledger.audit() of {head.size:,} entries, ok={report.ok}"
        )
        results.facts["ledger_audit_ok"] = report.ok
        if not report.ok:
            results.notes.append(f"WARNING: the audit after {NAME} reported findings: {report!r}"[:2000])


def raw_copy_plus_sign(ctx: Context) -> None:
    total = ctx.scale.batch_events
    key = Ed25519PrivateKey.generate()
    maker = peers.RawRowMaker()
    sign_time, copy_time = Stopwatch(), Stopwatch()
    with ctx.database("bench_raw_copy") as database, peers.raw_connection(database) as conn:
        warmup = maker.rows(make_events(total, BATCH_SIZE))
        peers.copy_rows(conn, [row.with_signature(key.sign(row.body)) for row in warmup])
        for start, count in batches(total):
            rows = maker.rows(make_events(start, count))
            with sign_time:
                signatures = [key.sign(row.body) for row in rows]
            signed = [row.with_signature(sig) for row, sig in zip(rows, signatures, strict=True)]
            with copy_time:
                peers.copy_rows(conn, signed)
    results = ctx.results
    results.facts["raw_body_bytes"] = len(warmup[0].body)
    results.facts["raw_payload_bytes"] = len(warmup[0].payload)
    seconds = sign_time.seconds + copy_time.seconds
    results.add(
        "raw.copy_plus_sign",
        rate(total, seconds),
        EVENTS_PER_S,
        f"COPY {copy_time.seconds:.2f} s + sign {sign_time.seconds:.2f} s",
    )
    results.add("raw.copy", rate(total, copy_time.seconds), EVENTS_PER_S, "binary COPY + commit per batch")
    results.add("raw.sign", rate(total, sign_time.seconds), EVENTS_PER_S, "Ed25519 signing, one thread")


def eventsourcing_batch(ctx: Context) -> None:
    version = peers.eventsourcing_version()
    if version is None:
        ctx.results.notes.append("eventsourcing is not installed (pip install -e '.[bench]'): peer skipped")
        return
    total = ctx.scale.batch_events
    maker = peers.StoredEventMaker()
    stopwatch = Stopwatch()
    with ctx.database("bench_es_batch") as database, peers.eventsourcing_recorder(database) as recorder:
        recorder.insert_events(maker.stored(make_events(total, BATCH_SIZE)))  # warm-up
        for start, count in batches(total):
            events = make_events(start, count)
            with stopwatch:
                recorder.insert_events(maker.stored(events))
    ctx.results.add(
        "eventsourcing.batch",
        rate(total, stopwatch.seconds),
        EVENTS_PER_S,
        f"eventsourcing {version}, insert_events per {BATCH_SIZE:,}",
    )
