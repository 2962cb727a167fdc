"""Payload erasure for disposal and GDPR erasure (DORA.md sections 3 and 5).

The chain commits only to a salted digest of each payload, so clearing the payload and its salt and
recording who erased it (``erased_by_seq``: the disposal or erasure event) keeps every hash and proof valid.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select, update

from ledger.store.recorder import translated
from ledger.store.tables import entries, payloads

__all__ = ["erase_payloads", "erased_after", "last_entry_seq", "last_entry_seq_of_type"]


def erase_payloads(
    engine: Engine, log_id: int, seqs: Sequence[int], *, erased_by_seq: int, reason: str, now: str
) -> int:
    """Clear payload and salt of ``seqs`` not yet erased, in one transaction; returns the rows changed."""
    wanted = sorted(set(seqs))
    if not wanted:
        return 0
    statement = (
        update(payloads)
        .where(payloads.c.log_id == log_id, payloads.c.seq.in_(wanted), payloads.c.erased_at.is_(None))
        .values(payload=None, salt=None, erased_at=now, erased_by_seq=erased_by_seq, erasure_reason=reason)
    )
    with engine.begin() as conn:
        return conn.execute(statement).rowcount


def erased_after(engine: Engine, log_id: int, after_event_seq: int, max_seq: int) -> list[tuple[int, int]]:
    """``(seq, erased_by_seq)`` of payloads up to ``max_seq`` removed by an event after ``after_event_seq``."""
    statement = (
        select(payloads.c.seq, payloads.c.erased_by_seq)
        .where(
            payloads.c.log_id == log_id,
            payloads.c.erased_at.is_not(None),
            payloads.c.erased_by_seq > after_event_seq,
            payloads.c.seq <= max_seq,
        )
        .order_by(payloads.c.seq)
    )
    with translated("reading erased payloads"), engine.connect() as conn:
        return [(int(row.seq), int(row.erased_by_seq)) for row in conn.execute(statement)]


def last_entry_seq(engine: Engine, log_id: int, stream: str, event_type: str) -> int | None:
    """The seq of the newest entry of ``event_type`` on ``stream`` (None if there is none)."""
    statement = (
        select(entries.c.seq)
        .where(entries.c.log_id == log_id, entries.c.type == event_type, entries.c.stream == stream)
        .order_by(entries.c.seq.desc())
        .limit(1)
    )
    with translated("reading entries"), engine.connect() as conn:
        value = conn.execute(statement).scalar()
    return None if value is None else int(value)


def last_entry_seq_of_type(engine: Engine, log_id: int, event_type: str) -> int | None:
    """The seq of the newest entry of ``event_type`` on any stream (None if there is none)."""
    statement = (
        select(entries.c.seq)
        .where(entries.c.log_id == log_id, entries.c.type == event_type)
        .order_by(entries.c.seq.desc())
        .limit(1)
    )
    with translated("reading entries"), engine.connect() as conn:
        value = conn.execute(statement).scalar()
    return None if value is None else int(value)
