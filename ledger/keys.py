"""Key material on disk: the log's Ed25519 signing keys and the subject HMAC secret.

Private keys are kept in C2SP/sumdb-note encoding (``PRIVATE+KEY+<name>+<id>+<base64>``), one file per
key under ``<data dir>/keys/`` with mode 0600, or handed in through ``LEDGER_SIGNING_KEY``.  Public keys
and their validity periods live in the database (``log_keys``) so verifiers find every key ever used.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ledger.errors import ConfigurationError, VerificationError
from ledger.files import PRIVATE_FILE_MODE, private_directory
from ledger.notes import NoteSigner
from ledger.settings import Settings

SUBJECT_SECRET_FILE = "subject.secret"  # noqa: S105 - a file name, not a secret


def _write_secret(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 and the text; never overwrite an existing secret."""
    private_directory(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError as exc:
        raise ConfigurationError(f"refusing to overwrite existing key file {path}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class KeyStore:
    """Finds and saves private key material for the configured data directory."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.directory = settings.key_dir

    def key_path(self, key_id_hex: str) -> Path:
        return self.directory / f"{key_id_hex}.key"

    def save_signer(self, signer: NoteSigner) -> Path:
        path = self.key_path(signer.key_id.hex())
        _write_secret(path, signer.private_key_string())
        return path

    def signer(self, origin: str, key_id_hex: str) -> NoteSigner:
        """The private key for ``key_id_hex``: from LEDGER_SIGNING_KEY if set, else from its key file."""
        configured = self._settings.signing_key
        if configured is not None:
            signer = _parse_private_key(configured.get_secret_value(), "LEDGER_SIGNING_KEY")
            if signer.key_id.hex() != key_id_hex or signer.name != origin:
                raise ConfigurationError(
                    f"LEDGER_SIGNING_KEY holds key {signer.name}+{signer.key_id.hex()}, "
                    f"but the active key of the log is {origin}+{key_id_hex}"
                )
            return signer
        path = self.key_path(key_id_hex)
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"the private key {key_id_hex} of log {origin!r} is not in {self.directory}; "
                "set LEDGER_SIGNING_KEY or LEDGER_DATA_DIR"
            ) from exc
        signer = _parse_private_key(text, str(path))
        if signer.key_id.hex() != key_id_hex:
            raise ConfigurationError(f"key file {path} holds key {signer.key_id.hex()}, expected {key_id_hex}")
        return signer

    def subject_secret(self, create: bool = False) -> bytes:
        """The HMAC secret for subject refs, from LEDGER_SUBJECT_SECRET or the secret file."""
        configured = self._settings.subject_secret
        if configured is not None:
            return _parse_hex_secret(configured.get_secret_value(), "LEDGER_SUBJECT_SECRET")
        path = self.directory / SUBJECT_SECRET_FILE
        if not path.exists():
            if not create:
                raise ConfigurationError(f"no subject secret: set LEDGER_SUBJECT_SECRET or create {path}")
            _write_secret(path, secrets.token_hex(32))
        return _parse_hex_secret(path.read_text(encoding="ascii").strip(), str(path))


def _parse_private_key(text: str, where: str) -> NoteSigner:
    try:
        return NoteSigner.from_private_key(text.strip())
    except VerificationError as exc:
        raise ConfigurationError(f"{where} does not hold a valid C2SP private key: {exc}") from exc


def _parse_hex_secret(text: str, where: str) -> bytes:
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise ConfigurationError(f"{where} must be hex") from exc
    if len(secret) < 16:
        raise ConfigurationError(f"{where} must hold at least 16 bytes")
    return secret
