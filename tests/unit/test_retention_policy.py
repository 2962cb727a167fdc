"""Retention policy, legal holds, disposal and erasure decisions (DORA.md sections 3 and 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import ConfigurationError, ValidationError
from retention.policy import (
    DEFAULT_RETENTION_WORDING,
    RULE_DISPOSAL_EXPIRED,
    RULE_DISPOSAL_NOT_EXPIRED,
    RULE_DISPOSAL_NOT_RUNNING,
    RULE_ERASURE_ALLOWED,
    RULE_ERASURE_HOLD,
    RULE_ERASURE_LAW,
    RULE_LEGAL_HOLD,
    LegalHold,
    RetentionClass,
    add_years,
    disposal_decision,
    erasure_decision,
    holds_covering,
    load_policy,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def dt(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def hold(
    scope_kind: str = "stream",
    scope: str = "controls/x",
    *,
    hold_id: str = "h1",
    released_at: datetime | None = None,
) -> LegalHold:
    return LegalHold(
        hold_id=hold_id,
        scope_kind=scope_kind,  # type: ignore[arg-type]
        scope=scope,
        actor="legal@bank",
        reason="litigation",
        case_id="case-1",
        set_at=T0,
        released_at=released_at,
    )


LOG_TOML = """
[classes.log]
years = 3
justification = "Security logs: 3 years covers the detection and forensic window (RTS 2024/1774 Art. 12)."
"""


# --- wording and defaults ---------------------------------------------------------------------------


def test_default_wording_is_dora_md_section_3() -> None:
    assert DEFAULT_RETENTION_WORDING == (
        "Default retention: 7 years from the event (or from incident closure) - an entity-configurable policy."
    )


@pytest.mark.parametrize(
    ("name", "years", "extendable", "by_law", "basis_words"),
    [
        ("default", 7, None, False, ("Entity policy", "MiFID II", "Art. III.88 CEL")),
        ("aml", 10, None, True, ("Art. 60",)),
        ("mifid", 5, 7, True, ("MiFID II",)),
        ("log", None, None, False, ("RTS 2024/1774 Art. 12",)),
    ],
)
def test_default_classes(
    name: str, years: int | None, extendable: int | None, by_law: bool, basis_words: tuple[str, ...]
) -> None:
    cls = load_policy(None).classes[name]
    assert (cls.years, cls.extendable_to_years, cls.required_by_law) == (years, extendable, by_law)
    for word in basis_words:
        assert word in cls.legal_basis


# --- class_for ---------------------------------------------------------------------------------------

MAPPING_TOML = (
    LOG_TOML
    + """
[event_types]
"check.result" = "default"
"approval.decision" = "mifid"
"incident.*" = "default"
"aml.*" = "aml"
"aml.kyc.*" = "mifid"
"aml.kyc.refresh" = "log"
"access.*" = "log"
"""
)


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("check.result", "default"),
        ("approval.decision", "mifid"),
        ("incident.opened", "default"),
        ("aml.alert", "aml"),
        ("aml.kyc.done", "mifid"),  # longest prefix wins
        ("aml.kyc.refresh", "log"),  # exact beats every prefix
        ("aml", "default"),  # "aml.*" needs the dot: the bare word is not matched
        ("amlx.alert", "default"),  # nor a longer first segment
        ("access.login", "log"),
        ("something.else", "default"),
        ("check.result.extra", "default"),  # exact entries are not prefixes
    ],
)
def test_class_for(event_type: str, expected: str) -> None:
    assert load_policy(MAPPING_TOML).class_for(event_type).name == expected


def test_default_policy_maps_everything_to_default() -> None:
    assert load_policy(None).class_for("anything.at.all").name == "default"


# --- configuration errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml_text", "path"),
    [
        ("[classes.log]\njustification = 'why'\n", "classes.log.years"),
        ("[classes.log]\nyears = 2\n", "classes.log.justification"),
        ("[classes.log]\nyears = 2\njustification = '  '\n", "classes.log.justification"),
        ("[classes.default]\nyears = -1\n", "classes.default.years"),
        ("[classes.default]\nyears = true\n", "classes.default.years"),
        ("[classes.default]\nyears = 7\nkeep = 1\n", "classes.default.keep"),
        ("[classes.custom]\nyears = 7\n", "classes.custom"),
        ("[classes.aml]\nyears = 9\n", "classes.aml.years"),
        ("[classes.aml]\nrequired_by_law = false\n", "classes.aml.required_by_law"),
        ("[classes.mifid]\nyears = 6\nextendable_to_years = 5\n", "classes.mifid.extendable_to_years"),
        ("[event_types]\n'check.result' = 'nope'\n", 'event_types."check.result"'),
        ("[event_types]\n'check.result' = 3\n", 'event_types."check.result"'),
        ("[event_types]\n'check.result' = 'log'\n", 'event_types."check.result"'),  # log not configured
        ("[event_types]\n'check*' = 'default'\n", 'event_types."check*"'),
        ("[event_types]\n'.*' = 'default'\n", 'event_types.".*"'),
        ("[event_types]\n'a.*.b.*' = 'default'\n", 'event_types."a.*.b.*"'),
        ("colour = 'blue'\n", "colour"),
        ("classes = 1\n", "classes"),
        ("event_types = 1\n", "event_types"),
        ("[classes\n", "invalid TOML"),
    ],
)
def test_configuration_errors_name_the_path(toml_text: str, path: str) -> None:
    with pytest.raises(ConfigurationError, match=path.replace(".", r"\.").replace("*", r"\*")):
        load_policy(toml_text)


def test_configured_log_class_and_overrides() -> None:
    policy = load_policy(LOG_TOML + "[classes.aml]\nyears = 12\n[classes.mifid]\nyears = 7\n")
    log = policy.classes["log"]
    assert log.years == 3 and log.justification and "Art. 12" in log.justification
    assert policy.classes["aml"].years == 12 and policy.classes["aml"].required_by_law
    assert policy.classes["mifid"].years == 7


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"name": "log", "years": 2, "justification": None}, "classes.log.justification"),
        ({"name": "default", "years": None}, "classes.default.years"),
        ({"name": "default", "years": -2}, "classes.default.years"),
        ({"name": "x", "years": 1, "legal_basis": " "}, "classes.x.legal_basis"),
    ],
)
def test_retention_class_validation(kwargs: dict[str, object], path: str) -> None:
    base: dict[str, object] = {"extendable_to_years": None, "justification": None, "legal_basis": "law"}
    with pytest.raises(ConfigurationError, match=path.replace(".", r"\.")):
        RetentionClass(**{**base, **kwargs})  # type: ignore[arg-type]


# --- year arithmetic and retain_until -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "years", "expected"),
    [
        (dt(2024, 2, 29, 10), 7, dt(2031, 2, 28, 10)),  # leap day into a common year
        (dt(2024, 2, 29, 10), 4, dt(2028, 2, 29, 10)),  # leap day into a leap year
        (dt(2024, 2, 28), 1, dt(2025, 2, 28)),
        (dt(2023, 3, 1), 1, dt(2024, 3, 1)),
        (dt(2020, 12, 31, 23, 59, 59), 10, dt(2030, 12, 31, 23, 59, 59)),
        (dt(2020, 1, 1), 0, dt(2020, 1, 1)),
    ],
)
def test_add_years(start: datetime, years: int, expected: datetime) -> None:
    assert add_years(start, years) == expected


def test_add_years_keeps_the_timezone() -> None:
    tz = timezone(timedelta(hours=2), "CEST")
    start = datetime(2020, 6, 1, 8, tzinfo=tz)
    assert add_years(start, 7).tzinfo is tz


@pytest.mark.parametrize(
    ("event_type", "stream", "occurred", "closed", "expected"),
    [
        ("check.result", "controls/x", dt(2024, 5, 1), None, dt(2031, 5, 1)),
        ("aml.alert", "aml/1", dt(2024, 5, 1), None, dt(2034, 5, 1)),
        ("approval.decision", "approvals/1", dt(2024, 5, 1), None, dt(2029, 5, 1)),
        ("access.login", "access/1", dt(2024, 2, 29), None, dt(2027, 2, 28)),
        ("incident.opened", "incident/42", dt(2024, 5, 1), None, None),  # open incident: not yet running
        ("incident.opened", "incident/42", dt(2024, 5, 1), dt(2025, 1, 10), dt(2032, 1, 10)),  # from closure
        ("incident.note", "incident/42", dt(2025, 3, 1), dt(2025, 1, 10), dt(2032, 3, 1)),  # after closure
        ("check.result", "incidents-archive/1", dt(2024, 5, 1), None, dt(2031, 5, 1)),  # not "incident/"
    ],
)
def test_retain_until(
    event_type: str, stream: str, occurred: datetime, closed: datetime | None, expected: datetime | None
) -> None:
    policy = load_policy(MAPPING_TOML)
    assert policy.retain_until(event_type, occurred, incident_closed_at=closed, stream=stream) == expected


def test_retain_until_refusals() -> None:
    policy = load_policy(None)
    with pytest.raises(ValidationError, match="incident_closed_at"):
        policy.retain_until("x.y", T0, incident_closed_at=T0, stream="controls/x")
    with pytest.raises(ValidationError, match="occurred_at"):
        policy.retain_until("x.y", datetime(2024, 1, 1), stream="controls/x")
    with pytest.raises(ValidationError, match="incident_closed_at"):
        policy.retain_until("x.y", T0, incident_closed_at=datetime(2024, 1, 1), stream="incident/1")


# --- legal holds -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scope", "stream", "incident_id", "case_ids", "covered"),
    [
        ("stream", "controls/x", "controls/x", None, set(), True),
        ("stream", "controls/x", "controls/x/y", None, set(), False),
        ("stream_prefix", "controls", "controls/x", None, set(), True),
        ("stream_prefix", "controls", "controls/x/y", None, set(), True),
        ("stream_prefix", "controls", "controls", None, set(), True),
        ("stream_prefix", "controls", "controls-x", None, set(), False),
        ("stream_prefix", "controls", "controlsx/y", None, set(), False),
        ("stream_prefix", "controls/", "controls/x", None, set(), True),
        ("stream_prefix", "controls/x", "controls/xy", None, set(), False),
        ("incident", "inc-7", "incident/inc-7", "inc-7", set(), True),
        ("incident", "inc-7", "incident/inc-8", "inc-8", set(), False),
        ("incident", "inc-7", "controls/x", None, set(), False),
        ("case", "case-9", "controls/x", None, {"case-1", "case-9"}, True),
        ("case", "case-9", "controls/x", None, {"case-1"}, False),
    ],
)
def test_holds_covering_scopes(
    kind: str, scope: str, stream: str, incident_id: str | None, case_ids: set[str], covered: bool
) -> None:
    h = hold(kind, scope)
    assert holds_covering(stream, incident_id, case_ids, [h]) == ([h] if covered else [])


def test_holds_covering_returns_active_only() -> None:
    active = hold("stream_prefix", "controls", hold_id="a")
    released = hold("stream_prefix", "controls", hold_id="r", released_at=T0 + timedelta(days=1))
    assert holds_covering("controls/x", None, set(), [active, released]) == [active]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"scope_kind": "tenant"}, "scope_kind"),
        ({"actor": ""}, "actor"),
        ({"reason": " "}, "reason"),
        ({"case_id": ""}, "case_id"),
        ({"scope": ""}, "scope"),
        ({"set_at": datetime(2024, 1, 1)}, "set_at"),
        ({"released_at": T0 - timedelta(seconds=1)}, "released_at"),
    ],
)
def test_legal_hold_validation(changes: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "hold_id": "h",
        "scope_kind": "stream",
        "scope": "s",
        "actor": "a",
        "reason": "r",
        "case_id": "c",
        "set_at": T0,
        "released_at": None,
    }
    with pytest.raises(ValidationError) as info:
        LegalHold(**{**base, **changes})  # type: ignore[arg-type]
    assert info.value.field == field


# --- disposal ----------------------------------------------------------------------------------------

END = dt(2031, 5, 1)


@pytest.mark.parametrize(
    ("now", "retain_until", "holds", "eligible", "rule"),
    [
        (END - timedelta(microseconds=1), END, [], False, RULE_DISPOSAL_NOT_EXPIRED),
        (END, END, [], True, RULE_DISPOSAL_EXPIRED),  # boundary: now >= retain_until is eligible
        (END + timedelta(days=1), END, [], True, RULE_DISPOSAL_EXPIRED),
        (END + timedelta(days=1), None, [], False, RULE_DISPOSAL_NOT_RUNNING),  # open incident
        (END + timedelta(days=1), END, [hold()], False, RULE_LEGAL_HOLD),
        (END, END, [hold(released_at=END)], True, RULE_DISPOSAL_EXPIRED),  # released holds do not block
    ],
)
def test_disposal_decision(
    now: datetime, retain_until: datetime | None, holds: list[LegalHold], eligible: bool, rule: str
) -> None:
    decision = disposal_decision(now, retain_until, holds)
    assert (decision.eligible, decision.rule) == (eligible, rule)
    assert decision.reason


def test_eligible_disposal_is_never_an_automatic_delete() -> None:
    decision = disposal_decision(END, END, [])
    assert "never an automatic delete" in decision.rule and "signed disposal event" in decision.rule


def test_disposal_refuses_naive_now() -> None:
    with pytest.raises(ValidationError, match="now"):
        disposal_decision(datetime(2031, 5, 1), END, [])


aware_datetimes = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(
    now=aware_datetimes,
    retain_until=st.none() | aware_datetimes,
    kind_scope=st.sampled_from(
        [("stream", "controls/x"), ("stream_prefix", "controls"), ("incident", "inc-1"), ("case", "case-1")]
    ),
    extra_released=st.integers(min_value=0, max_value=3),
)
def test_disposal_never_eligible_while_a_covering_hold_is_active(
    now: datetime, retain_until: datetime | None, kind_scope: tuple[str, str], extra_released: int
) -> None:
    kind, scope = kind_scope
    holds = [hold(kind, scope, hold_id="active")] + [
        hold(kind, scope, hold_id=f"r{i}", released_at=T0 + timedelta(days=1)) for i in range(extra_released)
    ]
    covering = holds_covering("controls/x", "inc-1", {"case-1"}, holds)
    assert covering
    decision = disposal_decision(now, retain_until, covering)
    assert not decision.eligible
    assert decision.rule == RULE_LEGAL_HOLD


# --- erasure -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_name", "now", "retain_until", "holds", "action", "until", "rule"),
    [
        ("aml", END - timedelta(days=1), END, [], "defer", END, RULE_ERASURE_LAW),
        ("aml", END - timedelta(microseconds=1), END, [], "defer", END, RULE_ERASURE_LAW),
        ("aml", END, END, [], "erase", None, RULE_ERASURE_ALLOWED),  # legal retention ended at its end instant
        ("aml", END, None, [], "defer", None, RULE_ERASURE_LAW),  # open incident: retention not started
        ("default", END - timedelta(days=1), END, [], "erase", None, RULE_ERASURE_ALLOWED),  # policy, not law
        ("mifid", END - timedelta(days=1), END, [], "defer", END, RULE_ERASURE_LAW),  # a legal record duty
        ("default", END - timedelta(days=1), END, [hold()], "defer", None, RULE_ERASURE_HOLD),
        ("aml", END - timedelta(days=1), END, [hold()], "defer", None, RULE_ERASURE_HOLD),  # hold outlasts
        ("default", END, END, [hold(released_at=END)], "erase", None, RULE_ERASURE_ALLOWED),
    ],
)
def test_erasure_decision(
    class_name: str,
    now: datetime,
    retain_until: datetime | None,
    holds: list[LegalHold],
    action: str,
    until: datetime | None,
    rule: str,
) -> None:
    decision = erasure_decision(now, load_policy(None).classes[class_name], retain_until, holds)
    assert (decision.action, decision.until, decision.rule) == (action, until, rule)
    assert decision.reason


def test_erasure_rules_cite_gdpr_articles() -> None:
    assert "GDPR Art. 17(3)(b)" in RULE_ERASURE_LAW
    assert "GDPR Art. 17(3)(e)" in RULE_ERASURE_HOLD
    assert "DORA.md 3: legal hold suspends expiry" in RULE_LEGAL_HOLD
