"""Fixtures shared by the whole test suite.

Real services (DESIGN.md section 5) come from ``tests/services.py``. They start lazily, the first time a test
asks for one, and stop when the session ends; a service that cannot be obtained fails the tests that need it.

- ``postgres_server``: ``services.PostgresServer`` with ``.url`` (application role ``ledger_app``, not a
  superuser, on the shared database ``ledger_test``), ``.superuser_url`` (superuser, same database),
  ``.create_database(prefix, app_owns=False) -> Database(url, superuser_url)``, ``.database(prefix)`` (the
  same as a context manager that drops it afterwards), ``.drop_database(name)``, ``.app_role``
  (``"ledger_app"``) and ``.source``.
- ``pg_database``: a fresh empty database for one test, a ``services.Database``: ``.url`` (application role),
  ``.superuser_url``, ``.name``; it unpacks as ``url, superuser_url``. The superuser owns it, as in
  production: run migrations with ``superuser_url`` and grant the application role its rights (the role has
  only PUBLIC's: connect and use schema ``public``). ``postgres_server.database(prefix, app_owns=True)``
  gives a database the application role owns and can create tables in.
- ``kafka_bootstrap``: ``"host:port"`` of a Kafka-protocol broker.
- ``blob_connection_string``: an Azure Storage connection string for a Blob endpoint (Azurite).

Tests that use these fixtures are marked ``postgres``, ``kafka`` or ``blob`` automatically, so
``pytest -m "not postgres and not kafka and not blob"`` runs without any service.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests import services

T = TypeVar("T")

_SERVICE_MARKERS = {
    "postgres_server": "postgres",
    "pg_database": "postgres",
    "kafka_bootstrap": "kafka",
    "blob_connection_string": "blob",
}


@contextlib.contextmanager
def _required(service: contextlib.AbstractContextManager[T]) -> Iterator[T]:
    """Enter a service; report one that cannot be obtained as a plain failure, not a traceback."""
    reason = None
    try:
        with service as value:
            yield value
    except services.ServiceUnavailableError as error:
        reason = str(error)
    if reason is not None:  # outside the handler, so the message is not printed twice as a chained exception
        pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    with _required(services.postgres_server()) as server:
        yield server


@pytest.fixture
def pg_database(
    postgres_server: services.PostgresServer, request: pytest.FixtureRequest
) -> Iterator[services.Database]:
    with postgres_server.database(prefix=request.node.name) as database:
        yield database


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with _required(services.kafka_bootstrap_servers()) as bootstrap_servers:
        yield bootstrap_servers


@pytest.fixture(scope="session")
def blob_connection_string() -> Iterator[str]:
    with _required(services.blob_connection_string()) as connection_string:
        yield connection_string


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _SERVICE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
