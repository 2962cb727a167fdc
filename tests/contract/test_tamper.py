"""The tamper matrix: each change made behind the ledger's back is caught, naming the seq it touched.

The changes are real: rows are edited in the database with the append-only protections bypassed the way
an administrator could (triggers off as a PostgreSQL superuser, triggers dropped in the SQLite file).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from ledger import merkle
from ledger.errors import IntegrityError
from ledger.service import Ledger
from ledger.verify import raise_first
from tests.contract.conftest import Backend, check_event

SIZE = 20


def _subjects(number: int) -> list[str]:
    """Even entries name people (every fourth two of them); odd ones name nobody."""
    return [f"emp-{number % 7}", f"emp-{number % 5 + 10}"][: (number % 4 == 0) + 1] if number % 2 == 0 else []


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    for start in range(0, SIZE, 5):
        ledger.append_batch(
            [check_event(n, stream=f"s/{n % 3}", subjects=_subjects(n)) for n in range(start, start + 5)], producer="p"
        )
    report = ledger.audit()
    assert report.ok and report.subjects_checked == sum(len(_subjects(n)) for n in range(SIZE))
    return ledger


def _flip_byte(value: bytes, position: int) -> bytes:
    changed = bytearray(value)
    changed[position] ^= 0x01
    return bytes(changed)


def _edit_column(backend: Backend, table: str, column: str, seq: int, position: int) -> None:
    with backend.bypass() as conn:
        value = conn.execute(text(f"SELECT {column} FROM {table} WHERE seq = :seq"), {"seq": seq}).scalar_one()
        conn.execute(
            text(f"UPDATE {table} SET {column} = :value WHERE seq = :seq"),
            {"value": _flip_byte(bytes(value), position), "seq": seq},
        )


def _seqs_named(ledger: Ledger) -> set[int | None]:
    report = ledger.audit()
    assert not report.ok
    return {finding.seq for finding in report.findings}


def test_one_byte_of_a_body(filled: Ledger, backend: Backend) -> None:
    _edit_column(backend, "entries", "body", 7, 40)
    report = filled.audit()
    codes = {(f.seq, f.code) for f in report.findings}
    assert (7, "hash-mismatch") in codes and (7, "bad-signature") in codes
    assert min(f.seq for f in report.findings if f.seq is not None) == 7


def test_one_byte_of_a_payload(filled: Ledger, backend: Backend) -> None:
    _edit_column(backend, "payloads", "payload", 11, 12)
    report = filled.audit()
    assert [(f.seq, f.code) for f in report.findings] == [(11, "payload-mismatch")]


def test_one_byte_of_a_signature(filled: Ledger, backend: Backend) -> None:
    _edit_column(backend, "entries", "signature", 3, 0)
    report = filled.audit()
    assert [(f.seq, f.code) for f in report.findings] == [(3, "bad-signature")]


def test_a_deleted_row(filled: Ledger, backend: Backend) -> None:
    with backend.bypass() as conn:
        conn.execute(text("DELETE FROM entries WHERE seq = 9"))
    report = filled.audit()
    assert (9, "missing-entries") in {(f.seq, f.code) for f in report.findings}
    assert min(f.seq for f in report.findings if f.seq is not None) == 9


def test_two_entries_swapped(filled: Ledger, backend: Backend) -> None:
    with backend.bypass() as conn:
        conn.execute(text("UPDATE entries SET seq = -1 WHERE seq = 4"))
        conn.execute(text("UPDATE entries SET seq = 4 WHERE seq = 12"))
        conn.execute(text("UPDATE entries SET seq = 12 WHERE seq = -1"))
    report = filled.audit()
    codes = {(f.seq, f.code) for f in report.findings}
    assert (4, "seq-mismatch") in codes and (12, "seq-mismatch") in codes


def test_tail_truncated_below_a_checkpoint(filled: Ledger, backend: Backend) -> None:
    """A careful attacker removes the last entries and rewinds the head and the tree; checkpoints remain."""
    keep = 13
    kept_hashes = [filled.entry(seq).hash for seq in range(keep)]
    tree = merkle.CompactRange(0, [])
    tree.append(kept_hashes)
    with backend.bypass() as conn:
        for table in ("entries", "payloads", "entry_subjects"):
            conn.execute(text(f"DELETE FROM {table} WHERE seq >= :keep"), {"keep": keep})
        conn.execute(text("DELETE FROM merkle_nodes WHERE end_seq >= :keep"), {"keep": keep})
        conn.execute(
            text("UPDATE logs SET size = :size, head_hash = :head, frontier = :frontier"),
            {"size": keep, "head": kept_hashes[-1], "frontier": b"".join(tree.hashes)},
        )
    report = filled.audit()
    # one truncation per later checkpoint, and the rewound head names a checkpoint of its size that was never signed
    assert {(f.seq, f.code) for f in report.findings} == {(keep, "truncated"), (keep - 1, "checkpoint-missing")}
    with pytest.raises(IntegrityError, match=f"seq {keep - 1}: checkpoint-missing"):
        raise_first(report)


def test_a_stored_tree_node_changed(filled: Ledger, backend: Backend) -> None:
    with backend.bypass() as conn:
        digest = conn.execute(text("SELECT hash FROM merkle_nodes WHERE level = 2 AND idx = 1")).scalar_one()
        conn.execute(
            text("UPDATE merkle_nodes SET hash = :h WHERE level = 2 AND idx = 1"),
            {"h": _flip_byte(bytes(digest), 5)},
        )
    report = filled.audit()
    assert [(f.seq, f.code) for f in report.findings] == [(7, "node-mismatch")]  # node (2, 1) covers seqs 4..7


def test_a_forked_checkpoint(filled: Ledger, backend: Backend) -> None:
    """A second checkpoint of an existing size with another root, even validly signed, is a fork."""
    from ledger.notes import format_checkpoint, sign_note
    from ledger.store.records import CheckpointRecord

    signer = filled.signer()
    fake_root = bytes(32)
    note = sign_note(format_checkpoint(filled.origin, 10, fake_root), [signer])
    filled.recorder.add_checkpoint(
        filled.head().log_id, CheckpointRecord(10, fake_root, note, "2026-11-20T00:00:00.000000Z")
    )
    codes = {(f.seq, f.code) for f in filled.audit().findings}
    assert (9, "root-mismatch") in codes and (9, "fork") in codes


def test_a_column_changed_to_mislead_queries(filled: Ledger, backend: Backend) -> None:
    with backend.bypass() as conn:
        conn.execute(text("UPDATE entries SET type = 'approval.decision' WHERE seq = 15"))
    assert [(f.seq, f.code) for f in filled.audit().findings] == [(15, "column-mismatch")]


def test_every_checkpoint_deleted(filled: Ledger, backend: Backend) -> None:
    """A copy that lost its signed checkpoints: the head says the last append signed one of its size."""
    with backend.bypass() as conn:
        conn.execute(text("DELETE FROM checkpoints"))
    report = filled.audit()
    assert [(f.seq, f.code) for f in report.findings] == [(SIZE - 1, "checkpoint-missing")]


def _only_stream_head_finding(ledger: Ledger, backend: Backend, change: str) -> str:
    """Make ``change`` with triggers bypassed; the audit must report one stream-head-mismatch: its message."""
    with backend.bypass() as conn:
        conn.execute(text(change))
    findings = ledger.audit().findings
    assert [(f.seq, f.code) for f in findings] == [(None, "stream-head-mismatch")]
    return findings[0].message


def test_a_lost_stream_row(filled: Ledger, backend: Backend) -> None:
    """Without its streams row, the next append to s/1 would start that stream's numbering again at 0."""
    message = _only_stream_head_finding(filled, backend, "DELETE FROM streams WHERE stream = 's/1'")
    assert "'s/1'" in message and "missing" in message


def test_a_stream_row_set_back(filled: Ledger, backend: Backend) -> None:
    message = _only_stream_head_finding(filled, backend, "UPDATE streams SET next_seq = 2 WHERE stream = 's/2'")
    assert "'s/2'" in message and "is 2, the entries give 6" in message


def test_a_stream_row_set_forward_shows_as_a_gap_at_the_next_append(filled: Ledger, backend: Backend) -> None:
    """A raised value is what a concurrent append looks like, so the audit waits for the entry that skips."""
    with backend.bypass() as conn:
        conn.execute(text("UPDATE streams SET next_seq = 9 WHERE stream = 's/0'"))
    assert filled.audit().ok
    filled.append(check_event(SIZE, stream="s/0"), producer="p")
    assert [(f.seq, f.code) for f in filled.audit().findings] == [(SIZE, "stream-gap")]


def _subject_findings(ledger: Ledger, backend: Backend, *changes: str) -> list[tuple[int | None, str, str]]:
    """Make ``changes`` to the subject index with triggers bypassed; the audit's findings."""
    with backend.bypass() as conn:
        for change in changes:
            conn.execute(text(change))
    return [(f.seq, f.code, f.message) for f in ledger.audit().findings]


def test_a_lost_subject_row(filled: Ledger, backend: Backend) -> None:
    """Without its index row, entry 8 would be missed by queries and erasure by that subject."""
    findings = _subject_findings(
        filled,
        backend,
        "DELETE FROM entry_subjects WHERE seq = 8 AND subject = (SELECT "
        "MIN(subject) FROM entry_subjects WHERE seq = 8)",
    )
    assert [(seq, code) for seq, code, _message in findings] == [(8, "subject-index-mismatch")]
    assert "1 subject reference(s) of the signed body are missing" in findings[0][2]


def test_a_subject_row_added(filled: Ledger, backend: Backend) -> None:
    """An added row ties a person to entry 7, whose signed body names nobody."""
    findings = _subject_findings(
        filled,
        backend,
        "INSERT INTO entry_subjects (log_id, subject, seq) SELECT log_id, subject, 7 FROM entry_subjects WHERE seq = 6",
    )
    assert [(seq, code) for seq, code, _message in findings] == [(7, "subject-index-mismatch")]
    assert "ties 1 reference(s) to this entry that its signed body does not list" in findings[0][2]


def test_a_subject_row_moved(filled: Ledger, backend: Backend) -> None:
    findings = _subject_findings(filled, backend, "UPDATE entry_subjects SET seq = 11 WHERE seq = 10")
    assert [(seq, code) for seq, code, _message in findings] == [
        (10, "subject-index-mismatch"),
        (11, "subject-index-mismatch"),
    ]


def test_a_subject_row_beyond_the_log(filled: Ledger, backend: Backend) -> None:
    """A row for an entry that does not exist would tie its subject to whatever is appended at that seq."""
    findings = _subject_findings(
        filled,
        backend,
        f"INSERT INTO entry_subjects (log_id, subject, seq) SELECT log_id, subject, {SIZE + 5} "
        "FROM entry_subjects WHERE seq = 4",
    )
    assert findings == [
        (SIZE + 5, "subject-index-mismatch", "the subject index ties 2 reference(s) to a missing entry")
    ]


def test_the_subject_index_is_not_quoted(filled: Ledger, backend: Backend) -> None:
    """Findings count references; they never name one (a reference is a pseudonym of a person)."""
    with backend.bypass() as conn:
        refs = set(conn.execute(text("SELECT subject FROM entry_subjects")).scalars())
    findings = _subject_findings(filled, backend, "UPDATE entry_subjects SET seq = 3 WHERE seq = 2")
    assert findings and not any(ref in message for ref in refs for _seq, _code, message in findings)


def test_an_append_during_the_audit_is_not_a_finding(filled: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tree nodes and the subject index are read after the entries: rows of an append that commits in
    between lie beyond the audited entries and are not held against the log."""
    read_entries = filled.recorder.iter_entries_with_payloads

    def entries_then_an_append(log_id: int, *args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from read_entries(log_id, *args, **kwargs)
        late = [check_event(n, stream="s/0", subjects=["emp-late"]) for n in (SIZE, SIZE + 1)]
        filled.append_batch(late, producer="p")  # 22 leaves: completes tree nodes that end at seq 21

    monkeypatch.setattr(filled.recorder, "iter_entries_with_payloads", entries_then_an_append)
    report = filled.audit()
    assert report.findings == [] and report.entries_checked == SIZE
    monkeypatch.undo()
    assert filled.audit().entries_checked == SIZE + 2


def test_a_tree_node_beyond_the_log(filled: Ledger, backend: Backend) -> None:
    with backend.bypass() as conn:
        conn.execute(
            text(
                "INSERT INTO merkle_nodes (log_id, level, idx, end_seq, hash) "
                "SELECT log_id, 1, 12, 25, hash FROM merkle_nodes WHERE level = 1 AND idx = 0"
            )
        )
    report = filled.audit()
    assert [(f.seq, f.code) for f in report.findings] == [(25, "unexpected-node")]
