"""``ledger witness``: an auditor's witness that cosigns the log's checkpoints and detects forks.

Each round it fetches the latest checkpoint, checks its signature with the log key it was given (never a
key the server names), and, when it has cosigned an earlier checkpoint, checks that the new one extends it:
an RFC 9162 consistency proof from the old root to the new one (2.1.4.2), equal roots for equal sizes, and
never a smaller tree.  Then it cosigns (C2SP tlog-cosignature/v1, signature type 0x04), records the new
state and hands the cosignature line to the ledger, which publishes it with the checkpoint.

A checkpoint that does not extend the one already cosigned is refused: nothing is cosigned, the state is
left as it was and one line ``FORK: ...`` naming both sizes and roots goes to stderr (exit 1).  Other
outcomes: a checkpoint that fails verification exits 1, bad local input (key, state file) 2, and a
network or HTTP failure 3, each with one line on stderr.

The state file (JSON, mode 0600, replaced atomically) holds the last checkpoint cosigned: size, root, the
note as fetched and the cosignature line.  It is written *before* the cosignature is sent, so a witness
whose answer was lost never cosigns, later, a checkpoint inconsistent with one it may already have
released; sending the stored line again is harmless (the ledger keeps one cosignature per size and key).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import httpx
import orjson

from ledger import merkle
from ledger.client import ApiError, ApiUnreachableError, LedgerClient
from ledger.errors import (
    ConfigurationError,
    InfrastructureError,
    LedgerError,
    ValidationError,
    VerificationError,
)
from ledger.notes import (
    Checkpoint,
    Cosigner,
    NoteVerifier,
    open_note,
    parse_checkpoint,
    parse_note,
    parse_verifier_key,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FORK",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "ForkError",
    "Round",
    "Witness",
    "WitnessState",
    "keygen",
    "load_cosigner",
    "load_state",
    "main",
    "save_state",
]

EXIT_OK: Final = 0
EXIT_FORK: Final = 1
"""A fork, or a checkpoint that does not verify (the CLI's "evidence failed verification")."""
EXIT_BAD_INPUT: Final = 2
EXIT_UNAVAILABLE: Final = 3
STATE_FORMAT: Final = "ledger-witness-state/1"
DEFAULT_INTERVAL_SECONDS: Final = 60.0


class ForkError(VerificationError):
    """The log presented a checkpoint that does not extend the one this witness cosigned."""

    def __init__(self, origin: str, old: tuple[int, bytes], new: tuple[int, bytes], reason: str) -> None:
        self.origin = origin
        self.old_size, self.old_root = old
        self.new_size, self.new_root = new
        super().__init__(
            f"{origin}: checkpoint of size {self.new_size} with root {_b64(self.new_root)} is not consistent "
            f"with the cosigned checkpoint of size {self.old_size} with root {_b64(self.old_root)} ({reason})"
        )


# --- state -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessState:
    """The last checkpoint this witness cosigned."""

    origin: str
    size: int
    root: bytes
    note: str
    cosignature: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": STATE_FORMAT,
                "origin": self.origin,
                "size": self.size,
                "root": _b64(self.root),
                "note": self.note,
                "cosignature": self.cosignature,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> WitnessState:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValidationError(f"state file {where} is not JSON") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValidationError(f"state file {where} is not a {STATE_FORMAT} file")
        origin, size, root, note, line = (data.get(name) for name in ("origin", "size", "root", "note", "cosignature"))
        texts = (origin, root, note, line)
        if not all(isinstance(value, str) for value in texts) or not isinstance(size, int) or isinstance(size, bool):
            raise ValidationError(f"state file {where} lacks origin, size, root, note or cosignature")
        assert isinstance(note, str) and isinstance(line, str)
        try:
            checkpoint = parse_checkpoint(parse_note(note).text)
        except VerificationError as exc:
            raise ValidationError(f"state file {where} holds a malformed note: {exc}") from None
        if (checkpoint.origin, checkpoint.size, _b64(checkpoint.root)) != (origin, size, root):
            raise ValidationError(f"state file {where}: origin, size and root differ from its note")
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root, note, line)


def load_state(path: Path) -> WitnessState | None:
    """The state in ``path``; None when the file does not exist yet (the witness's first checkpoint)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the state file {path}: {exc.strerror}") from None
    return WitnessState.from_json(raw, str(path))


def save_state(path: Path, state: WitnessState) -> None:
    """Replace ``path`` with ``state`` atomically: a temporary file (mode 0600) in the same directory,
    written and synced, renamed over the old one, then the directory synced."""
    directory = path.parent
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigurationError(f"cannot write the state file in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(state.to_json() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise ConfigurationError(f"cannot write the state file {path}: {exc.strerror}") from None
    with contextlib.suppress(OSError):  # a directory that cannot be opened for syncing (some filesystems)
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


# --- keys --------------------------------------------------------------------------------------------


def keygen(name: str, out: Path) -> Cosigner:
    """A new witness key named ``name``, its private key written to ``out`` (mode 0600, never overwritten)."""
    cosigner = Cosigner.generate(name)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"refusing to overwrite existing key file {out}") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot create the key file {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(cosigner.private_key_string() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return cosigner


def load_cosigner(path: Path) -> Cosigner:
    """The witness key in ``path`` (``PRIVATE+KEY+<name>+<id>+<base64(0x04 || seed)>``)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise ConfigurationError(f"cannot read the witness key {path}: {reason}") from None
    return Cosigner.from_private_key(text)


def _log_verifiers(keys: Sequence[str]) -> list[NoteVerifier]:
    if not keys:
        raise ValidationError("give the log's verifier key with --log-key")
    verifiers = []
    for text in keys:
        try:
            verifiers.append(parse_verifier_key(text.strip()))
        except VerificationError as exc:
            raise ValidationError(f"--log-key: {exc}") from None
    if len({verifier.name for verifier in verifiers}) != 1:
        raise ValidationError("every --log-key must be a key of the same log (one origin)")
    return verifiers


# --- one round ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did: ``posted`` false when the published checkpoint already carried this cosignature."""

    origin: str
    size: int
    root: bytes
    previous_size: int | None
    posted: bool
    stored_now: bool

    def text(self) -> str:
        where = f"{self.origin} size {self.size} root {_b64(self.root)}"
        if not self.posted:
            return f"{where}: already cosigned"
        since = "first checkpoint" if self.previous_size is None else f"consistent with size {self.previous_size}"
        stored = "stored" if self.stored_now else "already stored"
        return f"cosigned {where} ({since}; {stored} by the ledger)"


class Witness:
    """Checks and cosigns one log's checkpoints through a :class:`LedgerClient`."""

    def __init__(
        self,
        client: LedgerClient,
        log_keys: Sequence[NoteVerifier],
        cosigner: Cosigner,
        state_path: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.log_keys = list(log_keys)
        self.origin = self.log_keys[0].name
        self.cosigner = cosigner
        self.state_path = state_path
        self._clock = clock

    def run_once(self) -> Round:
        """Fetch, verify, cosign and submit; raises :class:`ForkError` without cosigning on a fork."""
        previous = load_state(self.state_path)
        if previous is not None and previous.origin != self.origin:
            raise ValidationError(f"state file {self.state_path} is for log {previous.origin}, not {self.origin}")
        note = self.client.checkpoint()
        text, checkpoint = self._verified(note)
        if previous is not None:
            self._check_extends(previous, checkpoint)
            if previous.size == checkpoint.size and self._carries_own_cosignature(note):
                return Round(self.origin, checkpoint.size, checkpoint.root, previous.size, False, False)
        if previous is not None and previous.size == checkpoint.size:
            line = previous.cosignature  # cosigned before, not published yet: send the same line again
        else:
            line = self.cosigner.cosign(text, int(self._clock()))
            save_state(
                self.state_path,
                WitnessState(self.origin, checkpoint.size, checkpoint.root, note, line.rstrip("\n")),
            )
        answer = self.client.submit_cosignature(checkpoint.size, line)
        previous_size = None if previous is None else previous.size
        stored_now = answer.get("created") is True
        return Round(self.origin, checkpoint.size, checkpoint.root, previous_size, True, stored_now)

    def _verified(self, note: str) -> tuple[str, Checkpoint]:
        """The checkpoint text and checkpoint of a note signed by the log key (C2SP signed-note)."""
        try:
            opened = open_note(note, self.log_keys)
        except VerificationError as exc:
            raise VerificationError(f"the latest checkpoint is not signed by the log key: {exc}") from None
        checkpoint = parse_checkpoint(opened.text)
        # C2SP tlog-checkpoint: the origin is the log's name, and the log's key is named after it
        if checkpoint.origin != self.origin:
            raise VerificationError(f"the latest checkpoint is of log {checkpoint.origin}, not {self.origin}")
        return opened.text, checkpoint

    def _check_extends(self, previous: WitnessState, new: Checkpoint) -> None:
        old = (previous.size, previous.root)
        current = (new.size, new.root)
        if new.size < previous.size:
            raise ForkError(self.origin, old, current, "the tree is smaller than one already cosigned")
        if new.size == previous.size:
            if new.root != previous.root:
                raise ForkError(self.origin, old, current, "same size, another root")
            return
        if previous.size == 0:
            return  # every tree extends the empty tree; RFC 9162 2.1.4 defines no proof from it
        proof = self.client.consistency_proof(previous.size, new.size)
        try:
            path = _proof_hashes(proof, previous.size, new.size)
            merkle.verify_consistency(previous.size, new.size, previous.root, new.root, path)
        except VerificationError as exc:
            raise ForkError(self.origin, old, current, f"consistency proof: {exc}") from None

    def _carries_own_cosignature(self, note: str) -> bool:
        """Whether the published note already holds a valid cosignature by this witness."""
        own = self.cosigner.verifier()
        try:
            opened = open_note(note, [*self.log_keys, own])
        except VerificationError:
            return False  # not a valid one: cosign (again)
        return (own.name, own.key_id) in opened.verified


def _proof_hashes(proof: dict[str, Any], old_size: int, new_size: int) -> list[bytes]:
    if proof.get("from_size") != old_size or proof.get("to_size") != new_size:
        raise VerificationError("the proof is for other tree sizes")
    hashes = proof.get("hashes")
    if not isinstance(hashes, list):
        raise VerificationError("the proof has no list of hashes")
    path = []
    for value in hashes:
        if not isinstance(value, str) or len(value) != 2 * merkle.HASH_SIZE:
            raise VerificationError("a proof hash is not 64 hex digits")
        try:
            path.append(bytes.fromhex(value))
        except ValueError:
            raise VerificationError("a proof hash is not hex") from None
    return path


# --- the command -------------------------------------------------------------------------------------


def main(
    *,
    url: str,
    token: str,
    log_keys: Sequence[str],
    key_file: Path,
    state_file: Path,
    once: bool = False,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the witness (one round with ``once``, else every ``interval`` seconds until SIGTERM or Ctrl-C);
    returns the exit code.  Every problem is one line on ``err``."""
    out = out or sys.stdout
    err = err or sys.stderr
    logging.getLogger("ledger.client").setLevel(logging.ERROR)  # retries stay quiet: one line per problem
    try:
        verifiers = _log_verifiers(log_keys)
        cosigner = load_cosigner(key_file)
        if interval <= 0:
            raise ValidationError("--interval must be positive")
        _check_url(url)
    except LedgerError as exc:
        return _report(exc, err)
    with LedgerClient(url, token, log=verifiers[0].name) as client:
        witness = Witness(client, verifiers, cosigner, state_file)
        if once:
            return _round(witness, out, err, quiet_when_unchanged=False)
        return _forever(witness, interval, out, err)


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("--url must be an http:// or https:// URL")


def _round(witness: Witness, out: TextIO, err: TextIO, *, quiet_when_unchanged: bool) -> int:
    try:
        outcome = witness.run_once()
    except LedgerError as exc:
        return _report(exc, err)
    except httpx.HTTPError as exc:  # what the client does not retry (a refused protocol, a broken stream)
        return _report(ApiUnreachableError(f"the API could not be reached ({type(exc).__name__})"), err)
    if outcome.posted or not quiet_when_unchanged:
        out.write(outcome.text() + "\n")
        out.flush()
    return EXIT_OK


def _forever(witness: Witness, interval: float, out: TextIO, err: TextIO) -> int:
    """Rounds until stopped; a fork or a checkpoint that does not verify stops the witness, an outage does not."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            code = _round(witness, out, err, quiet_when_unchanged=True)
            if code not in (EXIT_OK, EXIT_UNAVAILABLE):
                return code
            stop.wait(interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _report(exc: LedgerError, err: TextIO) -> int:
    """One line on ``err`` and the exit code for ``exc``."""
    message = " ".join(str(exc).split())
    if isinstance(exc, ForkError):
        err.write(f"FORK: {message}\n")
        code = EXIT_FORK
    elif isinstance(exc, ApiError | InfrastructureError):
        err.write(f"error: {message}\n")
        code = EXIT_UNAVAILABLE
    elif isinstance(exc, VerificationError):
        err.write(f"error: {message}\n")
        code = EXIT_FORK
    else:
        err.write(f"error: {message}\n")
        code = EXIT_BAD_INPUT
    err.flush()
    return code


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
