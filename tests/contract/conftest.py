"""The storage contract runs on every backend: the embedded SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text

from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.database import grant_app_role, make_engine, migrate

ORIGIN = "test.bank.example/ledger"


@dataclass
class Backend:
    """A ledger on one backend plus a way around its protections, as an attacker with admin rights has."""

    name: str
    settings: Settings
    admin_url: str

    def open(self) -> Ledger:
        return Ledger.open(self.settings, ORIGIN, run_migrations=False)

    @contextlib.contextmanager
    def bypass(self) -> Iterator[Connection]:
        """A connection that can change evidence rows: triggers off (superuser on PostgreSQL)."""
        engine = create_engine(self.admin_url)
        try:
            with engine.begin() as conn:
                if self.name == "postgresql":
                    conn.execute(text("SET session_replication_role = replica"))
                else:
                    names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
                    for name in list(names):
                        conn.execute(text(f'DROP TRIGGER "{name}"'))
                yield conn
        finally:
            engine.dispose()

    @contextlib.contextmanager
    def admin(self) -> Iterator[Connection]:
        """A privileged connection with every protection in place."""
        engine = create_engine(self.admin_url)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()


def _sqlite_backend(tmp_path: Path) -> Backend:
    settings = Settings(data_dir=tmp_path / "data")
    url = settings.resolved_database_url()
    migrate(make_engine(url))
    return Backend("sqlite", settings, url)


def _postgres_backend(tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    database = request.getfixturevalue("pg_database")
    server = request.getfixturevalue("postgres_server")
    admin_engine = make_engine(database.superuser_url)
    migrate(admin_engine)  # the schema belongs to the superuser; the application role only gets grants
    grant_app_role(admin_engine, server.app_role)
    admin_engine.dispose()
    settings = Settings(data_dir=tmp_path / "data", database_url=database.url)
    return Backend("postgresql", settings, database.superuser_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite_backend(tmp_path)
    request.applymarker(pytest.mark.postgres)
    return _postgres_backend(tmp_path, request)


@pytest.fixture
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _postgres_backend(tmp_path, request)


@pytest.fixture
def ledger(backend: Backend) -> Iterator[Ledger]:
    created = Ledger.create(backend.settings, ORIGIN)
    yield created
    created.recorder.engine.dispose()


def check_event(
    number: int, *, stream: str = "controls/iam-01/host-001", status: str = "pass", **extra: Any
) -> dict[str, Any]:
    """A valid check.result event whose id is derived from ``number``."""
    event: dict[str, Any] = {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "stream": stream,
        "type": "check.result",
        "occurred_at": f"2026-11-20T{number // 3600 % 24:02d}:{number // 60 % 60:02d}:{number % 60:02d}Z",
        "payload": {
            "control_id": "IAM-01",
            "check_id": f"IAM-01-{number}",
            "status": status,
            "framework_refs": ["DORA Art. 9(4)(d)"],
            "evidence": [],
            "observed_at": "2026-11-20T10:00:00Z",
        },
    }
    event.update(extra)
    return event
