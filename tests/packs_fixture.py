"""Build VALID evidence packs directly from ``ledger/packs/FORMAT.md``, for tests only.

Nothing here comes from the ledger's code: entry bodies, hashes, signatures, the Merkle tree (a literal
transcription of RFC 9162 2.1), signed notes (C2SP signed-note, tlog-checkpoint, tlog-cosignature) and the
manifest are produced from the specifications alone, with the standard library and ``cryptography``.  So the
offline verifier (``ledger/packs/verifier.py``) can be tested before, and independently of, the real pack
builder.

Typical use::

    log = Log(40)                                   # 40 signed, chained entries
    pack = log.export(10, 25, disclosed=lambda seq: seq % 3 != 1, erased={14}, auditor_size=8)
    path = pack.write(tmp_path / "pack.zip")
    # tamper: edit pack.members / pack.manifest, then pack.finalize() to re-sign the manifest (an insider
    # with the log key) or leave the manifest alone (anyone else)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
import random
import uuid
import warnings
import zipfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ORIGIN = "example.org/evidence-ledger"
VERIFIER_SOURCE = Path(__file__).resolve().parent.parent / "ledger" / "packs" / "verifier.py"
EM_DASH = "\N{EM DASH}"
PRODUCER = "collector@example"
SIG_TYPE_ED25519 = 0x01
SIG_TYPE_COSIGNATURE = 0x04
MEDIA_TYPES = {
    ".jsonl": "application/jsonl",
    ".json": "application/json",
    ".txt": "text/plain",
    ".pdf": "application/pdf",
    ".py": "text/x-python",
}


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def canonical(value: Any) -> bytes:
    """RFC 8785 for our values (ASCII keys, strings, integers): sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- keys and signed notes (C2SP signed-note, tlog-checkpoint, tlog-cosignature) --------------------------


@dataclass
class Key:
    """A named Ed25519 key; ``sig_type`` 0x01 for note signatures, 0x04 for witness cosignatures."""

    name: str
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    sig_type: int = SIG_TYPE_ED25519

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes_raw()

    @property
    def key_id(self) -> bytes:
        # C2SP signed-note: SHA-256(name || "\n" || type || public key)[:4]
        return sha256(self.name.encode() + b"\n" + bytes([self.sig_type]) + self.public)[:4]

    @property
    def verifier_key(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.sig_type]) + self.public)}"

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def signature_line(self, text: str) -> str:
        """``— <name> <base64(key id || Ed25519 signature over the note text)>``."""
        return f"{EM_DASH} {self.name} {b64(self.key_id + self.sign(text.encode()))}\n"

    def cosignature_line(self, checkpoint_text: str, timestamp: int) -> str:
        """C2SP tlog-cosignature/v1: key id || u64 timestamp || signature over header, time line, text."""
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode()
        blob = self.key_id + timestamp.to_bytes(8, "big") + self.sign(message)
        return f"{EM_DASH} {self.name} {b64(blob)}\n"


def sign_note(text: str, keys: Sequence[Key], extra_lines: Sequence[str] = ()) -> str:
    return text + "\n" + "".join(key.signature_line(text) for key in keys) + "".join(extra_lines)


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{b64(root)}\n"


# --- RFC 9162 2.1, transcribed literally (recursive, slicing) --------------------------------------------


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def split(n: int) -> int:
    """The largest power of two smaller than n, counted up (RFC 9162 2.1.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 9162 2.1.1)."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 2.1.3.1)."""
    if len(leaves) == 1:
        return []
    k = split(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (RFC 9162 2.1.4.1); PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = split(n)
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def range_nodes(leaves: Sequence[bytes], first: int, last: int) -> list[dict[str, Any]]:
    """FORMAT.md proofs/range.json `nodes`: the maximal subtrees of the recursion outside first..last."""
    found: list[dict[str, Any]] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= first or lo > last:
            found.append({"start": lo, "end": hi, "hash": mth(leaves[lo:hi]).hex()})
        elif hi - lo > 1 and not (lo >= first and hi <= last + 1):
            k = split(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    walk(0, len(leaves))
    return found


# --- a minimal PDF ----------------------------------------------------------------------------------------


def minimal_pdf(lines: Sequence[str]) -> bytes:
    """A one-page PDF 1.4 with Helvetica text lines and a correct cross-reference table."""
    text = " ".join(f"({line}) Tj 0 -14 Td" for line in lines)
    content = f"BT /F1 9 Tf 40 800 Td {text} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- the log --------------------------------------------------------------------------------------------


@dataclass
class Entry:
    seq: int
    body: bytes
    hash: bytes
    sig: bytes
    key: Key
    salt: bytes
    payload: str


class Log:
    """``size`` signed, chained entries.  ``keys``: ``(key, valid_from_seq)`` in order (rotation)."""

    def __init__(
        self, size: int, *, origin: str = ORIGIN, keys: Sequence[tuple[Key, int]] | None = None, seed: int = 1
    ) -> None:
        self.origin = origin
        self.rng = random.Random(seed)
        self.keys = list(keys) if keys else [(Key(origin), 0)]
        self.subject_secret = self.rng.randbytes(32)
        self.entries: list[Entry] = []
        self.stream_counts: dict[str, int] = {}
        for _ in range(size):
            self.append()

    @property
    def key(self) -> Key:
        """The current signing key."""
        return self.keys[-1][0]

    def key_at(self, seq: int) -> Key:
        return [key for key, start in self.keys if start <= seq][-1]

    def sign_body(self, body: dict[str, Any]) -> Entry:
        """Canonical body bytes, leaf hash, Ed25519 signature by the key valid at ``body['seq']``."""
        raw = canonical(body)
        key = self.key_at(body["seq"])
        return Entry(body["seq"], raw, sha256(b"\x00" + raw), key.sign(raw), key, b"", "")

    def append(self) -> Entry:
        seq = len(self.entries)
        stream = f"controls/iam-01/host-{seq % 3:03d}"
        stream_seq = self.stream_counts.get(stream, 0)
        self.stream_counts[stream] = stream_seq + 1
        when = f"2026-11-20T10:{seq // 60 % 60:02d}:{seq % 60:02d}.000000Z"
        payload = canonical(
            {
                "control_id": "IAM-01",
                "check_id": f"IAM-01-host-{seq % 3:03d}",
                "status": "fail" if seq % 4 == 0 else "pass",
                "observed_at": when,
                "note": "contrôle MFA ✓",
            }
        ).decode()
        salt = self.rng.randbytes(16)
        subjects = sorted(
            hmac.new(self.subject_secret, f"user-{seq % n}".encode(), hashlib.sha256).hexdigest() for n in (5, 7)
        )
        body = {
            "v": 1,
            "log": self.origin,
            "seq": seq,
            "prev": self.entries[-1].hash.hex() if self.entries else "0" * 64,
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "stream": stream,
            "stream_seq": stream_seq,
            "type": "check.result",
            "occurred_at": when,
            "recorded_at": when,
            "producer": PRODUCER,
            "payload_digest": sha256(salt + payload.encode()).hex(),
            "subjects": subjects,
        }
        entry = self.sign_body(body)
        entry.salt, entry.payload = salt, payload
        self.entries.append(entry)
        return entry

    def leaves(self, size: int | None = None) -> list[bytes]:
        return [entry.hash for entry in self.entries[: len(self.entries) if size is None else size]]

    def checkpoint(self, size: int, *, signers: Sequence[Key] | None = None, extra_lines: Sequence[str] = ()) -> str:
        text = checkpoint_text(self.origin, size, mth(self.leaves(size)))
        return sign_note(text, signers or [self.key_at(size - 1)], extra_lines)

    def keys_json(self) -> list[dict[str, Any]]:
        out = []
        for index, (key, start) in enumerate(self.keys):
            until = self.keys[index + 1][1] if index + 1 < len(self.keys) else None
            out.append(
                {
                    "key_id": key.key_id.hex(),
                    "verifier_key": key.verifier_key,
                    "valid_from_seq": start,
                    "valid_until_seq": until,
                    "valid_from": "2026-11-01T00:00:00.000000Z",
                    "valid_until": None if until is None else "2026-11-20T10:00:00.000000Z",
                }
            )
        return out

    def export(
        self,
        first: int,
        last: int,
        *,
        disclosed: Callable[[int], bool] | Collection[int] | None = None,
        erased: Collection[int] = (),
        auditor_size: int | None = None,
        inclusion_limit: int = 5,
        witness: Key | None = None,
        scope: dict[str, Any] | None = None,
    ) -> Pack:
        """An evidence pack of ``first..last`` in the checkpoint of the whole log (FORMAT.md)."""
        size = len(self.entries)
        if disclosed is None:
            is_disclosed: Callable[[int], bool] = lambda seq: True  # noqa: E731
        elif callable(disclosed):
            is_disclosed = disclosed
        else:
            chosen = set(disclosed)
            is_disclosed = chosen.__contains__
        leaves = self.leaves()
        lines = []
        disclosed_seqs = []
        for entry in self.entries[first : last + 1]:
            if not is_disclosed(entry.seq):
                lines.append({"seq": entry.seq, "disclosed": False, "hash": entry.hash.hex()})
                continue
            disclosed_seqs.append(entry.seq)
            if entry.seq in erased:
                payload: dict[str, Any] = {
                    "erased": {"at": "2026-11-21T00:00:00.000000Z", "by_seq": size - 1, "reason": "gdpr"}
                }
            else:
                payload = {"salt": entry.salt.hex(), "payload": entry.payload}
            lines.append(
                {
                    "seq": entry.seq,
                    "disclosed": True,
                    "body": entry.body.decode(),
                    "hash": entry.hash.hex(),
                    "sig": b64(entry.sig),
                    "key": entry.key.key_id.hex(),
                    "payload": payload,
                }
            )
        pack_id = uuid.UUID(int=self.rng.getrandbits(128), version=4).hex
        text = checkpoint_text(self.origin, size, mth(leaves))
        cosignatures = [witness.cosignature_line(text, 1_795_000_000)] if witness else []
        members: dict[str, bytes] = {
            "entries.jsonl": b"".join(canonical(line) + b"\n" for line in lines),
            "checkpoint.txt": self.checkpoint(size, extra_lines=cosignatures).encode(),
            "proofs/range.json": canonical(
                {"tree_size": size, "first": first, "last": last, "nodes": range_nodes(leaves, first, last)}
            ),
            "proofs/inclusion.jsonl": b"".join(
                canonical({"seq": seq, "tree_size": size, "hashes": [h.hex() for h in path(seq, leaves)]}) + b"\n"
                for seq in disclosed_seqs[:inclusion_limit]
            ),
            "keys.json": canonical(self.keys_json()),
            "incidents/INC-2026-0001.json": canonical({"incident": "INC-2026-0001", "reports": []}),
            # FORMAT.md: a header (policy wording, legal holds), then one line per disclosed entry
            "retention.jsonl": b"".join(
                canonical(line) + b"\n"
                for line in [
                    {"policy": "built-in", "holds": []},
                    *(
                        {
                            "seq": seq,
                            "class": "evidence",
                            "retain_until": "2031-11-20",
                            "holds": [],
                            "erasure": {"reason": "gdpr"} if seq in erased else None,
                        }
                        for seq in disclosed_seqs
                    ),
                ]
            ),
            "report.json": canonical({"pack_id": pack_id, "disclosed": len(disclosed_seqs)}),
            "README.txt": b"Verify with: python verify.py PACK.zip --key <verifier key>\n",
            "verify.py": VERIFIER_SOURCE.read_bytes(),
        }
        if auditor_size is not None:
            members["proofs/auditor-checkpoint.txt"] = self.checkpoint(auditor_size).encode()
            proof = subproof(auditor_size, leaves, True)
            members["proofs/consistency.json"] = canonical(
                {"from_size": auditor_size, "to_size": size, "hashes": [h.hex() for h in proof]}
            )
        manifest = {
            "format": "evidence-ledger-pack",
            "v": 1,
            "pack_id": pack_id,
            "generated_at": "2026-11-21T12:00:00.000000Z",
            "generator": {"name": "evidence-ledger", "version": "0.1.0"},
            "scope": scope
            or {
                "streams": [],
                "stream_prefixes": ["controls/"],
                "types": [],
                "incidents": [],
                "subject": None,
                "occurred_since": None,
                "occurred_until": None,
            },
            "log": {
                "origin": self.origin,
                "first_seq": first,
                "last_seq": last,
                "tree_size": size,
                "root": mth(leaves).hex(),
                "checkpoint": "checkpoint.txt",
                "disclosed": len(disclosed_seqs),
                "hidden": last - first + 1 - len(disclosed_seqs),
            },
            "algorithms": {
                "leaf_hash": "SHA-256(0x00 || body) (RFC 9162)",
                "node_hash": "SHA-256(0x01 || left || right)",
                "signature": "Ed25519",
                "payload_digest": "SHA-256(salt || canonical payload)",
                "canonical_json": "RFC 8785",
                "notes": "C2SP signed-note, tlog-checkpoint, tlog-cosignature",
            },
        }
        return Pack(self, members, manifest).finalize()


# --- the pack -------------------------------------------------------------------------------------------


class Pack:
    """A pack's files; ``finalize`` (re)builds files, content_digest, report.pdf, manifest and its note."""

    def __init__(self, log: Log, members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        self.log = log
        self.members = members
        self.manifest = manifest
        self.extra: list[tuple[str, bytes]] = []  # written to the ZIP as they are (duplicates allowed)

    @property
    def pack_id(self) -> str:
        return str(self.manifest["pack_id"])

    def copy(self) -> Pack:
        clone = Pack(self.log, dict(self.members), copy.deepcopy(self.manifest))
        clone.extra = list(self.extra)
        return clone

    def file_entries(self, *, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        entries = []
        for name in sorted(self.members):
            if name in ("manifest.json", "manifest.sig") or name in exclude:
                continue
            data = self.members[name]
            media = next((m for suffix, m in MEDIA_TYPES.items() if name.endswith(suffix)), "application/octet-stream")
            entries.append({"path": name, "sha256": sha256(data).hex(), "size": len(data), "media_type": media})
        return entries

    def finalize(self, *, pdf: bool = True, signer: Key | None = None) -> Pack:
        """Recompute the manifest's files and content_digest, the PDF (unless ``pdf`` is False) and sign."""
        digest = sha256(canonical(self.file_entries(exclude={"report.pdf"}))).hex()
        if pdf:
            self.members["report.pdf"] = minimal_pdf(
                [f"Evidence pack {self.pack_id}", f"content digest {digest}", f"EVP-{self.pack_id}-000001"]
            )
        self.manifest["files"] = self.file_entries()
        self.manifest["content_digest"] = digest
        return self.sign_manifest(signer)

    def sign_manifest(self, signer: Key | None = None) -> Pack:
        """Write manifest.json as it stands and sign it (FORMAT.md manifest.sig)."""
        raw = json.dumps(self.manifest, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
        self.members["manifest.json"] = raw
        text = f"evidence-ledger-pack/v1\n{self.pack_id}\n{hashlib.sha256(raw).hexdigest()}\n"
        self.members["manifest.sig"] = sign_note(text, [signer or self.log.key]).encode()
        return self

    # entries.jsonl as a list of objects, for tampering
    def entry_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.members["entries.jsonl"].decode().splitlines()]

    def set_entry_lines(self, lines: Sequence[dict[str, Any]]) -> None:
        self.members["entries.jsonl"] = b"".join(canonical(line) + b"\n" for line in lines)

    def line(self, seq: int) -> dict[str, Any]:
        return next(line for line in self.entry_lines() if line["seq"] == seq)

    def replace_line(self, seq: int, new: dict[str, Any]) -> None:
        self.set_entry_lines([new if line["seq"] == seq else line for line in self.entry_lines()])

    def zip_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            names = ["manifest.json", "manifest.sig", *sorted(set(self.members) - {"manifest.json", "manifest.sig"})]
            for name in names:
                if name in self.members:
                    info = zipfile.ZipInfo(name, date_time=(2026, 11, 21, 12, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, self.members[name])
            with warnings.catch_warnings():  # a duplicate name is what some tamper tests want
                warnings.simplefilter("ignore", UserWarning)
                for name, data in self.extra:
                    archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 21, 12, 0, 0)), data)
        return buffer.getvalue()

    def write(self, target: Path) -> Path:
        target.write_bytes(self.zip_bytes())
        return target
