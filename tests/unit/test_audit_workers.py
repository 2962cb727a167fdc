"""The audit's signature checks give the same findings on forked worker processes and on threads.

The audit forks its signature workers only when its process runs a single thread (the CLI, a restore); inside a
server it uses threads.  Both must catch a forged signature at its seq, and an entry signed with a key the log never
published (never sent to a worker) must read as unknown-key.  Each pool is forced here, whatever else runs.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ledger import verify
from ledger.packs import verifier
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.verify import Auditor, AuditReport
from tests.events import check_result

ORIGIN = "audit-workers.example/log"
FORGED, FOREIGN = 17, 31


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = Ledger.create(settings, ORIGIN)
    ledger.append_batch([check_result(stream=f"controls/iam-01/host-{n % 3}") for n in range(40)], producer="t")
    return ledger


def _audit_tampered(ledger: Ledger) -> AuditReport:
    recorder, log_id = ledger.recorder, ledger.log_id
    batch = []
    for entry, payload in recorder.iter_entries_with_payloads(log_id):
        if entry.seq == FORGED:
            entry = dataclasses.replace(entry, signature=bytes(64))
        elif entry.seq == FOREIGN:
            entry = dataclasses.replace(entry, key_id="deadbeef")
        batch.append((entry, payload))
    with Auditor(ORIGIN, recorder.keys(log_id), recorder.checkpoints(log_id)) as auditor:
        auditor.check_batch(batch, list(recorder.iter_nodes(log_id)))
        return auditor.finish(ledger.head())


def _codes(report: AuditReport) -> list[tuple[int | None, str]]:
    return [(finding.seq, finding.code) for finding in report.findings]


POOLS: dict[str, Any] = {
    "forked processes": lambda: verifier._ForkedVerifiers(verifier.SIGNATURE_WORKERS, True),
    "threads": lambda: ThreadPoolExecutor(verifier.SIGNATURE_WORKERS),
}


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_forged_and_foreign_signatures_are_found_on_either_pool(
    ledger: Ledger, pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []

    def make_pool(libsodium: bool, thread_name: str = "") -> Any:
        made.append(POOLS[pool]())
        return made[-1]

    monkeypatch.setattr(verify, "signature_pool", make_pool)
    report = _audit_tampered(ledger)
    assert len(made) == 1
    assert _codes(report) == [(FORGED, "bad-signature"), (FOREIGN, "unknown-key")]
    assert ledger.audit().ok  # the stored log itself is untouched
    if pool == "forked processes":
        assert not any(process.is_alive() for process in made[0]._processes)  # the audit stopped its workers
