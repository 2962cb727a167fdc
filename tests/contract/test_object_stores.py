"""One contract for every object store: the local directory and Azure Blob (Azurite in tests).

Protection state is asserted as each store *reads it back*, never as it was sent.  Azurite accepts
immutability and legal-hold headers but records none of them and does not implement Set Legal Hold, so on
the emulator the contract checks that the store reports exactly that: no retention, no hold, and a WORM
report saying immutability is not enforced.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.errors import ConflictError, NotFoundError, StorageUnavailable, ValidationError
from retention.stores.azure_blob import AzureBlobStore
from retention.stores.base import ObjectStore
from retention.stores.filesystem import FilesystemStore

AZURITE_ACCOUNT = "devstoreaccount1"


@dataclass
class Case:
    """A store under test and what its backing service is known to record."""

    kind: str
    store: ObjectStore
    records_protection: bool  # False on Azurite: it accepts the headers and forgets them


@pytest.fixture(params=["filesystem", pytest.param("azure", marks=pytest.mark.blob)])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    if request.param == "filesystem":
        yield Case("filesystem", FilesystemStore(tmp_path / "objects"), records_protection=True)
        return
    connection_string: str = request.getfixturevalue("blob_connection_string")
    container = f"contract-{uuid.uuid4().hex[:16]}"
    store = AzureBlobStore(connection_string, container=container)
    yield Case("azure", store, records_protection=AZURITE_ACCOUNT not in connection_string)
    for stored in list(store.list()):  # only unprotected objects are left on an emulator that enforces nothing
        store.delete(stored.name)


def test_stores_satisfy_the_protocol(case: Case) -> None:
    assert isinstance(case.store, ObjectStore)


def test_put_get_stat_record_the_digest(case: Case) -> None:
    data = b"sealed snapshot 2024-Q4"
    stored = case.store.put("snapshots/2024/q4.json", data)
    digest = hashlib.sha256(data).hexdigest()
    assert stored.name == "snapshots/2024/q4.json"
    assert (stored.size, stored.sha256_hex) == (len(data), digest)
    assert stored.retain_until is None and stored.legal_hold is False
    assert case.store.get("snapshots/2024/q4.json") == data
    assert case.store.stat("snapshots/2024/q4.json") == stored


def test_refuses_to_overwrite(case: Case) -> None:
    case.store.put("a/once.bin", b"first")
    with pytest.raises(ConflictError):
        case.store.put("a/once.bin", b"second")
    assert case.store.get("a/once.bin") == b"first"


def test_list_by_prefix_in_name_order_without_sidecars(case: Case) -> None:
    for name in ("r/b/2", "r/a", "r/b/1", "other/x", "r/c"):
        case.store.put(name, name.encode())
    assert [o.name for o in case.store.list("r/")] == ["r/a", "r/b/1", "r/b/2", "r/c"]
    assert [o.name for o in case.store.list()] == ["other/x", "r/a", "r/b/1", "r/b/2", "r/c"]
    assert [o.name for o in case.store.list("r/b/")] == ["r/b/1", "r/b/2"]
    assert all(o.sha256_hex == hashlib.sha256(o.name.encode()).hexdigest() for o in case.store.list())


def test_legal_hold_is_read_back(case: Case) -> None:
    held = case.store.put("held/doc", b"x", legal_hold=True)
    if not case.records_protection:  # Azurite: the header was accepted and not recorded, and we say so
        assert held.legal_hold is False and case.store.stat("held/doc").legal_hold is False
        with pytest.raises(StorageUnavailable, match="does not implement legal holds"):
            case.store.set_legal_hold("held/doc", False)
        return
    assert held.legal_hold is True
    case.store.set_legal_hold("held/doc", False)
    assert case.store.stat("held/doc").legal_hold is False
    case.store.set_legal_hold("held/doc", True)
    assert case.store.stat("held/doc").legal_hold is True
    case.store.set_legal_hold("held/doc", False)


def test_retain_until_is_read_back(case: Case) -> None:
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    stored = case.store.put("kept/doc", b"x", retain_until=until)
    assert stored == case.store.stat("kept/doc")
    if case.records_protection:
        assert stored.retain_until == until
        assert stored.immutability_mode is not None
    else:  # Azurite returns no policy at all
        assert stored.retain_until is None and stored.immutability_mode is None


def test_worm_report_is_honest(case: Case) -> None:
    report = case.store.worm_report()
    if case.kind == "filesystem":
        assert report.enforced is False
        assert "cannot enforce immutability" in report.detail
    elif not case.records_protection:
        assert report.enforced is False
        assert "let the object be deleted" in report.detail and "NOT enforced" in report.detail
    assert list(case.store.list()) == []  # the probe is never left behind or listed


def test_filesystem_honours_its_own_protection_records(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    store.put("held", b"x", legal_hold=True)
    store.put("kept", b"x", retain_until=datetime.now(UTC) + timedelta(days=1))
    for name in ("held", "kept"):
        with pytest.raises(ConflictError):
            store.delete(name)
    store.set_legal_hold("held", False)
    store.delete("held")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "kept.meta.json"]


@pytest.mark.parametrize("name", ["", "../x", "a/../b", "/abs", "a\\b", "a//b", "a/", "./a"])
def test_rejects_unsafe_names(case: Case, name: str) -> None:
    with pytest.raises(ValidationError):
        case.store.put(name, b"x")
    with pytest.raises(ValidationError):
        case.store.get(name)


def test_missing_objects_are_not_found(case: Case) -> None:
    with pytest.raises(NotFoundError):
        case.store.get("missing/obj")
    with pytest.raises(NotFoundError):
        case.store.stat("missing/obj")
    with pytest.raises(NotFoundError):
        case.store.delete("missing/obj")
    with pytest.raises(NotFoundError):
        case.store.set_legal_hold("missing/obj", True)
    assert list(case.store.list("missing/")) == []


def test_deletes_unprotected_objects(case: Case) -> None:
    case.store.put("tmp/obj", b"x")
    case.store.delete("tmp/obj")
    with pytest.raises(NotFoundError):
        case.store.get("tmp/obj")
