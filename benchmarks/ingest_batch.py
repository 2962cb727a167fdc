"""``ingest.batch``: events/s through ``Ledger.append_batch`` in batches of 1,000, against two baselines.

- ``ingest.batch``: validate, canonicalise, chain, sign, extend the Merkle tree, store the nodes and sign
  a checkpoint, all in one durable transaction per batch.
- ``raw.copy_plus_sign``: the same number of ledger-sized rows written with one binary ``COPY`` and one
  commit per batch into a plain table, plus the time to Ed25519-sign the same bodies on one thread.
- ``eventsourcing.batch``: the eventsourcing library's PostgreSQL application recorder, one
  ``insert_events`` call (one transaction) per batch.
- ``ingest.batch.peak_rss_mb``: the RSS high-water mark of a child process that runs only the ledger's
  batch workload (``benchmarks.memory``), beside its high-water mark before the run.

The three contenders run side by side and take turns (``benchmarks.rounds``), after one untimed warm-up
batch each.  Event dicts are built batch by batch outside the timed calls.  The memory child runs before
the race; the ledger's log is audited after it (not timed into the rate).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from benchmarks import memory, peers
from benchmarks.common import (
    BATCH_SIZE,
    EVENTS_PER_S,
    PRODUCER,
    Context,
    Stopwatch,
    Target,
    batches,
    make_events,
    rate,
)
from benchmarks.rounds import Contender, race
from ledger.notes import parse_verifier_key

NAME = "ingest.batch"
TARGET = Target(15_000, EVENTS_PER_S)
AUDIT_TARGET = Target(15_000, EVENTS_PER_S)


def _event_batches(start: int, count: int) -> Iterator[list[dict[str, Any]]]:
    for offset, size in batches(count):
        yield make_events(start + offset, size)


def run(ctx: Context) -> None:
    results, total = ctx.results, ctx.scale.batch_events
    memory.run(ctx)  # first, while this process is small (see benchmarks.memory)
    with contextlib.ExitStack() as stack:
        ledger = stack.enter_context(ctx.ledger("bench_ledger_batch"))

        def write_ledger(_worker: int, events: list[dict[str, Any]]) -> None:
            ledger.append_batch(events, producer=PRODUCER)

        contenders = [Contender(NAME, "Ledger.append_batch", _event_batches, write_ledger)]
        raw, sign_time, copy_time = raw_contender(ctx, stack)
        contenders.append(raw)
        if peers.eventsourcing_version() is None:
            results.notes.append("eventsourcing is not installed (pip install -e '.[bench]'): peer skipped")
        else:
            contenders.append(eventsourcing_contender(ctx, stack))

        seconds = race(contenders, total, warmup=BATCH_SIZE)

        results.add(NAME, rate(total, seconds[NAME]), EVENTS_PER_S, f"{total:,} events in {seconds[NAME]:.1f} s")
        copy_plus_sign = sign_time.seconds + copy_time.seconds
        results.add(
            "raw.copy_plus_sign",
            rate(total, copy_plus_sign),
            EVENTS_PER_S,
            f"COPY {copy_time.seconds:.2f} s + sign {sign_time.seconds:.2f} s",
        )
        results.add("raw.copy", rate(total, copy_time.seconds), EVENTS_PER_S, "binary COPY + commit per batch")
        results.add("raw.sign", rate(total, sign_time.seconds), EVENTS_PER_S, "Ed25519 signing, one thread")
        if "eventsourcing.batch" in seconds:
            spent = seconds["eventsourcing.batch"]
            results.add(
                "eventsourcing.batch",
                rate(total, spent),
                EVENTS_PER_S,
                f"eventsourcing {peers.eventsourcing_version()}, insert_events per {BATCH_SIZE:,}",
            )
        audit(ctx, ledger)

    results.compare(NAME, "raw.copy_plus_sign", TARGET)
    results.compare(NAME, "eventsourcing.batch", TARGET)
    results.compare(memory.FIGURE, memory.BASELINE)
    results.compare("audit", "raw.audit_ed25519_verify", AUDIT_TARGET)


def audit(ctx: Context, ledger: Any) -> None:
    """Check the log the run wrote, and note the stored sizes of an entry next to the baseline rows."""
    results = ctx.results
    head = ledger.head()
    payload = ledger.payload(0)
    results.facts["ledger_body_bytes"] = len(ledger.entry(0).body)
    results.facts["ledger_payload_bytes"] = len(payload.payload or b"") if payload else None
    began = time.perf_counter()
    report = ledger.audit()
    spent = time.perf_counter() - began
    results.facts["ledger_audit_ok"] = report.ok
    results.add(
        "audit", rate(head.size, spent), EVENTS_PER_S, f"Ledger.audit() of {head.size:,} entries, ok={report.ok}"
    )
    if not report.ok:
        results.notes.append(f"WARNING: the audit after {NAME} reported findings: {report!r}"[:2000])
    # the baseline: the same bodies and signatures checked by cryptography (OpenSSL) on one thread, nothing else
    signed = [(entry.body, entry.signature) for entry in ledger.entries()]
    public = Ed25519PublicKey.from_public_bytes(parse_verifier_key(ledger.active_key().verifier_key).public_key)
    began = time.perf_counter()
    for body, signature in signed:
        public.verify(signature, body)
    spent = time.perf_counter() - began
    results.add(
        "raw.audit_ed25519_verify",
        rate(len(signed), spent),
        EVENTS_PER_S,
        f"Ed25519 verification of the same {len(signed):,} bodies, cryptography, one thread",
    )


def raw_contender(ctx: Context, stack: contextlib.ExitStack) -> tuple[Contender, Stopwatch, Stopwatch]:
    """Sign a batch of ledger-sized rows, then COPY them and commit; the two parts are timed apart."""
    database = stack.enter_context(ctx.database("bench_raw_copy"))
    conn = stack.enter_context(peers.raw_connection(database))
    key = Ed25519PrivateKey.generate()
    maker = peers.RawRowMaker()
    sign_time, copy_time = Stopwatch(), Stopwatch()

    def prepare(start: int, count: int) -> Iterator[list[peers.RawRow]]:
        for events in _event_batches(start, count):
            rows = maker.rows(events)
            ctx.results.facts.setdefault("raw_body_bytes", len(rows[0].body))
            ctx.results.facts.setdefault("raw_payload_bytes", len(rows[0].payload))
            yield rows

    def write(_worker: int, rows: list[peers.RawRow]) -> None:
        with sign_time:
            signatures = [key.sign(row.body) for row in rows]
        signed = [row.with_signature(sig) for row, sig in zip(rows, signatures, strict=True)]
        with copy_time:
            peers.copy_rows(conn, signed)

    def after_warmup() -> None:
        sign_time.seconds = copy_time.seconds = 0.0

    contender = Contender("raw.copy_plus_sign", "COPY + sign", prepare, write, after_warmup=after_warmup)
    return contender, sign_time, copy_time


def eventsourcing_contender(ctx: Context, stack: contextlib.ExitStack) -> Contender:
    """eventsourcing's ``insert_events`` per batch, stored events built inside the timed call."""
    database = stack.enter_context(ctx.database("bench_es_batch"))
    recorder = stack.enter_context(peers.eventsourcing_recorder(database))
    maker = peers.StoredEventMaker()

    def write(_worker: int, events: list[dict[str, Any]]) -> None:
        recorder.insert_events(maker.stored(events))

    return Contender("eventsourcing.batch", "insert_events", _event_batches, write)
