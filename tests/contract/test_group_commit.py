"""Concurrent callers of one Ledger share transactions, and each batch stays all-or-nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger.errors import ConflictError
from ledger.service import Ledger
from tests.contract.conftest import Backend, check_event

THREADS = 12
PER_THREAD = 25


def _append_many(ledger: Ledger, worker: int, start: threading.Barrier) -> int:
    start.wait()
    for n in range(PER_THREAD):
        number = 1000 * (worker + 1) + n
        ledger.append(check_event(number, stream=f"workers/w{worker}"), producer=f"w{worker}")
    return PER_THREAD


def test_concurrent_single_appends_share_commits_and_form_one_chain(ledger: Ledger, backend: Backend) -> None:
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        total = sum(pool.map(lambda w: _append_many(ledger, w, start), range(THREADS)))
    assert ledger.head().size == total
    report = ledger.audit()
    assert report.ok, report.findings[:3]
    for worker in range(THREADS):  # each writer's own order is kept within its stream
        seqs = [e.stream_seq for e in ledger.entries() if e.stream == f"workers/w{worker}"]
        assert seqs == list(range(PER_THREAD))
    checkpoints = len(ledger.recorder.checkpoints(ledger.head().log_id))
    assert checkpoints <= total  # one checkpoint per transaction: never more transactions than appends
    if backend.name == "postgresql":
        assert checkpoints < total  # durable commits take long enough that waiting appends were grouped


def test_a_conflicting_batch_fails_alone_in_a_shared_transaction(ledger: Ledger) -> None:
    ledger.append(check_event(1), producer="p")
    start = threading.Barrier(8)
    outcomes: dict[int, object] = {}

    def worker(number: int) -> None:
        start.wait()
        event = check_event(1, status="fail") if number == 0 else check_event(100 + number)
        try:
            outcomes[number] = ledger.append_batch([check_event(200 + number), event], producer="p")
        except ConflictError as exc:
            outcomes[number] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(outcomes[0], ConflictError)
    assert all(isinstance(outcomes[n], list) for n in range(1, 8))
    stored_ids = {e.event_id for e in ledger.entries()}
    assert check_event(200)["id"] not in stored_ids  # the failed batch left nothing behind
    assert all(check_event(200 + n)["id"] in stored_ids for n in range(1, 8))
    assert ledger.head().size == 1 + 7 * 2
    assert ledger.audit().ok


@pytest.mark.parametrize("resend_from", ["same-group", "later"])
def test_the_same_event_sent_by_two_callers_is_stored_once(ledger: Ledger, resend_from: str) -> None:
    start = threading.Barrier(6)
    results = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        result = ledger.append(check_event(77), producer="p")
        with lock:
            results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if resend_from == "later":
        results.append(ledger.append(check_event(77), producer="p"))
    assert sum(r.created for r in results) == 1
    assert len({r.entry.seq for r in results}) == 1
    assert ledger.head().size == 1
