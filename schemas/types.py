"""Shared field types for the ledger's models: identifiers, digests, decimals, timestamps, JSON objects.

Each type is an ``Annotated`` alias, so a model states its rule once in its signature.  Patterns are checked
by pydantic's Rust regex engine (fast); the human description of each pattern lives in
:data:`PATTERN_DESCRIPTIONS`, used when an error is reported.  No message ever repeats the rejected value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from schemas._json import MAX_SAFE_INTEGER, JsonValueError, scan_json_object
from schemas.timestamps import format_timestamp, parse_rfc3339, to_utc

__all__ = [
    "MAX_SAFE_INTEGER",
    "MEMBER_STATES",
    "PATTERN_DESCRIPTIONS",
    "STRICT",
    "Count",
    "CountryCode",
    "DecimalStr",
    "EventType",
    "JsonObject",
    "Label",
    "MemberStateCode",
    "NonNegativeDecimalStr",
    "Sha256Hex",
    "StreamName",
    "StrictModel",
    "SubjectId",
    "SubjectRef",
    "Timestamp",
    "UtcDatetime",
    "Uuid",
]

STRICT: Final = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)
"""Configuration of every model: unknown fields refused, no type coercion, immutable instances (attribute
docstrings become field descriptions in the JSON schema)."""


class StrictModel(BaseModel):
    """Base of every ledger model (see :data:`STRICT`)."""

    model_config = STRICT


# --- patterns and their descriptions ---------------------------------------------------------------

SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"
DECIMAL_PATTERN: Final = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
NON_NEGATIVE_DECIMAL_PATTERN: Final = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
STREAM_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$"
EVENT_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
COUNTRY_PATTERN: Final = r"^[A-Z]{2}$"

PATTERN_DESCRIPTIONS: Final[dict[str, str]] = {
    SHA256_PATTERN: "must be 64 lowercase hexadecimal digits",
    DECIMAL_PATTERN: 'must be a decimal number as a string, e.g. "1234.56" (no exponent, no leading zeros)',
    NON_NEGATIVE_DECIMAL_PATTERN: (
        'must be a non-negative decimal number as a string, e.g. "1234.56" (no sign, exponent or leading zeros)'
    ),
    STREAM_PATTERN: (
        "must be segments of letters, digits, '.', '_' or '-' (each starting with a letter or digit) "
        "separated by single '/', e.g. controls/iam/mfa"
    ),
    EVENT_TYPE_PATTERN: ("must be two or more dot-separated lowercase words (letters, digits, '_'), e.g. check.result"),
    COUNTRY_PATTERN: "must be an ISO 3166-1 alpha-2 country code (two upper-case letters)",
}


# --- identifiers and text --------------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NIL_UUID = "00000000-0000-0000-0000-000000000000"


def _canonical_uuid(value: str) -> str:
    if _UUID.fullmatch(value) is None:
        raise PydanticCustomError("ledger_uuid", "must be a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    value = value.lower()  # RFC 9562 section 4: case-insensitive on input, lower case on output
    if value == _NIL_UUID:
        raise PydanticCustomError("ledger_uuid", "must not be the nil UUID")
    return value


Uuid = Annotated[
    str,
    AfterValidator(_canonical_uuid),
    WithJsonSchema({"type": "string", "pattern": f"^{_UUID.pattern}$", "description": "a UUID (not the nil UUID)"}),
]
"""A UUID of any version, 8-4-4-4-12 hex form, normalised to lower case; the nil UUID is refused."""

Sha256Hex = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
"""A SHA-256 digest as 64 lowercase hexadecimal digits."""

SubjectRef = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
"""A person identifier already keyed by the producer: ``HMAC-SHA256`` as 64 lowercase hex digits."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A short non-empty name or identifier (control id, user id, incident id…), at most 256 characters."""


def _clean_subject(value: str) -> str:
    if value != value.strip():
        raise PydanticCustomError("ledger_subject", "must not start or end with whitespace")
    return value


SubjectId = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_clean_subject)]
"""A person identifier in clear (e.g. an employee id).  The ledger keys it with HMAC-SHA256 before it reaches
the chain; surrounding whitespace is refused because it would silently give a different key."""

StreamName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=STREAM_PATTERN)]
"""A stream: ``/``-separated segments such as ``controls/iam/mfa`` or ``incident/INC-2026-0042``."""

EventType = Annotated[str, StringConstraints(max_length=100, pattern=EVENT_TYPE_PATTERN)]
"""An event type: dotted lowercase words such as ``check.result`` or ``incident.classified``."""

Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
"""A non-negative integer that JSON carries exactly."""


# --- numbers as strings ----------------------------------------------------------------------------

DecimalStr = Annotated[str, StringConstraints(max_length=40, pattern=DECIMAL_PATTERN)]
"""An exact decimal number carried as a string (``"1234.56"``, ``"-3"``): JSON floats are refused."""

NonNegativeDecimalStr = Annotated[str, StringConstraints(max_length=40, pattern=NON_NEGATIVE_DECIMAL_PATTERN)]
"""A :data:`DecimalStr` without a sign, for amounts that cannot be negative (counts of euros lost…)."""


# --- places ----------------------------------------------------------------------------------------

CountryCode = Annotated[str, StringConstraints(pattern=COUNTRY_PATTERN)]
"""An ISO 3166-1 alpha-2 code: two upper-case letters (the pattern only; not checked against the list)."""

_EU_MEMBER_STATES = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
_EEA_EFTA_STATES = "IS LI NO"  # DORA applies to them through the EEA Agreement

MEMBER_STATES: Final = frozenset(f"{_EU_MEMBER_STATES} {_EEA_EFTA_STATES}".split())
"""ISO 3166-1 alpha-2 codes of the EU and EEA Member States (ISO, so Greece is GR, not the EU's EL)."""


def _member_state(value: str) -> str:
    if value not in MEMBER_STATES:
        raise PydanticCustomError(
            "ledger_member_state",
            "must be the ISO 3166-1 alpha-2 code of an EU/EEA Member State (Greece is GR)",
        )
    return value


MemberStateCode = Annotated[str, StringConstraints(pattern=COUNTRY_PATTERN), AfterValidator(_member_state)]
"""The ISO 3166-1 alpha-2 code of an EU or EEA Member State."""


# --- timestamps ------------------------------------------------------------------------------------


def _check_timestamp(value: str) -> str:
    parse_rfc3339(value)  # ValueError -> a pydantic "value_error" whose text names the problem
    return value


Timestamp = Annotated[str, AfterValidator(_check_timestamp)]
"""An RFC 3339 timestamp with an explicit offset, kept as the producer wrote it (rules:
:mod:`schemas.timestamps`)."""


def _utc_datetime(value: object) -> datetime:
    if isinstance(value, str):
        return parse_rfc3339(value)
    if isinstance(value, datetime):
        return to_utc(value)
    raise ValueError("must be an RFC 3339 timestamp string")


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_utc_datetime),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""An RFC 3339 timestamp with an offset, parsed into an aware UTC datetime; JSON output is
``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""


# --- free-form JSON --------------------------------------------------------------------------------


def _float_free(value: dict[str, Any]) -> dict[str, Any]:
    try:
        scan_json_object(value)
    except JsonValueError as fault:
        raise PydanticCustomError("ledger_json", fault.reason, {"subpath": fault.path}) from None
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_float_free)]
"""A JSON object of plain JSON values: no floats, no integers beyond ±(2**53-1), at most 64 levels deep."""
