"""The real ``ledger`` CLI, checked with nothing but ``tests/independent.py`` (written from the public specs).

One log is built once for the module through subprocesses: init, ~300 events in three appends (a file with a
JSON array, a JSON Lines file, stdin), a key rotation, more events.  Then every public output (verifier keys,
signed checkpoints, inclusion and consistency proofs, the entries themselves) must verify independently, and
tampered copies of those outputs must not.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import independent as iv

ORIGIN = "independent.bank.example/evidence"
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
FIRST_BATCHES = (120, 100, 80)  # array file, JSON Lines file, stdin
AFTER_ROTATION = 50
ROTATION_SEQ = sum(FIRST_BATCHES)  # the key.rotated entry
FINAL_SIZE = ROTATION_SEQ + 1 + AFTER_ROTATION
CHECKPOINT_SIZES = (1, 7, 220, ROTATION_SEQ + 1)  # and FINAL_SIZE from a plain `ledger checkpoint`
INCLUSIONS = ((0, 1), (6, 7), (5, 220), (ROTATION_SEQ, ROTATION_SEQ + 1), (0, FINAL_SIZE), (FINAL_SIZE - 1, FINAL_SIZE))
CONSISTENCIES = ((1, 7), (7, 220), (220, ROTATION_SEQ + 1), (ROTATION_SEQ + 1, FINAL_SIZE), (1, FINAL_SIZE))
CONSISTENCIES += ((FINAL_SIZE, FINAL_SIZE),)


# --- running the CLI ------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}


def run_cli(data_dir: Path, *args: str, stdin: str | None = None, expect: int | None = 0) -> str:
    """Run ``ledger --data-dir DATA_DIR ARGS`` in a subprocess; return stdout after checking the exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=data_dir.parent,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert expect is None or done.returncode == expect, (args, done.returncode, done.stderr)
    return done.stdout


def make_event(rng: random.Random, number: int) -> dict[str, Any]:
    control = ("IAM-01", "BCK-01", "PAT-01", "LOG-01")[number % 4]
    host = f"host-{rng.randrange(1, 40):03d}"
    minute = number % 60
    event: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "stream": f"controls/{control.lower()}/{host}",
        "type": "check.result",
        "occurred_at": f"2026-11-20T{10 + number // 60 % 10:02d}:{minute:02d}:00Z",
        "payload": {
            "control_id": control,
            "check_id": f"{control}-{number}",
            "status": ("pass", "fail", "error", "not_applicable")[number % 7 % 4],
            "framework_refs": ["DORA Art. 9(4)(d)"],
            "evidence": [],
            "observed_at": f"2026-11-20T{10 + number // 60 % 10:02d}:{minute:02d}:00Z",
            "summary": f"check {number} on {host} — résumé ✓",  # non-ASCII survives canonicalisation
        },
    }
    if number % 5 == 0:
        event["subjects"] = [f"emp-{10_000 + number}"]
    return event


@dataclass
class BuiltLog:
    data_dir: Path
    init_key_line: str
    keys_text: str
    keys_json: list[dict[str, Any]]
    events_jsonl: str
    current_checkpoint: str
    checkpoints: dict[int, str]
    inclusion: dict[tuple[int, int], dict[str, Any]]
    consistency: dict[tuple[int, int], dict[str, Any]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltLog:
    data_dir = tmp_path_factory.mktemp("independent") / "data"
    rng = random.Random(20261120)
    events = [make_event(rng, n) for n in range(sum(FIRST_BATCHES) + AFTER_ROTATION)]
    init = json.loads(run_cli(data_dir, "init", "--origin", ORIGIN, "--json"))

    first, second, third, after = (
        events[:120],
        events[120:220],
        events[220:ROTATION_SEQ],
        events[ROTATION_SEQ:],
    )
    array_file = data_dir.parent / "array.json"
    array_file.write_text(json.dumps(first, ensure_ascii=False), encoding="utf-8")
    lines_file = data_dir.parent / "lines.jsonl"
    lines_file.write_text("".join(json.dumps(e) + "\n" for e in second), encoding="utf-8")
    appended = run_cli(data_dir, "append", str(array_file), "--producer", "scanner-a", "--batch-size", "50")
    appended += run_cli(data_dir, "append", str(lines_file), "--producer", "scanner-b")
    appended += run_cli(data_dir, "append", "-", "--producer", "scanner-c", stdin=json.dumps(third))
    assert [line.split()[1] for line in appended.splitlines()] == [str(n) for n in range(ROTATION_SEQ)]
    run_cli(data_dir, "keys", "rotate", "--reason", "independent verification test")
    run_cli(data_dir, "append", "-", stdin="\n".join(json.dumps(e) for e in after) + "\n")

    current_checkpoint = run_cli(data_dir, "checkpoint")

    # Everything else only reads, or signs a checkpoint for a size not stored yet: fetch it all in parallel,
    # as several auditors would, to keep the module fast.
    def cli(*args: str) -> str:
        return run_cli(data_dir, *args)

    def inclusion(pair: tuple[int, int]) -> dict[str, Any]:
        return dict(json.loads(cli("proof", "inclusion", str(pair[0]), "--size", str(pair[1]))))

    def consistency(pair: tuple[int, int]) -> dict[str, Any]:
        return dict(json.loads(cli("proof", "consistency", str(pair[0]), str(pair[1]))))

    with ThreadPoolExecutor(max_workers=4) as pool:
        keys_text = pool.submit(cli, "public-key")
        keys_json = pool.submit(cli, "public-key", "--json")
        events_jsonl = pool.submit(cli, "events", "--format", "jsonl")
        notes = {size: pool.submit(cli, "checkpoint", "--size", str(size)) for size in CHECKPOINT_SIZES}
        inclusions = {pair: pool.submit(inclusion, pair) for pair in INCLUSIONS}
        consistencies = {pair: pool.submit(consistency, pair) for pair in CONSISTENCIES}
        return BuiltLog(
            data_dir=data_dir,
            init_key_line=init["verifier_key"],
            keys_text=keys_text.result(),
            keys_json=json.loads(keys_json.result()),
            events_jsonl=events_jsonl.result(),
            current_checkpoint=current_checkpoint,
            checkpoints={**{size: note.result() for size, note in notes.items()}, FINAL_SIZE: current_checkpoint},
            inclusion={pair: proof.result() for pair, proof in inclusions.items()},
            consistency={pair: proof.result() for pair, proof in consistencies.items()},
        )


@pytest.fixture(scope="module")
def keys(built: BuiltLog) -> list[iv.VerifierKey]:
    return [iv.parse_verifier_key(line) for line in built.keys_text.splitlines()]


@pytest.fixture(scope="module")
def checkpoints(built: BuiltLog, keys: list[iv.VerifierKey]) -> dict[int, iv.Checkpoint]:
    opened = {}
    for size, note in built.checkpoints.items():
        checkpoint, _ = iv.open_checkpoint(note, keys, origin=ORIGIN)
        assert checkpoint.size == size
        opened[size] = checkpoint
    return opened


@pytest.fixture(scope="module")
def entries(built: BuiltLog) -> list[dict[str, Any]]:
    return iv.parse_jsonl(built.events_jsonl)


def _validity(built: BuiltLog) -> dict[str, iv.KeyValidity]:
    return {k["key_id"]: iv.KeyValidity(k["valid_from_seq"], k["valid_until_seq"]) for k in built.keys_json}


# --- self-test of the independent verifier against published vectors ------------------------------------


def _reference_path(index: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]), straight from the recursive definition."""
    n = len(hashes)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if index < k:
        return [*_reference_path(index, hashes[:k]), iv.root_from_leaf_hashes(hashes[k:])]
    return [*_reference_path(index - k, hashes[k:]), iv.root_from_leaf_hashes(hashes[:k])]


def _reference_subproof(m: int, hashes: list[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(hashes)
    if m == n:
        return [] if complete else [iv.root_from_leaf_hashes(hashes)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*_reference_subproof(m, hashes[:k], complete), iv.root_from_leaf_hashes(hashes[k:])]
    return [*_reference_subproof(m - k, hashes[k:], False), iv.root_from_leaf_hashes(hashes[:k])]


def test_verifier_passes_rfc6962_vectors() -> None:
    vectors = json.loads((VECTORS / "rfc6962_tree.json").read_text())
    leaves = [iv.leaf_hash(bytes.fromhex(leaf)) for leaf in vectors["leaves"]]
    roots = [bytes.fromhex(root) for root in vectors["roots"]]
    for n, root in enumerate(roots):
        assert iv.root_from_leaf_hashes(leaves[:n]) == root
    for case in vectors["inclusion"]:
        path = [bytes.fromhex(h) for h in case["proof"]]
        iv.verify_inclusion(case["index"], case["size"], leaves[case["index"]], path, roots[case["size"]])
    for case in vectors["consistency"]:
        path = [bytes.fromhex(h) for h in case["proof"]]
        old, new = case["old_size"], case["new_size"]
        iv.verify_consistency(old, new, path, roots[old], roots[new])


def test_verifier_agrees_with_rfc_definitions_and_rejects_wrong_proofs() -> None:
    """Every proof of small trees from the RFC's recursive definitions verifies; every altered one fails."""
    leaves = [iv.leaf_hash(n.to_bytes(2, "big")) for n in range(20)]
    for size in range(1, 21):
        root = iv.root_from_leaf_hashes(leaves[:size])
        for index in range(size):
            path = _reference_path(index, leaves[:size])
            iv.verify_inclusion(index, size, leaves[index], path, root)
            # (A wrong tree size alone is not always caught by the algorithm: the signed checkpoint binds it.)
            wrong_cases = [
                (index, size, leaves[index], [*path, root]),
                (index, size, leaves[(index + 1) % 20], path),
            ]
            if size > 1:
                wrong_cases.append((index, size, leaves[index], path[:-1]))
                wrong_cases.append(((index + 1) % size, size, leaves[index], path))
            for wrong in wrong_cases:
                with pytest.raises(iv.VerificationFailure):
                    iv.verify_inclusion(*wrong, root)
        for old in range(1, size + 1):
            old_root = iv.root_from_leaf_hashes(leaves[:old])
            proof = _reference_subproof(old, leaves[:size], True)
            iv.verify_consistency(old, size, proof, old_root, root)
            if old == size:
                continue
            for wrong_args in [
                (old, size, proof[:-1], old_root, root),
                (old, size, [*proof, root], old_root, root),
                (old, size, proof, root, root),
                (old, size, proof, old_root, old_root),
                (old + 1, size, proof, old_root, root),
            ]:
                with pytest.raises(iv.VerificationFailure):
                    iv.verify_consistency(*wrong_args)


def test_verifier_opens_the_sumdb_reference_note() -> None:
    vector = json.loads((VECTORS / "sumdb_note.json").read_text())["sumdb_note"]
    key = iv.parse_verifier_key(vector["verifier_key"])
    assert (key.name, key.key_id_hex) == (vector["key_name"], vector["key_id"])
    assert iv.open_note(vector["signed_note"], [key]) == (vector["text"], [key])
    assert iv.open_note(vector["doubly_signed_note"], [key]) == (vector["text"], [key])  # unknown signer ignored
    with pytest.raises(iv.VerificationFailure):
        iv.open_note(vector["signed_note"].replace("problem,", "problem;"), [key])


# --- the real CLI outputs verify --------------------------------------------------------------------------


def test_verifier_keys_parse_and_key_ids_match(built: BuiltLog, keys: list[iv.VerifierKey]) -> None:
    assert len(keys) == 2  # the rotated key stays published
    for key, published in zip(keys, built.keys_json, strict=True):
        assert key.name == ORIGIN
        assert key.key_id_hex == published["key_id"]
        assert iv.compute_key_id(key.name, key.public_key) == key.key_id
    active, old = keys
    assert built.keys_text.splitlines()[1] == built.init_key_line  # the key from init, now second
    assert built.keys_json[0]["valid_until_seq"] is None  # active key first
    assert built.keys_json[1]["valid_until_seq"] == ROTATION_SEQ + 1 == built.keys_json[0]["valid_from_seq"]
    assert active != old


def test_current_checkpoint_verifies_under_the_active_key(built: BuiltLog, keys: list[iv.VerifierKey]) -> None:
    assert built.current_checkpoint.endswith("\n")
    checkpoint, verified = iv.open_checkpoint(built.current_checkpoint, keys[:1], origin=ORIGIN)
    assert verified == [keys[0]]
    assert checkpoint.size == FINAL_SIZE
    assert checkpoint.extensions == ()
    with pytest.raises(iv.VerificationFailure):  # the retired key did not sign the newest checkpoint
        iv.open_checkpoint(built.current_checkpoint, keys[1:], origin=ORIGIN)


def test_rotation_checkpoint_is_signed_by_both_keys(built: BuiltLog, keys: list[iv.VerifierKey]) -> None:
    _, verified = iv.open_checkpoint(built.checkpoints[ROTATION_SEQ + 1], keys, origin=ORIGIN)
    assert sorted(k.key_id for k in verified) == sorted(k.key_id for k in keys)


def test_checkpoint_roots_match_the_entries(
    checkpoints: dict[int, iv.Checkpoint], entries: list[dict[str, Any]]
) -> None:
    """The signed roots are the RFC 9162 MTH of the entry hashes, recomputed from the bodies alone."""
    leaf_hashes = [iv.leaf_hash(line["body"].encode()) for line in entries]
    for size, checkpoint in checkpoints.items():
        assert iv.root_from_leaf_hashes(leaf_hashes[:size]) == checkpoint.root, size


def test_inclusion_proofs_verify(built: BuiltLog, checkpoints: dict[int, iv.Checkpoint]) -> None:
    for (seq, size), proof in built.inclusion.items():
        assert (proof["index"], proof["tree_size"]) == (seq, size)
        iv.verify_inclusion_json(proof, checkpoints[size])


def test_inclusion_leaf_is_the_entry_hash(built: BuiltLog, entries: list[dict[str, Any]]) -> None:
    for (seq, _), proof in built.inclusion.items():
        assert proof["leaf_hash"] == entries[seq]["hash"]


def test_consistency_proofs_verify(built: BuiltLog, checkpoints: dict[int, iv.Checkpoint]) -> None:
    for (first, second), proof in built.consistency.items():
        iv.verify_consistency_json(proof, checkpoints[first], checkpoints[second])


def test_every_entry_verifies_with_chain_links(
    built: BuiltLog, keys: list[iv.VerifierKey], entries: list[dict[str, Any]]
) -> None:
    checked = iv.check_entries(entries, keys, origin=ORIGIN, validity=_validity(built))
    assert len(checked) == FINAL_SIZE
    assert checked[0].body["prev"] == "0" * 64
    rotation = checked[ROTATION_SEQ]
    assert rotation.body["type"] == "key.rotated"
    key_ids = [line["key_id"] for line in entries]
    assert set(key_ids[: ROTATION_SEQ + 1]) == {keys[1].key_id_hex}  # old key signs up to the announcement
    assert set(key_ids[ROTATION_SEQ + 1 :]) == {keys[0].key_id_hex}
    subjects = [entry.body["subjects"] for entry in checked]
    assert sum(1 for s in subjects if s) == len(range(0, sum(FIRST_BATCHES) + AFTER_ROTATION, 5))
    assert "emp-" not in built.events_jsonl  # people appear only as HMAC refs


# --- tampered outputs are rejected -----------------------------------------------------------------------


def _flip(text: str, position: int) -> str:
    return text[:position] + chr(ord(text[position]) ^ 0x01) + text[position + 1 :]


def _flip_hex(value: str, byte_index: int) -> str:
    raw = bytearray(bytes.fromhex(value))
    raw[byte_index] ^= 0x01
    return raw.hex()


def test_flipped_byte_in_a_proof_hash_is_rejected(built: BuiltLog, checkpoints: dict[int, iv.Checkpoint]) -> None:
    for (seq, size), proof in built.inclusion.items():
        for position in range(len(proof["hashes"])):
            hashes = list(proof["hashes"])
            hashes[position] = _flip_hex(hashes[position], position % 32)
            with pytest.raises(iv.VerificationFailure):
                iv.verify_inclusion_json({**proof, "hashes": hashes}, checkpoints[size])
        with pytest.raises(iv.VerificationFailure):
            iv.verify_inclusion_json({**proof, "leaf_hash": _flip_hex(proof["leaf_hash"], 31)}, checkpoints[size])
        if size > 1:
            with pytest.raises(iv.VerificationFailure):
                iv.verify_inclusion_json({**proof, "index": (seq + 1) % size}, checkpoints[size])
    for (first, second), proof in built.consistency.items():
        for position in range(len(proof["hashes"])):
            hashes = list(proof["hashes"])
            hashes[position] = _flip_hex(hashes[position], 0)
            with pytest.raises(iv.VerificationFailure):
                iv.verify_consistency_json({**proof, "hashes": hashes}, checkpoints[first], checkpoints[second])


def test_proof_against_a_checkpoint_of_another_size_is_rejected(
    built: BuiltLog, checkpoints: dict[int, iv.Checkpoint]
) -> None:
    proof = built.inclusion[(5, 220)]
    other = checkpoints[ROTATION_SEQ + 1]
    with pytest.raises(iv.VerificationFailure):
        iv.verify_inclusion_json(proof, other)
    with pytest.raises(iv.VerificationFailure):
        iv.verify_inclusion_json({**proof, "tree_size": other.size}, other)
    with pytest.raises(iv.VerificationFailure):
        iv.verify_consistency_json(built.consistency[(7, 220)], checkpoints[7], other)


def test_flipped_byte_in_the_checkpoint_note_is_rejected(built: BuiltLog, keys: list[iv.VerifierKey]) -> None:
    note = built.current_checkpoint
    text_end = note.index("\n\n") + 2
    signature_line = note[text_end:]
    name_end = text_end + len("— ") + len(ORIGIN)
    positions = [*range(text_end), text_end, name_end - 1, name_end + 2, name_end + 10, name_end + 40, len(note) - 1]
    assert signature_line.startswith("— ")
    for position in positions:
        with pytest.raises(iv.VerificationFailure):
            iv.open_checkpoint(_flip(note, position), keys, origin=ORIGIN)
    raw = bytearray(note.encode())
    raw[raw.index(b"\n\n") + 2] ^= 0x01  # inside the UTF-8 em dash: no longer UTF-8
    with pytest.raises(iv.VerificationFailure):
        iv.open_checkpoint(bytes(raw), keys, origin=ORIGIN)


def test_checkpoint_with_a_foreign_origin_or_key_is_rejected(built: BuiltLog, keys: list[iv.VerifierKey]) -> None:
    with pytest.raises(iv.VerificationFailure):
        iv.open_checkpoint(built.current_checkpoint, keys, origin="other.example/log")
    vector = json.loads((VECTORS / "sumdb_note.json").read_text())["sumdb_note"]
    with pytest.raises(iv.VerificationFailure):
        iv.open_checkpoint(built.current_checkpoint, [iv.parse_verifier_key(vector["verifier_key"])])


def test_tampered_verifier_key_is_rejected(built: BuiltLog) -> None:
    line = built.keys_text.splitlines()[0]
    name, key_id, key = line.split("+", 2)
    tampered_lines = [
        f"{name}+{_flip(key_id, 0)}+{key}",
        f"{_flip(name, 0)}+{key_id}+{key}",
        f"{name}+{key_id}+{_flip(key, 5)}",
        f"{name}+{key_id}+{key[:-4]}",
        f"{name}+{key_id}",
    ]
    if key_id.upper() != key_id:  # a key id of digits only has no upper-case form to tamper with
        tampered_lines.append(f"{name}+{key_id.upper()}+{key}")
    for tampered in tampered_lines:
        with pytest.raises(iv.VerificationFailure):
            iv.parse_verifier_key(tampered)


def _tampered_entries(entries: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    def replaced(position: int, **changes: Any) -> list[dict[str, Any]]:
        copy = [dict(line) for line in entries]
        copy[position].update(changes)
        return copy

    body = entries[42]["body"]
    yield "flipped byte in a body", replaced(42, body=_flip(body, body.index('"stream":') + 12))
    yield (
        "flipped byte in a body, hash recomputed",
        replaced(
            42,
            body=_flip(body, body.index('"stream":') + 12),
            hash=iv.leaf_hash(_flip(body, body.index('"stream":') + 12).encode()).hex(),
        ),
    )
    spaced = json.dumps(json.loads(body), sort_keys=True)  # same JSON, not canonical bytes
    yield "non-canonical body", replaced(42, body=spaced, hash=iv.leaf_hash(spaced.encode()).hex())
    yield "flipped hash", replaced(42, hash=_flip_hex(entries[42]["hash"], 3))
    signature = bytearray(base64.b64decode(entries[42]["signature"]))
    signature[10] ^= 0x01
    yield "flipped signature", replaced(42, signature=base64.b64encode(bytes(signature)).decode())
    yield "signature by the other key", replaced(42, key_id=entries[-1]["key_id"])
    yield "unknown key id", replaced(42, key_id="00000000")
    yield "entry removed", entries[:42] + entries[43:]
    yield "entries swapped", [*entries[:42], entries[43], entries[42], *entries[44:]]
    yield "seq renumbered", replaced(42, seq=43)


def test_tampered_entries_are_rejected(
    built: BuiltLog, keys: list[iv.VerifierKey], entries: list[dict[str, Any]]
) -> None:
    validity = _validity(built)
    for what, tampered in _tampered_entries(entries):
        with pytest.raises(iv.VerificationFailure):
            iv.check_entries(tampered, keys, origin=ORIGIN, validity=validity)
            pytest.fail(f"accepted: {what}")


def test_entry_signed_outside_its_key_validity_is_rejected(
    built: BuiltLog, keys: list[iv.VerifierKey], entries: list[dict[str, Any]]
) -> None:
    validity = _validity(built)
    shifted = {key_id: iv.KeyValidity(period.from_seq + 1, period.until_seq) for key_id, period in validity.items()}
    with pytest.raises(iv.VerificationFailure, match=r"seq 0: key .* was not valid"):
        iv.check_entries(entries, keys, origin=ORIGIN, validity=shifted)
    with pytest.raises(iv.VerificationFailure, match="not RFC 8785 canonical"):
        spaced = json.dumps(json.loads(entries[0]["body"]), sort_keys=True)
        iv.check_entries([{**entries[0], "body": spaced}], keys, origin=ORIGIN)


def test_ledger_audit_agrees_with_the_independent_verifier(built: BuiltLog) -> None:
    report = json.loads(run_cli(built.data_dir, "verify", "--json", expect=None))
    assert report["findings"] == []
    assert report["ok"] is True
    assert report["root"] == iv.parse_checkpoint(iv.split_note(built.current_checkpoint)[0]).root.hex()
