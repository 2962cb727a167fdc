"""Typed payloads of the event types the ledger understands, and the registry that maps types to them.

An event whose ``type`` is a key of :data:`PAYLOAD_MODELS` must carry a payload that validates against that
model; any other type carries a free-form JSON object (still float-free and size-capped by the envelope).
The payload is stored as the producer sent it: these models check it, they do not rewrite it (timestamps
inside payloads, for instance, keep the producer's offset and precision).
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from schemas.types import (
    Count,
    JsonObject,
    Label,
    MemberStateCode,
    NonNegativeDecimalStr,
    Sha256Hex,
    StrictModel,
    Timestamp,
)

__all__ = [
    "PAYLOAD_MODELS",
    "ApprovalDecision",
    "ApprovalSubject",
    "BoolInput",
    "CheckResult",
    "CountInput",
    "EurAmountInput",
    "EvidenceArtefact",
    "IncidentClassified",
    "Input",
    "MemberStatesInput",
]


def _payload_error(field: str, message: str) -> PydanticCustomError:
    """An error about ``field`` of the payload found by a model-level rule (not by a field's own type)."""
    return PydanticCustomError("ledger_rule", message, {"subpath": [field]})


# --- check.result ----------------------------------------------------------------------------------


class EvidenceArtefact(StrictModel):
    """A file or object that backs a check result, identified by its digest."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    sha256: Sha256Hex
    size: Count
    """Size in bytes."""
    uri: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    """Where the artefact can be fetched (blob URL, object key…); the digest, not the URI, identifies it."""


class CheckResult(StrictModel):
    """``check.result``: the outcome of one automated or manual control check."""

    control_id: Label
    check_id: Label
    status: Literal["pass", "fail", "error", "not_applicable"]
    framework_refs: Annotated[list[Label], Field(max_length=64)] = Field(default_factory=list)
    """Requirements the check evidences, e.g. ``"DORA Art. 9(4)(c)"``, ``"ISO27001:A.8.15"``."""
    evidence: Annotated[list[EvidenceArtefact], Field(max_length=256)] = Field(default_factory=list)
    observed_at: Timestamp
    """When the checked state was observed (the envelope's ``occurred_at`` is when the event happened)."""
    summary: Annotated[str, StringConstraints(max_length=2000)] | None = None
    details: JsonObject | None = None
    """Free-form, tool-specific detail (float-free like every payload)."""


# --- approval.decision -----------------------------------------------------------------------------


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("ledger_blank", "must not be blank")
    return value


class ApprovalSubject(StrictModel):
    """What an approval is about: a kind (``change``, ``access_grant``, ``policy``…) and its reference."""

    kind: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    ref: Label


class ApprovalDecision(StrictModel):
    """``approval.decision``: a person approves or rejects something another person requested.

    Four-eyes principle: the approver must be someone other than the requester.  The identities are compared
    ignoring case and surrounding whitespace, so ``Alice`` cannot approve a request by ``alice``.
    """

    subject: ApprovalSubject
    decision: Literal["approved", "rejected"]
    requester: Label
    approver: Label
    rationale: Annotated[str, StringConstraints(min_length=1, max_length=4000), AfterValidator(_not_blank)]
    decided_at: Timestamp

    @model_validator(mode="after")
    def _four_eyes(self) -> Self:
        if self.approver.strip().casefold() == self.requester.strip().casefold():
            raise _payload_error("approver", "must differ from requester (four-eyes principle)")
        return self


# --- incident.classified ---------------------------------------------------------------------------

T = TypeVar("T")


class Input(StrictModel, Generic[T]):
    """One classification input with its provenance (DORA.md section 1: every input records whether it is
    an estimate, its source and its time; estimates are expected early, RTS 2024/1772 Art. 1(5), 3, 7(3))."""

    value: T
    estimated: bool
    """True when the value is an estimate rather than a measured or confirmed figure."""
    source: Label | None = None
    """Where the value comes from (a monitoring system, a team, a report…)."""
    as_of: Timestamp | None = None
    """When the value was established."""


class BoolInput(Input[bool]):
    """A yes/no classification input."""


class CountInput(Input[Count]):
    """A non-negative count (clients, transactions, minutes…)."""


class EurAmountInput(Input[NonNegativeDecimalStr]):
    """A non-negative amount in euros as a decimal string, e.g. ``"125000.00"``."""


def _distinct(codes: list[str]) -> list[str]:
    if len(set(codes)) != len(codes):
        raise PydanticCustomError("ledger_duplicates", "must not list a Member State twice")
    return codes


MemberStates = Annotated[list[MemberStateCode], Field(max_length=32), AfterValidator(_distinct)]


class MemberStatesInput(Input[MemberStates]):
    """A list of distinct EU/EEA Member States (ISO 3166-1 alpha-2)."""


class IncidentClassified(StrictModel):
    """``incident.classified``: the inputs of a major-incident classification under RTS 2024/1772.

    The gate inputs (Art. 6) and the 9(5)(b) input are required: without them no classification can be made.
    Every other input is optional; absent means *unknown*, which the classification reports as such rather
    than reading it as "no".  Thresholds and the Art. 8(1) rule are applied by ``ledger.dora``, not here: this
    model records what was known, when, and how sure it was.  A reclassification is a new event.
    """

    incident_id: Label
    classified_at: Timestamp
    classified_by: Label
    rule_version: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    """Version of the classification rules that produced the result, when known."""
    major: bool | None = None
    """The entity's own conclusion, if it states one; the ledger records its engine's result beside it and flags
    a disagreement."""

    # Gate, RTS 2024/1772 Art. 6 (required by Art. 8(1)): required here.
    affects_critical_functions: BoolInput
    """Affects ICT services or systems that support critical or important functions (Art. 6(a))."""
    affects_authorised_financial_services: BoolInput
    """Affects financial services that need authorisation, registration or supervision (Art. 6(b))."""
    malicious_unauthorised_access: BoolInput
    """A successful, malicious and unauthorised access to network and information systems (Art. 6(c))."""
    malicious_access_may_cause_data_loss: BoolInput
    """That access may cause data losses (Art. 9(5)(b)); with the gate it alone makes the incident major
    (Art. 8(1)).  Cannot be true when ``malicious_unauthorised_access`` is false."""

    # Clients, financial counterparts and transactions: Art. 9(1), counted per Art. 1.
    clients_affected: CountInput | None = None
    """Clients affected; threshold: more than 10% of ``clients_total`` or more than 100,000."""
    clients_total: CountInput | None = None
    """Clients using the affected service."""
    counterparts_affected: CountInput | None = None
    """Financial counterparts affected; threshold: more than 30% of ``counterparts_total``."""
    counterparts_total: CountInput | None = None
    """Financial counterparts of the affected service."""
    transactions_affected_count: CountInput | None = None
    """Transactions affected; threshold: more than 10% of ``transactions_daily_average_count``."""
    transactions_daily_average_count: CountInput | None = None
    """Daily average number of transactions of the affected service."""
    transactions_affected_value_eur: EurAmountInput | None = None
    """Value of the transactions affected, EUR; threshold: more than 10% of the daily average value."""
    transactions_daily_average_value_eur: EurAmountInput | None = None
    """Daily average value of the transactions of the affected service, EUR."""
    relevant_client_or_counterpart_affected: BoolInput | None = None
    """A client or financial counterpart identified as relevant is affected (Art. 1(3))."""

    # Reputational impact: Art. 9(2) and Art. 2.
    media_attention: BoolInput | None = None
    """The incident drew media attention."""
    repeated_complaints: BoolInput | None = None
    """Repeated complaints from clients or financial counterparts."""
    regulatory_requirements_at_risk: BoolInput | None = None
    """Regulatory requirements are at risk of not being met."""
    likely_client_loss: BoolInput | None = None
    """Clients or financial counterparts are likely to be lost, with a material impact."""

    # Duration and service downtime: Art. 9(3) and Art. 3.
    duration_minutes: CountInput | None = None
    """Duration of the incident in minutes; threshold: more than 24 hours (1440)."""
    critical_service_downtime_minutes: CountInput | None = None
    """Downtime of a service supporting critical or important functions, in minutes; threshold: more than
    2 hours (120)."""

    # Geographical spread: Art. 9(4) and Art. 4.
    member_states_affected: MemberStatesInput | None = None
    """Member States where the incident had an impact; threshold: 2 or more."""

    # Data losses: Art. 9(5)(a) and Art. 5.
    data_impact: BoolInput | None = None
    """Adverse impact on the availability, authenticity, integrity or confidentiality of data, with an effect
    on business or regulatory objectives."""

    # Economic impact: Art. 9(6) and Art. 7.
    gross_costs_losses_eur: EurAmountInput | None = None
    """Gross direct and indirect costs and losses, actual or likely, in EUR, excluding recoveries,
    business-as-usual costs, post-incident upgrades and insurance; threshold: more than EUR 100,000."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # RTS 2024/1772 Art. 9(5)(b) qualifies the access of Art. 6(c): it cannot hold without it.
        if self.malicious_access_may_cause_data_loss.value and not self.malicious_unauthorised_access.value:
            raise _payload_error(
                "malicious_access_may_cause_data_loss",
                "cannot be true when malicious_unauthorised_access is false (RTS 2024/1772 Art. 9(5)(b))",
            )
        # Affected clients and counterparts are a part of those of the service (Art. 9(1), Art. 1).
        for part, whole in (
            ("clients_affected", "clients_total"),
            ("counterparts_affected", "counterparts_total"),
        ):
            affected: CountInput | None = getattr(self, part)
            total: CountInput | None = getattr(self, whole)
            if affected is not None and total is not None and affected.value > total.value:
                raise _payload_error(part, f"must not exceed {whole}")
        return self


# --- the rest of an incident's lifecycle (stream incident/<id>) -------------------------------------------

Text = Annotated[str, StringConstraints(min_length=1, max_length=4000), AfterValidator(_not_blank)]
ReportStage = Literal["initial", "intermediate", "final"]
Authority = Literal["NBB", "FSMA"]


class IncidentDetected(StrictModel):
    """``incident.detected``: the entity became aware of the incident (starts the 24-hour cap, RTS 2025/301 Art. 5)."""

    incident_id: Label
    aware_at: Timestamp
    detected_by: Label
    summary: Annotated[str, StringConstraints(max_length=2000)] | None = None


class IncidentReclassified(IncidentClassified):
    """``incident.reclassified``: a new classification (major to non-major or back); never an edit of the old one."""

    reason: Text


class IncidentReportSubmitted(StrictModel):
    """``incident.report_submitted``: a report as submitted to the competent authority.

    Several stages may be submitted together when every deadline is still met (ITS 2025/302).  ``content`` is the
    report as submitted (JSON keyed by the field numbers of ITS 2025/302 Annex I), ``content_sha256`` its digest
    when the content itself is kept elsewhere.
    """

    incident_id: Label
    stages: Annotated[list[ReportStage], Field(min_length=1, max_length=3)]
    authority: Authority
    authority_reference: Label | None = None
    """The reference code the authority gave the incident, once known."""
    submitted_at: Timestamp
    submitted_by: Label
    content: JsonObject | None = None
    content_sha256: Sha256Hex | None = None

    @model_validator(mode="after")
    def _distinct_stages(self) -> Self:
        if len(set(self.stages)) != len(self.stages):
            raise _payload_error("stages", "must not list a stage twice")
        return self


class IncidentDelayNotice(StrictModel):
    """``incident.delay_notice``: the authority was told before a deadline that the report will be late."""

    incident_id: Label
    stage: ReportStage
    notified_at: Timestamp
    reason: Text
    expected_submission_at: Timestamp | None = None


class IncidentRecovered(StrictModel):
    """``incident.recovered``: regular activities are recovered (an intermediate update is due without delay)."""

    incident_id: Label
    recovered_at: Timestamp


class IncidentClosed(StrictModel):
    """``incident.closed``: the incident is closed; its evidence retention runs from here."""

    incident_id: Label
    closed_at: Timestamp


class IncidentRootCause(StrictModel):
    """``incident.root_cause``: the apparent root cause, as a code shared across incidents (RTS 2024/1772 Art. 8(2))."""

    incident_id: Label
    root_cause: Label
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None


class ThreatClassified(StrictModel):
    """``threat.classified``: a cyber threat assessed under RTS 2024/1772 Art. 10 (stream threat/<id>)."""

    threat_id: Label
    classified_at: Timestamp
    classified_by: Label
    could_affect_critical_functions_or_others: BoolInput
    high_probability: BoolInput
    would_meet_critical_services: BoolInput
    would_meet_clients: BoolInput
    would_meet_geography: BoolInput
    significant: bool | None = None
    """The producer's own conclusion, if it has one (the ledger records its own beside it)."""


PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "check.result": CheckResult,
    "approval.decision": ApprovalDecision,
    "incident.classified": IncidentClassified,
    "incident.reclassified": IncidentReclassified,
    "incident.detected": IncidentDetected,
    "incident.report_submitted": IncidentReportSubmitted,
    "incident.delay_notice": IncidentDelayNotice,
    "incident.recovered": IncidentRecovered,
    "incident.closed": IncidentClosed,
    "incident.root_cause": IncidentRootCause,
    "threat.classified": ThreatClassified,
}
"""Event type -> payload model.  Types not listed here carry a free-form (float-free) JSON object."""
