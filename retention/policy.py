"""Retention policy, legal holds and disposal / erasure decisions (DORA.md sections 3 and 5).

Everything here is a pure decision: no clock, no storage, no logging.  The only input that is parsed is a
TOML text handed in by the caller (``load_policy``).  Callers record the decisions as ledger events.

Rules implemented, each cited by the decisions that apply them:

* DORA fixes no retention period (RTS 2024/1774 Art. 12 and Art. 22), so the 7-year period is a *default*
  policy of the entity, worded exactly as ``DEFAULT_RETENTION_WORDING``.
* Record classes: ``default`` 7 years, ``aml`` 10 years (Belgian AML law Art. 60, required by law),
  ``mifid`` 5 years extendable to 7, ``log`` entity-defined: its years and a recorded justification must
  both come from configuration (RTS 2024/1774 Art. 12).
* Retention runs from the event time, or for incident streams (``incident/...``) from incident closure;
  while an incident is open retention has not started (``retain_until`` returns ``None``: keep).
* Year arithmetic: the same calendar date N years later, same wall-clock time and tzinfo; 29 February
  becomes 28 February in a non-leap target year (never rolls into March).
* Boundary: retention has *ended* at the instant ``now >= retain_until`` (the end instant itself is
  eligible for disposal, and from it the legal retention no longer blocks erasure).
* A legal hold suspends expiry until its recorded release.  Expiry only opens eligibility for disposal,
  never an automatic delete: disposal still needs a signed disposal event.
* Erasure (GDPR Art. 17) is deferred while retention is required by law (Art. 17(3)(b)) or a legal hold
  is active (Art. 17(3)(e)); otherwise the payload is erased.

All datetimes must be timezone-aware; naive ones are refused with ``ValidationError``.
"""

from __future__ import annotations

import calendar
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, get_args

from ledger.errors import ConfigurationError, ValidationError

__all__ = [
    "DEFAULT_RETENTION_WORDING",
    "INCIDENT_STREAM_PREFIX",
    "RULE_DISPOSAL_EXPIRED",
    "RULE_DISPOSAL_NOT_EXPIRED",
    "RULE_DISPOSAL_NOT_RUNNING",
    "RULE_ERASURE_ALLOWED",
    "RULE_ERASURE_HOLD",
    "RULE_ERASURE_LAW",
    "RULE_LEGAL_HOLD",
    "Decision",
    "ErasureDecision",
    "HoldScopeKind",
    "LegalHold",
    "RetentionClass",
    "RetentionPolicy",
    "add_years",
    "default_classes",
    "disposal_decision",
    "erasure_decision",
    "holds_covering",
    "load_policy",
]

DEFAULT_RETENTION_WORDING = (
    "Default retention: 7 years from the event (or from incident closure) - an entity-configurable policy."
)

INCIDENT_STREAM_PREFIX = "incident/"

# Rule texts cited by decisions.
RULE_LEGAL_HOLD = "DORA.md 3: legal hold suspends expiry until a recorded release"
RULE_DISPOSAL_NOT_RUNNING = "DORA.md 3: retention runs from incident closure; an open incident is kept"
RULE_DISPOSAL_NOT_EXPIRED = "DORA.md 3: disposal needs expiry passed"
RULE_DISPOSAL_EXPIRED = (
    "DORA.md 3: expiry opens eligibility for disposal, never an automatic delete; a signed disposal event is required"
)
RULE_ERASURE_HOLD = "GDPR Art. 17(3)(e): active legal hold defers erasure"
RULE_ERASURE_LAW = "GDPR Art. 17(3)(b): retention required by law defers erasure to the end of retention"
RULE_ERASURE_ALLOWED = "GDPR Art. 17(1): no legal retention obligation and no active hold; erase the payload"

HoldScopeKind = Literal["stream", "stream_prefix", "incident", "case"]
_HOLD_SCOPE_KINDS: frozenset[str] = frozenset(get_args(HoldScopeKind))

_CLASS_KEYS = frozenset({"years", "extendable_to_years", "justification", "legal_basis", "required_by_law"})
_TOP_KEYS = frozenset({"classes", "event_types"})
# Legal floors: configuration may lengthen these classes but never shorten them below the law.
_LEGAL_MINIMUM_YEARS: Mapping[str, int] = MappingProxyType({"aml": 10, "mifid": 5})


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware", field=name)


# --- retention classes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionClass:
    """A record class and its retention period.

    ``years`` is ``None`` only for the unconfigured ``log`` placeholder (entity-defined, no period yet);
    such a class cannot be used to compute a retention end.  ``required_by_law`` marks classes whose
    retention is a legal obligation (GDPR Art. 17(3)(b) then defers erasure).
    """

    name: str
    years: int | None
    extendable_to_years: int | None
    justification: str | None
    legal_basis: str
    required_by_law: bool = False

    def __post_init__(self) -> None:
        where = f"classes.{self.name}"
        if not self.name:
            raise ConfigurationError("classes: a retention class needs a name")
        if self.years is not None and (isinstance(self.years, bool) or self.years < 0):
            raise ConfigurationError(f"{where}.years: must be a non-negative integer")
        if self.extendable_to_years is not None and (self.years is None or self.extendable_to_years < self.years):
            raise ConfigurationError(f"{where}.extendable_to_years: must be at least {where}.years")
        if self.name == "log" and self.years is not None and not (self.justification or "").strip():
            raise ConfigurationError(f"{where}.justification: a log retention period needs a recorded justification")
        if self.years is None and self.name != "log":
            raise ConfigurationError(f"{where}.years: required")
        if not self.legal_basis.strip():
            raise ConfigurationError(f"{where}.legal_basis: must not be empty")


def default_classes() -> dict[str, RetentionClass]:
    """The built-in classes (DORA.md 3).  ``log`` is a placeholder until configured."""
    return {
        "default": RetentionClass(
            name="default",
            years=7,
            extendable_to_years=None,
            justification=None,
            legal_basis=(
                "Entity policy: " + DEFAULT_RETENTION_WORDING + " Matches the MiFID II upper bound (5 years, 7 on "
                "request) and Belgian accounting law (Art. III.88 CEL); DORA (RTS 2024/1774 Art. 12, 22) fixes none."
            ),
        ),
        "aml": RetentionClass(
            name="aml",
            years=10,
            extendable_to_years=None,
            justification=None,
            legal_basis="Belgian AML law (Law of 18 September 2017) Art. 60: retention required by law",
            required_by_law=True,
        ),
        "mifid": RetentionClass(
            name="mifid",
            years=5,
            extendable_to_years=7,
            justification=None,
            legal_basis="MiFID II record keeping: 5 years, extendable to 7 on request of the competent authority",
            required_by_law=True,  # a legal record-keeping duty: GDPR Art. 17(3)(b) defers erasure
        ),
        "log": RetentionClass(
            name="log",
            years=None,
            extendable_to_years=None,
            justification=None,
            legal_basis="RTS 2024/1774 Art. 12: entity-defined log retention with a recorded justification",
        ),
    }


def add_years(moment: datetime, years: int) -> datetime:
    """Same calendar date ``years`` later (same time and tzinfo); 29 February → 28 February if not leap."""
    target = moment.year + years
    day = moment.day
    if moment.month == 2 and day == 29 and not calendar.isleap(target):
        day = 28
    return moment.replace(year=target, day=day)


# --- the policy ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Record classes plus the mapping of event types (exact or ``prefix.*``) to class names."""

    classes: Mapping[str, RetentionClass] = field(default_factory=lambda: MappingProxyType(default_classes()))
    exact: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # (prefix including the trailing dot, class name), longest prefix first.
    prefixes: tuple[tuple[str, str], ...] = ()

    def class_for(self, event_type: str) -> RetentionClass:
        """Exact match, then the longest matching ``prefix.*`` pattern, else the ``default`` class."""
        name = self.exact.get(event_type)
        if name is None:
            name = next((cls for prefix, cls in self.prefixes if event_type.startswith(prefix)), "default")
        return self.classes[name]

    def retain_until(
        self,
        event_type: str,
        occurred_at: datetime,
        *,
        incident_closed_at: datetime | None = None,
        stream: str,
    ) -> datetime | None:
        """End of retention, or ``None`` while an incident stream is still open (retention not yet running).

        Non-incident streams run from ``occurred_at`` (a closure time for them is refused).  Incident streams
        run from closure, or from the event itself when it was recorded after closure (never shortened).
        """
        _require_aware(occurred_at, "occurred_at")
        retention_class = self.class_for(event_type)
        if retention_class.years is None:
            raise ConfigurationError(f"classes.{retention_class.name}.years: not configured")
        if stream.startswith(INCIDENT_STREAM_PREFIX):
            if incident_closed_at is None:
                return None
            _require_aware(incident_closed_at, "incident_closed_at")
            start = max(occurred_at, incident_closed_at)
        else:
            if incident_closed_at is not None:
                raise ValidationError("incident_closed_at applies to incident streams only", field="incident_closed_at")
            start = occurred_at
        return add_years(start, retention_class.years)


def _config_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{path}: must be an integer")
    if value < 0:
        raise ConfigurationError(f"{path}: must not be negative")
    return value


def _config_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{path}: must be a non-empty string")
    return value


def _load_class(name: str, table: Any, base: RetentionClass) -> RetentionClass:
    path = f"classes.{name}"
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: must be a table")
    unknown = sorted(set(table) - _CLASS_KEYS)
    if unknown:
        raise ConfigurationError(f"{path}.{unknown[0]}: unknown key")
    if name == "log":
        for required in ("years", "justification"):
            if required not in table:
                raise ConfigurationError(f"{path}.{required}: required for the entity-defined log class")
    changes: dict[str, Any] = {}
    if "years" in table:
        changes["years"] = _config_int(table["years"], f"{path}.years")
    if "extendable_to_years" in table:
        changes["extendable_to_years"] = _config_int(table["extendable_to_years"], f"{path}.extendable_to_years")
    if "justification" in table:
        changes["justification"] = _config_str(table["justification"], f"{path}.justification")
    if "legal_basis" in table:
        changes["legal_basis"] = _config_str(table["legal_basis"], f"{path}.legal_basis")
    if "required_by_law" in table:
        flag = table["required_by_law"]
        if not isinstance(flag, bool):
            raise ConfigurationError(f"{path}.required_by_law: must be a boolean")
        if base.required_by_law and not flag:
            raise ConfigurationError(f"{path}.required_by_law: a legal obligation cannot be switched off")
        changes["required_by_law"] = flag
    result = replace(base, **changes)
    floor = _LEGAL_MINIMUM_YEARS.get(name)
    if floor is not None and result.years is not None and result.years < floor:
        raise ConfigurationError(f"{path}.years: must be at least the legal minimum of {floor}")
    return result


def load_policy(toml_text: str | None) -> RetentionPolicy:
    """Parse a policy from TOML; ``None`` gives the defaults.  Errors name the offending path.

    ``[classes.<name>]`` overrides a built-in class (default, aml, mifid, log); ``[event_types]`` maps an
    exact event type or a ``prefix.*`` pattern to a class name.
    """
    if toml_text is None:
        return RetentionPolicy()
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"retention policy: invalid TOML ({exc})") from exc
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigurationError(f"{unknown[0]}: unknown key")

    classes = default_classes()
    raw_classes = data.get("classes", {})
    if not isinstance(raw_classes, dict):
        raise ConfigurationError("classes: must be a table")
    for name, table in raw_classes.items():
        if name not in classes:
            raise ConfigurationError(f"classes.{name}: unknown class name")
        classes[name] = _load_class(name, table, classes[name])

    raw_types = data.get("event_types", {})
    if not isinstance(raw_types, dict):
        raise ConfigurationError("event_types: must be a table")
    exact: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []
    for pattern, class_name in raw_types.items():
        path = f'event_types."{pattern}"'
        if not isinstance(class_name, str):
            raise ConfigurationError(f"{path}: must be a class name")
        if class_name not in classes:
            raise ConfigurationError(f"{path}: unknown class name {class_name!r}")
        if classes[class_name].years is None:
            raise ConfigurationError(f"{path}: class {class_name!r} is not configured (classes.{class_name}.years)")
        if pattern.endswith(".*"):
            prefix = pattern[:-1]
            if prefix == "." or "*" in prefix:
                raise ConfigurationError(f"{path}: a pattern is 'prefix.*' with a non-empty prefix")
            prefixes.append((prefix, class_name))
        else:
            if not pattern or "*" in pattern:
                raise ConfigurationError(f"{path}: an event type is exact or ends with '.*'")
            exact[pattern] = class_name
    prefixes.sort(key=lambda item: len(item[0]), reverse=True)
    return RetentionPolicy(classes=MappingProxyType(classes), exact=MappingProxyType(exact), prefixes=tuple(prefixes))


# --- legal holds ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegalHold:
    """A legal hold as recorded by its set (and optional release) ledger events.  Active while not released."""

    hold_id: str
    scope_kind: HoldScopeKind
    scope: str
    actor: str
    reason: str
    case_id: str
    set_at: datetime
    released_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.scope_kind not in _HOLD_SCOPE_KINDS:
            raise ValidationError(f"unknown hold scope kind {self.scope_kind!r}", field="scope_kind")
        for name in ("hold_id", "scope", "actor", "reason", "case_id"):
            if not str(getattr(self, name)).strip():
                raise ValidationError(f"{name} must not be empty", field=name)
        _require_aware(self.set_at, "set_at")
        if self.released_at is not None:
            _require_aware(self.released_at, "released_at")
            if self.released_at < self.set_at:
                raise ValidationError("released_at precedes set_at", field="released_at")

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers(self, stream: str, incident_id: str | None, case_ids: Iterable[str]) -> bool:
        """Whether this hold's scope covers the stream (ignores release)."""
        if self.scope_kind == "stream":
            return stream == self.scope
        if self.scope_kind == "stream_prefix":
            prefix = self.scope.rstrip("/")
            return stream == prefix or stream.startswith(prefix + "/")
        if self.scope_kind == "incident":
            return incident_id is not None and incident_id == self.scope
        return self.scope in set(case_ids)


def holds_covering(
    stream: str, incident_id: str | None, case_ids: set[str], holds: Iterable[LegalHold]
) -> list[LegalHold]:
    """The active (unreleased) holds that cover the stream; ``stream_prefix`` matches at ``/`` boundaries."""
    return [hold for hold in holds if hold.active and hold.covers(stream, incident_id, case_ids)]


# --- decisions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether disposal may be proposed; ``rule`` cites the rule applied."""

    eligible: bool
    reason: str
    rule: str


@dataclass(frozen=True, slots=True)
class ErasureDecision:
    """Erase now, or defer; ``until`` is when the deferral is known to end (``None``: not yet known)."""

    action: Literal["erase", "defer"]
    until: datetime | None
    reason: str
    rule: str


def _active(holds: Iterable[LegalHold]) -> list[LegalHold]:
    return [hold for hold in holds if hold.active]


def disposal_decision(now: datetime, retain_until: datetime | None, active_holds: Iterable[LegalHold]) -> Decision:
    """Eligible only when retention is running, ``now >= retain_until`` and no hold is active.

    Eligibility never deletes anything: disposal still needs a signed disposal event.
    """
    _require_aware(now, "now")
    holds = _active(active_holds)
    if holds:
        ids = ", ".join(sorted(hold.hold_id for hold in holds))
        return Decision(False, f"legal hold active ({ids}); expiry suspended until release", RULE_LEGAL_HOLD)
    if retain_until is None:
        return Decision(False, "retention not yet running (incident not closed); keep", RULE_DISPOSAL_NOT_RUNNING)
    _require_aware(retain_until, "retain_until")
    if now < retain_until:
        return Decision(False, f"retention runs until {retain_until.isoformat()}", RULE_DISPOSAL_NOT_EXPIRED)
    return Decision(
        True,
        f"retention ended at {retain_until.isoformat()}; eligible for disposal, not deleted automatically",
        RULE_DISPOSAL_EXPIRED,
    )


def erasure_decision(
    now: datetime,
    retention_class: RetentionClass,
    retain_until: datetime | None,
    active_holds: Iterable[LegalHold],
) -> ErasureDecision:
    """Defer erasure while a hold is active (Art. 17(3)(e)) or legal retention runs (Art. 17(3)(b)); else erase.

    With an active hold ``until`` is ``None`` (ends at a release not yet recorded).  Under legal retention
    ``until`` is the retention end, or ``None`` while retention has not started (open incident).
    """
    _require_aware(now, "now")
    if retain_until is not None:
        _require_aware(retain_until, "retain_until")
    holds = _active(active_holds)
    if holds:
        ids = ", ".join(sorted(hold.hold_id for hold in holds))
        return ErasureDecision(
            "defer", None, f"legal hold active ({ids}); erasure deferred until release", RULE_ERASURE_HOLD
        )
    if retention_class.required_by_law and (retain_until is None or now < retain_until):
        when = "retention has not started (incident open)" if retain_until is None else retain_until.isoformat()
        return ErasureDecision(
            "defer",
            retain_until,
            f"class {retention_class.name!r} retention is required by law; deferred until {when}",
            RULE_ERASURE_LAW,
        )
    return ErasureDecision(
        "erase",
        None,
        f"class {retention_class.name!r}: no retention required by law still running and no active hold",
        RULE_ERASURE_ALLOWED,
    )
