"""Witness cosignatures in the store, on SQLite and PostgreSQL: verified before stored, stored once, append-only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from ledger.errors import ValidationError, VerificationError
from ledger.notes import Cosigner, parse_note
from ledger.service import Ledger
from ledger.store.cosignatures import CosignatureStore
from ledger.witnessing import MAX_FUTURE_SECONDS, accept_cosignature
from tests.contract.conftest import ORIGIN, Backend, check_event

WITNESS = Cosigner.generate("witness.example/contract")


@pytest.fixture
def witnessed(backend: Backend) -> Iterator[Ledger]:
    settings = backend.settings.model_copy(update={"witness_keys": [WITNESS.verifier().verifier_key()]})
    ledger = Ledger.create(settings, ORIGIN)
    ledger.append_batch([check_event(n) for n in range(4)], producer="p")
    yield ledger
    ledger.recorder.engine.dispose()


def _checkpoint_text(ledger: Ledger, size: int) -> str:
    return parse_note(ledger.checkpoint(size)).text


def _line(ledger: Ledger, size: int, timestamp: int | None = None) -> str:
    return WITNESS.cosign(_checkpoint_text(ledger, size), int(time.time()) if timestamp is None else timestamp)


def test_a_cosignature_is_stored_once_per_size_and_witness_key(witnessed: Ledger) -> None:
    first, created = accept_cosignature(witnessed, 4, _line(witnessed, 4))
    assert created and first.witness_key_id == WITNESS.key_id.hex() and first.witness_name == WITNESS.name
    again, created_again = accept_cosignature(witnessed, 4, _line(witnessed, 4, int(time.time()) + 1))
    assert not created_again and again == first
    accept_cosignature(witnessed, 2, _line(witnessed, 2))
    stored = CosignatureStore(witnessed.recorder.engine).all(witnessed.log_id)
    assert [row.size for row in stored] == [2, 4] and stored[1] == first
    note = witnessed.cosigned_checkpoint(4)
    assert note == witnessed.checkpoint(4) + first.signature_line + "\n"


def test_nothing_is_stored_that_does_not_verify(witnessed: Ledger) -> None:
    with pytest.raises(VerificationError, match="does not verify"):
        accept_cosignature(witnessed, 4, _line(witnessed, 3))
    with pytest.raises(ValidationError, match="not by a witness key"):
        accept_cosignature(witnessed, 4, Cosigner.generate(WITNESS.name).cosign(_checkpoint_text(witnessed, 4), 1))
    with pytest.raises(VerificationError, match="ahead of the ledger's clock"):
        accept_cosignature(witnessed, 4, _line(witnessed, 4, int(time.time()) + MAX_FUTURE_SECONDS + 60))
    assert CosignatureStore(witnessed.recorder.engine).all(witnessed.log_id) == []
    assert witnessed.cosigned_checkpoint() == witnessed.checkpoint()


def test_cosignatures_are_append_only_in_the_database(witnessed: Ledger, backend: Backend) -> None:
    accept_cosignature(witnessed, 4, _line(witnessed, 4))
    statements = ["UPDATE cosignatures SET size = 3", "DELETE FROM cosignatures"]
    if backend.name == "postgresql":
        statements.append("TRUNCATE cosignatures")
    for statement in statements:
        with backend.admin() as conn, pytest.raises(Exception, match="append-only"):
            conn.execute(text(statement))
    if backend.name == "postgresql":  # the application role has SELECT and INSERT only
        with witnessed.recorder.engine.connect() as conn, pytest.raises(Exception, match="permission denied"):
            conn.execute(text("UPDATE cosignatures SET size = 3"))
    assert [row.size for row in CosignatureStore(witnessed.recorder.engine).all(witnessed.log_id)] == [4]
