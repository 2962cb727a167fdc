"""Concurrent POSTs are gathered on the event loop into shared commits; each request keeps its own answer."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from ledger.access import Role
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from tests.events import check_result

ORIGIN = "group.bank.example/ledger"


def test_concurrent_posts_each_get_their_own_answer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_rate_limit_per_second=10_000, api_rate_limit_burst=10_000)
    ledger = Ledger.create(settings, ORIGIN)
    _, token = ApiKeyStore(ledger.recorder.engine).create(Role.PUBLISHER, [ORIGIN], ["controls"], "svc", "x")
    taken = str(uuid.uuid4())
    ledger.append(check_result(taken), producer="svc")
    shared = str(uuid.uuid4())
    statuses: dict[str, list[int]] = {"fresh": [], "shared": [], "conflict": [], "batch": []}
    lock = threading.Lock()
    start = threading.Barrier(12)

    def post(kind: str, client: TestClient) -> None:
        headers = {"X-API-Key": token}
        start.wait()
        for _ in range(5):
            if kind == "fresh":
                response = client.post("/v1/events", json=check_result(), headers=headers)
            elif kind == "shared":
                response = client.post("/v1/events", json=check_result(shared), headers=headers)
            elif kind == "conflict":
                response = client.post("/v1/events", json=check_result(taken, status="fail"), headers=headers)
            else:
                batch = {"events": [check_result(), check_result(taken, status="fail")]}
                response = client.post("/v1/events:batch", json=batch, headers=headers)
            with lock:
                statuses[kind].append(response.status_code)

    kinds = ["fresh"] * 6 + ["shared"] * 3 + ["conflict"] * 2 + ["batch"]
    with TestClient(create_app(settings)) as client:
        threads = [threading.Thread(target=post, args=(kind, client)) for kind in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses["fresh"] == [201] * 30
    assert sorted(statuses["shared"]) == [200] * 14 + [201]  # stored once, then returned as stored
    assert statuses["conflict"] == [409] * 10
    assert statuses["batch"] == [409] * 5  # the conflicting batch stores nothing, not even its good event
    reopened = Ledger.open(settings, ORIGIN)
    assert reopened.head().size == 1 + 30 + 1
    assert reopened.audit().ok
