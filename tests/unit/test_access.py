"""Roles, permissions, stream-prefix scope and token parsing of API keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.access import ROLE_PERMISSIONS, ApiKey, Permission, Role, new_token, secret_matches, split_token


def _key(role: Role, prefixes: tuple[str, ...] = (), revoked: str | None = None) -> ApiKey:
    return ApiKey("0123456789abcdef", role, ("a.example/log",), prefixes, "svc", "2026-11-20T00:00:00.000000Z", revoked)


def test_each_role_has_exactly_its_permissions() -> None:
    assert ROLE_PERMISSIONS[Role.PUBLISHER] == {Permission.APPEND}
    assert Permission.READ_PAYLOAD in ROLE_PERMISSIONS[Role.OFFICER]
    assert Permission.READ_PAYLOAD not in ROLE_PERMISSIONS[Role.AUDITOR]
    assert Permission.AUDIT in ROLE_PERMISSIONS[Role.AUDITOR]
    assert ROLE_PERMISSIONS[Role.ADMIN] == {Permission.MANAGE_KEYS, Permission.METRICS}
    for role in Role:
        key = _key(role)
        assert {p for p in Permission if key.may(p)} == ROLE_PERMISSIONS[role]


def test_a_revoked_key_may_do_nothing_and_sees_no_log() -> None:
    key = _key(Role.OFFICER, revoked="2026-11-21T00:00:00.000000Z")
    assert not any(key.may(p) for p in Permission)
    assert not key.sees_log("a.example/log")


def test_stream_prefixes_stop_at_segment_boundaries() -> None:
    key = _key(Role.PUBLISHER, ("controls/iam", "incident/"))
    assert key.may_append_to("controls/iam")
    assert key.may_append_to("controls/iam/host-1")
    assert not key.may_append_to("controls/iam-admin")  # not a sub-stream of controls/iam
    assert key.may_append_to("incident/INC-1")
    assert not key.may_append_to("incidents/INC-1")
    assert not _key(Role.PUBLISHER).may_append_to("controls/iam")  # no prefix, no stream


def test_tokens_round_trip_and_only_the_right_secret_matches() -> None:
    key_id, token, digest = new_token()
    parsed = split_token(token)
    assert parsed is not None and parsed[0] == key_id
    assert secret_matches(parsed[1], digest)
    assert not secret_matches(parsed[1] + "x", digest)


@given(st.text(max_size=300))
def test_junk_tokens_are_refused_without_errors(text: str) -> None:
    parsed = split_token(text)
    if parsed is not None:
        assert text.startswith("lk_") and len(parsed[0]) == 16
