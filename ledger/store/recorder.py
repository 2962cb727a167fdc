"""The SQL recorder: one SQLAlchemy Core implementation for PostgreSQL and SQLite.

Appends run inside :meth:`SqlRecorder.append_transaction`, which locks the log head (``SELECT ... FOR
UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so concurrent writers, threads or processes,
extend one gap-free chain.  Every driver exception is translated into a ledger error here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from sqlalchemy import Connection, Engine, and_, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
ENTRY_INSERT_COLUMNS = ("log_id", *(column.name for column in ENTRY_COLUMNS))
_IN_CHUNK = 500


class Recorder(Protocol):
    """What the service needs from a store; :class:`SqlRecorder` implements it for both databases."""

    def create_log(self, origin: str, key: KeyRecord, created_at: str) -> LogHead: ...
    def get_log(self, origin: str) -> LogHead: ...
    def list_logs(self) -> list[LogHead]: ...
    def append_transaction(self, origin: str) -> Any: ...
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


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextmanager
def _translated(action: str) -> Iterator[None]:
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

    def __init__(self, connection: Connection, head: LogHead) -> None:
        self._connection = connection
        self.head = head

    def existing_events(self, event_ids: Sequence[str]) -> dict[str, EntryRecord]:
        found: dict[str, EntryRecord] = {}
        for chunk in _chunks(event_ids):
            rows = self._connection.execute(
                select(*ENTRY_COLUMNS).where(entries.c.log_id == self.head.log_id, entries.c.event_id.in_(chunk))
            )
            found.update((row.event_id, _entry(row)) for row in rows)
        return found

    def payloads(self, seqs: Sequence[int]) -> dict[int, PayloadRecord]:
        return _payloads(self._connection, self.head.log_id, seqs)

    def stream_heads(self, names: Sequence[str]) -> dict[str, int]:
        heads: dict[str, int] = {}
        for chunk in _chunks(names):
            rows = self._connection.execute(
                select(streams.c.stream, streams.c.next_seq).where(
                    streams.c.log_id == self.head.log_id, streams.c.stream.in_(chunk)
                )
            )
            heads.update((row.stream, row.next_seq) for row in rows)
        return heads

    def keys(self) -> list[KeyRecord]:
        return _keys(self._connection, self.head.log_id)

    def write(
        self,
        new_entries: Sequence[NewEntry],
        nodes: Sequence[tuple[int, int, bytes]],
        stream_next: dict[str, int],
        new_head: LogHead,
        checkpoint: CheckpointRecord | None,
    ) -> None:
        """Insert entries, payloads, subjects and tree nodes, advance streams and the head."""
        log_id = self.head.log_id
        conn = self._connection
        if new_entries:
            self._bulk_insert(
                "entries",
                ENTRY_INSERT_COLUMNS,
                [
                    (
                        log_id,
                        n.entry.seq,
                        n.entry.event_id,
                        n.entry.stream,
                        n.entry.stream_seq,
                        n.entry.type,
                        n.entry.producer,
                        n.entry.occurred_at,
                        n.entry.recorded_at,
                        n.entry.body,
                        n.entry.hash,
                        n.entry.signature,
                        n.entry.key_id,
                    )
                    for n in new_entries
                ],
            )
            self._bulk_insert(
                "payloads",
                ("log_id", "seq", "salt", "payload"),
                [(log_id, n.entry.seq, n.salt, n.payload) for n in new_entries],
            )
            subject_rows = [(log_id, subject, n.entry.seq) for n in new_entries for subject in n.subjects]
            if subject_rows:
                self._bulk_insert("entry_subjects", ("log_id", "subject", "seq"), subject_rows)
        if nodes:
            self._bulk_insert(
                "merkle_nodes",
                ("log_id", "level", "idx", "end_seq", "hash"),
                [(log_id, level, idx, ((idx + 1) << level) - 1, digest) for level, idx, digest in nodes],
            )
        if stream_next:
            self._advance_streams(stream_next)
        conn.execute(
            update(logs)
            .where(logs.c.id == log_id)
            .values(
                size=new_head.size,
                head_hash=new_head.head_hash,
                frontier=b"".join(new_head.frontier),
                appends_since_checkpoint=new_head.appends_since_checkpoint,
            )
        )
        if checkpoint is not None:
            self.add_checkpoint(checkpoint)
        self.head = new_head

    def _bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert many rows through the driver's fastest path, inside the current transaction.

        PostgreSQL gets ``COPY ... FROM STDIN`` (psycopg 3), SQLite a prepared ``executemany``; both are
        several times faster than a compiled SQLAlchemy executemany on the ingest path.  Table and column
        names are constants of this module, never input.
        """
        raw = self._connection.connection.driver_connection
        names = ", ".join(columns)
        if isinstance(raw, psycopg.Connection):
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join("?" for _ in columns)
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows)  # noqa: S608
        finally:
            cursor.close()

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

    def close_key(self, key_id: str, valid_until_seq: int, valid_until: str) -> None:
        self._connection.execute(
            update(log_keys)
            .where(log_keys.c.log_id == self.head.log_id, log_keys.c.key_id == key_id)
            .values(valid_until_seq=valid_until_seq, valid_until=valid_until)
        )

    def _advance_streams(self, stream_next: dict[str, int]) -> None:
        rows = [{"log_id": self.head.log_id, "stream": name, "next_seq": nxt} for name, nxt in stream_next.items()]
        dialect = self._connection.dialect.name
        if dialect == "postgresql":
            stmt_pg = pg_insert(streams)
            self._connection.execute(
                stmt_pg.on_conflict_do_update(
                    index_elements=[streams.c.log_id, streams.c.stream],
                    set_={"next_seq": stmt_pg.excluded.next_seq},
                ),
                rows,
            )
        else:
            stmt_lite = sqlite_insert(streams)
            self._connection.execute(
                stmt_lite.on_conflict_do_update(
                    index_elements=[streams.c.log_id, streams.c.stream],
                    set_={"next_seq": stmt_lite.excluded.next_seq},
                ),
                rows,
            )


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
        with _translated("creating the log"), self._write() as conn:
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
                )
            )
            log_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            _insert_key(conn, log_id, key)
            row = conn.execute(select(logs).where(logs.c.id == log_id)).one()
            return _head(row)

    def get_log(self, origin: str) -> LogHead:
        with _translated("reading the log"), self.engine.connect() as conn:
            row = conn.execute(select(logs).where(logs.c.origin == origin)).first()
        if row is None:
            raise NotFoundError(f"no log named {origin!r}")
        return _head(row)

    def list_logs(self) -> list[LogHead]:
        with _translated("listing logs"), self.engine.connect() as conn:
            return [_head(row) for row in conn.execute(select(logs).order_by(logs.c.id))]

    def keys(self, log_id: int) -> list[KeyRecord]:
        with _translated("reading keys"), self.engine.connect() as conn:
            return _keys(conn, log_id)

    @contextmanager
    def append_transaction(self, origin: str) -> Iterator[AppendTransaction]:
        """Lock the log head and yield a transaction; commit on normal exit, roll back on any error."""
        with _translated("appending"), self._write() as conn:
            query = select(logs).where(logs.c.origin == origin)
            if self.dialect == "postgresql":
                query = query.with_for_update()  # the row lock on the log head serialises appends
            row = conn.execute(query).first()
            if row is None:
                raise NotFoundError(f"no log named {origin!r}")
            yield AppendTransaction(conn, _head(row))

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    # --- reads -----------------------------------------------------------------------------------

    def entry_by_seq(self, log_id: int, seq: int) -> EntryRecord:
        with _translated("reading an entry"), self.engine.connect() as conn:
            row = conn.execute(select(*ENTRY_COLUMNS).where(entries.c.log_id == log_id, entries.c.seq == seq)).first()
        if row is None:
            raise NotFoundError(f"no entry at seq {seq}")
        return _entry(row)

    def entry_by_event_id(self, log_id: int, event_id: str) -> EntryRecord:
        with _translated("reading an entry"), self.engine.connect() as conn:
            row = conn.execute(
                select(*ENTRY_COLUMNS).where(entries.c.log_id == log_id, entries.c.event_id == event_id)
            ).first()
        if row is None:
            raise NotFoundError("no entry with that event id")
        return _entry(row)

    def payloads(self, log_id: int, seqs: Sequence[int]) -> dict[int, PayloadRecord]:
        with _translated("reading payloads"), self.engine.connect() as conn:
            return _payloads(conn, log_id, seqs)

    def iter_entries(self, log_id: int, filters: EntryFilter, batch_size: int = 2000) -> Iterator[EntryRecord]:
        """Entries matching the filters in seq order, fetched in keyset-paginated batches."""
        last = -1 if filters.from_seq is None else filters.from_seq - 1
        while True:
            query = (
                self._filtered(log_id, filters).where(entries.c.seq > last).order_by(entries.c.seq).limit(batch_size)
            )
            with _translated("reading entries"), self.engine.connect() as conn:
                batch = [_entry(row) for row in conn.execute(query)]
            yield from batch
            if len(batch) < batch_size:
                return
            last = batch[-1].seq

    def iter_entries_with_payloads(
        self, log_id: int, from_seq: int = 0, batch_size: int = 2000
    ) -> Iterator[tuple[EntryRecord, PayloadRecord | None]]:
        """Every entry from ``from_seq`` on, in seq order, with its payload row (None if the row is missing)."""
        last = from_seq - 1
        while True:
            query = (
                select(
                    *ENTRY_COLUMNS,
                    payloads.c.seq.label("p_seq"),
                    payloads.c.salt,
                    payloads.c.payload,
                    payloads.c.erased_at,
                    payloads.c.erased_by_seq,
                    payloads.c.erasure_reason,
                )
                .select_from(
                    entries.outerjoin(
                        payloads, and_(payloads.c.log_id == entries.c.log_id, payloads.c.seq == entries.c.seq)
                    )
                )
                .where(entries.c.log_id == log_id, entries.c.seq > last)
                .order_by(entries.c.seq)
                .limit(batch_size)
            )
            with _translated("reading entries"), self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                payload = None if row.p_seq is None else _payload(row)
                yield _entry(row), payload
            if len(rows) < batch_size:
                return
            last = rows[-1].seq

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
        found: dict[int, bytes] = {}
        with _translated("reading leaf hashes"), self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(seqs))):
                rows = conn.execute(
                    select(entries.c.seq, entries.c.hash).where(entries.c.log_id == log_id, entries.c.seq.in_(chunk))
                )
                found.update((row.seq, bytes(row.hash)) for row in rows)
        return found

    def node_hashes(self, log_id: int, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Stored complete-subtree hashes for the given (level, index) keys; level 0 reads entry hashes."""
        wanted = set(keys)
        leaves = [idx for level, idx in wanted if level == 0]
        inner = sorted((level, idx) for level, idx in wanted if level > 0)
        found: dict[tuple[int, int], bytes] = {(0, seq): h for seq, h in self.leaf_hashes(log_id, leaves).items()}
        with _translated("reading tree nodes"), self.engine.connect() as conn:
            for chunk in _chunks(inner):
                rows = conn.execute(
                    select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash).where(
                        merkle_nodes.c.log_id == log_id,
                        tuple_(merkle_nodes.c.level, merkle_nodes.c.idx).in_(chunk),
                    )
                )
                found.update(((row.level, row.idx), bytes(row.hash)) for row in rows)
        return found

    def iter_nodes(self, log_id: int, batch_size: int = 5000) -> Iterator[tuple[int, NodeRecord]]:
        """Stored inner nodes ordered by the seq at which they became complete (end_seq), then level."""
        last: tuple[int, int] = (-1, 0)
        while True:
            query = (
                select(merkle_nodes.c.end_seq, merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash)
                .where(
                    merkle_nodes.c.log_id == log_id,
                    tuple_(merkle_nodes.c.end_seq, merkle_nodes.c.level) > tuple_(*last),
                )
                .order_by(merkle_nodes.c.end_seq, merkle_nodes.c.level)
                .limit(batch_size)
            )
            with _translated("reading tree nodes"), self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield row.end_seq, NodeRecord(row.level, row.idx, bytes(row.hash))
            if len(rows) < batch_size:
                return
            last = (rows[-1].end_seq, rows[-1].level)

    def checkpoints(self, log_id: int, size: int | None = None) -> list[CheckpointRecord]:
        query = select(checkpoints).where(checkpoints.c.log_id == log_id)
        if size is not None:
            query = query.where(checkpoints.c.size == size)
        with _translated("reading checkpoints"), self.engine.connect() as conn:
            rows = conn.execute(query.order_by(checkpoints.c.size, checkpoints.c.id)).all()
        return [CheckpointRecord(row.size, bytes(row.root), row.note, row.created_at) for row in rows]

    def latest_checkpoint(self, log_id: int) -> CheckpointRecord | None:
        query = (
            select(checkpoints)
            .where(checkpoints.c.log_id == log_id)
            .order_by(checkpoints.c.size.desc(), checkpoints.c.id.desc())
            .limit(1)
        )
        with _translated("reading checkpoints"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else CheckpointRecord(row.size, bytes(row.root), row.note, row.created_at)

    def add_checkpoint(self, log_id: int, checkpoint: CheckpointRecord) -> None:
        with _translated("storing a checkpoint"), self.engine.begin() as conn:
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
        with _translated("counting entries"), self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(entries).where(entries.c.log_id == log_id)).scalar_one()
            )
