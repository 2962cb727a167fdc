"""Output of a run: the console table, ``benchmarks/results.json`` and ``BENCHMARKS.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import Results, Row, format_number
from benchmarks.rounds import ROUNDS

PACKAGE_DIR = Path(__file__).resolve().parent
RESULTS_JSON = PACKAGE_DIR / "results.json"
BENCHMARKS_MD = PACKAGE_DIR.parent / "BENCHMARKS.md"
HEADERS = ("figure", "value", "baseline", "baseline value", "ratio", "target")

DESCRIPTIONS = {
    "ingest.batch": "`Ledger.append_batch` with 1,000 events per call: validation, canonical JSON, hash chain, "
    "Ed25519 signatures, Merkle nodes, a signed checkpoint and one durable commit per batch.",
    "raw.copy_plus_sign": "The floor for the same work without the ledger: ledger-sized rows (body, 32-byte hash, "
    "64-byte signature, payload) written with one binary `COPY ... FROM STDIN` and one commit per 1,000 rows "
    "into a plain table with a primary key, plus the time to Ed25519-sign the same bodies on one thread "
    "(`raw.copy` and `raw.sign` are the two parts).",
    "eventsourcing.batch": "The `eventsourcing` library's `PostgresApplicationRecorder.insert_events` with "
    "1,000 stored events per call (one transaction; the state is the event dict as JSON, one aggregate "
    "sequence per stream).",
    "ingest.batch.peak_rss_mb": "RSS high-water mark (`resource.getrusage`) of a child process that does "
    "nothing but the ledger's batch run (same counts, batches built one at a time), read after the last "
    "batch, beside its high-water mark after imports and `Ledger.open` (`ingest.batch.rss_before_run_mb`). "
    "A child of its own, because the harness process also hosts the baselines. Linux carries a parent's "
    "high-water mark into a child, so when `getrusage` shows the harness's mark the child's own `VmHWM` is "
    "used (the run details say which).",
    "audit": "`Ledger.audit()` over the log written by the batch run (every signature, hash, chain link, "
    "tree node and checkpoint re-checked); no baseline, shown for scale.",
    "ingest.single": "`Ledger.append`, one event per transaction, sequential on one thread.",
    "raw.insert_commit": "One plain `INSERT` of a ledger-sized row and a commit per event (psycopg 3, "
    "prepared statement).",
    "eventsourcing.single": "eventsourcing's `insert_events` with one stored event per call.",
    "ingest.single_concurrent": "`Ledger.append` from 4 threads sharing one `Ledger` (and its connection "
    "pool). Appends serialise on the log-head row lock; commits can still be grouped by PostgreSQL.",
    "raw.insert_commit_concurrent": "`raw.insert_commit` from 4 threads, one connection each.",
}


def ratio_key(row: Row) -> str:
    return f"{row.figure}/{row.baseline}"


def table_cells(results: Results) -> list[tuple[str, ...]]:
    cells: list[tuple[str, ...]] = []
    for row in results.rows:
        figure = results.figures[row.figure]
        value = f"{format_number(figure.value)} {figure.unit}"
        baseline, baseline_value, ratio_text, target = "", "", "", ""
        if row.baseline is not None:
            base = results.figures[row.baseline]
            baseline = row.baseline
            baseline_value = f"{format_number(base.value)} {base.unit}"
            ratio = results.ratio(row)
            ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        if row.target is not None:
            verdict = "met" if row.target.met(figure.value) else "not met"
            target = f"{row.target.describe()} ({verdict})"
        cells.append((row.figure, value, baseline, baseline_value, ratio_text, target))
    return cells


def other_figures(results: Results) -> list[tuple[str, str, str]]:
    shown = {r.figure for r in results.rows} | {r.baseline for r in results.rows if r.baseline}
    return [
        (f.name, f"{format_number(f.value)} {f.unit}", f.detail)
        for f in results.figures.values()
        if f.name not in shown
    ]


def console_table(results: Results) -> str:
    rows = [HEADERS, *table_cells(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {1, 3, 4}

    def line(row: tuple[str, ...]) -> str:
        parts = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    extra = other_figures(results)
    if extra:
        out += ["", "other figures:"]
        width = max(len(name) for name, _, _ in extra)
        out += [f"  {name.ljust(width)}  {value:>18}  {detail}" for name, value, detail in extra]
    for note in results.notes:
        out += ["", note]
    return "\n".join(out)


def results_json(results: Results, meta: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {name: round(f.value, 3) for name, f in results.figures.items()}
    for row in results.rows:
        ratio = results.ratio(row)
        if ratio is not None:
            data[ratio_key(row)] = round(ratio, 4)
    data["_meta"] = meta
    return data


def markdown(results: Results, meta: dict[str, Any]) -> str:
    command = meta["command"]
    machine = meta["machine"]
    postgres = meta["postgres"]
    counts = meta["counts"]
    lines = [
        "# Benchmarks",
        "",
        "How fast the ledger ingests evidence on PostgreSQL, with durable commits (`fsync` and",
        "`synchronous_commit` on). Every figure sits beside a baseline measured in the same run on the same",
        "server, so the ratio stays meaningful when the machine changes: a plain psycopg 3 writer that does",
        "the least work the same rows could cost, and the `eventsourcing` library as a peer event store.",
        "Targets are printed for orientation only; nothing is asserted.",
        "",
        "Run it with `make bench` (which runs `.venv/bin/python -m benchmarks`). Options: `--quick` for a",
        "smoke test with small counts, `--only NAME` (repeatable; a prefix such as `ingest` selects a group),",
        "`--list`, and `--no-write` to leave this file and `benchmarks/results.json` alone. PostgreSQL comes",
        "from `LEDGER_TEST_DATABASE_URL` (a superuser URL) when set, else a container or a throwaway local",
        "cluster, as for the tests (`tests/services.py`). Each contender writes into its own new database.",
        "`python -m benchmarks.profile_append` profiles `Ledger.append_batch` with cProfile.",
        "",
        "This file is generated: edit `benchmarks/report.py`, not the text below.",
        "",
        "## Results",
        "",
        f"Produced by `{command}` on {meta['date']}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(["---", "--:", "---", "--:", "--:", "---"]) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_cells(results)]
    lines += ["", "Ratio is figure / baseline: below 1 means the ledger is slower (or smaller) than the baseline."]
    extra = other_figures(results)
    if extra:
        lines += ["", "Supporting figures:", "", "| figure | value | how |", "|---|--:|---|"]
        lines += [f"| {name} | {value} | {detail} |" for name, value, detail in extra]
    if results.notes:
        lines += ["", *[f"> {note}" for note in results.notes]]
    lines += ["", "## What each figure measures", ""]
    lines += [f"- `{name}`: {text}" for name, text in DESCRIPTIONS.items() if name in results.figures]
    lines += [
        "",
        "Events are built outside the timed sections and each contender makes untimed warm-up writes",
        "(one batch, or a few single writes) first. Commit latency drifts on virtual disks and the machine",
        "may be shared, so the contenders of a benchmark are set up side by side and take turns: the events",
        f"are split into {ROUNDS} rounds, every contender writes the same share in each round, the order rotates,",
        "and each figure is its events over the sum of its timed writes.",
        "",
        "Row sizes: ledger body "
        f"{meta['row_bytes'].get('ledger_body', '?')} bytes and payload "
        f"{meta['row_bytes'].get('ledger_payload', '?')} bytes; baseline rows "
        f"{meta['row_bytes'].get('raw_body', '?')} and {meta['row_bytes'].get('raw_payload', '?')} bytes.",
        "",
        "## Run details",
        "",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory']}; load average "
        f"{' / '.join(str(x) for x in machine['load_average_at_start'])} (1/5/15 min) at the start, "
        f"{' / '.join(str(x) for x in machine['load_average_at_end'])} at the end",
        f"- Python {meta['python']}; psycopg {meta['versions'].get('psycopg')}, "
        f"SQLAlchemy {meta['versions'].get('sqlalchemy')}, cryptography {meta['versions'].get('cryptography')}, "
        f"eventsourcing {meta['versions'].get('eventsourcing')}",
        f"- PostgreSQL {postgres['version']} ({postgres['source']}); fsync={postgres['fsync']}, "
        f"synchronous_commit={postgres['synchronous_commit']}, full_page_writes={postgres['full_page_writes']}, "
        f"wal_sync_method={postgres['wal_sync_method']}, shared_buffers={postgres['shared_buffers']}",
        f"- Counts: {counts['batch_events']:,} events in batches of {counts['batch_size']:,}; "
        f"{counts['single_events']:,} single appends (after {counts['warmup_single']} warm-up); "
        f"{counts['threads']} threads for the concurrent variant",
        f"- Memory figures read from: {meta.get('memory_source') or 'not measured'}; "
        f"audit of the batch log passed: {meta.get('ledger_audit_ok')}",
        f"- Wall-clock time of the whole run: {meta['elapsed_s']:.0f} s",
        "",
        "Commit latency on a shared virtual disk varies from run to run (by a factor of two or more for the",
        "plain INSERT + commit baseline on the 2-CPU development machine), which is why every figure is read",
        "against baselines from the same run rather than against older numbers.",
        "",
    ]
    return "\n".join(lines)


def write(results: Results, meta: dict[str, Any]) -> None:
    RESULTS_JSON.write_text(json.dumps(results_json(results, meta), indent=2) + "\n")
    BENCHMARKS_MD.write_text(markdown(results, meta))
