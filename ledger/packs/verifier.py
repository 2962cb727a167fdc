#!/usr/bin/env python3
"""Offline verifier for evidence-ledger evidence packs (pack format version 1).

Usage::

    python verify.py PACK.zip --key VKEY [--key VKEY ...] [--json]

``VKEY`` is the log's verifier key as published by ``ledger public-key``:
``<origin>+<8 hex key id>+<base64(0x01 || Ed25519 public key)>``.  Exit status: 0 when every check
passes, 1 when any check fails, 2 on bad usage (unreadable file, not a ZIP, malformed key).

This file is self-contained on purpose: it needs Python 3.11+ and the ``cryptography`` package (for
Ed25519) and nothing else, no database and no network, so an auditor can read it and run it alone.
From Python: ``verify_pack(path, [vkey, ...])`` returns a :class:`Report`.

Specifications followed:

* RFC 9162 section 2.1: Merkle tree hash (2.1.1), inclusion proof verification (2.1.3.2),
  consistency proof verification (2.1.4.2); leaf hash SHA-256(0x00 || data), node hash
  SHA-256(0x01 || left || right).
* C2SP signed-note (https://c2sp.org/signed-note): note text, a blank line, then signature lines
  ``— <key name> <base64(4-byte key id || signature)>``; key id = first 4 bytes of
  SHA-256(name || "\\n" || 0x01 || public key); signatures by unknown keys are ignored, a signature that
  claims a known key and does not verify invalidates the note.
* C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): ``<origin>\\n<size>\\n<base64 root>\\n``
  followed by optional extension lines.
* The evidence pack format, version 1 (FORMAT.md beside the ledger's pack exporter), and the ledger's
  entry format: entry hash = SHA-256(0x00 || body), Ed25519 signature over the body bytes, ``prev`` =
  hash of the previous entry, ``payload_digest`` = hex(SHA-256(salt || payload)).

What the checks establish, in order: the manifest is signed by a key you trust (``manifest.sig``); the
manifest's digests cover every file (``files``), so everything else in the pack is what the log key signed
off on, keys.json included; each entry's hash, body, signature, payload and chain link; the range proof
binds the entries (disclosed and hidden) to the signed checkpoint; inclusion and consistency proofs.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import re
import struct
import sys
import threading
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "Check",
    "Checkpoint",
    "FormatError",
    "Note",
    "NoteSignature",
    "PackError",
    "Report",
    "VerifierKey",
    "leaf_hash",
    "main",
    "node_hash",
    "outside_subtrees",
    "parse_checkpoint",
    "parse_entry_line",
    "parse_note",
    "parse_verifier_key",
    "range_root",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "verify_pack",
]

FORMAT_NAME: Final = "evidence-ledger-pack"
FORMAT_VERSION: Final = 1
MANIFEST_SIG_HEADER: Final = "evidence-ledger-pack/v1"

HASH_SIZE: Final = 32
KEY_ID_SIZE: Final = 4
ED25519_KEY_SIZE: Final = 32
ED25519_SIG_SIZE: Final = 64
SIG_TYPE_ED25519: Final = 0x01  # C2SP signed-note "Signature types"
SIGNATURE_PREFIX: Final = "\N{EM DASH} "  # every signature line starts with U+2014 and a space
MAX_SIGNATURES: Final = 100  # C2SP signed-note: verifiers SHOULD limit the signatures per note
MAX_TREE_SIZE: Final = 2**64 - 1
MAX_MEMBER_BYTES: Final = 2**31  # refuse to inflate a single ZIP member beyond 2 GiB
MAX_FAILURES_SHOWN: Final = 25  # per check; the rest are counted in one extra line

MANIFEST: Final = "manifest.json"
MANIFEST_SIG: Final = "manifest.sig"
ENTRIES: Final = "entries.jsonl"
CHECKPOINT: Final = "checkpoint.txt"
RANGE_PROOF: Final = "proofs/range.json"
INCLUSION_PROOFS: Final = "proofs/inclusion.jsonl"
CONSISTENCY_PROOF: Final = "proofs/consistency.json"
AUDITOR_CHECKPOINT: Final = "proofs/auditor-checkpoint.txt"
KEYS: Final = "keys.json"
REPORT_PDF: Final = "report.pdf"

BODY_FIELDS: Final = (
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
)
_BODY_FIELD_SET: Final = frozenset(BODY_FIELDS)

_KEY_ID_RE: Final = re.compile(r"[0-9a-fA-F]{8}")
_PACK_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
_DECIMAL_RE: Final = re.compile(r"0|[1-9][0-9]*")
# C2SP signed-note: no ASCII control character other than newline (and, for a str, no lone surrogate)
_BAD_NOTE_CHAR_RE: Final = re.compile("[\x00-\x09\x0b-\x1f\ud800-\udfff]")
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ZIP_ERRORS: Final = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, struct.error, RuntimeError)
_ZIP_ERRORS_READ: Final = (*_ZIP_ERRORS, NotImplementedError)


# --- results ----------------------------------------------------------------------------------------


class PackError(Exception):
    """Bad usage: the pack cannot be opened at all, or a trusted key is malformed (exit status 2)."""


class FormatError(Exception):
    """Malformed content inside the pack; always turned into a failed check, never raised to callers."""


@dataclass(frozen=True)
class Check:
    """One result line: a check's name, whether it passed, a specific message and what it concerns."""

    name: str
    ok: bool
    message: str
    seq: int | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "message": self.message, "seq": self.seq, "file": self.file}

    def line(self) -> str:
        """``PASS  name: message`` or ``FAIL  name: message``; control characters from the pack escaped,
        so no message can fake a line of the output."""
        message = _CONTROL_RE.sub(lambda match: f"\\u{ord(match.group()):04x}", self.message)
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {message}"


@dataclass(frozen=True)
class Report:
    """All results for one pack.  ``ok`` (verdict VALID) only when every check passed."""

    path: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def verdict(self) -> str:
        return "VALID" if self.ok else "INVALID"

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "failed": len(self.failed),
            "pack": self.path,
            "checks": [check.to_dict() for check in self.checks],
        }

    def text(self) -> str:
        lines = [check.line() for check in self.checks]
        lines.append("VERDICT: VALID" if self.ok else f"VERDICT: INVALID ({len(self.failed)} failed)")
        return "\n".join(lines) + "\n"


class _Findings:
    """Collects the failures of one named check; a check that found nothing passes with a summary."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[Check] = []
        self.count = 0

    def fail(self, message: str, *, seq: int | None = None, file: str | None = None) -> None:
        self.count += 1
        if len(self.failures) < MAX_FAILURES_SHOWN:
            self.failures.append(Check(self.name, False, message, seq, file))

    def done(self, summary: str, *, file: str | None = None) -> list[Check]:
        if not self.count:
            return [Check(self.name, True, summary, file=file)]
        hidden = self.count - len(self.failures)
        extra = [Check(self.name, False, f"{hidden} more failures of this check not shown")] if hidden else []
        return [*self.failures, *extra]


def _not_checked(name: str, reason: str, *, file: str | None = None) -> list[Check]:
    return [Check(name, False, f"not checked: {reason}", file=file)]


# --- strict decoding helpers ------------------------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not valid UTF-8") from None


def _b64decode(text: str) -> bytes | None:
    """Strict RFC 4648 section 4 base64 (standard alphabet, padded, canonical); ``None`` if not."""
    if not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {_show(key)}")  # two parsers could see two different values
            seen.add(key)
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _reject_float(text: str) -> NoReturn:
    raise ValueError(f"number {text[:20]} is not an integer (packs carry no floats)")


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant, parse_float=_reject_float
)


def load_json(data: bytes | str, what: str) -> object:
    """Parse strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, no floats."""
    text = _utf8(data, what) if isinstance(data, bytes) else data
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON ({exc})") from None


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: equal to RFC 8785 for values of ASCII keys, strings and integers."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise FormatError(f"cannot be canonicalized ({exc})") from None


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not a JSON object")
    return value


def _member(obj: Mapping[str, object], key: str, prefix: str) -> object:
    if key not in obj:
        raise FormatError(f"{prefix}{key} is missing")
    return obj[key]


def _int_member(obj: Mapping[str, object], key: str, prefix: str) -> int:
    value = _member(obj, key, prefix)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{prefix}{key} must be a non-negative integer")
    return value


def _optional_int_member(obj: Mapping[str, object], key: str, prefix: str) -> int | None:
    if obj.get(key) is None:
        return None
    return _int_member(obj, key, prefix)


def _str_member(obj: Mapping[str, object], key: str, prefix: str) -> str:
    value = _member(obj, key, prefix)
    if not isinstance(value, str) or not value:
        raise FormatError(f"{prefix}{key} must be a non-empty string")
    return value


def _hex_member(obj: Mapping[str, object], key: str, prefix: str, size: int | None) -> bytes:
    """Lowercase hex; ``size`` bytes exactly, or any non-zero length when ``size`` is None."""
    value = _member(obj, key, prefix)
    raw = _lower_hex(value) if size is None or (isinstance(value, str) and len(value) == 2 * size) else None
    if raw is None:
        digits = f"{2 * size} " if size is not None else ""
        raise FormatError(f"{prefix}{key} must be {digits}lowercase hex digits")
    return raw


def _lower_hex(value: object) -> bytes | None:
    """The bytes of non-empty lowercase hex text (pairs of [0-9a-f], nothing else), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if raw.hex() == value else None  # refuses upper case and the spaces fromhex skips


def _hash_list(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise FormatError(f"{what} must be a list of hashes")
    hashes: list[bytes] = []
    for item in value:
        raw = _lower_hex(item) if isinstance(item, str) and len(item) == 2 * HASH_SIZE else None
        if raw is None:
            raise FormatError(f"{what} must hold 64-digit lowercase hex hashes")
        hashes.append(raw)
    return hashes


def _show(value: object) -> str:
    """A value from the pack, quoted and cut short, for a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _seq_ranges(seqs: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    ordered = sorted(set(seqs))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


# --- keys (C2SP signed-note, golang.org/x/mod/sumdb/note encoding) ----------------------------------


def is_valid_key_name(name: str) -> bool:
    """C2SP signed-note: a key name is non-empty and holds no Unicode space, no '+' (nor controls)."""
    if not name or "+" in name:
        return False
    return not any(ch.isspace() or unicodedata.category(ch) in {"Zs", "Zl", "Zp", "Cc", "Cs"} for ch in name)


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note: first 4 bytes of SHA-256(name || "\\n" || 0x01 || Ed25519 public key)."""
    return _sha256(name.encode("utf-8") + b"\n" + bytes([SIG_TYPE_ED25519]) + public_key)[:KEY_ID_SIZE]


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @property
    def label(self) -> str:
        """``<name>+<8 hex key id>``, how the key is named in messages."""
        return f"{self.name}+{self.key_id.hex()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """RFC 8032 Ed25519 verification of ``signature`` over ``message``."""
        return len(signature) == ED25519_SIG_SIZE and _ed25519_verify(self.public_key, message, signature)


_PUBLIC_KEYS: dict[bytes, Ed25519PublicKey] = {}  # parsed once per key: parsing costs as much as a check


def _ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    public = _PUBLIC_KEYS.get(public_key)
    try:
        if public is None:
            public = _PUBLIC_KEYS.setdefault(public_key, Ed25519PublicKey.from_public_bytes(public_key))
        public.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse ``<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>`` and check its key id."""
    parts = text.split("+", 2)  # the name holds no '+'; the base64 part may
    if len(parts) != 3 or not is_valid_key_name(parts[0]) or not _KEY_ID_RE.fullmatch(parts[1]):
        raise FormatError("malformed verifier key: expected <name>+<8 hex key id>+<base64 key>")
    name, hex_id, material = parts
    raw = _b64decode(material)
    if raw is None or len(raw) != 1 + ED25519_KEY_SIZE or raw[0] != SIG_TYPE_ED25519:
        raise FormatError("malformed verifier key: key material is not base64(0x01 || 32-byte Ed25519 key)")
    try:
        Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError:
        raise FormatError("malformed verifier key: not an Ed25519 public key") from None
    if key_id(name, raw[1:]) != bytes.fromhex(hex_id):
        raise FormatError("malformed verifier key: key id does not match SHA-256(name || \\n || 0x01 || key)")
    return VerifierKey(name, bytes.fromhex(hex_id), raw[1:])


# --- signed notes (C2SP signed-note) and checkpoints (C2SP tlog-checkpoint) -------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, signature bytes after the id."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def label(self) -> str:
        return f"{self.name}+{self.key_id.hex()}"


@dataclass(frozen=True)
class Note:
    """A syntactically valid signed note; signatures not yet checked."""

    text: str
    signatures: tuple[NoteSignature, ...]


def parse_note(data: bytes | str) -> Note:
    """Split a signed note into its text and signature lines (C2SP signed-note "Format")."""
    note = _utf8(data, "note") if isinstance(data, bytes) else data
    if _BAD_NOTE_CHAR_RE.search(note):
        raise FormatError("malformed note: control character or invalid UTF-8")
    # the text (ending in a newline) is separated from the signatures by the last blank line
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise FormatError("malformed note: signature lines missing or not ending in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(_parse_signature_line(line) for line in lines))


def _parse_signature_line(line: str) -> NoteSignature:
    """``— <key name> <base64(4-byte key id || signature)>``."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise FormatError("malformed note: a signature line does not start with an em dash and a space")
    name, space, material = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not is_valid_key_name(name):
        raise FormatError("malformed note: bad key name in a signature line")
    raw = _b64decode(material)
    if raw is None or len(raw) <= KEY_ID_SIZE:
        raise FormatError("malformed note: a signature is not base64 of key id and signature")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


@dataclass(frozen=True)
class NoteCheck:
    """Which signatures of a note verified, failed, or came from keys we do not know."""

    verified: tuple[VerifierKey, ...]
    invalid: tuple[NoteSignature, ...]
    unknown: tuple[NoteSignature, ...]


def check_note_signatures(note: Note, keys: Sequence[VerifierKey]) -> NoteCheck:
    """Match each signature line to known keys by name and key id and verify it over the note text."""
    message = note.text.encode("utf-8")
    verified: list[VerifierKey] = []
    invalid: list[NoteSignature] = []
    unknown: list[NoteSignature] = []
    for signature in note.signatures:
        candidates = [k for k in keys if (k.name, k.key_id) == (signature.name, signature.key_id)]
        if not candidates:
            unknown.append(signature)
            continue
        good = next((k for k in candidates if k.verify(message, signature.signature)), None)
        if good is None:
            invalid.append(signature)
        elif good not in verified:
            verified.append(good)
    return NoteCheck(tuple(verified), tuple(invalid), tuple(unknown))


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint note text."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def parse_checkpoint(text: str) -> Checkpoint:
    """``<origin>\\n<size>\\n<base64 32-byte root>\\n`` plus optional extension lines."""
    if not text.endswith("\n"):
        raise FormatError("malformed checkpoint: the text does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise FormatError("malformed checkpoint: expected origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    # the size is ASCII decimal without leading zeroes, a uint64
    if not _DECIMAL_RE.fullmatch(size_text) or len(size_text) > 20 or int(size_text) > MAX_TREE_SIZE:
        raise FormatError("malformed checkpoint: size is not a decimal uint64")
    root = _b64decode(root_text)
    if root is None or len(root) != HASH_SIZE:
        raise FormatError("malformed checkpoint: root is not base64 of 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


# --- Merkle tree (RFC 9162 section 2.1) -------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return _sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return _sha256(b"\x01" + left + right)


def _split_point(n: int) -> int:
    """RFC 9162 2.1.1: k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def outside_subtrees(tree_size: int, first: int, last: int) -> list[tuple[int, int]]:
    """The maximal subtrees ``[start, end)`` of the RFC 9162 2.1.1 recursion lying entirely outside the
    leaves ``first..last`` (inclusive), left to right: exactly what ``proofs/range.json`` must list."""
    found: list[tuple[int, int]] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= first or lo > last:  # entirely outside: one node of the proof
            found.append((lo, hi))
        elif not (first <= lo and hi <= last + 1) and hi - lo > 1:  # straddles an edge: split it
            k = _split_point(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)
        # else: entirely inside, computed from the leaves

    walk(0, tree_size)
    return found


def range_root(
    tree_size: int,
    first: int,
    last: int,
    leaves: Mapping[int, bytes],
    nodes: Mapping[tuple[int, int], bytes],
) -> bytes:
    """MTH(D[0:tree_size]) from the leaf hashes of ``first..last`` and the hashes of the subtrees outside.

    RFC 9162 2.1.1: MTH(D[lo:hi]) = SHA-256(0x01 || MTH(D[lo:lo+k]) || MTH(D[lo+k:hi])), k the largest
    power of two smaller than hi - lo; a subtree entirely outside the range is taken from ``nodes``.
    """
    if not 0 <= first <= last < tree_size:
        raise FormatError(f"range {first}..{last} is not inside a tree of size {tree_size}")

    def mth(lo: int, hi: int) -> bytes:
        if hi <= first or lo > last:
            known = nodes.get((lo, hi))
            if known is None:
                raise FormatError(f"node [{lo}, {hi}) is missing")
            return known
        if hi - lo == 1:
            leaf = leaves.get(lo)
            if leaf is None:
                raise FormatError(f"the leaf hash of seq {lo} is not available")
            return leaf
        k = _split_point(hi - lo)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth(0, tree_size)


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2 steps 1-5: the root that ``proof`` leads to for ``leaf`` at ``index``."""
    # step 1: leaf_index must be smaller than tree_size
    if not 0 <= index < size:
        raise FormatError(f"leaf index {index} is not below tree size {size}")
    # steps 2 and 3
    fn, sn = index, size - 1
    result = leaf
    # step 4
    for sibling in proof:
        if sn == 0:  # step 4a
            raise FormatError("inclusion proof is too long")
        if fn & 1 or fn == sn:  # step 4b
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1  # step 4c
        sn >>= 1
    # step 5: sn must be 0 (the caller compares the result with the root)
    if sn != 0:
        raise FormatError("inclusion proof is too short")
    return result


def root_from_consistency_proof(
    first: int, second: int, first_hash: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 2.1.4.2 steps 1-7 for 0 < first < second: the (old root, new root) the proof leads to."""
    if not 0 < first < second:
        raise FormatError(f"no RFC 9162 consistency proof goes from size {first} to size {second}")
    # step 1: an empty proof fails
    if not proof:
        raise FormatError("consistency proof is empty")
    path = list(proof)
    # step 2: if first is an exact power of 2, prepend first_hash
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # step 3
    fn, sn = first - 1, second - 1
    # step 4: while LSB(fn) is set, right-shift fn and sn
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # step 5
    old_root = new_root = path[0]
    # step 6
    for node in path[1:]:
        if sn == 0:  # step 6a
            raise FormatError("consistency proof is too long")
        if fn & 1 or fn == sn:  # step 6b
            old_root = node_hash(node, old_root)
            new_root = node_hash(node, new_root)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_root = node_hash(new_root, node)
        fn >>= 1  # step 6c
        sn >>= 1
    # step 7 (first half): sn must be 0; the caller compares both roots
    if sn != 0:
        raise FormatError("consistency proof is too short")
    return old_root, new_root


# --- pack contents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: bytes
    size: int


@dataclass(frozen=True)
class Manifest:
    """The fields of manifest.json that the checks use."""

    pack_id: str
    origin: str
    first_seq: int
    last_seq: int
    tree_size: int
    root: bytes
    disclosed: int
    hidden: int
    content_digest: bytes
    files: tuple[FileEntry, ...]
    raw_files: tuple[object, ...]  # the `files` list exactly as parsed, for content_digest


def parse_manifest(data: bytes) -> Manifest:
    doc = _object(load_json(data, MANIFEST), MANIFEST)
    if doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{MANIFEST}: format is not {FORMAT_NAME!r}")
    version = doc.get("v")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise FormatError(f"{MANIFEST}: v is {_show(version)}; this verifier reads version {FORMAT_VERSION}")
    pack_id = _str_member(doc, "pack_id", f"{MANIFEST}: ")
    if not _PACK_ID_RE.fullmatch(pack_id):
        raise FormatError(f"{MANIFEST}: pack_id must be 32 lowercase hex digits")
    log = _object(_member(doc, "log", f"{MANIFEST}: "), f"{MANIFEST}: log")
    where = f"{MANIFEST}: log."
    origin = _str_member(log, "origin", where)
    first, last = _int_member(log, "first_seq", where), _int_member(log, "last_seq", where)
    tree_size = _int_member(log, "tree_size", where)
    disclosed, hidden = _int_member(log, "disclosed", where), _int_member(log, "hidden", where)
    if last < first:
        raise FormatError(f"{MANIFEST}: last_seq {last} is below first_seq {first}")
    if tree_size <= last:
        raise FormatError(f"{MANIFEST}: tree_size {tree_size} does not cover last_seq {last}")
    if disclosed + hidden != last - first + 1:
        raise FormatError(f"{MANIFEST}: disclosed + hidden is {disclosed + hidden}, the range has {last - first + 1}")
    raw_files = _member(doc, "files", f"{MANIFEST}: ")
    if not isinstance(raw_files, list):
        raise FormatError(f"{MANIFEST}: files is not a list")
    files: list[FileEntry] = []
    for index, item in enumerate(raw_files):
        prefix = f"{MANIFEST}: files[{index}]."
        entry = _object(item, f"{MANIFEST}: files[{index}]")
        files.append(
            FileEntry(
                _str_member(entry, "path", prefix),
                _hex_member(entry, "sha256", prefix, HASH_SIZE),
                _int_member(entry, "size", prefix),
            )
        )
    return Manifest(
        pack_id=pack_id,
        origin=origin,
        first_seq=first,
        last_seq=last,
        tree_size=tree_size,
        root=_hex_member(log, "root", where, HASH_SIZE),
        disclosed=disclosed,
        hidden=hidden,
        content_digest=_hex_member(doc, "content_digest", f"{MANIFEST}: ", HASH_SIZE),
        files=tuple(files),
        raw_files=tuple(raw_files),
    )


@dataclass(frozen=True)
class EntryLine:
    """One line of entries.jsonl: its seq and kind; the other fields are checked by each check."""

    line: int
    seq: int
    disclosed: bool
    fields: dict[str, object]


def parse_entry_line(text: str, line: int) -> EntryLine:
    where = f"{ENTRIES} line {line}"
    fields = _object(load_json(text, where), where)
    seq = _int_member(fields, "seq", f"{where}: ")
    disclosed = fields.get("disclosed")
    if not isinstance(disclosed, bool):
        raise FormatError(f"{where}: disclosed must be true or false")
    return EntryLine(line, seq, disclosed, fields)


def _jsonl_lines(data: bytes, name: str, findings: _Findings) -> list[tuple[int, str]]:
    """The numbered lines of a JSON Lines file; every line must end in a newline."""
    try:
        text = _utf8(data, name)
    except FormatError as exc:
        findings.fail(str(exc), file=name)
        return []
    if text and not text.endswith("\n"):
        findings.fail(f"{name}: the last line does not end in a newline", file=name)
        text += "\n"
    return list(enumerate(text.split("\n")[:-1], start=1))


@dataclass(frozen=True)
class KeyRecord:
    key: VerifierKey
    valid_from_seq: int
    valid_until_seq: int | None
    trusted: bool

    def covers(self, seq: int) -> bool:
        return self.valid_from_seq <= seq and (self.valid_until_seq is None or seq < self.valid_until_seq)

    def validity(self) -> str:
        if self.valid_until_seq is None:
            return f"from seq {self.valid_from_seq}"
        return f"for seq {self.valid_from_seq} to {self.valid_until_seq - 1}"


class _Pack:
    """The members of the ZIP, read into memory once."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.counts: Counter[str] = Counter()
        self.members: dict[str, bytes] = {}
        self.errors: dict[str, str] = {}
        for info in archive.infolist():
            if info.is_dir():
                continue
            self.counts[info.filename] += 1
            if info.filename in self.members or info.filename in self.errors:
                continue  # duplicates are reported by the files check; the first copy is used
            if info.file_size > MAX_MEMBER_BYTES:
                self.errors[info.filename] = f"larger than {MAX_MEMBER_BYTES} bytes"
                continue
            try:
                self.members[info.filename] = archive.read(info)
            except _ZIP_ERRORS_READ as exc:
                self.errors[info.filename] = str(exc) or type(exc).__name__

    def has(self, name: str) -> bool:
        return name in self.members or name in self.errors

    def get(self, name: str) -> bytes | None:
        return self.members.get(name)

    def absent(self, name: str) -> str:
        """Why ``get(name)`` returned None."""
        if name in self.errors:
            return f"{name} cannot be read from the ZIP ({self.errors[name]})"
        return f"{name} is missing"


SIGNATURE_WORKERS: Final = 2
_PREFETCH_BATCH: Final = 2048


class _SignaturePrefetch:
    """Ed25519 checks started while entries.jsonl is still being read, in worker processes.

    The workers are forked processes where the platform forks and nothing else runs in this process (the verifier
    run on its own), else threads.  Processes, because a thread that verifies needs the GIL back after every
    check and waits for it while the main thread parses: threads check signatures in parallel only while the
    main thread has nothing else to do.  Each check is recorded with the exact key id, signature text and body it
    was made on; the signature check uses a result only for those same inputs and verifies anything else (and
    everything, should a worker fail) itself, so a prefetched result can never stand for a different entry.
    """

    def __init__(self) -> None:
        self._pool: Executor | _ForkedVerifiers | None = None
        self._batch: list[tuple[int, str, str, str, bytes, bytes, bytes]] = []
        # line -> (key id, signature text, body text, signature bytes, the batch's verdicts, index in the batch)
        self._results: dict[int, tuple[str, str, str, bytes, Future[list[bool]], int]] = {}

    def add(self, line: int, hex_id: str, sig_text: str, body_text: str, key: VerifierKey) -> None:
        signature = _b64decode(sig_text)
        if signature is None or len(signature) != ED25519_SIG_SIZE:
            return  # the signature check reports it
        try:
            body = body_text.encode("utf-8")
        except UnicodeEncodeError:
            return
        self._batch.append((line, hex_id, sig_text, body_text, key.public_key, body, signature))
        if len(self._batch) >= _PREFETCH_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if self._pool is None:
            self._pool = _signature_pool()
        try:
            future = self._pool.submit(
                _verify_items, [(public, body, signature) for *_, public, body, signature in batch]
            )
        except RuntimeError:  # a broken pool: the signature check verifies these itself
            return
        for index, (line, hex_id, sig_text, body_text, _public, _body, signature) in enumerate(batch):
            self._results[line] = (hex_id, sig_text, body_text, signature, future, index)

    def signature(self, line: int, sig_text: object) -> bytes | None:
        """The signature bytes decoded from exactly ``sig_text`` at ``line``, if they were."""
        found = self._results.get(line)
        return found[3] if found is not None and found[1] == sig_text else None

    def result(self, line: int, hex_id: str, sig_text: str, body_text: str) -> bool | None:
        """The prefetched verdict for exactly these inputs at ``line``, or None when there is none."""
        found = self._results.get(line)
        if found is None or found[:3] != (hex_id, sig_text, body_text):
            return None
        try:
            return found[4].result()[found[5]]
        except Exception:
            return None

    def close(self) -> None:
        self._batch = []
        self._results = {}
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _signature_pool() -> Executor | _ForkedVerifiers:
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        try:
            return _ForkedVerifiers(SIGNATURE_WORKERS)
        except (OSError, ValueError):
            pass
    return ThreadPoolExecutor(SIGNATURE_WORKERS, thread_name_prefix="verify-pack")


class _Pumped(Future[list[bool]]):
    """A batch's verdicts, read from the workers when first asked for."""

    def __init__(self, owner: _ForkedVerifiers) -> None:
        super().__init__()
        self._owner = owner

    def result(self, timeout: float | None = None) -> list[bool]:
        if not self.done():
            self._owner.pump_until(self)
        return super().result(timeout)


class _ForkedVerifiers:
    """Forked worker processes that verify batches sent through pipes, with no helper thread in this process.

    Only data crosses the pipes (key, message and signature bytes one way, one verdict byte per item the other),
    so nothing of this module needs to be importable by name in the workers.  Results are drained before every
    send, so neither side can block the other for good; a worker that dies leaves its batches to the caller.
    """

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("fork")
        self._tasks = context.SimpleQueue()
        self._verdicts = context.SimpleQueue()
        self._pending: dict[int, _Pumped] = {}
        self._next = 0
        self._processes = [
            context.Process(target=_verify_worker, args=(self._tasks, self._verdicts), daemon=True)
            for _ in range(workers)
        ]
        for process in self._processes:
            process.start()

    def submit(self, _fn: object, items: list[tuple[bytes, bytes, bytes]]) -> _Pumped:
        self._drain()
        future = _Pumped(self)
        self._pending[self._next] = future
        self._tasks.put((self._next, items))
        self._next += 1
        return future

    def _drain(self) -> None:
        while not self._verdicts.empty():
            self._take(self._verdicts.get())

    def _take(self, message: tuple[int, bytes | None]) -> None:
        batch, verdicts = message
        future = self._pending.pop(batch, None)
        if future is None:
            return
        if verdicts is None:
            future.set_exception(RuntimeError("a signature worker failed"))
        else:
            future.set_result([verdict == 1 for verdict in verdicts])

    def pump_until(self, future: _Pumped) -> None:
        reader = self._verdicts._reader  # type: ignore[attr-defined]
        while not future.done():
            if reader.poll(0.5):
                self._take(self._verdicts.get())
            elif not all(process.is_alive() for process in self._processes):
                for pending in self._pending.values():
                    pending.set_exception(RuntimeError("a signature worker ended"))
                self._pending.clear()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        for process in self._processes:
            process.kill()
        for process in self._processes:
            process.join()
        self._tasks.close()
        self._verdicts.close()


def _verify_worker(tasks: Any, verdicts: Any) -> None:
    """A worker's loop: verify each batch received and send back one byte (1 valid, 0 not) per item."""
    while True:
        batch, items = tasks.get()
        try:
            result: bytes | None = bytes(_verify_items(items))
        except Exception:
            result = None
        verdicts.put((batch, result))


def _verify_items(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Whether each (public key, message, signature) verifies (run in a worker)."""
    return [_ed25519_verify(public_key, message, signature) for public_key, message, signature in items]


@dataclass
class _Context:
    """What earlier checks established, for the later ones."""

    pack: _Pack
    trusted: tuple[VerifierKey, ...]
    manifest: Manifest | None = None
    manifest_error: str = ""
    keys: dict[str, KeyRecord] | None = None
    entries: dict[int, EntryLine] = field(default_factory=dict)  # first line of each seq in range
    entries_read: bool = False
    leaves: dict[int, bytes] = field(default_factory=dict)  # seq -> the line's `hash`
    bodies: dict[int, bytes] = field(default_factory=dict)  # seq -> body bytes (disclosed)
    body_prev: dict[int, bytes] = field(default_factory=dict)
    body_payload_digest: dict[int, bytes] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    checkpoint_error: str = ""
    prefetch: _SignaturePrefetch = field(default_factory=_SignaturePrefetch)


# --- 1. manifest and manifest.sig -------------------------------------------------------------------


def check_manifest(ctx: _Context) -> list[Check]:
    findings = _Findings("manifest")
    data = ctx.pack.get(MANIFEST)
    if data is None:
        ctx.manifest_error = f"{MANIFEST} is unusable"
        findings.fail(ctx.pack.absent(MANIFEST), file=MANIFEST)
        return findings.done("")
    try:
        ctx.manifest = manifest = parse_manifest(data)
    except FormatError as exc:
        ctx.manifest_error = f"{MANIFEST} is unusable"
        findings.fail(str(exc), file=MANIFEST)
        return findings.done("")
    return findings.done(
        f"pack {manifest.pack_id}, log {manifest.origin}, seq {manifest.first_seq}..{manifest.last_seq} "
        f"of tree size {manifest.tree_size} ({manifest.disclosed} disclosed, {manifest.hidden} hidden)",
        file=MANIFEST,
    )


def check_manifest_signature(ctx: _Context) -> list[Check]:
    findings = _Findings("manifest.sig")
    data = ctx.pack.get(MANIFEST_SIG)
    manifest_bytes = ctx.pack.get(MANIFEST)
    if data is None:
        findings.fail(ctx.pack.absent(MANIFEST_SIG), file=MANIFEST_SIG)
        return findings.done("")
    try:
        note = parse_note(data)
    except FormatError as exc:
        findings.fail(f"{MANIFEST_SIG}: {exc}", file=MANIFEST_SIG)
        return findings.done("")
    lines = note.text.split("\n")
    # the signed text: "evidence-ledger-pack/v1\n<pack id>\n<hex SHA-256 of manifest.json>\n"
    if len(lines) != 4 or lines[0] != MANIFEST_SIG_HEADER or lines[3] != "":
        findings.fail(f"{MANIFEST_SIG}: the note text is not {MANIFEST_SIG_HEADER}, pack id, digest", file=MANIFEST_SIG)
    else:
        if ctx.manifest is not None and lines[1] != ctx.manifest.pack_id:
            findings.fail(f"{MANIFEST_SIG}: pack id {_show(lines[1])} is not the manifest's", file=MANIFEST_SIG)
        if manifest_bytes is not None and lines[2] != hashlib.sha256(manifest_bytes).hexdigest():
            findings.fail(f"{MANIFEST_SIG}: {MANIFEST} does not match the signed SHA-256", file=MANIFEST_SIG)
    result = check_note_signatures(note, ctx.trusted)
    for bad in result.invalid:
        findings.fail(f"{MANIFEST_SIG}: the signature by trusted key {bad.label} does not verify", file=MANIFEST_SIG)
    if not result.verified and not result.invalid:
        findings.fail(f"{MANIFEST_SIG}: not signed by a trusted key", file=MANIFEST_SIG)
    signers = ", ".join(key.label for key in result.verified)
    return findings.done(f"{MANIFEST} (SHA-256 as signed) signed by {signers}", file=MANIFEST_SIG)


# --- 2. file digests --------------------------------------------------------------------------------


def check_files(ctx: _Context) -> list[Check]:
    if ctx.manifest is None:
        return _not_checked("files", ctx.manifest_error)
    findings = _Findings("files")
    pack, files = ctx.pack, ctx.manifest.files
    paths = [entry.path for entry in files]
    if paths != sorted(paths):
        findings.fail(f"{MANIFEST}: files is not sorted by path", file=MANIFEST)
    for path, count in Counter(paths).items():
        if count > 1:
            findings.fail(f"{MANIFEST}: file {path} is listed {count} times", file=MANIFEST)
    for entry in files:
        if entry.path in (MANIFEST, MANIFEST_SIG):
            findings.fail(f"{MANIFEST}: files lists {entry.path}", file=entry.path)
            continue
        data = pack.get(entry.path)
        if entry.path in pack.errors:
            findings.fail(
                f"file {entry.path}: cannot be read from the ZIP ({pack.errors[entry.path]})", file=entry.path
            )
        elif data is None:
            findings.fail(f"file {entry.path}: listed in the manifest but missing from the ZIP", file=entry.path)
        elif _sha256(data) != entry.sha256:
            findings.fail(f"file {entry.path}: SHA-256 differs from the manifest", file=entry.path)
        elif len(data) != entry.size:
            findings.fail(
                f"file {entry.path}: size {len(data)} differs from the manifest ({entry.size})", file=entry.path
            )
    listed = set(paths) | {MANIFEST, MANIFEST_SIG}
    for name, count in sorted(pack.counts.items()):
        if count > 1:
            findings.fail(f"file {name}: appears {count} times in the ZIP", file=name)
        if name not in listed:
            findings.fail(f"file {name}: in the ZIP but not listed in the manifest", file=name)
    return findings.done(f"{len(files)} files match their SHA-256 and size; no other file in the ZIP")


def check_content_digest(ctx: _Context) -> list[Check]:
    if ctx.manifest is None:
        return _not_checked("content_digest", ctx.manifest_error)
    findings = _Findings("content_digest")
    # SHA-256 of the canonical JSON of `files` without the report.pdf entry (the PDF prints this digest)
    without_pdf = [
        item for item in ctx.manifest.raw_files if not (isinstance(item, dict) and item.get("path") == REPORT_PDF)
    ]
    try:
        digest = _sha256(canonical_json(without_pdf))
    except FormatError as exc:
        findings.fail(f"{MANIFEST}: files {exc}", file=MANIFEST)
        return findings.done("")
    if digest != ctx.manifest.content_digest:
        findings.fail(f"{MANIFEST}: content_digest does not match the files list", file=MANIFEST)
    return findings.done(f"content_digest {digest.hex()} matches the files list (without {REPORT_PDF})")


# --- 3. keys and entries ----------------------------------------------------------------------------


def check_keys(ctx: _Context) -> list[Check]:
    findings = _Findings("keys")
    data = ctx.pack.get(KEYS)
    if data is None:
        findings.fail(ctx.pack.absent(KEYS), file=KEYS)
        return findings.done("")
    try:
        items = load_json(data, KEYS)
        if not isinstance(items, list):
            raise FormatError(f"{KEYS} is not a list")
    except FormatError as exc:
        findings.fail(str(exc), file=KEYS)
        return findings.done("")
    records: dict[str, KeyRecord] = {}
    for index, item in enumerate(items):
        prefix = f"{KEYS}[{index}]."
        try:
            obj = _object(item, f"{KEYS}[{index}]")
            listed_id = _str_member(obj, "key_id", prefix)
            key = parse_verifier_key(_str_member(obj, "verifier_key", prefix))
            valid_from = _int_member(obj, "valid_from_seq", prefix)
            valid_until = _optional_int_member(obj, "valid_until_seq", prefix)
        except FormatError as exc:
            findings.fail(str(exc), file=KEYS)
            continue
        if listed_id != key.key_id.hex():
            findings.fail(f"{KEYS}[{index}]: key_id {_show(listed_id)} is not the id of its verifier_key", file=KEYS)
            continue
        if ctx.manifest is not None and key.name != ctx.manifest.origin:
            findings.fail(f"{KEYS}[{index}]: key {key.label} is not named after the log origin", file=KEYS)
        if valid_until is not None and valid_until < valid_from:
            findings.fail(f"{KEYS}[{index}]: valid_until_seq is below valid_from_seq", file=KEYS)
        if listed_id in records:
            findings.fail(f"{KEYS}: key id {_show(listed_id)} is listed twice", file=KEYS)
            continue
        records[listed_id] = KeyRecord(key, valid_from, valid_until, key in ctx.trusted)
    ctx.keys = records
    trusted = [record for record in records.values() if record.trusted]
    if not trusted:
        findings.fail(f"{KEYS}: contains no trusted key (none of the --key values)", file=KEYS)
    described = "; ".join(
        f"{record.key.label} valid {record.validity()}{' (trusted)' if record.trusted else ''}"
        for record in records.values()
    )
    return findings.done(f"{len(records)} key{'' if len(records) == 1 else 's'}: {described}", file=KEYS)


def check_completeness(ctx: _Context) -> list[Check]:
    if ctx.manifest is None:
        return _not_checked("entries.completeness", ctx.manifest_error)
    findings = _Findings("entries.completeness")
    first, last = ctx.manifest.first_seq, ctx.manifest.last_seq
    data = ctx.pack.get(ENTRIES)
    if data is None:
        findings.fail(ctx.pack.absent(ENTRIES), file=ENTRIES)
        return findings.done("")
    ctx.entries_read = True
    lines: list[EntryLine] = []
    keys = ctx.keys or {}
    for number, text in _jsonl_lines(data, ENTRIES, findings):
        try:
            entry_line = parse_entry_line(text, number)
        except FormatError as exc:
            findings.fail(str(exc), file=ENTRIES)
            continue
        lines.append(entry_line)
        if entry_line.disclosed:
            hex_id, sig_text, body_text = (entry_line.fields.get(name) for name in ("key", "sig", "body"))
            if isinstance(hex_id, str) and isinstance(sig_text, str) and isinstance(body_text, str):
                record = keys.get(hex_id)
                if record is not None:
                    ctx.prefetch.add(number, hex_id, sig_text, body_text, record.key)
    ctx.prefetch.flush()
    in_range = [entry for entry in lines if first <= entry.seq <= last]
    for entry in lines:
        if not first <= entry.seq <= last:
            findings.fail(
                f"{ENTRIES}: seq {entry.seq} is outside the range {first}..{last}", seq=entry.seq, file=ENTRIES
            )
    counts = Counter(entry.seq for entry in in_range)
    for seq in range(first, last + 1):
        if seq not in counts:
            findings.fail(f"{ENTRIES}: seq {seq} is missing", seq=seq, file=ENTRIES)
    for seq, count in counts.items():
        if count > 1:
            findings.fail(f"{ENTRIES}: seq {seq} appears {count} times", seq=seq, file=ENTRIES)
    for entry in in_range:
        ctx.entries.setdefault(entry.seq, entry)
    # in order: the first lines of each seq must come in increasing seq order
    order = [entry for entry in in_range if ctx.entries[entry.seq] is entry]
    for before, after in itertools.pairwise(order):
        if after.seq < before.seq:
            findings.fail(
                f"{ENTRIES}: seq {after.seq} is out of order (line {after.line}, after seq {before.seq})",
                seq=after.seq,
                file=ENTRIES,
            )
            break  # the first one is enough: everything after it is shifted
    disclosed = sum(1 for entry in ctx.entries.values() if entry.disclosed)
    hidden = len(ctx.entries) - disclosed
    if not findings.count and (disclosed, hidden) != (ctx.manifest.disclosed, ctx.manifest.hidden):
        findings.fail(
            f"{ENTRIES}: {disclosed} disclosed and {hidden} hidden entries, the manifest says "
            f"{ctx.manifest.disclosed} and {ctx.manifest.hidden}",
            file=ENTRIES,
        )
    return findings.done(
        f"seq {first}..{last} each present once, in order ({disclosed} disclosed, {hidden} hidden)", file=ENTRIES
    )


def _entries_not_ready(ctx: _Context, name: str) -> list[Check] | None:
    if ctx.manifest is None:
        return _not_checked(name, ctx.manifest_error)
    if not ctx.entries_read:
        return _not_checked(name, f"{ENTRIES} is unusable")
    return None


def check_hashes(ctx: _Context) -> list[Check]:
    """Each line's ``hash``; for disclosed entries, hash == SHA-256(0x00 || body) (RFC 9162 leaf hash)."""
    if (skipped := _entries_not_ready(ctx, "entries.hashes")) is not None:
        return skipped
    findings = _Findings("entries.hashes")
    for seq, entry in sorted(ctx.entries.items()):
        try:
            ctx.leaves[seq] = _hex_member(entry.fields, "hash", f"seq {seq}: ", HASH_SIZE)
        except FormatError as exc:
            findings.fail(str(exc), seq=seq, file=ENTRIES)
            continue
        if not entry.disclosed:
            continue
        body = entry.fields.get("body")
        if not isinstance(body, str):
            findings.fail(f"seq {seq}: body must be a string", seq=seq, file=ENTRIES)
            continue
        try:
            ctx.bodies[seq] = body.encode("utf-8")
        except UnicodeEncodeError:
            findings.fail(f"seq {seq}: body is not valid Unicode text", seq=seq, file=ENTRIES)
            continue
        if leaf_hash(ctx.bodies[seq]) != ctx.leaves[seq]:
            findings.fail(f"seq {seq}: hash does not match body", seq=seq, file=ENTRIES)
    return findings.done(f"{len(ctx.bodies)} disclosed bodies hash to their entry hash", file=ENTRIES)


def check_bodies(ctx: _Context) -> list[Check]:
    """Body JSON: the ledger's fields, ``v`` 1, ``seq`` the line's, ``log`` the manifest origin."""
    if (skipped := _entries_not_ready(ctx, "entries.bodies")) is not None:
        return skipped
    assert ctx.manifest is not None
    findings = _Findings("entries.bodies")
    for seq, body_bytes in sorted(ctx.bodies.items()):
        prefix = f"seq {seq}: body "
        try:
            body = _object(load_json(body_bytes, f"seq {seq}: body"), f"seq {seq}: body")
        except FormatError as exc:
            findings.fail(str(exc), seq=seq, file=ENTRIES)
            continue
        missing = [name for name in BODY_FIELDS if name not in body]
        extra = body.keys() - _BODY_FIELD_SET
        unknown = sorted(extra) if extra else []
        if missing:
            findings.fail(f"seq {seq}: body lacks {', '.join(missing)}", seq=seq, file=ENTRIES)
        if unknown:
            findings.fail(f"seq {seq}: body has unknown fields {', '.join(unknown)}", seq=seq, file=ENTRIES)
        version = body.get("v")
        if "v" in body and (isinstance(version, bool) or version != 1):
            findings.fail(f"seq {seq}: body v is {_show(version)}, not 1", seq=seq, file=ENTRIES)
        if "seq" in body and (isinstance(body["seq"], bool) or body["seq"] != seq):
            findings.fail(f"seq {seq}: body seq is {_show(body['seq'])}, not the line's seq", seq=seq, file=ENTRIES)
        if "log" in body and body["log"] != ctx.manifest.origin:
            shown = _show(body["log"])
            findings.fail(f"seq {seq}: body log is {shown}, not the manifest origin", seq=seq, file=ENTRIES)
        for name, store in (("prev", ctx.body_prev), ("payload_digest", ctx.body_payload_digest)):
            if name in body:
                try:
                    store[seq] = _hex_member(body, name, prefix, HASH_SIZE)
                except FormatError as exc:
                    findings.fail(str(exc), seq=seq, file=ENTRIES)
    return findings.done(f"{len(ctx.bodies)} bodies: seq and log match, fields as specified", file=ENTRIES)


def check_signatures(ctx: _Context) -> list[Check]:
    """Ed25519 over the body bytes, by the key ``key`` of keys.json, valid at the entry's seq."""
    if (skipped := _entries_not_ready(ctx, "entries.signatures")) is not None:
        return skipped
    if ctx.keys is None:
        return _not_checked("entries.signatures", f"{KEYS} is unusable")
    findings = _Findings("entries.signatures")
    signed: dict[str, list[int]] = {}
    for seq, body in sorted(ctx.bodies.items()):
        fields = ctx.entries[seq].fields
        hex_id = fields.get("key")
        if not isinstance(hex_id, str) or not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            findings.fail(f"seq {seq}: key must be 8 lowercase hex digits", seq=seq, file=ENTRIES)
            continue
        sig_text = fields.get("sig")
        signature = ctx.prefetch.signature(ctx.entries[seq].line, sig_text)
        if signature is None:
            signature = _b64decode(sig_text) if isinstance(sig_text, str) else None
        if signature is None or len(signature) != ED25519_SIG_SIZE:
            findings.fail(f"seq {seq}: sig is not base64 of a 64-byte Ed25519 signature", seq=seq, file=ENTRIES)
            continue
        record = ctx.keys.get(hex_id)
        if record is None:
            findings.fail(f"seq {seq}: key {hex_id} is not in {KEYS}", seq=seq, file=ENTRIES)
            continue
        if not record.covers(seq):
            findings.fail(
                f"seq {seq}: key {hex_id} is not valid at this seq (valid {record.validity()})", seq=seq, file=ENTRIES
            )
            continue
        body_text = fields.get("body")
        verified = ctx.prefetch.result(ctx.entries[seq].line, hex_id, sig_text, body_text)  # type: ignore[arg-type]
        if verified is None:
            verified = record.key.verify(body, signature)
        if not verified:
            findings.fail(f"seq {seq}: signature does not verify", seq=seq, file=ENTRIES)
            continue
        signed.setdefault(hex_id, []).append(seq)
    who = "; ".join(
        f"key {ctx.keys[hex_id].key.label}{' (trusted)' if ctx.keys[hex_id].trusted else ''} signed seq "
        f"{_seq_ranges(seqs)}"
        for hex_id, seqs in signed.items()
    )
    count = sum(len(seqs) for seqs in signed.values())
    return findings.done(f"{count} signatures verify" + (f": {who}" if who else ""), file=ENTRIES)


def check_payloads(ctx: _Context) -> list[Check]:
    """payload_digest == hex(SHA-256(salt || payload UTF-8 bytes)); erased payloads are reported."""
    if (skipped := _entries_not_ready(ctx, "entries.payloads")) is not None:
        return skipped
    findings = _Findings("entries.payloads")
    matched: list[int] = []
    erased: list[int] = []
    for seq, digest in sorted(ctx.body_payload_digest.items()):
        prefix = f"seq {seq}: payload "
        try:
            payload = _object(_member(ctx.entries[seq].fields, "payload", f"seq {seq}: "), f"seq {seq}: payload")
            if "erased" in payload:
                _object(payload["erased"], f"seq {seq}: payload erased")
                erased.append(seq)
                continue
            salt = _hex_member(payload, "salt", prefix, None)
            text = _member(payload, "payload", prefix)
            if not isinstance(text, str):
                raise FormatError(f"seq {seq}: payload payload must be a string")
            content = text.encode("utf-8")
        except (FormatError, UnicodeEncodeError) as exc:
            message = str(exc) if isinstance(exc, FormatError) else f"seq {seq}: payload is not valid Unicode text"
            findings.fail(message, seq=seq, file=ENTRIES)
            continue
        if _sha256(salt + content) != digest:
            findings.fail(f"seq {seq}: payload does not match payload_digest", seq=seq, file=ENTRIES)
            continue
        matched.append(seq)
    summary = f"{len(matched)} payloads match payload_digest"
    if erased:
        summary += f"; {len(erased)} erased (seq {_seq_ranges(erased)}), their digests still signed"
    return findings.done(summary, file=ENTRIES)


def check_chain(ctx: _Context) -> list[Check]:
    """A disclosed entry's ``prev`` is the hash of the previous seq (64 zeros for seq 0)."""
    if (skipped := _entries_not_ready(ctx, "entries.chain")) is not None:
        return skipped
    assert ctx.manifest is not None
    findings = _Findings("entries.chain")
    checked = 0
    for seq, prev in sorted(ctx.body_prev.items()):
        if seq == 0:
            expected: bytes | None = bytes(HASH_SIZE)
        elif seq == ctx.manifest.first_seq:
            continue  # the first entry's prev links outside the range: the range proof binds it instead
        else:
            expected = ctx.leaves.get(seq - 1)
        if expected is None:
            findings.fail(
                f"seq {seq}: prev cannot be checked: seq {seq - 1} is missing or its hash is malformed",
                seq=seq,
                file=ENTRIES,
            )
        elif prev != expected:
            what = "64 zeros (seq 0)" if seq == 0 else f"the hash of seq {seq - 1}"
            findings.fail(f"seq {seq}: prev does not match {what}", seq=seq, file=ENTRIES)
        else:
            checked += 1
    return findings.done(f"{checked} chain links match the previous entry's hash", file=ENTRIES)


# --- 4. range proof and 5. checkpoint ---------------------------------------------------------------


def _read_checkpoint(ctx: _Context) -> None:
    """Parse checkpoint.txt's text (its signatures are the checkpoint check's business)."""
    data = ctx.pack.get(CHECKPOINT)
    if data is None:
        ctx.checkpoint_error = ctx.pack.absent(CHECKPOINT)
        return
    try:
        ctx.checkpoint = parse_checkpoint(parse_note(data).text)
    except FormatError as exc:
        ctx.checkpoint_error = f"{CHECKPOINT}: {exc}"


def check_range_proof(ctx: _Context) -> list[Check]:
    if (skipped := _entries_not_ready(ctx, "range_proof")) is not None:
        return skipped
    assert ctx.manifest is not None
    manifest = ctx.manifest
    findings = _Findings("range_proof")
    data = ctx.pack.get(RANGE_PROOF)
    if data is None:
        findings.fail(ctx.pack.absent(RANGE_PROOF), file=RANGE_PROOF)
        return findings.done("")
    try:
        proof = _object(load_json(data, RANGE_PROOF), RANGE_PROOF)
        where = f"{RANGE_PROOF}: "
        for name, expected in (
            ("tree_size", manifest.tree_size),
            ("first", manifest.first_seq),
            ("last", manifest.last_seq),
        ):
            if _int_member(proof, name, where) != expected:
                raise FormatError(f"{where}{name} {proof[name]} is not the manifest's {expected}")
        raw_nodes = _member(proof, "nodes", where)
        if not isinstance(raw_nodes, list):
            raise FormatError(f"{where}nodes is not a list")
        nodes: dict[tuple[int, int], bytes] = {}
        for index, item in enumerate(raw_nodes):
            node = _object(item, f"{where}nodes[{index}]")
            prefix = f"{where}nodes[{index}]."
            span = (_int_member(node, "start", prefix), _int_member(node, "end", prefix))
            if span in nodes:
                raise FormatError(f"{where}node [{span[0]}, {span[1]}) is listed twice")
            nodes[span] = _hex_member(node, "hash", prefix, HASH_SIZE)
    except FormatError as exc:
        findings.fail(str(exc), file=RANGE_PROOF)
        return findings.done("")
    # FORMAT.md: `nodes` holds exactly the maximal subtrees lying entirely outside first..last
    needed = outside_subtrees(manifest.tree_size, manifest.first_seq, manifest.last_seq)
    for start, end in sorted(set(nodes) - set(needed)):
        findings.fail(
            f"{RANGE_PROOF}: node [{start}, {end}) is not a maximal subtree outside the range", file=RANGE_PROOF
        )
    for start, end in needed:
        if (start, end) not in nodes:
            findings.fail(f"{RANGE_PROOF}: node [{start}, {end}) is missing", file=RANGE_PROOF)
    if findings.count:
        return findings.done("")
    try:
        root = range_root(manifest.tree_size, manifest.first_seq, manifest.last_seq, ctx.leaves, nodes)
    except FormatError as exc:
        findings.fail(f"the range proof cannot be computed: {exc}", file=RANGE_PROOF)
        return findings.done("")
    if ctx.checkpoint is None:
        findings.fail(f"not checked against the checkpoint: {ctx.checkpoint_error}", file=CHECKPOINT)
    elif root != ctx.checkpoint.root:
        findings.fail("checkpoint: root does not match the range proof", file=RANGE_PROOF)
    return findings.done(
        f"root of tree size {manifest.tree_size} recomputed from {len(ctx.leaves)} leaf hashes and "
        f"{len(nodes)} nodes matches {CHECKPOINT}",
        file=RANGE_PROOF,
    )


def _known_log_keys(ctx: _Context) -> list[VerifierKey]:
    """The trusted keys, then those of keys.json (which the manifest signature covers)."""
    return list(ctx.trusted) + [record.key for record in (ctx.keys or {}).values() if record.key not in ctx.trusted]


def check_checkpoint(ctx: _Context) -> list[Check]:
    findings = _Findings("checkpoint")
    data = ctx.pack.get(CHECKPOINT)
    if data is None:
        findings.fail(ctx.pack.absent(CHECKPOINT), file=CHECKPOINT)
        return findings.done("")
    try:
        note = parse_note(data)
    except FormatError as exc:
        findings.fail(f"{CHECKPOINT}: {exc}", file=CHECKPOINT)
        return findings.done("")
    # C2SP signed-note: the known keys are the trusted ones and those of keys.json (covered by the
    # signed manifest); a signature claiming a known key must verify, others are listed, not checked
    result = check_note_signatures(note, _known_log_keys(ctx))
    for bad in result.invalid:
        findings.fail(f"{CHECKPOINT}: the signature by {bad.label} does not verify", file=CHECKPOINT)
    if not result.verified:
        findings.fail("checkpoint: not signed by a trusted key or a key of keys.json", file=CHECKPOINT)
    if ctx.checkpoint is None:
        findings.fail(ctx.checkpoint_error, file=CHECKPOINT)
    elif ctx.manifest is None:
        findings.fail(f"not compared with the manifest: {ctx.manifest_error}", file=CHECKPOINT)
    else:
        checkpoint, manifest = ctx.checkpoint, ctx.manifest
        if checkpoint.origin != manifest.origin:
            shown = _show(checkpoint.origin)
            findings.fail(f"{CHECKPOINT}: origin {shown} is not the manifest origin", file=CHECKPOINT)
        if checkpoint.size != manifest.tree_size:
            findings.fail(
                f"{CHECKPOINT}: size {checkpoint.size} is not the manifest tree_size {manifest.tree_size}",
                file=CHECKPOINT,
            )
        if checkpoint.root != manifest.root:
            findings.fail(f"{CHECKPOINT}: root does not match the manifest root", file=CHECKPOINT)
    summary = f"size {ctx.checkpoint.size if ctx.checkpoint else '?'} signed by "
    summary += ", ".join(key.label for key in result.verified)
    if result.unknown:
        summary += "; other signatures (cosignatures, not checked): " + ", ".join(s.label for s in result.unknown)
    return findings.done(summary, file=CHECKPOINT)


# --- 6. inclusion proofs and 7. consistency proof ---------------------------------------------------


def check_inclusion_proofs(ctx: _Context) -> list[Check]:
    """RFC 9162 2.1.3.2 for every line of proofs/inclusion.jsonl, against the checkpoint root."""
    if (skipped := _entries_not_ready(ctx, "inclusion_proofs")) is not None:
        return skipped
    if ctx.checkpoint is None:
        return _not_checked("inclusion_proofs", ctx.checkpoint_error)
    checkpoint = ctx.checkpoint
    findings = _Findings("inclusion_proofs")
    data = ctx.pack.get(INCLUSION_PROOFS)
    if data is None:
        findings.fail(ctx.pack.absent(INCLUSION_PROOFS), file=INCLUSION_PROOFS)
        return findings.done("")
    verified: list[int] = []
    for number, text in _jsonl_lines(data, INCLUSION_PROOFS, findings):
        where = f"{INCLUSION_PROOFS} line {number}"
        try:
            proof = _object(load_json(text, where), where)
            seq = _int_member(proof, "seq", f"{where}: ")
            size = _int_member(proof, "tree_size", f"{where}: ")
            hashes = _hash_list(_member(proof, "hashes", f"{where}: "), f"{where}: hashes")
        except FormatError as exc:
            findings.fail(str(exc), file=INCLUSION_PROOFS)
            continue
        entry, leaf = ctx.entries.get(seq), ctx.leaves.get(seq)
        if size != checkpoint.size:
            findings.fail(
                f"seq {seq}: inclusion proof tree_size {size} is not the checkpoint size {checkpoint.size}",
                seq=seq,
                file=INCLUSION_PROOFS,
            )
        elif entry is None or not entry.disclosed or leaf is None:
            findings.fail(
                f"seq {seq}: inclusion proof for an entry not disclosed in {ENTRIES}", seq=seq, file=INCLUSION_PROOFS
            )
        else:
            try:
                root = root_from_inclusion_proof(leaf, seq, size, hashes)
            except FormatError as exc:
                findings.fail(f"seq {seq}: {exc}", seq=seq, file=INCLUSION_PROOFS)
                continue
            if root != checkpoint.root:  # RFC 9162 2.1.3.2 step 5
                findings.fail(
                    f"seq {seq}: inclusion proof does not lead to the checkpoint root", seq=seq, file=INCLUSION_PROOFS
                )
                continue
            verified.append(seq)
    summary = f"{len(verified)} inclusion proofs verify against the checkpoint root"
    if verified:
        summary += f" (seq {_seq_ranges(verified)})"
    return findings.done(summary, file=INCLUSION_PROOFS)


def check_consistency(ctx: _Context) -> list[Check]:
    """RFC 9162 2.1.4.2 from the auditor's earlier checkpoint to the pack checkpoint, when given."""
    name = "consistency"
    has_proof, has_old = ctx.pack.has(CONSISTENCY_PROOF), ctx.pack.has(AUDITOR_CHECKPOINT)
    if not has_proof and not has_old:
        return [Check(name, True, "no earlier checkpoint was given, nothing to check")]
    findings = _Findings(name)
    proof_data, old_data = ctx.pack.get(CONSISTENCY_PROOF), ctx.pack.get(AUDITOR_CHECKPOINT)
    if proof_data is None or old_data is None:
        missing = CONSISTENCY_PROOF if proof_data is None else AUDITOR_CHECKPOINT
        findings.fail(ctx.pack.absent(missing), file=missing)
        return findings.done("")
    if ctx.manifest is None or ctx.checkpoint is None:
        return _not_checked(name, ctx.manifest_error or ctx.checkpoint_error)
    new = ctx.checkpoint
    try:
        note = parse_note(old_data)
        old = parse_checkpoint(note.text)
    except FormatError as exc:
        findings.fail(f"{AUDITOR_CHECKPOINT}: {exc}", file=AUDITOR_CHECKPOINT)
        return findings.done("")
    # the earlier checkpoint must be of this log and signed by one of its keys: a trusted one (--key) or one
    # of keys.json (vouched for by the signed manifest), since the log key may have rotated since then
    result = check_note_signatures(note, _known_log_keys(ctx))
    for bad in result.invalid:
        findings.fail(f"{AUDITOR_CHECKPOINT}: the signature by {bad.label} does not verify", file=AUDITOR_CHECKPOINT)
    if not result.verified:
        findings.fail(
            f"{AUDITOR_CHECKPOINT}: not signed by a trusted key or a key of keys.json", file=AUDITOR_CHECKPOINT
        )
    if old.origin != ctx.manifest.origin:
        findings.fail(
            f"{AUDITOR_CHECKPOINT}: origin {_show(old.origin)} is not the manifest origin", file=AUDITOR_CHECKPOINT
        )
    try:
        proof = _object(load_json(proof_data, CONSISTENCY_PROOF), CONSISTENCY_PROOF)
        where = f"{CONSISTENCY_PROOF}: "
        from_size, to_size = _int_member(proof, "from_size", where), _int_member(proof, "to_size", where)
        hashes = _hash_list(_member(proof, "hashes", where), f"{where}hashes")
        if from_size != old.size:
            raise FormatError(f"{where}from_size {from_size} is not the auditor checkpoint's size {old.size}")
        if to_size != new.size:
            raise FormatError(f"{where}to_size {to_size} is not the checkpoint size {new.size}")
        if old.size > new.size:
            raise FormatError(f"{AUDITOR_CHECKPOINT}: size {old.size} is larger than the checkpoint's {new.size}")
        if old.size == new.size:  # same tree: empty proof, same root
            if hashes or old.root != new.root:
                raise FormatError("the auditor checkpoint and the checkpoint have the same size but differ")
        else:
            old_root, new_root = root_from_consistency_proof(old.size, new.size, old.root, hashes)
            # RFC 9162 2.1.4.2 step 7: fr == first_hash and sr == second_hash
            if old_root != old.root:
                raise FormatError(f"{where}does not lead to the auditor checkpoint's root")
            if new_root != new.root:
                raise FormatError(f"{where}does not lead to the checkpoint root")
    except FormatError as exc:
        findings.fail(str(exc), file=CONSISTENCY_PROOF)
    signers = ", ".join(key.label for key in result.verified)
    return findings.done(
        f"the auditor's checkpoint of size {old.size} (signed by {signers}) is a prefix of the checkpoint of "
        f"size {new.size}",
        file=CONSISTENCY_PROOF,
    )


# --- 8. report.pdf ----------------------------------------------------------------------------------


def check_pdf(ctx: _Context) -> list[Check]:
    findings = _Findings("pdf")
    data = ctx.pack.get(REPORT_PDF)
    if data is None:
        findings.fail(ctx.pack.absent(REPORT_PDF), file=REPORT_PDF)
    elif not data.startswith(b"%PDF-"):
        findings.fail(f"{REPORT_PDF}: does not start with %PDF-", file=REPORT_PDF)
    return findings.done(f"{REPORT_PDF} is a PDF file (its SHA-256 is checked under files)", file=REPORT_PDF)


# --- putting it together ----------------------------------------------------------------------------

_CHECKS: Final[tuple[Callable[[_Context], list[Check]], ...]] = (
    check_manifest,
    check_manifest_signature,
    check_files,
    check_content_digest,
    check_keys,
    check_completeness,
    check_hashes,
    check_bodies,
    check_signatures,
    check_payloads,
    check_chain,
    check_range_proof,
    check_checkpoint,
    check_inclusion_proofs,
    check_consistency,
    check_pdf,
)


def parse_trusted_keys(keys: Iterable[str]) -> tuple[VerifierKey, ...]:
    """Parse the ``--key`` values; a malformed one is bad usage (:class:`PackError`)."""
    parsed: list[VerifierKey] = []
    for text in [keys] if isinstance(keys, str) else keys:
        try:
            parsed.append(parse_verifier_key(text.strip()))
        except (FormatError, AttributeError) as exc:
            raise PackError(f"--key {_show(text)}: {exc}") from None
    if not parsed:
        raise PackError("at least one trusted verifier key (--key) is needed")
    return tuple(parsed)


def verify_pack(path: str | os.PathLike[str] | bytes, trusted_keys: Iterable[str]) -> Report:
    """Verify the evidence pack at ``path`` (or the ZIP bytes) against the trusted verifier keys.

    Raises :class:`PackError` only for bad usage (unreadable file, not a ZIP, malformed key); every
    problem inside the pack is a failed :class:`Check` in the returned :class:`Report`.
    """
    trusted = parse_trusted_keys(trusted_keys)
    label = "<bytes>" if isinstance(path, bytes) else os.fspath(path)
    source = io.BytesIO(path) if isinstance(path, bytes) else path
    try:
        with zipfile.ZipFile(source) as archive:
            pack = _Pack(archive)
    except FileNotFoundError:
        raise PackError(f"{label}: no such file") from None
    except zipfile.BadZipFile:
        raise PackError(f"{label}: not a ZIP file") from None
    except _ZIP_ERRORS as exc:
        raise PackError(f"{label}: cannot be read ({exc})") from None
    ctx = _Context(pack=pack, trusted=trusted)
    _read_checkpoint(ctx)
    checks: list[Check] = []
    try:
        for check in _CHECKS:
            checks.extend(check(ctx))
    finally:
        ctx.prefetch.close()
    return Report(label, tuple(checks))


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad usage: one line on stderr, exit status 2."""
        sys.stderr.write(f"{self.prog}: {message}\n")
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _ArgumentParser(description="Verify an evidence-ledger evidence pack offline.")
    parser.add_argument("pack", help="the evidence pack (ZIP file)")
    parser.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="VKEY",
        help="a trusted verifier key <origin>+<key id>+<base64 key> (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        report = verify_pack(args.pack, args.key)
    except PackError as exc:
        sys.stderr.write(f"{parser.prog}: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
