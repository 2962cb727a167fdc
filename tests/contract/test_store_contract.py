"""The storage contract: the same behaviour on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import itertools
import math

import orjson
import pytest
from sqlalchemy import event, text

from ledger import merkle
from ledger.chain import payload_digest_of_bytes, subject_ref
from ledger.errors import ConflictError, NotFoundError, StorageUnavailable, ValidationError
from ledger.notes import open_note, parse_checkpoint, parse_verifier_key
from ledger.service import Ledger
from ledger.store.database import make_engine
from ledger.store.records import EntryFilter
from tests.contract.conftest import ORIGIN, Backend, check_event


def _root_of_checkpoint(ledger, size: int) -> bytes:
    verifiers = [parse_verifier_key(k.verifier_key) for k in ledger.keys()]  # noqa: SIM118
    return parse_checkpoint(open_note(ledger.checkpoint(size), verifiers).text).root


def test_single_append_produces_a_signed_chained_entry_and_checkpoint(ledger) -> None:
    result = ledger.append(check_event(1), producer="iam-scanner")
    assert result.created
    entry = result.entry
    body = orjson.loads(entry.body)
    assert entry.seq == 0 and body["seq"] == 0
    assert body["prev"] == "0" * 64
    assert body["log"] == ORIGIN and body["producer"] == "iam-scanner"
    assert body["occurred_at"] == "2026-11-20T00:00:01.000000Z"
    assert entry.hash == merkle.leaf_hash(entry.body)
    verifier = parse_verifier_key(ledger.active_key().verifier_key)
    assert verifier.verify(entry.body, entry.signature)
    assert _root_of_checkpoint(ledger, 1) == entry.hash  # RFC 9162: the root of a one-leaf tree is its leaf hash


def test_entries_chain_by_hash_and_payloads_live_beside_them(ledger) -> None:
    results = ledger.append_batch([check_event(n) for n in range(5)], producer="p")
    for previous, current in itertools.pairwise(results):
        assert orjson.loads(current.entry.body)["prev"] == previous.entry.hash.hex()
    stored = ledger.payload(3)
    assert stored is not None and stored.salt is not None and len(stored.salt) == 16
    assert orjson.loads(stored.payload)["check_id"] == "IAM-01-3"
    assert b"IAM-01-3" not in results[3].entry.body  # the body commits to the payload, never contains it
    digest = orjson.loads(results[3].entry.body)["payload_digest"]
    assert payload_digest_of_bytes(stored.salt, stored.payload) == digest


def test_batch_is_all_or_nothing_and_names_the_bad_index(ledger) -> None:
    ledger.append(check_event(100), producer="p")
    bad = [check_event(1), check_event(2), check_event(3, status="green"), check_event(4)]
    with pytest.raises(ValidationError) as caught:
        ledger.append_batch(bad, producer="p")
    assert "event 2" in str(caught.value) and "payload.status" in str(caught.value)
    assert ledger.head().size == 1
    assert [e.seq for e in ledger.entries()] == [0]


def test_resending_an_event_id_returns_the_stored_entry(ledger) -> None:
    first = ledger.append(check_event(7), producer="p")
    again = ledger.append(check_event(7), producer="p")
    assert not again.created and again.entry == first.entry
    assert ledger.head().size == 1
    mixed = ledger.append_batch([check_event(8), check_event(7), check_event(8)], producer="p")
    assert [r.created for r in mixed] == [True, False, False]
    assert mixed[2].entry == mixed[0].entry
    assert ledger.head().size == 2


def test_reusing_an_event_id_for_other_content_is_refused(ledger) -> None:
    ledger.append(check_event(7), producer="p")
    with pytest.raises(ConflictError, match="already stored"):
        ledger.append(check_event(7, status="fail"), producer="p")
    with pytest.raises(ConflictError):
        ledger.append(check_event(7), producer="another-producer")
    assert ledger.head().size == 1


def test_expected_stream_seq_rejects_a_stale_writer(ledger) -> None:
    ledger.append(check_event(1, expected_stream_seq=0), producer="p")
    ledger.append(check_event(2, expected_stream_seq=1), producer="p")
    with pytest.raises(ConflictError, match="expected_stream_seq"):
        ledger.append(check_event(3, expected_stream_seq=1), producer="p")
    assert ledger.head().size == 2


def test_stream_seq_counts_per_stream(ledger) -> None:
    events = [check_event(n, stream=f"controls/c{n % 2}") for n in range(6)]
    results = ledger.append_batch(events, producer="p")
    assert [r.entry.stream_seq for r in results] == [0, 0, 1, 1, 2, 2]
    more = ledger.append(check_event(10, stream="controls/c1"), producer="p")
    assert more.entry.stream_seq == 3


def test_a_batch_advances_known_and_new_streams_together(ledger) -> None:
    """Stream heads are stored for every stream a batch touched, those seen before and those it starts."""
    ledger.append_batch([check_event(0, stream="controls/a"), check_event(1, stream="controls/b")], producer="p")
    names = ["controls/a", "controls/c", "controls/a", *(f"controls/n{k}" for k in range(50))]
    results = ledger.append_batch([check_event(10 + k, stream=name) for k, name in enumerate(names)], producer="p")
    assert [r.entry.stream_seq for r in results[:3]] == [1, 0, 2]
    assert {r.entry.stream_seq for r in results[3:]} == {0}
    after = [
        ledger.append(check_event(100 + k, stream=name), producer="p")
        for k, name in enumerate(["controls/a", "controls/b", "controls/c", "controls/n49"])
    ]
    assert [r.entry.stream_seq for r in after] == [3, 1, 1, 1]


def test_queries_filter_by_stream_type_producer_subject_time_and_seq(ledger) -> None:
    ledger.append_batch([check_event(n, stream=f"controls/a/{n}") for n in range(3)], producer="scanner")
    ledger.append(check_event(50, stream="controls_b/x"), producer="other")
    ledger.append(check_event(60, stream="incident/INC-1", subjects=["emp-00042"]), producer="soc")
    assert [e.seq for e in ledger.entries(EntryFilter(stream_prefix="controls/"))] == [0, 1, 2]
    assert [e.seq for e in ledger.entries(EntryFilter(stream_prefix="controls_"))] == [3]  # '_' is not a wildcard
    assert [e.seq for e in ledger.entries(EntryFilter(stream="controls/a/1"))] == [1]
    assert [e.seq for e in ledger.entries(EntryFilter(producer="other"))] == [3]
    ref = subject_ref(ledger.subject_secret(), "emp-00042")
    assert [e.seq for e in ledger.entries(EntryFilter(subject=ref))] == [4]
    assert b"emp-00042" not in ledger.entry(4).body
    window = EntryFilter(occurred_since="2026-11-20T00:00:01.000000Z", occurred_until="2026-11-20T00:00:51.000000Z")
    assert [e.seq for e in ledger.entries(window)] == [1, 2, 3]
    assert [e.seq for e in ledger.entries(EntryFilter(from_seq=1, to_seq=3))] == [1, 2, 3]
    assert [e.seq for e in ledger.entries(EntryFilter(type="approval.decision"))] == []


def test_reads_by_seq_and_event_id(ledger) -> None:
    stored = ledger.append(check_event(9), producer="p").entry
    assert ledger.entry(0) == stored
    assert ledger.entry_by_event_id(check_event(9)["id"]) == stored
    with pytest.raises(NotFoundError):
        ledger.entry(1)


def test_inclusion_and_consistency_proofs_verify_against_signed_checkpoints(ledger) -> None:
    for start in range(0, 37, 6):  # several batches, so several checkpoints
        ledger.append_batch([check_event(n) for n in range(start, min(start + 6, 37))], producer="p")
    size = ledger.head().size
    for old in (1, 5, 6, 12, 31, 36, 37):
        root_old = _root_of_checkpoint(ledger, old)
        for seq in (0, old // 2, old - 1):
            proof = ledger.inclusion_proof(seq, old)
            merkle.verify_inclusion(ledger.entry(seq).hash, seq, old, proof.hashes, root_old)
        consistency = ledger.consistency_proof(old, size)
        merkle.verify_consistency(old, size, root_old, _root_of_checkpoint(ledger, size), consistency.hashes)


def test_a_proof_costs_logarithmic_reads(ledger) -> None:
    ledger.append_batch([check_event(n) for n in range(1000)], producer="p")
    statements: list[str] = []
    rows_read = 0

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = ledger.recorder.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        proof = ledger.inclusion_proof(613, 1000)
        rows_read = len(merkle.proof_nodes(merkle.inclusion_ranges(613, 1000)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(proof.hashes) == math.ceil(math.log2(1000))
    assert rows_read <= 2 * math.ceil(math.log2(1000))
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 4  # head, leaf hashes, inner nodes, the leaf itself: no scan of the log


def test_checkpoint_at_a_size_without_one_is_signed_on_demand(backend: Backend) -> None:
    settings = backend.settings.model_copy(update={"checkpoint_interval": 1000})
    ledger = Ledger.create(settings, ORIGIN)
    ledger.append_batch([check_event(n) for n in range(10)], producer="p")
    assert ledger.recorder.checkpoints(ledger.head().log_id) == []
    note = ledger.checkpoint(7)
    assert note.startswith(f"{ORIGIN}\n7\n")
    assert ledger.checkpoint(7) == note  # stored, not re-signed
    assert ledger.audit().ok


def test_entries_are_append_only_in_the_database(ledger, backend: Backend) -> None:
    ledger.append_batch([check_event(n, subjects=["emp-1"]) for n in range(3)], producer="p")
    statements = [
        "UPDATE entries SET stream = 'x' WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 2",
        "UPDATE merkle_nodes SET level = 9",
        "DELETE FROM checkpoints",
        "DELETE FROM entry_subjects",
    ]
    if backend.name == "postgresql":
        statements.append("TRUNCATE entries CASCADE")
    for statement in statements:
        with backend.admin() as conn, pytest.raises(Exception, match="append-only"):
            conn.execute(text(statement))
    assert [e.seq for e in ledger.entries()] == [0, 1, 2]
    assert ledger.audit().ok


def test_unique_seq_event_id_and_stream_seq(ledger, backend: Backend) -> None:
    ledger.append(check_event(1), producer="p")
    row = (
        "(log_id, seq, event_id, stream, stream_seq, type, producer, occurred_at, recorded_at, body, hash, "
        "signature, key_id)"
    )
    base = {
        "log_id": 1,
        "seq": 1,
        "event_id": "e2",
        "stream": "s2",
        "stream_seq": 0,
        "type": "t",
        "producer": "p",
        "at": "x",
        "b": b"{}",
        "h": bytes(32),
        "s": bytes(64),
        "k": "00000000",
    }
    values = "(:log_id, :seq, :event_id, :stream, :stream_seq, :type, :producer, :at, :at, :b, :h, :s, :k)"
    clashes = [
        {"seq": 0},
        {"event_id": check_event(1)["id"]},
        {"stream": check_event(1)["stream"], "stream_seq": 0},
    ]
    for clash in clashes:
        with backend.admin() as conn, pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            conn.execute(text(f"INSERT INTO entries {row} VALUES {values}"), {**base, **clash})


def test_postgres_application_role_has_no_update_or_delete_grant(pg_backend: Backend) -> None:
    backend = pg_backend
    ledger = Ledger.create(backend.settings, ORIGIN)
    ledger.append(check_event(1), producer="p")
    with backend.admin() as conn:
        for table in ("entries", "merkle_nodes", "checkpoints", "entry_subjects"):
            for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
                allowed = conn.execute(
                    text("SELECT has_table_privilege('ledger_app', :t, :p)"), {"t": table, "p": privilege}
                ).scalar_one()
                assert allowed is False, (table, privilege)
            assert conn.execute(text("SELECT has_table_privilege('ledger_app', :t, 'INSERT')"), {"t": table}).scalar()
    with ledger.recorder.engine.begin() as conn, pytest.raises(Exception, match="permission denied"):
        conn.execute(text("DELETE FROM entries"))


def test_key_rotation_keeps_old_keys_and_verification_works_across_it(ledger) -> None:
    ledger.append_batch([check_event(n) for n in range(4)], producer="p")
    old = ledger.active_key()
    new = ledger.rotate_key("annual rotation")
    ledger.append_batch([check_event(n) for n in range(4, 8)], producer="p")
    keys = ledger.keys()
    assert [k.key_id for k in keys] == [new.key_id, old.key_id]  # active first
    assert keys[1].valid_until_seq == 5 and new.valid_from_seq == 5
    rotated = ledger.entry(4)
    assert rotated.type == "key.rotated" and rotated.key_id == old.key_id  # the old key vouches for the new
    assert ledger.entry(7).key_id == new.key_id
    assert ledger.audit().ok
    note = ledger.checkpoint(5)  # the handover checkpoint carries both signatures
    assert note.count("\u2014 ") == 2
    for key in keys:
        open_note(note, [parse_verifier_key(key.verifier_key)])


def test_audit_of_an_untouched_log_is_clean(ledger) -> None:
    ledger.append_batch([check_event(n, stream=f"s/{n % 3}") for n in range(50)], producer="p")
    report = ledger.audit()
    assert report.ok, report.findings
    assert report.entries_checked == 50 and report.payloads_checked == 50
    assert report.nodes_checked == 50 - 3  # n - popcount(n) complete inner nodes (50 = 32 + 16 + 2)


def test_database_down_is_reported_as_storage_unavailable(tmp_path) -> None:
    from ledger.settings import Settings

    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody:x@127.0.0.1:1/none")
    with pytest.raises(StorageUnavailable):
        Ledger.open(settings, ORIGIN)


def test_signatures_are_base64_ed25519_over_the_exact_body(ledger) -> None:
    entry = ledger.append(check_event(3), producer="p").entry
    encoded = base64.b64encode(entry.signature).decode()
    assert len(base64.b64decode(encoded)) == 64


def test_migrations_reach_the_declared_head_and_match_the_tables(backend: Backend) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from ledger.store.database import HEAD_REVISION, MIGRATIONS_DIR, schema_revision
    from ledger.store.tables import metadata

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION
    engine = make_engine(backend.admin_url)
    try:
        assert schema_revision(engine) == HEAD_REVISION
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
        assert differences == []  # the migrated schema is exactly ledger/store/tables.py
    finally:
        engine.dispose()
