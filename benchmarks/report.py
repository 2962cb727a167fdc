"""Output of a run: the console table, ``benchmarks/results.json`` and ``BENCHMARKS.md``."""

from __future__ import annotations

import json
import textwrap
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
    "audit": "`Ledger.audit()` over the log written by the batch run (every signature, hash, canonical body, chain "
    "link, stream counter, payload digest, tree node and checkpoint re-checked): entries and nodes streamed by one "
    "query each, signatures checked by two forked worker processes (libsodium, OpenSSL deciding what it refuses) "
    "while the main process checks the rest.",
    "raw.audit_ed25519_verify": "The floor for the audit's signature share: `Ed25519PublicKey.verify` from "
    "`cryptography` of the same bodies and signatures (read untimed) on one thread, nothing else.",
    "ingest.single": "`Ledger.append`, one event per transaction, sequential on one thread.",
    "raw.insert_commit": "One plain `INSERT` of a ledger-sized row and a commit per event (psycopg 3, "
    "prepared statement).",
    "eventsourcing.single": "eventsourcing's `insert_events` with one stored event per call.",
    "ingest.single_concurrent": "`Ledger.append` from 4 threads sharing one `Ledger` (and its connection "
    "pool). Appends serialise on the log-head row lock; commits can still be grouped by PostgreSQL.",
    "raw.insert_commit_concurrent": "`raw.insert_commit` from 4 threads, one connection each.",
    "http.append.rps": "`POST /v1/events`, one event per request, against the real server (`ledger serve`: uvicorn, "
    "one worker, default log level, every middleware, API-key authentication, validation, a durable commit per "
    "request or per group of concurrent requests) over PostgreSQL, from 16 keep-alive connections that each "
    "send their next request as soon as the answer is in (a closed loop, concurrency 16); answers completed "
    "per second of measured load.",
    "http.bare_fastapi.rps": "The same requests against a bare FastAPI app (`benchmarks/bare_app.py`: one "
    "`POST /v1/events` that parses the JSON body and answers 201 with a small JSON object) served by uvicorn with "
    "the same options: what FastAPI alone costs on this machine.",
    "http.append.p50_ms": "Median time from writing a request to reading its complete answer, at the client.",
    "http.append.p99_ms": "99th percentile of the same latencies (nearest rank).",
    "http.append.non_2xx": "Answers that were not 2xx over the whole run, warm-up included (should be 0); the "
    "details give the count per status and connections lost with a request in flight.",
    "http.append.cpu_pct": "CPU time of the server process (all threads) during its measured turns, with that of its "
    "PostgreSQL backends (when PostgreSQL runs on this machine), of the load client and of the whole machine.",
    "http.append.cpu_ms_per_request": "Server CPU time per answer over the measured turns: less sensitive than the "
    "rate to other work on the machine.",
    "http.append.events_per_commit": "Entries appended over HTTP per append transaction (each transaction signs a "
    "checkpoint, so this is entries / new checkpoints): how much the server's group commit gathers.",
    "http.append.log_entries": "Entries the server appended, read back after the servers stopped with "
    "`Ledger.open(...).audit()`; the audit must pass and the count must equal the 2xx answers.",
    "kafka.relay": "`Relay.run_once()` publishing entries already committed to a PostgreSQL-backed ledger to a "
    "fresh one-partition topic on a real broker, as deployed: per chunk of `relay_batch_size` (1,000) entries, "
    "read them from the database, build the records (`entry_record`), send them with `acks=all` (the relay's "
    "compression, `linger_ms`, `batch_size` and idempotence), wait until every record is acknowledged, then commit "
    "the relay's progress. Each turn drains the entries appended (untimed) since the previous one.",
    "kafka.raw_produce": "kafka-python's `KafkaProducer` with the relay's own producer settings sending the same "
    "key, value and header bytes (built untimed with `entry_record` from the same entries, read back from the "
    "relay's ledger) to another fresh topic created the same way, one `flush()` per turn: the cost of Kafka "
    "alone, with nothing read from or written to the database.",
    "kafka.ingest": "`IngestConsumer.run_once()` end to end: envelope messages already on a fresh one-partition "
    "ingest topic (produced untimed before the turn) polled, parsed, validated and appended to a PostgreSQL-backed "
    "ledger, each poll batch (up to 500 messages) committed with the consumer's offsets in one durable "
    "transaction; counted until every message of the turn is appended.",
    "kafka.raw_consume": "kafka-python's `KafkaConsumer` (partitions assigned, no group, the same "
    "`max_poll_records`) reading the same messages from the same topic and doing nothing with them: Kafka's share.",
    "kafka.ingest.ledger_only": "The same events (parsed untimed from the same message bytes) through the ledger "
    "calls the consumer makes, without Kafka: `Ledger.prepare_batch` per event (every message is its own batch, "
    "so that a conflicting one is refused alone) and one `Ledger.commit_prepared_with` per 500, in a ledger of its "
    "own: the ledger's share. In a full run `kafka.ingest` is also compared with `ingest.batch` (1,000 events per "
    "`append_batch`).",
    "retention.build_log": "How the log that `retention.seal_restore` seals was written: `Ledger.append_batch` with "
    "10,000 varied `check.result` events per call (8 controls on 300 hosts, 2,400 streams; outcomes, evidence lists "
    "and details varying), in a child process (`python -m benchmarks.seal_restore build`); shown for scale.",
    "retention.build_log.rss_before_mb": "`VmHWM` of the build child after imports and `Ledger.open`.",
    "retention.build_log.peak_rss_mb": "`VmHWM` of the build child after its last batch: the memory of ingesting "
    "the whole log (1,000,000 entries in a full run).",
    "packs.build_large": "`export_pack` of every entry of the `retention.seal_restore` log (1,000,000 in a full run), "
    "each disclosed, in a child process (`python -m benchmarks.packs export`), after the seal and restores; shown "
    "for its time and memory.",
    "packs.build_large.rss_before_mb": "`VmHWM` of that export's child after imports and `Ledger.open`.",
    "packs.build_large.peak_rss_mb": "`VmHWM` of that export's child after `export_pack` returned: the memory of "
    "exporting a pack of the whole log.",
    "retention.seal": '`Sealer(ledger, FilesystemStore(dir), "bench", SealConfig(every_entries=10_000))'
    ".run_once(force=True)` over the whole PostgreSQL-backed log, in a child process: per segment of 10,000 read "
    "the entries with their payloads, encode and gzip the segment and payload objects, write them and the signed "
    "checkpoint (each file and its sidecar fsynced), read their protection back and append one `snapshot.sealed` "
    "event (a durable commit).",
    "raw.read_gzip": "The floor for sealing: per 10,000 entries one binary `COPY (SELECT ...) TO STDOUT` of the same "
    "entry and payload columns (entries joined with payloads) over psycopg 3, `gzip.compress` level 6 of exactly "
    "those bytes, and one file written and fsynced.",
    "retention.store_mb": "What the seal wrote to the directory: segment, payload and checkpoint objects with their "
    "sidecars.",
    "retention.seal.rss_before_mb": "RSS high-water mark (`VmHWM`) of the seal's child process after imports and "
    "`Ledger.open`, before `run_once`.",
    "retention.seal.peak_rss_mb": "RSS high-water mark (`VmHWM`) of the seal's child process after `run_once`: the "
    "memory the seal needed.",
    "retention.restore.postgres": "`retention.restore.restore(store, url, trusted_keys=[the log's verifier key])` "
    "from the sealed directory into a fresh PostgreSQL database, in a child process, timed from the call to its "
    "return: migrations, every object read and parsed, every leaf hash, canonical body, chain link, stream counter, "
    "Ed25519 signature (two threads), payload digest, tree node and sealed checkpoint checked, every object's "
    "SHA-256 compared with the digest recorded in the chain, and all rows loaded in one transaction (binary `COPY`). "
    "The restored log's size, root and checkpoint at that size must equal the source's or the benchmark fails. This "
    "rate is the recovery time objective of a restore.",
    "raw.restore_floor.postgres": "The floor for a restore: read, gunzip, split and `orjson`-parse the same segment "
    "and payload objects, verify every body's Ed25519 signature with libsodium directly (PyNaCl "
    "`VerifyKey.verify`, the check the ledger uses; two threads, as the auditor), and write the entry rows (seq, "
    "body, hash, signature, key id, salt, payload) with one binary `COPY` "
    "per segment into an empty table with only a primary key, one transaction; the parts run one after the other "
    "(`raw.restore.gunzip_parse`, `raw.restore.verify`, `raw.restore.copy`) and the floor is their summed time. "
    "No canonical-JSON, chain, tree, checkpoint or digest checks and no secondary indexes.",
    "retention.restore.sqlite": "The same restore into a fresh SQLite file (WAL, `synchronous=FULL`, one "
    "transaction, `executemany`), with the same check of the restored checkpoint.",
    "raw.restore_floor.sqlite": "The restore floor with the rows written by `executemany` into an empty SQLite table "
    "with only a primary key (WAL, `synchronous=FULL`, one transaction; `raw.restore.sqlite_insert`) instead of "
    "`COPY`; the decode and verify parts are the same measurements.",
    "retention.restore.postgres.rss_before_mb": "`VmHWM` of the PostgreSQL restore's child after its imports.",
    "retention.restore.postgres.peak_rss_mb": "`VmHWM` of the PostgreSQL restore's child after `restore` returned.",
    "retention.restore.sqlite.rss_before_mb": "`VmHWM` of the SQLite restore's child after its imports.",
    "retention.restore.sqlite.peak_rss_mb": "`VmHWM` of the SQLite restore's child after `restore` returned.",
    "raw.restore.gunzip_parse": "Part of the restore floor: read, gunzip, split and parse the objects.",
    "raw.restore.verify": "Part of the restore floor: Ed25519 verification of every body with `cryptography`, two "
    "threads.",
    "raw.restore.copy": "Part of the restore floor: binary `COPY` into the plain table and the commit.",
    "raw.restore.sqlite_insert": "Part of the SQLite restore floor: `executemany` into the plain table and the commit.",
    "retention.seal.azurite": "`retention.seal_azurite`: the same seal of a smaller log into Azurite "
    "(`AzureBlobStore(worm=True)`, a fresh container), in a child process. Azurite accepts the immutability headers "
    "and records nothing, so this measures the Blob API round trips, not WORM storage.",
    "retention.seal.directory_small": "The same log sealed afterwards into a directory (`FilesystemStore`) under "
    "another store name (it also seals the Azurite seal's own `snapshot.sealed` events).",
    "retention.seal.azurite.rss_before_mb": "`VmHWM` of the Azurite seal's child after imports and `Ledger.open`.",
    "retention.seal.azurite.peak_rss_mb": "`VmHWM` of the Azurite seal's child after `run_once`.",
    "packs.build_log": "How the log that `packs.build_verify` exports was written: `Ledger.append_batch` with 10,000 "
    "`check.result` events per call (the harness workload, one in 17 failing); shown for scale, not compared.",
    "packs.build": '`export_pack(ledger, out, PackScope(stream_prefixes=("controls",)), exporter="bench")` over the '
    "whole PostgreSQL-backed log, every entry in scope, in a child process (`python -m benchmarks.packs export`), "
    "seconds from the call to its return: the scope selected into a bitmap, every entry read with its payload and "
    "written as a disclosed line, the range proof, 1,000 inclusion proofs, keys, retention state (a second pass over "
    "the range), report.json and the PDF, verify.py, the signed manifest, the ZIP's SHA-256 and one `pack.exported` "
    "event (a durable commit).",
    "raw.read_zip": "The floor for the export: one binary `COPY (SELECT ...) TO STDOUT` of the same entry and payload "
    "columns (entries joined with payloads) over psycopg 3, streamed into one deflate member (level 6, as the pack) "
    "of a ZIP file; no JSON, proofs or report.",
    "packs.zip_mb": "Size of the pack's ZIP file.",
    "packs.build.rss_before_mb": "RSS high-water mark (`VmHWM`) of the export's child after imports and `Ledger.open`.",
    "packs.build.peak_rss_mb": "`VmHWM` of the export's child after `export_pack` returned: the memory the export "
    "needed.",
    "packs.verify": "The offline verifier as shipped, `ledger/packs/verifier.py` (the pack's verify.py), run by "
    "`python -I` from an empty directory on the pack with the log's verifier key: its `main` timed in the child, "
    "every check (file digests, manifest signature, every entry's hash, body, signature, payload digest and chain "
    "link, the range proof, checkpoint, inclusion proofs); entries of the pack per second. Verdict VALID or the "
    "benchmark fails.",
    "raw.ed25519_verify": "The floor for the verifier: `Ed25519PublicKey.verify` from `cryptography` of the same "
    "bodies and signatures (parsed from the pack untimed), one thread, as the verifier.",
    "raw.ed25519_verify.2_threads": "The same verification split over two threads (`ThreadPoolExecutor`; "
    "`cryptography` releases the GIL while it verifies): what a verifier that checks "
    "signatures in parallel could reach on this machine.",
    "packs.verify.rss_before_mb": "`VmHWM` of the verifier's child after the interpreter started and loaded "
    "verifier.py.",
    "packs.verify.peak_rss_mb": "`VmHWM` of the verifier's child after `main` returned.",
}


def ratio_key(row: Row) -> str:
    return f"{row.figure}/{row.baseline}"


def table_cells(results: Results) -> list[tuple[str, ...]]:
    cells: list[tuple[str, ...]] = []
    for row in results.rows:
        figure = results.figures[row.figure]
        value = f"{format_number(figure.value)} {figure.unit}"
        baseline, baseline_value, ratio_text = "", "", ""
        ratio = results.ratio(row)
        if row.baseline is not None:
            base = results.figures[row.baseline]
            baseline = row.baseline
            baseline_value = f"{format_number(base.value)} {base.unit}"
            ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        goals: list[str] = []
        if row.target is not None:
            verdict = "met" if row.target.met(figure.value) else "not met"
            goals.append(f"{row.target.describe()} ({verdict})")
        if row.ratio_target is not None and ratio is not None:
            verdict = "met" if ratio >= row.ratio_target else "not met"
            goals.append(f">= {row.ratio_target:.2f}x baseline ({verdict})")
        target = "; ".join(goals)
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
        "`synchronous_commit` on), in process and through its HTTP API. Every figure sits beside a baseline",
        "measured in the same run on the same server, so the ratio stays meaningful when the machine changes:",
        "a plain psycopg 3 writer that does the least work the same rows could cost, the `eventsourcing`",
        "library as a peer event store, a bare FastAPI app for the HTTP API, and kafka-python producing or",
        "consuming the same bytes for the Kafka relay and ingest.",
        "Targets are printed for orientation only; nothing is asserted.",
        "",
        "Run it with `make bench` (which runs `.venv/bin/python -m benchmarks`). Options: `--quick` for a",
        "smoke test with small counts, `--only NAME` (repeatable; a prefix such as `ingest` selects a group),",
        "`--list`, and `--no-write` to leave this file and `benchmarks/results.json` alone. PostgreSQL comes",
        "from `LEDGER_TEST_DATABASE_URL` (a superuser URL) when set, else a container or a throwaway local",
        "cluster, as for the tests (`tests/services.py`); Kafka likewise from `LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS`,",
        "else an Apache Kafka container, else a local Tansu broker. Each contender writes into its own new",
        "database (and topic).",
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
    lines += [
        "",
        "Ratio is figure / baseline: for rates, below 1 means the ledger is slower than the baseline; for",
        "sizes and latencies (MB, ms), above 1 means it is larger or slower.",
    ]
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
        *http_method(meta),
        *kafka_method(meta),
        *retention_method(meta),
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
        *http_details(meta),
        *kafka_details(meta),
        *retention_details(results, meta),
        *packs_details(results),
        f"- Wall-clock time of the whole run: {meta['elapsed_s']:.0f} s",
        "",
        "Commit latency on a shared virtual disk varies from run to run (by a factor of two or more for the",
        "plain INSERT + commit baseline on the 2-CPU development machine), which is why every figure is read",
        "against baselines from the same run rather than against older numbers.",
        "",
    ]
    return "\n".join(lines)


def http_method(meta: dict[str, Any]) -> list[str]:
    """How the HTTP figures were measured, when the run measured them."""
    if "http.append" not in meta.get("benchmarks", []):
        return []
    counts = meta["counts"]
    rounds = counts["http_rounds"]
    text = (
        "The HTTP load comes from `benchmarks/http_load.py`: a lean asyncio client on raw sockets (one protocol "
        f"object per keep-alive HTTP/1.1 connection, {counts['http_connections']} connections, pre-built request "
        "bytes, a new event id per request, answers parsed only as far as the status and `Content-Length`). It "
        "runs in the harness process on the same CPUs as the server under test and PostgreSQL, so a rate is what "
        "the machine achieves doing both sides; the client's own CPU share is given with `cpu_pct`. Both servers "
        f"run at once and take turns: a warm-up of {counts['http_warmup_seconds']:g} s each, then {rounds} "
        f"turn{'s' if rounds != 1 else ''} each of {counts['http_seconds'] / rounds:g} s (the order rotating), "
        f"{counts['http_seconds']:g} s of measured load per server. A rate counts the answers completed inside "
        "the measured windows; the latencies are those answers'."
    )
    return [*textwrap.wrap(text, 104), ""]


def http_details(meta: dict[str, Any]) -> list[str]:
    if "http.append" not in meta.get("benchmarks", []):
        return []
    return [
        f"- HTTP servers: {meta.get('http_server_runtime') or 'unknown'}; audit of the log written over HTTP "
        f"passed: {meta.get('http_audit_ok')}; its size equals the 2xx answers: {meta.get('http_log_matches_2xx')}",
    ]


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ran_kafka(meta: dict[str, Any]) -> bool:
    return any(name.startswith("kafka.") for name in meta.get("benchmarks", []))


def kafka_method(meta: dict[str, Any]) -> list[str]:
    """How the Kafka figures were measured, when the run measured them."""
    if not _ran_kafka(meta):
        return []
    text = (
        "For the Kafka figures a round's share is made ready before the round's first turn, untimed: its events are "
        "appended to the relay's ledger (`kafka.relay`), or its messages produced to the ingest topic with "
        "`acks=all` (`kafka.ingest`); each contender then drains that share in its timed turn. Every contender "
        f"first drains a warm-up share of {meta['counts'].get('kafka_warmup', 0):,} (topic metadata, connections). "
        "The broker, the harness and PostgreSQL share the machine's CPUs. Afterwards both topics of `kafka.relay` "
        "are read back (they must hold exactly seqs 0, 1, 2, ... in order: warm-up and measured entries) and the "
        "ingest ledger is counted and audited."
    )
    return [*textwrap.wrap(text, 104), ""]


def kafka_details(meta: dict[str, Any]) -> list[str]:
    if not _ran_kafka(meta):
        return []
    counts = meta["counts"]
    return [
        f"- Kafka: {meta.get('kafka_broker') or 'broker unknown'}; kafka-python "
        f"{meta['versions'].get('kafka-python')}; {counts.get('kafka_relay_events', 0):,} entries relayed and "
        f"{counts.get('kafka_ingest_events', 0):,} messages ingested (after {counts.get('kafka_warmup', 0):,} "
        f"warm-up each); entries record value {meta.get('kafka_record_value_bytes') or '?'} bytes",
        f"- Kafka checks: relay topic read back in seq order: {meta.get('kafka_relay_topic_ok')}; raw producer's "
        f"topic: {meta.get('kafka_raw_topic_ok')}; relay progress at the log size: "
        f"{meta.get('kafka_relay_progress_ok')}; ingest ledger holds {_count(meta.get('kafka_ingest_log_entries'))} "
        f"entries, one per message: {meta.get('kafka_ingest_log_matches')}; its audit passed: "
        f"{meta.get('kafka_ingest_audit_ok')}",
    ]


def _ran_retention(meta: dict[str, Any]) -> bool:
    return any(name.startswith("retention.") for name in meta.get("benchmarks", []))


def retention_method(meta: dict[str, Any]) -> list[str]:
    """How the seal and restore figures were measured, when the run measured them."""
    if not _ran_retention(meta):
        return []
    text = (
        "The retention figures do not take turns: the log is written once (untimed), then the seal, its floor, "
        "the two restores and the restore floor run one after the other against it. The seal and each restore run "
        "in a child process of their own (`python -m benchmarks.seal_restore`), which times the one call and reads "
        "its own RSS high-water mark (`VmHWM`) before and after it; the floors run in the harness process. "
        "Sealing is the deployed configuration (WORM dates on, which a directory records but does not enforce). "
        "Every figure counts the entries of the log, not the objects or rows written."
    )
    return [*textwrap.wrap(text, 104), ""]


def retention_details(results: Results, meta: dict[str, Any]) -> list[str]:
    if not _ran_retention(meta):
        return []
    facts = results.facts
    lines = []
    if "seal_restore_entries" in facts:
        lines.append(
            f"- Seal and restore: a log of {facts['seal_restore_entries']:,} entries in segments of 10,000; restored "
            f"checkpoint equal to the source's at that size (PostgreSQL and SQLite): "
            f"{facts.get('seal_restore_checkpoint_ok')}"
        )
    if "seal_azurite_entries" in facts:
        lines.append(f"- Seal into Azurite: a log of {facts['seal_azurite_entries']:,} entries")
    return lines


def packs_details(results: Results) -> list[str]:
    facts = results.facts
    if "pack_entries" not in facts:
        return []
    return [
        f"- Evidence pack: a log of {facts['pack_entries']:,} entries exported as one pack with every entry in scope "
        f"(export and verifier each in a child process of their own); offline verdict: {facts.get('pack_verdict')}"
    ]


def write(results: Results, meta: dict[str, Any]) -> None:
    RESULTS_JSON.write_text(json.dumps(results_json(results, meta), indent=2) + "\n")
    BENCHMARKS_MD.write_text(markdown(results, meta))
