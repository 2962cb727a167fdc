"""C2SP signed notes, note keys, tlog checkpoints and tlog cosignatures.

Formats (all fixed by the specifications, so other tools can check what the ledger publishes):

* signed note (c2sp.org/signed-note, golang.org/x/mod/sumdb/note): ``text`` ending in a newline, a
  blank line, then lines ``— <key name> <base64(4-byte key id || signature)>``;
* keys: verifier key ``<name>+<8 hex key id>+<base64(type || public key)>``, private key
  ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(type || 32-byte seed)>``, key id =
  ``SHA-256(name || "\\n" || type || public key)[:4]``; type 0x01 is Ed25519 note signatures, 0x04
  Ed25519 cosignatures (c2sp.org/tlog-cosignature);
* checkpoint (c2sp.org/tlog-checkpoint): ``<origin>\\n<size>\\n<base64 root>\\n`` plus extension lines;
* cosignature/v1: a note signature whose bytes are ``key id || u64 timestamp || Ed25519 signature``
  over ``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint text``.

Parsers raise :class:`VerificationError` (private keys: :class:`ConfigurationError`) and never leak
``ValueError`` or ``binascii.Error``.  Bad arguments to the formatting functions raise
:class:`ValidationError`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ledger.errors import ConfigurationError, ValidationError, VerificationError

__all__ = [
    "COSIGNATURE_HEADER",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "Checkpoint",
    "CosignatureVerifier",
    "Cosigner",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "OpenedNote",
    "ParsedNote",
    "Signer",
    "Verifier",
    "add_signature_lines",
    "add_signatures",
    "cosignature_message",
    "cosignature_timestamp",
    "format_checkpoint",
    "is_valid_key_name",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_cosigner_key",
    "parse_note",
    "parse_verifier_key",
    "sign_note",
    "verify_cosignature",
]

SIG_TYPE_ED25519: Final = 0x01
"""C2SP signed-note "Signature types": Ed25519 note signatures."""
SIG_TYPE_COSIGNATURE_V1: Final = 0x04
"""C2SP signed-note "Signature types": timestamped Ed25519 witness cosignatures."""

MAX_SIGNATURES: Final = 100
"""Signature lines accepted per note (C2SP signed-note: verifiers SHOULD limit, MUST accept 16)."""
MAX_TIMESTAMP: Final = 2**63 - 1
"""C2SP tlog-cosignature: the timestamp MUST NOT exceed 2^63 - 1."""
MAX_TREE_SIZE: Final = 2**64 - 1
"""Tree sizes are uint64 in every tlog format."""

COSIGNATURE_HEADER: Final = "cosignature/v1\n"
SIGNATURE_PREFIX: Final = "— "
"""Em dash U+2014 and a space start every signature line."""

_PRIVATE_KEY_PREFIX: Final = "PRIVATE+KEY+"
_KEY_ID_SIZE: Final = 4
_ED25519_KEY_SIZE: Final = 32
_ED25519_SIG_SIZE: Final = 64
_TIMESTAMP_SIZE: Final = 8
_HASH_SIZE: Final = 32
_HEX_ID_RE: Final = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL_RE: Final = re.compile(r"0|[1-9][0-9]*")
# C2SP signed-note "Format": no ASCII control character other than newline; and valid UTF-8,
# which for a Python str means no lone surrogate.
_BAD_NOTE_CHAR_RE: Final = re.compile("[\x00-\x09\x0b-\x1f\ud800-\udfff]")
_BAD_NAME_CATEGORIES: Final = frozenset({"Zs", "Zl", "Zp", "Cc", "Cs"})


# --- key names and ids ------------------------------------------------------------------------------


def is_valid_key_name(name: object) -> bool:
    """C2SP signed-note "Format": key names are non-empty, without Unicode spaces or '+'.

    Control characters and lone surrogates are refused too: a note may contain neither.
    """
    if not isinstance(name, str) or not name or "+" in name:
        return False
    return not any(char.isspace() or unicodedata.category(char) in _BAD_NAME_CATEGORIES for char in name)


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """C2SP signed-note "Signatures": SHA-256(key name || 0x0A || signature type || public key)[:4]."""
    if not 0 <= sig_type <= 0xFF:
        raise ValidationError(f"signature type {sig_type} is not a byte")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()
    return digest[:_KEY_ID_SIZE]


def _b64decode(text: str) -> bytes | None:
    """Strict RFC 4648 section 4 base64: standard alphabet, padded, canonical; ``None`` if not."""
    if not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- signer and verifier interfaces -----------------------------------------------------------------


class Signer(Protocol):
    """Anything that can add a signature line to a note."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def sign(self, msg: bytes) -> bytes:
        """Signature bytes (without the key id) over the note text ``msg``."""
        ...


class Verifier(Protocol):
    """Anything that can check a signature line of a note."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` (without the key id) is a valid signature over the note text ``msg``."""
        ...


# --- Ed25519 keys -----------------------------------------------------------------------------------


class _Ed25519Key:
    """An Ed25519 private key with a name, in the sumdb/note encodings."""

    SIG_TYPE: ClassVar[int]

    __slots__ = ("_key_id", "_name", "_private", "_public")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise ValidationError("invalid key name (C2SP signed-note: non-empty, no spaces or '+')")
        self._name = name
        self._private = private_key
        self._public = private_key.public_key().public_bytes_raw()
        self._key_id = key_id(name, self.SIG_TYPE, self._public)

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Self:
        """The key with the given 32-byte RFC 8032 private key (seed)."""
        if len(seed) != _ED25519_KEY_SIZE:
            raise ValidationError(f"an Ed25519 seed is {_ED25519_KEY_SIZE} bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_private_key(cls, encoded: str) -> Self:
        """Parse ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(type || seed)>`` (sumdb/note NewSigner).

        Raises :class:`ConfigurationError` when the text is malformed, has another signature type or
        its key id does not match the key.
        """
        if not isinstance(encoded, str) or not encoded.startswith(_PRIVATE_KEY_PREFIX):
            raise ConfigurationError("malformed private key: expected PRIVATE+KEY+<name>+<id>+<key>")
        parts = encoded[len(_PRIVATE_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3 or not is_valid_key_name(parts[0]) or not _HEX_ID_RE.fullmatch(parts[1]):
            raise ConfigurationError("malformed private key: bad name or key id")
        name, hex_id, b64 = parts
        raw = _b64decode(b64)
        if raw is None or len(raw) != 1 + _ED25519_KEY_SIZE:
            raise ConfigurationError("malformed private key: key material is not base64 of 33 bytes")
        if raw[0] != cls.SIG_TYPE:
            raise ConfigurationError(f"private key has signature type {raw[0]:#04x}, expected {cls.SIG_TYPE:#04x}")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id != bytes.fromhex(hex_id):
            raise ConfigurationError("private key id does not match its key")
        return signer

    @property
    def name(self) -> str:
        """The key name (for a log: its origin)."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public

    def private_key_string(self) -> str:
        """``PRIVATE+KEY+<name>+<8 hex id>+<base64(type || seed)>``: a secret, keep it so."""
        seed = self._private.private_bytes_raw()
        material = _b64encode(bytes([self.SIG_TYPE]) + seed)
        return f"{_PRIVATE_KEY_PREFIX}{self._name}+{self._key_id.hex()}+{material}"

    def verifier_key(self) -> str:
        """``<name>+<8 hex id>+<base64(type || public key)>``: safe to publish."""
        return _format_verifier_key(self._name, self._key_id, self.SIG_TYPE, self._public)

    def _sign_raw(self, msg: bytes) -> bytes:
        return self._private.sign(msg)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, key_id={self._key_id.hex()})"


class NoteSigner(_Ed25519Key):
    """An Ed25519 note signing key (signature type 0x01)."""

    SIG_TYPE = SIG_TYPE_ED25519
    __slots__ = ()

    def sign(self, msg: bytes) -> bytes:
        """C2SP signed-note "Ed25519 signatures": RFC 8032 signature over the note text."""
        return self._sign_raw(msg)

    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return NoteVerifier(self._name, self._public)


class Cosigner(_Ed25519Key):
    """A witness key producing C2SP tlog-cosignature/v1 Ed25519 cosignatures (signature type 0x04)."""

    SIG_TYPE = SIG_TYPE_COSIGNATURE_V1
    __slots__ = ()

    def cosignature(self, checkpoint_text: str, timestamp: int) -> bytes:
        """The ``timestamped_signature``: u64 big-endian timestamp || Ed25519 signature (72 bytes)."""
        try:
            parse_checkpoint(checkpoint_text)  # a cosigner only ever signs a well-formed checkpoint
        except VerificationError as exc:
            raise ValidationError(str(exc)) from None
        return self._timestamped_signature(checkpoint_text.encode("utf-8"), timestamp)

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """The note signature line (ending in a newline) cosigning ``checkpoint_text`` at ``timestamp``."""
        return _signature_line(self._name, self._key_id, self.cosignature(checkpoint_text, timestamp))

    def note_signer(self, timestamp: int) -> Signer:
        """A :class:`Signer` adding this cosignature at ``timestamp`` via :func:`add_signatures`."""
        _check_timestamp(timestamp, ValidationError)
        return _TimestampedSigner(self, timestamp)

    def verifier(self) -> CosignatureVerifier:
        """The matching verifier."""
        return CosignatureVerifier(self._name, self._public)

    def _timestamped_signature(self, msg: bytes, timestamp: int) -> bytes:
        _check_timestamp(timestamp, ValidationError)
        signature = self._sign_raw(cosignature_message(msg, timestamp))
        return timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature


@dataclass(frozen=True)
class _TimestampedSigner:
    cosigner: Cosigner
    timestamp: int

    @property
    def name(self) -> str:
        return self.cosigner.name

    @property
    def key_id(self) -> bytes:
        return self.cosigner.key_id

    def sign(self, msg: bytes) -> bytes:
        return self.cosigner._timestamped_signature(msg, self.timestamp)


def cosignature_message(checkpoint_text: bytes | str, timestamp: int) -> bytes:
    """C2SP tlog-cosignature "Ed25519 signed message": header line, time line, checkpoint body."""
    body = checkpoint_text.encode("utf-8") if isinstance(checkpoint_text, str) else checkpoint_text
    return f"{COSIGNATURE_HEADER}time {timestamp}\n".encode("ascii") + body


def _check_timestamp(timestamp: int, error: type[ValidationError] | type[VerificationError]) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise error("cosignature timestamp must be an integer in [0, 2^63 - 1] (C2SP tlog-cosignature)")


# --- verifiers --------------------------------------------------------------------------------------


class _Ed25519Verifier:
    """A named Ed25519 public key."""

    SIG_TYPE: ClassVar[int]

    __slots__ = ("_fast", "_key_id", "_name", "_public")

    def __init__(self, name: str, public_key: bytes) -> None:
        if not is_valid_key_name(name):
            raise ValidationError("invalid key name (C2SP signed-note: non-empty, no spaces or '+')")
        if not isinstance(public_key, bytes) or len(public_key) != _ED25519_KEY_SIZE:
            raise ValidationError(f"an Ed25519 public key is {_ED25519_KEY_SIZE} bytes")
        try:
            Ed25519PublicKey.from_public_bytes(public_key)  # refuses what is not a point encoding
        except ValueError as exc:
            raise ValidationError("not an Ed25519 public key") from exc
        self._fast = VerifyKey(public_key)
        self._name = name
        self._public = public_key
        self._key_id = key_id(name, self.SIG_TYPE, public_key)

    @property
    def name(self) -> str:
        """The key name."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public

    def verifier_key(self) -> str:
        """``<name>+<8 hex id>+<base64(type || public key)>``."""
        return _format_verifier_key(self._name, self._key_id, self.SIG_TYPE, self._public)

    def _verify_raw(self, msg: bytes, signature: bytes) -> bool:
        """RFC 8032 verification by libsodium (``crypto_sign_open``): it accepts only what OpenSSL's check in
        ``cryptography`` accepts, and also refuses small-order keys and points, which our keys never are; it is about
        twice as fast here.  (Audits and restores check entry signatures in batches on worker processes instead: see
        ``ledger.packs.verifier.verify_items``.)"""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            self._fast.verify(msg, signature)
        except BadSignatureError:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Ed25519Verifier):
            return NotImplemented
        return (self.SIG_TYPE, self._name, self._public) == (other.SIG_TYPE, other._name, other._public)

    def __hash__(self) -> int:
        return hash((self.SIG_TYPE, self._name, self._public))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.verifier_key()!r})"


class NoteVerifier(_Ed25519Verifier):
    """Verifies Ed25519 note signatures (signature type 0x01)."""

    SIG_TYPE = SIG_TYPE_ED25519
    __slots__ = ()

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """C2SP signed-note "Ed25519 signatures": RFC 8032 verification over the note text."""
        return self._verify_raw(msg, sig)


class CosignatureVerifier(_Ed25519Verifier):
    """Verifies C2SP tlog-cosignature/v1 Ed25519 cosignatures (signature type 0x04)."""

    SIG_TYPE = SIG_TYPE_COSIGNATURE_V1
    __slots__ = ()

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Check a ``timestamped_signature`` (u64 timestamp || signature) over the checkpoint ``msg``."""
        if len(sig) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            return False
        timestamp = int.from_bytes(sig[:_TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:  # C2SP tlog-cosignature "Format"
            return False
        return self._verify_raw(cosignature_message(msg, timestamp), sig[_TIMESTAMP_SIZE:])


def _format_verifier_key(name: str, kid: bytes, sig_type: int, public_key: bytes) -> str:
    return f"{name}+{kid.hex()}+{_b64encode(bytes([sig_type]) + public_key)}"


def _parse_verifier_key(text: str, sig_type: int) -> tuple[str, bytes]:
    """Split and check ``<name>+<8 hex id>+<base64(type || key)>``; return (name, public key)."""
    if not isinstance(text, str):
        raise VerificationError("malformed verifier key: not text")
    parts = text.split("+", 2)
    if len(parts) != 3 or not is_valid_key_name(parts[0]) or not _HEX_ID_RE.fullmatch(parts[1]):
        raise VerificationError("malformed verifier key: expected <name>+<8 hex id>+<base64 key>")
    name, hex_id, b64 = parts
    raw = _b64decode(b64)
    if raw is None or not raw:
        raise VerificationError("malformed verifier key: key material is not base64")
    if raw[0] != sig_type:
        raise VerificationError(f"verifier key has signature type {raw[0]:#04x}, expected {sig_type:#04x}")
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise VerificationError("malformed verifier key: an Ed25519 public key is 32 bytes")
    # C2SP signed-note "Signatures": the id is the hash of name, type and key
    if key_id(name, sig_type, raw[1:]) != bytes.fromhex(hex_id):
        raise VerificationError("verifier key id does not match its name and key")
    return name, raw[1:]


def parse_verifier_key(text: str) -> NoteVerifier:
    """Parse an Ed25519 note verifier key ``<name>+<8 hex id>+<base64(0x01 || public key)>``."""
    name, public_key = _parse_verifier_key(text, SIG_TYPE_ED25519)
    try:
        return NoteVerifier(name, public_key)
    except ValidationError as exc:
        raise VerificationError(f"malformed verifier key: {exc}") from None


def parse_cosigner_key(text: str) -> CosignatureVerifier:
    """Parse a cosigner verifier key ``<name>+<8 hex id>+<base64(0x04 || public key)>``."""
    name, public_key = _parse_verifier_key(text, SIG_TYPE_COSIGNATURE_V1)
    try:
        return CosignatureVerifier(name, public_key)
    except ValidationError as exc:
        raise VerificationError(f"malformed verifier key: {exc}") from None


# --- signed notes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id and the signature bytes after the id."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, ending in a newline."""
        return _signature_line(self.name, self.key_id, self.signature)


@dataclass(frozen=True)
class ParsedNote:
    """A syntactically valid note whose signatures have not been checked."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class OpenedNote:
    """A note with at least the required number of verified signatures.

    ``verified`` and ``unverified`` list ``(key name, key id)`` in note order; signatures from keys
    the caller does not know are kept in ``unverified`` (C2SP signed-note: verifiers MUST ignore them).
    """

    text: str
    verified: list[tuple[str, bytes]]
    unverified: list[tuple[str, bytes]]
    verified_signatures: tuple[NoteSignature, ...] = field(default=(), repr=False)


def _signature_line(name: str, kid: bytes, signature: bytes) -> str:
    return f"{SIGNATURE_PREFIX}{name} {_b64encode(kid + signature)}\n"


def _check_note_text(text: str) -> None:
    """Rules for text we sign (C2SP signed-note "Format"), raising :class:`ValidationError`."""
    if not isinstance(text, str) or not text:
        raise ValidationError("note text must be non-empty text")
    if not text.endswith("\n"):
        raise ValidationError("note text must end in a newline")
    if _BAD_NOTE_CHAR_RE.search(text):
        raise ValidationError("note text must be valid UTF-8 without control characters other than newline")
    if text.startswith(SIGNATURE_PREFIX) or f"\n{SIGNATURE_PREFIX}" in text:
        raise ValidationError("no line of a note text may start with an em dash and a space")


def _new_signatures(text: str, signers: Sequence[Signer]) -> list[NoteSignature]:
    message = text.encode("utf-8")
    signatures: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for signer in signers:
        if not is_valid_key_name(signer.name) or len(signer.key_id) != _KEY_ID_SIZE:
            raise ValidationError("signer has an invalid key name or key id")
        if (signer.name, signer.key_id) in seen:
            raise ValidationError(f"key {signer.name}+{signer.key_id.hex()} is listed twice")
        seen.add((signer.name, signer.key_id))
        signatures.append(NoteSignature(signer.name, signer.key_id, signer.sign(message)))
    return signatures


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign ``text`` with every signer: ``text + "\\n" + one signature line per signer``."""
    _check_note_text(text)
    if not signers:
        raise ValidationError("a signed note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise ValidationError(f"a note carries at most {MAX_SIGNATURES} signatures")
    lines = [signature.line() for signature in _new_signatures(text, signers)]
    return text + "\n" + "".join(lines)


def add_signatures(note: str, signers: Sequence[Signer]) -> str:
    """Add signatures by ``signers`` to an already signed note (key rotation, cosigning).

    An existing signature by the same key (same name and key id) is replaced.  Existing signatures
    are kept without being verified: open the note first when that matters.
    """
    parsed = parse_note(note)
    return _rebuild(parsed, _new_signatures(parsed.text, signers))


def add_signature_lines(note: str, lines: Sequence[str]) -> str:
    """Add signature lines produced elsewhere (for example a witness's cosignature) to a note.

    Lines may or may not end in a newline.  An existing signature by the same key is replaced.
    Nothing is verified here: open the result with the right verifiers.
    """
    parsed = parse_note(note)
    added: list[NoteSignature] = []
    for line in lines:
        text = line[:-1] if line.endswith("\n") else line
        if "\n" in text:
            raise VerificationError("malformed note: a signature line contains a newline")
        added.append(_parse_signature_line(text))
    return _rebuild(parsed, added)


def _rebuild(parsed: ParsedNote, added: Sequence[NoteSignature]) -> str:
    replaced = {(signature.name, signature.key_id) for signature in added}
    kept = [signature for signature in parsed.signatures if (signature.name, signature.key_id) not in replaced]
    if len(kept) + len(added) > MAX_SIGNATURES:
        raise ValidationError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return parsed.text + "\n" + "".join(signature.line() for signature in [*kept, *added])


def parse_note(note: str) -> ParsedNote:
    """Split a signed note into text and signature lines, checking syntax only (C2SP signed-note)."""
    if not isinstance(note, str):
        raise VerificationError("malformed note: not text")
    if _BAD_NOTE_CHAR_RE.search(note):
        raise VerificationError("malformed note: control character or invalid UTF-8")
    # C2SP signed-note "Format": the text is separated from the signatures by the last empty line
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise VerificationError("malformed note: signature block missing or not newline-terminated")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return ParsedNote(text, tuple(_parse_signature_line(line) for line in lines))


def _parse_signature_line(line: str) -> NoteSignature:
    """``— <key name> <base64(4-byte key id || signature)>`` (C2SP signed-note "Signatures")."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise VerificationError("malformed note: signature line does not start with an em dash")
    name, space, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not is_valid_key_name(name):
        raise VerificationError("malformed note: bad key name in signature line")
    raw = _b64decode(b64)
    if raw is None:
        raise VerificationError("malformed note: signature is not base64")
    if len(raw) <= _KEY_ID_SIZE:
        raise VerificationError("malformed note: signature too short")
    return NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


def _index_verifiers(verifiers: Sequence[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        previous = known.setdefault(key, verifier)
        if previous is not verifier and previous != verifier:
            raise VerificationError(f"ambiguous verifiers: two keys are named {key[0]}+{key[1].hex()}")
    return known


def open_note(note: str, verifiers: Sequence[Verifier], *, require: int = 1) -> OpenedNote:
    """Parse ``note`` and verify its signatures by known keys (C2SP signed-note "Signatures").

    A signature whose key name and key id both match a known key MUST verify, or the whole note is
    rejected; signatures by unknown keys are recorded as unverified; at least ``require`` distinct
    known keys must have signed.  Raises :class:`VerificationError`.
    """
    if require < 1:
        raise ValidationError("require must be at least 1: a note no known key signed MUST be rejected")
    parsed = parse_note(note)
    known = _index_verifiers(verifiers)
    message = parsed.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for signature in parsed.signatures:
        key = (signature.name, signature.key_id)
        verifier = known.get(key)
        if verifier is None:
            if signature not in unverified:
                unverified.append(signature)
            continue
        if any((done.name, done.key_id) == key for done in verified):
            continue  # a repeated signature by one key counts once
        if not verifier.verify(message, signature.signature):
            raise VerificationError(f"signature by known key {signature.name}+{signature.key_id.hex()} is invalid")
        verified.append(signature)
    if len(verified) < require:
        raise VerificationError(f"note has {len(verified)} valid signatures by known keys, {require} required")
    return OpenedNote(
        text=parsed.text,
        verified=[(signature.name, signature.key_id) for signature in verified],
        unverified=[(signature.name, signature.key_id) for signature in unverified],
        verified_signatures=tuple(verified),
    )


# --- checkpoints ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint note body."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint's note text."""
        return format_checkpoint(self.origin, self.size, self.root, self.extensions)


def _check_checkpoint_line(line: str, what: str) -> None:
    # C2SP tlog-checkpoint "Note text": non-empty lines; C2SP signed-note: no control characters
    if not isinstance(line, str) or not line or "\n" in line or _BAD_NOTE_CHAR_RE.search(line):
        raise ValidationError(f"checkpoint {what} must be one non-empty line of valid text")


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """``<origin>\\n<size>\\n<base64 root>\\n`` followed by extension lines (C2SP tlog-checkpoint)."""
    _check_checkpoint_line(origin, "origin")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise ValidationError("checkpoint size must be an integer in [0, 2^64 - 1]")
    if not isinstance(root, bytes) or len(root) != _HASH_SIZE:
        raise ValidationError(f"checkpoint root must be {_HASH_SIZE} bytes")
    for extension in extensions:
        _check_checkpoint_line(extension, "extension line")
    lines = [origin, str(size), _b64encode(root), *extensions]
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (C2SP tlog-checkpoint "Note text"), raising VerificationError."""
    if not isinstance(text, str):
        raise VerificationError("malformed checkpoint: not text")
    if _BAD_NOTE_CHAR_RE.search(text):
        raise VerificationError("malformed checkpoint: control character or invalid UTF-8")
    if not text.endswith("\n"):
        raise VerificationError("malformed checkpoint: must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError("malformed checkpoint: needs origin, size and root hash lines")
    if not all(lines):
        raise VerificationError("malformed checkpoint: empty line")
    origin, size_text, root_text, *extensions = lines
    # line 2: ASCII decimal, no leading zeroes unless the tree is empty
    if not _DECIMAL_RE.fullmatch(size_text) or len(size_text) > 20 or int(size_text) > MAX_TREE_SIZE:
        raise VerificationError("malformed checkpoint: size is not a canonical decimal uint64")
    root = _b64decode(root_text)
    if root is None or len(root) != _HASH_SIZE:
        raise VerificationError(f"malformed checkpoint: root hash is not base64 of {_HASH_SIZE} bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def open_checkpoint(
    note: str, verifiers: Sequence[Verifier], *, origin: str | None = None, require: int = 1
) -> tuple[Checkpoint, OpenedNote]:
    """Open a signed checkpoint note and parse its text; optionally insist on the log's origin."""
    opened = open_note(note, verifiers, require=require)
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError("checkpoint origin is not the expected log")
    return checkpoint, opened


# --- cosignatures -----------------------------------------------------------------------------------


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The timestamp of a cosignature/v1 signature (C2SP tlog-cosignature ``timestamped_signature``)."""
    if len(signature.signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
        raise VerificationError("malformed cosignature: expected 8-byte timestamp and 64-byte signature")
    timestamp = int.from_bytes(signature.signature[:_TIMESTAMP_SIZE], "big")
    _check_timestamp(timestamp, VerificationError)
    return timestamp


def verify_cosignature(checkpoint_text: str, line: str, verifier: CosignatureVerifier) -> int:
    """Verify one cosignature line over ``checkpoint_text``; return its timestamp.

    Raises :class:`VerificationError` when the line is malformed, belongs to another key (name or key
    id differ) or does not verify.
    """
    text = line[:-1] if line.endswith("\n") else line
    if "\n" in text:
        raise VerificationError("malformed cosignature: more than one line")
    signature = _parse_signature_line(text)
    if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
        raise VerificationError("cosignature is not by the given cosigner key")
    timestamp = cosignature_timestamp(signature)
    if not verifier.verify(checkpoint_text.encode("utf-8"), signature.signature):
        raise VerificationError("cosignature does not verify")
    return timestamp
