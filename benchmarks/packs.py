"""``packs.build_verify``: export an evidence pack of a large log and verify it offline, against raw floors.

- ``packs.build``: ``export_pack(ledger, out, PackScope(stream_prefixes=("controls",)), exporter="bench")`` over a
  PostgreSQL-backed log of ``Scale.pack_entries`` entries, every one of them in scope (so every entry is
  disclosed with its body, signature and payload), in a child process (``python -m benchmarks.packs export``)
  that times the one call and reads its own RSS high-water mark (``VmHWM``) before and after it.
- ``raw.read_zip``: the floor for that: one binary ``COPY (SELECT ...) TO STDOUT`` of the same entry and payload
  columns (entries joined with payloads), streamed into one deflate member (level 6, as the pack) of a ZIP file.
- ``packs.verify``: the offline verifier as shipped (``ledger/packs/verifier.py``) run on that pack in a child
  process in isolated mode (``python -I``), from an empty directory, loaded from its file path, its ``main``
  (``PACK --key VKEY``) timed; entries of the pack per second.  The child reads its ``VmHWM`` too.
  It checks entry signatures with libsodium where PyNaCl is installed (as here) and OpenSSL confirms every refusal.
- ``packs.verify.cryptography_only``: the same with ``--cryptography-only``: every signature by ``cryptography``,
  as on an auditor's machine with nothing but ``cryptography`` installed.
- ``raw.libsodium_verify`` and ``raw.ed25519_verify``: the floors for those: PyNaCl's ``crypto_sign_open`` and
  ``cryptography``'s ``Ed25519PublicKey.verify`` of the same bodies and signatures (read from the pack untimed), one
  thread; ``.2_threads``: the same on two threads, the ceiling for a verifier that checks in parallel.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import psycopg

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
    make_event,
    new_ledger,
    peak_rss_mb,
    rate,
)

ROOT = Path(__file__).resolve().parents[1]
VERIFIER = ROOT / "ledger" / "packs" / "verifier.py"
ENTRIES_PER_S = "entries/s"
SECONDS = "s"
BUILD_BATCH = 10_000  # the max_batch_events of the benchmark settings
SCOPE_PREFIX = "controls"  # every event of the workload is on controls/iam-01/host-NNN

BUILD = "packs.build"
BUILD_FLOOR = "raw.read_zip"
VERIFY = "packs.verify"
VERIFY_CRYPTOGRAPHY = "packs.verify.cryptography_only"
VERIFY_FLOOR = "raw.libsodium_verify"
VERIFY_CRYPTOGRAPHY_FLOOR = "raw.ed25519_verify"
BUILD_TARGET = Target(20, SECONDS, higher_is_better=False)
VERIFY_TARGET = Target(15_000, ENTRIES_PER_S)
RSS_TARGET = Target(300, MEGABYTES, higher_is_better=False)


def pack_event(n: int) -> dict[str, Any]:
    """The harness's check result ``n``, failing one time in 17 so that the report has more than one outcome."""
    event = make_event(n)
    if n % 17 == 0:
        event["payload"]["status"] = "fail"
    return event


def build_log(ledger: Any, total: int) -> float:
    """``Ledger.append_batch`` of 10,000 events per call; the seconds spent appending."""
    spent = Stopwatch()
    for start, count in batches(total, BUILD_BATCH):
        events = [pack_event(n) for n in range(start, start + count)]
        with spent:
            ledger.append_batch(events, producer=PRODUCER)
    return spent.seconds


def run(ctx: Context) -> None:
    results, total = ctx.results, ctx.scale.pack_entries
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger-bench-packs-")))
        data_dir = tmp / "keys"
        database = stack.enter_context(ctx.database("bench_packs"))
        ledger = stack.enter_context(new_ledger(database.superuser_url, data_dir))
        print(f"  building a log of {total:,} entries ...", flush=True)
        build_seconds = build_log(ledger, total)
        results.add(
            "packs.build_log",
            rate(total, build_seconds),
            ENTRIES_PER_S,
            f"Ledger.append_batch of {BUILD_BATCH:,} x {-(-total // BUILD_BATCH):,}: the log exported below",
        )
        verifier_key = ledger.active_key().verifier_key
        pack_path = tmp / "pack.zip"

        built = child_command(
            ["export", "--url", database.superuser_url, "--data-dir", str(data_dir), "--out", str(pack_path)]
        )
        if (built["first_seq"], built["last_seq"], built["disclosed"]) != (0, total - 1, total):
            raise RuntimeError(f"the pack covers {built['first_seq']}..{built['last_seq']}, not 0..{total - 1}")
        size = pack_path.stat().st_size
        results.add(
            BUILD,
            built["seconds"],
            SECONDS,
            f"{total:,} entries disclosed, checkpoint of size {built['tree_size']:,}; {total / built['seconds']:,.0f} "
            "entries/s",
        )
        results.add("packs.zip_mb", size / 1e6, MEGABYTES, f"the pack's ZIP, {size / total:.0f} bytes per entry")
        add_memory(results, BUILD, built, "imports + Ledger.open")

        floor_seconds, floor_bytes = raw_read_zip(database.superuser_url, ledger.log_id, total, tmp / "raw.zip")
        results.add(
            BUILD_FLOOR,
            floor_seconds,
            SECONDS,
            f"COPY TO STDOUT of {total:,} joined rows into one deflate-6 ZIP member; {floor_bytes / 1e6:.0f} MB; "
            f"{total / floor_seconds:,.0f} entries/s",
        )

        for figure, options, how in (
            (VERIFY, [], "libsodium where installed, OpenSSL confirms refusals"),
            (VERIFY_CRYPTOGRAPHY, ["--cryptography-only"], "cryptography alone"),
        ):
            verified = _verify_child(pack_path, verifier_key, tmp / f"auditor-{len(options)}", options)
            if verified["exit"] != 0:
                raise RuntimeError(f"the offline verifier exited {verified['exit']}: {verified['output'][-2000:]}")
            results.add(
                figure,
                rate(total, verified["seconds"]),
                ENTRIES_PER_S,
                f"{total:,} entries in {verified['seconds']:.1f} s (verify.py main, python -I, {how}; VALID)",
            )
            add_memory(results, figure, verified, "interpreter start + loading verifier.py")

        for floor, library, call in (
            (VERIFY_FLOOR, "libsodium", "PyNaCl crypto_sign_open"),
            (VERIFY_CRYPTOGRAPHY_FLOOR, "cryptography", "Ed25519PublicKey.verify"),
        ):
            results.add(
                floor,
                rate(total, raw_verify(pack_path, verifier_key, library=library)),
                ENTRIES_PER_S,
                f"{call} of the same bodies, one thread",
            )
            results.add(
                f"{floor}.2_threads",
                rate(total, raw_verify(pack_path, verifier_key, threads=2, library=library)),
                ENTRIES_PER_S,
                "the same on two threads: the ceiling on this machine for a verifier that verifies in parallel",
            )
        results.facts["pack_entries"] = total
        results.facts["pack_verdict"] = "VALID"

    results.compare(BUILD, BUILD_FLOOR, BUILD_TARGET)
    results.compare(f"{BUILD}.peak_rss_mb", f"{BUILD}.rss_before_mb", RSS_TARGET)
    results.compare(VERIFY, VERIFY_FLOOR, VERIFY_TARGET)
    results.compare(f"{VERIFY}.peak_rss_mb", f"{VERIFY}.rss_before_mb", RSS_TARGET)
    results.compare(VERIFY_CRYPTOGRAPHY, VERIFY_CRYPTOGRAPHY_FLOOR, VERIFY_TARGET)
    results.compare(f"{VERIFY_CRYPTOGRAPHY}.peak_rss_mb", f"{VERIFY_CRYPTOGRAPHY}.rss_before_mb", RSS_TARGET)


# --- the floors --------------------------------------------------------------------------------------


def raw_read_zip(url: str, log_id: int, total: int, out: Path) -> tuple[float, int]:
    """The same rows read raw (binary COPY of entries joined with payloads) and deflated into a ZIP member."""
    query = (
        "COPY (SELECT e.seq, e.body, e.hash, e.signature, e.key_id, p.salt, p.payload FROM entries e "
        "JOIN payloads p ON p.log_id = e.log_id AND p.seq = e.seq "
        f"WHERE e.log_id = {int(log_id)} AND e.seq BETWEEN 0 AND {total - 1} ORDER BY e.seq) "
        "TO STDOUT (FORMAT BINARY)"
    )
    spent = Stopwatch()
    written = 0
    conn = psycopg.connect(conninfo(url), autocommit=True)  # connected untimed
    try:
        with (
            spent,
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive,
            archive.open("entries.bin", "w") as member,
            conn.cursor() as cursor,
            cursor.copy(query) as copy,
        ):
            for chunk in copy:
                member.write(chunk)
                written += len(chunk)
    finally:
        conn.close()
    out.unlink()
    return spent.seconds, written


def raw_verify(pack: Path, verifier_key: str, threads: int = 1, library: str = "cryptography") -> float:
    """Ed25519 verification of every disclosed body of the pack with ``cryptography`` or libsodium directly (parsed
    untimed), on ``threads`` threads (both release the GIL while they verify)."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from nacl.bindings import crypto_sign_open
    from nacl.exceptions import BadSignatureError

    from ledger.notes import parse_verifier_key

    public_bytes = parse_verifier_key(verifier_key).public_key
    public = Ed25519PublicKey.from_public_bytes(public_bytes)
    with zipfile.ZipFile(pack) as archive:
        lines = archive.read("entries.jsonl").splitlines()
    pairs = []
    for line in lines:
        entry = orjson.loads(line)
        if entry["disclosed"]:
            pairs.append((entry["body"].encode(), base64.b64decode(entry["sig"])))
    del lines

    def part(chunk: list[tuple[bytes, bytes]]) -> int:
        verify, bad = public.verify, 0
        for body, signature in chunk:
            try:
                verify(signature, body)
            except InvalidSignature:
                bad += 1
        return bad

    def sodium_part(chunk: list[tuple[bytes, bytes]]) -> int:
        bad = 0
        for body, signature in chunk:
            try:
                crypto_sign_open(signature + body, public_bytes)
            except BadSignatureError:
                bad += 1
        return bad

    size = -(-len(pairs) // threads)
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    with ThreadPoolExecutor(threads) as pool:
        began = time.perf_counter()
        bad = sum(pool.map(sodium_part if library == "libsodium" else part, chunks))
        seconds = time.perf_counter() - began
    if bad:
        raise RuntimeError(f"raw verification found {bad} bad signatures")
    return seconds


# --- the measured children ---------------------------------------------------------------------------


def child_command(args: list[str]) -> dict[str, Any]:
    """Run ``python -m benchmarks.packs ARGS`` (a measured child) and return the JSON it printed last."""
    argv = [sys.executable, "-m", "benchmarks.packs", *args]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {args[0]} child failed ({done.returncode}): {done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# Run in the verify child with `python -I` from an empty directory: loads the verifier from its file (nothing of the
# repository is importable by name there but through the editable install, which verifier.py does not use), times
# its main() and reads the process's own VmHWM before and after.
_VERIFY_CHILD = """
import io, json, runpy, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None
path, pack, key = sys.argv[1:4]
module = runpy.run_path(path, run_name="verify")
before = hwm()
out = io.StringIO()
stdout, sys.stdout = sys.stdout, out
began = time.perf_counter()
code = module["main"]([pack, "--key", key, *sys.argv[4:]])
seconds = time.perf_counter() - began
sys.stdout = stdout
print(json.dumps({"seconds": seconds, "exit": code, "before_mb": before, "peak_mb": hwm(),
                  "memory_source": "VmHWM", "output": out.getvalue()[-4000:]}))
"""


def _verify_child(pack: Path, verifier_key: str, folder: Path, options: Sequence[str] = ()) -> dict[str, Any]:
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LEDGER_"))}
    argv = [sys.executable, "-I", "-c", _VERIFY_CHILD, str(VERIFIER), str(pack), verifier_key, *options]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the verify child failed ({done.returncode}): {done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _own_peak_mb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _peak() -> tuple[float, str]:
    own = _own_peak_mb()
    return (own, "VmHWM") if own is not None else (peak_rss_mb(), "getrusage")


def child_export(url: str, data_dir: Path, out: Path) -> dict[str, Any]:
    from ledger.packs.build import PackScope, export_pack
    from ledger.service import Ledger

    ledger = Ledger.open(ledger_settings(data_dir, url), ORIGIN, run_migrations=False)
    try:
        scope = PackScope(stream_prefixes=(SCOPE_PREFIX,))
        before, source = _peak()
        began = time.perf_counter()
        result = export_pack(ledger, out, scope, exporter="bench")
        seconds = time.perf_counter() - began
        peak, _ = _peak()
    finally:
        ledger.recorder.engine.dispose()
    return {
        "seconds": seconds,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "tree_size": result.tree_size,
        "disclosed": result.disclosed,
        "sha256": result.sha256,
        "before_mb": before,
        "peak_mb": peak,
        "memory_source": source,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.packs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export a pack of every entry under controls/, timed")
    export.add_argument("--url", required=True)
    export.add_argument("--data-dir", required=True, type=Path)
    export.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    measured = child_export(args.url, args.data_dir, args.out)
    sys.stdout.write(json.dumps(measured) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
