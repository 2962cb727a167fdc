"""Contenders that take turns, so that drift in the machine (commit latency on a virtual disk, other
processes on a shared box) hits every contender alike instead of whichever happened to run at the time.

The events are split into rounds; in each round every contender writes the same share, and the order
rotates from round to round.  A contender's time is the sum of its timed writes over all rounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from benchmarks.common import batches

ROUNDS = 10


@dataclass
class Contender:
    name: str
    detail: str
    prepare: Callable[[int, int], Iterable[Any]]
    """``(start, count)`` of the events for one turn -> the work items; not timed (lazy is fine)."""
    write: Callable[[int, Any], None]
    """Write one work item (``worker`` tells concurrent threads apart); timed."""
    after_turn: Callable[[], None] | None = None
    """Called, untimed, after each of the contender's turns."""
    after_warmup: Callable[[], None] | None = None
    """Called once after the warm-up writes (e.g. to reset a contender's own stopwatches)."""


def race(
    contenders: Sequence[Contender],
    total: int,
    *,
    warmup: int,
    threads: int = 1,
    rounds: int = ROUNDS,
) -> dict[str, float]:
    """Warm every contender up with ``warmup`` events, then race them over ``total``; seconds per contender."""
    for contender in contenders:
        for item in contender.prepare(total, warmup):
            contender.write(0, item)
        if contender.after_warmup is not None:
            contender.after_warmup()
    seconds = dict.fromkeys((c.name for c in contenders), 0.0)
    round_size = -(-total // rounds)
    for number, (start, count) in enumerate(batches(total, round_size)):
        for i in range(len(contenders)):
            contender = contenders[(number + i) % len(contenders)]
            items = contender.prepare(start, count)
            if threads == 1:
                seconds[contender.name] += _sequential(contender.write, items)
            else:
                seconds[contender.name] += _threaded(contender.write, list(items), threads)
            if contender.after_turn is not None:
                contender.after_turn()
    return seconds


def _sequential(write: Callable[[int, Any], None], items: Iterable[Any]) -> float:
    spent = 0.0
    for item in items:
        began = time.perf_counter()
        write(0, item)
        spent += time.perf_counter() - began
    return spent


def _threaded(write: Callable[[int, Any], None], items: Sequence[Any], threads: int) -> float:
    """Wall-clock seconds for ``threads`` threads, started together, to write their shares of ``items``."""
    shares = [items[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def work(worker: int) -> None:
        barrier.wait()
        for item in shares[worker]:
            write(worker, item)

    with ThreadPoolExecutor(threads, thread_name_prefix="bench") as pool:
        futures = [pool.submit(work, worker) for worker in range(threads)]
        barrier.wait()
        began = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - began
