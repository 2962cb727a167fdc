"""Random bytes for salts and request ids, drawn from ``os.urandom`` a page at a time.

Every call of ``os.urandom`` releases the GIL around the ``getrandom`` system call and must win it back.
In a busy server (the event loop on one thread, the commit queue on another) winning it back can wait for
the other thread's switch interval, so one call per request or per entry adds latency out of all proportion
to the 16 bytes it fetches.  This module fetches :data:`PAGE_BYTES` at once and hands out slices: the bytes
come from the same operating-system source, none is ever handed out twice, and a forked child starts with
an empty page of its own (it must never reuse what its parent will also hand out).
"""

from __future__ import annotations

import os
import threading
from typing import Final

__all__ = ["PAGE_BYTES", "random_bytes", "random_hex"]

PAGE_BYTES: Final = 4096

_lock = threading.Lock()
_page = b""
_offset = 0


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the operating system's CSPRNG (as ``os.urandom``), never shared with another call."""
    global _page, _offset
    if count > PAGE_BYTES // 4:
        return os.urandom(count)
    with _lock:
        if _offset + count > len(_page):
            _page, _offset = os.urandom(PAGE_BYTES), 0
        start = _offset
        _offset += count
        return _page[start:_offset]


def random_hex(count: int) -> str:
    """``count`` random bytes as lower-case hexadecimal (``2 * count`` characters)."""
    return random_bytes(count).hex()


def _forget_page() -> None:
    global _page, _offset, _lock
    _lock = threading.Lock()  # a lock held by another thread at the fork would never be released in the child
    _page, _offset = b"", 0


os.register_at_fork(after_in_child=_forget_page)
