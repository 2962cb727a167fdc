"""Concurrent writers on PostgreSQL, threads and separate processes, extend one chain with no fork or gap."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.database import grant_app_role, make_engine, migrate

ORIGIN = "concurrent.bank.example/ledger"

pytestmark = pytest.mark.postgres


def _event(writer: str, number: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"writers/{writer}",
        "type": "test.written",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": {"writer": writer, "number": number},
    }


def _write(settings_json: str, writer: str, batches: int, batch_size: int) -> int:
    """Run in a separate process: open the ledger and append batches, some of one event."""
    ledger = Ledger.open(Settings.model_validate_json(settings_json), ORIGIN, run_migrations=False)
    written = 0
    for batch in range(batches):
        size = 1 if batch % 2 else batch_size
        ledger.append_batch([_event(writer, batch * 1000 + n) for n in range(size)], producer=writer)
        written += size
    ledger.recorder.engine.dispose()
    return written


@pytest.fixture
def settings(pg_database: Any, postgres_server: Any, tmp_path: Path) -> Settings:
    admin = make_engine(pg_database.superuser_url)
    migrate(admin)
    grant_app_role(admin, postgres_server.app_role)
    admin.dispose()
    settings = Settings(data_dir=tmp_path, database_url=pg_database.url)
    Ledger.create(settings, ORIGIN).recorder.engine.dispose()
    return settings


def _check_one_chain(ledger: Ledger, expected: int) -> None:
    entries = list(ledger.entries())
    assert [e.seq for e in entries] == list(range(expected))  # gap-free
    report = ledger.audit()
    assert report.ok, report.findings[:5]  # every prev links to its predecessor: no fork
    per_stream: dict[str, list[int]] = {}
    for entry in entries:
        per_stream.setdefault(entry.stream, []).append(entry.stream_seq)
    for stream_seqs in per_stream.values():
        assert stream_seqs == list(range(len(stream_seqs)))


def test_threads_share_one_chain(settings: Settings) -> None:
    ledger = Ledger.open(settings, ORIGIN, run_migrations=False)
    with ThreadPoolExecutor(6) as pool:
        counts = list(pool.map(lambda w: _write(settings.model_dump_json(), f"t{w}", 12, 7), range(6)))
    _check_one_chain(ledger, sum(counts))


def test_processes_share_one_chain(settings: Settings) -> None:
    context = multiprocessing.get_context("spawn")
    payload = Settings.model_dump_json(settings, exclude={"signing_key", "subject_secret", "blob_connection_string"})
    with context.Pool(3) as pool:
        counts = pool.starmap(_write, [(payload, f"p{w}", 10, 9) for w in range(3)])
    ledger = Ledger.open(settings, ORIGIN, run_migrations=False)
    _check_one_chain(ledger, sum(counts))
