"""API keys and audit runs in the database (the SQL the API needs, kept out of the routes)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, insert, select, update

from ledger.access import ApiKey, Role, new_token
from ledger.errors import NotFoundError
from ledger.store.recorder import translated
from ledger.store.tables import api_keys, audit_runs


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        role=Role(row.role),
        logs=tuple(json.loads(row.logs)),
        stream_prefixes=tuple(json.loads(row.stream_prefixes)),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ApiKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self, role: Role, logs: list[str], stream_prefixes: list[str], name: str, created_at: str
    ) -> tuple[ApiKey, str]:
        """Store a new key; returns it with its token, which is not kept anywhere."""
        key_id, token, digest = new_token()
        with translated("creating an API key"), self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_id=key_id,
                    secret_hash=digest,
                    role=role.value,
                    logs=json.dumps(sorted(set(logs))),
                    stream_prefixes=json.dumps(sorted(set(stream_prefixes))),
                    name=name,
                    created_at=created_at,
                )
            )
        return self.get(key_id), token

    def get(self, key_id: str) -> ApiKey:
        with translated("reading an API key"), self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            raise NotFoundError("no such API key")
        return _key(row)

    def lookup(self, key_id: str) -> tuple[ApiKey, bytes] | None:
        with translated("checking an API key"), self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        return None if row is None else (_key(row), bytes(row.secret_hash))

    def revoke(self, key_id: str, revoked_at: str) -> ApiKey:
        with translated("revoking an API key"), self.engine.begin() as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=revoked_at)
            )
        key = self.get(key_id)
        if result.rowcount == 0 and key.revoked_at is None:
            raise NotFoundError("no such API key")
        return key

    def list(self) -> list[ApiKey]:
        with translated("listing API keys"), self.engine.connect() as conn:
            return [_key(row) for row in conn.execute(select(api_keys).order_by(api_keys.c.created_at))]


class AuditRunStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, run_id: str, log_id: int, requested_by: str, started_at: str) -> None:
        with translated("recording an audit run"), self.engine.begin() as conn:
            conn.execute(
                insert(audit_runs).values(
                    id=run_id, log_id=log_id, requested_by=requested_by, started_at=started_at, status="running"
                )
            )

    def finish(self, run_id: str, status: str, report: dict[str, Any], finished_at: str) -> None:
        with translated("recording an audit run"), self.engine.begin() as conn:
            conn.execute(
                update(audit_runs)
                .where(audit_runs.c.id == run_id)
                .values(status=status, report=json.dumps(report), finished_at=finished_at)
            )

    def get(self, log_id: int, run_id: str) -> dict[str, Any]:
        with translated("reading an audit run"), self.engine.connect() as conn:
            row = conn.execute(
                select(audit_runs).where(audit_runs.c.id == run_id, audit_runs.c.log_id == log_id)
            ).first()
        if row is None:
            raise NotFoundError("no such audit run")
        return _run(row)

    def latest(self, log_id: int, limit: int = 20) -> list[dict[str, Any]]:
        query = (
            select(audit_runs)
            .where(audit_runs.c.log_id == log_id)
            .order_by(audit_runs.c.started_at.desc())
            .limit(limit)
        )
        with translated("reading audit runs"), self.engine.connect() as conn:
            return [_run(row) for row in conn.execute(query)]


def _run(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "requested_by": row.requested_by,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "status": row.status,
        "report": None if row.report is None else json.loads(row.report),
    }
