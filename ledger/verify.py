"""Verification of a whole log: chain links, signatures, payload digests, the Merkle tree, checkpoints.

Pure: it takes records and returns findings.  :class:`Auditor` is fed entries in seq order (with their
payload rows and the stored tree nodes that became complete at that seq) and collects every finding with
the seq it concerns; :func:`verify` is the raising form that stops at the first finding.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ledger.canonical import MAX_SAFE_INTEGER, canonical_bytes
from ledger.chain import BODY_VERSION, ZERO_HASH, parse_body, payload_digest_of_bytes
from ledger.errors import CanonicalizationError, IntegrityError, VerificationError
from ledger.merkle import CompactRange, leaf_hash
from ledger.notes import NoteVerifier, open_note, parse_checkpoint, parse_verifier_key
from ledger.packs.verifier import SIGNATURE_WORKERS, signature_pool, verify_items
from ledger.store.records import CheckpointRecord, EntryRecord, KeyRecord, LogHead, NodeRecord, PayloadRecord

MAX_FINDINGS = 100_000
_COLUMN_FIELDS = (
    ("event_id", "id"),
    ("stream", "stream"),
    ("stream_seq", "stream_seq"),
    ("type", "type"),
    ("producer", "producer"),
    ("occurred_at", "occurred_at"),
    ("recorded_at", "recorded_at"),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found, with the seq it concerns (None for log-wide findings) and a stable code."""

    seq: int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = "log" if self.seq is None else f"seq {self.seq}"
        return f"{where}: {self.code}: {self.message}"


@dataclass(slots=True)
class AuditReport:
    origin: str
    entries_checked: int = 0
    checkpoints_checked: int = 0
    nodes_checked: int = 0
    payloads_checked: int = 0
    payloads_erased: int = 0
    subjects_checked: int = 0  # subject references of signed bodies found in the subject index, or not
    root: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "nodes_checked": self.nodes_checked,
            "payloads_checked": self.payloads_checked,
            "payloads_erased": self.payloads_erased,
            "subjects_checked": self.subjects_checked,
            "root": self.root,
            "findings": [{"seq": f.seq, "code": f.code, "message": f.message} for f in self.findings],
        }


def _canonical_body(body: dict[str, Any], raw: bytes) -> bool:
    """Whether ``raw`` is the RFC 8785 form of the parsed body.

    A body holds only strings, safe integers and a list of strings under its fixed ASCII field names; for such a
    value sorted-key orjson output is exactly JCS (see ledger/canonical.py), so it is compared directly.
    Anything else takes the general path.
    """
    for value in body.values():
        kind = type(value)
        if kind is str:
            continue
        if kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            continue
        if kind is list and all(type(item) is str for item in value):
            continue
        return canonical_bytes(body) == raw
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS) == raw


def build_verifiers(keys: Sequence[KeyRecord]) -> dict[str, tuple[KeyRecord, NoteVerifier]]:
    """Parse every published key; a key that does not parse is an integrity problem of the key table."""
    verifiers: dict[str, tuple[KeyRecord, NoteVerifier]] = {}
    for key in keys:
        try:
            verifiers[key.key_id] = (key, parse_verifier_key(key.verifier_key))
        except VerificationError as exc:
            raise IntegrityError(f"published key {key.key_id} does not parse: {exc}") from exc
    return verifiers


@dataclass(frozen=True, slots=True)
class SignatureChecks:
    """Signature checks of a batch under way on the auditor's workers (see :meth:`Auditor.submit_signatures`)."""

    count: int
    parts: list[Future[list[bool]]]
    unsigned: frozenset[int] = frozenset()
    """Positions in the batch whose key is unknown or not valid at their seq: not sent, never valid."""

    def results(self) -> list[bool]:
        """Whether each entry's signature verifies, in batch order (waits for the workers)."""
        checked = iter([ok for part in self.parts for ok in part.result()])
        return [False if index in self.unsigned else next(checked) for index in range(self.count)]


class Auditor:
    """Streaming audit of one log.  Call :meth:`check_batch` in seq order, then :meth:`finish`."""

    def __init__(
        self,
        origin: str,
        keys: Sequence[KeyRecord],
        checkpoints: Sequence[CheckpointRecord],
        *,
        checkpoint_times_known: bool = True,
    ) -> None:
        """``checkpoint_times_known=False`` (checkpoints read from a snapshot store, without their signing time):
        a checkpoint may be signed by any key not retired before its size, the key of its size or a later one
        that re-signed it."""
        self.report = AuditReport(origin=origin)
        self._times_known = checkpoint_times_known
        self._origin = origin
        self._verifiers = build_verifiers(keys)
        self._checkpoints = sorted(checkpoints, key=lambda c: c.size)
        self._next_checkpoint = 0
        self._expected_seq = 0
        self._prev = ZERO_HASH
        self._tree = CompactRange(0, [])
        self._stream_next: dict[str, int] = {}
        self._roots_by_size: dict[int, bytes] = {}
        self._contradicted: list[int] = []  # sizes of validly signed checkpoints whose root the entries do not give
        # Forked processes where this process runs one thread (the CLI, a restore before its reader starts):
        # threads that verify wait for the GIL after each check while this thread parses and hashes.
        self._pool = signature_pool(libsodium=True, thread_name="ledger-audit")
        self._closed = False
        self._check_checkpoints_at(0)

    def _find(self, seq: int | None, code: str, message: str) -> None:
        if len(self.report.findings) < MAX_FINDINGS:
            self.report.findings.append(Finding(seq, code, message))

    def submit_signatures(self, entries: Sequence[EntryRecord]) -> SignatureChecks:
        """Start the Ed25519 checks of ``entries`` on the signature workers and return at once.

        A caller that has the next batch ready can submit it early and pass the result to :meth:`check_batch`, so
        signatures are checked while it is still busy with the previous batch.  Only published keys valid at each
        seq count; the checks are independent of everything else the audit keeps.
        """
        items: list[tuple[bytes, bytes, bytes]] = []
        unsigned: set[int] = set()
        for index, entry in enumerate(entries):
            pair = self._verifiers.get(entry.key_id)
            if pair is not None and pair[0].covers_seq(entry.seq):
                items.append((pair[1].public_key, entry.body, entry.signature))
            else:
                unsigned.add(index)
        step = -(-len(items) // SIGNATURE_WORKERS) or 1
        parts = [self._pool.submit(verify_items, items[i : i + step], True) for i in range(0, len(items), step)]
        return SignatureChecks(len(entries), parts, frozenset(unsigned))

    def check_batch(
        self,
        batch: Sequence[tuple[EntryRecord, PayloadRecord | None]],
        stored_nodes: Iterable[tuple[int, NodeRecord]] = (),
        signatures: SignatureChecks | None = None,
        stored_subjects: Iterable[tuple[int, str]] | None = None,
    ) -> None:
        """Check a run of consecutive entries; ``stored_nodes`` are (end_seq, node) for the same seqs.

        ``signatures`` is what :meth:`submit_signatures` returned for exactly these entries (submitted here when
        omitted).  ``stored_subjects``, where given, are the subject index rows (seq, reference) of the same
        seqs: each entry's rows must be exactly the references its signed body lists."""
        if signatures is None:
            signatures = self.submit_signatures([entry for entry, _payload in batch])
        elif signatures.count != len(batch):
            raise ValueError(f"signature checks for {signatures.count} entries passed with a batch of {len(batch)}")
        nodes_by_seq: dict[int, dict[tuple[int, int], bytes]] = {}
        for end_seq, node in stored_nodes:
            nodes_by_seq.setdefault(end_seq, {})[(node.level, node.idx)] = node.hash
        subjects_by_seq: dict[int, set[str]] | None = None
        if stored_subjects is not None:
            subjects_by_seq = {}
            for seq, subject in stored_subjects:
                subjects_by_seq.setdefault(seq, set()).add(subject)
        for entry, payload in batch:
            body = self._check_entry(entry, payload, nodes_by_seq.pop(entry.seq, {}))
            if subjects_by_seq is not None:
                indexed = subjects_by_seq.pop(entry.seq, set())
                if body is not None:  # an unparsable body is a finding already; its references are unknown
                    self._check_subjects(entry.seq, body, indexed)
        if subjects_by_seq:
            self.check_leftover_subjects((seq, s) for seq, found in subjects_by_seq.items() for s in found)
        for (entry, _payload), signature_ok in zip(batch, signatures.results(), strict=True):
            self._check_signature(entry, signature_ok)
        for end_seq, extra in nodes_by_seq.items():
            for level, idx in extra:
                self._find(end_seq, "unexpected-node", f"stored tree node ({level}, {idx}) matches no entry")

    def _check_entry(
        self,
        entry: EntryRecord,
        payload: PayloadRecord | None,
        stored_nodes: dict[tuple[int, int], bytes],
    ) -> dict[str, Any] | None:
        """Check one entry; its body, parsed (None if it does not parse)."""
        seq = entry.seq
        if seq != self._expected_seq:
            self._find(
                self._expected_seq,
                "missing-entries",
                f"entries {self._expected_seq}..{seq - 1} are missing from the log",
            )
            self._skip_to(seq)
        self.report.entries_checked += 1
        actual_hash = leaf_hash(entry.body)
        if actual_hash != entry.hash:
            self._find(seq, "hash-mismatch", "stored hash is not SHA-256(0x00 || body)")  # RFC 9162 2.1.1
        body = self._check_body(entry)
        self._check_payload(entry, payload, None if body is None else body["payload_digest"])
        new_nodes = self._tree.append([actual_hash])
        self._check_nodes(seq, new_nodes, stored_nodes)
        self._prev = actual_hash
        self._expected_seq = seq + 1
        self._check_checkpoints_at(self._tree.size)
        return body

    def _check_subjects(self, seq: int, body: dict[str, Any], stored: set[str]) -> None:
        """The subject index must hold exactly the references the signed body lists: a lost row hides the entry
        from queries and erasure by subject, an added one ties someone to an entry that does not name them."""
        listed = body["subjects"]
        signed = set(listed) if isinstance(listed, list) else set()
        self.report.subjects_checked += len(signed)
        if missing := len(signed - stored):
            self._find(
                seq,
                "subject-index-mismatch",
                f"{missing} subject reference(s) of the signed body are missing from the subject index",
            )
        if extra := len(stored - signed):
            self._find(
                seq,
                "subject-index-mismatch",
                f"the subject index ties {extra} reference(s) to this entry that its signed body does not list",
            )

    def check_leftover_subjects(self, rows: Iterable[tuple[int, str]], unchecked: range = range(0)) -> None:
        """Subject index rows of seqs that have no entry.  Rows with a seq in ``unchecked`` are skipped: those
        of appends that committed after the audit read its entries."""
        counts: dict[int, int] = {}
        for seq, _subject in rows:
            if seq not in unchecked:
                counts[seq] = counts.get(seq, 0) + 1
        for seq, count in sorted(counts.items()):
            self._find(seq, "subject-index-mismatch", f"the subject index ties {count} reference(s) to a missing entry")

    def _skip_to(self, seq: int) -> None:
        """After a gap the tree cannot be rebuilt; keep checking links and signatures from here."""
        self._expected_seq = seq
        self._prev = b""  # unknown: the next prev link cannot be checked

    def _check_body(self, entry: EntryRecord) -> dict[str, Any] | None:
        """Check the body's form and links; return it parsed (None if it does not parse)."""
        seq = entry.seq
        try:
            body = parse_body(entry.body)
        except VerificationError as exc:
            self._find(seq, "malformed-body", str(exc))
            return None
        try:
            if not _canonical_body(body, entry.body):
                self._find(seq, "not-canonical", "body bytes are not RFC 8785 canonical JSON")
        except CanonicalizationError as exc:
            self._find(seq, "not-canonical", str(exc))
        if body["v"] != BODY_VERSION:
            self._find(seq, "bad-version", f"body version {body['v']!r} is not {BODY_VERSION}")
        if body["log"] != self._origin:
            self._find(seq, "wrong-log", "body belongs to another log")
        if body["seq"] != seq:
            self._find(seq, "seq-mismatch", f"body says seq {body['seq']!r}: entry moved or reordered")
        if self._prev and body["prev"] != self._prev.hex():
            self._find(seq, "broken-link", f"prev does not match the hash of entry {seq - 1}")
        for column, name in _COLUMN_FIELDS:
            if getattr(entry, column) != body[name]:
                self._find(seq, "column-mismatch", f"stored column {column} differs from the signed body")
        self._check_stream_seq(seq, body)
        return body

    def _check_stream_seq(self, seq: int, body: dict[str, Any]) -> None:
        stream = body["stream"]
        expected = self._stream_next.get(stream, 0)
        if body["stream_seq"] != expected:
            self._find(seq, "stream-gap", f"stream_seq {body['stream_seq']!r} where {expected} was expected")
        if isinstance(body["stream_seq"], int):
            self._stream_next[stream] = body["stream_seq"] + 1

    def _check_signature(self, entry: EntryRecord, signature_ok: bool) -> None:
        if signature_ok:
            return
        pair = self._verifiers.get(entry.key_id)
        if pair is None:
            self._find(entry.seq, "unknown-key", f"signed with unpublished key {entry.key_id}")
        elif not pair[0].covers_seq(entry.seq):
            self._find(entry.seq, "key-not-valid", f"key {entry.key_id} was not valid at this seq")
        else:
            self._find(entry.seq, "bad-signature", "Ed25519 signature over the body does not verify")

    def _check_payload(self, entry: EntryRecord, payload: PayloadRecord | None, digest: str | None) -> None:
        if payload is None:
            self._find(entry.seq, "payload-missing", "no payload row and no erasure record")
            return
        if payload.payload is None or payload.salt is None:
            if payload.erased_at is None:
                self._find(entry.seq, "payload-missing", "payload removed without an erasure record")
            else:
                self.report.payloads_erased += 1
            return
        self.report.payloads_checked += 1
        if digest is None:
            return  # already reported as a malformed body
        if payload_digest_of_bytes(payload.salt, payload.payload) != digest:
            self._find(entry.seq, "payload-mismatch", "payload or salt does not match the signed payload_digest")

    def _check_nodes(
        self, seq: int, computed: Sequence[tuple[int, int, bytes]], stored: dict[tuple[int, int], bytes]
    ) -> None:
        for level, idx, digest in computed:
            self.report.nodes_checked += 1
            stored_hash = stored.pop((level, idx), None)
            if stored_hash is None:
                self._find(seq, "node-missing", f"tree node ({level}, {idx}) is not stored")
            elif stored_hash != digest:
                self._find(seq, "node-mismatch", f"stored tree node ({level}, {idx}) differs from the entries")
        for level, idx in stored:
            self._find(seq, "unexpected-node", f"stored tree node ({level}, {idx}) should not exist")

    def _check_checkpoints_at(self, size: int) -> None:
        root: bytes | None = None  # computed only when a checkpoint of this size exists
        while self._next_checkpoint < len(self._checkpoints) and self._checkpoints[self._next_checkpoint].size <= size:
            checkpoint = self._checkpoints[self._next_checkpoint]
            self._next_checkpoint += 1
            if checkpoint.size == size:
                root = root or self._tree.root()
                self._check_checkpoint(checkpoint, root)

    def _check_checkpoint(self, record: CheckpointRecord, root: bytes | None) -> bool:
        """Check one stored checkpoint (against ``root``, the entries' root at its size, when the log reaches
        it); whether its signature verified."""
        self.report.checkpoints_checked += 1
        seq = record.size - 1 if record.size else None
        verifiers = [
            v
            for key, v in self._verifiers.values()
            if (
                key.may_sign_checkpoint(record.size, record.created_at)
                if self._times_known
                else key.not_retired_before(record.size)
            )
        ]
        try:
            opened = open_note(record.note, verifiers)
            parsed = parse_checkpoint(opened.text)
        except VerificationError as exc:
            self._find(seq, "bad-checkpoint", f"checkpoint of size {record.size}: {exc}")
            return False
        if parsed.origin != self._origin or parsed.size != record.size or parsed.root != record.root:
            self._find(seq, "bad-checkpoint", f"checkpoint of size {record.size} disagrees with its stored columns")
        if root is not None and parsed.root != root:
            self._contradicted.append(record.size)
            self._find(
                seq,
                "root-mismatch",
                f"signed checkpoint of size {record.size} has root {base64.b64encode(parsed.root).decode()} "
                f"but the entries give {base64.b64encode(root).decode()}",
            )
        earlier = self._roots_by_size.setdefault(record.size, parsed.root)
        if earlier != parsed.root:
            self._find(seq, "fork", f"two signed checkpoints of size {record.size} have different roots")
        return True

    def _report_contradictions(self) -> None:
        """A validly signed checkpoint whose root the entries do not give, while every entry it covers checked
        clean (each entry is signed by the log key, chained to the one before): two signed histories of the same
        entries, a fork, whatever the sizes of the checkpoints involved."""
        first_bad_entry = min(
            (f.seq for f in self.report.findings if f.seq is not None and f.code not in _CHECKPOINT_CODES),
            default=None,
        )
        forks = {f.seq for f in self.report.findings if f.code == "fork"}
        for size in self._contradicted:
            if (first_bad_entry is None or first_bad_entry >= size) and size - 1 not in forks:
                self._find(
                    size - 1,
                    "fork",
                    f"the signed checkpoint of size {size} contradicts the signed entries 0..{size - 1}: "
                    "two histories of the log were signed",
                )

    def check_leftover_nodes(self, nodes: Iterable[tuple[int, NodeRecord]], unchecked: range = range(0)) -> None:
        """Stored tree nodes that end beyond the last entry should not exist.  Those that end at a seq in
        ``unchecked`` are skipped: nodes of appends that committed after the audit read its entries."""
        for end_seq, node in nodes:
            if end_seq in unchecked:
                continue
            self._find(end_seq, "unexpected-node", f"stored tree node ({node.level}, {node.idx}) lies beyond the log")

    def close(self) -> None:
        """Stop the signature workers (done by :meth:`finish`; call it when an audit ends early)."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Auditor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def finish(self, head: LogHead, stream_next_seqs: Mapping[str, int] | None = None) -> AuditReport:
        """Close the audit: checkpoints beyond the last entry mean the tail was cut; the head must agree.

        ``stream_next_seqs``, where given, is the stored next ``stream_seq`` of each stream: one missing or
        below what the entries give is a finding (the next append to that stream would repeat a stream_seq).
        """
        self.close()
        if stream_next_seqs is not None:
            self._check_stream_heads(stream_next_seqs)
        last_size = self._expected_seq
        for checkpoint in self._checkpoints[self._next_checkpoint :]:
            if self._check_checkpoint(checkpoint, None):  # only a valid signature proves entries were there
                self._find(
                    last_size,
                    "truncated",
                    f"a signed checkpoint covers {checkpoint.size} entries but the log ends at {last_size}: "
                    f"entries {last_size}..{checkpoint.size - 1} are missing",
                )
        self._report_contradictions()
        if head.size and head.appends_since_checkpoint == 0 and head.size not in {c.size for c in self._checkpoints}:
            # the head says the last append signed a checkpoint of its size: a copy that lost its checkpoints
            self._find(
                head.size - 1,
                "checkpoint-missing",
                f"no signed checkpoint of size {head.size} is stored, though the log head says the last append "
                "signed one",
            )
        if head.size != last_size:
            self._find(None, "head-mismatch", f"log head says size {head.size}, entries end at {last_size}")
        elif head.size and head.head_hash != self._prev:
            self._find(head.size - 1, "head-mismatch", "log head hash differs from the last entry's hash")
        if tuple(head.frontier) != tuple(self._tree.hashes):
            self._find(None, "head-mismatch", "stored right edge of the tree differs from the entries")
        self.report.root = self._tree.root().hex()
        self.report.findings.sort(key=lambda f: (f.seq is None, f.seq or 0))  # stable: per seq, in check order
        return self.report

    def _check_stream_heads(self, stored: Mapping[str, int]) -> None:
        # Appends that commit while the audit reads only raise the stored values (or add streams), so only a
        # stored value below what the entries give, or none at all, is a finding: the next append to that
        # stream would repeat a stream_seq.  One raised behind the ledger's back shows as a stream-gap later.
        for stream, expected in sorted(self._stream_next.items()):
            found = stored.get(stream)
            if found is None or found < expected:
                self._find(
                    None,
                    "stream-head-mismatch",
                    f"stream {stream!r}: the stored next stream_seq is {'missing' if found is None else found}, "
                    f"the entries give {expected}",
                )


_CHECKPOINT_CODES: Final = frozenset(
    {
        "root-mismatch",
        "fork",
        "bad-checkpoint",
        "truncated",
        "head-mismatch",
        "node-mismatch",
        "node-missing",
        "checkpoint-missing",
    }
)


def iter_batches(
    items: Iterator[tuple[EntryRecord, PayloadRecord | None]], size: int
) -> Iterator[list[tuple[EntryRecord, PayloadRecord | None]]]:
    batch: list[tuple[EntryRecord, PayloadRecord | None]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def raise_first(report: AuditReport) -> None:
    """The raising form of an audit: raise IntegrityError naming the first finding."""
    if report.findings:
        raise IntegrityError(str(report.findings[0]))
