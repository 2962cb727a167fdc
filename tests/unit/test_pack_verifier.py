"""The offline evidence-pack verifier (ledger/packs/verifier.py) against packs built from FORMAT.md alone.

A valid pack verifies, as a module, as the script and as the ``verify.py`` copied into the pack; every tamper
is caught by the check it concerns with a specific message; the range-proof recursion agrees with a plain
full-tree MTH; and no input, however malformed, makes the verifier raise anything but a reported failure.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.packs import verifier
from ledger.packs.verifier import Check, FormatError, PackError, Report, verify_pack
from tests import packs_fixture as fx

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "ledger" / "packs" / "verifier.py"
VECTORS = ROOT / "tests" / "vectors"
FIRST, LAST, SIZE = 10, 25, 40
HIDDEN_BEFORE_DISCLOSED = 16  # hidden; seq 17 is disclosed
ERASED = 14


def disclosed(seq: int) -> bool:
    return seq % 3 != 1  # in 10..25: 10, 13, 16, 19, 22, 25 hidden


@pytest.fixture(scope="module")
def log() -> fx.Log:
    return fx.Log(SIZE)


@pytest.fixture
def pack(log: fx.Log) -> fx.Pack:
    return log.export(
        FIRST,
        LAST,
        disclosed=disclosed,
        erased={ERASED},
        auditor_size=8,
        witness=fx.Key("witness.example/w1", sig_type=fx.SIG_TYPE_COSIGNATURE),
    )


def run(pack: fx.Pack, *keys: str) -> Report:
    return verify_pack(pack.zip_bytes(), list(keys) or [pack.log.key.verifier_key])


def failures(report: Report) -> dict[str, list[Check]]:
    found: dict[str, list[Check]] = {}
    for check in report.failed:
        found.setdefault(check.name, []).append(check)
    return found


def messages(report: Report) -> list[str]:
    return [check.message for check in report.failed]


def run_script(*args: str | Path, cwd: Path | None = None, script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


# --- a valid pack --------------------------------------------------------------------------------------------


def test_valid_pack_verifies(pack: fx.Pack) -> None:
    report = run(pack)
    assert report.ok, report.text()
    assert report.verdict == "VALID"
    names = [check.name for check in report.checks]
    assert names == [
        "manifest",
        "manifest.sig",
        "files",
        "content_digest",
        "keys",
        "entries.completeness",
        "entries.hashes",
        "entries.bodies",
        "entries.signatures",
        "entries.payloads",
        "entries.chain",
        "range_proof",
        "checkpoint",
        "inclusion_proofs",
        "consistency",
        "pdf",
    ]
    by_name = {check.name: check.message for check in report.checks}
    assert f"1 erased (seq {ERASED})" in by_name["entries.payloads"]
    assert "witness.example/w1+" in by_name["checkpoint"]  # the cosignature is listed, not checked
    assert f"key {fx.ORIGIN}+{pack.log.key.key_id.hex()} (trusted) signed seq 11-12" in by_name["entries.signatures"]
    assert report.text().endswith("VERDICT: VALID\n")


def test_valid_pack_cli_exit_0(pack: fx.Pack, tmp_path: Path) -> None:
    path = pack.write(tmp_path / "pack.zip")
    result = run_script(path, "--key", pack.log.key.verifier_key)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "VERDICT: VALID"
    assert all(line.startswith("PASS  ") for line in lines[:-1])
    assert result.stderr == ""


def test_cli_json(pack: fx.Pack, tmp_path: Path) -> None:
    path = pack.write(tmp_path / "pack.zip")
    result = run_script(path, "--key", pack.log.key.verifier_key, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["verdict"] == "VALID"
    assert {"name", "ok", "message", "seq", "file"} <= set(document["checks"][0])

    change_pdf_byte(pack)
    result = run_script(pack.write(tmp_path / "bad.zip"), "--key", pack.log.key.verifier_key, "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["verdict"] == "INVALID"
    [failed] = [check for check in document["checks"] if not check["ok"]]
    assert failed == {
        "name": "files",
        "ok": False,
        "message": "file report.pdf: SHA-256 differs from the manifest",
        "seq": None,
        "file": "report.pdf",
    }


def test_embedded_verify_py_runs_alone(pack: fx.Pack, tmp_path: Path) -> None:
    """The copy in the pack runs from an empty directory, without the repository on the path."""
    path = pack.write(tmp_path / "pack.zip")
    alone = tmp_path / "auditor"
    alone.mkdir()
    with zipfile.ZipFile(path) as archive:
        (alone / "verify.py").write_bytes(archive.read("verify.py"))
    result = run_script("../pack.zip", "--key", pack.log.key.verifier_key, cwd=alone, script=alone / "verify.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith("VERDICT: VALID\n")


def test_verifier_imports_nothing_from_the_repository() -> None:
    source = SCRIPT.read_text()
    assert "from ledger" not in source
    assert "import ledger" not in source
    allowed = set(sys.stdlib_module_names) | {"cryptography"}
    for line in source.splitlines():
        if line.startswith(("import ", "from ")):
            module = line.split()[1].split(".")[0]
            assert module in allowed or module == "__future__", line


def test_rotated_keys_pack_reports_which_key_signed_what() -> None:
    old, new = fx.Key(fx.ORIGIN), fx.Key(fx.ORIGIN)
    log = fx.Log(30, keys=[(old, 0), (new, 12)])
    pack = log.export(5, 20, disclosed=lambda seq: seq % 2 == 0, auditor_size=10)
    report = verify_pack(pack.zip_bytes(), [new.verifier_key, old.verifier_key])
    assert report.ok, report.text()
    signatures = next(check.message for check in report.checks if check.name == "entries.signatures")
    assert f"key {fx.ORIGIN}+{old.key_id.hex()} (trusted) signed seq 6, 8, 10" in signatures
    assert f"key {fx.ORIGIN}+{new.key_id.hex()} (trusted) signed seq 12, 14, 16, 18, 20" in signatures

    # trusting only the current key: keys.json (covered by the signed manifest) vouches for the old one, which
    # signed the entries before the rotation and the auditor's earlier checkpoint of size 10
    report = verify_pack(pack.zip_bytes(), [new.verifier_key])
    assert report.ok, report.text()
    by_name = {check.name: check.message for check in report.checks}
    assert f"key {fx.ORIGIN}+{old.key_id.hex()} signed seq 6, 8, 10;" in by_name["entries.signatures"]
    assert f"size 10 (signed by {fx.ORIGIN}+{old.key_id.hex()})" in by_name["consistency"]


def test_key_outside_its_validity(log: fx.Log) -> None:
    old, new = fx.Key(fx.ORIGIN), fx.Key(fx.ORIGIN)
    rotated = fx.Log(20, keys=[(old, 0), (new, 10)])
    pack = rotated.export(5, 15)
    keys = json.loads(pack.members["keys.json"])
    keys[0]["valid_until_seq"] = 8  # the old key signed seq 8 and 9 too
    pack.members["keys.json"] = fx.canonical(keys)
    pack.finalize()
    report = verify_pack(pack.zip_bytes(), [new.verifier_key])
    assert messages(report) == [
        f"seq 8: key {old.key_id.hex()} is not valid at this seq (valid for seq 0 to 7)",
        f"seq 9: key {old.key_id.hex()} is not valid at this seq (valid for seq 0 to 7)",
    ]


# --- the tamper matrix ---------------------------------------------------------------------------------------


def change_body_byte(pack: fx.Pack) -> None:
    line = pack.line(12)
    assert fx.PRODUCER in line["body"]
    line["body"] = line["body"].replace(fx.PRODUCER, fx.PRODUCER.replace("example", "exbmple"))
    pack.replace_line(12, line)


def change_payload_byte(pack: fx.Pack) -> None:
    line = pack.line(15)
    line["payload"]["payload"] = line["payload"]["payload"].replace("IAM-01", "IAM-02", 1)
    pack.replace_line(15, line)


def change_hidden_hash(pack: fx.Pack) -> None:
    line = pack.line(HIDDEN_BEFORE_DISCLOSED)
    assert line["disclosed"] is False
    digits = line["hash"]
    line["hash"] = ("1" if digits[0] != "1" else "2") + digits[1:]
    pack.replace_line(HIDDEN_BEFORE_DISCLOSED, line)


def drop_entry(pack: fx.Pack) -> None:
    pack.set_entry_lines([line for line in pack.entry_lines() if line["seq"] != 17])


def swap_entries(pack: fx.Pack) -> None:
    lines = pack.entry_lines()
    i = next(index for index, line in enumerate(lines) if line["seq"] == 15)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    pack.set_entry_lines(lines)


def duplicate_entry(pack: fx.Pack) -> None:
    lines = pack.entry_lines()
    pack.set_entry_lines([*lines[:6], lines[5], *lines[6:]])


def resign_checkpoint_with_another_key(pack: fx.Pack) -> None:
    other = fx.Key(fx.ORIGIN)  # same name, another key: an unknown signer
    pack.members["checkpoint.txt"] = pack.log.checkpoint(SIZE, signers=[other]).encode()


def change_inclusion_proof(pack: fx.Pack) -> None:
    lines = [json.loads(line) for line in pack.members["proofs/inclusion.jsonl"].splitlines()]
    lines[0]["hashes"][0] = hashlib.sha256(b"forged").hexdigest()
    pack.members["proofs/inclusion.jsonl"] = b"".join(fx.canonical(line) + b"\n" for line in lines)


def change_range_node(pack: fx.Pack) -> None:
    proof = json.loads(pack.members["proofs/range.json"])
    proof["nodes"][-1]["hash"] = hashlib.sha256(b"forged").hexdigest()
    pack.members["proofs/range.json"] = fx.canonical(proof)


def drop_range_node(pack: fx.Pack) -> None:
    proof = json.loads(pack.members["proofs/range.json"])
    proof["nodes"] = proof["nodes"][1:]
    pack.members["proofs/range.json"] = fx.canonical(proof)


def change_consistency_proof(pack: fx.Pack) -> None:
    proof = json.loads(pack.members["proofs/consistency.json"])
    proof["hashes"][-1] = hashlib.sha256(b"forged").hexdigest()
    pack.members["proofs/consistency.json"] = fx.canonical(proof)


def forge_auditor_checkpoint(pack: fx.Pack) -> None:
    pack.members["proofs/auditor-checkpoint.txt"] = pack.log.checkpoint(8, signers=[fx.Key(fx.ORIGIN)]).encode()


def resign_body_with_wrong_seq(pack: fx.Pack) -> None:
    """An insider with the log key re-signs seq 12's body claiming seq 99: hash and signature verify."""
    line = pack.line(12)
    body = json.loads(line["body"])
    body["seq"] = 99
    entry = pack.log.sign_body(body)
    line.update(body=entry.body.decode(), hash=entry.hash.hex(), sig=base64.b64encode(entry.sig).decode())
    pack.replace_line(12, line)


def change_body_log(pack: fx.Pack) -> None:
    line = pack.line(11)
    body = json.loads(line["body"])
    body["log"] = "another.example/log"
    entry = pack.log.sign_body(body)
    line.update(body=entry.body.decode(), hash=entry.hash.hex(), sig=base64.b64encode(entry.sig).decode())
    pack.replace_line(11, line)


def change_signature(pack: fx.Pack) -> None:
    line = pack.line(20)
    sig = bytearray(base64.b64decode(line["sig"]))
    sig[0] ^= 1
    line["sig"] = base64.b64encode(bytes(sig)).decode()
    pack.replace_line(20, line)


def unknown_key_id(pack: fx.Pack) -> None:
    line = pack.line(20)
    line["key"] = "00000000"
    pack.replace_line(20, line)


def change_pdf_byte(pack: fx.Pack) -> None:
    pack.members["report.pdf"] = pack.members["report.pdf"].replace(b"Evidence", b"Evidencf")


def pdf_not_a_pdf(pack: fx.Pack) -> None:
    pack.members["report.pdf"] = b"Not a PDF at all\n"


def edit_content_digest(pack: fx.Pack) -> None:
    pack.manifest["content_digest"] = hashlib.sha256(b"other").hexdigest()


# (name, tamper, how the pack is resealed, {check name: message}) -- "all" lists every failure expected.
#   reseal "manifest": an insider with the log key rebuilds and re-signs the manifest (isolates the check)
#   reseal "sign": the manifest is re-signed as edited (content_digest left as set)
#   reseal "none": nobody re-signs anything
TAMPERS: list[tuple[str, Callable[[fx.Pack], None], str, dict[str, str]]] = [
    (
        "body byte",
        change_body_byte,
        "manifest",
        {
            "entries.hashes": "seq 12: hash does not match body",
            "entries.signatures": "seq 12: signature does not verify",
        },
    ),
    (
        "body byte, manifest not re-signed",
        change_body_byte,
        "none",
        {
            "files": "file entries.jsonl: SHA-256 differs from the manifest",
            "entries.hashes": "seq 12: hash does not match body",
            "entries.signatures": "seq 12: signature does not verify",
        },
    ),
    (
        "payload byte",
        change_payload_byte,
        "manifest",
        {"entries.payloads": "seq 15: payload does not match payload_digest"},
    ),
    (
        "hidden entry hash",
        change_hidden_hash,
        "manifest",
        {
            "entries.chain": f"seq {HIDDEN_BEFORE_DISCLOSED + 1}: prev does not match the hash of seq "
            f"{HIDDEN_BEFORE_DISCLOSED}",
            "range_proof": "checkpoint: root does not match the range proof",
        },
    ),
    (
        "report.pdf byte",
        change_pdf_byte,
        "none",
        {"files": "file report.pdf: SHA-256 differs from the manifest"},
    ),
    ("report.pdf not a PDF", pdf_not_a_pdf, "manifest-keep-pdf", {"pdf": "report.pdf: does not start with %PDF-"}),
    (
        "entry dropped",
        drop_entry,
        "manifest",
        {
            "entries.completeness": "entries.jsonl: seq 17 is missing",
            "entries.chain": "seq 18: prev cannot be checked: seq 17 is missing or its hash is malformed",
            "range_proof": "the range proof cannot be computed: the leaf hash of seq 17 is not available",
            "inclusion_proofs": "seq 17: inclusion proof for an entry not disclosed in entries.jsonl",
        },
    ),
    (
        "entries swapped",
        swap_entries,
        "manifest",
        {"entries.completeness": "entries.jsonl: seq 15 is out of order (line 7, after seq 16)"},
    ),
    (
        "entry duplicated",
        duplicate_entry,
        "manifest",
        {"entries.completeness": "entries.jsonl: seq 15 appears 2 times"},
    ),
    (
        "checkpoint re-signed by another key",
        resign_checkpoint_with_another_key,
        "manifest",
        {"checkpoint": "checkpoint: not signed by a trusted key or a key of keys.json"},
    ),
    (
        "manifest scope edited, not re-signed",
        lambda p: p.manifest["scope"].update(streams=["controls/iam-01/host-000"]),
        "write-only",
        {"manifest.sig": "manifest.sig: manifest.json does not match the signed SHA-256"},
    ),
    (
        "content_digest edited",
        edit_content_digest,
        "sign",
        {"content_digest": "manifest.json: content_digest does not match the files list"},
    ),
    (
        "inclusion proof",
        change_inclusion_proof,
        "manifest",
        {"inclusion_proofs": "seq 11: inclusion proof does not lead to the checkpoint root"},
    ),
    (
        "range node changed",
        change_range_node,
        "manifest",
        {"range_proof": "checkpoint: root does not match the range proof"},
    ),
    ("range node dropped", drop_range_node, "manifest", {"range_proof": "proofs/range.json: node [0, 8) is missing"}),
    (
        "consistency proof",
        change_consistency_proof,
        "manifest",
        {"consistency": "proofs/consistency.json: does not lead to the checkpoint root"},
    ),
    (
        "auditor checkpoint by another key",
        forge_auditor_checkpoint,
        "manifest",
        {"consistency": "proofs/auditor-checkpoint.txt: not signed by a trusted key or a key of keys.json"},
    ),
    (
        "body re-signed with another seq",
        resign_body_with_wrong_seq,
        "manifest",
        {
            "entries.bodies": "seq 12: body seq is 99, not the line's seq",
            "inclusion_proofs": "seq 12: inclusion proof does not lead to the checkpoint root",
            "range_proof": "checkpoint: root does not match the range proof",
        },
    ),
    (
        "body re-signed with another log",
        change_body_log,
        "manifest",
        {
            "entries.bodies": "seq 11: body log is 'another.example/log', not the manifest origin",
            "entries.chain": "seq 12: prev does not match the hash of seq 11",
            "inclusion_proofs": "seq 11: inclusion proof does not lead to the checkpoint root",
            "range_proof": "checkpoint: root does not match the range proof",
        },
    ),
    ("signature byte", change_signature, "manifest", {"entries.signatures": "seq 20: signature does not verify"}),
    ("unknown key id", unknown_key_id, "manifest", {"entries.signatures": "seq 20: key 00000000 is not in keys.json"}),
]


@pytest.mark.parametrize(("tamper", "reseal", "expected"), [t[1:] for t in TAMPERS], ids=[t[0] for t in TAMPERS])
def test_tamper_is_caught_with_its_message(
    pack: fx.Pack, tamper: Callable[[fx.Pack], None], reseal: str, expected: dict[str, str]
) -> None:
    tamper(pack)
    if reseal == "manifest":
        pack.finalize()
    elif reseal == "manifest-keep-pdf":
        pack.finalize(pdf=False)
    elif reseal == "sign":
        pack.sign_manifest()
    elif reseal == "write-only":
        signature = pack.members["manifest.sig"]
        pack.sign_manifest()
        pack.members["manifest.sig"] = signature
    report = run(pack)
    assert not report.ok
    found = failures(report)
    assert set(found) == set(expected), report.text()
    for name, message in expected.items():
        assert message in [check.message for check in found[name]], report.text()
    assert report.text().endswith(f"VERDICT: INVALID ({len(report.failed)} failed)\n")


def test_failures_name_the_seq_and_file(pack: fx.Pack) -> None:
    change_body_byte(pack)
    pack.finalize()
    report = run(pack)
    assert {(check.seq, check.file) for check in report.failed} == {(12, "entries.jsonl")}


def test_wrong_key(pack: fx.Pack) -> None:
    report = run(pack, fx.Key(fx.ORIGIN).verifier_key)
    found = failures(report)
    assert set(found) == {"manifest.sig", "keys"}
    assert found["manifest.sig"][0].message == "manifest.sig: not signed by a trusted key"
    assert found["keys"][0].message == "keys.json: contains no trusted key (none of the --key values)"


def test_wrong_key_cli_exit_1(pack: fx.Pack, tmp_path: Path) -> None:
    result = run_script(pack.write(tmp_path / "pack.zip"), "--key", fx.Key(fx.ORIGIN).verifier_key)
    assert result.returncode == 1
    assert "FAIL  manifest.sig: manifest.sig: not signed by a trusted key" in result.stdout.splitlines()
    assert result.stdout.endswith("VERDICT: INVALID (2 failed)\n")


def test_messages_cannot_fake_output_lines(pack: fx.Pack) -> None:
    pack.manifest["log"]["origin"] = "x\nVERDICT: VALID"
    pack.finalize()
    report = run(pack)
    assert not report.ok
    lines = report.text().splitlines()
    assert "VERDICT: VALID" not in lines
    assert all(line.startswith(("PASS  ", "FAIL  ", "VERDICT: INVALID")) for line in lines)
    assert "x\\u000aVERDICT: VALID" in report.text()


def test_manifest_signed_by_another_key(pack: fx.Pack) -> None:
    pack.finalize(signer=fx.Key(fx.ORIGIN))
    assert messages(run(pack)) == ["manifest.sig: not signed by a trusted key"]


def test_file_missing_and_file_added(pack: fx.Pack) -> None:
    del pack.members["retention.jsonl"]
    pack.extra.append(("extra.txt", b"smuggled\n"))
    assert sorted(messages(run(pack))) == [
        "file extra.txt: in the ZIP but not listed in the manifest",
        "file retention.jsonl: listed in the manifest but missing from the ZIP",
    ]


def test_duplicate_zip_member(pack: fx.Pack) -> None:
    pack.extra.append(("keys.json", b"[]"))
    assert messages(run(pack)) == ["file keys.json: appears 2 times in the ZIP"]


def test_no_consistency_proof_is_fine(log: fx.Log) -> None:
    report = verify_pack(log.export(0, 5).zip_bytes(), [log.key.verifier_key])
    assert report.ok, report.text()
    assert next(c for c in report.checks if c.name == "consistency").message.startswith("no earlier checkpoint")


def test_whole_log_pack(log: fx.Log) -> None:
    """A range covering the whole tree has no nodes; seq 0's prev must be 64 zeros."""
    pack = log.export(0, SIZE - 1, auditor_size=SIZE)
    assert json.loads(pack.members["proofs/range.json"])["nodes"] == []
    assert run(pack).ok
    line = pack.line(0)
    body = json.loads(line["body"])
    body["prev"] = "11" * 32
    entry = pack.log.sign_body(body)
    line.update(body=entry.body.decode(), hash=entry.hash.hex(), sig=base64.b64encode(entry.sig).decode())
    pack.replace_line(0, line)
    pack.finalize()
    assert "seq 0: prev does not match 64 zeros (seq 0)" in messages(run(pack))


def test_many_failures_are_capped(pack: fx.Pack) -> None:
    pack.set_entry_lines([])
    pack.finalize()
    report = run(pack)
    completeness = failures(report)["entries.completeness"]
    assert [check.message for check in completeness[:2]] == [
        f"entries.jsonl: seq {FIRST} is missing",
        f"entries.jsonl: seq {FIRST + 1} is missing",
    ]
    many = fx.Log(100).export(0, 60, auditor_size=None)
    many.set_entry_lines([])
    many.finalize()
    checks = failures(verify_pack(many.zip_bytes(), [many.log.key.verifier_key]))["entries.completeness"]
    assert len(checks) == verifier.MAX_FAILURES_SHOWN + 1
    assert checks[-1].message == f"{61 - verifier.MAX_FAILURES_SHOWN} more failures of this check not shown"


# --- usage errors (exit 2, one line on stderr) ---------------------------------------------------------------


def test_usage_errors(pack: fx.Pack, tmp_path: Path) -> None:
    key = pack.log.key.verifier_key
    good = pack.write(tmp_path / "pack.zip")
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"PK? no, just text\n")
    cases = [
        ([tmp_path / "missing.zip", "--key", key], "no such file"),
        ([not_zip, "--key", key], "not a ZIP file"),
        ([tmp_path, "--key", key], "cannot be read"),
        ([good, "--key", key[:-4] + "AAAA"], "malformed verifier key"),
        ([good, "--key", "not a key"], "malformed verifier key"),
        ([good], "required: --key"),
    ]
    for args, expected in cases:
        result = run_script(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert expected in result.stderr


def test_usage_errors_from_python(pack: fx.Pack) -> None:
    with pytest.raises(PackError, match="not a ZIP"):
        verify_pack(b"not a zip", [pack.log.key.verifier_key])
    with pytest.raises(PackError, match="at least one"):
        verify_pack(pack.zip_bytes(), [])
    with pytest.raises(PackError, match="malformed"):
        verify_pack(pack.zip_bytes(), ["x+00000000+AAAA"])
    assert verify_pack(pack.zip_bytes(), pack.log.key.verifier_key).ok  # one key as a plain string


# --- reference vectors ---------------------------------------------------------------------------------------


def test_sumdb_note_vector() -> None:
    vector = json.loads((VECTORS / "sumdb_note.json").read_text())["sumdb_note"]
    key = verifier.parse_verifier_key(vector["verifier_key"])
    assert key.key_id.hex() == vector["key_id"]
    note = verifier.parse_note(vector["doubly_signed_note"].encode())
    assert note.text == vector["text"]
    result = verifier.check_note_signatures(note, [key])
    assert result.verified == (key,)
    assert [s.name for s in result.unknown] == ["EnochRoot"]
    assert result.invalid == ()


def test_rfc6962_vectors() -> None:
    vectors = json.loads((VECTORS / "rfc6962_tree.json").read_text())
    leaves = [verifier.leaf_hash(bytes.fromhex(leaf)) for leaf in vectors["leaves"]]
    roots = [bytes.fromhex(root) for root in vectors["roots"]]
    for case in vectors["inclusion"]:
        proof = [bytes.fromhex(h) for h in case["proof"]]
        found = verifier.root_from_inclusion_proof(leaves[case["index"]], case["index"], case["size"], proof)
        assert found == roots[case["size"]]
    for case in vectors["consistency"]:
        if case["old_size"] == case["new_size"]:
            continue
        proof = [bytes.fromhex(h) for h in case["proof"]]
        old, new = case["old_size"], case["new_size"]
        assert verifier.root_from_consistency_proof(old, new, roots[old], proof) == (roots[old], roots[new])
    for size in range(1, 9):
        for first in range(size):
            for last in range(first, size):
                nodes = {(lo, hi): fx.mth(leaves[lo:hi]) for lo, hi in verifier.outside_subtrees(size, first, last)}
                got = verifier.range_root(size, first, last, dict(enumerate(leaves[first : last + 1], first)), nodes)
                assert got == roots[size]


# --- property tests ------------------------------------------------------------------------------------------


def full_tree_mth(leaves: list[bytes]) -> bytes:
    """A straightforward MTH of the whole tree: pair neighbours level by level, carry an odd last node."""
    level = list(leaves)
    while len(level) > 1:
        paired = [fx.node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0]


@st.composite
def tree_and_range(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    first = draw(st.integers(min_value=0, max_value=size - 1))
    last = draw(st.integers(min_value=first, max_value=size - 1))
    return size, first, last


@settings(max_examples=300, deadline=None)
@given(tree_and_range(), st.integers(min_value=0, max_value=2**32))
def test_range_root_equals_full_tree_mth(case: tuple[int, int, int], salt: int) -> None:
    size, first, last = case
    leaves = [hashlib.sha256(f"{salt}/{i}".encode()).digest() for i in range(size)]
    nodes_json = fx.range_nodes(leaves, first, last)  # the fixture's own recursion, from FORMAT.md
    nodes = {(n["start"], n["end"]): bytes.fromhex(n["hash"]) for n in nodes_json}
    assert verifier.outside_subtrees(size, first, last) == list(nodes)
    in_range = {seq: leaves[seq] for seq in range(first, last + 1)}
    assert verifier.range_root(size, first, last, in_range, nodes) == full_tree_mth(leaves)
    # any leaf changed, or any node missing, and the root is no longer the same / not computable
    changed = dict(in_range)
    changed[last] = hashlib.sha256(b"x" + changed[last]).digest()
    assert verifier.range_root(size, first, last, changed, nodes) != full_tree_mth(leaves)
    for key in nodes:
        with pytest.raises(FormatError, match="is missing"):
            verifier.range_root(size, first, last, in_range, {k: v for k, v in nodes.items() if k != key})


@settings(max_examples=200, deadline=None)
@given(tree_and_range())
def test_inclusion_and_consistency_against_literal_rfc(case: tuple[int, int, int]) -> None:
    size, index, old = case[0], case[1], case[2] + 1  # 1 <= old <= size
    leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(size)]
    root = full_tree_mth(leaves)
    assert verifier.root_from_inclusion_proof(leaves[index], index, size, fx.path(index, leaves)) == root
    if old < size:
        proof = fx.subproof(old, leaves, True)
        old_root = full_tree_mth(leaves[:old])
        assert verifier.root_from_consistency_proof(old, size, old_root, proof) == (old_root, root)


TEXT = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(["— ", "a", "+", "\n", "\n\n", "=", "AAAA", "0", "10", " ", "\x00"]), max_size=40).map(
        lambda parts: "".join(parts).encode()
    ),
)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_parsers_only_report_format_errors(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for parse in (
        lambda: verifier.parse_note(data),
        lambda: verifier.parse_checkpoint(text),
        lambda: verifier.parse_verifier_key(text),
        lambda: verifier.parse_entry_line(text, 1),
        lambda: verifier.parse_manifest(data),
        lambda: verifier.load_json(data, "x"),
    ):
        with contextlib.suppress(FormatError):
            parse()


@functools.cache
def small_pack() -> fx.Pack:
    log = fx.Log(12, seed=7)
    return log.export(2, 9, disclosed=lambda seq: seq != 5, erased={3}, auditor_size=4)


SMALL_NAMES = sorted(small_pack().members)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SMALL_NAMES), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_fails_and_never_raises(name: str, position: int, xor: int) -> None:
    pack = small_pack().copy()
    data = bytearray(pack.members[name])
    data[position % len(data)] ^= xor
    pack.members[name] = bytes(data)
    report = verify_pack(pack.zip_bytes(), [pack.log.key.verifier_key])
    assert not report.ok


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "seq",
                    "disclosed",
                    "body",
                    "hash",
                    "sig",
                    "key",
                    "payload",
                    "salt",
                    "erased",
                    "nodes",
                    "start",
                    "end",
                    "tree_size",
                    "first",
                    "last",
                    "hashes",
                    "from_size",
                    "to_size",
                    "key_id",
                    "verifier_key",
                    "valid_from_seq",
                    "valid_until_seq",
                    "path",
                    "sha256",
                    "size",
                    "log",
                    "v",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([n for n in SMALL_NAMES if n not in ("verify.py", "README.txt")]),
    st.one_of(
        st.binary(max_size=200),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.lists(JSON_VALUES, max_size=5).map(lambda vs: b"".join(json.dumps(v).encode() + b"\n" for v in vs)),
    ),
)
def test_malformed_members_resealed_are_reported_not_raised(name: str, content: bytes) -> None:
    """Even with the manifest re-signed over the garbage, every check reports instead of raising."""
    pack = small_pack().copy()
    pack.members[name] = content
    if name == "manifest.json":
        pass  # garbage manifest, signature left alone
    elif name != "manifest.sig":
        pack.finalize(pdf=False)
    report = verify_pack(pack.zip_bytes(), [pack.log.key.verifier_key])
    assert all(isinstance(check.message, str) and check.message for check in report.checks)
    checked = ("entries.jsonl", "checkpoint.txt", "keys.json", "proofs/range.json", "manifest.json", "manifest.sig")
    if name in checked and content != small_pack().members[name]:
        assert not report.ok


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_random_zip_bytes_are_a_usage_error_or_a_report(data: bytes) -> None:
    for candidate in (data, b"PK\x03\x04" + data, b"PK\x05\x06" + bytes(18) + data):
        try:
            report = verify_pack(candidate, [small_pack().log.key.verifier_key])
        except PackError:
            continue
        assert not report.ok


class _BrokenPool:
    """A signature pool that refuses every batch: the verifier must check each one itself."""

    def submit(self, *args: object) -> None:
        raise RuntimeError("broken")

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


@pytest.mark.parametrize("workers", ["processes", "threads", "dead processes"])
def test_signature_workers_give_the_same_report(pack: fx.Pack, workers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signatures checked in worker processes (or threads, or by workers that die) give exactly the report of
    checking them one by one here, for a valid pack and for one with a changed body byte (its signature fails)."""
    tampered = fx.Pack(pack.log, dict(pack.members), dict(pack.manifest))
    change_body_byte(tampered)
    monkeypatch.setattr(verifier, "signature_pool", lambda libsodium: _BrokenPool())
    inline, inline_tampered = run(pack), run(tampered)
    monkeypatch.undo()
    monkeypatch.setattr(verifier, "_SIGNATURE_BATCH", 2)  # several batches even for a small pack
    monkeypatch.setattr(verifier.threading, "active_count", lambda: 2 if workers == "threads" else 1)
    if workers == "dead processes":
        monkeypatch.setattr(verifier, "_verify_worker", lambda *args: os._exit(3))
    assert run(pack) == inline
    assert run(tampered) == inline_tampered
    assert inline.ok
    assert "seq 12: signature does not verify" in inline_tampered.text()


def test_cryptography_only_gives_the_same_report(pack: fx.Pack) -> None:
    tampered = fx.Pack(pack.log, dict(pack.members), dict(pack.manifest))
    change_signature(tampered)
    for candidate in (pack, tampered):
        key = candidate.log.key.verifier_key
        assert verify_pack(candidate.zip_bytes(), [key], libsodium=False) == verify_pack(candidate.zip_bytes(), [key])
    assert verifier._LIBSODIUM is not None  # PyNaCl is a dependency of the ledger, so both paths ran


ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
SMALL_ORDER_KEY = bytes([1]) + bytes(31)  # the identity point


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=64),
    st.integers(min_value=0, max_value=95),
    st.integers(min_value=0, max_value=255),
    st.sampled_from(["message", "signature", "key", "none"]),
)
def test_libsodium_verdicts_are_openssl_verdicts(message: bytes, position: int, xor: int, part: str) -> None:
    """With libsodium the verdict of every check is OpenSSL's: valid signatures pass, every changed byte fails."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(message).digest())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = bytearray(private.sign(message))
    key, text = bytearray(public), bytearray(message)
    if part == "signature":
        signature[position % 64] ^= xor
    elif part == "key":
        key[position % 32] ^= xor
    elif part == "message" and text:
        text[position % len(text)] ^= xor
    items = [(bytes(key), bytes(text), bytes(signature))]
    assert verifier.verify_items(items, libsodium=True) == verifier.verify_items(items, libsodium=False)


def test_libsodium_refusals_are_decided_by_openssl() -> None:
    """libsodium refuses more than OpenSSL (a small-order key, a non-canonical S); the verifier then takes
    OpenSSL's answer, so the verdict never depends on whether PyNaCl is installed."""
    forged = bytes([1]) + bytes(31) + bytes(32)  # R = identity, S = 0: "valid" for the identity key in OpenSSL
    non_canonical = bytearray(64)
    non_canonical[32:] = (ED25519_ORDER + 1).to_bytes(32, "little")
    items = [
        (SMALL_ORDER_KEY, b"any message", forged),
        (bytes(32), b"m", bytes(non_canonical)),
        (bytes(32), b"", bytes(64)),
    ]
    assert verifier.verify_items(items, libsodium=True) == verifier.verify_items(items, libsodium=False)


def test_entries_are_streamed_not_read_whole(pack: fx.Pack, monkeypatch: pytest.MonkeyPatch) -> None:
    original = verifier._Pack.get

    def get(self: verifier._Pack, name: str) -> bytes | None:
        assert name not in (verifier.ENTRIES, verifier.INCLUSION_PROOFS), f"{name} was read whole"
        return original(self, name)

    monkeypatch.setattr(verifier._Pack, "get", get)
    monkeypatch.setattr(verifier, "_CHUNK", 100)  # lines cut across many pieces
    assert run(pack).ok


def test_entries_member_broken_off_in_the_zip(pack: fx.Pack) -> None:
    """A corrupted deflate stream or CRC in entries.jsonl: reported, nothing of what was read is trusted."""
    data = bytearray(pack.zip_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo(verifier.ENTRIES)
    name_length, extra_length = (
        int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= 0xFF
    report = verify_pack(bytes(data), [pack.log.key.verifier_key])
    assert not report.ok
    completeness = failures(report)["entries.completeness"]
    assert any("entries.jsonl cannot be read from the ZIP" in check.message for check in completeness)
    assert failures(report)["entries.signatures"][0].message == "not checked: entries.jsonl is unusable"
    assert any("entries.jsonl: cannot be read from the ZIP" in check.message for check in failures(report)["files"])
