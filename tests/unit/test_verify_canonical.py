"""The auditor's canonical-body check agrees with the general RFC 8785 serializer."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.canonical import MAX_SAFE_INTEGER, canonical_bytes
from ledger.chain import BODY_FIELDS
from ledger.errors import CanonicalizationError
from ledger.verify import _canonical_body

values = st.one_of(
    st.text(max_size=30),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.lists(st.text(max_size=10), max_size=4),
)
bodies = st.fixed_dictionaries({name: values for name in BODY_FIELDS})


@given(bodies)
def test_canonical_bytes_are_accepted(body: dict[str, object]) -> None:
    raw = canonical_bytes(body)
    assert _canonical_body(orjson.loads(raw), raw)


@given(bodies)
def test_any_other_spelling_is_refused(body: dict[str, object]) -> None:
    raw = canonical_bytes(body)
    spaced = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    unsorted = orjson.dumps(dict(reversed(list(body.items()))))
    for other in (spaced, unsorted, raw + b" "):
        if other != raw:
            assert not _canonical_body(orjson.loads(other), other)


def test_values_outside_the_body_model_take_the_general_path() -> None:
    with pytest.raises(CanonicalizationError, match="floats"):  # the auditor reports this as not-canonical
        _canonical_body({"a": 1.5}, b'{"a":1.5}')
    assert _canonical_body({"a": {"b": True}}, b'{"a":{"b":true}}')
    assert not _canonical_body({"a": {"b": True}}, b'{"a": {"b":true}}')
