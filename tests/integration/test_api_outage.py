"""PostgreSQL stopped under the API: fast 503s with Retry-After, no partial writes, recovery by itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.access import Role
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from tests.events import check_result
from tests.services import local_postgres_cluster

ORIGIN = "outage.bank.example/ledger"

pytestmark = pytest.mark.postgres


def test_database_outage_gives_fast_503s_and_service_resumes_by_itself(tmp_path: Path) -> None:
    with local_postgres_cluster() as cluster:
        settings = Settings(data_dir=tmp_path, database_url=cluster.url, database_timeout_seconds=2)
        ledger = Ledger.create(settings, ORIGIN)
        _, token = ApiKeyStore(ledger.recorder.engine).create(Role.PUBLISHER, [ORIGIN], ["controls"], "svc", "x")
        _, officer = ApiKeyStore(ledger.recorder.engine).create(Role.OFFICER, [ORIGIN], [], "off", "x")
        headers = {"X-API-Key": token}
        with TestClient(create_app(settings)) as client:
            assert client.post("/v1/events", json=check_result(), headers=headers).status_code == 201
            assert client.get("/ready").status_code == 200

            cluster.stop()
            during_outage = check_result()
            for path, body in (("/v1/events", during_outage), ("/ready", None)):
                started = time.monotonic()
                response = client.request("POST" if body else "GET", path, json=body, headers=headers)
                elapsed = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) >= 1
                assert response.headers["content-type"].startswith("application/problem+json")
                assert elapsed < 5, f"{path} took {elapsed:.1f} s"

            cluster.start()
            deadline = time.monotonic() + 30
            status = 0
            while time.monotonic() < deadline:  # recovers without a restart of the API
                status = client.post("/v1/events", json=during_outage, headers=headers).status_code
                if status == 201:
                    break
                time.sleep(0.5)
            assert status == 201
            assert client.get("/ready").status_code == 200
            entries = client.get("/v1/entries", headers={"X-API-Key": officer}).json()["entries"]
            assert [e["event_id"] for e in entries][-1] == during_outage["id"]
            assert len(entries) == 2  # nothing half-written during the outage
        reopened = Ledger.open(settings, ORIGIN)
        assert reopened.audit().ok
        reopened.recorder.engine.dispose()
        ledger.recorder.engine.dispose()
