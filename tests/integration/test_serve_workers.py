"""``ledger serve --workers N``: several processes answer over one PostgreSQL log, the background work runs once.

The server is started as deployed (a subprocess of the CLI): appends over new connections reach both worker
processes (their access-log lines carry their process ids), every acknowledged append is in one verified chain,
``GET /metrics`` in either worker adds up the counters of both, and the sealer runs in the supervising process
only.  The embedded SQLite store refuses more than one worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.serving import STARTUP_GRACE_SECONDS, STOP_TIMEOUT_SECONDS
from ledger.access import Role
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from retention.sealing import SEALED_TYPE
from tests.events import check_result
from tests.services import free_port, production_layout

pytestmark = pytest.mark.postgres

ORIGIN = "workers.test.bank.example/ledger"
APPENDS = 120
START_TIMEOUT = 60.0


@pytest.fixture
def settings(pg_database: Any, postgres_server: Any, tmp_path: Path) -> Settings:
    production_layout(pg_database, postgres_server.app_role)
    settings = Settings(data_dir=tmp_path / "data", database_url=pg_database.url)
    Ledger.create(settings, ORIGIN).recorder.engine.dispose()
    return settings


def _token(settings: Settings, role: Role, prefixes: list[str]) -> str:
    store = ApiKeyStore(Ledger.open_recorder(settings).engine)
    try:
        return store.create(role, [ORIGIN], prefixes, f"{role.value}-workers", utc_now())[1]
    finally:
        store.engine.dispose()


def _environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}
    env.update(LEDGER_DATA_DIR=str(settings.data_dir), **extra)
    if settings.database_url:
        env["LEDGER_DATABASE_URL"] = settings.database_url
    return env


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _wait_until_serving(server: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert server.poll() is None, log_path.read_text()
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, the supervisor's graceful stop (killed if it takes longer than its workers may)."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT_SECONDS + 10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_two_worker_processes_share_one_log_and_run_the_background_work_once(
    settings: Settings, tmp_path: Path
) -> None:
    publisher = _token(settings, Role.PUBLISHER, ["controls"])
    admin = _token(settings, Role.ADMIN, [])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    env = _environment(settings, LEDGER_SEAL_EVERY_ENTRIES="50", LEDGER_SEAL_EVERY_SECONDS="1")
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--workers", "2"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_until_serving(server, base, log_path)
        assert len(_children(server.pid)) >= 2  # the two workers (and multiprocessing's helper, if any)

        def append(number: int) -> httpx.Response:
            # a new connection each time, so that the kernel hands the requests to both workers
            event = check_result(stream=f"controls/iam-01/host-{number % 4:03d}")
            return httpx.post(f"{base}/v1/events", json=event, headers={"X-API-Key": publisher}, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(append, range(APPENDS)))
        assert [answer.status_code for answer in answers] == [201] * APPENDS
        seqs = sorted(answer.json()["entry"]["seq"] for answer in answers)

        # either worker answers /metrics with the appends of both
        for _ in range(4):
            metrics = httpx.get(f"{base}/metrics", headers={"X-API-Key": admin}, timeout=10)
            assert metrics.status_code == 200
            assert f'ledger_appended_entries_total{{log="{ORIGIN}"}} {float(APPENDS)}' in metrics.text

        # the sealer of the supervising process seals what the workers appended
        ledger = Ledger.open(settings, ORIGIN)
        try:
            deadline = time.monotonic() + 60
            while not any(e.type == SEALED_TYPE for e in ledger.entries()):
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.5)
            entries = list(ledger.entries())
            assert [e.seq for e in entries] == list(range(len(entries)))  # one chain, no gap
            published = [e for e in entries if e.producer == "publisher-workers"]  # the key's name
            assert sorted(e.seq for e in published) == seqs
            assert ledger.audit().ok
        finally:
            ledger.recorder.engine.dispose()
    finally:
        _stop(server)
    assert server.returncode == 0, log_path.read_text()[-3000:]
    output = log_path.read_text()
    assert "Traceback" not in output, output[-3000:]
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "ledger.api.access" and r.get("route") == "/v1/events"]
    assert len(access) == APPENDS
    assert len({r["pid"] for r in access}) == 2 and server.pid not in {r["pid"] for r in access}
    [sealer] = [r for r in records if r["message"].startswith("sealing to the")]
    assert sealer["pid"] == server.pid


def _workers(supervisor: int) -> list[int]:
    """The server processes under the supervisor (multiprocessing may add a resource tracker beside them)."""
    return [
        pid for pid in _children(supervisor) if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_a_worker_that_dies_is_replaced_and_a_port_in_use_is_refused(settings: Settings, tmp_path: Path) -> None:
    publisher = _token(settings, Role.PUBLISHER, ["controls"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--workers", "2"]
    env = _environment(settings, LEDGER_SEAL_ENABLED="false")
    with log_path.open("wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_until_serving(server, base, log_path)
        first = _workers(server.pid)
        assert len(first) == 2
        # a worker that exits within STARTUP_GRACE_SECONDS of its start counts as a failure to start
        time.sleep(STARTUP_GRACE_SECONDS + 0.5)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            now = _workers(server.pid)
            if len(now) == 2 and first[0] not in now:
                break
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        _wait_until_serving(server, base, log_path)
        for _ in range(20):
            answer = httpx.post(f"{base}/v1/events", json=check_result(), headers={"X-API-Key": publisher}, timeout=30)
            assert answer.status_code == 201

        # a second server on the same port is refused at once, instead of sharing the port with this one
        second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert second.returncode == 2
        assert second.stderr.splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
        assert server.poll() is None
    finally:
        _stop(server)
    assert server.returncode == 0, log_path.read_text()[-3000:]
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any("exited with code -9; starting another" in r["message"] for r in records)


def test_the_embedded_store_refuses_more_than_one_worker(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --workers above 1 needs PostgreSQL (LEDGER_DATABASE_URL): the embedded SQLite store is served by "
        "one process"
    ]
