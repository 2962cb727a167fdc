"""Tamper drill on PostgreSQL: a single-field change to each of 1,000 random entries, every one named by seq.

A log of 3,001 entries (3,000 events in batches of 100, each batch signing a checkpoint, and a key rotation
after the first 1,500) is built in the production layout: the superuser owns the schema, ``ledger_app``
appends.  As the superuser, with the append-only triggers bypassed (``session_replication_role = replica``),
one field of each of 1,000 distinct entries picked with a fixed seed is changed: a byte of the signed body
(inside ``payload_digest``, ``producer`` or ``prev``), of the stored hash, of the signature, the key id (to an
unpublished key or to the log's other key), the payload bytes, the salt, the payload removed without an
erasure record, or one of the query columns the auditor compares with the body.

The audit (``Ledger.audit()`` and ``ledger verify --json``) must then report exactly the findings a model of
the changes predicts: the direct ones at every tampered seq, and, for a change that alters an entry's leaf
hash (a body byte), only what follows from it: the next entry's ``prev`` link, the stored tree nodes and the
signed checkpoints covering that leaf, and the log head.  The audit keeps at most ``MAX_FINDINGS`` findings;
the drill stays far below it, and asserts so, so every report compared here is complete.

Forks: two signed checkpoints of one size with different roots, within the log, are covered by
``tests/contract/test_tamper.py::test_a_forked_checkpoint`` (SQLite and PostgreSQL).  Here a small log gets a
validly signed checkpoint that no consistency proof joins to an earlier signed one, while every entry it
covers checks clean: the audit names its seq as ``root-mismatch`` and ``fork``.  Two validly signed
checkpoints of one size beyond the end of the log are a fork as well as a truncation, and a checkpoint beyond
the end that does not verify proves nothing (``bad-checkpoint``, not ``truncated``).
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from ledger import merkle
from ledger.errors import VerificationError
from ledger.notes import format_checkpoint, sign_note
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.records import CheckpointRecord, KeyRecord
from ledger.verify import MAX_FINDINGS, AuditReport, Finding
from tests import services
from tests.sealing_helpers import mixed_event, run_cli

pytestmark = pytest.mark.postgres

ORIGIN = "drill.bank.example/tamper"
EVENTS = 3000
BATCH = 100
ROTATE_AFTER = 1500  # the key.rotated entry is seq 1500; the second key signs seqs 1501 and later
SIZE = EVENTS + 1
TAMPERED = 1000
SEED = 20261120

ENTRY_COLUMNS = (
    "event_id",
    "stream",
    "stream_seq",
    "type",
    "producer",
    "occurred_at",
    "recorded_at",
    "body",
    "hash",
    "signature",
    "key_id",
)
PAYLOAD_COLUMNS = ("salt", "payload")
LEAF_CODES = ("hash-mismatch", "bad-signature")  # every body change breaks the stored hash and the signature


# --- what each kind of change touches and what the auditor must say about the tampered seq -----------------


@dataclass(frozen=True)
class Kind:
    name: str
    table: str
    column: str
    codes: frozenset[str]
    """Findings at the tampered seq itself."""
    changes_leaf: bool = False
    """Whether the entry's leaf hash, as the auditor recomputes it from the body, changes."""


def _body_kind(field: str, code: str) -> Kind:
    return Kind(f"body.{field}", "entries", "body", frozenset({*LEAF_CODES, code}), changes_leaf=True)


def _column_kind(column: str) -> Kind:
    return Kind(f"column.{column}", "entries", column, frozenset({"column-mismatch"}))


KINDS = (
    _body_kind("payload_digest", "payload-mismatch"),
    _body_kind("producer", "column-mismatch"),
    _body_kind("prev", "broken-link"),
    Kind("hash", "entries", "hash", frozenset({"hash-mismatch"})),
    Kind("signature", "entries", "signature", frozenset({"bad-signature"})),
    Kind("key_id.unpublished", "entries", "key_id", frozenset({"unknown-key"})),
    Kind("key_id.other_key", "entries", "key_id", frozenset({"key-not-valid"})),
    Kind("payload", "payloads", "payload", frozenset({"payload-mismatch"})),
    Kind("salt", "payloads", "salt", frozenset({"payload-mismatch"})),
    Kind("payload.removed", "payloads", "payload", frozenset({"payload-missing"})),
    *(_column_kind(c) for c in ("event_id", "stream", "stream_seq", "type", "producer", "occurred_at", "recorded_at")),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class Change:
    seq: int
    kind: Kind
    value: Any
    """The new value of ``kind.column``."""


def _flip_byte(value: bytes, position: int) -> bytes:
    changed = bytearray(value)
    changed[position] ^= 0x01
    return bytes(changed)


def _flip_in_body_string(body: bytes, field: str, rng: random.Random) -> bytes:
    """Flip the low bit of one character inside a string field: the body stays canonical JSON of the same shape."""
    start = body.index(f'"{field}":"'.encode()) + len(field) + 4
    end = body.index(b'"', start)
    return _flip_byte(body, rng.randrange(start, end))


def _flip_digit(value: str, rng: random.Random) -> str:
    """Another digit at one position of a timestamp: same length, still a timestamp-shaped string."""
    position = rng.choice([i for i, char in enumerate(value) if char.isdigit()])
    return value[:position] + chr(ord(value[position]) ^ 0x01) + value[position + 1 :]


def _capitalised(value: str) -> str:
    """The first letter upper-cased: unlike every stored value, so no unique constraint can collide."""
    assert value[0].islower(), value
    return value[0].upper() + value[1:]


def _other_key(keys: list[KeyRecord], seq: int) -> str:
    [other] = [key.key_id for key in keys if not key.covers_seq(seq)]
    return other


def _new_value(kind: Kind, row: dict[str, Any], keys: list[KeyRecord], rng: random.Random) -> Any:
    seq = row["seq"]
    makers: dict[str, Callable[[], Any]] = {
        "body.payload_digest": lambda: _flip_in_body_string(row["body"], "payload_digest", rng),
        "body.producer": lambda: _flip_in_body_string(row["body"], "producer", rng),
        "body.prev": lambda: _flip_in_body_string(row["body"], "prev", rng),
        "hash": lambda: _flip_byte(row["hash"], rng.randrange(len(row["hash"]))),
        "signature": lambda: _flip_byte(row["signature"], rng.randrange(len(row["signature"]))),
        "key_id.unpublished": lambda: _unpublished_key_id(keys, rng),
        "key_id.other_key": lambda: _other_key(keys, seq),
        "payload": lambda: _flip_byte(row["payload"], rng.randrange(len(row["payload"]))),
        "salt": lambda: _flip_byte(row["salt"], rng.randrange(len(row["salt"]))),
        "payload.removed": lambda: None,
        "column.event_id": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "column.stream": lambda: _capitalised(row["stream"]),
        "column.stream_seq": lambda: row["stream_seq"] + 1_000_000,
        "column.type": lambda: _capitalised(row["type"]),
        "column.producer": lambda: _capitalised(row["producer"]),
        "column.occurred_at": lambda: _flip_digit(row["occurred_at"], rng),
        "column.recorded_at": lambda: _flip_digit(row["recorded_at"], rng),
    }
    value = makers[kind.name]()
    assert value != row[kind.column], (seq, kind.name)
    return value


def _unpublished_key_id(keys: list[KeyRecord], rng: random.Random) -> str:
    published = {key.key_id for key in keys}
    while (candidate := f"{rng.getrandbits(32):08x}") in published:
        pass
    return candidate


# --- the database, as the superuser ---------------------------------------------------------------------


def _rows(engine: Engine) -> dict[int, dict[str, Any]]:
    """Every entry's stored columns and its payload row's, by seq (bytes as bytes)."""
    query = text(
        f"SELECT e.seq, {', '.join(f'e.{c}' for c in ENTRY_COLUMNS)}, {', '.join(f'p.{c}' for c in PAYLOAD_COLUMNS)} "
        "FROM entries e JOIN payloads p ON p.log_id = e.log_id AND p.seq = e.seq ORDER BY e.seq"
    )
    with engine.connect() as conn:
        result = conn.execute(query).mappings().all()
    return {
        row["seq"]: {name: bytes(value) if isinstance(value, memoryview) else value for name, value in row.items()}
        for row in result
    }


def _apply(engine: Engine, changes: list[Change]) -> None:
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # the append-only triggers do not fire
        for change in changes:
            conn.execute(
                text(f"UPDATE {change.kind.table} SET {change.kind.column} = :value WHERE seq = :seq"),
                {"value": change.value, "seq": change.seq},
            )


# --- what the audit must report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    findings: Counter[tuple[int | None, str]]
    nodes: set[tuple[int, int, int]]
    """(end_seq, level, idx) of every stored tree node that covers a leaf whose hash changed."""


def _expected(changes: list[Change], checkpoint_sizes: list[int]) -> Expected:
    at: dict[int | None, set[str]] = {}
    for change in changes:
        at.setdefault(change.seq, set()).update(change.kind.codes)
    leaves = sorted(change.seq for change in changes if change.kind.changes_leaf)
    changed = set(leaves)
    for seq in leaves:
        if seq + 1 < SIZE:
            at.setdefault(seq + 1, set()).add("broken-link")  # its prev is the hash of the original body
    if SIZE - 1 in changed:
        at.setdefault(SIZE - 1, set()).add("head-mismatch")  # the head hash is the original last hash
    if leaves:
        at.setdefault(None, set()).add("head-mismatch")  # the stored right edge covers every leaf
    findings: Counter[tuple[int | None, str]] = Counter((seq, code) for seq, codes in at.items() for code in codes)
    nodes = set()
    for level in range(1, SIZE.bit_length()):
        width = 1 << level
        for idx in range(SIZE // width):
            first, end = idx * width, (idx + 1) * width
            if any(first <= seq < end for seq in leaves):
                nodes.add((end - 1, level, idx))
                findings[(end - 1, "node-mismatch")] += 1
    for size in checkpoint_sizes:
        if leaves and leaves[0] < size:
            findings[(size - 1, "root-mismatch")] += 1
    return Expected(findings, nodes)


def _explained(finding: Finding, tampered: dict[int, Change], leaves: set[int], checkpoint_sizes: set[int]) -> bool:
    """Whether a finding names a tampered seq with one of its kind's codes, or follows from a changed leaf."""
    seq, code = finding.seq, finding.code
    if seq in tampered and code in tampered[seq].kind.codes:
        return True
    if seq is None:
        return code == "head-mismatch" and bool(leaves)
    if code == "broken-link":
        return seq - 1 in leaves
    if code == "node-mismatch":
        level, idx = _node_named(finding)
        return any(idx << level <= leaf < (idx + 1) << level for leaf in leaves)
    if code == "root-mismatch":
        return seq + 1 in checkpoint_sizes and any(leaf <= seq for leaf in leaves)
    if code == "head-mismatch":
        return seq == SIZE - 1 and seq in leaves
    return False


def _node_named(finding: Finding) -> tuple[int, int]:
    inside = finding.message.split("(", 1)[1].split(")", 1)[0]
    level, idx = (int(part) for part in inside.split(","))
    return level, idx


# --- the drill --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drill:
    ledger: Ledger
    env: dict[str, str]
    changes: list[Change]
    checkpoint_sizes: list[int]
    report: AuditReport

    @property
    def tampered(self) -> dict[int, Change]:
        return {change.seq: change for change in self.changes}


def _fill(ledger: Ledger) -> None:
    for first in range(0, EVENTS, BATCH):
        if first == ROTATE_AFTER:
            ledger.rotate_key("tamper drill rotation")
        producer = ("iam-scanner", "backup-monitor", "change-board")[first // BATCH % 3]
        ledger.append_batch([mixed_event(n) for n in range(first, first + BATCH)], producer)


def _plan(rows: dict[int, dict[str, Any]], keys: list[KeyRecord]) -> list[Change]:
    rng = random.Random(SEED)
    seqs = rng.sample(sorted(rows), TAMPERED)
    kinds = [KINDS[i % len(KINDS)] for i in range(TAMPERED)]
    rng.shuffle(kinds)
    return [Change(seq, kind, _new_value(kind, rows[seq], keys, rng)) for seq, kind in zip(seqs, kinds, strict=True)]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory, postgres_server: services.PostgresServer) -> Iterator[Drill]:
    data_dir = tmp_path_factory.mktemp("tamper-drill") / "data"
    with postgres_server.database("tamper_drill") as database:
        services.production_layout(database, postgres_server.app_role)
        ledger = Ledger.create(Settings(data_dir=data_dir, database_url=database.url), ORIGIN)
        admin = create_engine(database.superuser_url)
        try:
            _fill(ledger)
            assert ledger.head().size == SIZE
            assert ledger.audit().ok
            keys = ledger.keys()
            assert len(keys) == 2 and sorted(k.valid_from_seq for k in keys) == [0, ROTATE_AFTER + 1]
            checkpoint_sizes = [c.size for c in ledger.recorder.checkpoints(ledger.log_id)]
            assert len(checkpoint_sizes) > EVENTS // BATCH

            with pytest.raises(DBAPIError, match="append-only"), admin.begin() as conn:  # the triggers stand
                conn.execute(text("UPDATE entries SET producer = 'x' WHERE seq = 0"))

            before = _rows(admin)
            assert sorted(before) == list(range(SIZE))
            changes = _plan(before, keys)
            _apply(admin, changes)
            after = _rows(admin)
            planned = {change.seq: [change.kind.column] for change in changes}
            for seq in before:  # exactly the planned field of each tampered row differs, and nothing else
                differs = [name for name in before[seq] if before[seq][name] != after[seq][name]]
                assert differs == planned.get(seq, []), (seq, differs)

            yield Drill(ledger, _cli_env(data_dir, database.url), changes, checkpoint_sizes, ledger.audit())
        finally:
            admin.dispose()
            ledger.recorder.engine.dispose()


def _cli_env(data_dir: Path, database_url: str) -> dict[str, str]:
    return {"LEDGER_DATA_DIR": str(data_dir), "LEDGER_DATABASE_URL": database_url, "LEDGER_LOG_ORIGIN": ORIGIN}


def test_the_drill_changes_every_kind_of_field(drill: Drill) -> None:
    per_kind = Counter(change.kind.name for change in drill.changes)
    assert set(per_kind) == set(KINDS_BY_NAME)
    assert min(per_kind.values()) >= TAMPERED // len(KINDS)
    assert len(drill.tampered) == TAMPERED


def test_every_tampered_seq_is_named(drill: Drill) -> None:
    report = drill.report
    assert not report.ok
    assert report.entries_checked == SIZE
    assert len(report.findings) < MAX_FINDINGS  # the report is complete: nothing was dropped at the cap
    codes_at: dict[int | None, set[str]] = {}
    for finding in report.findings:
        codes_at.setdefault(finding.seq, set()).add(finding.code)
    missed = {
        change.seq: change.kind.name
        for change in drill.changes
        if not change.kind.codes <= codes_at.get(change.seq, set())
    }
    assert missed == {}


def test_every_finding_follows_from_a_change(drill: Drill) -> None:
    leaves = {change.seq for change in drill.changes if change.kind.changes_leaf}
    sizes = set(drill.checkpoint_sizes)
    unexplained = [str(f) for f in drill.report.findings if not _explained(f, drill.tampered, leaves, sizes)]
    assert unexplained == []

    expected = _expected(drill.changes, drill.checkpoint_sizes)
    actual = Counter((finding.seq, finding.code) for finding in drill.report.findings)
    assert actual - expected.findings == Counter(), "findings the changes do not account for"
    assert expected.findings - actual == Counter(), "findings the changes call for but the audit did not report"
    named_nodes = {(f.seq, *_node_named(f)) for f in drill.report.findings if f.code == "node-mismatch"}
    assert named_nodes == expected.nodes


def test_ledger_verify_json_reports_the_same_findings(drill: Drill) -> None:
    result = run_cli("verify", "--json", env=drill.env)
    assert result.code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["entries_checked"] == SIZE
    assert report["findings"] == drill.report.as_dict()["findings"]


# --- forks ---------------------------------------------------------------------------------------------

FORK_BATCH = 8
FORK_BATCHES = 4  # checkpoints of sizes 8, 16, 24 and 32
SMALL_SIZE = FORK_BATCH * FORK_BATCHES
EARLIER_SIZE = 16
FORGED_SIZE = 20  # no checkpoint of this size is stored before the forgery
REWRITTEN_SEQ = 5
BEYOND_SIZE = 40  # a size the log never reached


def _add_signed_checkpoint(ledger: Ledger, size: int, root: bytes) -> None:
    """A checkpoint signed with the log's own key, stored beside the ledger's own ones."""
    note = sign_note(format_checkpoint(ORIGIN, size, root), [ledger.signer()])
    ledger.recorder.add_checkpoint(ledger.log_id, CheckpointRecord(size, root, note, utc_now()))


@pytest.fixture
def small_log(
    pg_database: services.Database, postgres_server: services.PostgresServer, tmp_path: Path
) -> Iterator[Ledger]:
    services.production_layout(pg_database, postgres_server.app_role)
    ledger = Ledger.create(Settings(data_dir=tmp_path / "data", database_url=pg_database.url), ORIGIN)
    try:
        for first in range(0, SMALL_SIZE, FORK_BATCH):
            ledger.append_batch([mixed_event(n) for n in range(first, first + FORK_BATCH)], "iam-scanner")
        assert ledger.audit().ok
        assert [c.size for c in ledger.recorder.checkpoints(ledger.log_id)] == [8, 16, 24, 32]
        yield ledger
    finally:
        ledger.recorder.engine.dispose()


@pytest.fixture
def inconsistent(small_log: Ledger) -> Ledger:
    """A validly signed checkpoint of size 20 whose tree differs from the real one at seq 5.

    The stored checkpoint of size 16 is the real tree's, so no consistency proof can lead from it to the
    forged root: the two signed checkpoints are a fork of the log's history.
    """
    leaves = [entry.hash for entry in small_log.entries()][:FORGED_SIZE]
    leaves[REWRITTEN_SEQ] = merkle.leaf_hash(b"a rewritten entry")
    forged_root = merkle.root_from_leaf_hashes(leaves)
    [earlier] = small_log.recorder.checkpoints(small_log.log_id, EARLIER_SIZE)
    proof = small_log.consistency_proof(EARLIER_SIZE, FORGED_SIZE).hashes
    merkle.verify_consistency(EARLIER_SIZE, FORGED_SIZE, earlier.root, small_log.root(FORGED_SIZE), proof)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(EARLIER_SIZE, FORGED_SIZE, earlier.root, forged_root, proof)
    _add_signed_checkpoint(small_log, FORGED_SIZE, forged_root)
    return small_log


def test_a_checkpoint_inconsistent_with_an_earlier_one_is_reported_as_a_fork(inconsistent: Ledger) -> None:
    report = inconsistent.audit()
    assert not report.ok
    assert [(f.seq, f.code) for f in report.findings] == [(FORGED_SIZE - 1, "root-mismatch"), (FORGED_SIZE - 1, "fork")]


def test_a_checkpoint_beyond_the_log_by_another_key_proves_no_truncation(small_log: Ledger) -> None:
    from ledger.notes import NoteSigner

    stranger = NoteSigner.generate(ORIGIN)
    note = sign_note(format_checkpoint(ORIGIN, BEYOND_SIZE, bytes(32)), [stranger])
    small_log.recorder.add_checkpoint(small_log.log_id, CheckpointRecord(BEYOND_SIZE, bytes(32), note, utc_now()))
    assert [f.code for f in small_log.audit().findings] == ["bad-checkpoint"]


def test_two_checkpoints_of_one_size_beyond_the_log_are_a_fork(small_log: Ledger) -> None:
    """Two validly signed checkpoints of a size the log never reached, with different roots."""
    _add_signed_checkpoint(small_log, BEYOND_SIZE, bytes(32))
    _add_signed_checkpoint(small_log, BEYOND_SIZE, bytes(31) + b"\x01")
    codes = {f.code for f in small_log.audit().findings}
    assert "truncated" in codes
    assert "fork" in codes
