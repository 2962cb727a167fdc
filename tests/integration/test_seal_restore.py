"""Acceptance of sealing and restore: a 100,000-entry log on PostgreSQL, with a key rotation in the middle, is
sealed into a directory and into Azure Blob (Azurite), and each store is restored into a fresh PostgreSQL
database and a fresh SQLite file.  Every restore must give back exactly the sealed log (checkpoint, head, root,
keys, entries, proofs), pass a full audit, and take new appends that chain onto the restored head.

The source and both seals are built once per module (about half a minute); every restore is its own test.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger.errors import ConflictError, IntegrityError
from ledger.notes import NoteSigner
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.records import EntryFilter
from retention.restore import RestoreReport, restore
from retention.sealing import SealConfig, Sealer, load_seal_records
from retention.segments import checkpoint_name, payloads_name, segment_name
from retention.status import store_status
from retention.stores.azure_blob import AzureBlobStore
from retention.stores.base import ObjectStore
from retention.stores.filesystem import FilesystemStore
from tests import services
from tests.sealing_helpers import (
    RawContainer,
    append_mixed,
    approval_event,
    check_event,
    event_id,
    fresh_container_name,
    sqlite_log_rows,
    sqlite_url,
)

ORIGIN = "acceptance.bank.example/evidence"
TOTAL = 100_000
ROTATE_AFTER = 50_000  # the key.rotated entry is seq 50,000
EVERY = 10_000
APPROVAL_NUMBER = 47  # event number 47 is an approval.decision with two subjects, at seq 47
STORE_NAMES = {"filesystem": "local-dir", "azure": "azure-blob"}


@dataclass
class Sealed:
    kind: str
    store: ObjectStore
    store_name: str
    size: int  # tree size the store's newest checkpoint covers
    ranges: list[tuple[int, int]]


@dataclass
class Source:
    ledger: Ledger
    data_dir: Path
    url: str
    first_key: str
    rotation_seq: int
    sealed: dict[str, Sealed]


@pytest.fixture(scope="module")
def source(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: services.PostgresServer, blob_connection_string: str
) -> Iterator[Source]:
    base = tmp_path_factory.mktemp("seal-acceptance")
    container = fresh_container_name("acceptance")
    with postgres_server.database("seal_source", app_owns=True) as database:
        settings = Settings(data_dir=base / "data", database_url=database.url)
        ledger = Ledger.create(settings, ORIGIN)
        first_key = ledger.active_key().verifier_key
        append_mixed(ledger, 0, ROTATE_AFTER)
        ledger.rotate_key("test")
        rotation_seq = ledger.head().size - 1
        append_mixed(ledger, ROTATE_AFTER, TOTAL - ROTATE_AFTER - 1)
        assert ledger.head().size == TOTAL
        stores: dict[str, ObjectStore] = {
            "filesystem": FilesystemStore(base / "store"),
            "azure": AzureBlobStore(blob_connection_string, container=container),
        }
        sealed: dict[str, Sealed] = {}
        for kind, store in stores.items():
            report = Sealer(ledger, store, STORE_NAMES[kind], SealConfig(every_entries=EVERY)).run_once(force=True)
            ranges = [(r.first, r.last) for r in report.sealed]
            sealed[kind] = Sealed(kind, store, STORE_NAMES[kind], ranges[-1][1] + 1, ranges)
        try:
            yield Source(ledger, base / "data", database.url, first_key, rotation_seq, sealed)
        finally:
            ledger.recorder.engine.dispose()
            RawContainer(blob_connection_string, container).drop()


@contextlib.contextmanager
def target_database(kind: str, postgres_server: services.PostgresServer, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty target: an app-owned PostgreSQL database or a new SQLite file."""
    if kind == "sqlite":
        yield sqlite_url(tmp_path / "restored.db")
        return
    with postgres_server.database("restored", app_owns=True) as database:
        yield database.url


def _open(source: Source, url: str) -> Ledger:
    """The restored log with the source's data directory, which holds the key files and the subject secret."""
    return Ledger.open(Settings(data_dir=source.data_dir, database_url=url))


def _subjects(ledger: Ledger, seq: int) -> list[str]:
    subjects: list[str] = json.loads(ledger.entry(seq).body)["subjects"]
    assert subjects
    return subjects


def _key_rows(ledger: Ledger) -> list[tuple[str, str, int, int | None]]:
    published = ledger.keys()
    return [(k.key_id, k.verifier_key, k.valid_from_seq, k.valid_until_seq) for k in published]


# --- the seals --------------------------------------------------------------------------------------------


def test_the_log_is_sealed_in_segments_into_both_stores(source: Source) -> None:
    full = [(first, first + EVERY - 1) for first in range(0, TOTAL, EVERY)]
    # Both stores hold the 100,000 entries in ten segments.  The Blob store was sealed after the directory's
    # ten snapshot.sealed events were appended, but a sealer never seals snapshot events alone (two stores
    # would otherwise seal each other's events for ever), even when forced.
    assert source.sealed["filesystem"].ranges == full
    assert source.sealed["azure"].ranges == full
    for sealed in source.sealed.values():
        names = {o.name for o in sealed.store.list()}
        expected = set()
        for first, last in sealed.ranges:
            expected |= {
                segment_name(ORIGIN, first, last),
                payloads_name(ORIGIN, first, last),
                checkpoint_name(ORIGIN, last + 1),
            }
        assert names == expected, sealed.kind
        records = load_seal_records(source.ledger, sealed.store_name)
        assert [(r.first, r.last) for r in records] == sealed.ranges


@pytest.mark.parametrize("kind", ["filesystem", "azure"])
def test_status_of_each_store_is_clean_and_honest_about_worm(source: Source, kind: str) -> None:
    sealed = source.sealed[kind]
    status = store_status(source.ledger, sealed.store, sealed.store_name, description=kind)
    assert status.findings == []
    assert status.segments == len(sealed.ranges)
    assert status.sealed_entries == sealed.size
    assert status.objects_checked == 3 * len(sealed.ranges)
    assert status.worm_enforced is False  # neither a directory nor Azurite enforces immutability


# --- the four restores ------------------------------------------------------------------------------------


def _check_restored(source: Source, sealed: Sealed, report: RestoreReport, restored: Ledger) -> None:
    size = sealed.size
    original = source.ledger
    assert (report.origin, report.entries, report.size, report.segments) == (ORIGIN, size, size, len(sealed.ranges))
    assert report.checkpoints == len(sealed.ranges)

    head = restored.head()
    assert head.size == size
    assert head.head_hash == original.entry(size - 1).hash
    assert restored.root(size) == original.root(size)
    assert report.root == original.root(size).hex()
    assert restored.checkpoint() == original.checkpoint(size)
    assert report.checkpoint == original.checkpoint(size)
    assert _key_rows(restored) == _key_rows(original)
    assert head.active_key_id == original.head().active_key_id

    for seq in (0, APPROVAL_NUMBER, source.rotation_seq - 1, source.rotation_seq, source.rotation_seq + 1, size - 1):
        assert restored.entry(seq) == original.entry(seq), seq
        assert restored.payload(seq) == original.payload(seq), seq
    assert restored.entry(source.rotation_seq).type == "key.rotated"

    subject = _subjects(original, APPROVAL_NUMBER)[0]
    by_subject = [e.seq for e in original.entries(EntryFilter(subject=subject)) if e.seq < size]
    assert len(by_subject) > 10
    assert [e.seq for e in restored.entries(EntryFilter(subject=subject))] == by_subject

    for seq in (12_345, source.rotation_seq, size - 1):
        assert restored.inclusion_proof(seq).as_dict() == original.inclusion_proof(seq, size).as_dict()
    assert (
        restored.consistency_proof(ROTATE_AFTER).as_dict() == original.consistency_proof(ROTATE_AFTER, size).as_dict()
    )


def _append_after_restore(source: Source, restored: Ledger, size: int) -> None:
    last_hash = restored.head().head_hash
    stream = check_event(TOTAL + 1)["stream"]
    next_stream_seq = sum(1 for e in source.ledger.entries(EntryFilter(stream=stream)) if e.seq < size)
    events = [check_event(TOTAL + 1), {**approval_event(APPROVAL_NUMBER), "id": event_id(TOTAL + 2)}]
    results = restored.append_batch(events, "after-restore")

    first, second = results[0].entry, results[1].entry
    assert (first.seq, second.seq) == (size, size + 1)
    assert json.loads(first.body)["prev"] == last_hash.hex()
    assert json.loads(second.body)["prev"] == first.hash.hex()
    assert first.stream_seq == next_stream_seq  # the restored stream heads continue the streams
    assert first.key_id == source.ledger.active_key().key_id  # signed with the rotated-in key
    assert json.loads(second.body)["subjects"] == _subjects(source.ledger, APPROVAL_NUMBER)  # same subject secret

    # One full audit covers the restored entries, nodes and checkpoints and the two new entries.
    audit = restored.audit()
    assert audit.findings == []
    assert audit.ok and audit.entries_checked == size + 2


# (store, target, pinned): two of the four restores pin the source's first key, so that restore has to follow
# the key.rotated entry to accept the second key; the other two trust the store and must say so.
RESTORES = [
    ("filesystem", "postgresql", False),
    ("filesystem", "sqlite", True),
    ("azure", "postgresql", True),
    ("azure", "sqlite", False),
]


@pytest.mark.parametrize(
    ("store_kind", "target_kind", "pinned"),
    RESTORES,
    ids=[f"{s}-into-{t}-{'pinned' if p else 'unpinned'}" for s, t, p in RESTORES],
)
def test_restore_rebuilds_the_sealed_log_and_takes_new_appends(
    source: Source,
    store_kind: str,
    target_kind: str,
    pinned: bool,
    postgres_server: services.PostgresServer,
    tmp_path: Path,
) -> None:
    sealed = source.sealed[store_kind]
    with target_database(target_kind, postgres_server, tmp_path) as url:
        report = restore(sealed.store, url, trusted_keys=[source.first_key] if pinned else [])
        trusting_notes = [note for note in report.notes if "trusting key" in note]
        assert len(trusting_notes) == (0 if pinned else 1), report.notes  # unpinned, it says what it trusted
        restored = _open(source, url)
        try:
            _check_restored(source, sealed, report, restored)
            _append_after_restore(source, restored, sealed.size)
        finally:
            restored.recorder.engine.dispose()


def _pg_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = ("logs", "entries", "payloads", "merkle_nodes", "checkpoints", "log_keys", "streams")
            present = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
            return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables if t in present}
    finally:
        engine.dispose()


def test_restore_into_the_database_that_holds_the_log_is_refused_and_changes_nothing(source: Source) -> None:
    before_head, before_rows = source.ledger.head(), _pg_counts(source.url)
    assert before_rows["entries"] > TOTAL
    with pytest.raises(ConflictError):
        restore(source.sealed["filesystem"].store, source.url)
    assert source.ledger.head() == before_head
    assert _pg_counts(source.url) == before_rows


# --- trust, refusals and rotations on a small log (quick to restore) --------------------------------------


@dataclass
class Small:
    ledger: Ledger
    data_dir: Path
    store: FilesystemStore

    @property
    def first_key(self) -> str:
        return self.ledger.keys()[-1].verifier_key

    @property
    def second_key(self) -> str:
        return self.ledger.keys()[0].verifier_key


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    """1,500 entries (checkpoints stored at sizes 1,000 and 1,500), a rotation, 200 more; segments of 500.

    The segment ending at size 500 has no stored checkpoint: the sealer signs one at seal time, with the key
    active then, the rotated-in key (``ledger verify`` accepts such re-signed checkpoints).
    """
    base = tmp_path_factory.mktemp("rotated")
    ledger = Ledger.create(Settings(data_dir=base / "data"), ORIGIN)
    append_mixed(ledger, 0, 1500)
    ledger.rotate_key("test")
    append_mixed(ledger, 1500, 200)
    store = FilesystemStore(base / "store")
    Sealer(ledger, store, "local-dir", SealConfig(every_entries=500)).run_once(force=True)
    yield Small(ledger, base / "data", store)
    ledger.recorder.engine.dispose()


def _restore_and_audit(small: Small, path: Path, trusted: list[str]) -> RestoreReport:
    url = sqlite_url(path)
    report = restore(small.store, url, trusted_keys=trusted)
    restored = Ledger.open(Settings(data_dir=small.data_dir, database_url=url))
    try:
        assert restored.audit().findings == []
        assert restored.head().size == report.size
    finally:
        restored.recorder.engine.dispose()
    return report


def test_checkpoints_signed_at_seal_time_by_the_rotated_in_key_verify_in_status_and_restore(
    rotated: Small, tmp_path: Path
) -> None:
    assert rotated.ledger.audit().findings == []
    status = store_status(rotated.ledger, rotated.store, "local-dir", description="directory")
    assert [str(f) for f in status.findings] == []
    report = _restore_and_audit(rotated, tmp_path / "restored.db", [rotated.first_key])
    assert report.size == 1701


def test_restore_with_only_the_rotated_in_key_pinned_succeeds(rotated: Small, tmp_path: Path) -> None:
    report = _restore_and_audit(rotated, tmp_path / "restored.db", [rotated.second_key])
    assert report.size == 1701


def test_restore_refuses_a_pinned_key_that_is_none_of_the_logs_keys(rotated: Small, tmp_path: Path) -> None:
    foreign = NoteSigner.generate(ORIGIN).verifier_key()  # same origin, another key
    path = tmp_path / "foreign.db"
    with pytest.raises(IntegrityError, match="trusted"):
        restore(rotated.store, sqlite_url(path), trusted_keys=[foreign])
    assert set(sqlite_log_rows(path).values()) == {0}  # nothing was written


def test_restore_into_a_restored_sqlite_file_again_is_refused_and_changes_nothing(
    rotated: Small, tmp_path: Path
) -> None:
    path = tmp_path / "restored.db"
    restore(rotated.store, sqlite_url(path))
    before = sqlite_log_rows(path)
    assert before["entries"] == 1701 and before["logs"] == 1
    with pytest.raises(ConflictError):
        restore(rotated.store, sqlite_url(path))
    assert sqlite_log_rows(path) == before


@pytest.fixture(scope="module")
def rotated_twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    """As ``rotated``, sealed; then a second rotation, 300 more entries, sealed again.

    The checkpoint of size 500 was signed at the first seal by the second key, which was active then; after
    the second rotation the third key is active, and that checkpoint must still verify.
    """
    base = tmp_path_factory.mktemp("rotated-twice")
    ledger = Ledger.create(Settings(data_dir=base / "data"), ORIGIN)
    append_mixed(ledger, 0, 1500)  # checkpoints stored at sizes 1,000 and 1,500 only
    ledger.rotate_key("first rotation")
    append_mixed(ledger, 1500, 200)
    store = FilesystemStore(base / "store")
    Sealer(ledger, store, "local-dir", SealConfig(every_entries=500)).run_once(force=True)
    ledger.rotate_key("second rotation")
    append_mixed(ledger, 1700, 300)
    Sealer(ledger, store, "local-dir", SealConfig(every_entries=500)).run_once(force=True)
    assert len(ledger.keys()) == 3
    yield Small(ledger, base / "data", store)
    ledger.recorder.engine.dispose()


def test_a_store_sealed_across_two_rotations_is_clean_in_status(rotated_twice: Small) -> None:
    assert rotated_twice.ledger.audit().findings == []  # the source verifies: key 2 signed size 500 while active
    status = store_status(rotated_twice.ledger, rotated_twice.store, "local-dir", description="directory")
    assert [str(f) for f in status.findings] == []


def test_a_store_sealed_across_two_rotations_restores(rotated_twice: Small, tmp_path: Path) -> None:
    report = _restore_and_audit(rotated_twice, tmp_path / "restored.db", [rotated_twice.first_key])
    assert report.size == rotated_twice.ledger.head().size - 1  # all but the last seal's snapshot.sealed event


def test_a_log_sealed_into_two_stores_restores_from_each(tmp_path: Path, blob_connection_string: str) -> None:
    """Each store's newer segments hold the other store's snapshot.sealed events, which record other bytes
    under the same object names (the segment header names its store): restore must check only its own."""
    ledger = Ledger.create(Settings(data_dir=tmp_path / "data"), ORIGIN)
    container = fresh_container_name("two-stores")
    stores: dict[str, ObjectStore] = {
        "local-dir": FilesystemStore(tmp_path / "store"),
        "azure-blob": AzureBlobStore(blob_connection_string, container=container),
    }
    try:
        config = SealConfig(every_entries=400)
        for first in (0, 800):
            append_mixed(ledger, first, 800, batch=400)
            for name, store in stores.items():
                Sealer(ledger, store, name, config).run_once(force=True)
        for name, store in stores.items():
            records = load_seal_records(ledger, name)
            assert len(records) >= 4
            url = sqlite_url(tmp_path / f"{name}.db")
            report = restore(store, url)
            assert report.size == records[-1].last + 1, name
            assert report.digests_checked >= 6, name  # the first seals, recorded in the later segments
            restored = Ledger.open(Settings(data_dir=tmp_path / "data", database_url=url))
            assert restored.audit().findings == [], name
            restored.recorder.engine.dispose()
    finally:
        ledger.recorder.engine.dispose()
        RawContainer(blob_connection_string, container).drop()
