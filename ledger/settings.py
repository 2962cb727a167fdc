"""Configuration, read from ``LEDGER_*`` environment variables (pydantic-settings).

The same names are used by the CLI, the server, docker-compose.yml and the README.  With nothing set,
everything runs embedded: SQLite and key files under ``LEDGER_DATA_DIR`` (default ``./ledger-data``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024


class Settings(BaseSettings):
    """Every setting the ledger reads; the environment name is ``LEDGER_`` + the field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    data_dir: Path = Field(default=Path("ledger-data"), description="embedded data: SQLite file and key files")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; PostgreSQL via psycopg 3")
    database_app_role: str | None = Field(
        default=None, description="PostgreSQL role granted append-only rights by `ledger db upgrade`"
    )
    log_origin: str | None = Field(default=None, description="log to use when several exist (C2SP origin)")
    signing_key: SecretStr | None = Field(default=None, description="C2SP private key, instead of the key file")
    subject_secret: SecretStr | None = Field(default=None, description="HMAC secret for subject refs (hex)")
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1)
    max_batch_events: int = Field(default=10_000, ge=1)
    checkpoint_interval: int = Field(default=1, ge=1, description="sign a checkpoint after every N append transactions")
    api_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="HTTP request body limit")
    api_max_batch_events: int = Field(default=1000, ge=1, description="events per POST /v1/events:batch")
    api_page_size_max: int = Field(default=1000, ge=1)
    api_rate_limit_per_second: float = Field(default=200.0, gt=0, description="sustained requests per key")
    api_rate_limit_burst: int = Field(default=400, ge=1)
    api_max_queued_appends: int = Field(
        default=1000,
        ge=1,
        description="appends waiting for a commit; beyond it new ones get 503 at once (load shedding)",
    )
    api_max_concurrency: int = Field(
        default=256, ge=1, description="requests handled at once (health checks aside); beyond it 503 at once"
    )
    api_cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins (JSON list)")
    database_timeout_seconds: float = Field(
        default=3.0, gt=0, description="connect / pool wait limit; beyond it requests fail with 503"
    )
    kafka_bootstrap_servers: str | None = None
    kafka_topic: str = Field(default="ledger-entries", description="topic the relay publishes every entry to")
    kafka_publish_payloads: bool = Field(default=False, description="also publish payloads (personal data!)")
    kafka_ingest_topic: str | None = Field(default=None, description="topic services publish events to")
    kafka_dead_letter_topic: str = Field(default="ledger-ingest-dead-letters")
    kafka_consumer_name: str = Field(default="ledger-ingest", description="name under which offsets are kept")
    kafka_partitions: int = Field(default=1, ge=1, description="partitions of created topics (1 keeps seq order)")
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_compression: str = Field(default="gzip", pattern="^(none|gzip|snappy|lz4|zstd)$")
    kafka_retention_ms: int = Field(
        default=220_752_000_000, ge=-1, description="topic retention; default 7 years (the retention policy)"
    )
    relay_batch_size: int = Field(default=1000, ge=1)
    relay_interval_seconds: float = Field(default=0.5, gt=0, description="pause when the relay has caught up")
    blob_connection_string: SecretStr | None = None
    blob_container: str = "regulatory-snapshots"
    snapshot_dir: Path | None = Field(
        default=None, description="local snapshot store when no Blob store is set (default <data dir>/snapshots)"
    )
    seal_store_name: str = Field(
        default="primary", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", description="name of the store in the chain"
    )
    seal_every_entries: int = Field(default=10_000, ge=1, description="entries per sealed segment")
    seal_every_seconds: float = Field(default=900.0, gt=0, description="seal a shorter segment after this long")
    seal_worm: bool = Field(default=True, description="upload sealed objects with an immutability policy")
    seal_enabled: bool = Field(default=True, description="run the sealer inside `ledger serve`")
    dora_entity_type: str = Field(
        default="other",
        pattern="^(credit_institution|central_counterparty|trading_venue_operator|nis2_entity|other)$",
        description="DORA entity type: decides whether the weekend rule applies to initial and intermediate reports",
    )
    dora_supervisor: str = Field(default="FSMA", pattern="^(NBB|FSMA)$", description="authority incidents go to")
    dora_weekend_rule: bool = Field(default=True, description="move deadlines on non-working days (RTS 2025/301)")
    dora_entity_name: str = Field(default="", max_length=256, description="financial entity name for reports")
    dora_entity_lei: str = Field(default="", pattern="^([A-Z0-9]{18}[0-9]{2})?$", description="LEI for reports")
    retention_policy_file: Path | None = Field(default=None, description="retention policy TOML (default: built-in)")
    witness_keys: list[str] = Field(
        default_factory=list,
        description="C2SP cosigner verifier keys (<name>+<id>+<base64(0x04 || key)>) of the witnesses whose "
        "cosignatures the ledger stores and publishes (JSON list)",
    )

    def resolved_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.db').resolve()}"

    def resolved_snapshot_dir(self) -> Path:
        return self.snapshot_dir if self.snapshot_dir is not None else self.data_dir / "snapshots"

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"
