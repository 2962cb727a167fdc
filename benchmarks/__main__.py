"""``python -m benchmarks [--quick] [--only NAME ...] [--list] [--no-write]``: run the harness."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import (
    http_append,
    ingest_batch,
    ingest_single,
    kafka_bus,
    load_drill,
    packs,
    report,
    seal_restore,
)
from benchmarks.common import BATCH_SIZE, Context, Results, Scale, conninfo, cpu_model, nproc

# Registry order is run order: the batch run comes first so that its peak-RSS figure is the ledger's.
BENCHMARKS: dict[str, Callable[[Context], None]] = {
    "ingest.batch": ingest_batch.run,
    "ingest.single": ingest_single.run,
    "ingest.single_concurrent": ingest_single.run_concurrent,
    "http.append": http_append.run,
    "http.load_drill": load_drill.run,
    "kafka.relay": kafka_bus.run_relay,
    "kafka.ingest": kafka_bus.run_ingest,
    "retention.seal_restore": seal_restore.run,
    "retention.seal_azurite": seal_restore.run_azurite,
    "packs.build_verify": packs.run,
}
ROOT = Path(__file__).resolve().parents[1]


def select(only: Sequence[str] | None) -> list[str]:
    """Benchmarks named by ``--only`` (an exact name or a dotted prefix such as ``ingest``), in run order."""
    if not only:
        return list(BENCHMARKS)
    chosen = set()
    for name in only:
        matches = [b for b in BENCHMARKS if b == name or b.startswith(name.rstrip(".") + ".")]
        if not matches:
            raise SystemExit(f"unknown benchmark {name!r}; choose from: {', '.join(BENCHMARKS)}")
        chosen.update(matches)
    return [b for b in BENCHMARKS if b in chosen]


def command_line(argv: Sequence[str]) -> str:
    if not argv:
        return "make bench"
    return "python -m benchmarks " + shlex.join(argv)


def postgres_facts(url: str, source: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"source": source}
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        for setting in (
            "server_version",
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "wal_sync_method",
            "shared_buffers",
        ):
            row = conn.execute(f"SHOW {setting}").fetchone()
            facts["version" if setting == "server_version" else setting] = row[0] if row else None
    return facts


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return "RAM unknown"


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in (
        "psycopg",
        "sqlalchemy",
        "cryptography",
        "pynacl",
        "eventsourcing",
        "orjson",
        "pydantic",
        "kafka-python",
    ):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-write", action="store_true", help="do not write results.json or BENCHMARKS.md")
    args = parser.parse_args(args_list)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    selected = select(args.only)
    scale = Scale.quick() if args.quick else Scale.default()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # tests.services, when run from another directory
    from tests.services import postgres_server

    results = Results()
    load_before = [round(x, 2) for x in os.getloadavg()]
    began = time.perf_counter()
    started = datetime.now(UTC)
    with postgres_server() as server, contextlib.ExitStack() as services:
        postgres = postgres_facts(server.superuser_url, server.source)
        print(
            f"PostgreSQL {postgres['version']} ({server.source}), fsync={postgres['fsync']}, "
            f"synchronous_commit={postgres['synchronous_commit']}"
        )
        if postgres["fsync"] != "on" or postgres["synchronous_commit"] != "on":
            results.notes.append("WARNING: fsync or synchronous_commit is off: commits were not durable.")
        context = Context(server, scale, results, services)
        failed = []
        for name in selected:
            print(f"\n{name}", flush=True)
            try:
                BENCHMARKS[name](context)
            except Exception as exc:  # report it, run the others, exit non-zero at the end
                traceback.print_exc()
                failed.append(name)
                results.notes.append(f"FAILED: {name}: {type(exc).__name__}: {exc}"[:500])
    elapsed = time.perf_counter() - began

    facts = results.facts
    meta: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(args_list),
        "quick": args.quick,
        "benchmarks": selected,
        "machine": {
            "nproc": nproc(),
            "cpu_model": cpu_model(),
            "memory": memory_total(),
            "platform": platform.platform(),
            "load_average_at_start": load_before,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "python": platform.python_version(),
        "postgres": postgres,
        "versions": versions(),
        "counts": {
            "batch_events": scale.batch_events,
            "batch_size": BATCH_SIZE,
            "single_events": scale.single_events,
            "warmup_single": scale.warmup_single,
            "threads": scale.threads,
            "http_connections": http_append.CONNECTIONS,
            "http_seconds": scale.http_seconds,
            "http_warmup_seconds": scale.http_warmup_seconds,
            "http_rounds": scale.http_rounds,
            "kafka_relay_events": scale.kafka_relay_events,
            "kafka_ingest_events": scale.kafka_ingest_events,
            "kafka_warmup": kafka_bus.WARMUP,
        },
        "row_bytes": {
            key: facts[f"{key}_bytes"]
            for key in ("ledger_body", "ledger_payload", "raw_body", "raw_payload")
            if f"{key}_bytes" in facts
        },
        "ledger_audit_ok": facts.get("ledger_audit_ok"),
        "http_audit_ok": facts.get("http_audit_ok"),
        "http_log_matches_2xx": facts.get("http_log_matches_2xx"),
        "http_server_runtime": facts.get("http_server_runtime"),
        "memory_source": facts.get("memory_source"),
        "kafka_broker": facts.get("kafka_broker"),
        "kafka_record_value_bytes": facts.get("kafka_record_value_bytes"),
        "kafka_relay_progress_ok": facts.get("kafka_relay_progress_ok"),
        "kafka_relay_topic_ok": facts.get("kafka_relay_topic_ok"),
        "kafka_raw_topic_ok": facts.get("kafka_raw_topic_ok"),
        "kafka_ingest_log_entries": facts.get("kafka_ingest_log_entries"),
        "kafka_ingest_log_matches": facts.get("kafka_ingest_log_matches"),
        "kafka_ingest_audit_ok": facts.get("kafka_ingest_audit_ok"),
        "failed": failed,
        "notes": results.notes,
        "elapsed_s": round(elapsed, 1),
    }
    print()
    print(report.console_table(results))
    print(f"\n{len(selected)} benchmark(s) in {elapsed:.0f} s")
    if not args.no_write:
        report.write(results, meta)
        print(f"wrote {report.RESULTS_JSON.relative_to(ROOT)} and {report.BENCHMARKS_MD.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
