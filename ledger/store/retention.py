"""Payload erasure for disposal and GDPR erasure (DORA.md sections 3 and 5).

The chain commits only to a salted digest of each payload, so clearing the payload and its salt and
recording who erased it (``erased_by_seq``: the disposal or erasure event) keeps every hash and proof valid.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, update

from ledger.store.tables import payloads

__all__ = ["erase_payloads"]


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
