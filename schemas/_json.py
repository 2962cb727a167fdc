"""Checks that a decoded payload is plain, float-free JSON, and rendering of field paths.

Event bodies are canonicalised with RFC 8785 and hashed.  RFC 8785 serialises numbers as IEEE 754 doubles,
so a float or an integer beyond ±(2**53-1) could hash differently in two languages; decimals travel as
strings instead.  The scan runs on the ingest hot path, so it does no work for the common scalars and builds
the path of a fault only when there is one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_SAFE_INTEGER",
    "JsonValueError",
    "find_invalid_unicode",
    "render_path",
    "scan_json_object",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer every JSON implementation holds exactly (an IEEE 754 double has 53 bits of mantissa)."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in a payload (the payload object itself is level 1)."""

FLOAT_MESSAGE = "floats are not allowed; send decimals as strings"
BIG_INT_MESSAGE = "integers beyond ±(2**53-1) are not allowed; send large numbers as strings"
NOT_JSON_MESSAGE = "must be a JSON value (object, array, string, integer, boolean or null)"
KEY_MESSAGE = "object keys must be strings"
DEPTH_MESSAGE = f"nesting is deeper than {MAX_JSON_DEPTH} levels"
UNICODE_MESSAGE = "contains a string that is not valid Unicode (a lone surrogate)"


class JsonValueError(Exception):
    """Where (``path``, from the scanned object) and why (``reason``) a value is not acceptable JSON."""

    def __init__(self, reason: str, path: list[str | int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = path if path is not None else []  # built innermost first


def scan_json_object(obj: dict[str, Any]) -> None:
    """Raise :class:`JsonValueError` (path outermost first) unless ``obj`` holds float-free JSON only."""
    if _object_ok(obj, 1):
        return
    try:  # slow path: find where, and why
        _scan(obj, 1)
    except JsonValueError as fault:
        fault.path.reverse()
        raise
    raise AssertionError("the fast and the slow JSON scans disagree")  # pragma: no cover


_SCALARS = frozenset({str, bool, type(None)})


def _object_ok(obj: dict[str, Any], depth: int) -> bool:
    """Fast yes/no form of :func:`_scan` for an object (the common case: everything is fine)."""
    if depth > MAX_JSON_DEPTH:
        return False
    return all(type(key) is str and _value_ok(value, depth) for key, value in obj.items())


def _array_ok(array: list[Any], depth: int) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    return all(_value_ok(value, depth) for value in array)


def _value_ok(value: Any, depth: int) -> bool:
    """One member of an object or array: a scalar, a safe integer, or a container that is itself fine."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if kind is dict:
        return _object_ok(value, depth + 1)
    if kind is list:
        return _array_ok(value, depth + 1)
    return False


def _scan(container: dict[str, Any] | list[Any], depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise JsonValueError(DEPTH_MESSAGE)
    if type(container) is dict:
        for key, value in container.items():
            if type(key) is not str:
                raise JsonValueError(KEY_MESSAGE)
            kind = type(value)
            if kind is str or kind is bool or value is None:
                continue
            try:
                _check(value, kind, depth)
            except JsonValueError as fault:
                fault.path.append(key)
                raise
    else:
        for index, value in enumerate(container):
            kind = type(value)
            if kind is str or kind is bool or value is None:
                continue
            try:
                _check(value, kind, depth)
            except JsonValueError as fault:
                fault.path.append(index)
                raise


def _check(value: Any, kind: type, depth: int) -> None:
    """Check one value that is not a string, boolean or null."""
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise JsonValueError(BIG_INT_MESSAGE)
    elif kind is dict or kind is list:
        _scan(value, depth + 1)
    elif kind is float:
        # orjson decodes integers beyond 64 bits (and 1e20) as floats: name the real problem.
        big = value.is_integer() and abs(value) > MAX_SAFE_INTEGER
        raise JsonValueError(BIG_INT_MESSAGE if big else FLOAT_MESSAGE)
    else:
        raise JsonValueError(NOT_JSON_MESSAGE)


def find_invalid_unicode(value: object, path: list[str | int]) -> list[str | int] | None:
    """Path to the first string (or key) that cannot be encoded as UTF-8; slow, for error reports only."""
    if isinstance(value, str):
        return None if _encodable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _encodable(key):
                return path
            found = find_invalid_unicode(item, [*path, key])
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = find_invalid_unicode(item, [*path, index])
            if found is not None:
                return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_KEY_DISPLAY_LIMIT = 64


def render_path(parts: Sequence[str | int], prefix: str = "") -> str:
    """Render ``("payload", "evidence", 0, "sha256")`` as ``payload.evidence[0].sha256``.

    Keys that are not plain identifiers are quoted as JSON strings in brackets (``payload["a.b"]``) and cut
    to 64 characters, so a path stays unambiguous and short.
    """
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            shown = part if len(part) <= _KEY_DISPLAY_LIMIT else part[: _KEY_DISPLAY_LIMIT - 1] + "…"
            out += "[" + json.dumps(shown, ensure_ascii=True) + "]"
    return out
