"""The store tamper matrix: an attacker with access to the object store (the directory's files, or the blob
container through the Azure SDK) alters, removes, swaps or replaces sealed objects.  Every change must make
``restore`` refuse with an IntegrityError naming the exact object (and the seq where an entry is concerned),
leave the target database without a log, and make ``ledger retention status`` (run as the CLI) exit 1 naming
the object.  Before any change, status exits 0 and says honestly that neither store enforces WORM.

One source per store kind is built and sealed once per module (the directory's on SQLite, the Blob store's on
PostgreSQL): 3,000 entries in segments of 500, then 300 more entries sealed as a seventh segment, so that the
segment holding the first six ``snapshot.sealed`` events lets restore check those objects' recorded digests.
Every test tampers with its own copy of the sealed store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import IntegrityError
from ledger.notes import NoteSigner, format_checkpoint, sign_note
from ledger.service import Ledger
from ledger.settings import Settings
from retention.restore import restore
from retention.sealing import SealConfig, Sealer
from retention.segments import checkpoint_name, payloads_name, segment_name
from retention.stores.azure_blob import AzureBlobStore
from retention.stores.base import ObjectStore
from retention.stores.filesystem import FilesystemStore
from tests import services
from tests.sealing_helpers import (
    RawContainer,
    RawDirectory,
    RawStore,
    append_mixed,
    change_one_character,
    edit_line,
    fresh_container_name,
    run_cli,
    sqlite_log_rows,
    sqlite_url,
)

ORIGIN = "tamper.bank.example/evidence"
STORE_NAME = "evidence-store"
EVERY = 500
FIRST_SEAL = 3000
MORE = 300
RANGES = [(first, first + EVERY - 1) for first in range(0, FIRST_SEAL, EVERY)] + [(3000, 3000 + 6 + MORE - 1)]
SEALED_SIZE = RANGES[-1][1] + 1  # 3,306: the second seal also holds the six snapshot.sealed events of the first


def seg(first: int, last: int) -> str:
    return segment_name(ORIGIN, first, last)


def pay(first: int, last: int) -> str:
    return payloads_name(ORIGIN, first, last)


def ckp(size: int) -> str:
    return checkpoint_name(ORIGIN, size)


NEWEST = RANGES[-1]


@dataclass
class SealedSource:
    kind: str
    ledger: Ledger
    env: dict[str, str]
    pristine: RawStore
    connection_string: str | None = None


def _build(ledger: Ledger, store: ObjectStore) -> None:
    append_mixed(ledger, 0, FIRST_SEAL)
    config = SealConfig(every_entries=EVERY)
    first = Sealer(ledger, store, STORE_NAME, config).run_once(force=True)
    assert [(r.first, r.last) for r in first.sealed] == RANGES[:-1]
    append_mixed(ledger, FIRST_SEAL, MORE)
    second = Sealer(ledger, store, STORE_NAME, config).run_once(force=True)
    assert [(r.first, r.last) for r in second.sealed] == [NEWEST]


@pytest.fixture(
    scope="module", params=["filesystem", pytest.param("azure", marks=[pytest.mark.blob, pytest.mark.postgres])]
)
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SealedSource]:
    base = tmp_path_factory.mktemp(f"tamper-{request.param}")
    data_dir = base / "data"
    if request.param == "filesystem":
        ledger = Ledger.create(Settings(data_dir=data_dir), ORIGIN)  # the embedded SQLite file
        _build(ledger, FilesystemStore(base / "store"))
        yield SealedSource("filesystem", ledger, {"LEDGER_DATA_DIR": str(data_dir)}, RawDirectory(base / "store"))
        ledger.recorder.engine.dispose()
        return
    server: services.PostgresServer = request.getfixturevalue("postgres_server")
    connection_string: str = request.getfixturevalue("blob_connection_string")
    container = fresh_container_name("tamper-source")
    with server.database("tamper_source", app_owns=True) as database:
        ledger = Ledger.create(Settings(data_dir=data_dir, database_url=database.url), ORIGIN)
        _build(ledger, AzureBlobStore(connection_string, container=container))
        env = {
            "LEDGER_DATA_DIR": str(data_dir),
            "LEDGER_DATABASE_URL": database.url,
            "LEDGER_BLOB_CONNECTION_STRING": connection_string,
        }
        raw = RawContainer(connection_string, container)
        try:
            yield SealedSource("azure", ledger, env, raw, connection_string)
        finally:
            ledger.recorder.engine.dispose()
            raw.drop()


@dataclass
class Replica:
    """A fresh copy of the sealed store for one test: raw access for the attacker, the store for restore."""

    raw: RawStore
    store: ObjectStore


@pytest.fixture
def replica(source: SealedSource, tmp_path: Path) -> Iterator[Replica]:
    if isinstance(source.pristine, RawDirectory):
        raw_dir = source.pristine.copy_to(tmp_path / "store")
        yield Replica(raw_dir, FilesystemStore(raw_dir.root))
        return
    assert isinstance(source.pristine, RawContainer) and source.connection_string is not None
    raw_container = source.pristine.copy_to(fresh_container_name("tamper"))
    try:
        yield Replica(
            raw_container, AzureBlobStore(source.connection_string, container=raw_container.container, worm=False)
        )
    finally:
        raw_container.drop()


def status_cli(source: SealedSource, raw: RawStore, *extra: str) -> Any:
    return run_cli("retention", "status", "--store", raw.spec(), "--store-name", STORE_NAME, *extra, env=source.env)


# --- before tampering -------------------------------------------------------------------------------------

WORM_DETAIL = {
    "filesystem": "a local directory cannot enforce immutability",
    "azure": "let the object be deleted (Azurite does this): immutability is NOT enforced",
}


def test_status_of_the_untampered_store_is_ok_and_says_worm_is_not_enforced(
    source: SealedSource, replica: Replica
) -> None:
    result = status_cli(source, replica.raw)
    assert result.code == 0, result
    lines = result.stdout.splitlines()
    assert "  immutability (WORM): NOT enforced - " in result.stdout
    assert WORM_DETAIL[source.kind] in result.stdout
    assert f"  sealed: {len(RANGES)} segments, {SEALED_SIZE} entries; 1 entries not yet sealed" in lines
    assert f"  objects checked against the chain: {3 * len(RANGES)}" in lines
    assert not any(line.startswith("FINDING") for line in lines)
    assert lines[-1] == "OK"

    as_json = status_cli(source, replica.raw, "--json")
    assert as_json.code == 0, as_json
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["findings"] == []
    assert report["worm"]["enforced"] is False


def test_the_untampered_store_restores_and_its_recorded_digests_are_checked(replica: Replica, tmp_path: Path) -> None:
    report = restore(replica.store, sqlite_url(tmp_path / "restored.db"))
    assert (report.size, report.segments) == (SEALED_SIZE, len(RANGES))
    assert report.digests_checked == 3 * (len(RANGES) - 1)  # the first six seals are recorded in the seventh
    assert sqlite_log_rows(tmp_path / "restored.db")["entries"] == SEALED_SIZE


# --- the tampering ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    name: str  # the object restore must name
    seq: int | None = None  # the seq restore must name, where an entry is concerned
    status_names: tuple[str, ...] = ()  # the objects status must name (default: ``name``)


Tamper = Callable[[RawStore, Ledger], Expect]


def _edit_body(raw: RawStore, first: int, last: int, seq: int, *, rehash: bool = False, metadata: bool = True) -> None:
    def edit(record: dict[str, Any]) -> None:
        record["body"] = change_one_character(record["body"], '"producer":"')
        if rehash:
            record["hash"] = hashlib.sha256(b"\x00" + record["body"].encode()).hexdigest()

    name = seg(first, last)
    raw.write(name, edit_line(raw.read(name), seq, edit), keep_digest_metadata=metadata)


def body_character(raw: RawStore, ledger: Ledger) -> Expect:
    _edit_body(raw, 1000, 1499, 1234)
    return Expect(seg(1000, 1499), 1234)


def body_character_in_the_newest_segment(raw: RawStore, ledger: Ledger) -> Expect:
    _edit_body(raw, *NEWEST, 3100)  # the newest segment's digest is not yet in the chain it holds
    return Expect(seg(*NEWEST), 3100)


def body_character_with_its_hash_recomputed(raw: RawStore, ledger: Ledger) -> Expect:
    _edit_body(raw, 1500, 1999, 1750, rehash=True)
    return Expect(seg(1500, 1999), 1750)


def raw_byte_flipped_inside_the_compressed_data(raw: RawStore, ledger: Ledger) -> Expect:
    name = seg(500, 999)
    data = bytearray(raw.read(name))
    data[len(data) // 2] ^= 0xFF
    raw.write(name, bytes(data))
    return Expect(name)


def raw_byte_flipped_in_the_gzip_header(raw: RawStore, ledger: Ledger) -> Expect:
    """The gzip MTIME field: the entries decompress unchanged; only the digest in the chain can tell."""
    name = seg(2000, 2499)
    data = bytearray(raw.read(name))
    data[4] ^= 0x01
    raw.write(name, bytes(data))
    return Expect(name)


def middle_segment_deleted(raw: RawStore, ledger: Ledger) -> Expect:
    raw.remove(seg(1500, 1999))
    return Expect(seg(1500, 1999), 1500)


def newest_segment_deleted_its_checkpoint_kept(raw: RawStore, ledger: Ledger) -> Expect:
    raw.remove(seg(*NEWEST))
    return Expect(seg(*NEWEST), NEWEST[0])


def two_segments_swapped(raw: RawStore, ledger: Ledger) -> Expect:
    a, b = seg(500, 999), seg(1000, 1499)
    data_a, data_b = raw.read(a), raw.read(b)
    raw.write(a, data_b)
    raw.write(b, data_a)
    return Expect(a, status_names=(a, b))


def checkpoint_signed_by_another_key(raw: RawStore, ledger: Ledger) -> Expect:
    name = ckp(1500)
    impostor = NoteSigner.generate(ORIGIN)  # same origin, same size, same root: only the key differs
    raw.write(name, sign_note(format_checkpoint(ORIGIN, 1500, ledger.root(1500)), [impostor]).encode())
    return Expect(name)


def payload_altered(raw: RawStore, ledger: Ledger) -> Expect:
    name = pay(2500, 2999)
    assert ledger.entry(2600).type == "check.result"

    def edit(record: dict[str, Any]) -> None:
        record["payload"] = change_one_character(record["payload"], '"check_id":"')

    raw.write(name, edit_line(raw.read(name), 2600, edit))
    return Expect(name, 2600)


def _forge_erasure(raw: RawStore, ledger: Ledger, first: int, last: int, seq: int) -> Expect:
    """No erasure or disposal event covers ``seq``: an 'erased' record there is a payload removed unseen."""
    name = pay(first, last)
    assert ledger.entry(seq).type == "check.result"

    def edit(record: dict[str, Any]) -> None:
        record.pop("salt")
        record.pop("payload")
        record["erased"] = {"at": "2026-11-30T10:00:00.000000Z", "by_seq": seq + 1, "reason": "gdpr.erasure"}

    raw.write(name, edit_line(raw.read(name), seq, edit))
    return Expect(name, seq)


def payload_replaced_by_a_forged_erasure_record(raw: RawStore, ledger: Ledger) -> Expect:
    # A payload object whose digest the chain records: the digest names the object (the seq is not required).
    return Expect(_forge_erasure(raw, ledger, 2500, 2999, 2700).name)


def payload_in_the_newest_object_replaced_by_a_forged_erasure_record(raw: RawStore, ledger: Ledger) -> Expect:
    return _forge_erasure(raw, ledger, *NEWEST, 3200)  # its digest is not in the chain it belongs to


def segment_overwritten_without_its_digest_metadata(raw: RawStore, ledger: Ledger) -> Expect:
    """The careless attacker: the blob is re-uploaded without metadata (or the sidecar file is gone)."""
    _edit_body(raw, 1000, 1499, 1234, metadata=False)
    return Expect(seg(1000, 1499), 1234)


CASES: list[Tamper] = [
    body_character,
    body_character_in_the_newest_segment,
    body_character_with_its_hash_recomputed,
    raw_byte_flipped_inside_the_compressed_data,
    raw_byte_flipped_in_the_gzip_header,
    middle_segment_deleted,
    newest_segment_deleted_its_checkpoint_kept,
    two_segments_swapped,
    checkpoint_signed_by_another_key,
    payload_altered,
    payload_replaced_by_a_forged_erasure_record,
    payload_in_the_newest_object_replaced_by_a_forged_erasure_record,
    segment_overwritten_without_its_digest_metadata,
]


def _names_seq(message: str, seq: int) -> bool:
    return re.search(rf"\bseqs? {seq}\b", message) is not None


def _tamper(source: SealedSource, replica: Replica, tamper: Tamper) -> Expect:
    before = {name: replica.raw.read(name) for name in replica.raw.names()}
    expect = tamper(replica.raw, source.ledger)
    after = {name: replica.raw.read(name) for name in replica.raw.names()}
    assert after != before, "the tampering changed nothing"
    return expect


@pytest.mark.parametrize("tamper", CASES, ids=[case.__name__ for case in CASES])
def test_restore_refuses_the_tampered_store_naming_the_object(
    source: SealedSource, replica: Replica, tamper: Tamper, tmp_path: Path
) -> None:
    expect = _tamper(source, replica, tamper)
    target = tmp_path / "restored.db"
    with pytest.raises(IntegrityError) as refused:
        restore(replica.store, sqlite_url(target))
    message = str(refused.value)
    assert set(sqlite_log_rows(target).values()) == {0}, "the refused restore wrote to the target"
    problems = []
    if expect.name not in message:
        problems.append(f"does not name {expect.name}")
    if expect.seq is not None and not _names_seq(message, expect.seq):
        problems.append(f"does not name seq {expect.seq}")
    assert not problems, f"restore refused with {message!r}, which {' and '.join(problems)}"


@pytest.mark.parametrize("tamper", CASES, ids=[case.__name__ for case in CASES])
def test_status_cli_exits_1_naming_the_tampered_object(source: SealedSource, replica: Replica, tamper: Tamper) -> None:
    expect = _tamper(source, replica, tamper)
    result = status_cli(source, replica.raw)
    assert result.code == 1, result
    findings = [line for line in result.stdout.splitlines() if line.startswith("FINDING ")]
    for name in expect.status_names or (expect.name,):
        assert any(name in line for line in findings), f"status names no finding for {name}: {result.output}"
    assert result.stdout.splitlines()[-1].startswith("FAILED with ")
