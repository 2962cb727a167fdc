"""Report export keyed by the field numbers of the template in ITS (EU) 2025/302 Annex I.  Pure.

No EU or Belgian machine-readable file format or submission channel for these reports is confirmed, so the
export is JSON keyed by the template's field numbers (``"2.3"``), behind one adapter per authority: entities
supervised by the NBB report to the NBB, the others to the FSMA (DORA.md section 2).  When an authority
publishes a format, only its adapter changes.  Fields the ledger does not hold are left out (never guessed);
items whose field number is not mapped here travel under ``"unnumbered"`` with a plain name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ledger.dora.timeline import IncidentView
from ledger.errors import ValidationError

__all__ = ["ADAPTERS", "AuthorityAdapter", "ReportIdentity", "build_report"]

TEMPLATE = "ITS (EU) 2025/302 Annex I"
FORMAT_NOTE = (
    "No machine-readable format or submission channel is confirmed for NBB or FSMA; this JSON is keyed by the "
    "ITS 2025/302 Annex I field numbers and must be transferred through the authority's current channel."
)
_STAGE_NAMES = {"initial": "initial notification", "intermediate": "intermediate report", "final": "final report"}


@dataclass(frozen=True, slots=True)
class ReportIdentity:
    """Who reports: from configuration (LEDGER_DORA_ENTITY_NAME, _LEI, _ENTITY_TYPE)."""

    entity_name: str
    entity_lei: str
    entity_type: str


class AuthorityAdapter(Protocol):
    name: str

    def envelope(self, fields: dict[str, Any]) -> dict[str, Any]: ...


class _JsonAdapter:
    def __init__(self, name: str, full_name: str) -> None:
        self.name = name
        self.full_name = full_name

    def envelope(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "authority": self.name,
            "authority_name": self.full_name,
            "template": TEMPLATE,
            "format_note": FORMAT_NOTE,
            **fields,
        }


ADAPTERS: dict[str, AuthorityAdapter] = {
    "NBB": _JsonAdapter("NBB", "National Bank of Belgium"),
    "FSMA": _JsonAdapter("FSMA", "Financial Services and Markets Authority"),
}


def _latest_input(view: IncidentView, name: str) -> Any:
    if not view.classifications:
        return None
    criterion_inputs = {}
    for criterion in view.classifications[-1].engine.criteria:
        criterion_inputs.update(criterion.inputs)
    item = criterion_inputs.get(name)
    return None if item is None else item.get("value")


def build_report(view: IncidentView, stages: list[str], identity: ReportIdentity, authority: str) -> dict[str, Any]:
    """The report for ``stages`` (one, or several submitted together) of the incident, for ``authority``."""
    adapter = ADAPTERS.get(authority)
    if adapter is None:
        raise ValidationError("authority must be NBB or FSMA", field="authority")
    unknown = [s for s in stages if s not in _STAGE_NAMES]
    if not stages or unknown:
        raise ValidationError("stages must be initial, intermediate and/or final", field="stages")
    if not view.classifications:
        raise ValidationError("the incident has no classification yet", field="incident")
    latest = view.classifications[-1]
    first_major = next((c for c in view.classifications if c.major), None)
    fields: dict[str, Any] = {
        "1.1": " + ".join(_STAGE_NAMES[s] for s in stages),
        "1.4": identity.entity_type,
        "1.15": "EUR",
        "2.1": view.incident_id,
    }
    if identity.entity_name:
        fields["1.2"] = identity.entity_name
        fields["1.5"] = identity.entity_name
    if identity.entity_lei:
        fields["1.3"] = identity.entity_lei
        fields["1.6"] = identity.entity_lei
    if view.aware_at:
        fields["2.2"] = view.aware_at
    if first_major is not None:
        fields["2.3"] = first_major.classified_at
    fields["2.5"] = [f"{c.code} ({c.article})" for c in latest.engine.criteria if c.met]
    states = _latest_input(view, "member_states_affected")
    if states:
        fields["2.6"] = states
    unnumbered: dict[str, Any] = {
        "classification": {
            "major": latest.major,
            "rule_version": latest.engine.rule_version,
            "path": latest.engine.path,
            "estimated": latest.engine.estimated,
        },
        "reclassifications": [
            {"seq": c.seq, "classified_at": c.classified_at, "major": c.major, "reason": c.reason}
            for c in view.classifications
            if c.kind == "reclassified"
        ],
    }
    if "intermediate" in stages or "final" in stages:
        reference = next((r.get("authority_reference") for r in view.reports if r.get("authority_reference")), None)
        if reference:
            fields["3.1"] = reference
        if view.recovered_at:
            fields["3.3"] = view.recovered_at
        clients = _latest_input(view, "clients_affected")
        if clients is not None:
            fields["3.4"] = clients
        total = _latest_input(view, "clients_total")
        if clients is not None and total:
            fields["3.5"] = f"{100 * int(clients) / int(total):.2f}"
    if "final" in stages:
        if view.root_cause:
            unnumbered["root_cause"] = view.root_cause
        if view.closed_at:
            unnumbered["closed_at"] = view.closed_at
        costs = _latest_input(view, "gross_costs_losses_eur")
        if costs is not None:
            unnumbered["gross_costs_losses_eur"] = costs
    fields["unnumbered"] = unnumbered
    fields["deadlines"] = [d.as_dict() for d in view.deadlines]
    return adapter.envelope(fields)
