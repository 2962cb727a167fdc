"""Witness cosignatures of checkpoints in the database (append-only: stored once, never changed).

What is stored has been verified by ``ledger/witnessing.py``; this module only keeps it.  One row per log,
checkpoint size and witness key id: a second cosignature of the same checkpoint by the same key keeps the
first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ledger.store.database import WRITE_OPTION
from ledger.store.recorder import translated
from ledger.store.tables import cosignatures

__all__ = ["CosignatureRecord", "CosignatureStore"]


@dataclass(frozen=True, slots=True)
class CosignatureRecord:
    """A witness's cosignature of the checkpoint of ``size``.

    ``signature_line`` is ``— <witness name> <base64(key id || timestamp || signature)>`` exactly as it
    appears in a C2SP signed note, without the final newline.
    """

    size: int
    witness_name: str
    witness_key_id: str
    signature_line: str
    created_at: str


class CosignatureStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Writes take the write lock up front (BEGIN IMMEDIATE on SQLite), as appends do.
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    def add(self, log_id: int, record: CosignatureRecord) -> tuple[CosignatureRecord, bool]:
        """Store ``record`` unless this witness key already cosigned that size; returns the stored one and
        whether this call stored it."""
        dialect_insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = (
            dialect_insert(cosignatures)
            .on_conflict_do_nothing(index_elements=["log_id", "size", "witness_key_id"])
            .returning(cosignatures.c.id)
        )
        values = {
            "log_id": log_id,
            "size": record.size,
            "witness_name": record.witness_name,
            "witness_key_id": record.witness_key_id,
            "signature_line": record.signature_line,
            "created_at": record.created_at,
        }
        with translated("storing a cosignature"), self._writer.begin() as conn:
            created = conn.execute(statement, values).first() is not None  # no row back: it was there already
            row = conn.execute(
                select(cosignatures).where(
                    cosignatures.c.log_id == log_id,
                    cosignatures.c.size == record.size,
                    cosignatures.c.witness_key_id == record.witness_key_id,
                )
            ).one()
        return _record(row), created

    def for_size(self, log_id: int, size: int) -> list[CosignatureRecord]:
        """The cosignatures of the checkpoint of ``size``, in the order they were stored."""
        query = (
            select(cosignatures)
            .where(cosignatures.c.log_id == log_id, cosignatures.c.size == size)
            .order_by(cosignatures.c.id)
        )
        with translated("reading cosignatures"), self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def all(self, log_id: int) -> list[CosignatureRecord]:
        """Every cosignature of the log, by size, then in the order stored."""
        query = (
            select(cosignatures).where(cosignatures.c.log_id == log_id).order_by(cosignatures.c.size, cosignatures.c.id)
        )
        with translated("reading cosignatures"), self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]


def _record(row: Any) -> CosignatureRecord:
    return CosignatureRecord(
        size=int(row.size),
        witness_name=row.witness_name,
        witness_key_id=row.witness_key_id,
        signature_line=row.signature_line,
        created_at=row.created_at,
    )
