"""The SQL recorder: one SQLAlchemy Core implementation for PostgreSQL and SQLite.

Appends run inside :meth:`SqlRecorder.append_transaction`, which locks the log head (``SELECT ... FOR
UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so concurrent writers, threads or processes,
extend one gap-free chain.  Every driver exception is translated into a ledger error here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, Protocol

import psycopg
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    SmallInteger,
    and_,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ledger.errors import ConflictError, NotFoundError, StorageUnavailable
from ledger.store.database import WRITE_OPTION
from ledger.store.records import (
    CheckpointRecord,
    EntryFilter,
    EntryRecord,
    KeyRecord,
    LogHead,
    NewEntry,
    NodeRecord,
    PayloadRecord,
)
from ledger.store.tables import (
    checkpoints,
    entries,
    entry_subjects,
    log_keys,
    logs,
    merkle_nodes,
    metadata,
    payloads,
    streams,
)

ENTRY_COLUMNS = (
    entries.c.seq,
    entries.c.event_id,
    entries.c.stream,
    entries.c.stream_seq,
    entries.c.type,
    entries.c.producer,
    entries.c.occurred_at,
    entries.c.recorded_at,
    entries.c.body,
    entries.c.hash,
    entries.c.signature,
    entries.c.key_id,
)
_PAYLOAD_COLUMNS = (  # the fields of PayloadRecord, in order
    payloads.c.seq,
    payloads.c.salt,
    payloads.c.payload,
    payloads.c.erased_at,
    payloads.c.erased_by_seq,
    payloads.c.erasure_reason,
)
ENTRY_INSERT_COLUMNS = ("log_id", *(column.name for column in ENTRY_COLUMNS))
_IN_CHUNK = 500
# The log's size (as level -1), the entry hashes of the wanted leaves and the wanted inner nodes, by primary key.
_PG_TREE_NODES = text(
    "SELECT -1 AS level, l.size AS idx, NULL AS hash FROM logs l WHERE l.id = :log "
    "UNION ALL SELECT 0, e.seq, e.hash FROM entries e "
    "WHERE e.log_id = :log AND e.seq = ANY(CAST(:seqs AS bigint[])) "
    "UNION ALL SELECT n.level, n.idx, n.hash FROM unnest(CAST(:levels AS smallint[]), CAST(:idxs AS bigint[])) "
    "AS k(level, idx) JOIN merkle_nodes n ON n.log_id = :log AND n.level = k.level AND n.idx = k.idx"
)


class Recorder(Protocol):
    """What the service needs from a store; :class:`SqlRecorder` implements it for both databases."""

    def create_log(self, origin: str, key: KeyRecord, created_at: str) -> LogHead: ...
    def get_log(self, origin: str) -> LogHead: ...
    def list_logs(self) -> list[LogHead]: ...
    def append_transaction(
        self, log_id: int, event_ids: Sequence[str] = ..., stream_names: Sequence[str] = ...
    ) -> Any: ...
    def keys(self, log_id: int) -> list[KeyRecord]: ...
    def iter_entries(self, log_id: int, filters: EntryFilter, batch_size: int = ...) -> Iterator[EntryRecord]: ...


def _entry(row: Any) -> EntryRecord:
    return EntryRecord(
        seq=row.seq,
        event_id=row.event_id,
        stream=row.stream,
        stream_seq=row.stream_seq,
        type=row.type,
        producer=row.producer,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        body=bytes(row.body),
        hash=bytes(row.hash),
        signature=bytes(row.signature),
        key_id=row.key_id,
    )


def _head(row: Any) -> LogHead:
    frontier = bytes(row.frontier)
    return LogHead(
        log_id=row.id,
        origin=row.origin,
        size=row.size,
        head_hash=bytes(row.head_hash),
        frontier=tuple(frontier[i : i + 32] for i in range(0, len(frontier), 32)),
        appends_since_checkpoint=row.appends_since_checkpoint,
        created_at=row.created_at,
        active_key_id=row.active_key_id,
    )


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        key_id=row.key_id,
        verifier_key=row.verifier_key,
        valid_from_seq=row.valid_from_seq,
        valid_until_seq=row.valid_until_seq,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
    )


def _payload(row: Any) -> PayloadRecord:
    return PayloadRecord(
        seq=row.seq,
        salt=None if row.salt is None else bytes(row.salt),
        payload=None if row.payload is None else bytes(row.payload),
        erased_at=row.erased_at,
        erased_by_seq=row.erased_by_seq,
        erasure_reason=row.erasure_reason,
    )


def _leaf_hashes(conn: Any, log_id: int, seqs: Iterable[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for chunk in _chunks(sorted(set(seqs))):
        rows = conn.execute(
            select(entries.c.seq, entries.c.hash).where(entries.c.log_id == log_id, entries.c.seq.in_(chunk))
        )
        found.update((row.seq, bytes(row.hash)) for row in rows)
    return found


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Translate driver exceptions into ledger errors (DESIGN.md section 4, rule 3)."""
    try:
        yield
    except (psycopg.IntegrityError, sqlite3.IntegrityError) as exc:
        raise ConflictError(f"{action}: the database refused a conflicting write") from exc
    except (psycopg.Error, sqlite3.Error) as exc:
        raise StorageUnavailable(f"{action}: the database failed ({type(exc).__name__})") from exc
    except IntegrityError as exc:
        raise ConflictError(f"{action}: the database refused a conflicting write") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated or "connect" in str(exc.orig).lower():
            raise StorageUnavailable(f"{action}: the database is unreachable") from exc
        raise StorageUnavailable(f"{action}: the database refused the operation ({type(exc.orig).__name__})") from exc
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"{action}: {type(exc).__name__}") from exc


class AppendTransaction:
    """One locked append: read what the batch needs, then write everything in the same transaction."""

    def __init__(self, connection: Connection, head: LogHead, prefetched: _Prefetched) -> None:
        self._connection = connection
        self.head = head
        self._prefetched = prefetched

    def existing_events(self, event_ids: Sequence[str]) -> dict[str, EntryRecord]:
        """Stored entries among ``event_ids`` (read together with the head lock)."""
        known = self._prefetched.existing
        return {event_id: known[event_id] for event_id in event_ids if event_id in known}

    def payloads(self, seqs: Sequence[int]) -> dict[int, PayloadRecord]:
        return _payloads(self._connection, self.head.log_id, seqs)

    def prefetched_stream_heads(self) -> dict[str, int]:
        """Next stream_seq of every stream read with the head lock (a copy the caller may change)."""
        return dict(self._prefetched.stream_heads)

    def stream_heads(self, names: Sequence[str]) -> dict[str, int]:
        """Next stream_seq of each named stream that exists (read together with the head lock)."""
        heads = self._prefetched.stream_heads
        return {name: heads[name] for name in names if name in heads}

    def keys(self) -> list[KeyRecord]:
        return _keys(self._connection, self.head.log_id)

    def write(
        self,
        new_entries: Sequence[NewEntry],
        nodes: Sequence[tuple[int, int, bytes]],
        stream_next: dict[str, int],
        new_head: LogHead,
        checkpoint: CheckpointRecord | None,
        *,
        commit: bool = False,
    ) -> None:
        """Insert entries, payloads, subjects and tree nodes, advance streams and the head, add the checkpoint.

        With ``commit`` the transaction is committed in the same PostgreSQL pipeline (one round trip
        saved per append); nothing may be written in this transaction afterwards.

        Rows go through the driver directly, inside the current transaction: on PostgreSQL large batches
        use ``COPY`` and everything else is sent in one pipeline (one round trip), on SQLite prepared
        ``executemany``.  This is the ingest hot path; table and column names are module constants.
        """
        log_id = self.head.log_id
        bulk: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = [
            ("entries", ENTRY_INSERT_COLUMNS, [(log_id, *_entry_values(n.entry)) for n in new_entries]),
            ("payloads", PAYLOAD_INSERT_COLUMNS, [(log_id, n.entry.seq, n.salt, n.payload) for n in new_entries]),
            (
                "entry_subjects",
                SUBJECT_INSERT_COLUMNS,
                [(log_id, s, n.entry.seq) for n in new_entries for s in n.subjects],
            ),
            (
                "merkle_nodes",
                NODE_INSERT_COLUMNS,
                [(log_id, level, idx, ((idx + 1) << level) - 1, digest) for level, idx, digest in nodes],
            ),
        ]
        raw = self._connection.connection.driver_connection
        on_postgres = isinstance(raw, psycopg.Connection)
        statements: list[tuple[str, list[tuple[Any, ...]]]] = []
        if stream_next and on_postgres:  # one statement for every stream, not one per stream
            statements.append((UPSERT_STREAMS_POSTGRES_SQL, [(log_id, list(stream_next), list(stream_next.values()))]))
        elif stream_next:
            rows = [(log_id, name, nxt) for name, nxt in stream_next.items()]
            statements.append((UPSERT_STREAM_SQL, rows))
        frontier = b"".join(new_head.frontier)
        statements.append(
            (
                UPDATE_HEAD_SQL,
                [
                    (
                        new_head.size,
                        new_head.head_hash,
                        frontier,
                        new_head.appends_since_checkpoint,
                        new_head.active_key_id,
                        log_id,
                    )
                ],
            )
        )
        if checkpoint is not None:
            row = (log_id, checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.created_at)
            statements.append((INSERT_CHECKPOINT_SQL, [row]))
        if isinstance(raw, psycopg.Connection):
            _write_postgres(raw, bulk, statements, commit=commit)
        else:
            _write_sqlite(raw, bulk, statements)
        self.head = new_head

    def add_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        self._connection.execute(
            insert(checkpoints).values(
                log_id=self.head.log_id,
                size=checkpoint.size,
                root=checkpoint.root,
                note=checkpoint.note,
                created_at=checkpoint.created_at,
            )
        )

    def add_key(self, key: KeyRecord) -> None:
        _insert_key(self._connection, self.head.log_id, key)

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for writes that must commit with the entries (ingest offsets)."""
        return self._connection

    def set_active_key(self, key_id: str) -> None:
        self._connection.execute(update(logs).where(logs.c.id == self.head.log_id).values(active_key_id=key_id))
        self.head = replace(self.head, active_key_id=key_id)

    def close_key(self, key_id: str, valid_until_seq: int, valid_until: str) -> None:
        self._connection.execute(
            update(log_keys)
            .where(log_keys.c.log_id == self.head.log_id, log_keys.c.key_id == key_id)
            .values(valid_until_seq=valid_until_seq, valid_until=valid_until)
        )


COPY_THRESHOLD = 64
PAYLOAD_INSERT_COLUMNS = ("log_id", "seq", "salt", "payload")
SUBJECT_INSERT_COLUMNS = ("log_id", "subject", "seq")
NODE_INSERT_COLUMNS = ("log_id", "level", "idx", "end_seq", "hash")
UPSERT_STREAM_SQL = (
    "INSERT INTO streams (log_id, stream, next_seq) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (log_id, stream) DO UPDATE SET next_seq = excluded.next_seq"
)
UPSERT_STREAMS_POSTGRES_SQL = (
    "INSERT INTO streams (log_id, stream, next_seq) "
    "SELECT {p}, stream, next_seq FROM unnest({p}::text[], {p}::bigint[]) AS advanced(stream, next_seq) "
    "ON CONFLICT (log_id, stream) DO UPDATE SET next_seq = excluded.next_seq"
)
UPDATE_HEAD_SQL = (
    "UPDATE logs SET size = {p}, head_hash = {p}, frontier = {p}, appends_since_checkpoint = {p}, "
    "active_key_id = {p} WHERE id = {p}"
)
INSERT_CHECKPOINT_SQL = (
    "INSERT INTO checkpoints (log_id, size, root, note, created_at) VALUES ({p}, {p}, {p}, {p}, {p})"
)
BulkRows = Sequence[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]
Statements = Sequence[tuple[str, list[tuple[Any, ...]]]]


def _entry_values(entry: EntryRecord) -> tuple[Any, ...]:
    return (
        entry.seq,
        entry.event_id,
        entry.stream,
        entry.stream_seq,
        entry.type,
        entry.producer,
        entry.occurred_at,
        entry.recorded_at,
        entry.body,
        entry.hash,
        entry.signature,
        entry.key_id,
    )


def _insert_sql(table: str, columns: Sequence[str], placeholder: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(placeholder for _ in columns)})"  # noqa: S608


def _binary_copy_type(table: str, column: str) -> str:
    """The PostgreSQL type name binary COPY needs for a column of ``ledger/store/tables.py``."""
    column_type = metadata.tables[table].c[column].type
    if isinstance(column_type, LargeBinary):
        return "bytea"
    if isinstance(column_type, SmallInteger):
        return "int2"
    if isinstance(column_type, BigInteger | Integer):
        return "int8" if isinstance(column_type, BigInteger) else "int4"
    return "text"


def _write_postgres(raw: psycopg.Connection[Any], bulk: BulkRows, statements: Statements, *, commit: bool) -> None:
    """Large row sets by COPY; everything else in one pipeline, so a small append costs one round trip."""
    with raw.cursor() as cursor:
        small = []
        for table, columns, rows in bulk:
            if len(rows) >= COPY_THRESHOLD:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types([_binary_copy_type(table, column) for column in columns])
                    for row in rows:
                        copy.write_row(row)
            elif rows:
                small.append((_insert_sql(table, columns, "%s"), rows))
        small.extend((sql.format(p="%s"), rows) for sql, rows in statements)
        with raw.pipeline():
            for sql, rows in small:
                cursor.executemany(sql, rows)
            if commit:
                # the outer SQLAlchemy commit then finds no open transaction and sends nothing
                cursor.execute("COMMIT")


def _write_sqlite(raw: Any, bulk: BulkRows, statements: Statements) -> None:
    cursor = raw.cursor()
    try:
        for table, columns, rows in bulk:
            if rows:
                cursor.executemany(_insert_sql(table, columns, "?"), rows)
        for sql, rows in statements:
            cursor.executemany(sql.format(p="?"), rows)
    finally:
        cursor.close()


@dataclass(frozen=True, slots=True)
class _Prefetched:
    existing: dict[str, EntryRecord]
    stream_heads: dict[str, int]


HEAD_COLUMNS = (
    "id",
    "origin",
    "size",
    "head_hash",
    "frontier",
    "appends_since_checkpoint",
    "created_at",
    "active_key_id",
)
ENTRY_SELECT = ", ".join(column.name for column in ENTRY_COLUMNS)
ENTRIES_SELECT = f"SELECT {ENTRY_SELECT} FROM entries"  # noqa: S608 - constant column names
HEAD_SELECT = f"SELECT {', '.join(HEAD_COLUMNS)} FROM logs WHERE id = "  # noqa: S608 - constant column names


def _head_from_tuple(row: Sequence[Any]) -> LogHead:
    return _head(SimpleNamespace(**dict(zip(HEAD_COLUMNS, row, strict=True))))


def _entry_from_tuple(row: Sequence[Any]) -> EntryRecord:
    return _entry(SimpleNamespace(**dict(zip((c.name for c in ENTRY_COLUMNS), row, strict=True))))


def _lock_and_read_postgres(
    raw: psycopg.Connection[Any], log_id: int, event_ids: Sequence[str], stream_names: Sequence[str]
) -> tuple[Sequence[Any] | None, _Prefetched]:
    """``SELECT ... FOR UPDATE`` on the head row, then the two look-ups, in one pipeline.

    Under READ COMMITTED each statement takes a fresh snapshot, so the look-ups that follow the granted
    lock see every append committed before it: the row lock on the log head serialises appends.
    """
    with raw.cursor() as head_cursor, raw.cursor() as ids_cursor, raw.cursor() as streams_cursor:
        with raw.pipeline():
            head_cursor.execute(HEAD_SELECT + "%s FOR UPDATE", (log_id,))
            if event_ids:
                ids_cursor.execute(
                    f"SELECT {ENTRY_SELECT} FROM entries WHERE log_id = %s AND event_id = ANY(%s)",  # noqa: S608
                    (log_id, list(event_ids)),
                )
            if stream_names:
                streams_cursor.execute(
                    "SELECT stream, next_seq FROM streams WHERE log_id = %s AND stream = ANY(%s)",
                    (log_id, list(stream_names)),
                )
        head_row = head_cursor.fetchone()
        existing = [_entry_from_tuple(row) for row in ids_cursor.fetchall()] if event_ids else []
        heads = dict(streams_cursor.fetchall()) if stream_names else {}
    return head_row, _Prefetched({e.event_id: e for e in existing}, heads)


def _select_in(cursor: Any, select_from: str, log_id: int, column: str, values: Sequence[str]) -> list[Any]:
    """Rows of one log whose ``column`` is among ``values``, in chunks that fit SQLite's parameter limit."""
    rows: list[Any] = []
    for chunk in _chunks(list(values)):
        marks = ", ".join("?" for _ in chunk)
        query = f"{select_from} WHERE log_id = ? AND {column} IN ({marks})"
        rows.extend(cursor.execute(query, (log_id, *chunk)).fetchall())
    return rows


def _lock_and_read_sqlite(
    raw: Any, log_id: int, event_ids: Sequence[str], stream_names: Sequence[str]
) -> tuple[Sequence[Any] | None, _Prefetched]:
    """The write lock is already held (BEGIN IMMEDIATE); read the head and the look-ups."""
    cursor = raw.cursor()
    try:
        head_row = cursor.execute(HEAD_SELECT + "?", (log_id,)).fetchone()
        entry_rows = _select_in(cursor, ENTRIES_SELECT, log_id, "event_id", event_ids)
        existing = {entry.event_id: entry for entry in map(_entry_from_tuple, entry_rows)}
        heads = dict(_select_in(cursor, "SELECT stream, next_seq FROM streams", log_id, "stream", stream_names))
    finally:
        cursor.close()
    return head_row, _Prefetched(existing, heads)


def _keys(connection: Connection, log_id: int) -> list[KeyRecord]:
    rows = connection.execute(
        select(log_keys).where(log_keys.c.log_id == log_id).order_by(log_keys.c.valid_from_seq, log_keys.c.valid_from)
    )
    return [_key(row) for row in rows]


def _insert_key(connection: Connection, log_id: int, key: KeyRecord) -> None:
    connection.execute(
        insert(log_keys).values(
            log_id=log_id,
            key_id=key.key_id,
            verifier_key=key.verifier_key,
            valid_from_seq=key.valid_from_seq,
            valid_until_seq=key.valid_until_seq,
            valid_from=key.valid_from,
            valid_until=key.valid_until,
        )
    )


def _payloads(connection: Connection, log_id: int, seqs: Sequence[int]) -> dict[int, PayloadRecord]:
    found: dict[int, PayloadRecord] = {}
    for chunk in _chunks(list(seqs)):
        rows = connection.execute(select(payloads).where(payloads.c.log_id == log_id, payloads.c.seq.in_(chunk)))
        found.update((row.seq, _payload(row)) for row in rows)
    return found


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class SqlRecorder:
    """The store of every log in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- logs and keys ---------------------------------------------------------------------------

    def create_log(self, origin: str, key: KeyRecord, created_at: str) -> LogHead:
        with translated("creating the log"), self._write() as conn:
            exists = conn.execute(select(logs.c.id).where(logs.c.origin == origin)).first()
            if exists is not None:
                raise ConflictError(f"log {origin!r} already exists")
            result = conn.execute(
                insert(logs).values(
                    origin=origin,
                    size=0,
                    head_hash=bytes(32),
                    frontier=b"",
                    appends_since_checkpoint=0,
                    created_at=created_at,
                    active_key_id=key.key_id,
                )
            )
            log_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            _insert_key(conn, log_id, key)
            row = conn.execute(select(logs).where(logs.c.id == log_id)).one()
            return _head(row)

    def get_log(self, origin: str) -> LogHead:
        with translated("reading the log"), self.engine.connect() as conn:
            row = conn.execute(select(logs).where(logs.c.origin == origin)).first()
        if row is None:
            raise NotFoundError(f"no log named {origin!r}")
        return _head(row)

    def list_logs(self) -> list[LogHead]:
        with translated("listing logs"), self.engine.connect() as conn:
            return [_head(row) for row in conn.execute(select(logs).order_by(logs.c.id))]

    def keys(self, log_id: int) -> list[KeyRecord]:
        with translated("reading keys"), self.engine.connect() as conn:
            return _keys(conn, log_id)

    @contextmanager
    def append_transaction(
        self, log_id: int, event_ids: Sequence[str] = (), stream_names: Sequence[str] = ()
    ) -> Iterator[AppendTransaction]:
        """Lock the log head and yield a transaction; commit on normal exit, roll back on any error.

        The head lock, the look-up of already stored event ids and the stream heads are read together
        (one pipelined round trip on PostgreSQL) since they are needed by every append.
        """
        with translated("appending"), self._write() as conn:
            raw = conn.connection.driver_connection
            if isinstance(raw, psycopg.Connection):
                head_row, prefetched = _lock_and_read_postgres(raw, log_id, event_ids, stream_names)
            else:
                head_row, prefetched = _lock_and_read_sqlite(raw, log_id, event_ids, stream_names)
            if head_row is None:
                raise NotFoundError(f"no log with id {log_id}")
            yield AppendTransaction(conn, _head_from_tuple(head_row), prefetched)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    # --- reads -----------------------------------------------------------------------------------

    def entry_by_seq(self, log_id: int, seq: int) -> EntryRecord:
        with translated("reading an entry"), self.engine.connect() as conn:
            row = conn.execute(select(*ENTRY_COLUMNS).where(entries.c.log_id == log_id, entries.c.seq == seq)).first()
        if row is None:
            raise NotFoundError(f"no entry at seq {seq}")
        return _entry(row)

    def entry_by_event_id(self, log_id: int, event_id: str) -> EntryRecord:
        with translated("reading an entry"), self.engine.connect() as conn:
            row = conn.execute(
                select(*ENTRY_COLUMNS).where(entries.c.log_id == log_id, entries.c.event_id == event_id)
            ).first()
        if row is None:
            raise NotFoundError("no entry with that event id")
        return _entry(row)

    def payloads(self, log_id: int, seqs: Sequence[int]) -> dict[int, PayloadRecord]:
        with translated("reading payloads"), self.engine.connect() as conn:
            return _payloads(conn, log_id, seqs)

    def iter_entries(self, log_id: int, filters: EntryFilter, batch_size: int = 2000) -> Iterator[EntryRecord]:
        """Entries matching the filters in seq order, fetched in keyset-paginated batches."""
        last = -1 if filters.from_seq is None else filters.from_seq - 1
        while True:
            query = (
                self._filtered(log_id, filters).where(entries.c.seq > last).order_by(entries.c.seq).limit(batch_size)
            )
            with translated("reading entries"), self.engine.connect() as conn:
                batch = [_entry(row) for row in conn.execute(query)]
            yield from batch
            if len(batch) < batch_size:
                return
            last = batch[-1].seq

    def iter_entries_with_payloads(
        self, log_id: int, from_seq: int = 0, batch_size: int = 2000
    ) -> Iterator[tuple[EntryRecord, PayloadRecord | None]]:
        """Every entry from ``from_seq`` on, in seq order, with its payload row (None if the row is missing).

        One query streamed in parts of ``batch_size`` rows (a server-side cursor on PostgreSQL), so the rows come
        from one snapshot of the table; records are built from the row positions, the order of ``ENTRY_COLUMNS``
        then ``_PAYLOAD_COLUMNS``."""
        query = (
            select(*ENTRY_COLUMNS, *_PAYLOAD_COLUMNS)
            .select_from(
                entries.outerjoin(
                    payloads, and_(payloads.c.log_id == entries.c.log_id, payloads.c.seq == entries.c.seq)
                )
            )
            .where(entries.c.log_id == log_id, entries.c.seq >= from_seq)
            .order_by(entries.c.seq)
        )
        split = len(ENTRY_COLUMNS)
        with translated("reading entries"), self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(query)
            for part in result.partitions():
                for row in part:
                    yield EntryRecord(*row[:split]), None if row[split] is None else PayloadRecord(*row[split:])

    def _filtered(self, log_id: int, f: EntryFilter) -> Any:
        query = select(*ENTRY_COLUMNS).where(entries.c.log_id == log_id)
        conditions = []
        if f.stream is not None:
            conditions.append(entries.c.stream == f.stream)
        if f.stream_prefix is not None:
            conditions.append(entries.c.stream.like(_like_prefix(f.stream_prefix), escape="\\"))
        if f.type is not None:
            conditions.append(entries.c.type == f.type)
        if f.types:
            conditions.append(entries.c.type.in_(f.types))
        if f.producer is not None:
            conditions.append(entries.c.producer == f.producer)
        if f.occurred_since is not None:
            conditions.append(entries.c.occurred_at >= f.occurred_since)
        if f.occurred_until is not None:
            conditions.append(entries.c.occurred_at < f.occurred_until)
        if f.recorded_since is not None:
            conditions.append(entries.c.recorded_at >= f.recorded_since)
        if f.recorded_until is not None:
            conditions.append(entries.c.recorded_at < f.recorded_until)
        if f.to_seq is not None:
            conditions.append(entries.c.seq <= f.to_seq)
        if f.subject is not None:
            subject_seqs = select(entry_subjects.c.seq).where(
                entry_subjects.c.log_id == log_id, entry_subjects.c.subject == f.subject
            )
            conditions.append(entries.c.seq.in_(subject_seqs))
        return query.where(*conditions)

    def leaf_hashes(self, log_id: int, seqs: Iterable[int]) -> dict[int, bytes]:
        with translated("reading leaf hashes"), self.engine.connect() as conn:
            return _leaf_hashes(conn, log_id, seqs)

    def node_hashes(self, log_id: int, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Stored complete-subtree hashes for the given (level, index) keys; level 0 reads entry hashes."""
        return self.tree_nodes(log_id, keys)[1]

    def tree_nodes(self, log_id: int, keys: Iterable[tuple[int, int]]) -> tuple[int, dict[tuple[int, int], bytes]]:
        """The log's current size and the stored hashes of the given (level, index) keys (level 0: entry hashes),
        read together: one statement on PostgreSQL, whose text never changes (so the server plans it once per
        connection), outside any transaction (no BEGIN and ROLLBACK round trips)."""
        wanted = set(keys)
        leaves = sorted(idx for level, idx in wanted if level == 0)
        inner = sorted((level, idx) for level, idx in wanted if level > 0)
        with translated("reading tree nodes"), self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                found: dict[tuple[int, int], bytes] = {}
                size: int | None = None
                parameters = {
                    "log": log_id,
                    "seqs": leaves,
                    "levels": [level for level, _idx in inner],
                    "idxs": [idx for _level, idx in inner],
                }
                for level, idx, digest in conn.execute(_PG_TREE_NODES, parameters):
                    if level < 0:
                        size = idx
                    else:
                        found[(level, idx)] = digest
            else:
                size = conn.execute(select(logs.c.size).where(logs.c.id == log_id)).scalar()
                found = {(0, seq): h for seq, h in _leaf_hashes(conn, log_id, leaves).items()}
                for chunk in _chunks(inner):
                    rows = conn.execute(
                        select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash).where(
                            merkle_nodes.c.log_id == log_id,
                            tuple_(merkle_nodes.c.level, merkle_nodes.c.idx).in_(chunk),
                        )
                    )
                    found.update(((row.level, row.idx), bytes(row.hash)) for row in rows)
        if size is None:
            raise NotFoundError(f"no log with id {log_id}")
        return size, found

    def iter_nodes(self, log_id: int, batch_size: int = 5000) -> Iterator[tuple[int, NodeRecord]]:
        """Stored inner nodes ordered by the seq at which they became complete (end_seq), then level; one query
        streamed in parts of ``batch_size`` rows."""
        query = (
            select(merkle_nodes.c.end_seq, merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash)
            .where(merkle_nodes.c.log_id == log_id)
            .order_by(merkle_nodes.c.end_seq, merkle_nodes.c.level)
        )
        with translated("reading tree nodes"), self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(query)
            for part in result.partitions():
                for end_seq, level, idx, digest in part:
                    yield end_seq, NodeRecord(level, idx, digest)

    def iter_subjects(self, log_id: int, batch_size: int = 5000) -> Iterator[tuple[int, str]]:
        """The subject index of the log as (seq, subject reference), ordered by seq then reference; one query
        streamed in parts of ``batch_size`` rows."""
        query = (
            select(entry_subjects.c.seq, entry_subjects.c.subject)
            .where(entry_subjects.c.log_id == log_id)
            .order_by(entry_subjects.c.seq, entry_subjects.c.subject)
        )
        with translated("reading the subject index"), self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(query)
            for part in result.partitions():
                yield from ((seq, subject) for seq, subject in part)

    def checkpoints(self, log_id: int, size: int | None = None) -> list[CheckpointRecord]:
        query = select(checkpoints).where(checkpoints.c.log_id == log_id)
        if size is not None:
            query = query.where(checkpoints.c.size == size)
        with translated("reading checkpoints"), self.engine.connect() as conn:
            rows = conn.execute(query.order_by(checkpoints.c.size, checkpoints.c.id)).all()
        return [CheckpointRecord(row.size, bytes(row.root), row.note, row.created_at) for row in rows]

    def stream_next_seqs(self, log_id: int) -> dict[str, int]:
        """The stored next ``stream_seq`` of every stream of the log (what the next append to it will use)."""
        query = select(streams.c.stream, streams.c.next_seq).where(streams.c.log_id == log_id)
        with translated("reading streams"), self.engine.connect() as conn:
            return {row.stream: row.next_seq for row in conn.execute(query)}

    def latest_checkpoint(self, log_id: int) -> CheckpointRecord | None:
        query = (
            select(checkpoints)
            .where(checkpoints.c.log_id == log_id)
            .order_by(checkpoints.c.size.desc(), checkpoints.c.id.desc())
            .limit(1)
        )
        with translated("reading checkpoints"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else CheckpointRecord(row.size, bytes(row.root), row.note, row.created_at)

    def add_checkpoint(self, log_id: int, checkpoint: CheckpointRecord) -> None:
        with translated("storing a checkpoint"), self.engine.begin() as conn:
            conn.execute(
                insert(checkpoints).values(
                    log_id=log_id,
                    size=checkpoint.size,
                    root=checkpoint.root,
                    note=checkpoint.note,
                    created_at=checkpoint.created_at,
                )
            )

    def count_entries(self, log_id: int) -> int:
        with translated("counting entries"), self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(entries).where(entries.c.log_id == log_id)).scalar_one()
            )
