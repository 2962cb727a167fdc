"""Legal holds, disposal of expired payloads and GDPR erasure against a real (SQLite) ledger and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.records import EntryFilter
from retention.disposal import (
    DISPOSED_TYPE,
    ERASURE_DECIDED_TYPE,
    execute_disposal,
    execute_erasure,
    plan_disposal,
    plan_erasure,
)
from retention.holds import load_holds, release_hold, set_hold
from retention.policy import DEFAULT_RETENTION_WORDING, load_policy

ORIGIN = "retention.bank.example/evidence"
PAST = "2015-01-01T00:00:00Z"
NOW = datetime(2024, 6, 1, tzinfo=UTC)
SUBJECT = "ab" * 32
CHECK = {
    "control_id": "IAM-01",
    "check_id": "c1",
    "status": "pass",
    "framework_refs": [],
    "evidence": [],
    "observed_at": PAST,
}


def _event(stream: str, type_: str = "check.result", payload: dict[str, Any] | None = None, **extra: Any) -> Any:
    return {
        "id": str(uuid.uuid4()),
        "stream": stream,
        "type": type_,
        "occurred_at": extra.pop("occurred_at", PAST),
        "payload": CHECK if payload is None else payload,
        **extra,
    }


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.create(Settings(data_dir=tmp_path), ORIGIN)


def _present(ledger: Ledger, seq: int) -> bool:
    record = ledger.payload(seq)
    return record is not None and record.payload is not None


def test_dry_run_lists_expired_and_changes_nothing(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    old = ledger.append(_event("controls/iam"), "t").entry.seq
    recent = ledger.append(_event("controls/iam", occurred_at="2023-01-01T00:00:00Z"), "t").entry.seq
    size = ledger.head().size

    candidates = {c.seq: c for c in plan_disposal(ledger, load_policy(None), NOW)}

    assert candidates[old].decision.eligible
    assert not candidates[recent].decision.eligible
    assert candidates[old].retain_until == datetime(2022, 1, 1, tzinfo=UTC)
    assert ledger.head().size == size
    assert _present(ledger, old) and _present(ledger, recent)


def test_execute_removes_payloads_and_audit_stays_ok(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    old = ledger.append(_event("controls/iam"), "t").entry.seq
    recent = ledger.append(_event("controls/iam", occurred_at="2023-01-01T00:00:00Z"), "t").entry.seq
    open_incident = ledger.append(_event("incident/INC-1", "incident.note", {"text": "x"}), "t").entry.seq

    outcome = execute_disposal(ledger, load_policy(None), NOW)

    assert outcome.disposed == (old,)
    assert outcome.event_seq is not None
    disposal = ledger.entry(outcome.event_seq)
    assert disposal.type == DISPOSED_TYPE and disposal.stream == "ledger/retention"
    record = ledger.payload(old)
    assert record is not None and record.payload is None and record.salt is None
    assert record.erased_by_seq == outcome.event_seq and record.erasure_reason == "disposed"
    assert _present(ledger, recent) and _present(ledger, open_incident)
    decision_payload = ledger.payload(outcome.event_seq)
    assert decision_payload is not None and decision_payload.payload is not None
    recorded = json.loads(decision_payload.payload)
    assert recorded["seq_ranges"] == [[old, old]] and recorded["policy"] == DEFAULT_RETENTION_WORDING
    report = ledger.audit()
    assert report.ok, report
    # a second run has nothing left to dispose and records nothing
    assert execute_disposal(ledger, load_policy(None), NOW).event_seq is None


def test_incident_retention_runs_from_closure(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    note = ledger.append(_event("incident/INC-2", "incident.note", {"text": "x"}), "t").entry.seq
    ledger.append(
        _event(
            "incident/INC-2",
            "incident.closed",
            {"incident_id": "INC-2", "closed_at": "2016-03-01T00:00:00Z"},
            occurred_at="2016-03-01T00:00:00Z",
        ),
        "t",
    )

    candidate = next(c for c in plan_disposal(ledger, load_policy(None), NOW) if c.seq == note)

    assert candidate.retain_until == datetime(2023, 3, 1, tzinfo=UTC)
    assert candidate.decision.eligible


def test_hold_on_stream_prefix_prevents_disposal_until_released(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    held = ledger.append(_event("controls/iam/mfa"), "t").entry.seq
    free = ledger.append(_event("controls/network"), "t").entry.seq
    hold = set_hold(ledger, scope_kind="stream_prefix", scope="controls/iam", reason="litigation", actor="legal")
    assert [h.hold_id for h in load_holds(ledger) if h.active] == [hold.hold_id]

    first = execute_disposal(ledger, load_policy(None), NOW)

    assert first.disposed == (free,)
    assert _present(ledger, held)
    blocked = next(c for c in first.candidates if c.seq == held)
    assert not blocked.decision.eligible and hold.hold_id in blocked.decision.reason

    release_hold(ledger, hold.hold_id, reason="case closed", actor="legal")
    assert all(not h.active for h in load_holds(ledger))
    second = execute_disposal(ledger, load_policy(None), NOW)

    assert second.disposed == (held,)
    assert not _present(ledger, held)
    assert ledger.audit().ok


def test_erasure_erases_default_class_and_defers_aml(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    policy = load_policy('[event_types]\n"aml.*" = "aml"\n')
    recent = "2023-01-01T00:00:00Z"
    plain = ledger.append(_event("customers/x", subject_refs=[SUBJECT], occurred_at=recent), "t").entry.seq
    aml = ledger.append(
        _event("aml/alerts", "aml.alert", {"score": "7"}, subject_refs=[SUBJECT], occurred_at=recent), "t"
    ).entry.seq
    other = ledger.append(_event("customers/y", subject_refs=["cd" * 32]), "t").entry.seq

    planned = {c.seq: c.decision.action for c in plan_erasure(ledger, policy, SUBJECT, NOW)}
    assert planned == {plain: "erase", aml: "defer"}
    assert _present(ledger, plain)

    outcome = execute_erasure(ledger, policy, SUBJECT, NOW)

    assert outcome.erased == (plain,) and outcome.deferred == (aml,)
    record = ledger.payload(plain)
    assert record is not None and record.payload is None
    assert record.erased_by_seq == outcome.event_seq and record.erasure_reason == "gdpr-erasure"
    assert _present(ledger, aml) and _present(ledger, other)
    decision = ledger.entry(outcome.event_seq)
    assert decision.type == ERASURE_DECIDED_TYPE
    decided = ledger.payload(outcome.event_seq)
    assert decided is not None and decided.payload is not None
    recorded = json.loads(decided.payload)
    assert recorded["deferred"][0]["seq"] == aml
    assert recorded["deferred"][0]["until"].startswith("2033-01-01")
    assert ledger.audit().ok
    assert list(ledger.entries(EntryFilter(subject=SUBJECT)))  # entries stay queryable


def _cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir.parent,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_cli_hold_dispose_and_erase(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli(data, "init", "--origin", ORIGIN).returncode == 0
    events = [
        _event("controls/iam"),
        _event("legal/matter", subject_refs=[SUBJECT]),
        _event("customers/x", subject_refs=[SUBJECT], occurred_at="2023-01-01T00:00:00Z"),
    ]
    assert _cli(data, "append", "-", stdin=json.dumps(events)).returncode == 0

    held = _cli(data, "hold", "set", "--scope-kind", "stream", "--scope", "legal/matter", "--reason", "lawsuit")
    assert held.returncode == 0, held.stderr
    assert "set on stream legal/matter" in held.stdout
    listed = _cli(data, "hold", "list")
    assert "active" in listed.stdout
    bad = _cli(data, "hold", "set", "--scope-kind", "planet", "--scope", "x", "--reason", "r")
    assert bad.returncode == 2 and bad.stderr.startswith("error:")

    dry = _cli(data, "retention", "dispose", "--dry-run", "--now", "2024-06-01T00:00:00Z")
    assert dry.returncode == 0, dry.stderr
    assert DEFAULT_RETENTION_WORDING in dry.stdout
    assert "seq 0  check.result  retain-until 2022-01-01T00:00:00+00:00  dispose" in dry.stdout
    assert "seq 1  check.result" in dry.stdout and "legal hold" in dry.stdout
    assert "1 of 3 payloads eligible" in dry.stdout

    done = _cli(data, "retention", "dispose", "--execute", "--now", "2024-06-01T00:00:00Z")
    assert done.returncode == 0, done.stderr
    assert "disposed 1 payloads (seqs 0)" in done.stdout
    neither = _cli(data, "retention", "dispose")
    assert neither.returncode == 2 and neither.stderr.startswith("error:")

    erase_dry = _cli(data, "erase", "--subject", SUBJECT)
    assert erase_dry.returncode == 0, erase_dry.stderr
    assert "seq 1" in erase_dry.stdout and "defer" in erase_dry.stdout
    assert "1 of 2 payloads would be erased; nothing changed" in erase_dry.stdout
    erased = _cli(data, "erase", "--subject", SUBJECT, "--execute")
    assert erased.returncode == 0, erased.stderr
    assert "erased 1 payloads, deferred 1" in erased.stdout

    ledger = Ledger.open(Settings(data_dir=data))
    assert not _present(ledger, 0) and _present(ledger, 1) and not _present(ledger, 2)
    assert ledger.audit().ok
