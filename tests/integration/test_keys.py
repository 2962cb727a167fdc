"""Key material: files with mode 0600, a key handed in through LEDGER_SIGNING_KEY, mismatches refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from ledger.errors import ConfigurationError
from ledger.notes import NoteSigner, parse_verifier_key
from ledger.service import Ledger
from ledger.settings import Settings
from tests.contract.conftest import check_event

ORIGIN = "keys.bank.example/ledger"


def test_init_writes_private_key_and_subject_secret_with_mode_0600(tmp_path: Path) -> None:
    ledger = Ledger.create(Settings(data_dir=tmp_path), ORIGIN)
    key_file = ledger.key_store.key_path(ledger.active_key().key_id)
    for path in (key_file, tmp_path / "keys" / "subject.secret"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = NoteSigner.from_private_key(key_file.read_text().strip())
    assert signer.verifier_key() == ledger.active_key().verifier_key
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        ledger.key_store.save_signer(signer)


def test_signing_key_from_the_environment_is_used_and_never_written(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    settings = Settings(data_dir=tmp_path, signing_key=SecretStr(signer.private_key_string()))
    ledger = Ledger.create(settings, ORIGIN)
    assert ledger.active_key().key_id == signer.key_id.hex()
    assert not ledger.key_store.key_path(signer.key_id.hex()).exists()
    entry = ledger.append(check_event(1), producer="p").entry
    assert parse_verifier_key(ledger.active_key().verifier_key).verify(entry.body, entry.signature)
    assert ledger.audit().ok


def test_a_signing_key_that_is_not_the_logs_active_key_is_refused(tmp_path: Path) -> None:
    Ledger.create(Settings(data_dir=tmp_path), ORIGIN)
    stranger = NoteSigner.generate(ORIGIN)
    settings = Settings(data_dir=tmp_path, signing_key=SecretStr(stranger.private_key_string()))
    ledger = Ledger.open(settings, ORIGIN)
    with pytest.raises(ConfigurationError, match="active key"):
        ledger.append(check_event(1), producer="p")
    assert ledger.head().size == 0


def test_a_missing_key_file_is_a_clear_configuration_error(tmp_path: Path) -> None:
    ledger = Ledger.create(Settings(data_dir=tmp_path), ORIGIN)
    ledger.key_store.key_path(ledger.active_key().key_id).unlink()
    reopened = Ledger.open(Settings(data_dir=tmp_path), ORIGIN)
    with pytest.raises(ConfigurationError, match="LEDGER_SIGNING_KEY"):
        reopened.append(check_event(1), producer="p")


def test_a_key_rotated_by_another_process_is_picked_up(tmp_path: Path) -> None:
    first = Ledger.create(Settings(data_dir=tmp_path), ORIGIN)
    first.append(check_event(1), producer="p")
    second = Ledger.open(Settings(data_dir=tmp_path), ORIGIN)
    new_key = second.rotate_key("compromise drill")
    entry = first.append(check_event(2), producer="p").entry
    assert entry.key_id == new_key.key_id
    assert first.audit().ok
