"""``ledger demo``: a bank's compliance day, appended, proven, verified, then tampered with.

Everything happens in ``<data dir>/demo`` (recreated on each run) with the embedded SQLite store.
"""

from __future__ import annotations

import base64
import hashlib
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from ledger import merkle
from ledger.notes import open_note, parse_checkpoint, parse_verifier_key
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.records import EntryFilter
from schemas.timestamps import format_timestamp

ORIGIN = "demo.bank.example/evidence"
DAY = datetime(2026, 11, 20, tzinfo=UTC)
CONTROLS = {
    "IAM-01": ("iam-scanner", "MFA enforced for privileged accounts", "DORA Art. 9(4)(d)", 0.02),
    "IAM-02": ("iam-scanner", "Quarterly access review completed", "DORA Art. 9(4)(c)", 0.05),
    "BCK-01": ("backup-service", "Nightly backup restored and verified", "DORA Art. 12(2)", 0.01),
    "PAT-01": ("patch-monitor", "Critical patches applied within 14 days", "DORA Art. 9(4)(f)", 0.08),
    "VUL-01": ("vuln-scanner", "No critical vulnerability older than 30 days", "DORA Art. 9(2)", 0.04),
    "LOG-01": ("siem", "Security logging enabled on in-scope hosts", "RTS 2024/1774 Art. 12", 0.03),
    "NET-01": ("firewall-audit", "Firewall rules reviewed against baseline", "DORA Art. 9(4)(c)", 0.02),
    "ENC-01": (
        "crypto-inventory",
        "Data at rest encrypted with approved algorithms",
        "RTS 2024/1774 Art. 6",
        0.01,
    ),
}


def _say(text: str = "") -> None:
    typer.echo(text)


def _step(number: int, title: str) -> None:
    _say()
    _say(f"== {number}. {title} " + "=" * max(0, 70 - len(title)))


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _check_results(rng: random.Random, count: int) -> Iterator[tuple[str, dict[str, Any]]]:
    controls = list(CONTROLS.items())
    for number in range(count):
        control_id, (producer, title, reference, fail_rate) = controls[number % len(controls)]
        observed = DAY + timedelta(seconds=int(86_400 * number / count))
        host = f"host-{rng.randrange(1, 400):03d}"
        roll = rng.random()
        status = "fail" if roll < fail_rate else ("error" if roll < fail_rate + 0.002 else "pass")
        report = f"{control_id}/{host}/{number}".encode()
        yield (
            producer,
            {
                "id": _event_id(rng),
                "stream": f"controls/{control_id.lower()}/{host}",
                "type": "check.result",
                "occurred_at": format_timestamp(observed),
                "payload": {
                    "control_id": control_id,
                    "check_id": f"{control_id}-{host}",
                    "status": status,
                    "framework_refs": [reference],
                    "evidence": [
                        {
                            "name": f"{control_id.lower()}-{host}.json",
                            "sha256": hashlib.sha256(report).hexdigest(),
                            "size": len(report) * 40,
                            "uri": f"https://evidence.bank.example/{control_id.lower()}/{host}/{number}.json",
                        }
                    ],
                    "observed_at": format_timestamp(observed),
                    "summary": title,
                },
            },
        )


def _approvals(rng: random.Random, count: int) -> Iterator[tuple[str, dict[str, Any]]]:
    for number in range(count):
        decided = DAY + timedelta(hours=8, minutes=7 * number)
        requester, approver = rng.sample([f"emp-{n:05d}" for n in range(10_000, 10_060)], 2)
        decision = "rejected" if number % 9 == 4 else "approved"
        yield (
            "change-mgmt",
            {
                "id": _event_id(rng),
                "stream": f"changes/CHG-{41_000 + number}",
                "type": "approval.decision",
                "occurred_at": format_timestamp(decided),
                "subjects": [requester, approver],
                "payload": {
                    "subject": {"kind": "change", "ref": f"CHG-{41_000 + number}"},
                    "decision": decision,
                    "requester": requester,
                    "approver": approver,
                    "rationale": "Risk assessed, rollback plan tested"
                    if decision == "approved"
                    else "No rollback plan",
                    "decided_at": format_timestamp(decided),
                },
            },
        )


def _incident(rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    detected = DAY + timedelta(hours=10, minutes=12)
    classified = detected + timedelta(hours=1, minutes=30)

    def given(value: Any, estimated: bool = False) -> dict[str, Any]:
        return {"value": value, "estimated": estimated, "source": "soc-runbook"}

    yield (
        "soc",
        {
            "id": _event_id(rng),
            "stream": "incident/INC-2026-0042",
            "type": "incident.detected",
            "occurred_at": format_timestamp(detected),
            "payload": {
                "incident_id": "INC-2026-0042",
                "aware_at": format_timestamp(detected),
                "detected_by": "soc-monitoring",
                "summary": "Payment gateway unavailable (DDoS)",
            },
        },
    )
    yield (
        "soc",
        {
            "id": _event_id(rng),
            "stream": "incident/INC-2026-0042",
            "type": "incident.classified",
            "occurred_at": format_timestamp(classified),
            "payload": {
                "incident_id": "INC-2026-0042",
                "classified_at": format_timestamp(classified),
                "classified_by": "soc-duty-officer",
                "affects_critical_functions": given(True),
                "affects_authorised_financial_services": given(True),
                "malicious_unauthorised_access": given(False),
                "malicious_access_may_cause_data_loss": given(False),
                "clients_affected": given(182_000, estimated=True),
                "clients_total": given(1_250_000),
                "critical_service_downtime_minutes": given(150, estimated=True),
                "member_states_affected": given(["BE", "LU"]),
                "gross_costs_losses_eur": given("85000.00", estimated=True),
            },
        },
    )


def _append_day(ledger: Ledger, checks: int) -> dict[str, int]:
    rng = random.Random(20261120)
    groups: dict[str, list[dict[str, Any]]] = {}
    counts = {"check.result": 0, "approval.decision": 0, "incident": 0, "failed": 0}
    for producer, event in [*_check_results(rng, checks), *_approvals(rng, 60), *_incident(rng)]:
        groups.setdefault(producer, []).append(event)
        kind = event["type"] if event["type"] in counts else "incident"
        counts[kind] += 1
        counts["failed"] += event["payload"].get("status") in ("fail", "error")
    for producer, events in groups.items():
        for start in range(0, len(events), 500):
            ledger.append_batch(events[start : start + 500], producer)
    return counts


def run_demo(settings: Settings, checks: int = 5000) -> None:
    work = settings.data_dir / "demo"
    if work.exists():
        shutil.rmtree(work)
    demo_settings = settings.model_copy(update={"data_dir": work, "database_url": None, "signing_key": None})

    _step(1, "Create a ledger")
    ledger = Ledger.create(demo_settings, ORIGIN)
    _say(f"Log origin:    {ORIGIN}")
    _say(f"Store:         {work / 'ledger.db'} (embedded SQLite; PostgreSQL via LEDGER_DATABASE_URL)")
    _say(f"Verifier key:  {ledger.active_key().verifier_key}")
    _say("               (auditors need only this public key to check everything below)")

    _step(2, "Record one day of a bank's compliance activity")
    started = time.perf_counter()
    counts = _append_day(ledger, checks)
    elapsed = time.perf_counter() - started
    total = ledger.head().size
    _say(
        f"{counts['check.result']:>6} control check results from 7 scanners, across {len(CONTROLS)} controls "
        f"({counts['failed']} failed or errored)"
    )
    _say(f"{counts['approval.decision']:>6} change approvals (four-eyes: requester and approver always differ)")
    _say(f"{counts['incident']:>6} events of incident INC-2026-0042 (payment gateway outage: detected, classified)")
    _say(f"{total:>6} entries appended in {elapsed:.1f} s ({total / elapsed:,.0f} signed entries/s)")
    _say("Each entry is canonical JSON (RFC 8785), chained to the previous entry's hash and signed (Ed25519).")
    _say("People are never stored in the chain: approvers and requesters appear only as HMAC subject refs.")

    _step(3, "The signed checkpoint (C2SP tlog-checkpoint): the whole log in one signed root")
    note = ledger.checkpoint()
    for line in note.splitlines():
        _say(f"    {line}")

    _step(4, "Prove that one entry is in the log (RFC 9162 inclusion proof)")
    classified = next(ledger.entries(EntryFilter(type="incident.classified")))
    proof = ledger.inclusion_proof(classified.seq)
    verifier = parse_verifier_key(ledger.active_key().verifier_key)
    checkpoint = parse_checkpoint(open_note(note, [verifier]).text)
    merkle.verify_inclusion(
        merkle.leaf_hash(classified.body), proof.index, proof.tree_size, proof.hashes, checkpoint.root
    )
    _say(f"Entry seq {classified.seq}: the classification of INC-2026-0042")
    _say(f"Proof: {len(proof.hashes)} hashes lead from the entry to root {base64.b64encode(checkpoint.root).decode()}")
    _say("Verified against the signed checkpoint using only the public key.")

    _step(5, "Audit the whole store")
    report = ledger.audit()
    _say(
        f"{'OK' if report.ok else 'FAILED'}: {report.entries_checked} entries (links, signatures, payload digests), "
        f"{report.nodes_checked} tree nodes, {report.checkpoints_checked} checkpoints, {len(report.findings)} findings"
    )

    _step(6, "Tamper with a copy and audit it again")
    victim = next(e for e in ledger.entries(EntryFilter(type="check.result")) if _is_failed_check(ledger, e.seq))
    copy_dir = work / "tampered"
    _copy_database(work / "ledger.db", copy_dir / "ledger.db")
    shutil.copytree(work / "keys", copy_dir / "keys")
    _flip_fail_to_pass(copy_dir / "ledger.db", victim.seq)
    _say(f"In a copy of the database, someone turns the failed check at seq {victim.seq} into a pass")
    _say(
        "(the database refuses such edits: the copy's triggers were dropped first, as an attacker with the file could)."
    )
    tampered = Ledger.open(demo_settings.model_copy(update={"data_dir": copy_dir}), ORIGIN)
    tampered_report = tampered.audit()
    for finding in tampered_report.findings:
        _say(f"    FINDING {finding}")
    named = any(f.seq == victim.seq for f in tampered_report.findings)
    _say(
        f"The audit {'names' if named else 'DOES NOT NAME'} seq {victim.seq}; "
        f"the original still verifies: {ledger.audit().ok}."
    )

    _step(7, "Next")
    _say(f"Explore with:  .venv/bin/ledger --data-dir {work} events --type approval.decision --format table")
    _say(f"               .venv/bin/ledger --data-dir {work} verify")


def _is_failed_check(ledger: Ledger, seq: int) -> bool:
    stored = ledger.payload(seq)
    return stored is not None and stored.payload is not None and b'"status":"fail"' in stored.payload


def _copy_database(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _flip_fail_to_pass(database: Path, seq: int) -> None:
    with sqlite3.connect(database) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        (payload,) = conn.execute("SELECT payload FROM payloads WHERE seq = ?", (seq,)).fetchone()
        conn.execute("UPDATE payloads SET payload = ? WHERE seq = ?", (payload.replace(b'"fail"', b'"pass"'), seq))
