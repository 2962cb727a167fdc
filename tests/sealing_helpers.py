"""Shared helpers for the seal / restore / store-tamper tests: events, raw store access, the CLI, targets.

The raw store handles deliberately go *around* :mod:`retention.stores`: they are what an attacker with access
to the directory or to the storage account does (edit files, delete and re-upload blobs), so the tests can
check that the ledger detects it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from ledger.service import Ledger

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIDECAR_SUFFIX = ".meta.json"
CONTROLS = ("IAM-01", "IAM-02", "BCK-01", "NET-03", "LOG-02", "CHG-05", "VUL-04", "ENC-01")


# --- events ------------------------------------------------------------------------------------------------


def event_id(number: int) -> str:
    return str(uuid.UUID(int=number + 1, version=4))


def _when(number: int) -> str:
    day = 1 + number // 86_400 % 28
    return f"2026-10-{day:02d}T{number // 3600 % 24:02d}:{number // 60 % 60:02d}:{number % 60:02d}Z"


def check_event(number: int) -> dict[str, Any]:
    control = CONTROLS[number % len(CONTROLS)]
    when = _when(number)
    return {
        "id": event_id(number),
        "stream": f"controls/{control.lower()}/host-{number % 37:03d}",
        "type": "check.result",
        "occurred_at": when,
        "payload": {
            "control_id": control,
            "check_id": f"{control}-{number}",
            "status": ("pass", "pass", "pass", "fail", "error")[number % 5],
            "framework_refs": ["DORA Art. 9(4)(d)"],
            "evidence": [],
            "observed_at": when,
        },
    }


def approval_event(number: int) -> dict[str, Any]:
    when = _when(number)
    requester, approver = f"user-{number % 11}@bank.example", f"lead-{number % 5}@bank.example"
    return {
        "id": event_id(number),
        "stream": "approvals/changes",
        "type": "approval.decision",
        "occurred_at": when,
        "subjects": [requester, approver],
        "payload": {
            "subject": {"kind": "change", "ref": f"CHG-{number}"},
            "decision": "approved" if number % 3 else "rejected",
            "requester": requester,
            "approver": approver,
            "rationale": "Risk assessed, rollback plan tested",
            "decided_at": when,
        },
    }


def _given(value: Any, estimated: bool = False) -> dict[str, Any]:
    return {"value": value, "estimated": estimated, "source": "soc-runbook"}


def incident_event(number: int) -> dict[str, Any]:
    incident = f"INC-2026-{number // 1000:04d}"
    when = _when(number)
    if number % 2:
        return {
            "id": event_id(number),
            "stream": f"incident/{incident}",
            "type": "incident.detected",
            "occurred_at": when,
            "payload": {
                "incident_id": incident,
                "aware_at": when,
                "detected_by": "soc-monitoring",
                "summary": "Payment gateway degraded",
            },
        }
    return {
        "id": event_id(number),
        "stream": f"incident/{incident}",
        "type": "incident.classified",
        "occurred_at": when,
        "payload": {
            "incident_id": incident,
            "classified_at": when,
            "classified_by": "soc-duty-officer",
            "affects_critical_functions": _given(True),
            "affects_authorised_financial_services": _given(True),
            "malicious_unauthorised_access": _given(False),
            "malicious_access_may_cause_data_loss": _given(False),
            "clients_affected": _given(1200 + number % 1000, estimated=True),
            "member_states_affected": _given(["BE", "LU"]),
            "gross_costs_losses_eur": _given("85000.00", estimated=True),
        },
    }


def mixed_event(number: int) -> dict[str, Any]:
    """Mostly check results, with approvals (carrying subjects) and incident events mixed in."""
    if number % 250 == 125:
        return incident_event(number)
    if number % 40 == 7:
        return approval_event(number)
    return check_event(number)


def append_mixed(ledger: Ledger, first: int, count: int, *, batch: int = 1000) -> None:
    """Append events ``first .. first + count - 1`` in batches, alternating producers."""
    for start in range(first, first + count, batch):
        end = min(start + batch, first + count)
        producer = ("iam-scanner", "backup-monitor", "change-board")[start // batch % 3]
        ledger.append_batch([mixed_event(n) for n in range(start, end)], producer)


# --- gzip'd JSON Lines objects --------------------------------------------------------------------------


def gunzip_lines(data: bytes) -> list[bytes]:
    return gzip.decompress(data).split(b"\n")


def gzip_lines(lines: list[bytes]) -> bytes:
    return gzip.compress(b"\n".join(lines), compresslevel=6, mtime=0)


def edit_line(data: bytes, seq: int, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """Decompress a segment or payload object, apply ``edit`` to the JSON line of ``seq``, recompress."""
    lines = gunzip_lines(data)
    for index, line in enumerate(lines[1:], start=1):
        if not line:
            continue
        record = orjson.loads(line)
        if record.get("seq") == seq:
            edit(record)
            lines[index] = orjson.dumps(record)
            return gzip_lines(lines)
    raise AssertionError(f"seq {seq} is not in this object")


def change_one_character(text: str, after: str) -> str:
    """``text`` with the character following the first ``after`` changed (to another of the same class)."""
    at = text.index(after) + len(after)
    old = text[at]
    new = {"0": "1", "1": "2"}.get(old, "0") if old.isdigit() else ("b" if old != "b" else "c")
    return text[:at] + new + text[at + 1 :]


# --- raw access to the stores (the attacker's view) ------------------------------------------------------


class RawStore(Protocol):
    kind: str

    def spec(self) -> str: ...

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def write(self, name: str, data: bytes, *, keep_digest_metadata: bool = True) -> None: ...

    def remove(self, name: str) -> None: ...


@dataclass
class RawDirectory:
    """A filesystem store's directory, edited as files (sidecars rewritten too, unless told otherwise)."""

    root: Path
    kind: str = "filesystem"

    def spec(self) -> str:
        return str(self.root)

    def names(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.endswith((SIDECAR_SUFFIX, ".partial"))
        )

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def write(self, name: str, data: bytes, *, keep_digest_metadata: bool = True) -> None:
        path = self.root / name
        path.write_bytes(data)
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        if not keep_digest_metadata:
            sidecar.unlink(missing_ok=True)
            return
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else {"retain_until": None, "legal_hold": False}
        meta.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))  # a careful attacker
        sidecar.write_text(json.dumps(meta, sort_keys=True))

    def remove(self, name: str) -> None:
        path = self.root / name
        path.unlink()
        path.with_name(path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)

    def copy_to(self, root: Path) -> RawDirectory:
        shutil.copytree(self.root, root)
        return RawDirectory(root)


@dataclass
class RawContainer:
    """An Azure Blob container, edited with the SDK directly: delete, then upload (the store never overwrites)."""

    connection_string: str
    container: str
    kind: str = "azure"

    @property
    def client(self) -> ContainerClient:
        return ContainerClient.from_connection_string(self.connection_string, self.container)

    def spec(self) -> str:
        return f"azure:{self.container}"

    def names(self) -> list[str]:
        with self.client as client:
            return sorted(b.name for b in client.list_blobs() if not b.name.startswith(".worm-probe/"))

    def read(self, name: str) -> bytes:
        with self.client as client:
            return client.download_blob(name).readall()

    def metadata(self, name: str) -> dict[str, str]:
        with self.client as client:
            return dict(client.get_blob_client(name).get_blob_properties().metadata or {})

    def write(self, name: str, data: bytes, *, keep_digest_metadata: bool = True) -> None:
        metadata = {"sha256": hashlib.sha256(data).hexdigest()} if keep_digest_metadata else None
        with self.client as client:
            with contextlib.suppress(ResourceNotFoundError):
                client.delete_blob(name)  # Azurite enforces no immutability policy: the attacker may delete
            client.upload_blob(name, data, overwrite=False, metadata=metadata)

    def remove(self, name: str) -> None:
        with self.client as client:
            client.delete_blob(name)

    def copy_to(self, container: str) -> RawContainer:
        target = RawContainer(self.connection_string, container)
        with self.client as source, target.client as client:
            client.create_container()
            for blob in source.list_blobs(include=["metadata"]):
                data = source.download_blob(blob.name).readall()
                client.upload_blob(blob.name, data, overwrite=False, metadata=dict(blob.metadata or {}))
        return target

    def drop(self) -> None:
        with self.client as client:
            client.delete_container()


def fresh_container_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


# --- the CLI ------------------------------------------------------------------------------------------------


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> CliResult:
    """``ledger ARGS`` in a subprocess with a clean ``LEDGER_*`` environment plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    clean.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=PROJECT_ROOT,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return CliResult(done.returncode, done.stdout, done.stderr)


# --- restore targets ------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def sqlite_log_rows(path: Path) -> dict[str, int]:
    """Row counts of the log tables in an SQLite file (all zero if the file or the tables do not exist)."""
    counts = {"logs": 0, "entries": 0, "payloads": 0, "merkle_nodes": 0, "checkpoints": 0}
    if not path.exists():
        return counts
    with contextlib.closing(sqlite3.connect(path)) as conn:
        present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in counts:
            if table in present:
                counts[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    return counts


def iter_segment_entries(data: bytes) -> Iterator[dict[str, Any]]:
    for line in gunzip_lines(data)[1:]:
        if line:
            yield orjson.loads(line)
