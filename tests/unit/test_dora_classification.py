"""Major-incident classification, significant cyber threats and recurring incidents (DORA.md section 1).

Expected results are written from the rules of Commission Delegated Regulation (EU) 2024/1772 as summarised in
DORA.md section 1, not from what ``ledger.dora.classification`` returns:

* gate (Art. 6, required by Art. 8(1)): 6(a) critical or important functions, 6(b) authorised financial services,
  6(c) successful malicious unauthorised access;
* major (Art. 8(1)) = gate AND (9(5)(b) access that may cause data loss OR at least two of the six Art. 9
  thresholds); one threshold alone never makes an incident major;
* thresholds are strict ("more than", "exceeds"), except geographical spread, "two or more" Member States;
* an absent optional input is unknown, never "no".

``estimated`` on the result: the result rests on an estimate when some estimated input decides it, i.e. when
another value of the estimated inputs (the measured ones unchanged) would change major into non-major or back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.dora.classification import (
    RULE_VERSION,
    Classification,
    ThreatInputs,
    aggregate_recurring,
    assess_threat,
    classify,
)
from schemas.payloads import IncidentClassified

CODES = ("clients", "reputation", "duration", "geography", "data_losses", "economic")
MALICIOUS = "malicious-access-data-loss"
TWO = "two-thresholds"
EITHER = "either path"  # both Art. 8(1) conditions hold: the rule does not say which one to name


class Absent:
    """Marks an optional input as not recorded (unknown)."""


ABSENT = Absent()


@dataclass(frozen=True)
class Est:
    """An estimated input value (Art. 1(5), 3, 7(3))."""

    value: Any


# Every input known and every threshold clearly not met; the gate holds through Art. 6(a) only.
BASE: dict[str, Any] = {
    "affects_critical_functions": True,
    "affects_authorised_financial_services": False,
    "malicious_unauthorised_access": False,
    "malicious_access_may_cause_data_loss": False,
    "clients_affected": 0,
    "clients_total": 1000,
    "counterparts_affected": 0,
    "counterparts_total": 100,
    "transactions_affected_count": 0,
    "transactions_daily_average_count": 1000,
    "transactions_affected_value_eur": "0.00",
    "transactions_daily_average_value_eur": "1000000.00",
    "relevant_client_or_counterpart_affected": False,
    "media_attention": False,
    "repeated_complaints": False,
    "regulatory_requirements_at_risk": False,
    "likely_client_loss": False,
    "duration_minutes": 60,
    "critical_service_downtime_minutes": 0,
    "member_states_affected": ["BE"],
    "data_impact": False,
    "gross_costs_losses_eur": "0.00",
}
GATE_FIELDS = (
    "affects_critical_functions",
    "affects_authorised_financial_services",
    "malicious_unauthorised_access",
    "malicious_access_may_cause_data_loss",
)
OPTIONAL_FIELDS = tuple(name for name in BASE if name not in GATE_FIELDS)
NO_GATE = {
    "affects_critical_functions": False,
    "affects_authorised_financial_services": False,
    "malicious_unauthorised_access": False,
}
ALL_UNKNOWN = dict.fromkeys(OPTIONAL_FIELDS, ABSENT)

# One input that meets each threshold on its own (the rest of BASE unchanged).
TRIGGER: dict[str, dict[str, Any]] = {
    "clients": {"clients_affected": 101},  # > 10% of 1000
    "reputation": {"media_attention": True},
    "duration": {"duration_minutes": 1441},  # > 24 h
    "geography": {"member_states_affected": ["BE", "NL"]},  # two or more
    "data_losses": {"data_impact": True},
    "economic": {"gross_costs_losses_eur": "100000.01"},  # > EUR 100,000
}


def as_input(value: Any) -> dict[str, Any]:
    if isinstance(value, Est):
        return {"value": value.value, "estimated": True, "source": "first assessment", "as_of": "2026-03-02T09:00:00Z"}
    return {"value": value, "estimated": False, "source": "monitoring", "as_of": "2026-03-02T09:00:00Z"}


def incident(*layers: dict[str, Any], incident_id: str = "INC-1") -> IncidentClassified:
    values: dict[str, Any] = dict(BASE)
    for layer in layers:
        values.update(layer)
    data: dict[str, Any] = {
        "incident_id": incident_id,
        "classified_at": "2026-03-02T10:00:00Z",
        "classified_by": "incident-manager",
    }
    for name, value in values.items():
        if not isinstance(value, Absent):
            data[name] = as_input(value)
    return IncidentClassified.model_validate(data)


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer)
    return out


@dataclass(frozen=True)
class Case:
    inputs: dict[str, Any]
    major: bool
    path: str | None
    met: frozenset[str]
    estimated: bool = False
    could_become_major: bool = False
    unknown: frozenset[str] = field(default_factory=frozenset)  # criteria expected to be unknown (met is None)


def case(
    case_id: str,
    inputs: dict[str, Any],
    *,
    major: bool,
    path: str | None,
    met: set[str] | tuple[str, ...] = (),
    estimated: bool = False,
    could_become_major: bool = False,
    unknown: set[str] | tuple[str, ...] = (),
) -> Any:
    return pytest.param(
        Case(inputs, major, path, frozenset(met), estimated, could_become_major, frozenset(unknown)), id=case_id
    )


REP = TRIGGER["reputation"]  # the companion threshold of the boundary cases below
DUR = TRIGGER["duration"]


def boundary(case_id: str, inputs: dict[str, Any], code: str, met: bool, companion: dict[str, Any] = REP) -> Any:
    """A threshold input with a second threshold met: the incident is major exactly when the threshold is met."""
    companion_code = "reputation" if companion is REP else "duration"
    codes = {companion_code, code} if met else {companion_code}
    return case(case_id, merge(companion, inputs), major=met, path=TWO if met else None, met=codes)


BOUNDARY_CASES = [
    # Art. 9(1)(a): more than 10% of the clients using the service.
    boundary("clients-share-99-of-1000-not-met", {"clients_affected": 99}, "clients", False),
    boundary("clients-share-100-of-1000-not-met", {"clients_affected": 100}, "clients", False),
    boundary("clients-share-101-of-1000-met", {"clients_affected": 101}, "clients", True),
    boundary("clients-share-100-of-1001-not-met", {"clients_affected": 100, "clients_total": 1001}, "clients", False),
    boundary("clients-share-101-of-1001-met", {"clients_affected": 101, "clients_total": 1001}, "clients", True),
    # Art. 9(1)(b): more than 100,000 clients (10% of 10,000,000 is 1,000,000: only the absolute limit counts).
    boundary(
        "clients-absolute-99999-not-met",
        {"clients_affected": 99_999, "clients_total": 10_000_000},
        "clients",
        False,
    ),
    boundary(
        "clients-absolute-100000-not-met",
        {"clients_affected": 100_000, "clients_total": 10_000_000},
        "clients",
        False,
    ),
    boundary(
        "clients-absolute-100001-met", {"clients_affected": 100_001, "clients_total": 10_000_000}, "clients", True
    ),
    # Art. 9(1)(c): more than 30% of the financial counterparts.
    boundary("counterparts-29-of-100-not-met", {"counterparts_affected": 29}, "clients", False),
    boundary("counterparts-30-of-100-not-met", {"counterparts_affected": 30}, "clients", False),
    boundary("counterparts-31-of-100-met", {"counterparts_affected": 31}, "clients", True),
    boundary(
        "counterparts-2-of-7-not-met", {"counterparts_affected": 2, "counterparts_total": 7}, "clients", False
    ),  # 30% of 7 is 2.1
    boundary("counterparts-3-of-7-met", {"counterparts_affected": 3, "counterparts_total": 7}, "clients", True),
    # Art. 9(1)(d): more than 10% of the daily average number of transactions.
    boundary("transactions-count-99-of-1000-not-met", {"transactions_affected_count": 99}, "clients", False),
    boundary("transactions-count-100-of-1000-not-met", {"transactions_affected_count": 100}, "clients", False),
    boundary("transactions-count-101-of-1000-met", {"transactions_affected_count": 101}, "clients", True),
    boundary(
        "transactions-count-100-of-1005-not-met",
        {"transactions_affected_count": 100, "transactions_daily_average_count": 1005},
        "clients",
        False,
    ),  # 10% of 1005 is 100.5
    boundary(
        "transactions-count-101-of-1005-met",
        {"transactions_affected_count": 101, "transactions_daily_average_count": 1005},
        "clients",
        True,
    ),
    boundary(
        "transactions-count-1-above-zero-daily-average-met",
        {"transactions_affected_count": 1, "transactions_daily_average_count": 0},
        "clients",
        True,
    ),  # 1 is higher than 10% of 0
    # Art. 9(1)(e): more than 10% of the daily average value of transactions (EUR decimal strings).
    boundary("transactions-value-99999.99-not-met", {"transactions_affected_value_eur": "99999.99"}, "clients", False),
    boundary(
        "transactions-value-100000.00-not-met", {"transactions_affected_value_eur": "100000.00"}, "clients", False
    ),
    boundary("transactions-value-100000.01-met", {"transactions_affected_value_eur": "100000.01"}, "clients", True),
    boundary(
        "transactions-value-123.45-of-1234.56-not-met",
        {"transactions_affected_value_eur": "123.45", "transactions_daily_average_value_eur": "1234.56"},
        "clients",
        False,
    ),  # 10% of 1234.56 is 123.456
    boundary(
        "transactions-value-123.46-of-1234.56-met",
        {"transactions_affected_value_eur": "123.46", "transactions_daily_average_value_eur": "1234.56"},
        "clients",
        True,
    ),
    # Art. 9(1)(f) with Art. 1(3): a relevant client or counterpart affected.
    boundary("relevant-client-or-counterpart-met", {"relevant_client_or_counterpart_affected": True}, "clients", True),
    # Art. 9(2), Art. 2: any one reputational input (companion: duration).
    boundary("reputation-media-attention", {"media_attention": True}, "reputation", True, DUR),
    boundary("reputation-repeated-complaints", {"repeated_complaints": True}, "reputation", True, DUR),
    boundary("reputation-regulatory-at-risk", {"regulatory_requirements_at_risk": True}, "reputation", True, DUR),
    boundary("reputation-likely-client-loss", {"likely_client_loss": True}, "reputation", True, DUR),
    # Art. 9(3)(a): duration longer than 24 hours.
    boundary("duration-1439-not-met", {"duration_minutes": 1439}, "duration", False),
    boundary("duration-1440-not-met", {"duration_minutes": 1440}, "duration", False),
    boundary("duration-1441-met", {"duration_minutes": 1441}, "duration", True),
    # Art. 9(3)(b): downtime of a service supporting critical functions longer than 2 hours.
    boundary("downtime-119-not-met", {"critical_service_downtime_minutes": 119}, "duration", False),
    boundary("downtime-120-not-met", {"critical_service_downtime_minutes": 120}, "duration", False),
    boundary("downtime-121-met", {"critical_service_downtime_minutes": 121}, "duration", True),
    # Art. 9(4), Art. 4: two or more Member States (the RTS threshold, not DORA Art. 18's "more than two").
    boundary("member-states-0-not-met", {"member_states_affected": []}, "geography", False),
    boundary("member-states-1-not-met", {"member_states_affected": ["BE"]}, "geography", False),
    boundary("member-states-2-met", {"member_states_affected": ["BE", "FR"]}, "geography", True),
    boundary("member-states-3-met", {"member_states_affected": ["BE", "FR", "LU"]}, "geography", True),
    # Art. 9(5)(a), Art. 5: adverse impact on data.
    boundary("data-impact-met", {"data_impact": True}, "data_losses", True),
    # Art. 9(6), Art. 7: costs and losses exceed EUR 100,000.
    boundary("costs-99999.99-not-met", {"gross_costs_losses_eur": "99999.99"}, "economic", False),
    boundary("costs-100000.00-not-met", {"gross_costs_losses_eur": "100000.00"}, "economic", False),
    boundary("costs-100000.01-met", {"gross_costs_losses_eur": "100000.01"}, "economic", True),
    boundary("costs-100000-no-decimals-not-met", {"gross_costs_losses_eur": "100000"}, "economic", False),
    boundary("costs-250000-met", {"gross_costs_losses_eur": "250000.00"}, "economic", True),
]

SINGLE_CASES = [
    case(f"single-threshold-{code}-not-major", TRIGGER[code], major=False, path=None, met={code}) for code in CODES
]

PAIR_CASES = [
    case(f"pair-{a}+{b}-major", merge(TRIGGER[a], TRIGGER[b]), major=True, path=TWO, met={a, b})
    for a, b in itertools.combinations(CODES, 2)
]

THREE_AND_MORE_CASES = [
    case(
        "three-clients+duration+economic",
        merge(TRIGGER["clients"], TRIGGER["duration"], TRIGGER["economic"]),
        major=True,
        path=TWO,
        met={"clients", "duration", "economic"},
    ),
    case(
        "three-reputation+geography+data_losses",
        merge(TRIGGER["reputation"], TRIGGER["geography"], TRIGGER["data_losses"]),
        major=True,
        path=TWO,
        met={"reputation", "geography", "data_losses"},
    ),
    case("all-six", merge(*TRIGGER.values()), major=True, path=TWO, met=set(CODES)),
    case(
        "two-inputs-of-one-criterion-count-once",
        {"clients_affected": 101, "counterparts_affected": 31, "transactions_affected_count": 101},
        major=False,
        path=None,
        met={"clients"},
    ),
    case(
        "downtime-and-duration-are-one-criterion",
        {"duration_minutes": 1441, "critical_service_downtime_minutes": 121},
        major=False,
        path=None,
        met={"duration"},
    ),
    case("no-threshold-not-major", {}, major=False, path=None, met=()),
]

GATE_CASES = [
    case(
        "gate-off-three-thresholds-not-major",
        merge(NO_GATE, TRIGGER["clients"], TRIGGER["duration"], TRIGGER["economic"]),
        major=False,
        path=None,
        met={"clients", "duration", "economic"},
    ),
    case(
        "gate-off-all-six-not-major",
        merge(NO_GATE, *TRIGGER.values()),
        major=False,
        path=None,
        met=set(CODES),
    ),
    case(
        "gate-6a-alone-two-thresholds",
        merge(NO_GATE, {"affects_critical_functions": True}, TRIGGER["clients"], TRIGGER["geography"]),
        major=True,
        path=TWO,
        met={"clients", "geography"},
    ),
    case(
        "gate-6b-alone-two-thresholds",
        merge(NO_GATE, {"affects_authorised_financial_services": True}, TRIGGER["clients"], TRIGGER["geography"]),
        major=True,
        path=TWO,
        met={"clients", "geography"},
    ),
    case(
        "gate-6c-alone-no-data-loss-two-thresholds",
        merge(NO_GATE, {"malicious_unauthorised_access": True}, TRIGGER["clients"], TRIGGER["geography"]),
        major=True,
        path=TWO,
        met={"clients", "geography"},
    ),
    case(
        "gate-6c-alone-no-data-loss-one-threshold-not-major",
        merge(NO_GATE, {"malicious_unauthorised_access": True}, TRIGGER["data_losses"]),
        major=False,
        path=None,
        met={"data_losses"},
    ),
    case(
        "art-9-5-b-alone-major",
        merge(NO_GATE, {"malicious_unauthorised_access": True, "malicious_access_may_cause_data_loss": True}),
        major=True,
        path=MALICIOUS,
        met=(),
    ),
    case(
        "art-9-5-b-with-6a-major",
        {"malicious_unauthorised_access": True, "malicious_access_may_cause_data_loss": True},
        major=True,
        path=MALICIOUS,
        met=(),
    ),
    case(
        "art-9-5-b-and-two-thresholds-major",
        merge(
            {"malicious_unauthorised_access": True, "malicious_access_may_cause_data_loss": True},
            TRIGGER["economic"],
            TRIGGER["reputation"],
        ),
        major=True,
        path=EITHER,
        met={"economic", "reputation"},
    ),
]

ESTIMATED_CASES = [
    case(
        "estimated-all-measured-major",
        merge(TRIGGER["clients"], TRIGGER["economic"]),
        major=True,
        path=TWO,
        met={"clients", "economic"},
        estimated=False,
    ),
    case(
        "estimated-threshold-met-by-estimate",
        merge({"clients_affected": Est(101)}, TRIGGER["economic"]),
        major=True,
        path=TWO,
        met={"clients", "economic"},
        estimated=True,
    ),
    case(
        "estimated-costs-estimate-met",
        merge({"gross_costs_losses_eur": Est("150000.00")}, TRIGGER["duration"]),
        major=True,
        path=TWO,
        met={"economic", "duration"},
        estimated=True,
    ),
    case(
        "estimated-only-an-irrelevant-not-met-input",
        merge(TRIGGER["clients"], TRIGGER["economic"], {"duration_minutes": Est(60)}),
        major=True,
        path=TWO,
        met={"clients", "economic"},
        estimated=False,
    ),
    case(
        "estimated-9-5-b-data-loss-estimate",
        merge(NO_GATE, {"malicious_unauthorised_access": True, "malicious_access_may_cause_data_loss": Est(True)}),
        major=True,
        path=MALICIOUS,
        met=(),
        estimated=True,
    ),
    case(
        "estimated-gate-met-by-estimate",
        merge(NO_GATE, {"affects_critical_functions": Est(True)}, TRIGGER["clients"], TRIGGER["economic"]),
        major=True,
        path=TWO,
        met={"clients", "economic"},
        estimated=True,
    ),
    case(
        "estimated-gate-off-by-estimate-not-major",
        merge(NO_GATE, {"affects_critical_functions": Est(False)}, TRIGGER["clients"], TRIGGER["economic"]),
        major=False,
        path=None,
        met={"clients", "economic"},
        estimated=True,
    ),
    case(
        "estimated-gate-off-measured-thresholds-estimated-not-major",
        merge(NO_GATE, {"clients_affected": Est(101), "gross_costs_losses_eur": Est("150000.00")}),
        major=False,
        path=None,
        met={"clients", "economic"},
        estimated=False,
    ),
    # The gate holds through a measured 6(a); the estimated 6(b) cannot change it.
    case(
        "estimated-unused-gate-input-not-deciding",
        merge({"affects_authorised_financial_services": Est(False)}, TRIGGER["clients"], TRIGGER["economic"]),
        major=True,
        path=TWO,
        met={"clients", "economic"},
        estimated=False,
    ),
    # Two measured thresholds already make it major; the third, estimated, cannot change the result.
    case(
        "estimated-third-threshold-not-deciding",
        merge(TRIGGER["clients"], TRIGGER["economic"], {"duration_minutes": Est(1500)}),
        major=True,
        path=TWO,
        met={"clients", "economic", "duration"},
        estimated=False,
    ),
    # Non-major because an estimated duration is at 24 h: a higher actual duration would make it major.
    case(
        "estimated-not-major-rests-on-estimated-not-met",
        merge(TRIGGER["clients"], {"duration_minutes": Est(1440)}),
        major=False,
        path=None,
        met={"clients"},
        estimated=True,
    ),
]

UNKNOWN_CASES = [
    case(
        "unknown-one-met-rest-unknown",
        merge(ALL_UNKNOWN, {"clients_affected": 101, "clients_total": 1000}),
        major=False,
        path=None,
        met={"clients"},
        could_become_major=True,
        unknown={"reputation", "duration", "geography", "data_losses", "economic"},
    ),
    case(
        "unknown-everything-unknown",
        ALL_UNKNOWN,
        major=False,
        path=None,
        met=(),
        could_become_major=True,
        unknown=set(CODES),
    ),
    case(
        "unknown-one-met-one-unknown-rest-not-met",
        merge(TRIGGER["duration"], {"gross_costs_losses_eur": ABSENT}),
        major=False,
        path=None,
        met={"duration"},
        could_become_major=True,
        unknown={"economic"},
    ),
    case(
        "unknown-none-one-met-rest-not-met",
        TRIGGER["duration"],
        major=False,
        path=None,
        met={"duration"},
        could_become_major=False,
    ),
    case(
        "unknown-gate-off-cannot-become-major",
        merge(NO_GATE, ALL_UNKNOWN),
        major=False,
        path=None,
        met=(),
        could_become_major=False,
        unknown=set(CODES),
    ),
    case(
        "unknown-two-met-rest-unknown-major",
        merge(ALL_UNKNOWN, {"duration_minutes": 1441, "data_impact": True}),
        major=True,
        path=TWO,
        met={"duration", "data_losses"},
        could_become_major=False,
        unknown={"clients", "reputation", "geography", "economic"},
    ),
    # 100 of 1000 is not more than 10%, but counterparts, transactions and relevance are unknown: not "no".
    case(
        "unknown-clients-below-share-other-clients-inputs-unknown",
        merge(
            ALL_UNKNOWN,
            {"clients_affected": 100, "clients_total": 1000, "duration_minutes": 1441},
        ),
        major=False,
        path=None,
        met={"duration"},
        could_become_major=True,
        unknown={"clients", "reputation", "geography", "data_losses", "economic"},
    ),
    case(
        "unknown-clients-total-but-absolute-exceeded",
        merge(ALL_UNKNOWN, {"clients_affected": 150_000, "duration_minutes": 1441}),
        major=True,
        path=TWO,
        met={"clients", "duration"},
        unknown={"reputation", "geography", "data_losses", "economic"},
    ),
    case(
        "unknown-reputation-partly-known-no",
        merge(ALL_UNKNOWN, {"media_attention": False, "data_impact": True}),
        major=False,
        path=None,
        met={"data_losses"},
        could_become_major=True,
        unknown={"clients", "reputation", "duration", "geography", "economic"},
    ),
    case(
        "unknown-reputation-one-yes-is-enough",
        merge(ALL_UNKNOWN, {"repeated_complaints": True, "data_impact": True}),
        major=True,
        path=TWO,
        met={"reputation", "data_losses"},
        unknown={"clients", "duration", "geography", "economic"},
    ),
]

ALL_CASES = (
    BOUNDARY_CASES + SINGLE_CASES + PAIR_CASES + THREE_AND_MORE_CASES + GATE_CASES + ESTIMATED_CASES + UNKNOWN_CASES
)


@pytest.mark.parametrize("expected", ALL_CASES)
def test_classify(expected: Case) -> None:
    result = classify(incident(expected.inputs))
    assert isinstance(result, Classification)
    assert result.major is expected.major
    if expected.path == EITHER:
        assert result.path in {MALICIOUS, TWO}
    else:
        assert result.path == expected.path
    assert set(result.met_codes) == expected.met
    assert {c.code for c in result.criteria if c.met is True} == expected.met
    assert result.thresholds_met == len(expected.met)
    assert {c.code for c in result.criteria if c.met is None} == expected.unknown
    assert result.estimated is expected.estimated
    assert result.could_become_major is expected.could_become_major
    assert result.rule_version == RULE_VERSION
    assert result.rule_version


def test_there_are_at_least_forty_cases() -> None:
    assert len(ALL_CASES) >= 40


def test_criteria_are_the_six_thresholds_in_rts_order() -> None:
    result = classify(incident())
    assert tuple(c.code for c in result.criteria) == CODES
    assert all(c.met is False for c in result.criteria)


def test_result_dict_lists_criteria_met_and_rule_version() -> None:
    result = classify(incident(TRIGGER["clients"], TRIGGER["economic"]))
    shown = result.as_dict()
    assert shown["major"] is True
    assert set(shown["criteria_met"]) == {"clients", "economic"}
    assert shown["rule_version"] == RULE_VERSION
    assert shown["rule_version"]
    assert [c["code"] for c in shown["criteria"]] == list(CODES)


def test_criterion_keeps_the_inputs_and_their_estimate_flags() -> None:
    result = classify(incident({"gross_costs_losses_eur": Est("150000.00")}, TRIGGER["duration"]))
    economic = next(c for c in result.criteria if c.code == "economic")
    assert economic.met is True
    assert economic.estimated is True
    assert economic.inputs["gross_costs_losses_eur"]["value"] == "150000.00"
    assert economic.inputs["gross_costs_losses_eur"]["estimated"] is True
    duration = next(c for c in result.criteria if c.code == "duration")
    assert duration.estimated is False


# --- significant cyber threats (Art. 10) ---------------------------------------------------------------


def threat(**changes: bool) -> ThreatInputs:
    values = {
        "could_affect_critical_functions_or_others": True,
        "high_probability": True,
        "would_meet_critical_services": True,
        "would_meet_clients": True,
        "would_meet_geography": True,
    }
    values.update(changes)
    return ThreatInputs(**values)


NOT_C = {"would_meet_critical_services": False, "would_meet_clients": False, "would_meet_geography": False}


@pytest.mark.parametrize(
    ("inputs", "significant"),
    [
        pytest.param(threat(), True, id="all-three-conditions"),
        pytest.param(threat(could_affect_critical_functions_or_others=False), False, id="missing-10a-could-affect"),
        pytest.param(threat(high_probability=False), False, id="missing-10b-high-probability"),
        pytest.param(threat(**NOT_C), False, id="missing-10c-would-meet-nothing"),
        pytest.param(threat(**{**NOT_C, "would_meet_critical_services": True}), True, id="10c-via-art-6-only"),
        pytest.param(threat(**{**NOT_C, "would_meet_clients": True}), True, id="10c-via-art-9-1-only"),
        pytest.param(threat(**{**NOT_C, "would_meet_geography": True}), True, id="10c-via-art-9-4-only"),
        pytest.param(
            threat(could_affect_critical_functions_or_others=False, high_probability=False, **NOT_C),
            False,
            id="none",
        ),
    ],
)
def test_assess_threat(inputs: ThreatInputs, significant: bool) -> None:
    result = assess_threat(inputs)
    assert result.significant is significant
    assert "voluntary" in result.notification
    assert "19(2)" in result.notification
    assert result.rule_version == RULE_VERSION


# --- recurring incidents (Art. 8(2)) -------------------------------------------------------------------


def aggregate(*parts: IncidentClassified) -> IncidentClassified:
    return aggregate_recurring("INC-R", "2026-04-01T09:00:00Z", "incident-manager", list(parts))


def test_recurring_two_different_single_thresholds_aggregate_to_major() -> None:
    first = incident(TRIGGER["clients"], incident_id="INC-A")
    second = incident(TRIGGER["economic"], incident_id="INC-B")
    assert not classify(first).major
    assert not classify(second).major
    result = classify(aggregate(first, second))
    assert result.major is True
    assert result.path == TWO
    assert set(result.met_codes) == {"clients", "economic"}


def test_recurring_summed_counts_cross_thresholds() -> None:
    first = incident({"clients_affected": 60, "duration_minutes": 800}, incident_id="INC-A")
    second = incident({"clients_affected": 60, "duration_minutes": 800}, incident_id="INC-B")
    assert classify(first).met_codes == []
    assert classify(second).met_codes == []
    combined = aggregate(first, second)
    assert combined.clients_affected is not None and combined.clients_affected.value == 120
    assert combined.duration_minutes is not None and combined.duration_minutes.value == 1600
    result = classify(combined)
    assert result.major is True
    assert set(result.met_codes) == {"clients", "duration"}


def test_recurring_summed_costs_and_values_cross_thresholds() -> None:
    first = incident(
        {"gross_costs_losses_eur": "60000.00", "transactions_affected_value_eur": "60000.00"}, incident_id="INC-A"
    )
    second = incident(
        {
            "gross_costs_losses_eur": "40000.01",
            "transactions_affected_value_eur": "50000.00",
            "transactions_daily_average_value_eur": "900000.00",
        },
        incident_id="INC-B",
    )
    result = classify(aggregate(first, second))
    # 100,000.01 > EUR 100,000; 110,000 > 10% of the largest daily average (1,000,000).
    assert result.major is True
    assert set(result.met_codes) == {"economic", "clients"}


def test_recurring_costs_summing_exactly_to_the_limit_do_not_meet_it() -> None:
    first = incident({"gross_costs_losses_eur": "60000.00"}, TRIGGER["duration"], incident_id="INC-A")
    second = incident({"gross_costs_losses_eur": "40000.00"}, incident_id="INC-B")
    result = classify(aggregate(first, second))
    assert result.major is False
    assert set(result.met_codes) == {"duration"}


def test_recurring_member_states_are_the_union() -> None:
    first = incident({"member_states_affected": ["BE"]}, TRIGGER["data_losses"], incident_id="INC-A")
    second = incident({"member_states_affected": ["NL"]}, incident_id="INC-B")
    combined = aggregate(first, second)
    assert combined.member_states_affected is not None
    assert set(combined.member_states_affected.value) == {"BE", "NL"}
    result = classify(combined)
    assert result.major is True
    assert set(result.met_codes) == {"geography", "data_losses"}


def test_recurring_same_member_state_twice_is_one() -> None:
    first = incident({"member_states_affected": ["BE"]}, TRIGGER["data_losses"], incident_id="INC-A")
    second = incident({"member_states_affected": ["BE"]}, incident_id="INC-B")
    combined = aggregate(first, second)
    assert combined.member_states_affected is not None
    assert sorted(combined.member_states_affected.value) == ["BE"]
    assert classify(combined).major is False


def test_recurring_aggregation_method() -> None:
    first = incident(
        {
            "clients_affected": 10,
            "clients_total": 1000,
            "counterparts_affected": 3,
            "counterparts_total": 50,
            "transactions_affected_count": 7,
            "transactions_daily_average_count": 900,
            "transactions_affected_value_eur": "10.50",
            "transactions_daily_average_value_eur": "1000000.00",
            "duration_minutes": 30,
            "critical_service_downtime_minutes": 20,
            "gross_costs_losses_eur": Est("1000.25"),
            "media_attention": True,
            "member_states_affected": ["BE", "FR"],
            "data_impact": ABSENT,
        },
        incident_id="INC-A",
    )
    second = incident(
        NO_GATE,
        {
            "affects_authorised_financial_services": True,
            "clients_affected": 5,
            "clients_total": 2000,
            "counterparts_affected": 4,
            "counterparts_total": 40,
            "transactions_affected_count": 8,
            "transactions_daily_average_count": 1200,
            "transactions_affected_value_eur": "0.25",
            "transactions_daily_average_value_eur": "2000000.00",
            "duration_minutes": 45,
            "critical_service_downtime_minutes": 25,
            "gross_costs_losses_eur": "2000.00",
            "repeated_complaints": True,
            "member_states_affected": ["FR", "LU"],
            "data_impact": ABSENT,
        },
        incident_id="INC-B",
    )
    combined = aggregate(first, second)

    def value(name: str) -> Any:
        item = getattr(combined, name)
        return None if item is None else item.value

    # Sums of counts, values, durations, downtimes and costs.
    assert value("clients_affected") == 15
    assert value("counterparts_affected") == 7
    assert value("transactions_affected_count") == 15
    assert value("transactions_affected_value_eur") == "10.75"
    assert value("duration_minutes") == 75
    assert value("critical_service_downtime_minutes") == 45
    assert value("gross_costs_losses_eur") == "3000.25"
    # The totals they are compared with: the largest reported.
    assert value("clients_total") == 2000
    assert value("counterparts_total") == 50
    assert value("transactions_daily_average_count") == 1200
    assert value("transactions_daily_average_value_eur") == "2000000.00"
    # Yes/no inputs: true when any incident's is.
    assert value("affects_critical_functions") is True
    assert value("affects_authorised_financial_services") is True
    assert value("malicious_unauthorised_access") is False
    assert value("media_attention") is True
    assert value("repeated_complaints") is True
    assert value("likely_client_loss") is False
    # Member States: the union.
    assert set(value("member_states_affected")) == {"BE", "FR", "LU"}
    # Unknown in every incident stays unknown; an estimate in any part makes the aggregate an estimate.
    assert combined.data_impact is None
    assert combined.gross_costs_losses_eur is not None and combined.gross_costs_losses_eur.estimated is True
    assert combined.clients_affected is not None and combined.clients_affected.estimated is False
    result = classify(combined)
    assert result.major is True
    assert set(result.met_codes) == {"reputation", "geography"}


def test_recurring_incidents_that_each_affect_most_clients() -> None:
    # Each incident meets the clients threshold alone (600 of 1000) and lasts 800 minutes: neither is major.
    # Together: clients met, and 1600 minutes > 24 h, so the recurring incident is major (Art. 8(2)).
    first = incident({"clients_affected": 600, "duration_minutes": 800}, incident_id="INC-A")
    second = incident({"clients_affected": 600, "duration_minutes": 800}, incident_id="INC-B")
    assert classify(first).major is False
    assert classify(second).major is False
    result = classify(aggregate(first, second))
    assert result.major is True
    assert set(result.met_codes) == {"clients", "duration"}


def test_recurring_still_one_threshold_is_not_major() -> None:
    first = incident({"clients_affected": 30}, incident_id="INC-A")
    second = incident({"clients_affected": 30}, TRIGGER["economic"], incident_id="INC-B")
    result = classify(aggregate(first, second))
    assert result.major is False
    assert set(result.met_codes) == {"economic"}
