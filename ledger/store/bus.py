"""The database side of Kafka: relay progress, consumed ingest offsets and the dead-letter outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ledger.store.database import WRITE_OPTION
from ledger.store.recorder import translated
from ledger.store.tables import dead_letters, ingest_offsets, relay_progress


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A consumed message that could not be appended, kept with the reason (never the parsed values)."""

    consumer: str
    topic: str
    partition: int
    offset: int
    reason: str
    message: bytes
    received_at: str
    id: int | None = None
    published_at: str | None = None


def _upsert(
    connection: Connection, table: Any, rows: list[dict[str, Any]], keys: list[str], updates: list[str]
) -> None:
    if not rows:
        return
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(table)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={name: getattr(statement.excluded, name) for name in updates}
        ),
        rows,
    )


def save_offsets(connection: Connection, consumer: str, topic: str, next_offsets: Mapping[int, int], now: str) -> None:
    """Record the next offset to consume per partition (inside the append transaction: exactly once)."""
    rows = [
        {"consumer": consumer, "topic": topic, "partition": p, "next_offset": o, "updated_at": now}
        for p, o in next_offsets.items()
    ]
    _upsert(connection, ingest_offsets, rows, ["consumer", "topic", "partition"], ["next_offset", "updated_at"])


def add_dead_letters(connection: Connection, letters: Sequence[DeadLetter]) -> None:
    """Record refused messages; a message already recorded (a replay after a crash) is not added twice."""
    rows = [
        {
            "consumer": d.consumer,
            "topic": d.topic,
            "partition": d.partition,
            "message_offset": d.offset,
            "reason": d.reason,
            "message": d.message,
            "received_at": d.received_at,
        }
        for d in letters
    ]
    if not rows:
        return
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        dialect_insert(dead_letters).on_conflict_do_nothing(
            index_elements=["consumer", "topic", "partition", "message_offset"]
        ),
        rows,
    )


class BusStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Writes take the write lock up front (BEGIN IMMEDIATE on SQLite), as appends do: a read-then-write
        # transaction would otherwise be refused with "database is locked" while appends commit.
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    def relay_next_seq(self, log_id: int, topic: str) -> int:
        with translated("reading relay progress"), self.engine.connect() as conn:
            value = conn.execute(
                select(relay_progress.c.next_seq).where(
                    relay_progress.c.log_id == log_id, relay_progress.c.topic == topic
                )
            ).scalar()
        return int(value or 0)

    def advance_relay(self, log_id: int, topic: str, next_seq: int, now: str) -> None:
        """Move the relay's progress forward (never back), after the broker acknowledged up to next_seq - 1."""
        with translated("recording relay progress"), self._writer.begin() as conn:
            current = conn.execute(
                select(relay_progress.c.next_seq).where(
                    relay_progress.c.log_id == log_id, relay_progress.c.topic == topic
                )
            ).scalar()
            if current is None:
                conn.execute(
                    insert(relay_progress).values(log_id=log_id, topic=topic, next_seq=next_seq, updated_at=now)
                )
            elif next_seq > current:
                conn.execute(
                    update(relay_progress)
                    .where(relay_progress.c.log_id == log_id, relay_progress.c.topic == topic)
                    .values(next_seq=next_seq, updated_at=now)
                )

    def consumer_offsets(self, consumer: str, topic: str) -> dict[int, int]:
        with translated("reading consumer offsets"), self.engine.connect() as conn:
            rows = conn.execute(
                select(ingest_offsets.c.partition, ingest_offsets.c.next_offset).where(
                    ingest_offsets.c.consumer == consumer, ingest_offsets.c.topic == topic
                )
            )
            return {int(row.partition): int(row.next_offset) for row in rows}

    def unpublished_dead_letters(self, consumer: str, limit: int = 500) -> list[DeadLetter]:
        query = (
            select(dead_letters)
            .where(dead_letters.c.consumer == consumer, dead_letters.c.published_at.is_(None))
            .order_by(dead_letters.c.id)
            .limit(limit)
        )
        with translated("reading dead letters"), self.engine.connect() as conn:
            return [_dead_letter(row) for row in conn.execute(query)]

    def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        query = select(dead_letters).order_by(dead_letters.c.id)
        if consumer is not None:
            query = query.where(dead_letters.c.consumer == consumer)
        with translated("reading dead letters"), self.engine.connect() as conn:
            return [_dead_letter(row) for row in conn.execute(query)]

    def mark_published(self, ids: Sequence[int], now: str) -> None:
        if not ids:
            return
        with translated("recording dead letters"), self._writer.begin() as conn:
            conn.execute(update(dead_letters).where(dead_letters.c.id.in_(list(ids))).values(published_at=now))


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        consumer=row.consumer,
        topic=row.topic,
        partition=row.partition,
        offset=row.message_offset,
        reason=row.reason,
        message=bytes(row.message),
        received_at=row.received_at,
        id=row.id,
        published_at=row.published_at,
    )
