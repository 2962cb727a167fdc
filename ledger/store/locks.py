"""Named exclusive locks shared by every process that uses one database.

PostgreSQL: a session-level advisory lock on a connection held for the duration (released when the holder
ends or dies).  SQLite: an ``flock`` on a file beside the database file (released when the process dies).
Used so that one sealer at a time works on a log's snapshots.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, text

from ledger.store.recorder import translated


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def try_exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True while holding the lock ``name``, or False at once if another holder has it."""
    if engine.dialect.name == "postgresql":
        with _postgres_lock(engine, name) as held:
            yield held
    else:
        with _file_lock(engine, name) as held:
            yield held


@contextlib.contextmanager
def _postgres_lock(engine: Engine, name: str) -> Iterator[bool]:
    key = _advisory_key(name)
    with translated("taking a lock"):
        conn = engine.connect()
    try:
        with translated("taking a lock"):
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
        try:
            yield held
        finally:
            if held:
                with contextlib.suppress(Exception):
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def _file_lock(engine: Engine, name: str) -> Iterator[bool]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield True  # one in-memory database belongs to one process
        return
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    path = Path(database).with_name(f"{Path(database).name}.{digest}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
