"""The baselines the ledger is compared with: plain psycopg 3 writes and the ``eventsourcing`` library.

Rows for the plain baselines have the shape and size of a ledger entry (a canonical JSON body of the
same fields, its 32-byte hash, a 64-byte Ed25519 signature and the payload bytes), built outside the timed
sections.  The eventsourcing baseline stores each event as one ``StoredEvent`` whose state is the whole
event dict as JSON, in the event's stream, with the stream position as the originator version.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from sqlalchemy.engine import make_url

from benchmarks.common import ORIGIN, PRODUCER, conninfo

if TYPE_CHECKING:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder

    from tests.services import Database

RAW_TABLE = "raw_entries"
RAW_COLUMNS = "seq, event_id, stream, body, hash, signature, payload"
RAW_DDL = f"""
CREATE TABLE {RAW_TABLE} (
    seq bigint PRIMARY KEY,
    event_id text NOT NULL,
    stream text NOT NULL,
    body bytea NOT NULL,
    hash bytea NOT NULL,
    signature bytea NOT NULL,
    payload bytea NOT NULL
)
"""
RAW_COPY = f"COPY {RAW_TABLE} ({RAW_COLUMNS}) FROM STDIN (FORMAT BINARY)"
RAW_COPY_TYPES = ["int8", "text", "text", "bytea", "bytea", "bytea", "bytea"]
RAW_INSERT = f"INSERT INTO {RAW_TABLE} ({RAW_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
RECORDED_AT = "2026-11-20T10:00:01.000000Z"
ES_TOPIC = "benchmarks.events:CheckResult"


# --- plain rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRow:
    seq: int
    event_id: str
    stream: str
    body: bytes
    hash: bytes
    payload: bytes

    def with_signature(self, signature: bytes) -> tuple[Any, ...]:
        return (self.seq, self.event_id, self.stream, self.body, self.hash, signature, self.payload)


@dataclass
class RawRowMaker:
    """Turns workload events into ledger-sized rows: same body fields, chained hashes, salted digest."""

    next_seq: int = 0
    prev: bytes = bytes(32)
    stream_next: dict[str, int] = field(default_factory=dict)

    def rows(self, events: Sequence[dict[str, Any]]) -> list[RawRow]:
        made = []
        for event in events:
            payload = orjson.dumps(event["payload"], option=orjson.OPT_SORT_KEYS)
            stream = event["stream"]
            stream_seq = self.stream_next.get(stream, 0)
            self.stream_next[stream] = stream_seq + 1
            body = orjson.dumps(
                {
                    "v": 1,
                    "log": ORIGIN,
                    "seq": self.next_seq,
                    "prev": self.prev.hex(),
                    "id": event["id"],
                    "stream": stream,
                    "stream_seq": stream_seq,
                    "type": event["type"],
                    "occurred_at": "2026-11-20T10:00:00.000000Z",
                    "recorded_at": RECORDED_AT,
                    "producer": PRODUCER,
                    "payload_digest": hashlib.sha256(os.urandom(16) + payload).hexdigest(),
                    "subjects": [],
                },
                option=orjson.OPT_SORT_KEYS,
            )
            digest = hashlib.sha256(b"\x00" + body).digest()
            made.append(RawRow(self.next_seq, event["id"], stream, body, digest, payload))
            self.prev = digest
            self.next_seq += 1
        return made


@contextlib.contextmanager
def raw_connection(database: Database) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg 3 connection (not autocommit) to a database holding an empty ``raw_entries`` table."""
    with psycopg.connect(conninfo(database.superuser_url)) as conn:
        conn.execute(RAW_DDL)
        conn.commit()
        yield conn


def copy_rows(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    """One binary ``COPY ... FROM STDIN`` of the rows, then a commit."""
    with conn.cursor() as cursor, cursor.copy(RAW_COPY) as copy:
        copy.set_types(RAW_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
    conn.commit()


def insert_row(conn: psycopg.Connection[Any], row: tuple[Any, ...]) -> None:
    """One plain INSERT, then a commit."""
    conn.execute(RAW_INSERT, row, prepare=True)
    conn.commit()


# --- eventsourcing -------------------------------------------------------------------------------------


def eventsourcing_version() -> str | None:
    try:
        return importlib.metadata.version("eventsourcing")
    except importlib.metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def eventsourcing_recorder(database: Database) -> Iterator[PostgresApplicationRecorder]:
    """eventsourcing's ``PostgresApplicationRecorder`` on its own database, table created.

    Stream names are not UUIDs, so the datastore uses ``originator_id_type="text"``; everything else is
    the library's default (one pooled connection, no database functions).
    """
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    url = make_url(database.superuser_url)
    datastore = PostgresDatastore(
        dbname=url.database or "",
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        originator_id_type="text",
    )
    try:
        recorder = PostgresApplicationRecorder(datastore)
        recorder.create_table()
        yield recorder
    finally:
        datastore.close()


@dataclass
class StoredEventMaker:
    """Workload events as eventsourcing ``StoredEvent``s: one aggregate sequence per stream."""

    versions: dict[str, int] = field(default_factory=dict)

    def stored(self, events: Sequence[dict[str, Any]]) -> list[StoredEvent]:
        from eventsourcing.persistence import StoredEvent

        made = []
        for event in events:
            stream = event["stream"]
            version = self.versions.get(stream, 1)
            self.versions[stream] = version + 1
            made.append(StoredEvent(stream, version, ES_TOPIC, orjson.dumps(event)))
        return made
