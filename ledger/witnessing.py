"""Witness cosignatures on the ledger's side: which ones are stored, and the checkpoint published with them.

A witness (``ledger witness``, or any C2SP tlog-witness) checks that each new checkpoint extends the last
one it cosigned and returns a C2SP tlog-cosignature/v1 line.  The ledger stores a cosignature only when

1. its key is one of ``LEDGER_WITNESS_KEYS`` (cosigner verifier keys, signature type 0x04);
2. it verifies over the checkpoint text of a checkpoint the ledger signed at that size
   (C2SP tlog-cosignature "Ed25519 signed message");
3. its timestamp is at most :data:`MAX_FUTURE_SECONDS` ahead of the ledger's clock.

Published checkpoints carry every stored cosignature as extra signature lines after the log's own
(C2SP signed-note: verifiers ignore the signatures of keys they do not know).  Error messages never repeat
the submitted line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from ledger.errors import ConfigurationError, ValidationError, VerificationError
from ledger.notes import (
    MAX_SIGNATURES,
    CosignatureVerifier,
    NoteSignature,
    add_signature_lines,
    parse_checkpoint,
    parse_cosigner_key,
    parse_note,
    verify_cosignature,
)
from ledger.settings import Settings
from ledger.store.cosignatures import CosignatureRecord, CosignatureStore
from schemas.timestamps import format_timestamp

if TYPE_CHECKING:
    from ledger.service import Ledger

__all__ = [
    "MAX_FUTURE_SECONDS",
    "MAX_LINE_CHARS",
    "accept_cosignature",
    "configured_witnesses",
    "cosigned_checkpoint",
]

MAX_FUTURE_SECONDS: Final = 300
"""A cosignature timestamped further ahead of the ledger's clock than this is refused."""
MAX_LINE_CHARS: Final = 1024
"""Far above a real cosignature line (a 255-character name and 100 base64 characters)."""


def configured_witnesses(settings: Settings) -> list[CosignatureVerifier]:
    """The witness keys of ``LEDGER_WITNESS_KEYS``; a malformed one is a configuration error."""
    verifiers = []
    for index, text in enumerate(settings.witness_keys):
        try:
            verifiers.append(parse_cosigner_key(text.strip()))
        except VerificationError as exc:
            raise ConfigurationError(f"LEDGER_WITNESS_KEYS[{index}] is not a cosigner verifier key: {exc}") from None
    return verifiers


def accept_cosignature(
    ledger: Ledger, size: int, line: str, *, now: float | None = None
) -> tuple[CosignatureRecord, bool]:
    """Verify a witness's cosignature line of the checkpoint of ``size`` and store it.

    Returns the stored cosignature and whether this call stored it (False: this witness key had already
    cosigned that checkpoint; the first cosignature is kept).  Raises :class:`ValidationError` for a line
    that is not one signature line or is not by a configured witness, :class:`VerificationError` when it
    does not verify or is timestamped in the future, :class:`NotFoundError` for a size beyond the log.
    """
    signature = _signature_line(line)
    verifier = _witness_for(signature, configured_witnesses(ledger.settings))
    checkpoint_text = parse_note(ledger.checkpoint(size)).text
    timestamp = verify_cosignature(checkpoint_text, signature.line(), verifier)
    current = time.time() if now is None else now
    if timestamp > current + MAX_FUTURE_SECONDS:
        raise VerificationError(
            f"the cosignature is timestamped more than {MAX_FUTURE_SECONDS} seconds ahead of the ledger's clock"
        )
    record = CosignatureRecord(
        size=size,
        witness_name=verifier.name,
        witness_key_id=verifier.key_id.hex(),
        signature_line=signature.line().rstrip("\n"),
        created_at=format_timestamp(datetime.now(UTC)),
    )
    return CosignatureStore(ledger.recorder.engine).add(ledger.log_id, record)


def cosigned_checkpoint(ledger: Ledger, size: int | None = None) -> str:
    """The signed checkpoint note at ``size`` (default: current) with every stored cosignature appended."""
    note = ledger.checkpoint(size)
    parsed = parse_note(note)
    checkpoint_size = parse_checkpoint(parsed.text).size if size is None else size
    lines = [
        record.signature_line
        for record in CosignatureStore(ledger.recorder.engine).for_size(ledger.log_id, checkpoint_size)
    ]
    room = MAX_SIGNATURES - len(parsed.signatures)  # C2SP signed-note: verifiers may refuse longer notes
    return add_signature_lines(note, lines[:room]) if lines else note


def _signature_line(line: object) -> NoteSignature:
    """One C2SP signed-note signature line, syntax only (``— <name> <base64(key id || signature)>``)."""
    if isinstance(line, str) and line.endswith("\n"):
        line = line[:-1]
    if not isinstance(line, str) or not line or len(line) > MAX_LINE_CHARS or "\n" in line:
        raise ValidationError("the cosignature must be one signature line", field="cosignature")
    try:
        # a minimal note holding the line as its only signature: the note parser checks the line's syntax
        return parse_note("cosignature\n\n" + line + "\n").signatures[0]
    except VerificationError:
        raise ValidationError(
            "the cosignature is not a C2SP signature line (— <name> <base64>)", field="cosignature"
        ) from None


def _witness_for(signature: NoteSignature, witnesses: list[CosignatureVerifier]) -> CosignatureVerifier:
    for verifier in witnesses:
        if (verifier.name, verifier.key_id) == (signature.name, signature.key_id):
            return verifier
    raise ValidationError("the cosignature is not by a witness key this ledger accepts", field="cosignature")
