"""The ledger's own evaluation, recorded beside every classification a producer appends.  Pure.

For an ``incident.classified`` or ``incident.reclassified`` event the ledger appends, in the same transaction and
on the same stream, a ``dora.classification_evaluated`` event holding the engine's worksheet (every criterion with
its inputs and estimate flags, the rule version) and whether the entity's stated conclusion agrees; for a
``threat.classified`` event, a ``dora.threat_evaluated`` event.  Their ids derive from the source event's id, so
a producer's retry appends neither twice; the ids are keyed with a ledger secret, so no producer can take one
first.  Producers cannot send ``dora.*`` events themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

from ledger.dora.classification import ThreatInputs, assess_threat, classify
from schemas.envelope import EventIn
from schemas.payloads import IncidentClassified, IncidentReclassified, ThreatClassified
from schemas.timestamps import format_timestamp

__all__ = [
    "EVALUATED_TYPE",
    "RESERVED_PREFIX",
    "SOURCE_TYPES",
    "THREAT_EVALUATED_TYPE",
    "evaluation_events",
    "is_reserved",
]

EVALUATED_TYPE = "dora.classification_evaluated"
THREAT_EVALUATED_TYPE = "dora.threat_evaluated"
RESERVED_PREFIX = "dora."
SOURCE_TYPES = frozenset({"incident.classified", "incident.reclassified", "threat.classified"})
DORA_PRODUCER = "ledger:dora"


def is_reserved(event_type: str) -> bool:
    return event_type.startswith(RESERVED_PREFIX)


def evaluation_events(event: EventIn, id_key: bytes) -> list[dict[str, Any]]:
    """The events the ledger records beside ``event`` (none for most types).

    ``id_key`` (a ledger secret) keys the derived ids, so a producer cannot take an evaluation's id in advance.
    """
    if event.type in ("incident.classified", "incident.reclassified"):
        model = IncidentReclassified if event.type == "incident.reclassified" else IncidentClassified
        inputs = model.model_validate(event.payload)
        result = classify(inputs)
        agrees = None if inputs.major is None else inputs.major == result.major
        payload: dict[str, Any] = {
            "source_event_id": event.id,
            "source_type": event.type,
            "incident_id": inputs.incident_id,
            "stated_major": inputs.major,
            "engine_major": result.major,
            "agrees": agrees,
            "disagreement": agrees is False,
            "worksheet": result.as_dict(),
        }
        return [_derived(event, EVALUATED_TYPE, payload, id_key)]
    if event.type == "threat.classified":
        threat = ThreatClassified.model_validate(event.payload)
        assessment = assess_threat(
            ThreatInputs(
                threat.could_affect_critical_functions_or_others.value,
                threat.high_probability.value,
                threat.would_meet_critical_services.value,
                threat.would_meet_clients.value,
                threat.would_meet_geography.value,
            )
        )
        agrees = None if threat.significant is None else threat.significant == assessment.significant
        payload = {
            "source_event_id": event.id,
            "threat_id": threat.threat_id,
            "stated_significant": threat.significant,
            "agrees": agrees,
            "disagreement": agrees is False,
            "assessment": assessment.as_dict(),
        }
        return [_derived(event, THREAT_EVALUATED_TYPE, payload, id_key)]
    return []


def _derived(source: EventIn, event_type: str, payload: dict[str, Any], id_key: bytes) -> dict[str, Any]:
    digest = hmac.new(id_key, f"{event_type}\n{source.id}".encode(), hashlib.sha256).digest()
    return {
        "id": str(uuid.UUID(bytes=digest[:16], version=4)),
        "stream": source.stream,
        "type": event_type,
        "occurred_at": format_timestamp(source.occurred_at),
        "payload": payload,
    }
