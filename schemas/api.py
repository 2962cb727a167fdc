"""Request and response models of the HTTP API (no I/O)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.types import EVENT_TYPE_PATTERN, SHA256_PATTERN, STREAM_PATTERN, Timestamp


class EntryPublic(BaseModel):
    """A stored entry as the API shows it: the exact signed body plus what was extracted from it."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    event_id: str
    stream: str
    stream_seq: int
    type: str
    producer: str
    occurred_at: str
    recorded_at: str
    body: str = Field(description="the exact RFC 8785 canonical body that was hashed and signed")
    hash: str = Field(description="hex SHA-256(0x00 || body), the RFC 9162 leaf hash")
    signature: str = Field(description="base64 Ed25519 signature over the body")
    key_id: str = Field(description="hex id of the signing key (C2SP key id)")
    payload: dict[str, Any] | None = Field(default=None, description="present when the caller may read payloads")
    payload_state: str | None = Field(default=None, description="present, erased or hidden")
    erasure: dict[str, Any] | None = None


class AppendResultPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created: bool
    entry: EntryPublic


class BatchResultPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created: int
    already_stored: int
    results: list[AppendResultPublic]


class EntryPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[EntryPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at the end")


class InclusionProofPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]


class ConsistencyProofPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_size: int
    to_size: int
    hashes: list[str]


class PublicKeyPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: str
    verifier_key: str
    valid_from_seq: int
    valid_until_seq: int | None
    valid_from: str
    valid_until: str | None
    active: bool


class CosignatureCreate(BaseModel):
    """A witness's C2SP tlog-cosignature/v1 of the checkpoint of the size in the path."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cosignature: str = Field(
        min_length=1,
        max_length=1024,
        description="the signature line as it appears in the note: — <witness name> <base64(key id || timestamp "
        "|| Ed25519 signature)>",
    )


class CosignaturePublic(BaseModel):
    """A stored cosignature; ``created`` is false when this witness key had already cosigned the checkpoint."""

    model_config = ConfigDict(extra="forbid")

    size: int
    witness_name: str
    witness_key_id: str = Field(description="hex C2SP key id of the witness key")
    cosignature: str = Field(description="the stored signature line, published after the log's signature")
    created_at: str
    created: bool


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: str = Field(pattern="^(publisher|officer|auditor|admin)$")
    logs: list[str] = Field(min_length=1, max_length=50)
    stream_prefixes: list[str] = Field(default_factory=list, max_length=100)
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@-]+$")


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: str
    role: str
    logs: list[str]
    stream_prefixes: list[str]
    name: str
    created_at: str
    revoked_at: str | None


class ApiKeyCreated(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: ApiKeyPublic
    token: str = Field(description="shown once; only its hash is stored")


class AuditRunPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    requested_by: str
    started_at: str
    finished_at: str | None
    status: str
    report: dict[str, Any] | None


HoldScopeKindName = Literal["stream", "stream_prefix", "incident", "case"]
_STREAM = re.compile(STREAM_PATTERN)


class LegalHoldCreate(BaseModel):
    """A legal hold to set; the actor recorded is the API key's name, never taken from the body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    scope_kind: HoldScopeKindName = Field(
        description="stream (one stream), stream_prefix (a stream and those under it), incident or case"
    )
    scope: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"\S",
        description="the stream, stream prefix, incident id or case id held",
    )
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="why the hold is set")
    case_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"\S", description="case or matter reference"
    )

    @field_validator("scope")
    @classmethod
    def _stream_scope(cls, scope: str, info: ValidationInfo) -> str:
        if info.data.get("scope_kind") in ("stream", "stream_prefix") and not _STREAM.fullmatch(scope.rstrip("/")):
            raise ValueError("a stream or stream prefix scope must be a stream name such as controls/iam")
        return scope


class LegalHoldRelease(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="why the hold is released")


class LegalHoldPublic(BaseModel):
    """A legal hold as recorded by its ``legal_hold.set`` (and ``legal_hold.released``) ledger events."""

    model_config = ConfigDict(extra="forbid")

    hold_id: str
    scope_kind: HoldScopeKindName
    scope: str
    actor: str = Field(description="the name of the key that set the hold")
    reason: str
    case_id: str = Field(description='the case or matter reference; "none recorded" when none was given')
    set_at: str
    released_at: str | None
    active: bool


class WormPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enforced: bool = Field(description="whether the store itself refuses to change or delete sealed objects")
    detail: str


class StoreFindingPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: str = Field(description="the object's name in the store")
    code: str = Field(description="missing, digest-mismatch, metadata-mismatch, bad-checkpoint, unrecorded, ...")
    message: str


class RetentionStatusPublic(BaseModel):
    """What the default object store holds for the log; ``ok`` is false when any object no longer matches."""

    model_config = ConfigDict(extra="forbid")

    store_name: str
    store: str
    ok: bool
    policy: str
    worm: WormPublic
    segments: int
    sealed_entries: int
    unsealed_entries: int
    last_sealed_seq: int | None
    latest_retain_until: str | None
    held_segments: int
    active_holds: int
    objects_checked: int
    findings: list[StoreFindingPublic]


# --- DORA incidents (ledger/dora; DORA.md sections 1 and 2) ---------------------------------------------

ReportStageName = Literal["initial", "intermediate", "final"]
DeadlineStateName = Literal["met", "missed", "due", "overdue", "not_required", "waiting"]


class CriterionPublic(BaseModel):
    """One criterion of RTS 2024/1772 evaluated: ``met`` is true, false or null (unknown)."""

    model_config = ConfigDict(extra="forbid")

    code: str
    article: str
    met: bool | None
    reason: str
    inputs: dict[str, Any] = Field(description="the inputs it used, each with value, estimated, source and as_of")
    estimated: bool = Field(description="the result of this criterion rests on an estimated input")


class ClassificationPublic(BaseModel):
    """The engine's worksheet: RTS 2024/1772 Art. 8(1) applied to the inputs, with the rule version."""

    model_config = ConfigDict(extra="forbid")

    major: bool
    path: Literal["malicious-access-data-loss", "two-thresholds"] | None
    rule: str
    rule_version: str
    gate: CriterionPublic
    malicious_access_data_loss: CriterionPublic
    criteria: list[CriterionPublic] = Field(description="the six thresholds of Art. 9, in the RTS order")
    thresholds_met: int
    criteria_met: list[str]
    could_become_major: bool = Field(description="not major now, but unknown inputs could still make it major")
    estimated: bool = Field(description="the result rests on at least one estimated input")


class ThreatAssessmentPublic(BaseModel):
    """RTS 2024/1772 Art. 10 applied to a cyber threat."""

    model_config = ConfigDict(extra="forbid")

    significant: bool
    reasons: list[str]
    notification: str
    rule: str
    rule_version: str


class DeadlinePublic(BaseModel):
    """A reporting deadline (RTS 2025/301 Art. 5), in UTC, and whether the working-day rule moved it."""

    model_config = ConfigDict(extra="forbid")

    stage: ReportStageName
    due_at: str
    basis: str
    rule: str
    moved_from: str | None
    moved_because: str | None


class DeadlineStatusPublic(BaseModel):
    """Where one report stage stands: met, missed, due, overdue, not required, or waiting for an earlier stage."""

    model_config = ConfigDict(extra="forbid")

    stage: ReportStageName
    state: DeadlineStateName
    deadline: DeadlinePublic | None
    submitted_at: str | None
    submitted_seq: int | None
    seconds_left: int | None = Field(
        description="due or overdue: seconds to the deadline (negative: overdue by); met or missed: seconds the "
        "submission came before the deadline (negative: after)"
    )
    delay_notice_seq: int | None
    delay_notified_in_time: bool | None
    note: str


class DueReportPublic(DeadlineStatusPublic):
    """A report overdue or due within the look-ahead, with its incident."""

    incident_id: str


class IncidentSummaryPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_id: str
    major: bool
    next_deadline: DeadlineStatusPublic | None = Field(
        description="the report due or overdue now, if any (stages follow one another)"
    )


class ClassificationStepPublic(BaseModel):
    """One classification or reclassification as recorded, beside the engine's result for the same inputs."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    kind: Literal["classified", "reclassified"]
    classified_at: str
    classified_by: str
    major: bool = Field(description="what counts: the entity's stated conclusion when it gave one, else the engine's")
    stated_major: bool | None
    engine_major: bool
    disagreement: bool = Field(description="the entity's stated conclusion differs from the engine's result")
    criteria_met: list[str]
    path: Literal["malicious-access-data-loss", "two-thresholds"] | None
    estimated: bool
    rule_version: str
    reason: str | None
    worksheet: ClassificationPublic


class TimelineEventPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    type: str
    occurred_at: str


class IncidentViewPublic(BaseModel):
    """An incident rebuilt from the signed events of its stream ``incident/<id>``."""

    model_config = ConfigDict(extra="forbid")

    incident_id: str
    stream: str
    major: bool
    aware_at: str | None
    classifications: list[ClassificationStepPublic]
    reports: list[dict[str, Any]] = Field(description="incident.report_submitted payloads, each with its seq")
    delay_notices: list[dict[str, Any]] = Field(description="incident.delay_notice payloads, each with its seq")
    recovered_at: str | None
    closed_at: str | None
    root_cause: str | None
    deadlines: list[DeadlineStatusPublic]
    timeline: list[TimelineEventPublic]
    notes: list[str]


class IncidentReportPublic(BaseModel):
    """A report for the supervisor, keyed by the field numbers of ITS (EU) 2025/302 Annex I (``"2.3"``...)."""

    model_config = ConfigDict(extra="allow")

    authority: Literal["NBB", "FSMA"]
    authority_name: str
    template: str
    format_note: str
    unnumbered: dict[str, Any] = Field(description="items without a field number in the template")
    deadlines: list[DeadlineStatusPublic]


# --- evidence packs (ledger/packs/FORMAT.md) ---------------------------------------------------------------

_PACK_PREFIX = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*/?$"
_PACK_INCIDENT = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_PackStream = Annotated[str, Field(min_length=1, max_length=200, pattern=STREAM_PATTERN)]
_PackPrefix = Annotated[str, Field(min_length=1, max_length=200, pattern=_PACK_PREFIX)]
_PackType = Annotated[str, Field(min_length=1, max_length=100, pattern=EVENT_TYPE_PATTERN)]
_PackIncident = Annotated[str, Field(min_length=1, max_length=180, pattern=_PACK_INCIDENT)]
_PackTime = Annotated[Timestamp, Field(max_length=64)]


class PackCreate(BaseModel):
    """The scope of an evidence pack.  Streams, prefixes and incidents select streams (any of them); types,
    subject and the time window narrow the selection (all of them).  At least one of streams, stream_prefixes,
    types, incidents or subject is required.  The exporter recorded is the API key's name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    streams: list[_PackStream] = Field(default_factory=list, max_length=100, description="streams in scope")
    stream_prefixes: list[_PackPrefix] = Field(
        default_factory=list, max_length=100, description="streams under these prefixes"
    )
    types: list[_PackType] = Field(default_factory=list, max_length=100, description="only these event types")
    incidents: list[_PackIncident] = Field(
        default_factory=list, max_length=100, description="incident ids: their streams incident/<id> are in scope"
    )
    subject: str | None = Field(
        default=None, pattern=SHA256_PATTERN, description="only entries about this subject ref (64 hex digits)"
    )
    occurred_since: _PackTime | None = Field(default=None, description="occurred at or after (RFC 3339)")
    occurred_until: _PackTime | None = Field(default=None, description="occurred before (RFC 3339)")
    auditor_checkpoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=16_384,
        description="an earlier checkpoint of this log (the signed note as text): the pack then carries the "
        "consistency proof from it",
    )


class PackCreatedPublic(BaseModel):
    """An exported pack: where to download it and what it covers; its export is the ``pack.exported`` entry."""

    model_config = ConfigDict(extra="forbid")

    pack_id: str
    sha256: str = Field(description="hex SHA-256 of the ZIP file, as recorded in the pack.exported event")
    first_seq: int
    last_seq: int
    tree_size: int = Field(description="size of the signed checkpoint the pack proves against")
    disclosed: int = Field(description="entries in scope, disclosed in full")
    hidden: int = Field(description="other entries of the seq range, as their leaf hash only")
    export_event_seq: int = Field(description="seq of the pack.exported event")
    download: str = Field(description="GET this path for the ZIP")


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of the API is reported."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    field: str | None = None
    index: int | None = None
