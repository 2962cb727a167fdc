"""Salts and request ids come from a page of ``os.urandom``: never repeated, not even across threads or a fork."""

from __future__ import annotations

import os
import threading

import pytest

from ledger.randomness import PAGE_BYTES, random_bytes, random_hex


@pytest.mark.parametrize("count", [1, 16, 32, PAGE_BYTES // 4, PAGE_BYTES // 4 + 1, 3 * PAGE_BYTES])
def test_the_length_is_the_one_asked_for(count: int) -> None:
    assert len(random_bytes(count)) == count
    assert len(random_hex(count)) == 2 * count


def test_no_value_repeats_across_many_pages() -> None:
    drawn = [random_bytes(16) for _ in range(20 * PAGE_BYTES // 16)]
    assert len(set(drawn)) == len(drawn)


def test_threads_never_get_the_same_slice() -> None:
    found: list[list[bytes]] = [[] for _ in range(8)]

    def draw(into: list[bytes]) -> None:
        into.extend(random_bytes(16) for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for values in found for value in values]
    assert len(set(everything)) == len(everything) == 16_000


def test_a_forked_child_does_not_hand_out_what_its_parent_will() -> None:
    random_bytes(16)  # the parent now holds a page with unused bytes
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(reader)
        os.write(writer, b"".join(random_bytes(16) for _ in range(8)))
        os._exit(0)
    os.close(writer)
    child = b""
    while chunk := os.read(reader, 4096):
        child += chunk
    os.close(reader)
    os.waitpid(pid, 0)
    parent = b"".join(random_bytes(16) for _ in range(8))
    assert len(child) == 128
    child_values = {child[i : i + 16] for i in range(0, 128, 16)}
    parent_values = {parent[i : i + 16] for i in range(0, 128, 16)}
    assert not child_values & parent_values
