"""The sealer against real ledgers (SQLite files, PostgreSQL) and a real filesystem object store, and its CLI.

Segmenting, the time trigger, idempotence and crash resume, the sealer's lock, redaction of payloads disposed of
or erased after their seal, legal holds on sealed objects, WORM retention dates, restore, and the commands
``ledger seal``, ``ledger retention status`` and ``ledger restore``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import ConflictError, IntegrityError, StorageUnavailable
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.database import grant_app_role, make_engine, migrate
from ledger.store.locks import try_exclusive
from ledger.store.records import EntryFilter
from retention.disposal import execute_disposal, execute_erasure, plan_disposal
from retention.holds import release_hold, set_hold
from retention.policy import load_policy
from retention.restore import restore
from retention.sealing import (
    REDACTED_TYPE,
    SEALED_TYPE,
    SealConfig,
    Sealer,
    load_seal_records,
    snapshot_stream,
)
from retention.segments import (
    checkpoint_name,
    decode_payloads,
    decode_segment,
    payloads_name,
    segment_name,
)
from retention.status import store_status
from retention.stores.filesystem import FilesystemStore
from schemas.timestamps import parse_timestamp

ORIGIN = "sealer.bank.example/evidence"
STORE_NAME = "primary"
PAST = "2015-01-01T00:00:00Z"
RECENT = "2023-01-01T00:00:00Z"
NOW = datetime(2024, 6, 1, tzinfo=UTC)
SUBJECT = "ab" * 32
RETENTION_WORDING = (
    "Default retention: 7 years from the event (or from incident closure) - an entity-configurable policy."
)
NEVER = 10.0**9  # every_seconds that no test reaches: only the entry count triggers a seal


# --- helpers --------------------------------------------------------------------------------------------


def _check(occurred_at: str) -> dict[str, Any]:
    return {
        "control_id": "IAM-01",
        "check_id": "c1",
        "status": "pass",
        "framework_refs": [],
        "evidence": [],
        "observed_at": occurred_at,
    }


def _event(
    stream: str = "controls/iam",
    type_: str = "check.result",
    payload: dict[str, Any] | None = None,
    *,
    occurred_at: str = PAST,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": stream,
        "type": type_,
        "occurred_at": occurred_at,
        "payload": _check(occurred_at) if payload is None else payload,
        **extra,
    }


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.create(Settings(data_dir=tmp_path / "data"), ORIGIN)


def _store(ledger: Ledger) -> FilesystemStore:
    """The default store of the data directory, so that the CLI sees the same objects."""
    return FilesystemStore(ledger.settings.resolved_snapshot_dir())


def _fill(ledger: Ledger, count: int, **kwargs: Any) -> list[int]:
    results = ledger.append_batch([_event(**kwargs) for _ in range(count)], "test")
    return [r.entry.seq for r in results]


def _sealer(ledger: Ledger, store: FilesystemStore, **config: Any) -> Sealer:
    config.setdefault("every_seconds", NEVER)
    return Sealer(ledger, store, STORE_NAME, SealConfig(**config))


def _ranges(records: Any) -> list[tuple[int, int]]:
    return [(r.first, r.last) for r in records]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _names(first: int, last: int) -> set[str]:
    return {
        segment_name(ORIGIN, first, last),
        payloads_name(ORIGIN, first, last),
        checkpoint_name(ORIGIN, last + 1),
    }


def _json_payload(ledger: Ledger, seq: int) -> dict[str, Any]:
    record = ledger.payload(seq)
    assert record is not None and record.payload is not None
    data = json.loads(record.payload)
    assert isinstance(data, dict)
    return data


def _present(ledger: Ledger, seq: int) -> bool:
    record = ledger.payload(seq)
    return record is not None and record.payload is not None


def _crash_on_first_seal_event(monkeypatch: pytest.MonkeyPatch, ledger: Ledger) -> list[str]:
    """Make the ledger refuse the first ``snapshot.sealed`` append, as if the process died just before it."""
    original = ledger.append
    refused: list[str] = []

    def append(event: Any, producer: str) -> Any:
        if isinstance(event, dict) and event.get("type") == SEALED_TYPE and not refused:
            refused.append(str(event["id"]))
            raise StorageUnavailable("simulated crash before the seal was recorded")
        return original(event, producer)

    monkeypatch.setattr(ledger, "append", append)
    return refused


def _cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir.parent,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


# --- 1. segments ----------------------------------------------------------------------------------------


def test_full_segments_then_forced_remainder_with_recorded_digests(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    _fill(ledger, 250)
    sealer = _sealer(ledger, store, every_entries=100)

    first = sealer.run_once()

    assert _ranges(first.sealed) == [(0, 99), (100, 199)]
    assert [r.event_seq for r in first.sealed] == [250, 251]
    assert ledger.head().size == 252
    assert {o.name for o in store.list()} == _names(0, 99) | _names(100, 199)

    forced = sealer.run_once(force=True)

    # the rest up to the size at the start of the call (252): the new snapshot event 252 waits for the next seal
    assert _ranges(forced.sealed) == [(200, 251)]
    assert ledger.head().size == 253
    assert ledger.entry(252).type == SEALED_TYPE

    records = load_seal_records(ledger, STORE_NAME)
    assert _ranges(records) == [(0, 99), (100, 199), (200, 251)]
    assert {o.name for o in store.list()} == _names(0, 99) | _names(100, 199) | _names(200, 251)
    for record in records:
        event = ledger.entry(record.event_seq)
        assert event.type == SEALED_TYPE and event.stream == snapshot_stream(STORE_NAME)
        assert set(record.objects) == _names(record.first, record.last)
        assert record.root == ledger.root(record.last + 1).hex()
        for obj in record.objects.values():
            data = store.get(obj.name)
            assert obj.sha256 == _sha(data), obj.name
            assert obj.size == len(data), obj.name
            assert store.stat(obj.name).sha256_hex == obj.sha256, obj.name
        segment = decode_segment(store.get(record.object("segment").name), record.object("segment").name)
        assert [e.seq for e in segment.entries] == list(range(record.first, record.last + 1))
        assert segment.header.count == record.last - record.first + 1
        assert [e.hash for e in segment.entries] == [
            ledger.entry(seq).hash for seq in range(record.first, record.last + 1)
        ]
        payloads = decode_payloads(store.get(record.object("payloads").name), record.object("payloads").name)
        assert [p.seq for p in payloads.payloads] == list(range(record.first, record.last + 1))
        note = store.get(record.object("checkpoint").name).decode("utf-8")
        assert note == ledger.checkpoint(record.last + 1)
    assert store_status(ledger, store, STORE_NAME, description="test").ok


# --- 2. time trigger ------------------------------------------------------------------------------------


def test_time_trigger_seals_short_segment_but_never_only_its_own_events(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    _fill(ledger, 10)
    sealer = _sealer(ledger, store, every_entries=100, every_seconds=60)
    created = parse_timestamp(ledger.head().created_at, field="created_at")

    assert sealer.run_once(now=created + timedelta(seconds=30)).sealed == []
    assert list(store.list()) == []

    due = sealer.run_once(now=created + timedelta(seconds=61))

    assert _ranges(due.sealed) == [(0, 9)]
    assert ledger.head().size == 11  # seq 10 is the sealer's own snapshot.sealed event
    sealed_at = parse_timestamp(ledger.entry(10).recorded_at, field="recorded_at")
    for later in (timedelta(seconds=61), timedelta(days=1), timedelta(days=3650)):
        assert sealer.run_once(now=sealed_at + later).sealed == []
        assert _sealer(ledger, store, every_entries=100, every_seconds=60).run_once(now=sealed_at + later).sealed == []
    assert ledger.head().size == 11
    assert len(list(store.list())) == 3

    _fill(ledger, 1)  # seq 11: evidence waits beside the snapshot event
    assert sealer.run_once(now=sealed_at + timedelta(seconds=30)).sealed == []
    again = sealer.run_once(now=sealed_at + timedelta(seconds=61))
    assert _ranges(again.sealed) == [(10, 11)]


# --- 3. idempotence, crash resume, conflicting objects ----------------------------------------------------


def test_second_run_seals_nothing(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    _fill(ledger, 200)
    sealer = _sealer(ledger, store, every_entries=100)
    assert _ranges(sealer.run_once().sealed) == [(0, 99), (100, 199)]
    size = ledger.head().size
    names = {o.name: o.sha256_hex for o in store.list()}

    assert sealer.run_once().sealed == []
    assert _sealer(ledger, store, every_entries=100).run_once().sealed == []
    assert ledger.head().size == size
    assert {o.name: o.sha256_hex for o in store.list()} == names
    assert _ranges(load_seal_records(ledger, STORE_NAME)) == [(0, 99), (100, 199)]


def test_crash_after_objects_were_written_resumes_with_the_same_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    _fill(ledger, 150)
    refused = _crash_on_first_seal_event(monkeypatch, ledger)

    with pytest.raises(StorageUnavailable):
        _sealer(ledger, store, every_entries=100).run_once()

    assert len(refused) == 1
    assert {o.name for o in store.list()} == _names(0, 99)  # written, but not recorded
    assert load_seal_records(ledger, STORE_NAME) == []
    assert ledger.head().size == 150
    interrupted = store_status(ledger, store, STORE_NAME, description="test")
    assert sorted((f.object, f.code) for f in interrupted.findings) == sorted(
        (name, "unrecorded") for name in _names(0, 99)
    )
    files = {o.name: (store.root / o.name).stat().st_ino for o in store.list()}

    resumed = _sealer(ledger, store, every_entries=100).run_once()

    assert _ranges(resumed.sealed) == [(0, 99)]
    records = load_seal_records(ledger, STORE_NAME)
    assert _ranges(records) == [(0, 99)]
    assert str(ledger.entry(records[0].event_seq).event_id) == refused[0]  # the same deterministic event id
    sealed_events = list(ledger.entries(EntryFilter(stream=snapshot_stream(STORE_NAME), type=SEALED_TYPE)))
    assert len(sealed_events) == 1
    for obj in records[0].objects.values():
        assert obj.sha256 == _sha(store.get(obj.name))
    # the objects were accepted as they were (same files), not written again
    assert {o.name: (store.root / o.name).stat().st_ino for o in store.list()} == files
    assert store_status(ledger, store, STORE_NAME, description="test").ok
    status = _cli(tmp_path / "data", "retention", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.rstrip().endswith("OK")
    assert _sealer(ledger, store, every_entries=100).run_once().sealed == []


def test_crash_before_recording_a_short_segment_then_new_entries_leaves_the_store_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forced (or time-triggered) seal crashes before it is recorded; entries arrive before the retry.

    The retry seals a longer range under other names, so the objects of the interrupted attempt stay in the store
    (WORM-protected, unrecorded): the store must still be restorable and report no finding.
    """
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    _fill(ledger, 10)
    _crash_on_first_seal_event(monkeypatch, ledger)
    with pytest.raises(StorageUnavailable):
        _sealer(ledger, store, every_entries=100).run_once(force=True)
    assert {o.name for o in store.list()} == _names(0, 9)
    _fill(ledger, 5)

    resumed = _sealer(ledger, store, every_entries=100).run_once(force=True)

    assert resumed.sealed
    problems = [str(f) for f in store_status(ledger, store, STORE_NAME, description="test").findings]
    try:
        restore(store, f"sqlite:///{tmp_path / 'restored.db'}")
    except IntegrityError as exc:
        problems.append(f"restore refused: {exc}")
    assert problems == []


@pytest.mark.parametrize("role", ["segment", "checkpoint"])
def test_object_with_other_bytes_under_a_sealed_name_is_an_integrity_error(tmp_path: Path, role: str) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    _fill(ledger, 5)
    name = segment_name(ORIGIN, 0, 4) if role == "segment" else checkpoint_name(ORIGIN, 5)
    store.put(name, b"someone else's bytes")

    with pytest.raises(IntegrityError) as raised:
        _sealer(ledger, store, every_entries=100).run_once(force=True)

    assert name in str(raised.value)
    assert store.get(name) == b"someone else's bytes"
    assert load_seal_records(ledger, STORE_NAME) == []
    assert list(ledger.entries(EntryFilter(stream=snapshot_stream(STORE_NAME)))) == []
    assert ledger.head().size == 5


# --- 4. the lock, on SQLite and PostgreSQL --------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_on(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    request.applymarker(pytest.mark.postgres)
    database = request.getfixturevalue("pg_database")
    server = request.getfixturevalue("postgres_server")
    admin = make_engine(database.superuser_url)
    try:
        migrate(admin)
        grant_app_role(admin, server.app_role)
    finally:
        admin.dispose()
    return Settings(data_dir=tmp_path / "data", database_url=database.url)


@pytest.fixture
def db_ledgers(settings_on: Settings) -> Iterator[tuple[Ledger, Ledger]]:
    """The log, and a second handle on it with its own engine (another sealer's connection)."""
    ledger = Ledger.create(settings_on, ORIGIN)
    other = Ledger.open(settings_on, ORIGIN)
    try:
        yield ledger, other
    finally:
        ledger.recorder.engine.dispose()
        other.recorder.engine.dispose()


def test_lock_held_by_another_sealer_makes_run_once_busy(db_ledgers: tuple[Ledger, Ledger]) -> None:
    ledger, other = db_ledgers
    store = _store(ledger)
    _fill(ledger, 5)

    with try_exclusive(other.recorder.engine, f"seal:{ORIGIN}:{STORE_NAME}") as held:
        assert held
        report = _sealer(ledger, store, every_entries=2).run_once(force=True)
        assert report.busy and report.sealed == []
        assert _sealer(ledger, store).catch_up().busy
        assert list(store.list()) == []
        assert ledger.head().size == 5

    with try_exclusive(other.recorder.engine, f"seal:{ORIGIN}:secondary") as held:
        assert held  # another store's lock does not stop this store's sealer
        report = _sealer(ledger, store, every_entries=2).run_once(force=True)
    assert not report.busy
    assert _ranges(report.sealed) == [(0, 1), (2, 3), (4, 4)]


# --- 5. disposal and erasure after the seal; restore ------------------------------------------------------


def test_disposal_and_erasure_after_sealing_rewrite_payload_objects_and_restore(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    data_dir = tmp_path / "data"
    store = _store(ledger)
    old = _fill(ledger, 4)  # 2015: expired by 2024
    subject = ledger.append(_event("customers/x", subject_refs=[SUBJECT], occurred_at=RECENT), "t").entry.seq
    kept = ledger.append(_event("controls/network", occurred_at=RECENT), "t").entry.seq
    [record] = _sealer(ledger, store).run_once(force=True).sealed
    assert (record.first, record.last) == (0, kept)
    name = payloads_name(ORIGIN, 0, kept)
    sealed_digest = record.object("payloads").sha256
    assert store_status(ledger, store, STORE_NAME, description="test").ok

    disposal = execute_disposal(ledger, load_policy(None), NOW)

    assert disposal.disposed == tuple(old) and disposal.event_seq is not None
    pending = store_status(ledger, store, STORE_NAME, description="test")
    assert [(f.object, f.code) for f in pending.findings] == [(name, "erasure-pending")]
    assert ledger.audit().ok
    verified = _cli(data_dir, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    report = _sealer(ledger, store).catch_up()

    assert report.redacted == [name]
    rewritten = store.get(name)
    assert _sha(rewritten) != sealed_digest
    by_seq = {p.seq: p for p in decode_payloads(rewritten, name).payloads}
    for seq in old:
        assert by_seq[seq].payload is None and by_seq[seq].salt is None
        assert by_seq[seq].erased_by_seq == disposal.event_seq
        assert by_seq[seq].erasure_reason == "disposed"
    for seq in (subject, kept):
        live = ledger.payload(seq)
        assert live is not None
        assert (by_seq[seq].payload, by_seq[seq].salt) == (live.payload, live.salt)
    redactions = list(ledger.entries(EntryFilter(stream=snapshot_stream(STORE_NAME), type=REDACTED_TYPE)))
    assert len(redactions) == 1
    recorded = _json_payload(ledger, redactions[0].seq)
    assert recorded["object"] == name and recorded["sha256"] == _sha(rewritten)
    assert recorded["previous_sha256"] == sealed_digest and recorded["size"] == len(rewritten)
    assert recorded["through_event_seq"] == disposal.event_seq
    assert load_seal_records(ledger, STORE_NAME)[0].object("payloads").sha256 == _sha(rewritten)
    assert store_status(ledger, store, STORE_NAME, description="test").ok
    assert _sealer(ledger, store).catch_up().redacted == []  # nothing more to rewrite

    erasure = execute_erasure(ledger, load_policy(None), SUBJECT, NOW)

    assert erasure.erased == (subject,)
    assert ledger.audit().ok
    verified = _cli(data_dir, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "erasure-pending" in [f.code for f in store_status(ledger, store, STORE_NAME, description="t").findings]
    erased_report = _sealer(ledger, store).catch_up()
    assert erased_report.redacted == [name]
    by_seq = {p.seq: p for p in decode_payloads(store.get(name), name).payloads}
    assert by_seq[subject].payload is None and by_seq[subject].erased_by_seq == erasure.event_seq
    assert by_seq[subject].erasure_reason == "gdpr-erasure"
    assert by_seq[kept].payload is not None
    assert store_status(ledger, store, STORE_NAME, description="test").ok

    # catch_up sealed the decisions and redactions at once; rebuild a fresh database from the store
    sealed = erased_report.sealed
    assert sealed and sealed[-1].last >= erasure.event_seq
    assert _sealer(ledger, store).run_once(force=True).sealed == []  # only the sealer's own events wait
    assert store_status(ledger, store, STORE_NAME, description="test").ok
    target = tmp_path / "restored.db"
    restored_report = restore(store, f"sqlite:///{target}", trusted_keys=[ledger.active_key().verifier_key])
    assert restored_report.size == sealed[-1].last + 1
    restored = Ledger.open(Settings(data_dir=tmp_path / "restored", database_url=f"sqlite:///{target}"), ORIGIN)
    try:
        for seq, by, reason in [(s, disposal.event_seq, "disposed") for s in old] + [
            (subject, erasure.event_seq, "gdpr-erasure")
        ]:
            row = restored.payload(seq)
            assert row is not None and row.payload is None and row.salt is None, seq
            assert row.erased_by_seq == by and row.erasure_reason == reason, seq
        live, copy = ledger.payload(kept), restored.payload(kept)
        assert live is not None and copy is not None and copy.payload == live.payload
        audit = restored.audit()
        assert audit.ok, audit
        assert audit.payloads_erased == len(old) + 1
    finally:
        restored.recorder.engine.dispose()


def test_restore_right_after_a_disposal_was_applied_to_the_store(tmp_path: Path) -> None:
    """`ledger retention dispose --execute` rewrites the payload object (catch_up) but seals nothing.

    The store is then in a state the ledger itself produced and reports as consistent; restoring it must work.
    """
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    old = _fill(ledger, 3)
    _sealer(ledger, store).run_once(force=True)
    _fill(ledger, 2, occurred_at=RECENT)
    _sealer(ledger, store).run_once(force=True)  # the second segment records the first segment's digests
    disposal = execute_disposal(ledger, load_policy(None), NOW)
    assert disposal.disposed == tuple(old)
    assert _sealer(ledger, store).catch_up().redacted == [payloads_name(ORIGIN, 0, 2)]
    assert store_status(ledger, store, STORE_NAME, description="test").ok

    target = tmp_path / "restored.db"
    restore(store, f"sqlite:///{target}")

    restored = Ledger.open(Settings(data_dir=tmp_path / "restored", database_url=f"sqlite:///{target}"), ORIGIN)
    try:
        row = restored.payload(old[0])
        assert row is not None and row.payload is None and row.erased_by_seq == disposal.event_seq
    finally:
        restored.recorder.engine.dispose()


# --- 6. legal holds -------------------------------------------------------------------------------------


def test_hold_keeps_payloads_and_sets_the_legal_hold_on_sealed_objects(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    held = _fill(ledger, 2, stream="legal/matter")
    free = _fill(ledger, 2, stream="controls/iam")
    [_first] = _sealer(ledger, store).run_once(force=True).sealed  # seqs 0..3, retain until 2022 (past)
    first_held = {segment_name(ORIGIN, 0, 3), checkpoint_name(ORIGIN, 4)}
    assert all(not o.legal_hold for o in store.list())

    hold = set_hold(ledger, scope_kind="stream", scope="legal/matter", reason="litigation", actor="legal")

    planned = {c.seq: c for c in plan_disposal(ledger, load_policy(None), NOW)}
    assert all(not planned[seq].decision.eligible and hold.hold_id in planned[seq].decision.reason for seq in held)
    assert all(planned[seq].decision.eligible for seq in free)
    outcome = execute_disposal(ledger, load_policy(None), NOW)
    assert outcome.disposed == tuple(free)
    assert all(_present(ledger, seq) for seq in held)

    caught_up = _sealer(ledger, store).catch_up()

    assert set(caught_up.holds_changed) == first_held
    assert caught_up.redacted == [payloads_name(ORIGIN, 0, 3)]
    for name in first_held:
        assert store.stat(name).legal_hold, name
    assert not store.stat(payloads_name(ORIGIN, 0, 3)).legal_hold
    with pytest.raises(ConflictError):
        store.delete(segment_name(ORIGIN, 0, 3))  # its retain-until (2022) has passed: only the hold protects it
    with pytest.raises(ConflictError):
        store.delete(checkpoint_name(ORIGIN, 4))

    # sealed while the hold is active: uploaded held, with a retain-until date
    more = _fill(ledger, 1, stream="legal/matter")
    [during] = _sealer(ledger, store).run_once(force=True).sealed
    assert caught_up.sealed  # the rewrite was sealed at once, with the hold and disposal events
    assert during.first == caught_up.sealed[-1].last + 1 and during.last == more[0]
    assert during.legal_hold and during.retain_until is not None
    for role in ("segment", "checkpoint"):
        stat = store.stat(during.object(role).name)
        assert stat.legal_hold, role
        assert stat.retain_until == parse_timestamp(during.retain_until, field="retain_until"), role
    assert not store.stat(during.object("payloads").name).legal_hold
    _fill(ledger, 1, stream="controls/other")
    [unheld] = _sealer(ledger, store).run_once(force=True).sealed  # holds only the seal event and controls/other
    assert not unheld.legal_hold
    assert not store.stat(unheld.object("segment").name).legal_hold

    release_hold(ledger, hold.hold_id, reason="case closed", actor="legal")
    released = _sealer(ledger, store).catch_up()

    assert set(released.holds_changed) == first_held | {
        during.object("segment").name,
        during.object("checkpoint").name,
    }
    assert all(not o.legal_hold for o in store.list())
    after = execute_disposal(ledger, load_policy(None), NOW)
    assert set(held) | set(more) <= set(after.disposed)
    assert not any(_present(ledger, seq) for seq in held)
    store.delete(checkpoint_name(ORIGIN, 4))  # no hold, retention date passed: the store lets it go


# --- 7. WORM dates --------------------------------------------------------------------------------------


def _seal_all(ledger: Ledger, store: FilesystemStore, now: datetime, **config: Any) -> Any:
    [record] = _sealer(ledger, store, **config).run_once(force=True, now=now).sealed
    return record


def _worm_dates(store: FilesystemStore, record: Any) -> dict[str, datetime | None]:
    return {role: store.stat(record.object(role).name).retain_until for role in ("segment", "checkpoint", "payloads")}


def test_retain_until_is_seven_years_from_the_latest_event_by_default(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    for occurred_at in (PAST, "2016-05-05T12:00:00Z", "2015-06-01T00:00:00Z"):  # the latest is not the last
        ledger.append(_event(occurred_at=occurred_at), "t")

    record = _seal_all(ledger, store, NOW)

    assert record.retain_until == "2023-05-05T12:00:00.000000Z"
    expected = datetime(2023, 5, 5, 12, tzinfo=UTC)
    assert _worm_dates(store, record) == {"segment": expected, "checkpoint": expected, "payloads": None}
    payload = _json_payload(ledger, record.event_seq)
    assert payload["retain_until"] == record.retain_until and payload["policy"] == RETENTION_WORDING


def test_retain_until_follows_the_policy_class(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    ledger.append(_event(occurred_at="2016-05-05T12:00:00Z"), "t")
    ledger.append(_event("aml/alerts", "aml.alert", {"score": "7"}, occurred_at="2015-03-01T00:00:00Z"), "t")
    ledger.append(_event(occurred_at=PAST), "t")
    policy = load_policy('[event_types]\n"aml.*" = "aml"\n')

    record = _seal_all(ledger, store, NOW, policy=policy)

    assert record.retain_until == "2025-03-01T00:00:00.000000Z"  # aml: 10 years, later than the default's 2023
    assert store.stat(record.object("segment").name).retain_until == datetime(2025, 3, 1, tzinfo=UTC)


def test_retain_until_of_incident_streams(tmp_path: Path) -> None:
    closed = Ledger.create(Settings(data_dir=tmp_path / "closed"), ORIGIN)
    closed.append(_event("incident/INC-2", "incident.note", {"text": "x"}), "t")
    closed.append(
        _event(
            "incident/INC-2",
            "incident.closed",
            {"incident_id": "INC-2", "closed_at": "2016-03-01T00:00:00Z"},
            occurred_at="2016-03-01T00:00:00Z",
        ),
        "t",
    )
    seal_time = datetime(2030, 1, 1, tzinfo=UTC)

    record = _seal_all(closed, FilesystemStore(tmp_path / "closed-store"), seal_time)

    assert record.retain_until == "2023-03-01T00:00:00.000000Z"  # 7 years from closure

    open_ = Ledger.create(Settings(data_dir=tmp_path / "open"), ORIGIN)
    open_.append(_event("incident/INC-1", "incident.note", {"text": "x"}), "t")
    open_.append(_event(occurred_at="2016-05-05T00:00:00Z"), "t")
    store = FilesystemStore(tmp_path / "open-store")

    record = _seal_all(open_, store, seal_time)

    assert record.retain_until == "2037-01-01T00:00:00.000000Z"  # open: counted from the seal time (floor)
    assert store.stat(record.object("segment").name).retain_until == datetime(2037, 1, 1, tzinfo=UTC)


def test_incident_closed_after_its_seal_extends_the_worm_date(tmp_path: Path) -> None:
    """The seal of an open incident counts retention from the seal time, "a floor that a later closure can only
    extend": once the incident closes, the sealed objects must stay protected until closure + 7 years."""
    ledger = _ledger(tmp_path)
    store = _store(ledger)
    note = ledger.append(_event("incident/INC-1", "incident.note", {"text": "x"}), "t").entry.seq
    record = _seal_all(ledger, store, datetime(2016, 1, 1, tzinfo=UTC))
    assert record.retain_until == "2023-01-01T00:00:00.000000Z"
    ledger.append(
        _event(
            "incident/INC-1",
            "incident.closed",
            {"incident_id": "INC-1", "closed_at": "2018-01-01T00:00:00Z"},
            occurred_at="2018-01-01T00:00:00Z",
        ),
        "t",
    )
    required = next(c for c in plan_disposal(ledger, load_policy(None), NOW) if c.seq == note).retain_until
    assert required == datetime(2025, 1, 1, tzinfo=UTC)

    _sealer(ledger, store).run_once(force=True, now=datetime(2019, 1, 1, tzinfo=UTC))
    _sealer(ledger, store).catch_up()

    worm = store.stat(segment_name(ORIGIN, 0, 0)).retain_until
    assert worm is not None and worm >= required, f"segment protected until {worm}, retention runs to {required}"


# --- 8. the CLI -----------------------------------------------------------------------------------------


def test_cli_seal_status_and_restore(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli(data, "init", "--origin", ORIGIN).returncode == 0
    events = [_event(), _event(occurred_at="2016-05-05T00:00:00Z"), _event("aml/alerts", "aml.alert", {"s": "1"})]
    appended = _cli(data, "append", "-", stdin=json.dumps(events))
    assert appended.returncode == 0, appended.stderr
    policy = tmp_path / "policy.toml"
    policy.write_text('[event_types]\n"aml.*" = "aml"\n', encoding="utf-8")

    sealed = _cli(data, "seal", "--all", "--policy", str(policy))

    assert sealed.returncode == 0, sealed.stderr
    lines = sealed.stdout.splitlines()
    assert "sealed seqs 0..2 (event seq 3), retain until 2025-01-01T00:00:00.000000Z" in lines
    assert (
        "WORM NOT enforced: a local directory cannot enforce immutability; digests recorded in the chain detect "
        "changes" in lines
    )
    nothing = _cli(data, "seal")
    assert nothing.returncode == 0 and "nothing due for sealing" in nothing.stdout

    status = _cli(data, "retention", "status")

    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.splitlines()[0] == RETENTION_WORDING
    assert "  sealed: 1 segments, 3 entries; 1 entries not yet sealed" in status.stdout
    assert "FINDING" not in status.stdout and status.stdout.splitlines()[-1] == "OK"

    target = tmp_path / "restored.db"
    restored = _cli(data, "restore", "--from", str(data / "snapshots"), "--into", f"sqlite:///{target}")
    assert restored.returncode == 0, restored.stderr
    assert f"restored 3 entries of {ORIGIN} from 1 segments" in restored.stdout
    again = _cli(data, "restore", "--from", str(data / "snapshots"), "--into", f"sqlite:///{target}")
    assert again.returncode == 2
    assert len(again.stderr.splitlines()) == 1 and again.stderr.startswith("error: ")
    assert "already exists" in again.stderr
    fresh = tmp_path / "never.db"
    bad_key = _cli(data, "restore", "--from", str(data / "snapshots"), "--into", f"sqlite:///{fresh}", "--key", "x+y")
    assert bad_key.returncode == 2
    assert len(bad_key.stderr.splitlines()) == 1 and bad_key.stderr.startswith("error: ")
    assert not fresh.exists()

    name = payloads_name(ORIGIN, 0, 2)
    (data / "snapshots" / name).unlink()
    broken = _cli(data, "retention", "status")

    assert broken.returncode == 1, broken.stdout + broken.stderr
    findings = [line for line in broken.stdout.splitlines() if line.startswith("FINDING ")]
    assert len(findings) == 1
    assert findings[0].startswith(f"FINDING object {name}: missing: ")
    assert broken.stdout.splitlines()[-1] == "FAILED with 1 finding(s)"
