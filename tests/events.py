"""Valid events for tests: one builder instead of a copy per test module."""

from __future__ import annotations

import uuid
from typing import Any


def check_result(
    event_id: str | None = None, *, stream: str = "controls/iam-01/host-001", status: str = "pass"
) -> dict[str, Any]:
    """A valid ``check.result`` event; a fresh UUID unless ``event_id`` is given."""
    return {
        "id": event_id or str(uuid.uuid4()),
        "stream": stream,
        "type": "check.result",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": {
            "control_id": "IAM-01",
            "check_id": "c1",
            "status": status,
            "framework_refs": [],
            "evidence": [],
            "observed_at": "2026-11-20T10:00:00Z",
        },
    }
