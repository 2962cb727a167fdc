"""An independent verifier for the ledger's public outputs, written from the public specifications only.

It imports nothing from ``ledger`` or ``schemas``: only the standard library, ``cryptography`` (Ed25519) and
``rfc8785`` (the reference JCS serializer).  If the ledger and this module agree, the formats really are the
published ones and not merely self-consistent.

Specifications followed:

- C2SP signed-note (https://c2sp.org/signed-note) and the ``sumdb/note`` key encoding: verifier keys
  ``<name>+<hex key id>+<base64(0x01 || Ed25519 public key)>``, key id = first 4 bytes of
  ``SHA-256(name || "\\n" || 0x01 || public key)``; notes are text, a blank line, then signature lines
  ``— <name> <base64(key id || signature)>``.
- C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): ``<origin>\\n<size>\\n<base64 root>\\n[extensions]``.
- RFC 9162 section 2.1: Merkle tree hash, inclusion verification (2.1.3.2), consistency verification (2.1.4.2).
- DESIGN.md section 2: entry body = RFC 8785 canonical JSON, entry hash = SHA-256(0x00 || body), Ed25519
  signature over the body bytes, ``prev`` = previous entry hash (64 zero hex digits for seq 0).

Every check raises :class:`VerificationFailure` (and nothing else) when the evidence does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALG_ED25519 = 0x01
HASH_SIZE = 32
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = "\N{EM DASH} "
BODY_FIELDS = frozenset(
    {
        "v",
        "log",
        "seq",
        "prev",
        "id",
        "stream",
        "stream_seq",
        "type",
        "occurred_at",
        "recorded_at",
        "producer",
        "payload_digest",
        "subjects",
    }
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


class VerificationFailure(Exception):  # noqa: N818 - a failed verification, named for what the caller sees
    """The evidence does not verify (malformed input included)."""


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 (padding required, no characters outside the alphabet)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise VerificationFailure(f"malformed {what}: not valid base64") from exc


def _hex(text: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"(?:[0-9a-f]{2})*", text):
        raise VerificationFailure(f"malformed {what}: not lower-case hex")
    value = bytes.fromhex(text)
    if size is not None and len(value) != size:
        raise VerificationFailure(f"malformed {what}: {len(value)} bytes, expected {size}")
    return value


# --- keys (C2SP signed-note / sumdb note encoding) -------------------------------------------------------


def _check_key_name(name: str) -> None:
    # signed-note: a key name is non-empty and contains no Unicode whitespace and no "+".
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise VerificationFailure(f"malformed key name {name!r}")


def compute_key_id(name: str, public_key: bytes) -> bytes:
    """First 4 bytes of SHA-256(name || "\\n" || 0x01 || public key) (signed-note, Ed25519)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_verifier_key(line: str) -> VerifierKey:
    """Parse ``<name>+<8 hex key id>+<base64(0x01 || public key)>`` and check the key id."""
    line = line.strip("\n")
    parts = line.split("+", 2)  # the name has no "+", the base64 key may
    if len(parts) != 3:
        raise VerificationFailure("malformed verifier key: expected name+keyid+key")
    name, id_hex, key_b64 = parts
    _check_key_name(name)
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise VerificationFailure("malformed verifier key: key id is not 8 lower-case hex digits")
    key_data = _b64decode(key_b64, "verifier key")
    if len(key_data) != 1 + ED25519_PUBLIC_KEY_SIZE or key_data[0] != ALG_ED25519:
        raise VerificationFailure("malformed verifier key: not an Ed25519 key (0x01 || 32 bytes)")
    public_key = key_data[1:]
    key_id = bytes.fromhex(id_hex)
    if compute_key_id(name, public_key) != key_id:
        raise VerificationFailure("verifier key id does not match SHA-256(name || \\n || 0x01 || key)")
    return VerifierKey(name, key_id, public_key)


# --- signed notes (C2SP signed-note) ---------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text (ending in a newline) and its parsed signature lines."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerificationFailure("malformed note: not UTF-8") from exc
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise VerificationFailure("malformed note: control character")
    # The text ends with a newline; a blank line follows; then the signature lines, each ending in "\n".
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise VerificationFailure("malformed note: no blank line between text and signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    if not signature_block:
        raise VerificationFailure("malformed note: no signatures")
    signatures = []
    for line in signature_block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise VerificationFailure("malformed note: signature line does not start with an em dash")
        fields = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise VerificationFailure("malformed note: signature line is not '— <name> <signature>'")
        name, blob_b64 = fields
        _check_key_name(name)
        blob = _b64decode(blob_b64, "note signature")
        if len(blob) < 5:
            raise VerificationFailure("malformed note: signature too short")
        signatures.append(NoteSignature(name, blob[:4], blob[4:]))
    return text, signatures


def open_note(note: str | bytes, keys: Sequence[VerifierKey]) -> tuple[str, list[VerifierKey]]:
    """Verify a signed note; return its text and the keys whose signatures verified (at least one).

    As in signed-note: signatures by unknown keys are ignored, but a signature that claims a known key
    (same name and key id) and does not verify makes the whole note invalid.
    """
    text, signatures = split_note(note)
    known = {(k.name, k.key_id): k for k in keys}
    verified: list[VerifierKey] = []
    for sig in signatures:
        key = known.get((sig.name, sig.key_id))
        if key is None:
            continue
        if not key.verify(text.encode("utf-8"), sig.signature):
            raise VerificationFailure(f"invalid signature by known key {key.name}+{key.key_id_hex}")
        if key not in verified:
            verified.append(key)
    if not verified:
        raise VerificationFailure("no signature by a known key")
    return text, verified


# --- checkpoints (C2SP tlog-checkpoint) ------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse the checkpoint body: origin, decimal size, base64 root hash, optional extension lines."""
    if not text.endswith("\n"):
        raise VerificationFailure("malformed checkpoint: does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationFailure("malformed checkpoint: fewer than three lines")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise VerificationFailure("malformed checkpoint: empty origin")
    if not _DECIMAL.fullmatch(size_text):
        raise VerificationFailure("malformed checkpoint: size is not a decimal number")
    root = _b64decode(root_text, "checkpoint root")
    if len(root) != HASH_SIZE:
        raise VerificationFailure("malformed checkpoint: root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise VerificationFailure("malformed checkpoint: empty extension line")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def open_checkpoint(
    note: str | bytes, keys: Sequence[VerifierKey], origin: str | None = None
) -> tuple[Checkpoint, list[VerifierKey]]:
    """Verify a signed checkpoint note and parse it; the key name must be the origin (DESIGN.md 2)."""
    text, verified = open_note(note, keys)
    checkpoint = parse_checkpoint(text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationFailure(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    if any(key.name != checkpoint.origin for key in verified):
        raise VerificationFailure("checkpoint signed by a key not named after its origin")
    return checkpoint, verified


# --- Merkle tree (RFC 9162 section 2.1) ------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: SHA-256(0x01 || MTH(left) || MTH(right))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH, straight from the definition (k = largest power of two smaller than n)."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:]))


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationFailure(f"malformed {what}: {len(value)} bytes, expected {HASH_SIZE}")


def verify_inclusion(leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2: verify that ``leaf`` (a leaf hash) is at ``leaf_index`` in the tree with ``root``."""
    for value in (leaf, root, *path):
        _check_hash(value, "inclusion proof hash")
    # step 1: leaf_index must be inside the tree
    if leaf_index < 0 or leaf_index >= tree_size:
        raise VerificationFailure(f"leaf index {leaf_index} is not in a tree of size {tree_size}")
    # step 2
    fn, sn = leaf_index, tree_size - 1
    # step 3
    r = leaf
    # step 4
    for p in path:
        # step 4a
        if sn == 0:
            raise VerificationFailure("inclusion proof is too long")
        # step 4b
        if fn & 1 or fn == sn:
            r = node_hash(p, r)  # 4b.i
            if not fn & 1:  # 4b.ii
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # step 4c
        fn >>= 1
        sn >>= 1
    # step 5
    if sn != 0:
        raise VerificationFailure("inclusion proof is too short")
    if r != root:
        raise VerificationFailure("inclusion proof does not lead to the root hash")


def verify_consistency(first: int, second: int, path: Sequence[bytes], first_hash: bytes, second_hash: bytes) -> None:
    """RFC 9162 2.1.4.2: verify that the tree of size ``second`` extends the tree of size ``first``."""
    for value in (first_hash, second_hash, *path):
        _check_hash(value, "consistency proof hash")
    if first < 0 or second < first:
        raise VerificationFailure(f"no consistency proof from size {first} to size {second}")
    if first == second:
        # 2.1.4: the proof between equal sizes is empty; the two roots must be equal.
        if path:
            raise VerificationFailure("consistency proof between equal sizes must be empty")
        if first_hash != second_hash:
            raise VerificationFailure("equal tree sizes with different root hashes")
        return
    if first == 0:
        # The empty tree is a prefix of every tree; the proof is empty (RFC 9162 2.1.4.1 covers 0 < m < n).
        if path:
            raise VerificationFailure("consistency proof from the empty tree must be empty")
        return
    # step 1
    if not path:
        raise VerificationFailure("consistency proof is empty")
    # step 2: if first is an exact power of 2, prepend first_hash
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # step 3
    fn, sn = first - 1, second - 1
    # step 4
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # step 5
    fr = sr = path[0]
    # step 6
    for c in path[1:]:
        # step 6a
        if sn == 0:
            raise VerificationFailure("consistency proof is too long")
        # step 6b
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)  # 6b.i
            sr = node_hash(c, sr)  # 6b.ii
            if not fn & 1:  # 6b.iii
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        # step 6c
        fn >>= 1
        sn >>= 1
    # step 7
    if sn != 0:
        raise VerificationFailure("consistency proof is too short")
    if fr != first_hash:
        raise VerificationFailure("consistency proof does not lead to the first root hash")
    if sr != second_hash:
        raise VerificationFailure("consistency proof does not lead to the second root hash")


def verify_inclusion_json(proof: Mapping[str, Any], checkpoint: Checkpoint) -> None:
    """Check a ``ledger proof inclusion`` JSON object against a verified checkpoint of the same size."""
    try:
        index, size, leaf, hashes = proof["index"], proof["tree_size"], proof["leaf_hash"], proof["hashes"]
    except (KeyError, TypeError) as exc:
        raise VerificationFailure("malformed inclusion proof: missing field") from exc
    if not isinstance(index, int) or not isinstance(size, int) or not isinstance(hashes, list):
        raise VerificationFailure("malformed inclusion proof: wrong field types")
    if size != checkpoint.size:
        raise VerificationFailure(f"proof is for size {size}, checkpoint is of size {checkpoint.size}")
    path = [_hex(h, "inclusion proof hash", HASH_SIZE) for h in hashes]
    verify_inclusion(index, size, _hex(leaf, "leaf hash", HASH_SIZE), path, checkpoint.root)


def verify_consistency_json(proof: Mapping[str, Any], first: Checkpoint, second: Checkpoint) -> None:
    """Check a ``ledger proof consistency`` JSON object against two verified checkpoints."""
    try:
        from_size, to_size, hashes = proof["from_size"], proof["to_size"], proof["hashes"]
    except (KeyError, TypeError) as exc:
        raise VerificationFailure("malformed consistency proof: missing field") from exc
    if not isinstance(from_size, int) or not isinstance(to_size, int) or not isinstance(hashes, list):
        raise VerificationFailure("malformed consistency proof: wrong field types")
    if (from_size, to_size) != (first.size, second.size):
        raise VerificationFailure("consistency proof sizes do not match the checkpoints")
    if first.origin != second.origin:
        raise VerificationFailure("checkpoints of different logs")
    path = [_hex(h, "consistency proof hash", HASH_SIZE) for h in hashes]
    verify_consistency(from_size, to_size, path, first.root, second.root)


# --- entries (DESIGN.md section 2) -----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyValidity:
    """The seqs a key may sign: ``from_seq <= seq`` and ``seq < until_seq`` (None: still active)."""

    from_seq: int
    until_seq: int | None

    def covers(self, seq: int) -> bool:
        return self.from_seq <= seq and (self.until_seq is None or seq < self.until_seq)


@dataclass(frozen=True)
class CheckedEntry:
    seq: int
    hash: bytes
    body: dict[str, Any]


def check_entry(
    line: Mapping[str, Any],
    keys: Mapping[str, VerifierKey],
    prev: bytes,
    *,
    origin: str | None = None,
    validity: Mapping[str, KeyValidity] | None = None,
) -> CheckedEntry:
    """Check one ``ledger events --format jsonl`` object: canonical body, hash, signature and link to ``prev``."""
    try:
        seq, body_text, hash_hex, sig_b64, key_id = (
            line["seq"],
            line["body"],
            line["hash"],
            line["signature"],
            line["key_id"],
        )
    except (KeyError, TypeError) as exc:
        raise VerificationFailure("malformed entry line: missing field") from exc
    if not isinstance(seq, int) or not isinstance(body_text, str) or not isinstance(key_id, str):
        raise VerificationFailure("malformed entry line: wrong field types")
    if not isinstance(sig_b64, str):
        raise VerificationFailure(f"seq {seq}: malformed signature")
    body_bytes = body_text.encode("utf-8")

    # Canonical bytes: RFC 8785 of the parsed body reproduces the body exactly.
    try:
        body = json.loads(body_bytes)
        canonical = rfc8785.dumps(body)
    except (ValueError, TypeError, RecursionError) as exc:  # CanonicalizationError is a ValueError
        raise VerificationFailure(f"seq {seq}: body is not canonicalisable JSON") from exc
    if canonical != body_bytes:
        raise VerificationFailure(f"seq {seq}: body is not RFC 8785 canonical JSON")
    if not isinstance(body, dict) or set(body) != BODY_FIELDS:
        raise VerificationFailure(f"seq {seq}: body does not have exactly the entry fields")
    if body["seq"] != seq or not isinstance(body["seq"], int):
        raise VerificationFailure(f"seq {seq}: body says seq {body['seq']}")
    if origin is not None and body["log"] != origin:
        raise VerificationFailure(f"seq {seq}: body is of log {body['log']!r}, not {origin!r}")
    for field in ("occurred_at", "recorded_at"):
        if not isinstance(body[field], str) or not _RFC3339_UTC.fullmatch(body[field]):
            raise VerificationFailure(f"seq {seq}: {field} is not an RFC 3339 UTC timestamp with Z")
    if not isinstance(body["payload_digest"], str) or not _HEX64.fullmatch(body["payload_digest"]):
        raise VerificationFailure(f"seq {seq}: payload_digest is not 64 hex digits")
    subjects = body["subjects"]
    if not isinstance(subjects, list) or not all(isinstance(s, str) and _HEX64.fullmatch(s) for s in subjects):
        raise VerificationFailure(f"seq {seq}: subjects are not HMAC-SHA256 hex refs")

    # Entry hash = SHA-256(0x00 || body), the RFC 9162 leaf hash.
    digest = leaf_hash(body_bytes)
    if _hex(hash_hex, "entry hash", HASH_SIZE) != digest:
        raise VerificationFailure(f"seq {seq}: hash is not SHA-256(0x00 || body)")

    # Chain: prev is the previous entry's hash, 64 zero hex digits at seq 0.
    if body["prev"] != prev.hex():
        raise VerificationFailure(f"seq {seq}: prev does not link to the previous entry's hash")

    # Signature: Ed25519 over the body bytes by the key named by key_id.
    key = keys.get(key_id)
    if key is None:
        raise VerificationFailure(f"seq {seq}: signed by unknown key {key_id}")
    if origin is not None and key.name != origin:
        raise VerificationFailure(f"seq {seq}: key {key_id} is not named after the log origin")
    if validity is not None:
        period = validity.get(key_id)
        if period is None or not period.covers(seq):
            raise VerificationFailure(f"seq {seq}: key {key_id} was not valid for this seq")
    if not key.verify(body_bytes, _b64decode(sig_b64, "entry signature")):
        raise VerificationFailure(f"seq {seq}: Ed25519 signature does not verify")
    return CheckedEntry(seq, digest, body)


def check_entries(
    lines: Iterable[Mapping[str, Any]],
    keys: Iterable[VerifierKey],
    *,
    origin: str | None = None,
    validity: Mapping[str, KeyValidity] | None = None,
) -> list[CheckedEntry]:
    """Check a whole log from seq 0: every entry, contiguous seqs and every ``prev`` link."""
    by_id = {key.key_id_hex: key for key in keys}
    prev = bytes(HASH_SIZE)
    checked: list[CheckedEntry] = []
    for expected_seq, line in enumerate(lines):
        if not isinstance(line, Mapping) or line.get("seq") != expected_seq:
            raise VerificationFailure(f"entry seq {expected_seq} is missing or out of order")
        entry = check_entry(line, by_id, prev, origin=origin, validity=validity)
        checked.append(entry)
        prev = entry.hash
    return checked


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    """Parse JSON Lines output (one object per non-empty line)."""
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise VerificationFailure(f"line {number}: not JSON") from exc
        if not isinstance(value, dict):
            raise VerificationFailure(f"line {number}: not a JSON object")
        objects.append(value)
    return objects
