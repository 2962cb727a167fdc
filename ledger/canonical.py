"""RFC 8785 JSON Canonicalization Scheme (JCS): the only producer of bytes that are hashed or signed.

The ledger's JSON values are restricted to what JCS can express exactly and what our events carry:
``dict`` (``str`` keys), ``list``/``tuple``, ``str``, ``int`` within the IEEE 754 safe range, ``bool``
and ``None``.  Floats are refused outright: decimals travel as strings, so no number formatting
(RFC 8785 3.2.2.3) is ever needed.

Two serializers produce the same bytes:

* the fast path, :mod:`orjson` with sorted keys.  orjson sorts keys by code point while JCS sorts by
  UTF-16 code unit (RFC 8785 3.2.3); the two orders differ only for keys holding characters at or
  above U+D800 (an astral character's surrogate pair sorts below U+E000..U+FFFF in UTF-16).  So the
  fast path is used only when no key anywhere contains such a character.
* :func:`_canonical_slow`, a plain JCS serializer used for every other value.

Both are checked against the ``rfc8785`` reference package by property tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final

import orjson

from ledger.errors import CanonicalizationError

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "canonical_bytes", "canonical_str"]

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Largest integer an IEEE 754 double holds exactly (RFC 8785 3.2.2.3, I-JSON RFC 7493 2.2)."""

MAX_DEPTH: Final = 128
"""Deepest nesting of arrays and objects accepted (orjson itself stops at 255)."""

_FIRST_SURROGATE: Final = "\ud800"
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_ESCAPE_RE: Final = re.compile('[\\x00-\\x1f"\\\\]')
_SHORT_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


class _PathError(Exception):
    """Internal: a canonicalization failure whose field path is assembled while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.parts: list[str | int] = []

    def to_public(self) -> CanonicalizationError:
        return CanonicalizationError(self.message, field=_format_path(reversed(self.parts)))


def _format_path(parts: Iterable[str | int]) -> str | None:
    """Render path parts as ``payload.items[2].x``; ``None`` for the root value."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or None


def canonical_bytes(value: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of ``value``.

    Raises :class:`CanonicalizationError` (``field`` names the offending member) for floats, integers
    outside +-(2**53 - 1), non-string keys, strings that are not valid Unicode (lone surrogates),
    nesting deeper than :data:`MAX_DEPTH` and any type outside the JSON data model.
    """
    try:
        fast = _scan(value, 0)
    except _PathError as exc:
        raise exc.to_public() from None
    if fast:
        try:
            return _canonical_fast(value)
        except orjson.JSONEncodeError:
            pass  # e.g. a lone surrogate in a value: the slow path reports it with its path
    return _canonical_slow(value)


def canonical_str(value: object) -> str:
    """Return :func:`canonical_bytes` decoded as text (for display and for embedding in text formats)."""
    return canonical_bytes(value).decode("utf-8")


# --- validation walk --------------------------------------------------------------------------------


def _scan(value: object, depth: int) -> bool:
    """Check ``value`` against the ledger's JSON model; return whether the orjson fast path is exact.

    The fast path is exact unless some key contains a character >= U+D800 (RFC 8785 3.2.3 orders
    keys by UTF-16 code units, orjson by code points).
    """
    if type(value) is str or value is None or type(value) is bool:
        return True
    if type(value) is int:
        _check_int(value)
        return True
    if type(value) is dict:
        return _scan_object(value, depth)
    if type(value) is list or type(value) is tuple:
        return _scan_array(value, depth)
    raise _type_error(value)


def _scan_object(value: dict[object, object], depth: int) -> bool:
    _check_depth(depth)
    fast = True
    for key, member in value.items():
        if type(key) is not str:
            raise _key_type_error(key)
        if not key.isascii() and max(key) >= _FIRST_SURROGATE:
            fast = False
        try:
            fast = _scan(member, depth + 1) and fast
        except _PathError as exc:
            exc.parts.append(key)
            raise
    return fast


def _scan_array(value: list[object] | tuple[object, ...], depth: int) -> bool:
    _check_depth(depth)
    fast = True
    for index, item in enumerate(value):
        try:
            fast = _scan(item, depth + 1) and fast
        except _PathError as exc:
            exc.parts.append(index)
            raise
    return fast


def _check_int(value: int) -> None:
    """RFC 8785 3.2.2.3 / RFC 7493 2.2: only integers a double represents exactly are interoperable."""
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise _PathError("integer outside +-(2**53 - 1) is not exactly representable in JCS; send it as a string")


def _check_depth(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _PathError(f"nesting deeper than {MAX_DEPTH} levels")


def _key_type_error(key: object) -> _PathError:
    return _PathError(f"object keys must be strings, not {type(key).__name__}")


def _type_error(value: object) -> _PathError:
    if isinstance(value, float):
        return _PathError("floats are not allowed: decimals must travel as strings")
    return _PathError(f"type {type(value).__name__} has no canonical JSON form")


# --- serializers ------------------------------------------------------------------------------------


def _canonical_fast(value: object) -> bytes:
    """orjson with sorted keys: JCS-exact for values that passed :func:`_scan` with ``True``."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _canonical_slow(value: object) -> bytes:
    """Pure-Python RFC 8785 serializer, correct for every value of the ledger's JSON model."""
    parts: list[str] = []
    try:
        _emit(value, parts.append, 0)
    except _PathError as exc:
        raise exc.to_public() from None
    return "".join(parts).encode("utf-8")


def _emit(value: object, out: Callable[[str], object], depth: int) -> None:
    if type(value) is str:
        out(_quote(value))
    elif value is None:
        out("null")
    elif type(value) is bool:
        out("true" if value else "false")
    elif type(value) is int:
        _check_int(value)
        out(str(value))  # RFC 8785 3.2.2.3: integers in the safe range print as plain decimals
    elif type(value) is dict:
        _emit_object(value, out, depth)
    elif type(value) is list or type(value) is tuple:
        _emit_array(value, out, depth)
    else:
        raise _type_error(value)


def _emit_object(value: dict[object, object], out: Callable[[str], object], depth: int) -> None:
    _check_depth(depth)
    out("{")
    for position, (key, member) in enumerate(_sorted_members(value)):
        if position:
            out(",")
        out(_quote(key))
        out(":")
        try:
            _emit(member, out, depth + 1)
        except _PathError as exc:
            exc.parts.append(key)
            raise
    out("}")


def _sorted_members(value: dict[object, object]) -> list[tuple[str, object]]:
    """RFC 8785 3.2.3: members sorted by the UTF-16 code units of their names."""
    members: list[tuple[str, object]] = []
    for key, member in value.items():
        if type(key) is not str:
            raise _key_type_error(key)
        if _SURROGATE_RE.search(key):
            exc = _PathError("object key is not valid Unicode (lone surrogate)")
            exc.parts.append(key.encode("ascii", "backslashreplace").decode("ascii"))
            raise exc
        members.append((key, member))
    members.sort(key=lambda item: item[0].encode("utf-16-be"))
    return members


def _emit_array(value: list[object] | tuple[object, ...], out: Callable[[str], object], depth: int) -> None:
    _check_depth(depth)
    out("[")
    for index, item in enumerate(value):
        if index:
            out(",")
        try:
            _emit(item, out, depth + 1)
        except _PathError as exc:
            exc.parts.append(index)
            raise
    out("]")


def _quote(text: str) -> str:
    """RFC 8785 3.2.2.2: ECMAScript JSON.stringify string escaping.

    Only ``"``, ``\\`` and C0 controls are escaped; the two-character forms are used for
    ``\\b \\t \\n \\f \\r`` and ``\\u00xx`` (lowercase hex) for the other controls.  Everything
    else, U+007F and U+2028 included, is written as literal UTF-8.
    """
    if _SURROGATE_RE.search(text):
        raise _PathError("string is not valid Unicode (lone surrogate)")
    return '"' + _ESCAPE_RE.sub(_escape_char, text) + '"'


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"
