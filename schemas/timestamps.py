"""RFC 3339 timestamps: strict parsing and the ledger's fixed-width UTC rendering.

Accepted input (RFC 3339 section 5.6 ``date-time``, nothing looser)::

    YYYY-MM-DDTHH:MM:SS[.fraction](Z | +hh:mm | -hh:mm)

- the offset is mandatory: a naive timestamp says nothing about the instant it records;
- ``T`` and ``Z`` may be lower case (RFC 3339 section 5.6, note); a space instead of ``T`` is refused;
- the fraction has 1 to 9 digits and is truncated (never rounded) to microseconds, the resolution of
  :class:`datetime.datetime`; rounding could carry into the next second, day or year;
- ``-00:00`` ("offset unknown", RFC 3339 section 4.3) is read as UTC;
- leap seconds (``:60``) are refused: Python cannot represent them and producers smear them anyway;
- the instant, once converted to UTC, must lie in years 1970 to 9999 so it renders with a 4-digit year.

Rendering (:func:`format_timestamp`) is always UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: 27 characters, fixed
width, so the rendered strings sort in time order.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ledger.errors import ValidationError

__all__ = ["MAX_TIMESTAMP", "MIN_TIMESTAMP", "format_timestamp", "parse_rfc3339", "parse_timestamp", "to_utc"]

MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:([0-9]{2})(?:\.[0-9]{1,9})?"
    r"(?:([Zz])|[+-]([0-9]{2}):([0-9]{2}))?"
)  # groups: second, zulu, offset hours, offset minutes

EXPECTED_FORMAT = "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-23T10:00:00Z"
_NO_OFFSET = "has no UTC offset; add Z or ±hh:mm (naive timestamps are ambiguous)"
_BAD_DATE = "is not a valid calendar date and time (RFC 3339 section 5.7)"
_BAD_OFFSET = "has an offset out of range (hours 00-23, minutes 00-59)"
_LEAP_SECOND = "is a leap second (:60), which is not supported"
_NAIVE = "has no UTC offset; use an aware datetime"
_OUT_OF_RANGE = "must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"


def parse_rfc3339(text: str) -> datetime:
    """Parse ``text`` into an aware UTC datetime; raise :class:`ValueError` saying what is wrong.

    The message never repeats ``text``.  Used by the pydantic validators, which turn ``ValueError`` into a
    field error; everything else should call :func:`parse_timestamp`.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(EXPECTED_FORMAT)
    second, zulu, offset_hours, offset_minutes = match.groups()
    if zulu is None:
        if offset_hours is None:
            raise ValueError(_NO_OFFSET)
        if offset_hours > "23" or offset_minutes > "59":
            raise ValueError(_BAD_OFFSET)
    if second == "60":
        raise ValueError(_LEAP_SECOND)
    # The shape is now exactly RFC 3339, which fromisoformat (C, Python 3.11+) reads; it truncates the
    # fraction to microseconds and checks the calendar.
    try:
        local = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError(_BAD_DATE) from None
    return to_utc(local)


def parse_timestamp(text: str, *, field: str = "timestamp") -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset into an aware datetime in UTC.

    Raises :class:`ledger.errors.ValidationError` naming ``field`` (never quoting ``text``).
    """
    if not isinstance(text, str):
        raise ValidationError(f"{field}: must be a string", field=field)
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from None


def format_timestamp(moment: datetime) -> str:
    """Render an aware datetime as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width, 6 fraction digits).

    Raises :class:`ledger.errors.ValidationError` for a naive datetime or one outside years 1970-9999 (UTC).
    """
    try:
        utc = to_utc(moment)
    except ValueError as exc:
        raise ValidationError(f"timestamp: {exc}", field="timestamp") from None
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def to_utc(moment: datetime) -> datetime:
    """Convert an aware datetime to UTC; raise :class:`ValueError` if naive or outside years 1970-9999."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(_NAIVE)
    if moment.tzinfo is UTC:
        utc = moment
    else:
        try:
            utc = moment.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is in year 10000 UTC
            raise ValueError(_OUT_OF_RANGE) from None
    if utc.year < MIN_TIMESTAMP.year:
        raise ValueError(_OUT_OF_RANGE)
    return utc
