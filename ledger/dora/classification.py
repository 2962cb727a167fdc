"""Major-incident classification under Commission Delegated Regulation (EU) 2024/1772.  Pure: no I/O, no clock.

The rule (Art. 8(1)): an incident is major when it affects critical services (the gate, Art. 6) AND either it is
a successful, malicious and unauthorised access that may lead to data losses (Art. 9(5)(b)), or at least two of
the six thresholds of Art. 9 are met.  Every comparison is strict ("more than", "exceeds"), except geographical
spread, which the RTS sets at "two or more" Member States (Art. 4; DORA Art. 18 says "more than two", the RTS
threshold is what applies).  There is no primary/secondary split in the adopted text, and no single threshold
makes an incident major.

Inputs that are absent are *unknown*, never read as "no": a criterion is ``met`` (True), ``not met`` (False)
or ``unknown`` (None), and the result says whether the unknowns could still make the incident major.  Each
criterion carries the inputs it used and whether any was an estimate (Art. 1(5), 3, 7(3)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from schemas.payloads import IncidentClassified, Input

__all__ = [
    "RULE_VERSION",
    "THRESHOLD_CODES",
    "Classification",
    "Criterion",
    "ThreatAssessment",
    "ThreatInputs",
    "aggregate_recurring",
    "assess_threat",
    "classify",
]

RULE_VERSION = "rts-2024-1772/art8-v1"
"""Names the rules below; a change to any threshold or to the Art. 8 rule must change it."""

CLIENTS_SHARE = Decimal("0.10")  # Art. 9(1)(b): more than 10% of the clients using the service
CLIENTS_ABSOLUTE = 100_000  # Art. 9(1)(b): more than 100,000 clients
COUNTERPARTS_SHARE = Decimal("0.30")  # Art. 9(1)(c): more than 30% of the financial counterparts
TRANSACTIONS_SHARE = Decimal("0.10")  # Art. 9(1)(d): more than 10% of the daily average (number or value)
DURATION_MINUTES = 24 * 60  # Art. 9(3)(a): duration longer than 24 hours
DOWNTIME_MINUTES = 2 * 60  # Art. 9(3)(b): downtime longer than 2 hours of a service supporting critical functions
MEMBER_STATES = 2  # Art. 9(4): impact in two or more Member States
ECONOMIC_EUR = Decimal("100000")  # Art. 9(6): costs and losses exceed EUR 100,000

Tri = bool | None  # True met, False not met, None unknown
THRESHOLD_CODES = ("clients", "reputation", "duration", "geography", "data_losses", "economic")


@dataclass(frozen=True, slots=True)
class Criterion:
    """One criterion evaluated: ``met`` is True, False or None (unknown), with the rule it applies."""

    code: str
    article: str
    met: Tri
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    estimated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "article": self.article,
            "met": self.met,
            "reason": self.reason,
            "inputs": self.inputs,
            "estimated": self.estimated,
        }


@dataclass(frozen=True, slots=True)
class Classification:
    major: bool
    path: Literal["malicious-access-data-loss", "two-thresholds"] | None
    gate: Criterion
    malicious_access: Criterion
    criteria: tuple[Criterion, ...]  # the six thresholds of Art. 9, in the RTS order
    thresholds_met: int
    could_become_major: bool  # not major now, but unknown inputs could make it major
    could_become_non_major: bool  # major now, but resting on unknowns being resolved the same way: never (False)
    estimated: bool  # the result rests on at least one estimated input
    rule_version: str = RULE_VERSION

    @property
    def met_codes(self) -> list[str]:
        return [c.code for c in self.criteria if c.met]

    def as_dict(self) -> dict[str, Any]:
        return {
            "major": self.major,
            "path": self.path,
            "rule": "RTS 2024/1772 Art. 8(1): gate (Art. 6) and (Art. 9(5)(b) or at least two Art. 9 thresholds)",
            "rule_version": self.rule_version,
            "gate": self.gate.as_dict(),
            "malicious_access_data_loss": self.malicious_access.as_dict(),
            "criteria": [c.as_dict() for c in self.criteria],
            "thresholds_met": self.thresholds_met,
            "criteria_met": self.met_codes,
            "could_become_major": self.could_become_major,
            "estimated": self.estimated,
        }


# --- helpers -------------------------------------------------------------------------------------------


def _value(item: Input[Any] | None) -> Any:
    return None if item is None else item.value


def _described(inputs: dict[str, Input[Any] | None]) -> tuple[dict[str, Any], bool]:
    shown: dict[str, Any] = {}
    estimated = False
    for name, item in inputs.items():
        if item is None:
            shown[name] = None
            continue
        shown[name] = {"value": item.value, "estimated": item.estimated, "source": item.source, "as_of": item.as_of}
        estimated = estimated or item.estimated
    return shown, estimated


def _any(values: Sequence[Tri]) -> Tri:
    """Three-valued OR: met if any is met, not met if all are known and not met, else unknown."""
    if any(v is True for v in values):
        return True
    if all(v is False for v in values):
        return False
    return None


def _share_exceeds(part: Any, whole: Any, share: Decimal) -> Tri:
    """``part > share * whole`` exactly (strict, in decimals); unknown when either is unknown."""
    if part is None or whole is None:
        return None
    return Decimal(str(part)) > share * Decimal(str(whole))


def _exceeds(value: Any, limit: Decimal | int) -> Tri:
    return None if value is None else Decimal(str(value)) > Decimal(limit)


def _criterion(
    code: str, article: str, met: Tri, inputs: dict[str, Input[Any] | None], why: dict[Tri, str]
) -> Criterion:
    shown, estimated = _described(inputs)
    return Criterion(code, article, met, why[met], shown, estimated if met is not None else False)


# --- the criteria --------------------------------------------------------------------------------------


def _gate(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 6 (a), (b), (c): any one of them makes the incident affect critical services.
    parts = {
        "affects_critical_functions": c.affects_critical_functions,
        "affects_authorised_financial_services": c.affects_authorised_financial_services,
        "malicious_unauthorised_access": c.malicious_unauthorised_access,
    }
    met = _any([_value(v) for v in parts.values()])
    return _criterion(
        "critical_services",
        "RTS 2024/1772 Art. 6",
        met,
        dict(parts),
        {
            True: "affects critical services (Art. 6(a), (b) or (c))",
            False: "affects no critical or important function, no authorised financial service, and no "
            "successful malicious unauthorised access",
            None: "unknown",
        },
    )


def _malicious_access(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 9(5)(b): successful, malicious and unauthorised access that may cause data losses.
    access, loss = _value(c.malicious_unauthorised_access), _value(c.malicious_access_may_cause_data_loss)
    met: Tri = False if access is False or loss is False else (None if access is None or loss is None else True)
    return _criterion(
        "malicious_access_data_loss",
        "RTS 2024/1772 Art. 9(5)(b)",
        met,
        {
            "malicious_unauthorised_access": c.malicious_unauthorised_access,
            "malicious_access_may_cause_data_loss": c.malicious_access_may_cause_data_loss,
        },
        {
            True: "successful malicious unauthorised access that may cause data losses",
            False: "no malicious unauthorised access that may cause data losses",
            None: "unknown",
        },
    )


def _clients(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 9(1), counting rules Art. 1.
    met = _any(
        [
            _share_exceeds(_value(c.clients_affected), _value(c.clients_total), CLIENTS_SHARE),
            _exceeds(_value(c.clients_affected), CLIENTS_ABSOLUTE),
            _share_exceeds(_value(c.counterparts_affected), _value(c.counterparts_total), COUNTERPARTS_SHARE),
            _share_exceeds(
                _value(c.transactions_affected_count), _value(c.transactions_daily_average_count), TRANSACTIONS_SHARE
            ),
            _share_exceeds(
                _value(c.transactions_affected_value_eur),
                _value(c.transactions_daily_average_value_eur),
                TRANSACTIONS_SHARE,
            ),
            _value(c.relevant_client_or_counterpart_affected),
        ]
    )
    return _criterion(
        "clients",
        "RTS 2024/1772 Art. 9(1), Art. 1",
        met,
        {
            "clients_affected": c.clients_affected,
            "clients_total": c.clients_total,
            "counterparts_affected": c.counterparts_affected,
            "counterparts_total": c.counterparts_total,
            "transactions_affected_count": c.transactions_affected_count,
            "transactions_daily_average_count": c.transactions_daily_average_count,
            "transactions_affected_value_eur": c.transactions_affected_value_eur,
            "transactions_daily_average_value_eur": c.transactions_daily_average_value_eur,
            "relevant_client_or_counterpart_affected": c.relevant_client_or_counterpart_affected,
        },
        {
            True: "clients > 10% or > 100,000, counterparts > 30%, transactions > 10% of the daily average "
            "(number or value), or a relevant client or counterpart affected",
            False: "below every clients, counterparts and transactions threshold",
            None: "not every input of Art. 9(1) is known and none known exceeds its threshold",
        },
    )


def _reputation(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 9(2), Art. 2.
    parts = {
        "media_attention": c.media_attention,
        "repeated_complaints": c.repeated_complaints,
        "regulatory_requirements_at_risk": c.regulatory_requirements_at_risk,
        "likely_client_loss": c.likely_client_loss,
    }
    return _criterion(
        "reputation",
        "RTS 2024/1772 Art. 9(2), Art. 2",
        _any([_value(v) for v in parts.values()]),
        dict(parts),
        {
            True: "media attention, repeated complaints, regulatory requirements at risk or likely loss of clients",
            False: "no reputational impact",
            None: "reputational impact not fully known",
        },
    )


def _duration(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 9(3), Art. 3: duration > 24 h, or downtime of a critical service > 2 h.
    met = _any(
        [
            _exceeds(_value(c.duration_minutes), DURATION_MINUTES),
            _exceeds(_value(c.critical_service_downtime_minutes), DOWNTIME_MINUTES),
        ]
    )
    return _criterion(
        "duration",
        "RTS 2024/1772 Art. 9(3), Art. 3",
        met,
        {
            "duration_minutes": c.duration_minutes,
            "critical_service_downtime_minutes": c.critical_service_downtime_minutes,
        },
        {
            True: "duration longer than 24 hours or critical-service downtime longer than 2 hours",
            False: "duration at most 24 hours and critical-service downtime at most 2 hours",
            None: "duration or downtime unknown",
        },
    )


def _geography(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 9(4), Art. 4: two or more Member States.
    states = _value(c.member_states_affected)
    met: Tri = None if states is None else len(states) >= MEMBER_STATES
    return _criterion(
        "geography",
        "RTS 2024/1772 Art. 9(4), Art. 4",
        met,
        {"member_states_affected": c.member_states_affected},
        {True: "impact in two or more Member States", False: "impact in fewer than two Member States", None: "unknown"},
    )


def _data_losses(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 9(5)(a), Art. 5.
    return _criterion(
        "data_losses",
        "RTS 2024/1772 Art. 9(5)(a), Art. 5",
        _value(c.data_impact),
        {"data_impact": c.data_impact},
        {
            True: "adverse impact on availability, authenticity, integrity or confidentiality of data",
            False: "no adverse impact on data",
            None: "unknown",
        },
    )


def _economic(c: IncidentClassified) -> Criterion:
    # RTS 2024/1772 Art. 9(6), Art. 7: gross costs and losses exceed EUR 100,000.
    return _criterion(
        "economic",
        "RTS 2024/1772 Art. 9(6), Art. 7",
        _exceeds(_value(c.gross_costs_losses_eur), ECONOMIC_EUR),
        {"gross_costs_losses_eur": c.gross_costs_losses_eur},
        {True: "costs and losses exceed EUR 100,000", False: "costs and losses at most EUR 100,000", None: "unknown"},
    )


# --- the rule ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    gate: Criterion
    access: Criterion
    criteria: tuple[Criterion, ...]
    met: int
    unknown: int

    @property
    def decision(self) -> Tri:
        """Art. 8(1) in three values: major (True), not major (False), or not decidable on what is known (None)."""
        if self.gate.met is True and (self.access.met is True or self.met >= 2):
            return True
        if self.gate.met is False or (self.access.met is False and self.met + self.unknown < 2):
            return False
        return None


def _evaluate(inputs: IncidentClassified) -> _Outcome:
    criteria = (
        _clients(inputs),
        _reputation(inputs),
        _duration(inputs),
        _geography(inputs),
        _data_losses(inputs),
        _economic(inputs),
    )
    return _Outcome(
        _gate(inputs),
        _malicious_access(inputs),
        criteria,
        sum(1 for c in criteria if c.met is True),
        sum(1 for c in criteria if c.met is None),
    )


def _without_estimates(inputs: IncidentClassified) -> IncidentClassified:
    """The same inputs with every estimated value treated as unknown (no validation: a what-if copy only)."""
    masked = {
        name: None
        for name in type(inputs).model_fields
        if isinstance(item := getattr(inputs, name), Input) and item.estimated
    }
    return inputs.model_copy(update=masked)


def classify(inputs: IncidentClassified) -> Classification:
    """Apply RTS 2024/1772 Art. 8(1) to the recorded inputs.

    ``estimated`` says whether the result rests on estimates: with every estimated input treated as unknown, the
    decision could no longer be made (or would differ).  ``could_become_major``: not major now, but inputs that
    are unknown could still make it major.
    """
    outcome = _evaluate(inputs)
    path: Literal["malicious-access-data-loss", "two-thresholds"] | None = None
    if outcome.decision is True:
        # Art. 8(1): the 9(5)(b) access alone suffices with the gate; otherwise at least two thresholds
        path = "malicious-access-data-loss" if outcome.access.met is True else "two-thresholds"
    major = path is not None
    rests_on_estimates = _evaluate(_without_estimates(inputs)).decision != outcome.decision
    return Classification(
        major=major,
        path=path,
        gate=outcome.gate,
        malicious_access=outcome.access,
        criteria=outcome.criteria,
        thresholds_met=outcome.met,
        could_become_major=outcome.decision is None,
        could_become_non_major=False,
        estimated=rests_on_estimates,
    )


# --- significant cyber threats (Art. 10) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreatInputs:
    """What is known of a cyber threat (RTS 2024/1772 Art. 10)."""

    could_affect_critical_functions_or_others: bool
    high_probability: bool
    would_meet_critical_services: bool  # Art. 6, if the threat materialised
    would_meet_clients: bool  # Art. 9(1)
    would_meet_geography: bool  # Art. 9(4)


@dataclass(frozen=True, slots=True)
class ThreatAssessment:
    significant: bool
    reasons: tuple[str, ...]
    notification: str = "voluntary (DORA Art. 19(2))"
    rule_version: str = RULE_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "significant": self.significant,
            "reasons": list(self.reasons),
            "notification": self.notification,
            "rule": "RTS 2024/1772 Art. 10",
            "rule_version": self.rule_version,
        }


def assess_threat(threat: ThreatInputs) -> ThreatAssessment:
    """RTS 2024/1772 Art. 10: all of (a) could affect critical functions or others, (b) high probability, and
    (c) would meet Art. 6, 9(1) or 9(4) if it materialised."""
    reasons = []
    a = threat.could_affect_critical_functions_or_others
    b = threat.high_probability
    c = threat.would_meet_critical_services or threat.would_meet_clients or threat.would_meet_geography
    reasons.append("Art. 10(a): " + ("could affect critical functions or other entities" if a else "not met"))
    reasons.append("Art. 10(b): " + ("high probability of materialising" if b else "not met"))
    reasons.append("Art. 10(c): " + ("would meet Art. 6, 9(1) or 9(4)" if c else "not met"))
    return ThreatAssessment(a and b and c, tuple(reasons))


# --- recurring incidents (Art. 8(2)) -------------------------------------------------------------------

_SUMMED = (
    "clients_affected",
    "counterparts_affected",
    "transactions_affected_count",
    "transactions_affected_value_eur",
    "duration_minutes",
    "critical_service_downtime_minutes",
    "gross_costs_losses_eur",
)
_LARGEST = (
    "clients_total",
    "counterparts_total",
    "transactions_daily_average_count",
    "transactions_daily_average_value_eur",
)
_EITHER = (
    "affects_critical_functions",
    "affects_authorised_financial_services",
    "malicious_unauthorised_access",
    "malicious_access_may_cause_data_loss",
    "relevant_client_or_counterpart_affected",
    "media_attention",
    "repeated_complaints",
    "regulatory_requirements_at_risk",
    "likely_client_loss",
    "data_impact",
)


def aggregate_recurring(
    incident_id: str, classified_at: str, classified_by: str, parts: Sequence[IncidentClassified]
) -> IncidentClassified:
    """Combine recurring incidents into one set of inputs (the documented aggregation policy; the RTS is silent).

    Counts, values, durations, downtimes and costs are summed; the totals they are compared with take the largest
    reported value (summed affected clients or counterparts are capped at that total, since the same clients may be
    affected by every recurrence); yes/no inputs are true when any incident's is; Member States are the union.
    An input unknown in every incident stays unknown; an estimate in any part makes the sum an estimate.
    """
    data: dict[str, Any] = {"incident_id": incident_id, "classified_at": classified_at, "classified_by": classified_by}
    data["rule_version"] = RULE_VERSION
    for name in _SUMMED + _LARGEST + _EITHER + ("member_states_affected",):
        items = [getattr(p, name) for p in parts if getattr(p, name) is not None]
        if not items:
            continue
        estimated = any(i.estimated for i in items)
        if name in _SUMMED:
            total = sum(Decimal(str(i.value)) for i in items)
            value: Any = str(total) if name.endswith("_eur") else int(total)
        elif name in _LARGEST:
            largest = max(Decimal(str(i.value)) for i in items)
            value = str(largest) if name.endswith("_eur") else int(largest)
        elif name in _EITHER:
            value = any(i.value for i in items)
        else:
            value = sorted({code for i in items for code in i.value})
        data[name] = {"value": value, "estimated": estimated, "source": "aggregated (Art. 8(2))"}
    for part, whole in (("clients_affected", "clients_total"), ("counterparts_affected", "counterparts_total")):
        if part in data and whole in data and int(data[part]["value"]) > int(data[whole]["value"]):
            # the same clients may be hit by each recurrence: the sum counts at most the whole population
            data[part] = {**data[part], "value": int(data[whole]["value"])}
    for required in (
        "affects_critical_functions",
        "affects_authorised_financial_services",
        "malicious_unauthorised_access",
        "malicious_access_may_cause_data_loss",
    ):
        data.setdefault(required, {"value": False, "estimated": True, "source": "aggregated (Art. 8(2))"})
    return IncidentClassified.model_validate(data)
