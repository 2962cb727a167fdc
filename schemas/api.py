"""Request and response models of the HTTP API (no I/O)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.types import STREAM_PATTERN


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
