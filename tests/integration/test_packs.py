"""Evidence packs against a real ledger, as a compliance officer exports them and an auditor checks them.

The log is a bank's month of control evidence: check results of three controls on three hosts (passes, failures,
an error), four-eyes approvals, a major incident INC-1 (detected, classified major, initial report submitted) and
a non-major INC-2, a legal hold on INC-1 and the GDPR erasure of one data subject.  The officer exports one
control's stream prefix plus INC-1 over November 2026; the auditor verifies the pack offline, trusting only the
log's public key, with the verify.py shipped inside it.  Expected figures are computed here from the events this
module appended, never from the builder's own code.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from api.app import create_app
from ledger.access import Role
from ledger.errors import NotFoundError, ValidationError
from ledger.notes import NoteSigner, format_checkpoint, parse_note, sign_note
from ledger.packs import verifier
from ledger.packs.build import PACK_EXPORTED, PACK_STREAM, PackResult, PackScope, export_pack
from ledger.packs.verifier import Report, verify_pack
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.database import grant_app_role, make_engine, migrate
from ledger.store.records import EntryRecord
from retention.disposal import ERASURE_REASON, execute_erasure
from retention.holds import set_hold
from retention.policy import load_policy
from tests.services import Database, PostgresServer

ORIGIN = "bank.example/evidence"
REPO = Path(__file__).resolve().parents[2]
VERIFIER_SOURCE = REPO / "ledger" / "packs" / "verifier.py"
SCANNER = "svc:control-scanner"
DESK = "svc:incident-desk"
PREFIX = "controls/iam-01"
INCIDENT = "INC-1"
SINCE, UNTIL = "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)  # the export: the initial report met, the intermediate overdue
SUBJECT = hashlib.sha256(b"employee E-1042").hexdigest()  # a subject ref (an HMAC in production)
CONTROLS = {"IAM-01": "controls/iam-01", "NET-02": "controls/net-02", "ENC-01": "controls/enc-01"}
HOSTS = (1, 2, 3)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- the log ----------------------------------------------------------------------------------------------


def _inp(value: Any) -> dict[str, Any]:
    return {"value": value, "estimated": False, "source": "ops"}


NON_MAJOR: dict[str, Any] = {
    "affects_critical_functions": _inp(True),
    "affects_authorised_financial_services": _inp(False),
    "malicious_unauthorised_access": _inp(False),
    "malicious_access_may_cause_data_loss": _inp(False),
    "clients_affected": _inp(1_000),
    "clients_total": _inp(100_000),
    "relevant_client_or_counterpart_affected": _inp(False),
    "media_attention": _inp(False),
    "repeated_complaints": _inp(False),
    "regulatory_requirements_at_risk": _inp(False),
    "likely_client_loss": _inp(False),
    "duration_minutes": _inp(60),
    "critical_service_downtime_minutes": _inp(30),
    "member_states_affected": _inp(["BE"]),
    "data_impact": _inp(False),
    "gross_costs_losses_eur": _inp("5000.00"),
}
# RTS 2024/1772 Art. 8(1): the gate plus two thresholds, clients (20% > 10%) and duration (1,500 min > 24 h)
MAJOR: dict[str, Any] = {**NON_MAJOR, "clients_affected": _inp(20_000), "duration_minutes": _inp(1_500)}


def _status(day: int, control: int, host: int) -> str:
    if (day, control, host) == (4, 0, 3):
        return "error"
    return "fail" if (day + control + host) % 4 == 0 else "pass"


def check_event(control: str, host: int, at: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"{CONTROLS[control]}/host-{host:03d}",
        "type": "check.result",
        "occurred_at": at,
        "payload": {
            "control_id": control,
            "check_id": f"{control}-host-{host:03d}-{at[:10]}",
            "status": status,
            "framework_refs": ["DORA Art. 9(4)(d)"],
            "evidence": [
                {
                    "name": "scan.json",
                    "sha256": hashlib.sha256(f"{control}/{host}/{at}".encode()).hexdigest(),
                    "size": 2048,
                    "uri": f"https://evidence.bank.example/{control.lower()}/{host}/{at[:10]}.json",
                }
            ],
            "observed_at": at,
            "summary": f"{control} on host-{host:03d}: {status}",
        },
        **extra,
    }


def approval_event(number: int, at: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"approvals/change/CHG-{number}",
        "type": "approval.decision",
        "occurred_at": at,
        "payload": {
            "subject": {"kind": "change", "ref": f"CHG-{number}"},
            "decision": "approved" if number % 3 else "rejected",
            "requester": "dev.alice",
            "approver": "ops.bob",
            "rationale": "change reviewed against the release checklist",
            "decided_at": at,
        },
    }


def incident_event(incident: str, type_: str, at: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"incident/{incident}",
        "type": type_,
        "occurred_at": at,
        "payload": {"incident_id": incident, **payload},
    }


DAYS = ("2026-10-20", "2026-10-27", "2026-11-03", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30", "2026-12-02")


@dataclass
class Log:
    ledger: Ledger
    verifier_key: str
    early_checkpoint: str
    early_size: int
    hold_id: str
    subject_seq: int
    erasure_seq: int
    checks: dict[int, tuple[str, str]] = field(default_factory=dict)  # seq -> (control id, status)


def build_log(ledger: Ledger) -> Log:
    """About 110 entries from 20 October to 2 December 2026, appended in time order."""
    checks: dict[int, tuple[str, str]] = {}
    early = ("", 0)
    hold_id, subject_seq, erasure_seq = "", -1, -1

    def day(index: int) -> None:
        date = DAYS[index]
        events = [
            check_event(control, host, f"{date}T0{2 + c}:{host:02d}:00Z", _status(index, c, host))
            for c, control in enumerate(CONTROLS)
            for host in HOSTS
        ]
        events.append(approval_event(index, f"{date}T14:00:00Z"))
        for result in ledger.append_batch(events, SCANNER):
            if result.entry.type == "check.result":
                event = next(e for e in events if e["id"] == result.entry.event_id)
                checks[result.entry.seq] = (event["payload"]["control_id"], event["payload"]["status"])

    day(0)
    day(1)
    early = (ledger.checkpoint(), ledger.head().size)  # what an auditor kept from the October review
    day(2)
    day(3)
    # INC-1: a major incident, its initial notification submitted in time (RTS 2025/301 Art. 5: by 13:00Z)
    for event in (
        incident_event(INCIDENT, "incident.detected", "2026-11-10T08:00:00Z", {"aware_at": "2026-11-10T08:00:00Z",
                                                                                "detected_by": "soc"}),
        incident_event(
            INCIDENT,
            "incident.classified",
            "2026-11-10T09:00:00Z",
            {"classified_at": "2026-11-10T09:00:00Z", "classified_by": "ciso", **MAJOR},
        ),
        incident_event(
            INCIDENT,
            "incident.report_submitted",
            "2026-11-10T11:00:00Z",
            {"stages": ["initial"], "authority": "NBB", "submitted_at": "2026-11-10T11:00:00Z",
             "submitted_by": "compliance"},
        ),
        incident_event("INC-2", "incident.detected", "2026-11-10T15:00:00Z", {"aware_at": "2026-11-10T15:00:00Z",
                                                                              "detected_by": "noc"}),
        incident_event(
            "INC-2",
            "incident.classified",
            "2026-11-10T16:00:00Z",
            {"classified_at": "2026-11-10T16:00:00Z", "classified_by": "ciso", **NON_MAJOR},
        ),
    ):  # fmt: skip
        assert ledger.append(event, DESK).created
    hold = set_hold(
        ledger,
        scope_kind="incident",
        scope=INCIDENT,
        reason="litigation over the outage",
        actor="legal.carol",
        case_id="CASE-7",
        now=_t("2026-11-12T10:00:00Z"),
    )
    hold_id = hold.hold_id
    day(4)
    # a privileged-access review naming one employee (by subject ref), later erased on request (GDPR Art. 17)
    review = check_event("IAM-01", 2, "2026-11-16T12:00:00Z", "pass", subject_refs=[SUBJECT])
    subject_seq = ledger.append(review, SCANNER).entry.seq
    checks[subject_seq] = ("IAM-01", "pass")
    day(5)
    erasure = execute_erasure(ledger, load_policy(None), SUBJECT, _t("2026-11-26T10:00:00Z"), actor="dpo")
    assert erasure.erased == (subject_seq,)
    erasure_seq = erasure.event_seq
    day(6)
    day(7)
    return Log(ledger, ledger.active_key().verifier_key, early[0], early[1], hold_id, subject_seq, erasure_seq, checks)


SCOPE = PackScope(stream_prefixes=(PREFIX,), incidents=(INCIDENT,), occurred_since=SINCE, occurred_until=UNTIL)


def in_scope(entry: EntryRecord) -> bool:
    """The scope's meaning: streams under the prefix (at a '/' boundary) or INC-1's, occurred in November."""
    selected = entry.stream == PREFIX or entry.stream.startswith(PREFIX + "/") or entry.stream == f"incident/{INCIDENT}"
    return selected and _t(SINCE) <= _t(entry.occurred_at) < _t(UNTIL)


# --- reading a pack ---------------------------------------------------------------------------------------


@dataclass
class Pack:
    path: Path
    result: PackResult
    members: dict[str, bytes]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.members["manifest.json"])

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.members["report.json"])

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.members["entries.jsonl"].splitlines()]


def read_pack(path: Path, result: PackResult) -> Pack:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    return Pack(path, result, members)


def messages(report: Report) -> list[str]:
    return [check.message for check in report.failed]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    data = tmp_path_factory.mktemp("packs-log")
    ledger = Ledger.create(Settings(data_dir=data), ORIGIN)
    yield build_log(ledger)
    ledger.recorder.engine.dispose()


@pytest.fixture(scope="module")
def pack(log: Log, tmp_path_factory: pytest.TempPathFactory) -> Pack:
    out = tmp_path_factory.mktemp("packs-out") / "november-iam-01.zip"
    result = export_pack(log.ledger, out, SCOPE, exporter="officer.dana", now=NOW)
    return read_pack(out, result)


# --- the pack as exported ---------------------------------------------------------------------------------


def test_the_pack_verifies_with_the_trusted_key(log: Log, pack: Pack) -> None:
    report = verify_pack(pack.path, [log.verifier_key])
    assert report.ok, report.text()
    assert report.verdict == "VALID"
    names = {check.name for check in report.checks}
    assert {"manifest.sig", "files", "entries.signatures", "entries.chain", "range_proof", "checkpoint"} <= names
    assert pack.members["verify.py"] == VERIFIER_SOURCE.read_bytes()


def test_the_pack_does_not_verify_with_another_key(pack: Pack) -> None:
    stranger = NoteSigner.generate(ORIGIN).verifier_key()
    report = verify_pack(pack.path, [stranger])
    assert not report.ok
    assert "manifest.sig: not signed by a trusted key" in messages(report)
    assert "keys.json: contains no trusted key (none of the --key values)" in messages(report)


def test_disclosed_entries_are_exactly_the_scope_and_the_rest_of_the_range_is_hash_only(log: Log, pack: Pack) -> None:
    result = pack.result
    stored = {e.seq: e for e in log.ledger.entries() if e.seq < result.tree_size}
    expected = sorted(seq for seq, entry in stored.items() if in_scope(entry))
    assert (result.first_seq, result.last_seq) == (expected[0], expected[-1])
    assert result.tree_size == result.export_event_seq  # the checkpoint at export: everything before the event
    lines = pack.lines
    assert [line["seq"] for line in lines] == list(range(result.first_seq, result.last_seq + 1))
    disclosed = [line["seq"] for line in lines if line["disclosed"]]
    assert disclosed == expected
    assert (result.disclosed, result.hidden) == (len(expected), len(lines) - len(expected))
    log_section = pack.manifest["log"]
    assert (log_section["disclosed"], log_section["hidden"]) == (result.disclosed, result.hidden)
    streams = Counter(stored[seq].stream.split("/")[0] for seq in range(result.first_seq, result.last_seq + 1))
    assert {"controls", "approvals", "incident", "ledger"} <= set(streams)  # the hidden entries are of every kind
    for line in lines:
        entry = stored[line["seq"]]
        assert line["hash"] == entry.hash.hex()
        if line["disclosed"]:
            assert line["body"].encode() == entry.body
            assert base64.b64decode(line["sig"]) == entry.signature
        else:
            assert set(line) == {"seq", "disclosed", "hash"}  # nothing of a hidden entry but its leaf hash
    hidden_text = b"".join(line for line in pack.members["entries.jsonl"].splitlines() if b'"disclosed":false' in line)
    assert b"INC-2" not in pack.members["entries.jsonl"] and b"CHG-" not in hidden_text
    assert "incidents/INC-1.json" in pack.members and "incidents/INC-2.json" not in pack.members


def test_payloads_are_disclosed_and_the_erased_one_is_recorded_as_erased(log: Log, pack: Pack) -> None:
    by_seq = {line["seq"]: line for line in pack.lines}
    erased = by_seq[log.subject_seq]
    assert erased["disclosed"] is True
    assert erased["payload"]["erased"]["by_seq"] == log.erasure_seq
    assert erased["payload"]["erased"]["reason"] == ERASURE_REASON
    assert SUBJECT in erased["body"]  # the signed body still carries the digest and the subject ref
    other = next(line for seq, line in by_seq.items() if line["disclosed"] and seq != log.subject_seq)
    payload = other["payload"]
    digest = json.loads(other["body"])["payload_digest"]
    assert hashlib.sha256(bytes.fromhex(payload["salt"]) + payload["payload"].encode()).hexdigest() == digest


def test_retention_state_lists_the_hold_and_the_erasure(log: Log, pack: Pack) -> None:
    rows = [json.loads(line) for line in pack.members["retention.jsonl"].splitlines()]
    header, per_entry = rows[0], {row["seq"]: row for row in rows[1:]}
    assert header["active_holds"] == 1
    assert [(h["hold_id"], h["scope_kind"], h["scope"], h["case_id"]) for h in header["holds"]] == [
        (log.hold_id, "incident", INCIDENT, "CASE-7")
    ]
    assert sorted(per_entry) == [line["seq"] for line in pack.lines if line["disclosed"]]
    stored = {e.seq: e for e in log.ledger.entries()}
    for seq, row in per_entry.items():
        held = stored[seq].stream == f"incident/{INCIDENT}"
        assert row["held_by"] == ([log.hold_id] if held else []), seq
    assert per_entry[log.subject_seq]["erased"]["by_seq"] == log.erasure_seq
    retention = pack.report["retention"]
    assert (retention["active_holds"], retention["erased_payloads"]) == (1, 1)


def test_a_pack_exported_event_records_the_export(log: Log, pack: Pack) -> None:
    result = pack.result
    entry = log.ledger.entry(result.export_event_seq)
    assert (entry.stream, entry.type, entry.producer) == (PACK_STREAM, PACK_EXPORTED, "officer.dana")
    record = log.ledger.payload(entry.seq)
    assert record is not None and record.payload is not None
    recorded = json.loads(record.payload)
    zip_digest = hashlib.sha256(pack.path.read_bytes()).hexdigest()
    assert recorded == {
        "pack_id": pack.manifest["pack_id"],
        "exported_by": "officer.dana",
        "exported_at": "2026-12-05T09:00:00.000000Z",
        "scope": {
            "streams": [],
            "stream_prefixes": [PREFIX],
            "types": [],
            "incidents": [INCIDENT],
            "subject": None,
            "occurred_since": SINCE,
            "occurred_until": UNTIL,
        },
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "tree_size": result.tree_size,
        "pack_sha256": zip_digest,
    }
    assert result.sha256 == zip_digest
    assert entry.seq >= result.tree_size  # recorded after the pack: never inside it
    assert log.ledger.audit().ok


# --- the auditor, on another machine ----------------------------------------------------------------------

# Run verify.py as shipped, but with every module of this repository made unimportable: the venv's editable
# install would otherwise resolve `import ledger` from anywhere, so a plain run alone would not prove that the
# verifier needs nothing but the standard library and `cryptography`.
ISOLATED_RUN = """
import runpy, sys
BLOCKED = {"ledger", "api", "schemas", "retention", "tests", "benchmarks"}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError("the offline verifier imported " + name)
        return None
sys.meta_path.insert(0, Refuse())
sys.argv = ["verify.py", *sys.argv[1:]]
runpy.run_path("verify.py", run_name="__main__")
"""


def _auditor_dir(tmp_path: Path, pack_path: Path, key: str) -> Path:
    """A fresh directory holding only what the auditor received: the ZIP and the key line."""
    folder = tmp_path / "auditor"
    folder.mkdir()
    (folder / "pack.zip").write_bytes(pack_path.read_bytes())
    (folder / "log-key.txt").write_text(key + "\n")
    with zipfile.ZipFile(folder / "pack.zip") as archive:
        (folder / "verify.py").write_bytes(archive.read("verify.py"))
    return folder


def _run_offline(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LEDGER_"))}
    key = (folder / "log-key.txt").read_text().strip()
    return subprocess.run(
        [sys.executable, *args, "pack.zip", "--key", key],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_auditor_verifies_the_pack_offline_with_its_own_verify_py(log: Log, pack: Pack, tmp_path: Path) -> None:
    folder = _auditor_dir(tmp_path, pack.path, log.verifier_key)
    assert sorted(p.name for p in folder.iterdir()) == ["log-key.txt", "pack.zip", "verify.py"]
    plain = _run_offline(folder, "verify.py")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert plain.stdout.endswith("VERDICT: VALID\n")
    isolated = _run_offline(folder, "-I", "-c", ISOLATED_RUN)
    assert isolated.returncode == 0, isolated.stdout + isolated.stderr
    assert isolated.stdout == plain.stdout.replace(str(folder / "pack.zip"), "pack.zip")
    as_json = _run_offline(folder, "-I", "-c", ISOLATED_RUN, "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["verdict"] == "VALID"


def test_the_offline_verifier_exits_1_on_a_tampered_pack(log: Log, pack: Pack, tmp_path: Path) -> None:
    tampered = _rewrite(pack.path, tmp_path / "t.zip", "report.pdf", lambda data: _flip(data, len(data) // 2))
    folder = _auditor_dir(tmp_path, tampered, log.verifier_key)
    done = _run_offline(folder, "-I", "-c", ISOLATED_RUN)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  files: file report.pdf: SHA-256 differs from the manifest" in done.stdout
    assert done.stdout.endswith("VERDICT: INVALID (1 failed)\n")


# --- the tamper matrix, on the real pack -----------------------------------------------------------------


def _rewrite(source: Path, out: Path, name: str, change: Callable[[bytes], bytes | None]) -> Path:
    """A copy of the ZIP with member ``name`` changed (or dropped when ``change`` returns None)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == name:
                changed = change(data)
                if changed is None:
                    continue
                data = changed
            dst.writestr(info, data)
    return out


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _edit_lines(edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        lines = [orjson.loads(line) for line in data.splitlines()]
        assert b"".join(orjson.dumps(line) + b"\n" for line in lines) == data  # re-encoding alone changes nothing
        return b"".join(orjson.dumps(line) + b"\n" for line in edit(lines))

    return change


def _index(lines: list[dict[str, Any]], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if line["seq"] == seq)


@dataclass(frozen=True)
class Seqs:
    """Seqs of the pack the tampering targets: a disclosed check with a present payload, a hidden entry followed
    by a disclosed one, two adjacent entries."""

    disclosed: int
    hidden: int
    swap: int
    first: int


def _targets(pack: Pack) -> Seqs:
    lines = pack.lines
    disclosed = next(
        line["seq"]
        for line in lines[1:]
        if line["disclosed"] and "salt" in line["payload"] and '"status":"fail"' in line["payload"]["payload"]
    )
    hidden = next(a["seq"] for a, b in itertools.pairwise(lines[1:]) if not a["disclosed"] and b["disclosed"])
    return Seqs(disclosed, hidden, lines[len(lines) // 2]["seq"], lines[0]["seq"])


def _body_byte(seq: int) -> Callable[[bytes], bytes]:
    def edit(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        line = lines[_index(lines, seq)]
        assert SCANNER in line["body"]
        line["body"] = line["body"].replace(SCANNER, SCANNER[:-1] + "S", 1)  # one byte of the signed body
        return lines

    return _edit_lines(edit)


def _payload(seq: int, old: str, new: str) -> Callable[[bytes], bytes]:
    def edit(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        payload = lines[_index(lines, seq)]["payload"]
        assert old in payload["payload"]
        payload["payload"] = payload["payload"].replace(old, new, 1)
        return lines

    return _edit_lines(edit)


def _hidden_hash(seq: int) -> Callable[[bytes], bytes]:
    def edit(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        line = lines[_index(lines, seq)]
        assert line["disclosed"] is False
        line["hash"] = ("1" if line["hash"][0] == "0" else "0") + line["hash"][1:]
        return lines

    return _edit_lines(edit)


def _drop(seq: int) -> Callable[[bytes], bytes]:
    return _edit_lines(lambda lines: [line for line in lines if line["seq"] != seq])


def _swap(seq: int) -> Callable[[bytes], bytes]:
    def edit(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        i = _index(lines, seq)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return lines

    return _edit_lines(edit)


def _resign_checkpoint(data: bytes) -> bytes:
    note = parse_note(data.decode())
    lines = note.text.split("\n")
    root = base64.b64decode(lines[2])
    impostor = NoteSigner.generate(ORIGIN)  # same name as the log key, another key
    return sign_note(format_checkpoint(lines[0], int(lines[1]), root), [impostor]).encode()


def _edit_manifest_scope(data: bytes) -> bytes:
    manifest = json.loads(data)
    manifest["scope"]["stream_prefixes"] = ["controls/net-02"]
    return verifier.canonical_json(manifest)


TAMPERING: dict[str, tuple[str, Callable[[Seqs], Callable[[bytes], bytes | None]], Callable[[Seqs], list[str]]]] = {
    "a byte of a disclosed entry's body": (
        "entries.jsonl",
        lambda s: _body_byte(s.disclosed),
        lambda s: [
            "file entries.jsonl: SHA-256 differs from the manifest",
            f"seq {s.disclosed}: hash does not match body",
            f"seq {s.disclosed}: signature does not verify",
        ],
    ),
    "a byte of a payload": (
        "entries.jsonl",
        lambda s: _payload(s.disclosed, '"check_id":"IAM-01-host', '"check_id":"IAM-01-Host'),
        lambda s: [
            "file entries.jsonl: SHA-256 differs from the manifest",
            f"seq {s.disclosed}: payload does not match payload_digest",
        ],
    ),
    "a failed check turned into a pass": (
        "entries.jsonl",
        lambda s: _payload(s.disclosed, '"status":"fail"', '"status":"pass"'),
        lambda s: [f"seq {s.disclosed}: payload does not match payload_digest"],
    ),
    "a byte of a hidden entry's hash": (
        "entries.jsonl",
        lambda s: _hidden_hash(s.hidden),
        lambda s: [
            "file entries.jsonl: SHA-256 differs from the manifest",
            "checkpoint: root does not match the range proof",
            f"seq {s.hidden + 1}: prev does not match the hash of seq {s.hidden}",
        ],
    ),
    "a byte of report.pdf": (
        "report.pdf",
        lambda s: lambda data: _flip(data, len(data) // 2),
        lambda s: ["file report.pdf: SHA-256 differs from the manifest"],
    ),
    "an entry dropped": (
        "entries.jsonl",
        lambda s: _drop(s.disclosed),
        lambda s: [f"entries.jsonl: seq {s.disclosed} is missing"],
    ),
    "two entries swapped": (
        "entries.jsonl",
        lambda s: _swap(s.swap),
        # lines are numbered from 1: seq s + 1 is now on the line of s, and seq s on the next line
        lambda s: [
            f"entries.jsonl: seq {s.swap} is out of order (line {s.swap - s.first + 2}, after seq {s.swap + 1})"
        ],
    ),
    "checkpoint.txt re-signed by another key": (
        "checkpoint.txt",
        lambda s: _resign_checkpoint,
        lambda s: [
            "file checkpoint.txt: SHA-256 differs from the manifest",
            "checkpoint: not signed by a trusted key or a key of keys.json",
        ],
    ),
    "manifest.json scope edited without re-signing": (
        "manifest.json",
        lambda s: _edit_manifest_scope,
        lambda s: ["manifest.sig: manifest.json does not match the signed SHA-256"],
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampering_is_caught_with_its_specific_message(log: Log, pack: Pack, tmp_path: Path, tampering: str) -> None:
    member, make_change, expected = TAMPERING[tampering]
    targets = _targets(pack)
    tampered = _rewrite(pack.path, tmp_path / "tampered.zip", member, make_change(targets))
    with zipfile.ZipFile(pack.path) as before, zipfile.ZipFile(tampered) as after:
        assert before.namelist() == after.namelist()
        changed = [name for name in before.namelist() if before.read(name) != after.read(name)]
    assert changed == [member]  # everything else kept as exported
    report = verify_pack(tampered, [log.verifier_key])
    assert not report.ok
    found = messages(report)
    for message in expected(targets):
        assert message in found, f"{tampering}: {message!r} not in {found}"


# --- the readable report ----------------------------------------------------------------------------------


def _expected_controls(log: Log, pack: Pack) -> dict[str, Counter[str]]:
    """Pass/fail counts per control of the disclosed check results whose payload is still present."""
    counts: dict[str, Counter[str]] = {}
    for line in pack.lines:
        if line["disclosed"] and line["seq"] in log.checks and "salt" in line["payload"]:
            control, status = log.checks[line["seq"]]
            counts.setdefault(control, Counter())[status] += 1
    return counts


def _pdf_pages(pack: Pack) -> list[str]:
    reader = PdfReader(io.BytesIO(pack.members["report.pdf"]))
    return [" ".join((page.extract_text() or "").split()) for page in reader.pages]


def test_report_json_figures_match_the_log(log: Log, pack: Pack) -> None:
    report = pack.report
    expected = _expected_controls(log, pack)
    assert list(expected) == ["IAM-01"]  # one control's prefix: no other control's figures
    counts = expected["IAM-01"]
    decided = counts["pass"] + counts["fail"] + counts["error"]
    assert counts["fail"] > 0 and counts["error"] == 1
    assert report["controls"] == [
        {
            "control_id": "IAM-01",
            "pass": counts["pass"],
            "fail": counts["fail"],
            "error": counts["error"],
            "not_applicable": 0,
            "total": sum(counts.values()),
            "pass_rate": f"{100 * counts['pass'] / decided:.2f}",
        }
    ]
    assert report["counts"]["disclosed"] == pack.result.disclosed
    assert report["counts"]["hidden"] == pack.result.hidden
    assert report["approvals"] == {"approved": 0, "rejected": 0, "by_kind": {}}
    [incident] = report["incidents"]
    assert incident["incident_id"] == INCIDENT and incident["major"] is True
    assert incident["aware_at"].startswith("2026-11-10T08:00:00")
    assert sorted(incident["criteria_met"]) == ["clients", "duration"]
    states = {d["stage"]: d for d in incident["deadlines"]}
    # RTS 2025/301 Art. 5: initial by min(classified + 4 h, aware + 24 h) = 13:00Z, submitted at 11:00Z;
    # intermediate by the initial submission + 72 h = 13 November 11:00Z, never submitted by 5 December
    assert states["initial"]["state"] == "met" and states["initial"]["due_at"].startswith("2026-11-10T13:00:00")
    assert states["intermediate"]["state"] == "overdue"
    assert states["intermediate"]["due_at"].startswith("2026-11-13T11:00:00")
    assert report["pack_id"] == pack.manifest["pack_id"] == pack.result.pack_id


def test_every_pdf_page_carries_its_identifier_and_the_content_digest(pack: Pack) -> None:
    manifest = pack.manifest
    pages = _pdf_pages(pack)
    assert len(pages) >= 3
    for number, text in enumerate(pages, start=1):
        assert f"EVP-{manifest['pack_id']}-{number:06d}" in text, number
        assert manifest["content_digest"] in text, number
        assert f"page {number} of {len(pages)}" in text, number
    files_without_pdf = [f for f in manifest["files"] if f["path"] != "report.pdf"]
    assert manifest["content_digest"] == hashlib.sha256(verifier.canonical_json(files_without_pdf)).hexdigest()


def test_the_pdf_shows_the_figures_of_the_pack(log: Log, pack: Pack) -> None:
    text = " ".join(_pdf_pages(pack))
    report, result = pack.report, pack.result
    [control] = report["controls"]
    assert f"IAM-01 {control['pass']} {control['fail']} {control['error']} 0 {control['total']} " in text
    assert f"{control['pass_rate']} %" in text
    assert "NET-02" not in text and "ENC-01" not in text
    assert f"{result.disclosed} entries are disclosed and {result.hidden} hidden" in text
    assert f"{result.first_seq} to {result.last_seq} ({result.last_seq - result.first_seq + 1} entries)" in text
    assert f"Incident {INCIDENT}" in text and "Major incident" in text and "INC-2" not in text
    assert "initial MET" in text and "intermediate OVERDUE" in text
    compact = text.replace(" ", "")  # long identifiers wrap inside their table cells
    assert log.hold_id in compact and "incident: INC-1 CASE-7" in text
    assert log.verifier_key in compact
    assert SUBJECT not in compact  # no personal identifier, not even the pseudonymous ref


# --- auditor checkpoints ----------------------------------------------------------------------------------


def test_a_pack_against_an_auditor_checkpoint_carries_a_consistency_proof(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "with-consistency.zip"
    result = export_pack(log.ledger, out, SCOPE, exporter="officer.dana", auditor_checkpoint=log.early_checkpoint)
    pack = read_pack(out, result)
    assert pack.members["proofs/auditor-checkpoint.txt"] == log.early_checkpoint.encode()
    proof = json.loads(pack.members["proofs/consistency.json"])
    assert (proof["from_size"], proof["to_size"]) == (log.early_size, result.tree_size)
    old_root = log.ledger.root(log.early_size)
    new_root = log.ledger.root(result.tree_size)
    hashes = [bytes.fromhex(h) for h in proof["hashes"]]
    assert verifier.root_from_consistency_proof(log.early_size, result.tree_size, old_root, hashes) == (
        old_root,
        new_root,
    )
    report = verify_pack(out, [log.verifier_key])
    assert report.ok, report.text()
    [consistency] = [check for check in report.checks if check.name == "consistency"]
    assert consistency.message.startswith(f"the auditor's checkpoint of size {log.early_size} ")


def _refused_export(log: Log, out: Path, auditor_checkpoint: str) -> ValidationError:
    size = log.ledger.head().size
    with pytest.raises(ValidationError) as raised:
        export_pack(log.ledger, out, SCOPE, exporter="officer.dana", auditor_checkpoint=auditor_checkpoint)
    assert not out.exists()
    assert log.ledger.head().size == size  # no pack.exported either
    return raised.value


def test_an_auditor_checkpoint_of_another_log_is_refused(log: Log, tmp_path: Path) -> None:
    other = Ledger.create(Settings(data_dir=tmp_path / "other"), "other.example/evidence")
    other.append(check_event("IAM-01", 1, "2026-11-03T02:01:00Z", "pass"), SCANNER)
    error = _refused_export(log, tmp_path / "refused.zip", other.checkpoint())
    assert "the auditor's checkpoint does not verify with the log's keys" in str(error)
    other.recorder.engine.dispose()


def test_an_auditor_checkpoint_with_another_root_is_refused(log: Log, tmp_path: Path) -> None:
    forged_root = hashlib.sha256(b"another history").digest()
    forged = sign_note(format_checkpoint(ORIGIN, log.early_size, forged_root), [log.ledger.signer()])
    error = _refused_export(log, tmp_path / "refused.zip", forged)
    assert str(error) == "the auditor's checkpoint has another root than the log at that size: a fork"


def test_exporting_to_an_existing_path_is_refused_and_writes_nothing(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "existing.zip"
    out.write_bytes(b"an earlier pack")
    size = log.ledger.head().size
    with pytest.raises(ValidationError) as raised:
        export_pack(log.ledger, out, SCOPE, exporter="officer.dana")
    assert raised.value.field == "out"
    assert out.read_bytes() == b"an earlier pack"
    assert log.ledger.head().size == size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.zip"]


def test_a_scope_matching_nothing_is_refused_and_writes_nothing(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "nothing.zip"
    size = log.ledger.head().size
    with pytest.raises(NotFoundError):
        export_pack(log.ledger, out, PackScope(stream_prefixes=("controls/none",)), exporter="officer.dana")
    assert not out.exists() and log.ledger.head().size == size
    with pytest.raises(ValidationError, match="the scope is empty"):
        PackScope(occurred_since=SINCE)


def test_a_stream_prefix_ends_at_a_segment_boundary(tmp_path: Path) -> None:
    """As for API keys and legal holds, "controls/iam-01" covers controls/iam-01/... and not controls/iam-010."""
    ledger = Ledger.create(Settings(data_dir=tmp_path / "data"), ORIGIN)
    ours = ledger.append(check_event("IAM-01", 1, "2026-11-03T02:01:00Z", "pass"), SCANNER).entry.seq
    other = check_event("IAM-01", 2, "2026-11-03T02:02:00Z", "fail") | {"stream": "controls/iam-010/host-002"}
    theirs = ledger.append(other, SCANNER).entry.seq
    ledger.append(check_event("IAM-01", 3, "2026-11-03T02:03:00Z", "pass"), SCANNER)
    result = export_pack(ledger, tmp_path / "p.zip", PackScope(stream_prefixes=(PREFIX,)), exporter="officer.dana")
    lines = read_pack(tmp_path / "p.zip", result).lines
    disclosed = {line["seq"] for line in lines if line["disclosed"]}
    assert ours in disclosed
    assert theirs not in disclosed, "an entry of controls/iam-010 was disclosed by the prefix controls/iam-01"
    ledger.recorder.engine.dispose()


def _cited_seqs(value: Any) -> set[int]:
    """Every ``seq`` (and ``*_seq``) a dossier cites, at any depth."""
    found: set[int] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if (key == "seq" or key.endswith("_seq")) and isinstance(item, int):
                found.add(item)
            found |= _cited_seqs(item)
    elif isinstance(value, list):
        for item in value:
            found |= _cited_seqs(item)
    return found


def test_an_incident_dossier_restates_only_entries_the_pack_discloses(log: Log, tmp_path: Path) -> None:
    scope = PackScope(incidents=(INCIDENT,), types=("incident.detected",))
    result = export_pack(log.ledger, tmp_path / "detected.zip", scope, exporter="officer.dana", now=NOW)
    pack = read_pack(tmp_path / "detected.zip", result)
    disclosed = {line["seq"] for line in pack.lines if line["disclosed"]}
    assert len(disclosed) == 1  # only the incident.detected event is in scope
    cited = _cited_seqs(json.loads(pack.members[f"incidents/{INCIDENT}.json"]))
    assert cited <= disclosed, f"the dossier restates seqs {sorted(cited - disclosed)}, not disclosed by the pack"


# --- through the HTTP API ---------------------------------------------------------------------------------


def test_an_officer_exports_and_downloads_a_pack_over_the_api(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_rate_limit_per_second=1000, api_rate_limit_burst=1000)
    ledger = Ledger.create(settings, ORIGIN)
    built = build_log(ledger)
    store = ApiKeyStore(ledger.recorder.engine)
    officer = store.create(Role.OFFICER, [ORIGIN], [], "officer.dana", "2026-12-05T09:00:00.000000Z")[1]
    auditor = store.create(Role.AUDITOR, [ORIGIN], [], "auditor.erin", "2026-12-05T09:00:00.000000Z")[1]
    body = {
        "stream_prefixes": [PREFIX],
        "incidents": [INCIDENT],
        "occurred_since": SINCE,
        "occurred_until": UNTIL,
        "auditor_checkpoint": built.early_checkpoint,
    }
    with TestClient(create_app(settings)) as client:
        made = client.post("/v1/packs", json=body, headers={"X-API-Key": officer})
        assert made.status_code == 201, made.text
        answer = made.json()
        pack_id = answer["pack_id"]
        assert made.headers["location"] == answer["download"] == f"/v1/packs/{pack_id}"
        stored = settings.data_dir / "packs" / f"{pack_id}.zip"
        assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]  # no staging file left
        got = client.get(answer["download"], headers={"X-API-Key": officer})
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert got.content == stored.read_bytes()
        assert hashlib.sha256(got.content).hexdigest() == answer["sha256"]
        assert client.get(answer["download"], headers={"X-API-Key": auditor}).status_code == 403
        assert client.post("/v1/packs", json=body, headers={"X-API-Key": auditor}).status_code == 403
        for bad, field_name in (
            ({"streams": ["not a stream"]}, "body.streams.0"),
            ({"stream_prefixes": [PREFIX], "subject": "XY"}, "body.subject"),
            ({"stream_prefixes": [PREFIX], "occurred_since": "yesterday"}, "body.occurred_since"),
            ({"stream_prefixes": [PREFIX], "occurred_since": UNTIL, "occurred_until": SINCE}, "occurred_until"),
            ({"stream_prefixes": [PREFIX], "auditor_checkpoint": "not a note\n"}, "auditor_checkpoint"),
            ({"stream_prefixes": [PREFIX], "colour": "red"}, "body.colour"),
        ):
            refused = client.post("/v1/packs", json=bad, headers={"X-API-Key": officer})
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["field"] == field_name, (bad, refused.text)
        empty = client.post("/v1/packs", json={"occurred_since": SINCE}, headers={"X-API-Key": officer})
        assert empty.status_code == 422 and "the scope is empty" in empty.json()["detail"]
        nothing = client.post("/v1/packs", json={"streams": ["controls/none"]}, headers={"X-API-Key": officer})
        assert nothing.status_code == 404 and nothing.json()["detail"] == "no entry of the log is in this scope"
        missing = client.get(f"/v1/packs/{uuid.uuid4().hex}", headers={"X-API-Key": officer})
        assert missing.status_code == 404
        stored.write_bytes(stored.read_bytes() + b"\0")  # the file no longer matches its pack.exported event
        assert client.get(answer["download"], headers={"X-API-Key": officer}).status_code == 409
    stored.write_bytes(got.content)
    exported = ledger.entry(answer["export_event_seq"])
    assert (exported.type, exported.producer) == (PACK_EXPORTED, "officer.dana")
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]  # refused exports left nothing
    report = verify_pack(stored, [built.verifier_key])
    assert report.ok, report.text()
    assert "proofs/consistency.json" in zipfile.ZipFile(stored).namelist()
    ledger.recorder.engine.dispose()


# --- on PostgreSQL ----------------------------------------------------------------------------------------


def test_a_pack_from_a_postgresql_ledger_verifies(
    pg_database: Database, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    admin = make_engine(pg_database.superuser_url)
    migrate(admin)  # the schema belongs to the superuser; the application role gets grants
    grant_app_role(admin, postgres_server.app_role)
    admin.dispose()
    ledger = Ledger.create(Settings(data_dir=tmp_path / "data", database_url=pg_database.url), ORIGIN)
    try:
        log = build_log(ledger)
        out = tmp_path / "pg-pack.zip"
        result = export_pack(ledger, out, SCOPE, exporter="officer.dana", now=NOW)
        pack = read_pack(out, result)
        report = verify_pack(out, [log.verifier_key])
        assert report.ok, report.text()
        stored = {e.seq: e for e in ledger.entries() if e.seq < result.tree_size}
        assert [line["seq"] for line in pack.lines if line["disclosed"]] == sorted(
            seq for seq, entry in stored.items() if in_scope(entry)
        )
        record = ledger.payload(result.export_event_seq)
        assert record is not None and record.payload is not None
        assert json.loads(record.payload)["pack_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert pack.report["controls"][0]["control_id"] == "IAM-01"
        assert [i["incident_id"] for i in pack.report["incidents"]] == [INCIDENT]
    finally:
        ledger.recorder.engine.dispose()
