"""``retention.seal_restore``: sealing a large log into an object store and restoring it, against raw floors.

The log is written first, untimed: ``Ledger.append_batch`` with 10,000 varied ``check.result`` events per call
(8 controls on 300 hosts, 2,400 streams) into a fresh PostgreSQL database (``retention.build_log``).

- ``retention.seal``: ``Sealer(ledger, FilesystemStore(dir), "bench", SealConfig(every_entries=10_000))
  .run_once(force=True)`` over a log of ``Scale.seal_restore_entries`` entries in PostgreSQL: read the rows,
  encode and gzip the segment and payload objects, write them and the signed checkpoints (fsynced), read
  their protection back and append one ``snapshot.sealed`` event per segment (a durable commit each).
- ``raw.read_gzip``: the floor for that: per segment of 10,000, one binary ``COPY (SELECT ...) TO STDOUT`` of
  the same entry and payload columns joined, ``gzip`` (level 6, as the segments) of exactly those bytes, and
  one file written and fsynced.
- ``retention.restore.postgres`` / ``retention.restore.sqlite``: ``retention.restore.restore(store, url,
  trusted_keys=[the log's verifier key])`` into a fresh PostgreSQL database and a fresh SQLite file:
  migrations, every object read and parsed, every hash, canonical body, chain link, stream counter, Ed25519
  signature, payload digest, tree node and checkpoint checked, all rows loaded in one transaction.  The
  restored checkpoint at the log's size must equal the source's (else the benchmark fails).
- ``raw.restore_floor.postgres`` / ``.sqlite``: the floor: read + gunzip + split + ``orjson`` parse of the same
  segment and payload objects (``raw.restore.gunzip_parse``), Ed25519 verification of every body with
  libsodium (PyNaCl's ``VerifyKey.verify``, the check the ledger uses) on two threads, as the auditor does
  (``raw.restore.verify``), and the entry rows (seq, body,
  hash, signature, key id, salt, payload) written into an empty table with only a primary key, in one
  transaction: one binary ``COPY`` per segment on PostgreSQL (``raw.restore.copy``), ``executemany`` on
  SQLite in WAL mode with ``synchronous=FULL`` (``raw.restore.sqlite_insert``).  The parts run one after the
  other and the floor is their summed time.
- ``*.peak_rss_mb``: seal and restores each run in a child process of their own (``python -m
  benchmarks.seal_restore``), which reads its ``VmHWM`` before the call (after imports and opening the
  ledger) and after it; the timed figures come from those same children.

``retention.seal_azurite`` seals a smaller log (``Scale.seal_azurite_entries``) into Azurite and, as its
baseline, the same log into a directory, each in a child process.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import psycopg

from benchmarks import packs
from benchmarks.common import (
    MEGABYTES,
    ORIGIN,
    PRODUCER,
    Context,
    Stopwatch,
    Target,
    add_memory,
    batches,
    conninfo,
    ledger_settings,
    new_ledger,
    peak_rss_mb,
    percentile_ms,
    rate,
)

if TYPE_CHECKING:
    from ledger.service import Ledger
    from retention.stores.base import ObjectStore

ROOT = Path(__file__).resolve().parents[1]
NAME = "retention.seal_restore"
AZURITE_NAME = "retention.seal_azurite"
ENTRIES_PER_S = "entries/s"
STORE_NAME = "bench"
SEGMENT_ENTRIES = 10_000
BUILD_BATCH = 10_000
VERIFY_THREADS = 2  # as ledger.verify.SIGNATURE_THREADS
BLOB_ENV = "LEDGER_BENCH_BLOB_CONNECTION_STRING"
RESTORE_TARGET = Target(10_000, ENTRIES_PER_S)
RSS_TARGET = Target(300, MEGABYTES, higher_is_better=False)

BUILD = "retention.build_log"
PACK_LARGE = "packs.build_large"
SEAL = "retention.seal"
SEAL_FLOOR = "raw.read_gzip"
RESTORE_PG = "retention.restore.postgres"
RESTORE_SQLITE = "retention.restore.sqlite"
FLOOR_PG = "raw.restore_floor.postgres"
FLOOR_SQLITE = "raw.restore_floor.sqlite"
SEAL_AZURITE = "retention.seal.azurite"
SEAL_DIRECTORY_SMALL = "retention.seal.directory_small"


# --- workload: varied check results ------------------------------------------------------------------

_CONTROLS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("IAM-01", ("DORA Art. 9(4)(d)", "ISO27001:A.5.17"), "MFA enforced for privileged accounts"),
    ("IAM-04", ("DORA Art. 9(4)(c)", "ISO27001:A.5.18"), "Dormant accounts disabled after 90 days"),
    ("NET-02", ("DORA Art. 9(2)", "ISO27001:A.8.20"), "Ingress limited to the approved security groups"),
    ("ENC-01", ("DORA Art. 9(3)(b)", "ISO27001:A.8.24"), "Volumes encrypted with customer-managed keys"),
    ("LOG-03", ("DORA Art. 10(1)", "ISO27001:A.8.15"), "Audit logs shipped and retained for 7 years"),
    ("BCK-02", ("DORA Art. 12(1)", "ISO27001:A.8.13"), "Nightly backup completed and restore-tested"),
    ("VUL-05", ("DORA Art. 9(4)(e)", "ISO27001:A.8.8"), "No critical CVE older than 14 days"),
    ("CHG-01", ("DORA Art. 9(4)(e)", "ISO27001:A.8.32"), "Production change carried an approved ticket"),
)
_HOSTS = 300  # 8 controls x 300 hosts: 2,400 streams
_EPOCH = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def _timestamp(second: int) -> str:
    return (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_event(n: int) -> dict[str, Any]:
    """Event ``n``: a ``check.result`` of one of 8 controls on one of 300 hosts, outcomes and evidence varying."""
    control, refs, summary = _CONTROLS[n % len(_CONTROLS)]
    host = (n // len(_CONTROLS)) % _HOSTS
    spin = (n * 2_654_435_761) % 1000  # a cheap, deterministic spread of outcomes
    status = "pass" if spin < 900 else "fail" if spin < 970 else "error" if spin < 990 else "not_applicable"
    when = _timestamp(n // len(_CONTROLS))  # a round of the 8 controls per second
    evidence = [
        {
            "name": f"{control.lower()}-{n}-{i}.json",
            "sha256": hashlib.sha256(f"{n}/{i}".encode()).hexdigest(),
            "size": 600 + (spin * 7 + i * 131) % 9000,
            "uri": f"https://evidence.bank.example/{control.lower()}/host-{host:03d}/{n}-{i}.json",
        }
        for i in range(1 + spin % 3)
    ]
    payload: dict[str, Any] = {
        "control_id": control,
        "check_id": f"{control}-{n}",
        "status": status,
        "framework_refs": list(refs),
        "evidence": evidence,
        "observed_at": when,
        "summary": summary if status == "pass" else f"{summary}: {status} on host-{host:03d}",
    }
    if status != "pass":
        payload["details"] = {"scanner": "bench-scanner/2.4", "duration_ms": 40 + spin, "attempt": 1 + spin % 2}
    return {
        "id": str(uuid.uuid4()),
        "stream": f"controls/{control.lower()}/host-{host:03d}",
        "type": "check.result",
        "occurred_at": when,
        "payload": payload,
    }


def build_log(ledger: Ledger, total: int) -> float:
    """Append ``total`` events with ``Ledger.append_batch``, 10,000 per call; the seconds spent appending.

    10,000 per call (the ``max_batch_events`` of the benchmark settings) is the fastest way the ledger offers
    to write a log: about 1.4 times the rate of 1,000 per call with this workload.
    """
    spent = Stopwatch()
    for start, count in batches(total, BUILD_BATCH):
        events = [check_event(n) for n in range(start, start + count)]
        with spent:
            ledger.append_batch(events, producer=PRODUCER)
    return spent.seconds


# --- the benchmark -----------------------------------------------------------------------------------


PROOFS = 1000  # random proofs timed, of each kind
PROOF_TARGET = Target(5, "ms", higher_is_better=False)


def _proof_latency(results: Any, ledger: Ledger, total: int) -> None:
    """Inclusion and consistency proofs over the whole log (``Ledger.inclusion_proof`` / ``consistency_proof``,
    each a read of its stored tree nodes and the hashing), for random seqs and sizes; the baseline is one primary
    key lookup of an entry's hash on the same database (a proof's floor is one such round trip)."""
    import random

    import sqlalchemy as sa

    rng = random.Random(20261202)
    timings: dict[str, list[float]] = {"inclusion": [], "consistency": [], "raw_lookup": []}
    lookup = sa.text("SELECT hash FROM entries WHERE log_id = :log AND seq = :seq")
    with ledger.recorder.engine.connect() as conn:
        for _ in range(PROOFS):
            seq = rng.randrange(total)
            began = time.perf_counter()
            conn.execute(lookup, {"log": ledger.log_id, "seq": seq}).scalar_one()
            timings["raw_lookup"].append(time.perf_counter() - began)
    for _ in range(PROOFS):
        seq, old = rng.randrange(total), rng.randrange(1, total)
        began = time.perf_counter()
        ledger.inclusion_proof(seq, total)
        timings["inclusion"].append(time.perf_counter() - began)
        began = time.perf_counter()
        ledger.consistency_proof(old, total)
        timings["consistency"].append(time.perf_counter() - began)
    for kind, seconds in timings.items():
        what = "one SELECT of an entry hash by primary key" if kind == "raw_lookup" else f"Ledger.{kind}_proof"
        for q in (50, 99):
            results.add(
                f"proofs.{kind}.p{q}_ms",
                percentile_ms(seconds, q),
                "ms",
                f"{what}, {PROOFS:,} random ones in a log of {total:,} entries",
            )


def run(ctx: Context) -> None:
    results, total = ctx.results, ctx.scale.seal_restore_entries
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger-bench-seal-")))
        data_dir, store_dir = tmp / "keys", tmp / "store"
        source = stack.enter_context(ctx.database("bench_seal_source"))
        ledger = stack.enter_context(new_ledger(source.superuser_url, data_dir))
        print(f"  building a log of {total:,} entries (in a measured child) ...", flush=True)
        built = _child(["build", "--url", source.superuser_url, "--data-dir", str(data_dir), "--entries", str(total)])
        results.add(
            BUILD,
            rate(total, built["seconds"]),
            ENTRIES_PER_S,
            f"Ledger.append_batch of {BUILD_BATCH:,} x {-(-total // BUILD_BATCH):,}: the log sealed below",
        )
        add_memory(results, BUILD, built, "imports + Ledger.open")
        expected_note = ledger.checkpoint(total)
        expected_root = ledger.root(total).hex()
        trusted = ledger.active_key().verifier_key
        _proof_latency(results, ledger, total)

        seal = _child(["seal", "--url", source.superuser_url, "--data-dir", str(data_dir), "--store", str(store_dir)])
        if seal["entries"] != total:
            raise RuntimeError(f"the seal covered {seal['entries']:,} entries, not {total:,}")
        segments = seal["segments"]
        results.add(
            SEAL,
            rate(total, seal["seconds"]),
            ENTRIES_PER_S,
            f"{total:,} entries, {segments} segments of {SEGMENT_ENTRIES:,} in {seal['seconds']:.1f} s",
        )
        store_bytes, objects = _tree_bytes(store_dir)
        results.add(
            "retention.store_mb",
            store_bytes / 1e6,
            MEGABYTES,
            f"{objects} files (objects and sidecars), {store_bytes / total:.0f} bytes per entry",
        )
        floor_seconds, floor_bytes = raw_read_gzip(source.superuser_url, ledger.log_id, total, tmp / "raw-gzip")
        results.add(
            SEAL_FLOOR,
            rate(total, floor_seconds),
            ENTRIES_PER_S,
            f"COPY TO STDOUT + gzip -6 + write/fsync per {SEGMENT_ENTRIES:,}; {floor_bytes / 1e6:.0f} MB gzipped",
        )
        add_memory(results, "retention.seal", seal, "imports + Ledger.open")

        with ctx.database("bench_restore_pg") as target:
            restored = _child(["restore", "--url", target.superuser_url, "--store", str(store_dir), "--key", trusted])
            _check_restored(target.superuser_url, restored, total, expected_note, expected_root)
        results.add(
            RESTORE_PG,
            rate(total, restored["seconds"]),
            ENTRIES_PER_S,
            f"{total:,} entries, {restored['segments']} segments, {restored['checkpoints']} checkpoints in "
            f"{restored['seconds']:.1f} s; checkpoint equals the source's",
        )
        add_memory(results, RESTORE_PG, restored, "imports")

        sqlite_url = f"sqlite:///{tmp / 'restored.sqlite3'}"
        restored = _child(["restore", "--url", sqlite_url, "--store", str(store_dir), "--key", trusted])
        _check_restored(sqlite_url, restored, total, expected_note, expected_root)
        results.add(
            RESTORE_SQLITE,
            rate(total, restored["seconds"]),
            ENTRIES_PER_S,
            f"{total:,} entries in {restored['seconds']:.1f} s (file, WAL, synchronous=FULL); "
            "checkpoint equals the source's",
        )
        add_memory(results, RESTORE_SQLITE, restored, "imports")
        (tmp / "restored.sqlite3").unlink(missing_ok=True)

        floor_db = stack.enter_context(ctx.database("bench_restore_floor"))
        floor = restore_floor(store_dir, trusted, floor_db.superuser_url, tmp / "floor.sqlite3")
        if floor["entries"] != total:
            raise RuntimeError(f"the restore floor read {floor['entries']:,} entries, not {total:,}")
        decode, verify = floor["decode"], floor["verify"]
        results.add(
            FLOOR_PG,
            rate(total, decode + verify + floor["copy"]),
            ENTRIES_PER_S,
            f"gunzip+parse {decode:.1f} s + verify {verify:.1f} s + COPY {floor['copy']:.1f} s",
        )
        results.add(
            FLOOR_SQLITE,
            rate(total, decode + verify + floor["sqlite"]),
            ENTRIES_PER_S,
            f"gunzip+parse {decode:.1f} s + verify {verify:.1f} s + executemany {floor['sqlite']:.1f} s",
        )
        results.add(
            "raw.restore.gunzip_parse",
            rate(total, decode),
            ENTRIES_PER_S,
            "read, gunzip, split and orjson-parse segment + payload objects",
        )
        results.add(
            "raw.restore.verify", rate(total, verify), ENTRIES_PER_S, f"Ed25519 verify, {VERIFY_THREADS} threads"
        )
        results.add("raw.restore.copy", rate(total, floor["copy"]), ENTRIES_PER_S, "binary COPY, one transaction")
        results.add(
            "raw.restore.sqlite_insert", rate(total, floor["sqlite"]), ENTRIES_PER_S, "executemany, one transaction"
        )
        # last: the export appends its pack.exported event to the log
        print(f"  exporting a pack of all {total:,} entries (in a measured child) ...", flush=True)
        exported = packs.child_command(
            ["export", "--url", source.superuser_url, "--data-dir", str(data_dir), "--out", str(tmp / "large.zip")]
        )
        if exported["disclosed"] != total:
            raise RuntimeError(f"the large pack disclosed {exported['disclosed']:,} entries, not {total:,}")
        results.add(
            PACK_LARGE,
            exported["seconds"],
            "s",
            f"export_pack of all {total:,} entries (each disclosed) in {exported['seconds']:.1f} s; "
            f"{(tmp / 'large.zip').stat().st_size / 1e6:.0f} MB",
        )
        add_memory(results, PACK_LARGE, exported, "imports + Ledger.open")
        (tmp / "large.zip").unlink()
        results.facts["seal_restore_entries"] = total
        results.facts["seal_restore_checkpoint_ok"] = True

    results.compare(SEAL, SEAL_FLOOR)
    results.compare("proofs.inclusion.p99_ms", "proofs.raw_lookup.p99_ms", PROOF_TARGET)
    results.compare("proofs.consistency.p99_ms", "proofs.raw_lookup.p99_ms", PROOF_TARGET)
    results.compare(RESTORE_PG, FLOOR_PG, RESTORE_TARGET)
    results.compare(RESTORE_SQLITE, FLOOR_SQLITE, RESTORE_TARGET)
    for figure in (BUILD, PACK_LARGE, SEAL, RESTORE_PG, RESTORE_SQLITE):
        results.compare(f"{figure}.peak_rss_mb", f"{figure}.rss_before_mb", RSS_TARGET)


def run_azurite(ctx: Context) -> None:
    """Seal a smaller log into Azurite, and the same log into a directory as the baseline."""
    from tests.services import blob_connection_string

    results, total = ctx.results, ctx.scale.seal_azurite_entries
    with contextlib.ExitStack() as stack:
        connection_string = stack.enter_context(blob_connection_string())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger-bench-seal-az-")))
        source = stack.enter_context(ctx.database("bench_seal_azurite"))
        ledger = stack.enter_context(new_ledger(source.superuser_url, tmp / "keys"))
        print(f"  building a log of {total:,} entries ...", flush=True)
        build_log(ledger, total)
        container = f"bench-seal-{uuid.uuid4().hex[:12]}"
        common = ["seal", "--url", source.superuser_url, "--data-dir", str(tmp / "keys")]
        azure = _child(
            [*common, "--store", f"azure:{container}", "--store-name", "bench-azure"],
            env={BLOB_ENV: connection_string},
        )
        directory = _child([*common, "--store", str(tmp / "store"), "--store-name", "bench-directory"])
    for figure, measured, where in (
        (SEAL_AZURITE, azure, f"Azurite container {container}, AzureBlobStore(worm=True)"),
        (SEAL_DIRECTORY_SMALL, directory, "FilesystemStore, the same log"),
    ):
        sealed = measured["entries"]  # the second seal also takes the first one's snapshot.sealed events
        if sealed < total:
            raise RuntimeError(f"{figure}: the seal covered {sealed:,} entries, not {total:,}")
        results.add(
            figure,
            rate(sealed, measured["seconds"]),
            ENTRIES_PER_S,
            f"{sealed:,} entries, {measured['segments']} segments in {measured['seconds']:.1f} s; {where}",
        )
    add_memory(results, SEAL_AZURITE, azure, "imports + Ledger.open")
    results.facts["seal_azurite_entries"] = total
    results.compare(SEAL_AZURITE, SEAL_DIRECTORY_SMALL)
    results.compare(f"{SEAL_AZURITE}.peak_rss_mb", f"{SEAL_AZURITE}.rss_before_mb", RSS_TARGET)


def _check_restored(url: str, restored: dict[str, Any], total: int, note: str, root: str) -> None:
    """The restored log must end at the source's size with the source's root and checkpoint."""
    from ledger.store.database import make_engine
    from ledger.store.recorder import SqlRecorder

    if restored["size"] != total or restored["entries"] != total:
        raise RuntimeError(f"restored {restored['entries']:,} entries (size {restored['size']:,}), not {total:,}")
    if restored["root"] != root:
        raise RuntimeError(f"restored root {restored['root']} differs from the source's {root}")
    if restored["checkpoint"] != note:
        raise RuntimeError("the restore's newest checkpoint differs from the source's checkpoint at that size")
    engine = make_engine(url)
    try:
        recorder = SqlRecorder(engine)
        head = recorder.get_log(ORIGIN)
        stored = recorder.checkpoints(head.log_id, total)
        count = recorder.count_entries(head.log_id)
    finally:
        engine.dispose()
    if head.size != total or count != total:
        raise RuntimeError(f"the restored database holds {count:,} entries (head size {head.size:,}), not {total:,}")
    if not stored or stored[-1].note != note:
        raise RuntimeError("the restored database's checkpoint differs from the source's checkpoint at that size")


def _tree_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


# --- the floors --------------------------------------------------------------------------------------


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_read_gzip(url: str, log_id: int, total: int, out: Path) -> tuple[float, int]:
    """Per segment: binary COPY of the joined entry and payload rows, gzip of those bytes, a fsynced file."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    spent = Stopwatch()
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        for first in range(0, total, SEGMENT_ENTRIES):
            last = min(first + SEGMENT_ENTRIES, total) - 1
            query = (
                "COPY (SELECT e.seq, e.body, e.hash, e.signature, e.key_id, p.salt, p.payload FROM entries e "
                "JOIN payloads p ON p.log_id = e.log_id AND p.seq = e.seq "
                f"WHERE e.log_id = {int(log_id)} AND e.seq BETWEEN {first} AND {last} ORDER BY e.seq) "
                "TO STDOUT (FORMAT BINARY)"
            )
            with spent:
                chunks = []
                with conn.cursor() as cursor, cursor.copy(query) as copy:
                    for chunk in copy:
                        chunks.append(bytes(chunk))
                data = gzip.compress(b"".join(chunks), compresslevel=6, mtime=0)
                _write_durably(out / f"{first:012d}-{last:012d}", data)
            written += len(data)
    return spent.seconds, written


FLOOR_TABLE = "raw_restore"
FLOOR_DDL = f"""
CREATE TABLE {FLOOR_TABLE} (
    seq bigint PRIMARY KEY,
    body bytea NOT NULL,
    hash bytea NOT NULL,
    signature bytea NOT NULL,
    key_id text NOT NULL,
    salt bytea,
    payload bytea
)
"""
FLOOR_COLUMNS = "seq, body, hash, signature, key_id, salt, payload"
FLOOR_COPY = f"COPY {FLOOR_TABLE} ({FLOOR_COLUMNS}) FROM STDIN (FORMAT BINARY)"
FLOOR_TYPES = ["int8", "bytea", "bytea", "bytea", "text", "bytea", "bytea"]


def _decode_objects(segment: bytes, payloads: bytes) -> list[tuple[Any, ...]]:
    """Rows (seq, body, hash, signature, key_id, salt, payload) from a segment and its payload object."""
    b64decode, fromhex, loads = base64.b64decode, bytes.fromhex, orjson.loads
    entry_lines = gzip.decompress(segment).split(b"\n")[1:-1]
    payload_lines = gzip.decompress(payloads).split(b"\n")[1:-1]
    rows = []
    for entry_line, payload_line in zip(entry_lines, payload_lines, strict=True):
        entry, payload = loads(entry_line), loads(payload_line)
        rows.append(
            (
                entry["seq"],
                entry["body"].encode(),
                fromhex(entry["hash"]),
                b64decode(entry["sig"]),
                entry["key"],
                fromhex(payload["salt"]),
                payload["payload"].encode(),
            )
        )
    return rows


def _verify_part(public: Any, rows: Sequence[tuple[Any, ...]]) -> int:
    from nacl.exceptions import BadSignatureError

    bad = 0
    verify = public.verify
    for row in rows:
        try:
            verify(row[1], row[3])
        except BadSignatureError:
            bad += 1
    return bad


def restore_floor(store_dir: Path, verifier_key: str, pg_url: str, sqlite_path: Path) -> dict[str, Any]:
    """The raw work of a restore, timed in parts: decode, verify, then write into PostgreSQL and SQLite."""
    from nacl.signing import VerifyKey

    from ledger.notes import parse_verifier_key
    from retention.segments import PAYLOADS, SEGMENTS, log_prefix
    from retention.stores.filesystem import FilesystemStore

    store = FilesystemStore(store_dir)
    public = VerifyKey(parse_verifier_key(verifier_key).public_key)
    prefix = log_prefix(ORIGIN)
    names = sorted(o.name for o in store.list(f"{prefix}{SEGMENTS}/"))
    decode, verify, copy_time, sqlite_time = Stopwatch(), Stopwatch(), Stopwatch(), Stopwatch()
    entries = bad = 0
    pool = ThreadPoolExecutor(VERIFY_THREADS)
    lite = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        with psycopg.connect(conninfo(pg_url)) as conn:
            conn.execute(FLOOR_DDL)
            conn.commit()
            lite.execute("PRAGMA journal_mode=WAL")
            lite.execute("PRAGMA synchronous=FULL")
            lite.execute(FLOOR_DDL.replace("bigint", "INTEGER").replace("bytea", "BLOB"))
            insert = f"INSERT INTO {FLOOR_TABLE} ({FLOOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            lite.execute("BEGIN IMMEDIATE")
            for name in names:
                with decode:
                    rows = _decode_objects(store.get(name), store.get(name.replace(f"/{SEGMENTS}/", f"/{PAYLOADS}/")))
                with verify:
                    size = -(-len(rows) // VERIFY_THREADS)
                    parts = [rows[i : i + size] for i in range(0, len(rows), size)]
                    bad += sum(pool.map(lambda part: _verify_part(public, part), parts))
                with copy_time, conn.cursor() as cursor, cursor.copy(FLOOR_COPY) as copy:
                    copy.set_types(FLOOR_TYPES)
                    for row in rows:
                        copy.write_row(row)
                with sqlite_time:
                    lite.executemany(insert, rows)
                entries += len(rows)
            with copy_time:
                conn.commit()
            with sqlite_time:
                lite.execute("COMMIT")
    finally:
        lite.close()
        pool.shutdown()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    if bad:
        raise RuntimeError(f"the restore floor found {bad} bad signatures")
    return {
        "entries": entries,
        "decode": decode.seconds,
        "verify": verify.seconds,
        "copy": copy_time.seconds,
        "sqlite": sqlite_time.seconds,
    }


# --- the measured children ---------------------------------------------------------------------------


def _child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.seal_restore", *args]
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {args[0]} child failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _own_peak_mb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _peak() -> tuple[float, str]:
    own = _own_peak_mb()
    return (own, "VmHWM") if own is not None else (peak_rss_mb(), "getrusage")


def _open_store(spec: str) -> ObjectStore:
    if spec.startswith("azure:"):
        from retention.stores.azure_blob import AzureBlobStore

        return AzureBlobStore(os.environ[BLOB_ENV], container=spec.partition(":")[2], worm=True)
    from retention.stores.filesystem import FilesystemStore

    return FilesystemStore(Path(spec))


def child_seal(url: str, data_dir: Path, spec: str, store_name: str) -> dict[str, Any]:
    from ledger.service import Ledger
    from retention.sealing import SealConfig, Sealer

    ledger = Ledger.open(ledger_settings(data_dir, url), ORIGIN, run_migrations=False)
    try:
        sealer = Sealer(ledger, _open_store(spec), store_name, SealConfig(every_entries=SEGMENT_ENTRIES))
        before, source = _peak()
        began = time.perf_counter()
        report = sealer.run_once(force=True)
        seconds = time.perf_counter() - began
        peak, _ = _peak()
    finally:
        ledger.recorder.engine.dispose()
    return {
        "seconds": seconds,
        "segments": len(report.sealed),
        "entries": sum(r.last - r.first + 1 for r in report.sealed),
        "before_mb": before,
        "peak_mb": peak,
        "memory_source": source,
    }


def child_build(url: str, data_dir: Path, total: int) -> dict[str, Any]:
    from ledger.service import Ledger

    ledger = Ledger.open(ledger_settings(data_dir, url), ORIGIN, run_migrations=False)
    try:
        before, source = _peak()
        seconds = build_log(ledger, total)
        peak, _ = _peak()
    finally:
        ledger.recorder.engine.dispose()
    return {"seconds": seconds, "before_mb": before, "peak_mb": peak, "memory_source": source}


def child_restore(url: str, spec: str, key: str) -> dict[str, Any]:
    from retention.restore import restore

    store = _open_store(spec)
    before, source = _peak()
    began = time.perf_counter()
    report = restore(store, url, trusted_keys=[key])
    seconds = time.perf_counter() - began
    peak, _ = _peak()
    return {
        "seconds": seconds,
        "entries": report.entries,
        "segments": report.segments,
        "checkpoints": report.checkpoints,
        "size": report.size,
        "root": report.root,
        "checkpoint": report.checkpoint,
        "before_mb": before,
        "peak_mb": peak,
        "memory_source": source,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seal_restore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    seal = sub.add_parser("seal", help="seal the whole log (run_once(force=True)), timed")
    seal.add_argument("--url", required=True)
    seal.add_argument("--data-dir", required=True, type=Path)
    seal.add_argument("--store", required=True, help="a directory, or azure:CONTAINER (connection string in env)")
    seal.add_argument("--store-name", default=STORE_NAME)
    build = sub.add_parser("build", help="append the benchmark's log to an existing empty ledger, timed")
    build.add_argument("--url", required=True)
    build.add_argument("--data-dir", required=True, type=Path)
    build.add_argument("--entries", required=True, type=int)
    again = sub.add_parser("restore", help="restore the store into a fresh database, timed")
    again.add_argument("--url", required=True)
    again.add_argument("--store", required=True)
    again.add_argument("--key", required=True, help="the log's verifier key (trusted anchor)")
    args = parser.parse_args(argv)
    if args.command == "seal":
        measured = child_seal(args.url, args.data_dir, args.store, args.store_name)
    elif args.command == "build":
        measured = child_build(args.url, args.data_dir, args.entries)
    else:
        measured = child_restore(args.url, args.store, args.key)
    print(json.dumps(measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
