"""Backup drill: a ``pg_dump``/``pg_restore`` copy and a Blob restore both verify to the same signed checkpoint.

A PostgreSQL ledger in the production layout (the superuser owns the schema, ``ledger_app`` appends) gets 610
entries on six streams, with a key rotation and many stored checkpoints.  Its latest signed checkpoint note and
root are taken, then the database is dumped with ``pg_dump`` (custom format) and the log is sealed into an Azurite
container.  Each drill rebuilds the log in a fresh database on the same server, one with ``pg_restore`` and one
with ``ledger restore`` from the container, runs the full audit, and compares the restored log's stored signed
checkpoint with the original byte for byte, its root at that size, and a new append that has to continue the
chain.  A last drill changes one byte of one entry in a ``pg_restore`` copy and checks that the audit names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ledger import merkle
from ledger.notes import open_checkpoint, parse_verifier_key
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.records import CheckpointRecord
from retention.sealing import SealConfig, Sealer
from retention.stores.azure_blob import AzureBlobStore
from tests import services
from tests.sealing_helpers import (
    RawContainer,
    change_one_character,
    check_event,
    event_id,
    fresh_container_name,
    mixed_event,
    run_cli,
)

ORIGIN = "drill.bank.example/evidence"
STORE_NAME = "azure-blob"
BATCHES = ((0, 150), (150, 150), (300, 150), (450, 150))  # (first event number, count)
ROTATE_AFTER = 300  # the key.rotated entry is seq 300, between the second and the third batch
SINGLES = 9  # single appends after the batches: each stores its own checkpoint
SIZE = 600 + 1 + SINGLES  # 610 entries
SEGMENT_ENTRIES = 250  # segments 0..249, 250..499, 500..609
TAMPERED_SEQ = 437
CHECK_STREAMS = 3  # check results go to controls/host-000 .. controls/host-002
TOOL_TIMEOUT = 120  # seconds for one pg_dump or pg_restore run


def drill_event(number: int) -> dict[str, Any]:
    """Mostly check results on three host streams, with approvals (carrying subjects) and incident events."""
    event = mixed_event(number)
    if event["type"] == "check.result":
        event["stream"] = f"controls/host-{number % CHECK_STREAMS:03d}"
    return event


@dataclass(frozen=True)
class Original:
    """The source log and what it held when it was dumped and sealed (values taken then, not re-read)."""

    ledger: Ledger
    data_dir: Path
    first_key: str
    final_key: str
    size: int
    root: bytes
    head_hash: bytes
    note: str
    checkpoints: list[CheckpointRecord]  # every stored checkpoint at the dump
    streams: dict[str, int]  # stream -> entries in it
    dump: Path
    container: str
    connection_string: str


# --- PostgreSQL client tools ------------------------------------------------------------------------------


def pg_tool(name: str) -> Path:
    """``pg_dump`` or ``pg_restore``: beside the server binaries the test services use, else on PATH."""
    candidates: list[Path] = []
    with contextlib.suppress(services.ServiceUnavailableError):
        candidates.append(services.postgres_bindir() / name)
    if found := shutil.which(name):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"{name} not found beside initdb/pg_ctl or on PATH; {services.INSTALL_HINT}", pytrace=False)


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for a SQLAlchemy URL, and the environment carrying its password (not argv)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def run_tool(name: str, *args: str, url: str) -> None:
    conninfo, env = libpq_target(url)
    argv = [str(pg_tool(name)), "--no-password", f"--dbname={conninfo}", *args]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TOOL_TIMEOUT, check=False)
    assert done.returncode == 0, f"{name} exited with {done.returncode}:\n{done.stderr}"


def pg_dump(superuser_url: str, out: Path) -> None:
    run_tool("pg_dump", "--format=custom", f"--file={out}", url=superuser_url)
    assert out.read_bytes()[:5] == b"PGDMP", "pg_dump did not write a custom-format archive"


def pg_restore(dump: Path, superuser_url: str) -> None:
    run_tool("pg_restore", "--exit-on-error", "--single-transaction", str(dump), url=superuser_url)


# --- the source log ----------------------------------------------------------------------------------------


def fill(ledger: Ledger) -> None:
    for first, count in BATCHES:
        if first == ROTATE_AFTER:
            ledger.rotate_key("drill rotation")
        producer = ("iam-scanner", "backup-monitor", "change-board")[first // 150 % 3]
        ledger.append_batch([drill_event(n) for n in range(first, first + count)], producer)
    for number in range(600, 600 + SINGLES):
        ledger.append(drill_event(number), "iam-scanner")


@pytest.fixture(scope="module")
def original(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: services.PostgresServer, blob_connection_string: str
) -> Iterator[Original]:
    base = tmp_path_factory.mktemp("backup-drill")
    container = fresh_container_name("backup-drill")
    with postgres_server.database("drill_source") as database:
        services.production_layout(database, postgres_server.app_role)
        ledger = Ledger.create(Settings(data_dir=base / "data", database_url=database.url), ORIGIN)
        try:
            first_key = ledger.active_key().verifier_key
            fill(ledger)
            head = ledger.head()
            assert head.size == SIZE
            audit = ledger.audit()
            assert audit.findings == [] and audit.entries_checked == SIZE
            latest = ledger.recorder.latest_checkpoint(ledger.log_id)
            assert latest is not None and latest.size == SIZE
            streams: dict[str, int] = {}
            for entry in ledger.entries():
                streams[entry.stream] = streams.get(entry.stream, 0) + 1
            assert len(streams) == 6, streams  # three host streams, approvals, one incident, the key stream
            checkpoints = ledger.recorder.checkpoints(ledger.log_id)

            dump = base / "ledger.dump"
            pg_dump(database.superuser_url, dump)

            # Sealing appends snapshot.sealed events to the source after the dump (and signs checkpoints at
            # segment ends); the container holds entries 0 .. SIZE - 1 and the checkpoint of size SIZE, the
            # state the dump holds too.
            store = AzureBlobStore(blob_connection_string, container=container)
            report = Sealer(ledger, store, STORE_NAME, SealConfig(every_entries=SEGMENT_ENTRIES)).run_once(force=True)
            assert [(r.first, r.last) for r in report.sealed] == [(0, 249), (250, 499), (500, SIZE - 1)]

            yield Original(
                ledger=ledger,
                data_dir=base / "data",
                first_key=first_key,
                final_key=ledger.active_key().verifier_key,
                size=SIZE,
                root=ledger.root(SIZE),
                head_hash=head.head_hash,
                note=latest.note,
                checkpoints=checkpoints,
                streams=streams,
                dump=dump,
                container=container,
                connection_string=blob_connection_string,
            )
        finally:
            ledger.recorder.engine.dispose()
            with contextlib.suppress(ResourceNotFoundError):  # absent when the fixture failed before sealing
                RawContainer(blob_connection_string, container).drop()


# --- checks shared by the drills ---------------------------------------------------------------------------


def open_restored(original: Original, url: str) -> Ledger:
    """The restored log as the application sees it: its role, the source's key files and subject secret."""
    return Ledger.open(Settings(data_dir=original.data_dir, database_url=url), ORIGIN)


def assert_same_signed_checkpoint(original: Original, restored: Ledger) -> None:
    head = restored.head()
    assert head.size == original.size
    assert head.head_hash == original.head_hash
    assert restored.active_key().verifier_key == original.final_key

    audit = restored.audit()
    assert audit.findings == []
    assert audit.ok and audit.entries_checked == original.size
    assert audit.root == original.root.hex()

    # Read the stored row: Ed25519 signatures are deterministic, so a note signed afresh by the same key would
    # be byte-identical and hide a checkpoint lost in the copy.
    latest = restored.recorder.latest_checkpoint(restored.log_id)
    assert latest is not None, "the restored database holds no signed checkpoint"
    assert latest.note.encode("utf-8") == original.note.encode("utf-8")
    assert (latest.size, latest.root) == (original.size, original.root)
    assert restored.checkpoint() == original.note
    assert restored.root(original.size) == original.root

    # The note verifies with the log's published key alone and states the size and root rebuilt above.
    checkpoint, _ = open_checkpoint(latest.note, [parse_verifier_key(original.final_key)], origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root) == (original.size, original.root)


def assert_append_continues_the_chain(original: Original, restored: Ledger) -> None:
    event = {**check_event(900), "id": event_id(900), "stream": "controls/host-001"}
    entry = restored.append(event, "after-restore").entry

    assert entry.seq == original.size
    assert json.loads(entry.body)["prev"] == original.head_hash.hex()
    assert entry.stream_seq == original.streams["controls/host-001"]
    assert entry.key_id == restored.active_key().key_id

    new_root = restored.root(original.size + 1)
    proof = restored.consistency_proof(original.size, original.size + 1)
    merkle.verify_consistency(original.size, original.size + 1, original.root, new_root, proof.hashes)
    note = restored.checkpoint()
    checkpoint, _ = open_checkpoint(note, [parse_verifier_key(original.final_key)], origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root) == (original.size + 1, new_root)

    audit = restored.audit()
    assert audit.findings == []
    assert audit.entries_checked == original.size + 1


def scalar(url: str, query: str, **params: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query), params).scalar_one()
    finally:
        engine.dispose()


# --- the drills --------------------------------------------------------------------------------------------


def test_the_original_checkpoint_is_signed_over_the_whole_log(original: Original) -> None:
    checkpoint, _ = open_checkpoint(original.note, [parse_verifier_key(original.final_key)], origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root) == (SIZE, original.root)
    assert original.ledger.checkpoint(SIZE) == original.note
    assert len(original.checkpoints) >= 1 + len(BATCHES) + SINGLES  # one per append, the rotation's hand-over
    assert original.ledger.entry(ROTATE_AFTER).type == "key.rotated"
    assert original.first_key != original.final_key


def test_pg_dump_and_pg_restore_verify_to_the_same_signed_checkpoint(
    original: Original, postgres_server: services.PostgresServer
) -> None:
    with postgres_server.database("drill_pg_restore") as target:
        pg_restore(original.dump, target.superuser_url)
        restored = open_restored(original, target.url)
        try:
            assert_same_signed_checkpoint(original, restored)
            # A dump carries every stored checkpoint, not only the latest one.
            assert restored.recorder.checkpoints(restored.log_id) == original.checkpoints

            # The append-only protections came back with the schema: no UPDATE grant, and the trigger.
            role = postgres_server.app_role
            assert scalar(target.superuser_url, "SELECT has_table_privilege(:r, 'entries', 'UPDATE')", r=role) is False
            assert scalar(target.superuser_url, "SELECT has_table_privilege(:r, 'entries', 'INSERT')", r=role) is True
            with pytest.raises(DBAPIError, match="permission denied"):
                scalar(target.url, "UPDATE entries SET producer = 'x' WHERE seq = 0 RETURNING seq")

            assert_append_continues_the_chain(original, restored)
        finally:
            restored.recorder.engine.dispose()


def test_blob_restore_verifies_to_the_same_signed_checkpoint(
    original: Original, postgres_server: services.PostgresServer, tmp_path: Path
) -> None:
    with postgres_server.database("drill_blob_restore") as target:
        env = {"LEDGER_DATA_DIR": str(tmp_path / "cli"), "LEDGER_BLOB_CONNECTION_STRING": original.connection_string}
        result = run_cli(
            "restore",
            "--from",
            f"azure:{original.container}",
            "--into",
            target.superuser_url,
            "--key",
            original.first_key,  # pinned: the restore has to follow the key.rotated entry to the second key
            "--json",
            env=env,
        )
        assert result.code == 0, result.output
        report = json.loads(result.stdout)
        assert not [note for note in report["notes"] if "trusting key" in note], report["notes"]  # pinned
        assert (report["origin"], report["entries"], report["size"]) == (ORIGIN, SIZE, SIZE)
        assert (report["segments"], report["checkpoints"]) == (3, 3)
        assert report["root"] == original.root.hex()
        assert report["checkpoint"] == original.note

        services.production_layout(target, postgres_server.app_role)  # the restore ran as the superuser: grant as usual
        restored = open_restored(original, target.url)
        try:
            assert_same_signed_checkpoint(original, restored)
            assert_append_continues_the_chain(original, restored)
        finally:
            restored.recorder.engine.dispose()


def test_one_byte_changed_in_the_pg_restore_copy_is_named_by_the_audit(
    original: Original, postgres_server: services.PostgresServer
) -> None:
    with postgres_server.database("drill_pg_tamper") as target:
        pg_restore(original.dump, target.superuser_url)
        restored = open_restored(original, target.url)
        try:
            assert restored.audit().findings == []

            engine = create_engine(target.superuser_url)
            try:
                select_body = text("SELECT body FROM entries WHERE seq = :seq")
                update_body = text("UPDATE entries SET body = :body WHERE seq = :seq")
                with engine.connect() as conn:
                    body = bytes(conn.execute(select_body, {"seq": TAMPERED_SEQ}).scalar_one())
                # Move the event's time by one digit of occurred_at: one byte, still valid canonical JSON.
                forged = change_one_character(body.decode("utf-8"), '"occurred_at":"2026-10-01T').encode("utf-8")
                assert len(forged) == len(body)
                assert sum(a != b for a, b in zip(body, forged, strict=True)) == 1

                refused = pytest.raises(DBAPIError, match="append-only")  # the restored trigger, even to a superuser
                with refused, engine.begin() as conn:
                    conn.execute(update_body, {"body": forged, "seq": TAMPERED_SEQ})
                with engine.begin() as conn:  # as the superuser, triggers off: what an administrator could do
                    conn.execute(text("SET session_replication_role = replica"))
                    conn.execute(update_body, {"body": forged, "seq": TAMPERED_SEQ})
            finally:
                engine.dispose()

            report = restored.audit()
            assert not report.ok
            named = {(f.seq, f.code) for f in report.findings}
            assert (TAMPERED_SEQ, "hash-mismatch") in named, report.findings
            assert (TAMPERED_SEQ, "bad-signature") in named, report.findings
            assert min(f.seq for f in report.findings if f.seq is not None) == TAMPERED_SEQ
        finally:
            restored.recorder.engine.dispose()
