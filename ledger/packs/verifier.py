#!/usr/bin/env python3
"""Offline verifier for evidence-ledger evidence packs (pack format version 1).

Usage::

    python verify.py PACK.zip --key VKEY [--key VKEY ...] [--json]

``VKEY`` is the log's verifier key as published by ``ledger public-key``:
``<origin>+<8 hex key id>+<base64(0x01 || Ed25519 public key)>``.  Exit status: 0 when every check
passes, 1 when any check fails, 2 on bad usage (unreadable file, not a ZIP, malformed key).

This file is self-contained on purpose: it needs Python 3.11+ and the ``cryptography`` package (for
Ed25519) and nothing else, no database and no network, so an auditor can read it and run it alone.
Where PyNaCl happens to be installed, entry signatures are first given to libsodium (about twice as fast);
what libsodium refuses is checked again by ``cryptography``, whose answer counts, so the verdicts are the
same with or without it (``--cryptography-only`` skips libsodium).  entries.jsonl is read as a stream, once:
memory grows with the number of entries by about a hash each, not by their size.
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
import contextlib
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
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    "signature_pool",
    "verify_items",
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


def _entry_fields(text: str, where: str) -> tuple[int, bool, dict[str, object]]:
    try:
        fields = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{where} is not valid JSON ({exc})") from None
    if type(fields) is not dict:
        raise FormatError(f"{where} is not a JSON object")
    seq = fields.get("seq")
    if type(seq) is not int or seq < 0:
        seq = _int_member(fields, "seq", f"{where}: ")  # raises the usual message
    disclosed = fields.get("disclosed")
    if not isinstance(disclosed, bool):
        raise FormatError(f"{where}: disclosed must be true or false")
    return seq, disclosed, fields


def parse_entry_line(text: str, line: int) -> EntryLine:
    seq, disclosed, fields = _entry_fields(text, f"{ENTRIES} line {line}")
    return EntryLine(line, seq, disclosed, fields)


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


_CHUNK: Final = 1 << 20  # bytes inflated at a time from a streamed member


class _Pack:
    """The members of the ZIP.  Small ones are read into memory when first asked for (``get``); entries.jsonl and
    the other large ones are streamed (``lines``, ``digest``), so a pack of millions of entries is never held whole.
    Of a name listed twice, the first copy is used (the files check reports the duplicate)."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.counts: Counter[str] = Counter()
        self.infos: dict[str, zipfile.ZipInfo] = {}
        self.members: dict[str, bytes] = {}
        self.errors: dict[str, str] = {}
        self.digests: dict[str, tuple[bytes, int]] = {}  # name -> (SHA-256, size) of what was read
        for info in archive.infolist():
            if info.is_dir():
                continue
            self.counts[info.filename] += 1
            self.infos.setdefault(info.filename, info)

    def has(self, name: str) -> bool:
        return name in self.infos

    def get(self, name: str) -> bytes | None:
        """The whole member, or None (``absent`` says why)."""
        data = self.members.get(name)
        info = self.infos.get(name)
        if data is not None or info is None or name in self.errors:
            return data
        if info.file_size > MAX_MEMBER_BYTES:
            self.errors[name] = f"larger than {MAX_MEMBER_BYTES} bytes"
            return None
        try:
            data = self.archive.read(info)
        except _ZIP_ERRORS_READ as exc:
            self.errors[name] = str(exc) or type(exc).__name__
            return None
        self.members[name] = data
        self.digests[name] = (_sha256(data), len(data))
        return data

    def digest(self, name: str) -> tuple[bytes, int] | None:
        """SHA-256 and size of the member, streamed if it was not read yet; None if it cannot be read."""
        if name not in self.digests and name not in self.errors and name in self.infos:
            for _chunk in self._chunks(name):
                pass
        return self.digests.get(name)

    def _chunks(self, name: str) -> Iterator[bytes]:
        """The member's bytes a piece at a time; at the end its digest is recorded, or on failure its error."""
        hasher, size = hashlib.sha256(), 0
        try:
            with self.archive.open(self.infos[name]) as stream:
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    yield chunk
        except _ZIP_ERRORS_READ as exc:  # a bad CRC shows only at the end: the caller must check `errors`
            self.errors[name] = str(exc) or type(exc).__name__
            return
        self.digests[name] = (hasher.digest(), size)

    def lines(self, name: str, findings: _Findings) -> Iterator[tuple[int, bytes]]:
        """The numbered lines of a JSON Lines member, streamed; every line must end in a newline.  When the
        member cannot be read to its end, ``name in errors`` afterwards and what was yielded must be discarded."""
        number, rest = 0, b""
        for chunk in self._chunks(name):
            parts = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
            rest = parts.pop()
            for part in parts:
                number += 1
                yield number, part
        if rest and name not in self.errors:
            findings.fail(f"{name}: the last line does not end in a newline", file=name)
            yield number + 1, rest

    def absent(self, name: str) -> str:
        """Why ``get(name)`` returned None."""
        if name in self.errors:
            return f"{name} cannot be read from the ZIP ({self.errors[name]})"
        return f"{name} is missing"


# --- signature workers ------------------------------------------------------------------------------

SIGNATURE_WORKERS: Final = 2
_SIGNATURE_BATCH: Final = 2048
_MAX_BATCHES_IN_FLIGHT: Final = 8


def _load_libsodium() -> Callable[[bytes, bytes], bytes] | None:
    """libsodium's Ed25519 check (``crypto_sign_open`` of PyNaCl), when PyNaCl happens to be installed."""
    try:
        from nacl.bindings import crypto_sign_open  # type: ignore[import-not-found, unused-ignore]
    except Exception:  # not installed, or unusable: cryptography does every check
        return None
    return crypto_sign_open  # type: ignore[no-any-return, unused-ignore]


_LIBSODIUM: Final = _load_libsodium()


def verify_items(items: Sequence[tuple[bytes, bytes, bytes]], libsodium: bool = False) -> list[bool]:
    """Whether each (public key, message, signature) verifies, by ``cryptography`` (OpenSSL).

    With ``libsodium`` (and PyNaCl installed) each signature is first given to libsodium, twice as fast; what it
    accepts is taken as valid, anything it refuses is checked again by OpenSSL, whose answer counts.  libsodium
    accepts strictly less than OpenSSL (the same equation, plus refusals of non-canonical and small-order
    points), so the verdicts are exactly OpenSSL's either way: only their speed differs."""
    sodium = _LIBSODIUM if libsodium else None
    if sodium is None:
        return [_ed25519_verify(public_key, message, signature) for public_key, message, signature in items]
    verdicts: list[bool] = []
    for public_key, message, signature in items:
        try:
            sodium(signature + message, public_key)
        except Exception:  # refused or unusable input: OpenSSL decides
            verdicts.append(_ed25519_verify(public_key, message, signature))
        else:
            verdicts.append(True)
    return verdicts


class _SignatureChecks:
    """Ed25519 checks of entries, in batches, by worker processes while the main thread reads on.

    The workers are forked processes where the platform forks and nothing else runs in this process (the verifier
    run on its own), else threads.  Processes, because a thread that verifies needs the GIL back after every
    check and waits for it while the main thread parses: threads check signatures in parallel only while the
    main thread has nothing else to do.  Verdicts come back in the order the entries were added; a batch whose
    worker failed is checked here instead.  At most a few batches are in flight, so memory stays bounded.
    """

    def __init__(self, on_verdict: Callable[[int, str, bool], None], libsodium: bool) -> None:
        self._on_verdict = on_verdict
        self._libsodium = libsodium
        self._pool: Executor | _ForkedVerifiers | None = None
        self._items: list[tuple[bytes, bytes, bytes]] = []
        self._tags: list[tuple[int, str]] = []  # (seq, key id) of each item
        self._pending: deque[tuple[Future[list[bool]] | None, list[tuple[bytes, bytes, bytes]], list[Any]]] = deque()

    def add(self, seq: int, hex_id: str, public_key: bytes, body: bytes, signature: bytes) -> None:
        self._items.append((public_key, body, signature))
        self._tags.append((seq, hex_id))
        if len(self._items) >= _SIGNATURE_BATCH:
            self._submit()

    def _submit(self) -> None:
        items, tags = self._items, self._tags
        self._items, self._tags = [], []
        if self._pool is None:
            self._pool = signature_pool(self._libsodium)
        future: Future[list[bool]] | None
        try:
            future = self._pool.submit(verify_items, items, self._libsodium)
        except RuntimeError:  # a broken pool: checked here when collected
            future = None
        self._pending.append((future, items, tags))
        self._collect(wait=len(self._pending) > _MAX_BATCHES_IN_FLIGHT)

    def _collect(self, wait: bool) -> None:
        if isinstance(self._pool, _ForkedVerifiers):
            self._pool.poll()
        while self._pending:
            future, items, tags = self._pending[0]
            if future is not None and not wait and not future.done():
                return
            self._pending.popleft()
            try:
                verdicts: list[bool] | None = future.result() if future is not None else None
            except Exception:
                verdicts = None
            if verdicts is None or len(verdicts) != len(items):
                verdicts = verify_items(items, self._libsodium)
            for (seq, hex_id), verdict in zip(tags, verdicts, strict=True):
                self._on_verdict(seq, hex_id, verdict)
            wait = wait and len(self._pending) > _MAX_BATCHES_IN_FLIGHT

    def finish(self) -> None:
        """Every verdict delivered."""
        if self._items:
            self._submit()
        while self._pending:
            self._collect(wait=True)

    def close(self) -> None:
        self._items, self._tags = [], []
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def signature_pool(libsodium: bool, thread_name: str = "verify-pack") -> Executor | _ForkedVerifiers:
    """Workers for :func:`verify_items` batches (``pool.submit(verify_items, items, libsodium)``): forked processes
    when this process runs a single thread and the platform forks, else a pool of threads."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        try:
            return _ForkedVerifiers(SIGNATURE_WORKERS, libsodium)
        except (OSError, ValueError):
            pass
    return ThreadPoolExecutor(SIGNATURE_WORKERS, thread_name_prefix=thread_name)


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

    def __init__(self, workers: int, libsodium: bool) -> None:
        context = multiprocessing.get_context("fork")
        self._tasks = context.SimpleQueue()
        self._verdicts = context.SimpleQueue()
        self._pending: dict[int, _Pumped] = {}
        self._next = 0
        self._processes = [
            context.Process(target=_verify_worker, args=(self._tasks, self._verdicts, libsodium), daemon=True)
            for _ in range(workers)
        ]
        for process in self._processes:
            process.start()

    def submit(self, _fn: object, items: list[tuple[bytes, bytes, bytes]], _libsodium: bool) -> _Pumped:
        self.poll()
        future = _Pumped(self)
        self._pending[self._next] = future
        self._tasks.put((self._next, items))
        self._next += 1
        return future

    def poll(self) -> None:
        """Take every verdict already sent back, without waiting."""
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


def _verify_worker(tasks: Any, verdicts: Any, libsodium: bool) -> None:
    """A worker's loop: verify each batch received and send back one byte (1 valid, 0 not) per item."""
    while True:
        batch, items = tasks.get()
        try:
            result: bytes | None = bytes(verify_items(items, libsodium))
        except Exception:
            result = None
        verdicts.put((batch, result))


@dataclass
class _Context:
    """What earlier checks established, for the later ones."""

    pack: _Pack
    trusted: tuple[VerifierKey, ...]
    libsodium: bool = True
    manifest: Manifest | None = None
    manifest_error: str = ""
    keys: dict[str, KeyRecord] | None = None
    entries: dict[int, bool] = field(default_factory=dict)  # seq in range -> disclosed (of its first line)
    entries_read: bool = False
    entry_checks: dict[str, list[Check]] | None = None  # the results of the one pass over entries.jsonl
    leaves: dict[int, bytes] = field(default_factory=dict)  # seq -> the line's `hash`
    checkpoint: Checkpoint | None = None
    checkpoint_error: str = ""


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
        found = pack.digest(entry.path)
        if entry.path in pack.errors:
            findings.fail(
                f"file {entry.path}: cannot be read from the ZIP ({pack.errors[entry.path]})", file=entry.path
            )
        elif found is None:
            findings.fail(f"file {entry.path}: listed in the manifest but missing from the ZIP", file=entry.path)
        elif found[0] != entry.sha256:
            findings.fail(f"file {entry.path}: SHA-256 differs from the manifest", file=entry.path)
        elif found[1] != entry.size:
            findings.fail(
                f"file {entry.path}: size {found[1]} differs from the manifest ({entry.size})", file=entry.path
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


_ENTRY_CHECKS: Final = (
    "entries.completeness",
    "entries.hashes",
    "entries.bodies",
    "entries.signatures",
    "entries.payloads",
    "entries.chain",
)
_LOWER_KEY_ID_RE: Final = re.compile(r"[0-9a-f]{8}")


class _EntryPass:
    """One streamed pass over entries.jsonl that makes every entry check at once.

    Each line is parsed once and forgotten; what outlives it is the seq's kind and leaf hash (for the range and
    inclusion proofs) and, while they are checked, a few batches of signatures.  Only the first line of a seq
    inside the manifest's range is checked further (a repeated or out-of-range seq is a completeness failure).
    """

    def __init__(self, ctx: _Context, manifest: Manifest) -> None:
        self.ctx = ctx
        self.first, self.last, self.origin = manifest.first_seq, manifest.last_seq, manifest.origin
        self.completeness, self.hashes, self.bodies, self.signatures, self.payloads, self.chain = (
            _Findings(name) for name in _ENTRY_CHECKS
        )
        self.kinds = ctx.entries
        self.leaves = ctx.leaves
        self.repeats: Counter[int] = Counter()
        self.previous: int | None = None  # the seq of the previous first line
        self.out_of_order = False
        self.body_count = 0
        self.waiting_links: dict[int, bytes] = {}  # seq -> prev, for entries that came before their predecessor
        self.links = 0
        self.matched_payloads = 0
        self.erased: list[int] = []
        self.signed: dict[str, list[int]] = {}
        self.checker = _SignatureChecks(self.verdict, ctx.libsodium) if ctx.keys is not None else None

    def run(self, manifest: Manifest) -> dict[str, list[Check]]:
        ctx = self.ctx
        try:
            for number, raw in ctx.pack.lines(ENTRIES, self.completeness):
                self.line(number, raw)
            if ENTRIES not in ctx.pack.errors and self.checker is not None:
                self.checker.finish()
        finally:
            if self.checker is not None:
                self.checker.close()
        if ENTRIES in ctx.pack.errors:  # the member broke off: what was read of it proves nothing
            ctx.entries.clear()
            ctx.leaves.clear()
            failed = _Findings(_ENTRY_CHECKS[0])
            failed.fail(ctx.pack.absent(ENTRIES), file=ENTRIES)
            return {
                _ENTRY_CHECKS[0]: failed.done(""),
                **{name: _not_checked(name, f"{ENTRIES} is unusable") for name in _ENTRY_CHECKS[1:]},
            }
        ctx.entries_read = True
        for seq, prev in sorted(self.waiting_links.items()):
            self.link(seq, prev, late=True)
        return {
            "entries.completeness": self.completed(manifest),
            "entries.hashes": self.hashes.done(
                f"{self.body_count} disclosed bodies hash to their entry hash", file=ENTRIES
            ),
            "entries.bodies": self.bodies.done(
                f"{self.body_count} bodies: seq and log match, fields as specified", file=ENTRIES
            ),
            "entries.signatures": self.signed_summary(),
            "entries.payloads": self.payload_summary(),
            "entries.chain": self.chain.done(f"{self.links} chain links match the previous entry's hash", file=ENTRIES),
        }

    # -- per line -------------------------------------------------------------------------------------

    def line(self, number: int, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.completeness.fail(f"{ENTRIES} line {number} is not valid UTF-8", file=ENTRIES)
            return
        try:
            seq, disclosed, fields = _entry_fields(text, f"{ENTRIES} line {number}")
        except FormatError as exc:
            self.completeness.fail(str(exc), file=ENTRIES)
            return
        if not self.first <= seq <= self.last:
            self.completeness.fail(
                f"{ENTRIES}: seq {seq} is outside the range {self.first}..{self.last}", seq=seq, file=ENTRIES
            )
            return
        if seq in self.kinds:
            self.repeats[seq] += 1
            return
        self.kinds[seq] = disclosed
        previous, self.previous = self.previous, seq
        if previous is not None and seq < previous and not self.out_of_order:
            self.out_of_order = True  # the first one is enough: everything after it is shifted
            self.completeness.fail(
                f"{ENTRIES}: seq {seq} is out of order (line {number}, after seq {previous})", seq=seq, file=ENTRIES
            )
        self.entry(seq, disclosed, fields)

    def entry(self, seq: int, disclosed: bool, fields: dict[str, object]) -> None:
        """Each line's ``hash``; for disclosed entries, hash == SHA-256(0x00 || body) (RFC 9162 leaf hash)."""
        hashes = self.hashes
        value = fields.get("hash")
        leaf = _lower_hex(value) if type(value) is str and len(value) == 2 * HASH_SIZE else None
        if leaf is None:
            try:
                leaf = _hex_member(fields, "hash", f"seq {seq}: ", HASH_SIZE)
            except FormatError as exc:
                hashes.fail(str(exc), seq=seq, file=ENTRIES)
                return
        self.leaves[seq] = leaf
        if not disclosed:
            return
        body_text = fields.get("body")
        if not isinstance(body_text, str):
            hashes.fail(f"seq {seq}: body must be a string", seq=seq, file=ENTRIES)
            return
        try:
            body = body_text.encode("utf-8")
        except UnicodeEncodeError:
            hashes.fail(f"seq {seq}: body is not valid Unicode text", seq=seq, file=ENTRIES)
            return
        self.body_count += 1
        if leaf_hash(body) != leaf:
            hashes.fail(f"seq {seq}: hash does not match body", seq=seq, file=ENTRIES)
        self.body(seq, body_text, fields)
        self.signature(seq, body, fields)

    def body(self, seq: int, body_text: str, fields: dict[str, object]) -> None:
        """Body JSON: the ledger's fields, ``v`` 1, ``seq`` the line's, ``log`` the manifest origin."""
        findings = self.bodies
        try:
            body = _object(load_json(body_text, f"seq {seq}: body"), f"seq {seq}: body")
        except FormatError as exc:
            findings.fail(str(exc), seq=seq, file=ENTRIES)
            return
        if body.keys() != _BODY_FIELD_SET:
            missing = [name for name in BODY_FIELDS if name not in body]
            if missing:
                findings.fail(f"seq {seq}: body lacks {', '.join(missing)}", seq=seq, file=ENTRIES)
            if extra := body.keys() - _BODY_FIELD_SET:
                findings.fail(f"seq {seq}: body has unknown fields {', '.join(sorted(extra))}", seq=seq, file=ENTRIES)
        version = body.get("v")
        if "v" in body and (isinstance(version, bool) or version != 1):
            findings.fail(f"seq {seq}: body v is {_show(version)}, not 1", seq=seq, file=ENTRIES)
        if "seq" in body and (isinstance(body["seq"], bool) or body["seq"] != seq):
            findings.fail(f"seq {seq}: body seq is {_show(body['seq'])}, not the line's seq", seq=seq, file=ENTRIES)
        if "log" in body and body["log"] != self.origin:
            findings.fail(
                f"seq {seq}: body log is {_show(body['log'])}, not the manifest origin", seq=seq, file=ENTRIES
            )
        prefix = f"seq {seq}: body "
        if "prev" in body:
            try:
                prev = _hex_member(body, "prev", prefix, HASH_SIZE)
            except FormatError as exc:
                findings.fail(str(exc), seq=seq, file=ENTRIES)
            else:
                self.link(seq, prev)
        if "payload_digest" in body:
            try:
                digest = _hex_member(body, "payload_digest", prefix, HASH_SIZE)
            except FormatError as exc:
                findings.fail(str(exc), seq=seq, file=ENTRIES)
            else:
                self.payload(seq, digest, fields)

    def link(self, seq: int, prev: bytes, *, late: bool = False) -> None:
        """A disclosed entry's ``prev`` is the hash of the previous seq (64 zeros for seq 0)."""
        if seq == 0:
            expected: bytes | None = bytes(HASH_SIZE)
        elif seq == self.first:
            return  # the first entry's prev links outside the range: the range proof binds it instead
        else:
            expected = self.leaves.get(seq - 1)
            if expected is None and not late and seq - 1 not in self.kinds:
                self.waiting_links[seq] = prev  # its predecessor may still come (the pack is out of order)
                return
        if expected is None:
            self.chain.fail(
                f"seq {seq}: prev cannot be checked: seq {seq - 1} is missing or its hash is malformed",
                seq=seq,
                file=ENTRIES,
            )
        elif prev != expected:
            what = "64 zeros (seq 0)" if seq == 0 else f"the hash of seq {seq - 1}"
            self.chain.fail(f"seq {seq}: prev does not match {what}", seq=seq, file=ENTRIES)
        else:
            self.links += 1

    def payload(self, seq: int, digest: bytes, fields: dict[str, object]) -> None:
        """payload_digest == hex(SHA-256(salt || payload UTF-8 bytes)); erased payloads are reported."""
        prefix = f"seq {seq}: payload "
        try:
            payload = _object(_member(fields, "payload", f"seq {seq}: "), f"seq {seq}: payload")
            if "erased" in payload:
                _object(payload["erased"], f"seq {seq}: payload erased")
                self.erased.append(seq)
                return
            salt = _hex_member(payload, "salt", prefix, None)
            text = _member(payload, "payload", prefix)
            if not isinstance(text, str):
                raise FormatError(f"seq {seq}: payload payload must be a string")
            content = text.encode("utf-8")
        except (FormatError, UnicodeEncodeError) as exc:
            message = str(exc) if isinstance(exc, FormatError) else f"seq {seq}: payload is not valid Unicode text"
            self.payloads.fail(message, seq=seq, file=ENTRIES)
            return
        if _sha256(salt + content) != digest:
            self.payloads.fail(f"seq {seq}: payload does not match payload_digest", seq=seq, file=ENTRIES)
            return
        self.matched_payloads += 1

    def signature(self, seq: int, body: bytes, fields: dict[str, object]) -> None:
        """Ed25519 over the body bytes, by the key ``key`` of keys.json, valid at the entry's seq."""
        keys = self.ctx.keys
        if keys is None or self.checker is None:
            return  # reported as not checked
        findings = self.signatures
        hex_id = fields.get("key")
        if not isinstance(hex_id, str) or not _LOWER_KEY_ID_RE.fullmatch(hex_id):
            findings.fail(f"seq {seq}: key must be 8 lowercase hex digits", seq=seq, file=ENTRIES)
            return
        sig_text = fields.get("sig")
        signature = _b64decode(sig_text) if isinstance(sig_text, str) else None
        if signature is None or len(signature) != ED25519_SIG_SIZE:
            findings.fail(f"seq {seq}: sig is not base64 of a 64-byte Ed25519 signature", seq=seq, file=ENTRIES)
            return
        record = keys.get(hex_id)
        if record is None:
            findings.fail(f"seq {seq}: key {hex_id} is not in {KEYS}", seq=seq, file=ENTRIES)
            return
        if not record.covers(seq):
            findings.fail(
                f"seq {seq}: key {hex_id} is not valid at this seq (valid {record.validity()})", seq=seq, file=ENTRIES
            )
            return
        self.checker.add(seq, hex_id, record.key.public_key, body, signature)

    def verdict(self, seq: int, hex_id: str, verified: bool) -> None:
        if verified:
            self.signed.setdefault(hex_id, []).append(seq)
        else:
            self.signatures.fail(f"seq {seq}: signature does not verify", seq=seq, file=ENTRIES)

    # -- summaries ------------------------------------------------------------------------------------

    def completed(self, manifest: Manifest) -> list[Check]:
        findings, first, last = self.completeness, self.first, self.last
        missing = (last - first + 1) - len(self.kinds)
        if missing:
            shown = 0
            for seq in range(first, last + 1):  # stops after the failures it can show
                if seq not in self.kinds:
                    findings.fail(f"{ENTRIES}: seq {seq} is missing", seq=seq, file=ENTRIES)
                    shown += 1
                    if shown == MAX_FAILURES_SHOWN:
                        break
            findings.count += missing - shown
        for seq, extra in self.repeats.items():
            findings.fail(f"{ENTRIES}: seq {seq} appears {extra + 1} times", seq=seq, file=ENTRIES)
        disclosed = sum(1 for kind in self.kinds.values() if kind)
        hidden = len(self.kinds) - disclosed
        if not findings.count and (disclosed, hidden) != (manifest.disclosed, manifest.hidden):
            findings.fail(
                f"{ENTRIES}: {disclosed} disclosed and {hidden} hidden entries, the manifest says "
                f"{manifest.disclosed} and {manifest.hidden}",
                file=ENTRIES,
            )
        return findings.done(
            f"seq {first}..{last} each present once, in order ({disclosed} disclosed, {hidden} hidden)", file=ENTRIES
        )

    def signed_summary(self) -> list[Check]:
        keys = self.ctx.keys
        if keys is None:
            return _not_checked("entries.signatures", f"{KEYS} is unusable")
        who = "; ".join(
            f"key {keys[hex_id].key.label}{' (trusted)' if keys[hex_id].trusted else ''} signed seq {_seq_ranges(seqs)}"
            for hex_id, seqs in self.signed.items()
        )
        count = sum(len(seqs) for seqs in self.signed.values())
        return self.signatures.done(f"{count} signatures verify" + (f": {who}" if who else ""), file=ENTRIES)

    def payload_summary(self) -> list[Check]:
        summary = f"{self.matched_payloads} payloads match payload_digest"
        if self.erased:
            summary += f"; {len(self.erased)} erased (seq {_seq_ranges(self.erased)}), their digests still signed"
        return self.payloads.done(summary, file=ENTRIES)


def _entry_checks(ctx: _Context) -> dict[str, list[Check]]:
    """The results of every entry check, from one pass over entries.jsonl (made when first needed)."""
    if ctx.entry_checks is None:
        if ctx.manifest is None:
            ctx.entry_checks = {name: _not_checked(name, ctx.manifest_error) for name in _ENTRY_CHECKS}
        elif not ctx.pack.has(ENTRIES):
            failed = _Findings(_ENTRY_CHECKS[0])
            failed.fail(ctx.pack.absent(ENTRIES), file=ENTRIES)
            ctx.entry_checks = {
                _ENTRY_CHECKS[0]: failed.done(""),
                **{name: _not_checked(name, f"{ENTRIES} is unusable") for name in _ENTRY_CHECKS[1:]},
            }
        else:
            ctx.entry_checks = _EntryPass(ctx, ctx.manifest).run(ctx.manifest)
    return ctx.entry_checks


def check_completeness(ctx: _Context) -> list[Check]:
    """Every seq of the manifest's range present once, in increasing order; the disclosed and hidden counts."""
    return _entry_checks(ctx)["entries.completeness"]


def check_hashes(ctx: _Context) -> list[Check]:
    """Each line's ``hash``; for disclosed entries, hash == SHA-256(0x00 || body) (RFC 9162 leaf hash)."""
    return _entry_checks(ctx)["entries.hashes"]


def check_bodies(ctx: _Context) -> list[Check]:
    """Body JSON: the ledger's fields, ``v`` 1, ``seq`` the line's, ``log`` the manifest origin."""
    return _entry_checks(ctx)["entries.bodies"]


def check_signatures(ctx: _Context) -> list[Check]:
    """Ed25519 over the body bytes, by the key ``key`` of keys.json, valid at the entry's seq."""
    return _entry_checks(ctx)["entries.signatures"]


def check_payloads(ctx: _Context) -> list[Check]:
    """payload_digest == hex(SHA-256(salt || payload UTF-8 bytes)); erased payloads are reported."""
    return _entry_checks(ctx)["entries.payloads"]


def check_chain(ctx: _Context) -> list[Check]:
    """A disclosed entry's ``prev`` is the hash of the previous seq (64 zeros for seq 0)."""
    return _entry_checks(ctx)["entries.chain"]


def _entries_not_ready(ctx: _Context, name: str) -> list[Check] | None:
    _entry_checks(ctx)
    if ctx.manifest is None:
        return _not_checked(name, ctx.manifest_error)
    if not ctx.entries_read:
        return _not_checked(name, f"{ENTRIES} is unusable")
    return None


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
    if not ctx.pack.has(INCLUSION_PROOFS):
        findings.fail(ctx.pack.absent(INCLUSION_PROOFS), file=INCLUSION_PROOFS)
        return findings.done("")
    verified: list[int] = []
    for number, raw in ctx.pack.lines(INCLUSION_PROOFS, findings):
        where = f"{INCLUSION_PROOFS} line {number}"
        try:
            proof = _object(load_json(raw, where), where)
            seq = _int_member(proof, "seq", f"{where}: ")
            size = _int_member(proof, "tree_size", f"{where}: ")
            hashes = _hash_list(_member(proof, "hashes", f"{where}: "), f"{where}: hashes")
        except FormatError as exc:
            findings.fail(str(exc), file=INCLUSION_PROOFS)
            continue
        disclosed, leaf = ctx.entries.get(seq), ctx.leaves.get(seq)
        if size != checkpoint.size:
            findings.fail(
                f"seq {seq}: inclusion proof tree_size {size} is not the checkpoint size {checkpoint.size}",
                seq=seq,
                file=INCLUSION_PROOFS,
            )
        elif not disclosed or leaf is None:
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
    if INCLUSION_PROOFS in ctx.pack.errors:
        findings.fail(ctx.pack.absent(INCLUSION_PROOFS), file=INCLUSION_PROOFS)
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
# The order the checks run in: keys before entries.jsonl, and the one pass over entries.jsonl (which records its
# SHA-256 on the way) before the file digests, so that the largest member is inflated once.  Reports list the
# checks in the order above.
_RUN_ORDER: Final = (
    check_manifest,
    check_manifest_signature,
    check_keys,
    check_completeness,
    *(
        check
        for check in _CHECKS
        if check not in (check_manifest, check_manifest_signature, check_keys, check_completeness)
    ),
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


def verify_pack(path: str | os.PathLike[str] | bytes, trusted_keys: Iterable[str], *, libsodium: bool = True) -> Report:
    """Verify the evidence pack at ``path`` (or the ZIP bytes) against the trusted verifier keys.

    Raises :class:`PackError` only for bad usage (unreadable file, not a ZIP, malformed key); every
    problem inside the pack is a failed :class:`Check` in the returned :class:`Report`.  ``libsodium=False``
    checks every entry signature with ``cryptography`` alone, even where PyNaCl is installed (same verdicts).
    """
    trusted = parse_trusted_keys(trusted_keys)
    label = "<bytes>" if isinstance(path, bytes) else os.fspath(path)
    source = io.BytesIO(path) if isinstance(path, bytes) else path
    with contextlib.ExitStack() as stack:
        try:
            archive = stack.enter_context(zipfile.ZipFile(source))
            pack = _Pack(archive)
        except FileNotFoundError:
            raise PackError(f"{label}: no such file") from None
        except zipfile.BadZipFile:
            raise PackError(f"{label}: not a ZIP file") from None
        except _ZIP_ERRORS as exc:
            raise PackError(f"{label}: cannot be read ({exc})") from None
        ctx = _Context(pack=pack, trusted=trusted, libsodium=libsodium)
        _read_checkpoint(ctx)
        results: dict[Callable[[_Context], list[Check]], list[Check]] = {}
        for check in _RUN_ORDER:
            results[check] = check(ctx)
    return Report(label, tuple(itertools.chain.from_iterable(results[check] for check in _CHECKS)))


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
    parser.add_argument(
        "--cryptography-only",
        action="store_true",
        help="check entry signatures with cryptography alone, even where PyNaCl (libsodium) is installed",
    )
    args = parser.parse_args(argv)
    try:
        report = verify_pack(args.pack, args.key, libsodium=not args.cryptography_only)
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
