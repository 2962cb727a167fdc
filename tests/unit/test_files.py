"""Owner-only directories and files under any umask; what exists is left alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.files import private_directory, private_file


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_missing_directory_is_made_0700(tmp_path: Path, open_umask: None) -> None:
    target = tmp_path / "a" / "b" / "c"
    private_directory(target)
    for path in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert _mode(path) == 0o700, path


def test_a_new_file_is_0600_and_empty(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "data" / "ledger.db"
    private_file(path)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert path.read_bytes() == b""


def test_existing_files_and_directories_keep_their_mode_and_content(tmp_path: Path, open_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    existing = shared / "ledger.db"
    existing.write_bytes(b"SQLite format 3\x00")
    existing.chmod(0o640)
    private_file(existing)
    private_directory(shared)
    assert _mode(shared) == 0o755
    assert _mode(existing) == 0o640
    assert existing.read_bytes() == b"SQLite format 3\x00"
