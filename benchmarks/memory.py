"""``ingest.batch.peak_rss_mb``: the memory a batch run of the ledger needs, in a process of its own.

The throughput contenders share the harness process and take turns, so its RSS high-water mark cannot
tell the ledger's peak from a baseline's.  This module therefore runs the ledger's batch workload alone in
a child process (``python -m benchmarks.memory``) and reads ``resource.getrusage`` there: once after the
imports and ``Ledger.open`` (the baseline), once after the last batch (the figure).  The parent creates the
log first, so that migrations (Alembic) do not set the child's high-water mark, and runs the child before
the throughput race: Linux carries a parent's high-water mark into its children across fork and exec, so
the parent should be small when it starts the child.  The child also reads its own ``VmHWM`` (the same
counter, for its address space alone); when ``getrusage`` shows the parent's larger mark instead, the
figures come from ``VmHWM`` and say so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import (
    BATCH_SIZE,
    MEGABYTES,
    ORIGIN,
    PRODUCER,
    Context,
    batches,
    ledger_settings,
    make_events,
    new_ledger,
    peak_rss_mb,
)

ROOT = Path(__file__).resolve().parents[1]
FIGURE = "ingest.batch.peak_rss_mb"
BASELINE = "ingest.batch.rss_before_run_mb"


def run(ctx: Context) -> None:
    """Create the ledger here, let the child open it and write, and record the child's two figures."""
    total = ctx.scale.batch_events
    with (
        ctx.database("bench_ledger_memory") as database,
        tempfile.TemporaryDirectory(prefix="ledger-bench-memory-") as tmp,
    ):
        with new_ledger(database.superuser_url, Path(tmp)):
            pass  # migrations and key creation happen here, not in the measured child
        argv = [sys.executable, "-m", "benchmarks.memory", "--events", str(total)]
        argv += ["--url", database.superuser_url, "--data-dir", tmp]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory child failed ({done.returncode}): {done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = measured["before"], measured["after"]
    own_before, own_after = measured["own_before"], measured["own_after"]
    source = "getrusage"
    if own_before is not None and own_after is not None and before > own_before + 1:
        # Linux carries the parent's high-water mark into a child across fork and exec; when that is
        # what getrusage reports, read the child's own address space instead.
        before, after, source = own_before, own_after, "VmHWM"
    ctx.results.facts["memory_source"] = source
    ctx.results.add(BASELINE, before, MEGABYTES, f"child's RSS high-water after imports + Ledger.open ({source})")
    ctx.results.add(FIGURE, after, MEGABYTES, f"child's RSS high-water after {total:,} events ({source})")


def own_peak_mb() -> float | None:
    """VmHWM: the high-water mark of this address space alone (``ru_maxrss`` also covers the parent's)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def child(events: int, url: str, data_dir: Path) -> dict[str, float | None]:
    from ledger.service import Ledger

    ledger = Ledger.open(ledger_settings(data_dir, url), ORIGIN, run_migrations=False)
    try:
        before, own_before = peak_rss_mb(), own_peak_mb()
        ledger.append_batch(make_events(events, BATCH_SIZE), producer=PRODUCER)  # warm-up, as in ingest.batch
        for start, count in batches(events):
            ledger.append_batch(make_events(start, count), producer=PRODUCER)
        after, own_after = peak_rss_mb(), own_peak_mb()
    finally:
        ledger.recorder.engine.dispose()
    return {"before": before, "after": after, "own_before": own_before, "own_after": own_after}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of a database with an empty log")
    parser.add_argument("--data-dir", required=True, type=Path, help="the ledger's data directory (keys)")
    args = parser.parse_args(argv)
    print(json.dumps(child(args.events, args.url, args.data_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
