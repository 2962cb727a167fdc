"""Loading a whole log into an empty database in one transaction (restore from sealed snapshots).

Nothing is visible until :meth:`BulkLog.finish` commits: a restore that stops half-way (a refused object,
a crash) leaves the target database exactly as it was.  Rows go through the same driver paths as appends:
binary ``COPY`` on PostgreSQL, prepared ``executemany`` on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, Engine, Index, insert, select, update

from ledger.errors import ConflictError
from ledger.store.database import WRITE_OPTION
from ledger.store.recorder import (
    ENTRY_INSERT_COLUMNS,
    NODE_INSERT_COLUMNS,
    PAYLOAD_INSERT_COLUMNS,
    SUBJECT_INSERT_COLUMNS,
    _entry_values,
    _insert_key,
    _write_postgres,
    _write_sqlite,
    translated,
)
from ledger.store.records import CheckpointRecord, EntryRecord, KeyRecord, LogHead, PayloadRecord
from ledger.store.tables import checkpoints, entries, logs, merkle_nodes, payloads, streams

__all__ = ["BulkLog", "LoadedEntry", "bulk_load"]


@dataclass(frozen=True, slots=True)
class LoadedEntry:
    entry: EntryRecord
    payload: PayloadRecord
    subjects: tuple[str, ...]


class BulkLog:
    """A log being loaded inside one open transaction."""

    def __init__(self, connection: Connection, log_id: int) -> None:
        self._connection = connection
        self.log_id = log_id

    def add(self, loaded: Sequence[LoadedEntry], nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Insert entries with their payload rows, subject refs and the tree nodes they complete."""
        log_id = self.log_id
        bulk = [
            ("entries", ENTRY_INSERT_COLUMNS, [(log_id, *_entry_values(item.entry)) for item in loaded]),
            (
                "payloads",
                PAYLOAD_INSERT_COLUMNS,
                [(log_id, item.entry.seq, item.payload.salt, item.payload.payload) for item in loaded],
            ),
            (
                "entry_subjects",
                SUBJECT_INSERT_COLUMNS,
                [(log_id, subject, item.entry.seq) for item in loaded for subject in item.subjects],
            ),
            (
                "merkle_nodes",
                NODE_INSERT_COLUMNS,
                [(log_id, level, idx, ((idx + 1) << level) - 1, digest) for level, idx, digest in nodes],
            ),
        ]
        raw = self._connection.connection.driver_connection
        with translated("restoring entries"):
            if isinstance(raw, psycopg.Connection):
                _write_postgres(raw, bulk, [], commit=False)
            else:
                _write_sqlite(raw, bulk, [])
            for item in loaded:
                record = item.payload
                if record.payload is None:
                    self._connection.execute(
                        update(payloads)
                        .where(payloads.c.log_id == log_id, payloads.c.seq == record.seq)
                        .values(
                            erased_at=record.erased_at,
                            erased_by_seq=record.erased_by_seq,
                            erasure_reason=record.erasure_reason,
                        )
                    )

    def finish(
        self,
        head: LogHead,
        keys: Sequence[KeyRecord],
        stream_next: dict[str, int],
        checkpoint_records: Sequence[CheckpointRecord],
    ) -> None:
        """Write keys, stream heads, checkpoints and the head (the transaction commits on leaving ``bulk_load``)."""
        conn = self._connection
        with translated("restoring the log head"):
            for key in keys:
                _insert_key(conn, self.log_id, key)
            if stream_next:
                conn.execute(
                    insert(streams),
                    [{"log_id": self.log_id, "stream": name, "next_seq": nxt} for name, nxt in stream_next.items()],
                )
            for record in checkpoint_records:
                conn.execute(
                    insert(checkpoints).values(
                        log_id=self.log_id,
                        size=record.size,
                        root=record.root,
                        note=record.note,
                        created_at=record.created_at,
                    )
                )
            conn.execute(
                update(logs)
                .where(logs.c.id == self.log_id)
                .values(
                    size=head.size,
                    head_hash=head.head_hash,
                    frontier=b"".join(head.frontier),
                    appends_since_checkpoint=0,
                    active_key_id=head.active_key_id,
                )
            )


DEFERRED_INDEX_TABLES = (entries, merkle_nodes)


@contextmanager
def bulk_load(engine: Engine, origin: str, created_at: str, active_key_id: str) -> Iterator[BulkLog]:
    """Create the log ``origin`` (refused if it exists) and load it in one transaction: all or nothing.

    Into a database that holds no log yet, the query indexes of ``entries`` and ``merkle_nodes`` (not the unique
    constraints, which keep checking every row) are dropped for the load and built once at the end, inside the
    same transaction: building an index once is much cheaper than maintaining it row by row.
    """
    with translated("restoring"), engine.connect() as raw_conn:
        conn = raw_conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.execute(select(logs.c.id).where(logs.c.origin == origin)).first() is not None:
                raise ConflictError(f"log {origin!r} already exists in the target database: restore needs a fresh one")
            deferred = [] if conn.execute(select(logs.c.id).limit(1)).first() is not None else _secondary_indexes()
            for index in deferred:
                index.drop(conn)
            result = conn.execute(
                insert(logs).values(
                    origin=origin,
                    size=0,
                    head_hash=bytes(32),
                    frontier=b"",
                    appends_since_checkpoint=0,
                    created_at=created_at,
                    active_key_id=active_key_id,
                )
            )
            yield BulkLog(conn, int(result.inserted_primary_key[0]))  # type: ignore[index]
            for index in deferred:
                index.create(conn)


def _secondary_indexes() -> list[Index]:
    return [index for table in DEFERRED_INDEX_TABLES for index in sorted(table.indexes, key=lambda i: str(i.name))]
