"""The ``ledger`` command line.  Every error is one line on stderr and a non-zero exit code."""

from __future__ import annotations

import base64
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ledger.access import ApiKey, check_stream_prefixes, parse_role
from ledger.errors import (
    ConfigurationError,
    ConflictError,
    EvidenceError,
    InfrastructureError,
    IntegrityError,
    LedgerError,
    ValidationError,
)
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.recorder import SqlRecorder
from ledger.store.records import EntryFilter

app = typer.Typer(
    help="Compliance evidence ledger: signed, hash-chained, Merkle-proven events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
proof_app = typer.Typer(help="Merkle proofs (RFC 9162) as JSON.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys of the log.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(proof_app, name="proof")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INFRASTRUCTURE = 3
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handles_errors(func: F) -> F:
    """Turn ledger errors into one line on stderr and an exit code by family."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IntegrityError as exc:
            _fail(str(exc), EXIT_FINDINGS)
        except EvidenceError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        except InfrastructureError as exc:
            _fail(str(exc), EXIT_INFRASTRUCTURE)
        except LedgerError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        return None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="embedded data directory (env LEDGER_DATA_DIR, default ./ledger-data)"),
    ] = None,
) -> None:
    if data_dir is not None:
        os.environ["LEDGER_DATA_DIR"] = str(data_dir)


def _settings() -> Settings:
    return Settings()


def _ledger() -> Ledger:
    return Ledger.open(_settings())


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
        console=None,
    )


@app.command()
@handles_errors
def init(
    origin: Annotated[str, typer.Option("--origin", help="log origin, also the key name (e.g. bank.example/ledger)")],
    json_out: JsonOption = False,
) -> None:
    """Create the log and its Ed25519 signing key (key file mode 0600, or LEDGER_SIGNING_KEY)."""
    ledger = Ledger.create(_settings(), origin)
    key = ledger.active_key()
    if json_out:
        _print_json({"origin": origin, "key_id": key.key_id, "verifier_key": key.verifier_key})
        return
    typer.echo(f"created log {origin}")
    typer.echo(f"verifier key: {key.verifier_key}")
    if ledger.settings.signing_key is None:
        typer.echo(f"private key:  {ledger.key_store.key_path(key.key_id)} (mode 0600; back it up offline)")


def _read_events(source: str) -> list[Any]:
    """A JSON object, a JSON array of objects, or JSON Lines, from a file or '-' for stdin."""
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {source}: {exc.strerror}") from exc
    text = raw.strip()
    if not text:
        raise ValidationError("no events in the input")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        if not value:
            raise ValidationError("no events in the input")
        return value
    if value is not None:
        raise ValidationError("the input must be a JSON object, an array of objects, or JSON Lines")
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"line {number}: not valid JSON") from exc
    return events


def _validated_event(index: int, raw: Any, max_payload_bytes: int) -> Any:
    from schemas.envelope import validate_event

    try:
        return validate_event(raw, max_payload_bytes=max_payload_bytes)
    except ValidationError as exc:
        raise ValidationError(f"event {index}: {exc}", field=exc.field, index=index) from exc


@app.command()
@handles_errors
def append(
    source: Annotated[str, typer.Argument(help="file with a JSON object, a JSON array or JSON Lines; - for stdin")],
    producer: Annotated[str, typer.Option(help="producer identity recorded in each entry")] = "cli",
    batch_size: Annotated[int, typer.Option(min=1, help="events per transaction")] = 1000,
    json_out: JsonOption = False,
) -> None:
    """Append events; prints each entry's seq and hash.

    Every event is validated before anything is appended, so a bad event appends nothing.  Events are
    then committed ``--batch-size`` at a time; a conflict in a later batch leaves earlier batches stored.
    """
    ledger = _ledger()
    events = [
        _validated_event(index, raw, ledger.settings.max_payload_bytes)
        for index, raw in enumerate(_read_events(source))
    ]
    results = []
    with _progress() as progress:
        task = progress.add_task("appending", total=len(events))
        for start in range(0, len(events), batch_size):
            chunk = events[start : start + batch_size]
            try:
                batch = ledger.append_batch(chunk, producer)
            except ConflictError as exc:
                where = "" if exc.index is None else f"event {exc.index + start}: "
                stored = f" (events 0..{start - 1} were appended by earlier batches)" if start else ""
                raise ConflictError(where + str(exc).split(": ", 1)[-1] + stored) from exc
            results.extend(batch)
            progress.advance(task, len(chunk))
    for result in results:
        row = {"seq": result.entry.seq, "hash": result.entry.hash.hex(), "created": result.created}
        if json_out:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        else:
            note = "" if result.created else "  (already stored: nothing appended)"
            typer.echo(f"seq {result.entry.seq}  hash {result.entry.hash.hex()}{note}")


def _entry_json(entry: Any) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "body": entry.body.decode("utf-8"),
        "hash": entry.hash.hex(),
        "signature": base64.b64encode(entry.signature).decode(),
        "key_id": entry.key_id,
    }


@app.command()
@handles_errors
def events(
    stream: Annotated[str | None, typer.Option(help="exact stream")] = None,
    stream_prefix: Annotated[str | None, typer.Option(help="stream prefix, e.g. controls/")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="event type")] = None,
    producer: Annotated[str | None, typer.Option(help="producer identity")] = None,
    subject: Annotated[str | None, typer.Option(help="subject ref (64 hex)")] = None,
    since: Annotated[str | None, typer.Option(help="occurred at or after (RFC 3339)")] = None,
    until: Annotated[str | None, typer.Option(help="occurred before (RFC 3339)")] = None,
    from_seq: Annotated[int | None, typer.Option(help="first seq (inclusive)")] = None,
    to_seq: Annotated[int | None, typer.Option(help="last seq (inclusive)")] = None,
    format_: Annotated[str, typer.Option("--format", help="jsonl or table")] = "jsonl",
) -> None:
    """List entries: one JSON object per line with seq, body (exact canonical bytes), hash, signature, key_id."""
    from schemas.timestamps import format_timestamp, parse_timestamp

    if format_ not in ("jsonl", "table"):
        raise ValidationError("--format must be jsonl or table", field="format")
    filters = EntryFilter(
        stream=stream,
        stream_prefix=stream_prefix,
        type=type_,
        producer=producer,
        subject=subject,
        occurred_since=None if since is None else format_timestamp(parse_timestamp(since, field="since")),
        occurred_until=None if until is None else format_timestamp(parse_timestamp(until, field="until")),
        from_seq=from_seq,
        to_seq=to_seq,
    )
    out = sys.stdout
    for entry in _ledger().entries(filters):
        if format_ == "jsonl":
            out.write(orjson.dumps(_entry_json(entry)).decode() + "\n")
        else:
            out.write(f"{entry.seq:>8}  {entry.occurred_at}  {entry.type:<22} {entry.stream}\n")


@app.command()
@handles_errors
def checkpoint(size: Annotated[int | None, typer.Option(help="tree size (default: current)")] = None) -> None:
    """Print the signed checkpoint note (C2SP tlog-checkpoint in a signed note) with its witness cosignatures."""
    sys.stdout.write(_ledger().cosigned_checkpoint(size))


@app.command("public-key")
@handles_errors
def public_key(json_out: JsonOption = False) -> None:
    """Print the verifier key line(s), active key first."""
    keys = _ledger().keys()
    if json_out:
        _print_json(
            [
                {
                    "key_id": k.key_id,
                    "verifier_key": k.verifier_key,
                    "valid_from_seq": k.valid_from_seq,
                    "valid_until_seq": k.valid_until_seq,
                    "valid_from": k.valid_from,
                    "valid_until": k.valid_until,
                }
                for k in keys
            ]
        )
        return
    for key in keys:
        typer.echo(key.verifier_key)


@proof_app.command("inclusion")
@handles_errors
def proof_inclusion(
    seq: Annotated[int, typer.Argument(help="entry seq (= leaf index)")],
    size: Annotated[int | None, typer.Option(help="tree size (default: current)")] = None,
) -> None:
    """Inclusion proof of an entry in the tree of the given size (RFC 9162 2.1.3)."""
    _print_json(_ledger().inclusion_proof(seq, size).as_dict())


@proof_app.command("consistency")
@handles_errors
def proof_consistency(
    from_size: Annotated[int, typer.Argument(help="earlier tree size")],
    to_size: Annotated[int, typer.Argument(help="later tree size")],
) -> None:
    """Consistency proof between two tree sizes (RFC 9162 2.1.4)."""
    _print_json(_ledger().consistency_proof(from_size, to_size).as_dict())


@app.command()
@handles_errors
def verify(json_out: JsonOption = False) -> None:
    """Audit everything stored: chain links, signatures, payload digests, tree nodes, every checkpoint."""
    ledger = _ledger()
    size = ledger.head().size
    with _progress() as progress:
        task = progress.add_task("verifying", total=size)
        report = ledger.audit(progress=lambda n: progress.advance(task, n))
    if json_out:
        _print_json(report.as_dict())
    else:
        for finding in report.findings:
            typer.echo(f"FINDING {finding}")
        verdict = "OK" if report.ok else f"FAILED with {len(report.findings)} finding(s)"
        typer.echo(
            f"{verdict}: {report.entries_checked} entries, {report.checkpoints_checked} checkpoints, "
            f"{report.nodes_checked} tree nodes, {report.payloads_checked} payloads checked"
            f" ({report.payloads_erased} erased), {report.subjects_checked} subject references"
        )
    if not report.ok:
        raise typer.Exit(EXIT_FINDINGS)


@keys_app.command("rotate")
@handles_errors
def keys_rotate(
    reason: Annotated[
        str, typer.Option(help="why the key is rotated (recorded in the key.rotated event)")
    ] = "scheduled",
    json_out: JsonOption = False,
) -> None:
    """Add a new signing key; the old key stays published with its validity period."""
    ledger = _ledger()
    key = ledger.rotate_key(reason)
    if json_out:
        _print_json({"key_id": key.key_id, "verifier_key": key.verifier_key, "valid_from_seq": key.valid_from_seq})
        return
    typer.echo(f"new active key: {key.verifier_key} (signs from seq {key.valid_from_seq})")
    if ledger.settings.signing_key is not None:
        typer.echo(f"update LEDGER_SIGNING_KEY with the new private key in {ledger.key_store.key_path(key.key_id)}")


@db_app.command("upgrade")
@handles_errors
def db_upgrade(
    grant_to: Annotated[
        str | None, typer.Option(help="PostgreSQL application role to grant append-only rights")
    ] = None,
) -> None:
    """Create or migrate the schema (Alembic), then grant the application role if one is given."""
    from ledger.store.database import grant_app_role, make_engine, migrate

    settings = _settings()
    engine = make_engine(settings.resolved_database_url())
    migrate(engine)
    role = grant_to or settings.database_app_role
    if role:
        grant_app_role(engine, role)
    typer.echo("schema is up to date" + (f"; role {role} may only append evidence" if role else ""))


@app.command()
@handles_errors
def demo(
    events_count: Annotated[int, typer.Option("--events", help="check results to generate")] = 5000,
) -> None:
    """Run the guided demonstration on a fresh embedded ledger."""
    from ledger.demo import run_demo

    run_demo(_settings(), events_count)


# --- the HTTP API: serving it and managing its keys -----------------------------------------------------

api_keys_app = typer.Typer(help="API keys of the HTTP API (tokens are shown once, never stored).", no_args_is_help=True)
app.add_typer(api_keys_app, name="api-keys")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


MAX_SERVE_WORKERS = 64


@app.command()
@handles_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8080,
    log_level: Annotated[str, typer.Option("--log-level", help=f"one of {', '.join(LOG_LEVELS)}")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=MAX_SERVE_WORKERS,
            help="server processes answering requests (above 1: PostgreSQL only; the sealer and the Kafka "
            "workers then run once, in the supervising process)",
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API (uvicorn) over the configured store; logs are JSON lines on stderr."""
    import uvicorn

    from api.app import create_app
    from api.middleware import configure_json_logging

    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise ValidationError(f"unknown log level; use one of {', '.join(LOG_LEVELS)}")
    settings = _settings()
    if workers > 1 and not _is_postgres(settings):
        raise ValidationError(
            "--workers above 1 needs PostgreSQL (LEDGER_DATABASE_URL): the embedded SQLite store is served by one "
            "process"
        )
    configure_json_logging(level)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": level,
        "log_config": None,  # keep the JSON logging configured above
        "access_log": False,  # ledger.api.access logs requests without query strings
        "server_header": False,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    from api.serving import serve_processes

    code = serve_processes(settings, workers, options)
    if code:
        raise typer.Exit(code)


def _is_postgres(settings: Settings) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url()).get_backend_name() == "postgresql"


def _api_key_store(recorder: SqlRecorder | None = None) -> ApiKeyStore:
    return ApiKeyStore((recorder or Ledger.open_recorder(_settings())).engine)


def _key_logs(recorder: SqlRecorder, requested: list[str] | None) -> list[str]:
    """The logs a new key covers: those named (each must exist), or the only log there is."""
    existing = [head.origin for head in recorder.list_logs()]
    if requested:
        for origin in requested:
            if origin not in existing:
                raise ValidationError(f"no such log: {origin}", field="logs")
        return requested
    if not existing:
        raise ConfigurationError("no log exists yet: run `ledger init --origin NAME` first")
    if len(existing) > 1:
        raise ValidationError(f"several logs exist ({', '.join(existing)}): choose with --log", field="logs")
    return existing


def _key_line(key: ApiKey) -> str:
    state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
    prefixes = f"  streams {','.join(key.stream_prefixes)}" if key.stream_prefixes else ""
    return f"{key.key_id}  {key.role:<9}  {key.name}  logs {','.join(key.logs)}{prefixes}  {state}"


@api_keys_app.command("create")
@handles_errors
def api_keys_create(
    role: Annotated[str, typer.Option("--role", help="publisher, officer, auditor or admin")],
    logs: Annotated[
        list[str] | None, typer.Option("--log", help="log origin the key may use (repeatable; default: the only log)")
    ] = None,
    stream_prefixes: Annotated[
        list[str] | None,
        typer.Option(
            "--stream-prefix", help="stream prefix a publisher may append under (repeatable; publishers need one)"
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="who holds the key; a publisher's events carry it as producer")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Create an API key and print its token once: only a hash of it is stored."""
    import pydantic

    from schemas.api import ApiKeyCreate

    recorder = Ledger.open_recorder(_settings())
    parsed_role = parse_role(role)
    try:
        request = ApiKeyCreate(
            role=parsed_role.value,
            logs=_key_logs(recorder, logs),
            stream_prefixes=stream_prefixes or [],
            name=name or parsed_role.value,
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValidationError(f"{where}: {first['msg']}", field=where) from None
    check_stream_prefixes(parsed_role, request.stream_prefixes)
    key, token = _api_key_store(recorder).create(
        parsed_role, request.logs, request.stream_prefixes, request.name, utc_now()
    )
    if json_out:
        _print_json({"key": key.public(), "token": token})
    else:
        typer.echo(f"created API key {_key_line(key)}")
        typer.echo(f"token: {token}")
    typer.echo("warning: the token is not stored anywhere and cannot be shown again; keep it now", err=True)


@api_keys_app.command("revoke")
@handles_errors
def api_keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (the part of the token after lk_)")],
) -> None:
    """Revoke an API key; running servers refuse it within seconds."""
    key = _api_key_store().revoke(key_id, utc_now())
    typer.echo(f"revoked API key {key.key_id} ({key.role}, {key.name})")


@api_keys_app.command("list")
@handles_errors
def api_keys_list(json_out: JsonOption = False) -> None:
    """List API keys, revoked ones included (never tokens or their hashes)."""
    keys = _api_key_store().list()
    if json_out:
        _print_json([key.public() for key in keys])
        return
    for key in keys:
        typer.echo(_key_line(key))
    if not keys:
        typer.echo("no API keys yet: create one with `ledger api-keys create --role ROLE`")


def main() -> None:
    """Run the CLI; usage errors, like every other error, are one line on stderr."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except typer.TyperException as exc:
        message = " ".join(exc.format_message().split())
        typer.echo(f"error: {message} (see ledger --help)", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


# --- Kafka ingest: consuming services' events -----------------------------------------------------------


@app.command()
@handles_errors
def ingest(
    once: Annotated[bool, typer.Option("--once", help="consume up to the topic's current end, then exit")] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", help="exit after consuming this many messages", min=1)
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="one of critical, error, warning, info, debug")] = (
        "info"
    ),
    json_out: JsonOption = False,
) -> None:
    """Append the events of the ingest topic (LEDGER_KAFKA_INGEST_TOPIC) exactly once, as producer kafka:<topic>.

    Messages are envelope JSON or CloudEvents 1.0 structured-mode JSON; offsets commit with the entries.

    Refused messages go to the dead-letter topic with the reason. Runs until SIGTERM unless --once/--max-messages.
    """
    import logging
    import signal
    import threading

    from api.middleware import configure_json_logging
    from ledger.bus.ingest import IngestConsumer, check_ingest_settings

    level = log_level.lower()
    if level not in ("critical", "error", "warning", "info", "debug"):
        raise ValidationError("unknown log level; use one of critical, error, warning, info, debug")
    settings = _settings()
    check_ingest_settings(settings)
    ledger = Ledger.open(settings)
    configure_json_logging(level)  # after opening: migrations stay quiet
    if level in ("info", "debug"):
        logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python is chatty at INFO
    with IngestConsumer(ledger, settings) as consumer:
        if once:
            stats = consumer.run_once(max_messages)
        else:
            stop = threading.Event()
            previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                stats = consumer.run_forever(stop, max_messages=max_messages)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    if json_out:
        _print_json({"topic": consumer.topic, "producer": consumer.producer, **stats.as_dict()})
    else:
        typer.echo(
            f"consumed {stats.consumed} messages from {consumer.topic}: appended {stats.appended}, "
            f"already stored {stats.already_stored}, dead-lettered {stats.dead_lettered} "
            f"(published {stats.dead_letters_published} to {consumer.dead_letter_topic})"
        )


# --- Kafka: the relay out and topic set-up ----------------------------------------------------------------

kafka_app = typer.Typer(help="Kafka topics of the ledger.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")


def _kafka_settings() -> Settings:
    settings = _settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigurationError("no Kafka broker configured: set LEDGER_KAFKA_BOOTSTRAP_SERVERS")
    return settings


@app.command()
@handles_errors
def relay(
    once: Annotated[bool, typer.Option("--once", help="publish every entry not yet published, then exit")] = False,
) -> None:
    """Publish committed entries to the Kafka topic in seq order (runs until SIGTERM or Ctrl-C)."""
    import logging
    import signal
    import threading

    from ledger.bus.relay import Relay

    settings = _kafka_settings()
    ledger = _ledger()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # the relay reports broker failures itself
    with Relay(ledger, settings) as relayer:
        if once:
            published = relayer.run_once()
            typer.echo(f"published {published} entries to {settings.kafka_topic}; next seq {relayer.next_seq()}")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        typer.echo(f"relaying {ledger.origin} to {settings.kafka_topic} from seq {relayer.next_seq()}", err=True)
        relayer.run_forever(stop)


@kafka_app.command("create-topics")
@handles_errors
def kafka_create_topics() -> None:
    """Create the entries, ingest and dead-letter topics; check existing ones (exit 1 on a difference)."""
    from ledger.bus.topics import create_topics

    report = create_topics(_kafka_settings())
    typer.echo(report.text())
    if not report.ok:
        raise typer.Exit(EXIT_FINDINGS)


# --- Kafka: reconciliation of the entries topic ------------------------------------------------------------

reconcile_app = typer.Typer(help="Compare what was published with the log.", no_args_is_help=True)
app.add_typer(reconcile_app, name="reconcile")


@reconcile_app.command("kafka")
@handles_errors
def reconcile_kafka(
    topic: Annotated[str | None, typer.Option("--topic", help="topic to read (default: LEDGER_KAFKA_TOPIC)")] = None,
    json_out: JsonOption = False,
) -> None:
    """Read the entries topic back and compare it with the database and the latest signed checkpoint.

    Reports missing, extra, altered, out-of-order and malformed records and broken chain links by seq.

    Exits 1 when there is any finding; exact repeats (a relay restart) and entries not yet relayed are only notes.
    """
    import logging

    from ledger.bus.reconcile import reconcile_topic

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # broker failures end as one error line
    settings = _settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigurationError("no Kafka broker configured: set LEDGER_KAFKA_BOOTSTRAP_SERVERS")
    report = reconcile_topic(Ledger.open(settings), settings.kafka_bootstrap_servers, topic or settings.kafka_topic)
    if json_out:
        _print_json(report.as_dict())
    else:
        for finding in report.findings:
            typer.echo(f"FINDING {finding}")
        if report.findings_total > len(report.findings):
            typer.echo(f"... and {report.findings_total - len(report.findings)} more findings")
        verdict = "OK" if report.ok else f"FAILED with {report.findings_total} finding(s)"
        checkpoint = "no signed checkpoint"
        if report.checkpoint_size is not None:
            covered = "checked" if report.checkpoint_checked else "not rebuilt from the topic"
            checkpoint = f"checkpoint of size {report.checkpoint_size} {covered}"
        typer.echo(
            f"{verdict}: {report.records_read} records read from {report.topic}, {report.distinct_seqs} distinct seqs, "
            f"{report.database_size} entries in the database, {checkpoint}; {report.duplicates} exact repeats, "
            f"{report.unpublished} entries not yet relayed"
        )
    if not report.ok:
        raise typer.Exit(EXIT_FINDINGS)


# --- retention: legal holds, disposal, GDPR erasure (DORA.md sections 3 and 5) ------------------------------

hold_app = typer.Typer(help="Legal holds, recorded as ledger events.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention and disposal of expired payloads.", no_args_is_help=True)
app.add_typer(hold_app, name="hold")
app.add_typer(retention_app, name="retention")


def _retention_policy(path: Path | None) -> Any:
    from retention.policy import load_policy

    path = path or _settings().retention_policy_file
    if path is None:
        return load_policy(None)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the retention policy {path}: {exc.strerror}") from None
    return load_policy(text)


def _retention_now(now: str | None) -> Any:
    from datetime import UTC, datetime

    from schemas.timestamps import parse_timestamp

    return datetime.now(UTC) if now is None else parse_timestamp(now, field="now")


def _until_text(until: Any) -> str:
    return "not running" if until is None else until.isoformat()


PolicyOption = Annotated[Path | None, typer.Option("--policy", help="retention policy TOML (default: built-in)")]


@hold_app.command("set")
@handles_errors
def hold_set(
    scope_kind: Annotated[str, typer.Option("--scope-kind", help="stream, stream_prefix, incident or case")],
    scope: Annotated[str, typer.Option("--scope", help="the stream, prefix, incident id or case id held")],
    reason: Annotated[str, typer.Option("--reason", help="why the hold is set")],
    actor: Annotated[str, typer.Option("--actor", help="who sets the hold")] = "cli",
    case_id: Annotated[str | None, typer.Option("--case-id", help="case or matter reference")] = None,
) -> None:
    """Set a legal hold: suspends expiry (and defers erasure) of what it covers until released."""
    from retention.holds import set_hold

    ledger = _ledger()
    hold = set_hold(ledger, scope_kind=scope_kind, scope=scope, reason=reason, actor=actor, case_id=case_id)
    typer.echo(f"hold {hold.hold_id} set on {hold.scope_kind} {hold.scope}")
    _catch_up_store(ledger)


@hold_app.command("release")
@handles_errors
def hold_release(
    hold_id: Annotated[str, typer.Argument(help="the hold to release")],
    reason: Annotated[str, typer.Option("--reason", help="why the hold is released")],
    actor: Annotated[str, typer.Option("--actor", help="who releases the hold")] = "cli",
) -> None:
    """Release a legal hold (recorded as a ledger event)."""
    from retention.holds import release_hold

    ledger = _ledger()
    hold = release_hold(ledger, hold_id, reason=reason, actor=actor)
    typer.echo(f"hold {hold.hold_id} released")
    _catch_up_store(ledger)


@hold_app.command("list")
@handles_errors
def hold_list(json_out: JsonOption = False) -> None:
    """List every legal hold with its state."""
    from retention.holds import load_holds

    holds = load_holds(_ledger())
    if json_out:
        _print_json(
            [
                {
                    "hold_id": h.hold_id,
                    "scope_kind": h.scope_kind,
                    "scope": h.scope,
                    "actor": h.actor,
                    "reason": h.reason,
                    "case_id": h.case_id,
                    "set_at": h.set_at.isoformat(),
                    "released_at": None if h.released_at is None else h.released_at.isoformat(),
                }
                for h in holds
            ]
        )
        return
    for h in holds:
        state = "active" if h.active else f"released {h.released_at.isoformat() if h.released_at else ''}"
        typer.echo(f"{h.hold_id}  {h.scope_kind} {h.scope}  case {h.case_id}  set {h.set_at.isoformat()}  {state}")
    if not holds:
        typer.echo("no legal holds")


@retention_app.command("dispose")
@handles_errors
def retention_dispose(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be disposed; change nothing")] = False,
    execute: Annotated[bool, typer.Option("--execute", help="record a disposal event and remove payloads")] = False,
    now: Annotated[str | None, typer.Option("--now", help="decision time, RFC 3339 (default: now)")] = None,
    policy: PolicyOption = None,
) -> None:
    """Dispose of payloads whose retention has ended and that no legal hold covers (entries and proofs stay)."""
    from retention.disposal import execute_disposal, plan_disposal
    from retention.policy import DEFAULT_RETENTION_WORDING

    if dry_run == execute:
        raise ValidationError("choose exactly one of --dry-run and --execute")
    retention_policy = _retention_policy(policy)
    moment = _retention_now(now)
    ledger = _ledger()
    typer.echo(DEFAULT_RETENTION_WORDING)
    if dry_run:
        candidates = plan_disposal(ledger, retention_policy, moment)
        for c in candidates:
            verdict = "dispose" if c.decision.eligible else "keep"
            typer.echo(
                f"seq {c.seq}  {c.event_type}  retain-until {_until_text(c.retain_until)}  {verdict}  {c.decision.rule}"
            )
        eligible = sum(1 for c in candidates if c.decision.eligible)
        typer.echo(f"dry run: {eligible} of {len(candidates)} payloads eligible for disposal; nothing changed")
        return
    outcome = execute_disposal(ledger, retention_policy, moment)
    if outcome.event_seq is None:
        typer.echo("nothing eligible for disposal; nothing recorded")
        return
    typer.echo(
        f"disposed {len(outcome.disposed)} payloads (seqs {_seq_ranges_text(outcome.disposed)}) under disposal event "
        f"seq {outcome.event_seq}"
    )
    _catch_up_store(ledger)


@app.command()
@handles_errors
def erase(
    subject: Annotated[str, typer.Option("--subject", help="subject ref (64 hex, an HMAC)")],
    execute: Annotated[
        bool, typer.Option("--execute", help="record the decision and erase (default: dry run)")
    ] = False,
    policy: PolicyOption = None,
) -> None:
    """GDPR Art. 17 erasure of a subject's payloads; deferred where retention is required by law or held."""
    from retention.disposal import execute_erasure, plan_erasure
    from retention.policy import DEFAULT_RETENTION_WORDING

    retention_policy = _retention_policy(policy)
    moment = _retention_now(None)
    ledger = _ledger()
    typer.echo(DEFAULT_RETENTION_WORDING)
    if not execute:
        candidates = plan_erasure(ledger, retention_policy, subject, moment)
        for c in candidates:
            until = "" if c.decision.until is None else f" until {c.decision.until.isoformat()}"
            typer.echo(
                f"seq {c.seq}  {c.event_type}  retain-until {_until_text(c.retain_until)}  "
                f"{c.decision.action}{until}  {c.decision.rule}"
            )
        erasable = sum(1 for c in candidates if c.decision.action == "erase")
        typer.echo(f"dry run: {erasable} of {len(candidates)} payloads would be erased; nothing changed")
        return
    outcome = execute_erasure(ledger, retention_policy, subject, moment)
    typer.echo(
        f"erased {len(outcome.erased)} payloads, deferred {len(outcome.deferred)}; "
        f"decision recorded as seq {outcome.event_seq}"
    )
    _catch_up_store(ledger)


def _seq_ranges_text(seqs: Any) -> str:
    from retention.disposal import seq_ranges

    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in seq_ranges(seqs))


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="object store: a directory, file:PATH, azure or azure:CONTAINER (default: Blob when "
        "LEDGER_BLOB_CONNECTION_STRING is set, else <data dir>/snapshots)",
    ),
]
StoreNameOption = Annotated[
    str | None, typer.Option("--store-name", help="the store's name in the chain (default LEDGER_SEAL_STORE_NAME)")
]


def _sealer(ledger: Ledger, store: str | None, store_name: str | None, policy: Path | None = None) -> Any:
    from retention.sealing import SealConfig, Sealer
    from retention.stores.select import open_store

    settings = ledger.settings
    config = SealConfig(
        every_entries=settings.seal_every_entries,
        every_seconds=settings.seal_every_seconds,
        worm=settings.seal_worm,
        policy=_retention_policy(policy),
    )
    return Sealer(ledger, open_store(store, settings), store_name or settings.seal_store_name, config)


def _catch_up_store(ledger: Ledger) -> None:
    """After a hold, disposal or erasure: bring the default store in line, if anything was ever sealed there."""
    from ledger.store.retention import last_entry_seq
    from retention.sealing import SEALED_TYPE, snapshot_stream

    stream = snapshot_stream(ledger.settings.seal_store_name)
    if last_entry_seq(ledger.recorder.engine, ledger.log_id, stream, SEALED_TYPE) is None:
        return
    report = _sealer(ledger, None, None).catch_up()
    for name in report.redacted:
        typer.echo(f"rewrote sealed payload object {name} without the removed payloads")
    for name in report.holds_changed:
        typer.echo(f"legal hold updated on sealed object {name}")
    for note in report.notes:
        typer.echo(f"note: {note}")


@app.command()
@handles_errors
def seal(
    store: StoreOption = None,
    store_name: StoreNameOption = None,
    all_: Annotated[bool, typer.Option("--all", help="also seal a last, shorter segment now")] = False,
    policy: PolicyOption = None,
    json_out: JsonOption = False,
) -> None:
    """Seal the entries not yet sealed into the object store (segments, payloads, signed checkpoints).

    Segments of LEDGER_SEAL_EVERY_ENTRIES entries, and a shorter one once LEDGER_SEAL_EVERY_SECONDS have passed
    (or with --all).  Safe to repeat and to run after a crash: it resumes where the chain says it stopped.
    """
    ledger = _ledger()
    sealer = _sealer(ledger, store, store_name, policy)
    report = sealer.run_once(force=all_)
    worm = sealer.worm_report()
    if json_out:
        _print_json(
            {
                "sealed": [
                    {
                        "first": r.first,
                        "last": r.last,
                        "event_seq": r.event_seq,
                        "retain_until": r.retain_until,
                        "legal_hold": r.legal_hold,
                        "objects": [o.as_dict() for o in r.objects.values()],
                    }
                    for r in report.sealed
                ],
                "redacted": report.redacted,
                "holds_changed": report.holds_changed,
                "notes": report.notes,
                "worm": {"enforced": worm.enforced, "detail": worm.detail},
            }
        )
        return
    for record in report.sealed:
        hold = ", legal hold" if record.legal_hold else ""
        typer.echo(
            f"sealed seqs {record.first}..{record.last} (event seq {record.event_seq}), retain until "
            f"{record.retain_until or 'not set'}{hold}"
        )
    for name in report.redacted:
        typer.echo(f"rewrote sealed payload object {name} without the removed payloads")
    for note in report.notes:
        typer.echo(f"note: {note}")
    if not report.sealed and not report.busy:
        typer.echo("nothing due for sealing")
    typer.echo(f"WORM {'enforced' if worm.enforced else 'NOT enforced'}: {worm.detail}")


@retention_app.command("status")
@handles_errors
def retention_status(
    store: StoreOption = None, store_name: StoreNameOption = None, json_out: JsonOption = False
) -> None:
    """Per store: whether immutability is enforced, what is sealed, and every object that no longer matches.

    Exits 1 when an object is missing, altered, unrecorded or its checkpoint does not verify.
    """
    from retention.status import store_status
    from retention.stores.select import describe_spec, open_store

    ledger = _ledger()
    settings = ledger.settings
    status = store_status(
        ledger,
        open_store(store, settings),
        store_name or settings.seal_store_name,
        description=describe_spec(store, settings),
    )
    if json_out:
        _print_json(status.as_dict())
    else:
        typer.echo(status.policy)
        typer.echo(f"store {status.store_name}: {status.store}")
        verdict = "enforced" if status.worm_enforced else "NOT enforced"
        typer.echo(f"  immutability (WORM): {verdict} - {status.worm_detail}")
        typer.echo(
            f"  sealed: {status.segments} segments, {status.sealed_entries} entries; "
            f"{status.unsealed_entries} entries not yet sealed"
        )
        typer.echo(f"  latest retain-until: {status.latest_retain_until or 'none'}")
        typer.echo(f"  legal holds: {status.active_holds} active; {status.held_segments} segments sealed under hold")
        typer.echo(f"  objects checked against the chain: {status.objects_checked}")
        for finding in status.findings:
            typer.echo(f"FINDING {finding}")
        typer.echo("OK" if status.ok else f"FAILED with {len(status.findings)} finding(s)")
    if not status.ok:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
@handles_errors
def restore(
    from_: Annotated[
        str, typer.Option("--from", help="object store: a directory, file:PATH, azure or azure:CONTAINER")
    ],
    into: Annotated[
        str, typer.Option("--into", help="URL of a fresh database (postgresql+psycopg://… or sqlite:///…)")
    ],
    log: Annotated[str | None, typer.Option("--log", help="log origin (default: the only log in the store)")] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="trusted verifier key of the log (repeatable; recommended)")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Rebuild a fresh database from sealed segments, verifying every hash, signature, checkpoint and digest.

    Refuses (exit 1, naming the object and seq) when an object was altered, removed or reordered; the target
    database is then left unchanged.  The private key is not in the store: keep LEDGER_SIGNING_KEY or the key
    files to append to the restored log.
    """
    from retention.restore import restore as run_restore
    from retention.stores.select import open_store

    settings = _settings()
    with _progress() as progress:
        task = progress.add_task("restoring", total=None)
        report = run_restore(
            open_store(from_, settings, worm=False),
            into,
            origin=log,
            trusted_keys=key or [],
            progress=lambda n: progress.advance(task, n),
        )
    if json_out:
        _print_json(report.as_dict())
        return
    for note in report.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"restored {report.entries} entries of {report.origin} from {report.segments} segments; "
        f"{report.checkpoints} signed checkpoints and {report.digests_checked} recorded digests verified"
    )
    typer.echo(f"root {report.root} at size {report.size}; checkpoint:")
    typer.echo(report.checkpoint, nl=False)


# --- DORA incidents (DORA.md sections 1 and 2) ------------------------------------------------------------

dora_app = typer.Typer(
    help="DORA incidents: classification, deadlines, recurring incidents, reports.", no_args_is_help=True
)
app.add_typer(dora_app, name="dora")
NowOption = Annotated[str | None, typer.Option("--now", help="evaluate at this time, RFC 3339 (default: now)")]


def _read_json_object(path: str) -> dict[str, Any]:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError(f"{path} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValidationError(f"{path} must hold one JSON object")
    return value


def _model(model: Any, data: dict[str, Any]) -> Any:
    from pydantic import ValidationError as PydanticError

    try:
        return model.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "input"
        raise ValidationError(f"{where}: {first.get('msg', 'invalid')}", field=where) from None


@dora_app.command("classify")
@handles_errors
def dora_classify(
    source: Annotated[str, typer.Argument(help="JSON file with incident.classified inputs; - for stdin")],
) -> None:
    """Classify an incident under RTS 2024/1772 (nothing is appended): JSON with major, criteria, rule_version."""
    from ledger.dora.classification import classify
    from schemas.payloads import IncidentClassified

    _print_json(classify(_model(IncidentClassified, _read_json_object(source))).as_dict())


@dora_app.command("threat")
@handles_errors
def dora_threat(
    source: Annotated[str, typer.Argument(help="JSON file with threat.classified inputs; - for stdin")],
) -> None:
    """Assess a cyber threat under RTS 2024/1772 Art. 10 (nothing is appended)."""
    from ledger.dora.classification import ThreatInputs, assess_threat
    from schemas.payloads import ThreatClassified

    threat = _model(ThreatClassified, _read_json_object(source))
    inputs = ThreatInputs(
        threat.could_affect_critical_functions_or_others.value,
        threat.high_probability.value,
        threat.would_meet_critical_services.value,
        threat.would_meet_clients.value,
        threat.would_meet_geography.value,
    )
    _print_json(assess_threat(inputs).as_dict())


@dora_app.command("incidents")
@handles_errors
def dora_incidents(now: NowOption = None, json_out: JsonOption = False) -> None:
    """List incidents with their current classification and next deadline."""
    from ledger.dora.incidents import incident_ids, incident_view

    ledger = _ledger()
    moment = _retention_now(now)
    views = [incident_view(ledger, incident_id, moment) for incident_id in incident_ids(ledger)]
    if json_out:
        _print_json(
            [
                {"incident_id": v.incident_id, "major": v.major, "deadlines": [d.as_dict() for d in v.deadlines]}
                for v in views
            ]
        )
        return
    for view in views:
        pending = next((d for d in view.deadlines if d.state in ("due", "overdue")), None)
        typer.echo(
            f"{view.incident_id}  {'major' if view.major else 'not major'}  {pending.describe() if pending else ''}"
        )
    if not views:
        typer.echo("no incidents")


@dora_app.command("deadlines")
@handles_errors
def dora_deadlines(
    incident: Annotated[str, typer.Argument(help="incident id (stream incident/<id>)")],
    now: NowOption = None,
    json_out: JsonOption = False,
) -> None:
    """The incident's timeline and every reporting deadline as met, missed, or due in so long."""
    from ledger.dora.incidents import incident_view

    view = incident_view(_ledger(), incident, _retention_now(now))
    if json_out:
        _print_json(view.as_dict())
        return
    typer.echo(
        f"incident {view.incident_id}: {'MAJOR' if view.major else 'not major'}; aware at {view.aware_at or 'unknown'}"
    )
    for step in view.classifications:
        flag = "  DISAGREES with the engine" if step.disagreement else ""
        typer.echo(
            f"  seq {step.seq} {step.kind} at {step.classified_at}: {'major' if step.major else 'not major'} "
            f"(criteria {', '.join(step.engine.met_codes) or 'none'}; {step.engine.rule_version}){flag}"
        )
    for report in view.reports:
        typer.echo(
            f"  seq {report['seq']} submitted {'+'.join(report['stages'])} to {report['authority']} "
            f"at {report['submitted_at']}"
        )
    for notice in view.delay_notices:
        typer.echo(f"  seq {notice['seq']} delay notice for {notice['stage']} at {notice['notified_at']}")
    for status in view.deadlines:
        typer.echo(f"  {status.describe()}")
    for note in view.notes:
        typer.echo(f"  note: {note}")


@dora_app.command("due")
@handles_errors
def dora_due(
    within: Annotated[str, typer.Option("--within", help="look-ahead, e.g. 30m, 4h, 2d")] = "24h",
    now: NowOption = None,
    json_out: JsonOption = False,
) -> None:
    """Reports overdue or due within the look-ahead, across every incident, soonest first."""
    from ledger.dora.incidents import due_reports, parse_within

    items = due_reports(_ledger(), parse_within(within), _retention_now(now))
    if json_out:
        _print_json([item.as_dict() for item in items])
        return
    for item in items:
        typer.echo(f"{item.incident_id}  {item.status.describe()}")
    if not items:
        typer.echo(f"no report overdue or due within {within}")


@dora_app.command("recurring")
@handles_errors
def dora_recurring(
    month: Annotated[str, typer.Option("--month", help="the month checked, YYYY-MM (window: six months to its end)")],
    json_out: JsonOption = False,
) -> None:
    """RTS 2024/1772 Art. 8(2): recurring non-major incidents with one root cause that together are major."""
    from ledger.dora.incidents import recurring_incidents

    groups = recurring_incidents(_ledger(), month)
    if json_out:
        _print_json([g.as_dict() for g in groups])
        return
    for group in groups:
        typer.echo(
            f"root cause {group.root_cause}: incidents {', '.join(group.incidents)} together are MAJOR "
            f"(criteria {', '.join(group.classification.met_codes)})"
        )
    if not groups:
        typer.echo(f"no recurring incidents that together are major in the six months to {month}")
    typer.echo("aggregation: counts, values, durations and costs summed; totals the largest; yes/no inputs OR'ed")


@dora_app.command("export")
@handles_errors
def dora_export(
    incident: Annotated[str, typer.Argument(help="incident id")],
    stage: Annotated[list[str], typer.Option("--stage", help="initial, intermediate or final (repeatable)")],
    out: Annotated[Path | None, typer.Option("--out", help="write to this file (default: stdout)")] = None,
) -> None:
    """The report for NBB or FSMA (LEDGER_DORA_SUPERVISOR), keyed by the ITS 2025/302 Annex I field numbers."""
    from ledger.dora.incidents import export_report

    report = export_report(_ledger(), incident, stage)
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if out is None:
        sys.stdout.write(data.decode())
    else:
        out.write_bytes(data)
        typer.echo(f"wrote the {'+'.join(stage)} report for {report['authority']} to {out}")


# --- evidence packs (DORA.md section 6) -------------------------------------------------------------------

pack_app = typer.Typer(help="Evidence packs for supervisors and auditors.", no_args_is_help=True)
app.add_typer(pack_app, name="pack")


@pack_app.command("export")
@handles_errors
def pack_export(
    out: Annotated[Path, typer.Option("--out", help="the ZIP file to write (must not exist)")],
    stream: Annotated[list[str] | None, typer.Option("--stream", help="a stream in scope (repeatable)")] = None,
    stream_prefix: Annotated[
        list[str] | None, typer.Option("--stream-prefix", help="streams under this prefix (repeatable)")
    ] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="only these event types (repeatable)")] = None,
    incident: Annotated[list[str] | None, typer.Option("--incident", help="an incident id (repeatable)")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="only entries about this subject ref")] = None,
    since: Annotated[str | None, typer.Option("--since", help="occurred at or after (RFC 3339)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="occurred before (RFC 3339)")] = None,
    auditor_checkpoint: Annotated[
        Path | None, typer.Option("--auditor-checkpoint", help="an earlier signed checkpoint: adds a consistency proof")
    ] = None,
    exporter: Annotated[str, typer.Option("--exporter", help="who exports (recorded in pack.exported)")] = "cli",
    policy: PolicyOption = None,
) -> None:
    """Export an evidence pack: the entries in scope disclosed, the rest of their seq range as hashes, proofs,
    the signed checkpoint, keys, incident dossiers, retention state, a PDF report and an offline verifier."""
    from ledger.packs.build import PackScope, export_pack

    scope = PackScope(
        streams=tuple(stream or ()),
        stream_prefixes=tuple(stream_prefix or ()),
        types=tuple(type_ or ()),
        incidents=tuple(incident or ()),
        subject=subject,
        occurred_since=since,
        occurred_until=until,
    )
    earlier = None
    if auditor_checkpoint is not None:
        try:
            earlier = auditor_checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"cannot read the auditor checkpoint {auditor_checkpoint}: {exc}") from None
    result = export_pack(
        _ledger(), out, scope, exporter=exporter, auditor_checkpoint=earlier, policy=_retention_policy(policy)
    )
    typer.echo(
        f"wrote pack {result.pack_id} to {result.path}: seqs {result.first_seq}..{result.last_seq} "
        f"({result.disclosed} disclosed, {result.hidden} as hashes only), checkpoint of size {result.tree_size}"
    )
    typer.echo(f"sha256 {result.sha256}; recorded as pack.exported at seq {result.export_event_seq}")


@app.command("verify-pack")
def verify_pack_command(
    pack: Annotated[Path, typer.Argument(help="the evidence pack ZIP")],
    key: Annotated[list[str], typer.Option("--key", help="the log's verifier key, obtained from a trusted channel")],
    json_out: JsonOption = False,
) -> None:
    """Verify an evidence pack offline (no database, no network), trusting only the given key(s)."""
    from ledger.packs import verifier

    argv = [str(pack)]
    for item in key:
        argv += ["--key", item]
    if json_out:
        argv.append("--json")
    raise typer.Exit(verifier.main(argv))


# --- the witness: an auditor cosigns checkpoints after checking consistency -------------------------------

witness_app = typer.Typer(
    help="Cosign the log's checkpoints as an auditor's witness (C2SP tlog-cosignature), refusing forks.",
    invoke_without_command=True,
)
app.add_typer(witness_app, name="witness")


@witness_app.callback()
def witness(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", help="base URL of the ledger API")] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="LEDGER_WITNESS_TOKEN", help="auditor API key (lk_...)")
    ] = None,
    log_key: Annotated[
        list[str] | None, typer.Option("--log-key", help="the log's verifier key, from a trusted channel (repeatable)")
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="the witness's private key file (witness keygen)")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="state file: the last checkpoint cosigned")] = None,
    once: Annotated[bool, typer.Option("--once", help="one round, then exit")] = False,
    interval: Annotated[float, typer.Option("--interval", help="seconds between rounds")] = 60.0,
) -> None:
    """Fetch the latest checkpoint, verify it extends the last one cosigned, cosign it and hand it to the ledger.

    A checkpoint inconsistent with the one already cosigned is refused: one line FORK: ... on stderr, exit 1.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ledger.witness import main as run_witness

    missing = [
        name for name, value in (("--url", url), ("--token", token), ("--key", key), ("--state", state)) if not value
    ]
    if not log_key:
        missing.append("--log-key")
    if missing:
        _fail(f"missing {', '.join(missing)} (see ledger witness --help)", EXIT_BAD_INPUT)
    assert url is not None and token is not None and key is not None and state is not None and log_key is not None
    code = run_witness(
        url=url, token=token, log_keys=log_key, key_file=key, state_file=state, once=once, interval=interval
    )
    raise typer.Exit(code)


@witness_app.command("keygen")
@handles_errors
def witness_keygen(
    name: Annotated[str, typer.Option("--name", help="the witness's key name (e.g. witness.auditor.example)")],
    out: Annotated[Path, typer.Option("--out", help="private key file to create (mode 0600, never overwritten)")],
) -> None:
    """Create a witness key; prints the cosigner verifier key to list in the ledger's LEDGER_WITNESS_KEYS."""
    from ledger.witness import keygen

    typer.echo(keygen(name, out).verifier_key())


if __name__ == "__main__":
    main()
