"""docker-compose.yml gives the app only settings it reads, and starts it once its services are healthy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.settings import Settings

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
CORE_SETTINGS = (
    "database_url",
    "kafka_bootstrap_servers",
    "kafka_topic",
    "blob_connection_string",
    "blob_container",
    "signing_key",
)


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment, written either as a mapping or as a list of NAME=value."""
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return {name: None if value is None else str(value) for name, value in environment.items()}
    pairs = (entry.partition("=") for entry in environment)
    return {name: value if sep else None for name, sep, value in pairs}


def _setting_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{field}".upper() for field in Settings.model_fields}


def test_every_ledger_variable_is_a_setting_the_app_reads(compose_services: dict[str, Any]) -> None:
    given = {name for name in _environment(compose_services["app"]) if name.startswith("LEDGER_")}
    assert given - _setting_names() == set()


def test_core_settings_are_given_to_the_app(compose_services: dict[str, Any]) -> None:
    assert set(CORE_SETTINGS) <= set(Settings.model_fields)
    environment = _environment(compose_services["app"])
    missing = {f"LEDGER_{field.upper()}" for field in CORE_SETTINGS} - environment.keys()
    assert missing == set()
    assert all(environment[f"LEDGER_{field.upper()}"] for field in CORE_SETTINGS)


def test_app_database_url_uses_psycopg_on_the_postgres_service(compose_services: dict[str, Any]) -> None:
    url = _environment(compose_services["app"])["LEDGER_DATABASE_URL"] or ""
    assert url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in url


def test_signing_key_comes_from_the_host_environment(compose_services: dict[str, Any]) -> None:
    assert (_environment(compose_services["app"])["LEDGER_SIGNING_KEY"] or "").startswith("${LEDGER_SIGNING_KEY")


def test_app_waits_for_healthy_dependencies(compose_services: dict[str, Any]) -> None:
    depends_on = compose_services["app"]["depends_on"]
    assert isinstance(depends_on, dict), "depends_on needs the long form to state a condition"
    assert set(depends_on) == {"postgres", "kafka", "azurite"}
    for name, condition in depends_on.items():
        assert condition.get("condition") == "service_healthy", name
        assert compose_services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_postgres_is_version_15(compose_services: dict[str, Any]) -> None:
    image = compose_services["postgres"]["image"]
    assert image.partition(":")[0] == "postgres"
    assert image.partition(":")[2].split(".")[0].split("-")[0] == "15"


def test_app_runs_migrations_before_serving(compose_services: dict[str, Any]) -> None:
    command = compose_services["app"]["command"]
    script = command[-1] if isinstance(command, list) else command
    assert script.index("ledger db upgrade") < script.index("ledger serve")
