"""RFC 8785 canonicalization: equivalence with the ``rfc8785`` reference package and rejections."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    _canonical_fast,
    _canonical_slow,
    _scan,
    canonical_bytes,
    canonical_str,
)
from ledger.errors import CanonicalizationError, ValidationError


def reference(value: object) -> bytes:
    """The ``rfc8785`` package's canonical form (the reference implementation)."""
    loose: Any = value
    return rfc8785.dumps(loose)


# --- strategies -------------------------------------------------------------------------------------

# Characters worth over-sampling: JSON escapes, controls, the JCS "print literally" cases, the UTF-16
# sort boundary and astral characters (surrogate pairs in UTF-16).
_TRICKY = ['"', "\\", "/", "\x00", "\x08", "\x0b", "\x1f", "\x7f", "\u2028", "\u2029", "\ud7ff", "\ue000"]
_TRICKY += ["\uffff", "\U00010000", "\U0001f600", "\U0010ffff", "\u20ac", "\u00f6", "\ufb33"]

any_char = st.one_of(st.characters(codec="utf-8"), st.sampled_from(_TRICKY))  # no lone surrogates
texts = st.text(any_char, max_size=12)
# keys below U+D800, where orjson's code point order equals JCS's UTF-16 order
low_keys = st.text(st.characters(codec="utf-8", max_codepoint=0xD7FF), max_size=8)
any_keys = st.text(any_char, max_size=8)
safe_ints = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
scalars = st.none() | st.booleans() | safe_ints | texts


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
        max_leaves=25,
    )


# --- equivalence with the reference implementation --------------------------------------------------


@given(json_values(any_keys))
def test_canonical_bytes_matches_rfc8785(value: object) -> None:
    assert canonical_bytes(value) == reference(value)


@given(json_values(any_keys))
def test_slow_path_matches_rfc8785(value: object) -> None:
    assert _canonical_slow(value) == reference(value)


@given(json_values(low_keys))
def test_fast_path_is_taken_and_matches_rfc8785(value: object) -> None:
    assert _scan(value, 0) is True
    assert _canonical_fast(value) == reference(value)
    assert canonical_bytes(value) == _canonical_slow(value)


@given(st.dictionaries(any_keys, scalars, min_size=2, max_size=8))
def test_objects_with_high_keys_match_rfc8785(value: dict[str, object]) -> None:
    assert canonical_bytes(value) == reference(value)


@settings(max_examples=50)
@given(json_values(any_keys))
def test_tuples_serialize_like_lists(value: object) -> None:
    assert canonical_bytes((value, [value])) == canonical_bytes([value, (value,)])


def test_canonical_str_is_the_decoded_bytes() -> None:
    value = {"b": ["€", 1], "a": None}
    assert canonical_str(value) == canonical_bytes(value).decode("utf-8") == '{"a":null,"b":["€",1]}'


# --- key ordering (RFC 8785 3.2.3) ------------------------------------------------------------------


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    value = {"\ue000": 1, "\U0001f600": 2}
    # U+1F600 is the surrogate pair D83D DE00, which sorts before E000 in UTF-16
    expected = '{"\U0001f600":2,"\ue000":1}'.encode()
    assert canonical_bytes(value) == expected == reference(value)
    assert _scan(value, 0) is False  # orjson would put U+E000 first


def test_rfc8785_sorting_example() -> None:
    """The property-sorting example of RFC 8785 section 3.2.3, order written out by hand."""
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    expected = "{" + ",".join(f'"{_escaped(key)}":"{value[key]}"' for key in order) + "}"
    assert canonical_bytes(value) == expected.encode("utf-8") == reference(value)


def _escaped(key: str) -> str:
    return "\\r" if key == "\r" else key


def test_nested_high_keys_use_slow_path_everywhere() -> None:
    value = {"outer": [{"\uffff": 0, "\U00010000": 1}], "\ue000": {"a": 1}}
    assert _scan(value, 0) is False
    assert canonical_bytes(value) == reference(value)


# --- string escaping (RFC 8785 3.2.2.2) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x00", '"\\u0000"'),
        ("\x08\t\n\x0c\r", '"\\b\\t\\n\\f\\r"'),
        ("\x0b\x0e\x1f", '"\\u000b\\u000e\\u001f"'),  # lowercase hex, four digits
        ('"\\', '"\\"\\\\"'),
        ("/", '"/"'),  # solidus is not escaped
        ("\x7f", '"\x7f"'),  # DEL is printed literally
        ("\u2028\u2029", '"\u2028\u2029"'),  # so are the line/paragraph separators
        ("\U0001f600", '"\U0001f600"'),  # and astral characters, as UTF-8
        ('\u20ac$\x0f\nA\'B"\\\\"/', '"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'),  # RFC 8785 3.2.2.2
    ],
)
def test_string_escaping(text: str, expected: str) -> None:
    assert canonical_bytes(text) == expected.encode("utf-8")
    assert _canonical_slow(text) == expected.encode("utf-8")
    assert reference(text) == expected.encode("utf-8")


def test_literals_and_integers() -> None:
    value = [True, False, None, 0, -0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]
    expected = b"[true,false,null,0,0,1,-1,9007199254740991,-9007199254740991]"
    assert canonical_bytes(value) == expected == _canonical_slow(value)


def test_output_has_no_whitespace() -> None:
    assert canonical_bytes({"a": [1, {"b": [None, ""]}], "c": {}}) == b'{"a":[1,{"b":[null,""]}],"c":{}}'
    assert canonical_bytes([]) == b"[]"
    assert canonical_bytes({}) == b"{}"


# --- rejections -------------------------------------------------------------------------------------

SERIALIZERS: list[Callable[[object], bytes]] = [canonical_bytes, _canonical_slow]


@pytest.mark.parametrize("serialize", SERIALIZERS)
def test_float_rejected_with_field_path(serialize: Callable[[object], bytes]) -> None:
    with pytest.raises(CanonicalizationError) as caught:
        serialize({"payload": {"items": [0, 1, {"x": 1.5}]}})
    assert caught.value.field == "payload.items[2].x"
    assert "strings" in str(caught.value)
    assert "1.5" not in str(caught.value)  # messages never carry values


@pytest.mark.parametrize("serialize", SERIALIZERS)
@pytest.mark.parametrize("number", [2**53, -(2**53), 2**64, -(2**70)])
def test_unsafe_integers_rejected(serialize: Callable[[object], bytes], number: int) -> None:
    with pytest.raises(CanonicalizationError) as caught:
        serialize({"amounts": [number]})
    assert caught.value.field == "amounts[0]"
    with pytest.raises(CanonicalizationError) as at_root:
        serialize(number)
    assert at_root.value.field is None


@pytest.mark.parametrize("serialize", SERIALIZERS)
def test_non_string_keys_rejected(serialize: Callable[[object], bytes]) -> None:
    with pytest.raises(CanonicalizationError, match="keys must be strings") as caught:
        serialize({"a": {"ok": 1, 2: "two"}})
    assert caught.value.field == "a"


@pytest.mark.parametrize("serialize", SERIALIZERS)
def test_lone_surrogates_rejected(serialize: Callable[[object], bytes]) -> None:
    with pytest.raises(CanonicalizationError, match="surrogate") as caught:
        serialize({"a": ["fine", "bad\ud800"]})
    assert caught.value.field == "a[1]"
    with pytest.raises(CanonicalizationError, match="surrogate"):
        serialize("\ud800")
    with pytest.raises(CanonicalizationError, match="surrogate"):
        serialize({"\udfff": 1})
    with pytest.raises(CanonicalizationError, match="surrogate"):
        serialize(["\ud83d\ude00"])  # a pair spelt as two code units


@pytest.mark.parametrize("serialize", SERIALIZERS)
@pytest.mark.parametrize("bad", [set(), {1}, b"bytes", Decimal("1.0"), float("nan"), object(), 1.0])
def test_other_types_rejected(serialize: Callable[[object], bytes], bad: object) -> None:
    with pytest.raises(CanonicalizationError) as caught:
        serialize({"s": bad})
    assert caught.value.field == "s"
    assert isinstance(caught.value, ValidationError)


def test_set_at_root_has_no_field() -> None:
    with pytest.raises(CanonicalizationError, match="no canonical JSON form") as caught:
        canonical_bytes(set())
    assert caught.value.field is None


@pytest.mark.parametrize("serialize", SERIALIZERS)
def test_excessive_nesting_rejected(serialize: Callable[[object], bytes]) -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(CanonicalizationError, match="nesting"):
        serialize(deep)
    shallow: object = 1
    for _ in range(MAX_DEPTH):
        shallow = [shallow]
    assert serialize(shallow) == reference(shallow)


def test_float_inside_high_key_object_reports_path() -> None:
    with pytest.raises(CanonicalizationError) as caught:
        canonical_bytes({"\U0001f600": {"v": 0.1}})
    assert caught.value.field == "\U0001f600.v"


@pytest.mark.parametrize("serialize", SERIALIZERS)
def test_lone_surrogate_key_path_is_printable(serialize: Callable[[object], bytes]) -> None:
    with pytest.raises(CanonicalizationError, match="surrogate") as caught:
        serialize({"ok": {"\x80\u00e9\ud800": 1}})
    assert caught.value.field == "ok.\\x80\\xe9\\ud800"
