"""Building an evidence pack (format: ledger/packs/FORMAT.md) and recording its export in the chain.

The pack covers the contiguous seq range from the first to the last entry in scope.  Entries in scope are
disclosed (body, signature, payload or the record of its removal); every other entry of the range appears as its
leaf hash only, so the pack proves that nothing in the range was left out without revealing the rest.  The ZIP is
written as a stream: entries are read from the store in batches and never all held in memory (the scope is kept
as a bitmap over the log, one bit per entry).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import os
import tempfile
import uuid
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from ledger import merkle
from ledger.canonical import canonical_bytes
from ledger.errors import NotFoundError, ValidationError
from ledger.files import PRIVATE_FILE_MODE
from ledger.notes import parse_checkpoint, sign_note
from ledger.service import SYSTEM_PRODUCER, Ledger
from ledger.store.records import EntryFilter, EntryRecord, PayloadRecord
from schemas.timestamps import format_timestamp, parse_timestamp

__all__ = ["PACK_EXPORTED", "PACK_STREAM", "PackResult", "PackScope", "export_pack"]

PACK_STREAM = "ledger/packs"
PACK_EXPORTED = "pack.exported"
FORMAT_NAME = "evidence-ledger-pack"
FORMAT_VERSION = 1
SIGNATURE_HEADER = "evidence-ledger-pack/v1"
INCLUSION_PROOF_LIMIT = 1000
_PROOFS_PER_READ = 250  # inclusion proofs computed from one read of the tree nodes they need
_SUBJECT = 64
_ALGORITHMS = {
    "leaf_hash": "SHA-256(0x00 || body) (RFC 9162 2.1.1)",
    "node_hash": "SHA-256(0x01 || left || right) (RFC 9162 2.1.1)",
    "signature": "Ed25519 over the body bytes",
    "payload_digest": "SHA-256(salt || canonical payload)",
    "canonical_json": "RFC 8785",
    "notes": "C2SP signed-note, tlog-checkpoint, tlog-cosignature",
    "file_digest": "SHA-256",
}
_MEDIA_TYPES = {".json": "application/json", ".jsonl": "application/jsonl", ".txt": "text/plain; charset=utf-8"}
_MEDIA_TYPES.update({".pdf": "application/pdf", ".py": "text/x-python; charset=utf-8"})


@dataclass(frozen=True, slots=True)
class PackScope:
    """What the pack is about.  Streams, prefixes and incidents select streams (any of them); types, subject and
    the time window narrow the selection (all of them).  At least one criterion is required."""

    streams: tuple[str, ...] = ()
    stream_prefixes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    incidents: tuple[str, ...] = ()
    subject: str | None = None
    occurred_since: str | None = None  # RFC 3339; inclusive
    occurred_until: str | None = None  # RFC 3339; exclusive

    def __post_init__(self) -> None:
        if not (self.streams or self.stream_prefixes or self.types or self.incidents or self.subject):
            raise ValidationError("the scope is empty: give streams, stream prefixes, types, incidents or a subject")
        if self.subject is not None and (len(self.subject) != _SUBJECT or not _is_hex(self.subject)):
            raise ValidationError("subject must be a subject ref (64 lowercase hex digits)", field="subject")
        for name in ("occurred_since", "occurred_until"):
            value = getattr(self, name)
            if value is not None:
                parse_timestamp(value, field=name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "streams": list(self.streams),
            "stream_prefixes": list(self.stream_prefixes),
            "types": list(self.types),
            "incidents": list(self.incidents),
            "subject": self.subject,
            "occurred_since": self.occurred_since,
            "occurred_until": self.occurred_until,
        }

    def filters(self) -> list[EntryFilter]:
        """One store query per stream selector (or one for all streams), each with the narrowing criteria."""
        since = None if self.occurred_since is None else _fixed(self.occurred_since)
        until = None if self.occurred_until is None else _fixed(self.occurred_until)

        def narrowed(**selector: Any) -> EntryFilter:
            return EntryFilter(
                types=self.types, subject=self.subject, occurred_since=since, occurred_until=until, **selector
            )

        selectors: list[EntryFilter] = [narrowed(stream=s) for s in self.streams]
        for prefix in self.stream_prefixes:  # a prefix matches at "/" boundaries, as API keys and holds do
            stem = prefix.rstrip("/")
            selectors += [narrowed(stream=stem), narrowed(stream_prefix=stem + "/")]
        for incident in self.incidents:
            selectors.append(narrowed(stream=f"incident/{incident}"))
        return selectors or [narrowed()]


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _fixed(text: str) -> str:
    return format_timestamp(parse_timestamp(text, field="timestamp"))


@dataclass(slots=True)
class PackResult:
    pack_id: str
    path: Path
    sha256: str
    first_seq: int
    last_seq: int
    tree_size: int
    disclosed: int
    hidden: int
    export_event_seq: int
    files: list[dict[str, Any]] = field(default_factory=list)


class _HashingWriter:
    """Writes one ZIP member while computing its SHA-256 and size."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _Zip:
    """The pack being written: a new file, owner-only (0600) whatever the umask, since a pack holds payloads."""

    def __init__(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except FileExistsError as exc:
            raise ValidationError(f"{path} already exists; choose another output path", field="out") from exc
        self._file = os.fdopen(fd, "wb")
        try:
            self._zip = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        except BaseException:
            self._file.close()
            raise
        self.files: list[dict[str, Any]] = []

    def add(self, name: str, data: bytes) -> None:
        with self.member(name) as writer:
            writer.write(data)

    def member(self, name: str) -> _Member:
        return _Member(self, name)

    def record(self, name: str, writer: _HashingWriter) -> None:
        suffix = name[name.rfind(".") :]
        media = _MEDIA_TYPES.get(suffix, "application/octet-stream")
        self.files.append({"path": name, "sha256": writer.hexdigest, "size": writer.size, "media_type": media})

    def write_raw(self, name: str, data: bytes) -> None:
        self._zip.writestr(_info(name), data)

    def open(self, name: str) -> IO[bytes]:
        return self._zip.open(_info(name), "w")

    def close(self) -> None:
        try:
            self._zip.close()
        finally:
            self._file.close()


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


class _Member:
    def __init__(self, archive: _Zip, name: str) -> None:
        self._archive = archive
        self._name = name
        self._handle: IO[bytes] | None = None
        self._writer: _HashingWriter | None = None

    def __enter__(self) -> _HashingWriter:
        self._handle = self._archive.open(self._name)
        self._writer = _HashingWriter(self._handle)
        return self._writer

    def __exit__(self, *exc: object) -> None:
        assert self._handle is not None and self._writer is not None
        self._handle.close()
        if exc[0] is None:
            self._archive.record(self._name, self._writer)


# --- the scope as a bitmap --------------------------------------------------------------------------------


class _Bitmap:
    def __init__(self, size: int) -> None:
        self._bits = bytearray((size + 7) // 8)

    def set(self, seq: int) -> None:
        self._bits[seq >> 3] |= 1 << (seq & 7)

    def __contains__(self, seq: int) -> bool:
        return bool(self._bits[seq >> 3] & (1 << (seq & 7)))


def _select(ledger: Ledger, scope: PackScope, tree_size: int) -> tuple[_Bitmap, int, int, int]:
    selected = _Bitmap(tree_size)
    first, last, count = tree_size, -1, 0
    for filters in scope.filters():
        filters.to_seq = tree_size - 1
        for entry in ledger.entries(filters):
            if entry.seq in selected:
                continue
            selected.set(entry.seq)
            count += 1
            first, last = min(first, entry.seq), max(last, entry.seq)
    if count == 0:
        raise NotFoundError("no entry of the log is in this scope")
    return selected, first, last, count


# --- figures for the readable report ----------------------------------------------------------------------


@dataclass(slots=True)
class _Figures:
    by_type: Counter[str] = field(default_factory=Counter)
    controls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    approvals: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    incidents: set[str] = field(default_factory=set)
    erased: int = 0

    def take(self, entry: EntryRecord, payload: PayloadRecord | None) -> None:
        self.by_type[entry.type] += 1
        if entry.stream.startswith("incident/"):
            self.incidents.add(entry.stream.split("/", 2)[1])
        if payload is None or payload.payload is None:
            self.erased += 1
            return
        if entry.type == "check.result":
            data = orjson.loads(payload.payload)
            self.controls[str(data.get("control_id"))][str(data.get("status"))] += 1
        elif entry.type == "approval.decision":
            data = orjson.loads(payload.payload)
            kind = str((data.get("subject") or {}).get("kind"))
            self.approvals[kind][str(data.get("decision"))] += 1

    def controls_table(self) -> list[dict[str, Any]]:
        rows = []
        for control_id in sorted(self.controls):
            counts = self.controls[control_id]
            total = sum(counts.values())
            decided = counts["pass"] + counts["fail"] + counts["error"]
            rate = f"{100 * counts['pass'] / decided:.2f}" if decided else "n/a"
            rows.append(
                {
                    "control_id": control_id,
                    "pass": counts["pass"],
                    "fail": counts["fail"],
                    "error": counts["error"],
                    "not_applicable": counts["not_applicable"],
                    "total": total,
                    "pass_rate": rate,
                }
            )
        return rows

    def approvals_table(self) -> dict[str, Any]:
        by_kind = {
            kind: {"approved": c["approved"], "rejected": c["rejected"]} for kind, c in sorted(self.approvals.items())
        }
        return {
            "approved": sum(c["approved"] for c in self.approvals.values()),
            "rejected": sum(c["rejected"] for c in self.approvals.values()),
            "by_kind": by_kind,
        }


# --- writing ----------------------------------------------------------------------------------------------


def _entry_line(entry: EntryRecord, payload: PayloadRecord | None, disclosed: bool) -> bytes:
    if not disclosed:
        return orjson.dumps({"seq": entry.seq, "disclosed": False, "hash": entry.hash.hex()}) + b"\n"
    if payload is None or payload.payload is None or payload.salt is None:
        erased = None if payload is None else payload.erased_at
        content: dict[str, Any] = {
            "erased": {
                "at": erased,
                "by_seq": None if payload is None else payload.erased_by_seq,
                "reason": None if payload is None else payload.erasure_reason,
            }
        }
    else:
        content = {"salt": payload.salt.hex(), "payload": payload.payload.decode("utf-8")}
    line = {
        "seq": entry.seq,
        "disclosed": True,
        "body": entry.body.decode("utf-8"),
        "hash": entry.hash.hex(),
        "sig": base64.b64encode(entry.signature).decode("ascii"),
        "key": entry.key_id,
        "payload": content,
    }
    return orjson.dumps(line) + b"\n"


def _range_entries(ledger: Ledger, first: int, last: int) -> Iterator[tuple[EntryRecord, PayloadRecord | None]]:
    for entry, payload in ledger.recorder.iter_entries_with_payloads(ledger.log_id, first, batch_size=5000):
        if entry.seq > last:
            return
        yield entry, payload


def export_pack(
    ledger: Ledger,
    out: Path,
    scope: PackScope,
    *,
    exporter: str,
    auditor_checkpoint: str | None = None,
    policy: Any = None,
    now: datetime | None = None,
    inclusion_proof_limit: int = INCLUSION_PROOF_LIMIT,
) -> PackResult:
    """Write the pack to ``out`` (refused if it exists) and append its ``pack.exported`` event."""
    from ledger.packs.contents import RetentionLines, incident_dossier, readme_text, verifier_source
    from ledger.packs.pdf import render_report
    from retention.policy import DEFAULT_RETENTION_WORDING

    if out.exists():
        raise ValidationError(f"{out} already exists; choose another output path", field="out")
    moment = now or datetime.now(UTC)
    head = ledger.head()
    tree_size = head.size
    if tree_size == 0:
        raise NotFoundError("the log is empty")
    selected, first, last, disclosed = _select(ledger, scope, tree_size)
    checkpoint = ledger.cosigned_checkpoint(tree_size)  # with any witness cosignatures
    root = ledger.root(tree_size)
    consistency = _consistency(ledger, auditor_checkpoint, tree_size)
    pack_id = uuid.uuid4().hex
    figures = _Figures()
    archive = _Zip(out)
    retention = RetentionLines(ledger, policy, moment)
    # retention.jsonl is made in the same pass over the entries and spooled to a temporary file until its member
    # can be written (a ZIP is written one member at a time), so the rows are read from the database once
    retention_spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the finally below)
    try:
        disclosed_seqs_for_proofs: list[int] = []
        with archive.member("entries.jsonl") as writer:
            for entry, payload in _range_entries(ledger, first, last):
                shown = entry.seq in selected
                if shown:
                    figures.take(entry, payload)
                    retention_spool.write(orjson.dumps(retention.line(entry, payload)) + b"\n")
                    if len(disclosed_seqs_for_proofs) < inclusion_proof_limit:
                        disclosed_seqs_for_proofs.append(entry.seq)
                writer.write(_entry_line(entry, payload, shown))
        archive.add("checkpoint.txt", checkpoint.encode("utf-8"))
        archive.add("proofs/range.json", _range_proof(ledger, first, last, tree_size))
        with archive.member("proofs/inclusion.jsonl") as writer:
            for start in range(0, len(disclosed_seqs_for_proofs), _PROOFS_PER_READ):
                for proof in ledger.inclusion_proofs(
                    disclosed_seqs_for_proofs[start : start + _PROOFS_PER_READ], tree_size
                ):
                    line = {"seq": proof.index, "tree_size": tree_size, "hashes": [h.hex() for h in proof.hashes]}
                    writer.write(orjson.dumps(line) + b"\n")
        if consistency is not None:
            archive.add("proofs/consistency.json", orjson.dumps(consistency[0]))
            archive.add("proofs/auditor-checkpoint.txt", consistency[1].encode("utf-8"))
        keys: list[dict[str, Any]] = [
            {
                "key_id": k.key_id,
                "verifier_key": k.verifier_key,
                "valid_from_seq": k.valid_from_seq,
                "valid_until_seq": k.valid_until_seq,
                "valid_from": k.valid_from,
                "valid_until": k.valid_until,
            }
            for k in sorted(ledger.keys(), key=lambda k: k.valid_from_seq)
        ]
        archive.add("keys.json", orjson.dumps(keys, option=orjson.OPT_INDENT_2))
        incidents = sorted(set(scope.incidents) | figures.incidents)
        dossiers = []
        for incident_id in incidents:
            dossier = incident_dossier(ledger, incident_id, moment, selected)
            if dossier is not None:
                dossiers.append(dossier)
                archive.add(f"incidents/{incident_id}.json", orjson.dumps(dossier, option=orjson.OPT_INDENT_2))
        with archive.member("retention.jsonl") as writer:
            header = retention.header()
            holds_active = int(header["active_holds"])
            holds = [h for h in header["holds"] if h["released_at"] is None]
            writer.write(orjson.dumps(header) + b"\n")
            retention_spool.seek(0)
            while chunk := retention_spool.read(1 << 20):
                writer.write(chunk)
        report: dict[str, Any] = {
            "pack_id": pack_id,
            "generated_at": format_timestamp(moment),
            "generator": _generator(),
            "log": {
                "origin": ledger.origin,
                "first_seq": first,
                "last_seq": last,
                "tree_size": tree_size,
                "root": root.hex(),
                "checkpoint_note": checkpoint,
            },
            "scope": scope.as_dict(),
            "counts": {
                "disclosed": disclosed,
                "hidden": last - first + 1 - disclosed,
                "by_type": dict(figures.by_type),
            },
            "controls": figures.controls_table(),
            "approvals": figures.approvals_table(),
            "incidents": [_incident_summary(d) for d in dossiers],
            "retention": {
                "policy": DEFAULT_RETENTION_WORDING,
                "active_holds": holds_active,
                "erased_payloads": figures.erased,
                "holds": holds,
            },
            "verification": {
                "verifier_keys": [k["verifier_key"] for k in keys],
                "command": f"python verify.py PACK.zip --key '{keys[-1]['verifier_key']}'",
            },
        }
        archive.add("report.json", orjson.dumps(report, option=orjson.OPT_INDENT_2))
        archive.add("verify.py", verifier_source())
        archive.add("README.txt", readme_text(ledger.origin, keys[-1]["verifier_key"]).encode("utf-8"))
        files_without_pdf = sorted(archive.files, key=lambda f: f["path"])
        content_digest = hashlib.sha256(canonical_bytes(files_without_pdf)).hexdigest()
        archive.add("report.pdf", render_report(report, pack_id=pack_id, content_digest=content_digest))
        files = sorted(archive.files, key=lambda f: f["path"])
        manifest = {
            "format": FORMAT_NAME,
            "v": FORMAT_VERSION,
            "pack_id": pack_id,
            "generated_at": format_timestamp(moment),
            "generator": _generator(),
            "scope": scope.as_dict(),
            "log": {
                "origin": ledger.origin,
                "first_seq": first,
                "last_seq": last,
                "tree_size": tree_size,
                "root": root.hex(),
                "checkpoint": "checkpoint.txt",
                "disclosed": disclosed,
                "hidden": last - first + 1 - disclosed,
                "inclusion_proof_limit": inclusion_proof_limit,
            },
            "algorithms": _ALGORITHMS,
            "content_digest": content_digest,
            "files": files,
        }
        manifest_bytes = canonical_bytes(manifest)
        archive.write_raw("manifest.json", manifest_bytes)
        note_text = f"{SIGNATURE_HEADER}\n{pack_id}\n{hashlib.sha256(manifest_bytes).hexdigest()}\n"
        archive.write_raw("manifest.sig", sign_note(note_text, [ledger.signer()]).encode("utf-8"))
        archive.close()
    except BaseException:
        with contextlib.suppress(Exception):  # the pack is discarded whatever closing it says
            archive.close()
        out.unlink(missing_ok=True)  # never leave half a pack behind
        raise
    finally:
        retention_spool.close()
    digest = _file_digest(out)
    event_seq = _record_export(ledger, pack_id, scope, exporter, first, last, tree_size, digest, moment)
    return PackResult(
        pack_id, out, digest, first, last, tree_size, disclosed, last - first + 1 - disclosed, event_seq, files
    )


def _generator() -> dict[str, str]:
    try:
        version = importlib.metadata.version("evidence-ledger")
    except importlib.metadata.PackageNotFoundError:
        version = "0.0.0"
    return {"name": "evidence-ledger", "version": version}


def _incident_summary(dossier: dict[str, Any]) -> dict[str, Any]:
    latest = dossier["classifications"][-1] if dossier["classifications"] else {}
    first_major = next((c for c in dossier["classifications"] if c.get("major")), None)
    return {
        "incident_id": dossier["incident_id"],
        "major": dossier["major"],
        "aware_at": dossier["aware_at"],
        "classified_at": None if first_major is None else first_major["classified_at"],
        "criteria_met": latest.get("criteria_met", []),
        "rule_version": latest.get("rule_version", ""),
        "deadlines": [
            {
                "stage": d["stage"],
                "state": d["state"],
                "due_at": None if d["deadline"] is None else d["deadline"]["due_at"],
                "submitted_at": d["submitted_at"],
            }
            for d in dossier["deadlines"]
        ],
    }


def _range_proof(ledger: Ledger, first: int, last: int, tree_size: int) -> bytes:
    ranges = merkle.outside_subtrees(first, last + 1, tree_size)
    hashes = ledger._range_hashes(ranges) if ranges else []
    nodes = [{"start": s, "end": e, "hash": h.hex()} for (s, e), h in zip(ranges, hashes, strict=True)]
    return orjson.dumps({"tree_size": tree_size, "first": first, "last": last, "nodes": nodes})


def _consistency(ledger: Ledger, note: str | None, tree_size: int) -> tuple[dict[str, Any], str] | None:
    """The auditor's earlier checkpoint, checked against the log, with the RFC 9162 consistency proof to now."""
    if note is None:
        return None
    from ledger.notes import open_note
    from ledger.verify import build_verifiers

    verifiers = [v for _key, v in build_verifiers(ledger.keys()).values()]
    try:
        opened = open_note(note, verifiers)
        earlier = parse_checkpoint(opened.text)
    except Exception as exc:
        raise ValidationError(f"the auditor's checkpoint does not verify with the log's keys: {exc}") from None
    if earlier.origin != ledger.origin:
        raise ValidationError("the auditor's checkpoint belongs to another log")
    if earlier.size > tree_size or earlier.size < 1:
        raise ValidationError(f"the auditor's checkpoint has size {earlier.size}, outside 1..{tree_size}")
    if ledger.root(earlier.size) != earlier.root:
        raise ValidationError("the auditor's checkpoint has another root than the log at that size: a fork")
    proof = ledger.consistency_proof(earlier.size, tree_size)
    return proof.as_dict(), note


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_export(
    ledger: Ledger,
    pack_id: str,
    scope: PackScope,
    exporter: str,
    first: int,
    last: int,
    tree_size: int,
    digest: str,
    moment: datetime,
) -> int:
    event = {
        "id": str(uuid.uuid4()),
        "stream": PACK_STREAM,
        "type": PACK_EXPORTED,
        "occurred_at": format_timestamp(moment),
        "payload": {
            "pack_id": pack_id,
            "exported_by": exporter,
            "exported_at": format_timestamp(moment),
            "scope": scope.as_dict(),
            "first_seq": first,
            "last_seq": last,
            "tree_size": tree_size,
            "pack_sha256": digest,
        },
    }
    return ledger.append(event, exporter or SYSTEM_PRODUCER).entry.seq
