"""Blob storage unavailable: sealing waits, appends go on, and sealing catches up once the store is back.

A real Azurite server of the test's own (so that it can be stopped and started again on the same port and
folder) takes the sealed segments of a log while events are appended. It is stopped; appends keep committing
at their usual pace while every sealing attempt fails; once it is started again the sealer seals everything
that waited, and the store restores into a fresh database that audits clean.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.service import Ledger
from ledger.settings import Settings
from retention.restore import restore
from retention.sealing import SealConfig, Sealer, load_seal_records
from retention.stores.azure_blob import AzureBlobStore
from tests import services
from tests.sealing_helpers import append_mixed, fresh_container_name, sqlite_url

ORIGIN = "blob-outage.bank.example/ledger"
STORE = "azure-blob"
SEGMENT = 50

pytestmark = pytest.mark.blob


class Azurite:
    """An Azurite process that keeps its port and folder across a stop and a start."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.port = services.free_port()
        self.connection_string = services.azurite_connection_string(f"http://127.0.0.1:{self.port}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            str(services.azurite_binary()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.location),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ]
        self.process = subprocess.Popen(
            argv, cwd=self.location, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                services._probe_blob(self.connection_string)
                return
            except Exception:
                assert self.process.poll() is None, "Azurite exited"
                assert time.monotonic() < deadline, "Azurite did not answer in 60 s"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[Azurite]:
    location = tmp_path / "azurite"
    location.mkdir()
    server = Azurite(location)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _sealed_through(ledger: Ledger) -> int:
    records = load_seal_records(ledger, STORE)
    return records[-1].last if records else -1


def _wait_for(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_blob_outage_delays_sealing_and_never_blocks_appends(tmp_path: Path, azurite: Azurite) -> None:
    ledger = Ledger.create(Settings(data_dir=tmp_path / "data"), ORIGIN)
    store = AzureBlobStore(azurite.connection_string, container=fresh_container_name("outage"))
    sealer = Sealer(ledger, store, STORE, SealConfig(every_entries=SEGMENT))
    stop = threading.Event()
    thread = threading.Thread(target=sealer.run_forever, args=(stop, 0.1), name="test-sealer", daemon=True)
    thread.start()
    try:
        append_mixed(ledger, 0, 120, batch=40)
        _wait_for(lambda: _sealed_through(ledger) >= 99, 30, "the first two segments to be sealed")

        azurite.stop()
        before_outage = _sealed_through(ledger)
        size_before = ledger.head().size
        slowest = 0.0
        for first in range(size_before, size_before + 300, 30):
            began = time.monotonic()
            append_mixed(ledger, first, 30, batch=30)
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(0.1)  # sealing cycles fail in between
        assert ledger.head().size >= size_before + 300  # every append committed during the outage
        assert _sealed_through(ledger) == before_outage  # nothing could be sealed
        # appends do not wait for the store: a batch of 30 takes milliseconds, the store's retries seconds
        assert slowest < 5.0, f"an append took {slowest:.1f} s while the store was down"

        azurite.start()
        target = size_before + 300 - SEGMENT
        _wait_for(lambda: _sealed_through(ledger) >= target, 90, "sealing to catch up after the outage")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()

    records = load_seal_records(ledger, STORE)
    assert [record.first for record in records] == [0, *(record.last + 1 for record in records[:-1])]
    url = sqlite_url(tmp_path / "restored.db")
    report = restore(store, url)
    assert report.size == records[-1].last + 1
    restored = Ledger.open(Settings(data_dir=tmp_path / "data", database_url=url))
    assert restored.audit().findings == []
    restored.recorder.engine.dispose()
    ledger.recorder.engine.dispose()
