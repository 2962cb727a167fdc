"""Profile ``Ledger.append_batch`` (or single appends) on PostgreSQL with cProfile.

``python -m benchmarks.profile_append [--events 20000] [--batch-size 1000] [--single] [--top 30]``

Only the append loop runs under the profiler (events are built beforehand).  The output is the wall-clock
rate, the own time (``tottime``) grouped by area (ledger code, SQLAlchemy, psycopg, pydantic, signing,
waiting on the server, ...), then the top functions by own and by cumulative time.  cProfile adds
overhead to every Python call, so the rate is lower than in ``python -m benchmarks``; the proportions are
what count.  cProfile sees the calling thread only: the half of a large batch that the ledger signs on its
signing thread is not in the figures (the calling thread's wait for it shows as lock time).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import time
from collections import defaultdict
from collections.abc import Sequence

from benchmarks.common import BATCH_SIZE, PRODUCER, Context, Results, Scale, batches, make_events

AREAS = (
    # (substring of the filename or built-in function name, area), first match wins
    # psycopg's wait() runs the C wait loop: its own time is time spent waiting for the server's answer
    ("psycopg/connection.py:wait", "waiting on the server (psycopg wait)"),
    ("psycopg/waiting.py", "waiting on the server (psycopg wait)"),
    ("/ledger/store/", "ledger.store (recorder)"),
    ("/ledger/", "ledger (core + service)"),
    ("/schemas/", "schemas (validation models)"),
    ("pydantic", "pydantic"),
    ("sqlalchemy", "sqlalchemy"),
    ("psycopg_pool", "psycopg"),
    ("psycopg", "psycopg"),
    ("cryptography", "cryptography (Ed25519)"),
    ("ed25519", "cryptography (Ed25519)"),
    ("sign", "cryptography (Ed25519)"),
    ("_hashlib", "hashlib / hmac"),
    ("sha256", "hashlib / hmac"),
    ("hmac", "hashlib / hmac"),
    ("orjson", "orjson"),
    ("select.", "waiting on the server (psycopg wait)"),
    ("poll", "waiting on the server (psycopg wait)"),
    ("wait", "waiting on the server (psycopg wait)"),
    ("socket", "waiting on the server (psycopg wait)"),
    ("recv", "waiting on the server (psycopg wait)"),
    ("threading", "threads / locks"),
    ("lock", "threads / locks"),
    ("concurrent/futures", "threads / locks"),
)


def area_of(filename: str, function: str) -> str:
    where = f"{filename}:{function}".lower() if filename != "~" else function.lower()
    for needle, area in AREAS:
        if needle in where:
            return area
    return "other (stdlib, builtins)"


def by_area(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        totals[area_of(filename, function)] += tottime
    return sorted(totals.items(), key=lambda item: -item[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_append", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events to append under the profiler")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--single", action="store_true", help="profile Ledger.append, one event per call")
    parser.add_argument("--top", type=int, default=30, help="functions to list")
    parser.add_argument("--dump", metavar="FILE", help="also save the raw profile (for snakeviz, pstats)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from tests.services import postgres_server

    with postgres_server() as server:
        context = Context(server, Scale.quick(), Results())
        with context.ledger("bench_profile") as ledger:
            ledger.append_batch(make_events(args.events, args.batch_size), producer=PRODUCER)  # warm-up
            if args.single:
                work = [[event] for event in make_events(0, args.events)]
            else:
                work = [make_events(start, count) for start, count in batches(args.events, args.batch_size)]
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.enable()
            for chunk in work:
                if args.single:
                    ledger.append(chunk[0], producer=PRODUCER)
                else:
                    ledger.append_batch(chunk, producer=PRODUCER)
            profiler.disable()
            seconds = time.perf_counter() - began

    mode = "Ledger.append" if args.single else f"Ledger.append_batch x {args.batch_size}"
    print(f"{mode}: {args.events:,} events in {seconds:.2f} s under cProfile = {args.events / seconds:,.0f} events/s")
    stats = pstats.Stats(profiler)
    if args.dump:
        stats.dump_stats(args.dump)
    total = sum(t for _, t in by_area(stats))
    print(f"\nown time by area (sum {total:.2f} s):")
    for area, seconds_in in by_area(stats):
        print(f"  {area:<40} {seconds_in:7.2f} s  {100 * seconds_in / total:5.1f} %")
    print("\ntop functions by own time:")
    stats.sort_stats("tottime").print_stats(args.top)
    print("top functions by cumulative time:")
    stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
