"""Legal holds and retention status through the HTTP API, and the sealer that ``ledger serve`` runs.

Everything runs on the embedded store (SQLite in a temporary data directory) through the real application,
with the default object store: the snapshot directory under the data directory.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.access import Role
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.records import EntryFilter
from retention.holds import HOLD_STREAM
from retention.sealing import SealConfig, Sealer, SealRecord, load_seal_records
from retention.stores.filesystem import FilesystemStore
from tests.events import check_result

ORIGIN = "holds.bank.example/evidence"
OTHER = "other.bank.example/evidence"
STREAM = "controls/iam-01/host-001"
PROBLEM_JSON = "application/problem+json"


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for the embedded store in ``data_dir``, whatever ``LEDGER_*`` variables the shell has."""
    defaults: dict[str, Any] = {
        "database_url": None,
        "log_origin": None,
        "signing_key": None,
        "subject_secret": None,
        "blob_connection_string": None,
        "snapshot_dir": None,
        "seal_store_name": "primary",
        "retention_policy_file": None,
    }
    return Settings(data_dir=data_dir, **(defaults | overrides))


@dataclass
class Api:
    client: TestClient
    settings: Settings
    ledger: Ledger
    tokens: dict[str, str]

    def call(self, method: str, path: str, caller: str = "officer", **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.client.request(
            method, path, headers={"X-API-Key": self.tokens[caller]}, **kwargs
        )
        return response

    def seal(self) -> SealRecord:
        """Seal everything into the default store, as ``ledger seal --all`` does."""
        store = FilesystemStore(self.settings.resolved_snapshot_dir())
        report = Sealer(self.ledger, store, self.settings.seal_store_name, SealConfig()).run_once(force=True)
        [record] = report.sealed
        return record


def _keys(ledger: Ledger, *, other: bool = False) -> dict[str, str]:
    """One key per role for ``ORIGIN`` (publisher: under ``controls``), and an officer of ``OTHER`` if asked."""
    store = ApiKeyStore(ledger.recorder.engine)
    tokens = {}
    for role in Role:
        prefixes = ["controls"] if role is Role.PUBLISHER else []
        tokens[role.value] = store.create(role, [ORIGIN], prefixes, f"{role.value}-key", utc_now())[1]
    if other:
        tokens["officer@other"] = store.create(Role.OFFICER, [OTHER], [], "officer-other", utc_now())[1]
    return tokens


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = embedded_settings(tmp_path / "data")
    ledger = Ledger.create(settings, ORIGIN)
    Ledger.create(settings, OTHER)
    for _ in range(5):
        ledger.append(check_result(stream=STREAM), producer="svc")
    tokens = _keys(ledger, other=True)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings, ledger, tokens)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


HOLD = {"scope_kind": "stream", "scope": STREAM, "reason": "litigation", "case_id": "CASE-7"}


def test_a_hold_is_set_listed_and_released_as_ledger_events_by_the_keys_name(api: Api) -> None:
    made = api.call("POST", "/v1/holds", json=HOLD)
    assert made.status_code == 201, made.text
    hold = made.json()
    assert hold["actor"] == "officer-key" and hold["active"] is True and hold["released_at"] is None
    assert {k: hold[k] for k in HOLD} == HOLD
    uuid.UUID(hold["hold_id"])

    [entry] = api.ledger.entries(EntryFilter(stream=HOLD_STREAM))
    assert entry.type == "legal_hold.set" and entry.producer == "officer-key"
    shown = api.call("GET", f"/v1/entries/{entry.seq}").json()
    assert shown["payload"]["actor"] == "officer-key" and shown["payload"]["hold_id"] == hold["hold_id"]

    for caller in ("officer", "auditor"):
        listed = api.call("GET", "/v1/holds", caller)
        assert listed.status_code == 200, listed.text
        assert listed.json() == [hold]

    released = api.call("POST", f"/v1/holds/{hold['hold_id']}/release", json={"reason": "matter closed"})
    assert released.status_code == 200, released.text
    assert released.json()["active"] is False and released.json()["released_at"] >= hold["set_at"]
    assert [e.type for e in api.ledger.entries(EntryFilter(stream=HOLD_STREAM))] == [
        "legal_hold.set",
        "legal_hold.released",
    ]
    assert api.call("GET", "/v1/holds", "auditor").json() == [released.json()]

    again = api.call("POST", f"/v1/holds/{hold['hold_id']}/release", json={"reason": "twice"})
    assert problem(again, 409)["detail"] == "the legal hold is already released"


def test_a_hold_without_a_case_id_says_so(api: Api) -> None:
    made = api.call("POST", "/v1/holds", json={"scope_kind": "incident", "scope": "INC-1", "reason": "regulator"})
    assert made.status_code == 201, made.text
    assert made.json()["case_id"] == "none recorded"


def test_only_officers_set_or_release_holds(api: Api) -> None:
    hold_id = api.call("POST", "/v1/holds", json=HOLD).json()["hold_id"]
    before = api.ledger.head().size
    for caller in ("publisher", "auditor", "admin"):
        assert "may not" in problem(api.call("POST", "/v1/holds", caller, json=HOLD), 403)["detail"]
        release = api.call("POST", f"/v1/holds/{hold_id}/release", caller, json={"reason": "no"})
        problem(release, 403)
    for caller in ("publisher", "admin"):
        problem(api.call("GET", "/v1/holds", caller), 403)
        problem(api.call("GET", "/v1/retention/status", caller), 403)
    assert api.ledger.head().size == before


def test_a_key_of_another_log_sees_no_such_log(api: Api) -> None:
    for method, path, body in [
        ("POST", "/v1/holds", HOLD),
        ("GET", "/v1/holds", None),
        ("POST", f"/v1/holds/{uuid.uuid4()}/release", {"reason": "x"}),
        ("GET", "/v1/retention/status", None),
    ]:
        response = api.call(method, f"{path}?log={ORIGIN}", "officer@other", json=body)
        assert problem(response, 404)["detail"] == "no such log"


def test_unknown_holds_and_invalid_bodies_are_refused_without_echoing(api: Api) -> None:
    unknown = str(uuid.uuid4())
    missing = api.call("POST", f"/v1/holds/{unknown}/release", json={"reason": "x"})
    assert unknown not in problem(missing, 404)["detail"]
    problem(api.call("POST", "/v1/holds/not-a-hold-id/release", json={"reason": "x"}), 422)
    before = api.ledger.head().size
    for body in [
        HOLD | {"actor": "someone-else"},  # the actor is the key's name, never the body's
        HOLD | {"scope_kind": "everything"},
        HOLD | {"reason": "   "},
        HOLD | {"scope_kind": "stream_prefix", "scope": "not a stream"},
        {k: v for k, v in HOLD.items() if k != "reason"},
        HOLD | {"case_id": 7},
    ]:
        refused = problem(api.call("POST", "/v1/holds", json=body), 422)
        assert "someone-else" not in refused["detail"] and "everything" not in refused["detail"]
    problem(api.call("POST", f"/v1/holds/{unknown}/release", json={"reason": "x", "actor": "me"}), 422)
    assert api.ledger.head().size == before


def test_retention_status_reports_the_sealed_store_and_names_a_tampered_object(api: Api) -> None:
    empty = api.call("GET", "/v1/retention/status", "auditor")
    assert empty.status_code == 200, empty.text
    assert empty.json()["ok"] is True and empty.json()["segments"] == 0 and empty.json()["unsealed_entries"] == 5

    record = api.seal()
    for caller in ("officer", "auditor"):
        status = api.call("GET", "/v1/retention/status", caller)
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["ok"] is True and body["findings"] == []
        assert body["store_name"] == "primary" and body["store"].startswith("directory ")
        assert body["worm"]["enforced"] is False and "cannot enforce" in body["worm"]["detail"]
        assert body["segments"] == 1 and body["sealed_entries"] == 5 and body["last_sealed_seq"] == 4
        assert body["objects_checked"] == 3 and body["latest_retain_until"] is not None

    segment = record.object("segment").name
    path = api.settings.resolved_snapshot_dir().joinpath(*segment.split("/"))
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))

    tampered = api.call("GET", "/v1/retention/status", "auditor")
    assert tampered.status_code == 200, tampered.text  # findings are the report, not an error
    body = tampered.json()
    assert body["ok"] is False
    assert [(f["object"], f["code"]) for f in body["findings"]] == [(segment, "digest-mismatch")]


def test_setting_and_releasing_a_hold_brings_the_sealed_objects_in_line(api: Api) -> None:
    record = api.seal()
    store = FilesystemStore(api.settings.resolved_snapshot_dir())
    held = [o.name for o in record.objects.values() if o.role != "payloads"]
    assert not any(store.stat(name).legal_hold for name in held)

    hold_id = api.call("POST", "/v1/holds", json=HOLD).json()["hold_id"]
    assert all(store.stat(name).legal_hold for name in held)
    assert not store.stat(record.object("payloads").name).legal_hold  # erasure must be able to rewrite it
    assert api.call("GET", "/v1/retention/status").json()["active_holds"] == 1

    released = api.call("POST", f"/v1/holds/{hold_id}/release", json={"reason": "matter closed"})
    assert released.status_code == 200, released.text
    assert not any(store.stat(name).legal_hold for name in held)


def test_a_store_outage_does_not_fail_a_hold_request(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    api.seal()
    snapshots = api.settings.resolved_snapshot_dir()
    shutil.rmtree(snapshots)
    snapshots.write_bytes(b"")  # the store's directory cannot be opened any more

    with caplog.at_level(logging.WARNING, logger="ledger.api"):
        made = api.call("POST", "/v1/holds", json=HOLD | {"reason": "secret matter of Jane Doe"})
    assert made.status_code == 201, made.text
    assert made.json()["hold_id"] in [h["hold_id"] for h in api.call("GET", "/v1/holds").json()]
    warnings = [r for r in caplog.records if r.name == "ledger.api" and r.levelno == logging.WARNING]
    assert warnings and all("Jane Doe" not in r.getMessage() for r in warnings)
    assert getattr(warnings[0], "error", None) == "StorageUnavailable"

    problem(api.call("GET", "/v1/retention/status"), 503)


def _sealer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "ledger-sealer" and t.is_alive()}


def test_the_servers_sealer_seals_by_itself(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path / "data", seal_every_entries=50, seal_every_seconds=3600)
    ledger = Ledger.create(settings, ORIGIN)
    tokens = _keys(ledger)
    before = _sealer_threads()  # other tests' apps may still be stopping theirs
    with TestClient(create_app(settings)) as client:
        ours = _sealer_threads() - before
        assert ours
        batch = {"events": [check_result(stream=STREAM) for _ in range(120)]}
        made = client.post("/v1/events:batch", json=batch, headers={"X-API-Key": tokens["publisher"]})
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 20
        records = load_seal_records(ledger, "primary")
        while len(records) < 2:
            assert time.monotonic() < deadline, f"{len(records)} segments sealed after 20 s"
            time.sleep(0.2)
            records = load_seal_records(ledger, "primary")
    assert [(r.first, r.last) for r in records[:2]] == [(0, 49), (50, 99)]
    assert not ours & _sealer_threads()  # stopped with the app
    store = FilesystemStore(settings.resolved_snapshot_dir())
    assert all(store.stat(o.name).sha256_hex == o.sha256 for r in records for o in r.objects.values())


def test_no_sealer_when_sealing_is_disabled(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path / "data", seal_enabled=False)
    Ledger.create(settings, ORIGIN).recorder.engine.dispose()
    before = _sealer_threads()
    with TestClient(create_app(settings)):
        assert _sealer_threads() <= before
