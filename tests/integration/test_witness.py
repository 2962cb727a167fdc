"""Witness cosigning end to end: ``ledger witness`` against a real API server (uvicorn) over a real store.

The witness runs as its own process, as an auditor would run it; the ledger stores a cosignature only from a
configured witness key when it verifies, and publishes it with the checkpoint.  A second ledger with the same
origin and signing key but other entries is the fork the witness must refuse.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from api.app import create_app
from ledger.access import Role
from ledger.notes import (
    CosignatureVerifier,
    Cosigner,
    NoteSigner,
    open_note,
    parse_checkpoint,
    parse_cosigner_key,
    parse_note,
    parse_verifier_key,
    verify_cosignature,
)
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.cosignatures import CosignatureStore
from ledger.store.database import grant_app_role, make_engine, migrate
from tests.events import check_result

ORIGIN = "witnessed.bank.example/ledger"
WITNESS_NAME = "witness.auditor.example/w1"
CREATED_AT = "2026-11-20T00:00:00.000000Z"


# --- a served log -----------------------------------------------------------------------------------


@dataclass
class ServedLog:
    """A log, its API served by uvicorn on a local port, and an auditor key."""

    settings: Settings
    ledger: Ledger
    url: str
    token: str

    @property
    def log_key(self) -> str:
        return self.ledger.active_key().verifier_key

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"X-API-Key": self.token}, timeout=10)

    def post_cosignature(self, size: int, line: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/checkpoints/{size}/cosignatures",
            json={"cosignature": line},
            headers={"X-API-Key": self.token},
            timeout=10,
        )

    def append(self, count: int) -> None:
        self.ledger.append_batch([check_result() for _ in range(count)], producer="seed")

    def stored(self) -> list[tuple[int, str]]:
        rows = CosignatureStore(self.ledger.recorder.engine).all(self.ledger.log_id)
        return [(row.size, row.signature_line) for row in rows]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    """The API on a free local port, in a thread of this process (uvicorn, as ``ledger serve`` runs it)."""
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def _served_log(settings: Settings) -> Iterator[ServedLog]:
    ledger = Ledger.create(settings, ORIGIN)
    _, token = ApiKeyStore(ledger.recorder.engine).create(Role.AUDITOR, [ORIGIN], [], "auditor", CREATED_AT)
    try:
        with _serving(settings) as url:
            yield ServedLog(settings, ledger, url, token)
    finally:
        ledger.recorder.engine.dispose()


def _settings(data_dir: Path, witness_keys: list[str], *, signing_key: NoteSigner | None = None) -> Settings:
    secret = None if signing_key is None else SecretStr(signing_key.private_key_string())
    return Settings(
        data_dir=data_dir,
        witness_keys=witness_keys,
        signing_key=secret,
        seal_enabled=False,
        api_rate_limit_per_second=10_000,
        api_rate_limit_burst=10_000,
    )


def _postgres_settings(request: pytest.FixtureRequest, data_dir: Path, witness_keys: list[str]) -> Settings:
    database = request.getfixturevalue("pg_database")
    server = request.getfixturevalue("postgres_server")
    admin = make_engine(database.superuser_url)
    migrate(admin)  # the schema belongs to the superuser; the application role gets SELECT/INSERT on evidence
    grant_app_role(admin, server.app_role)
    admin.dispose()
    return _settings(data_dir, witness_keys).model_copy(update={"database_url": database.url})


# --- the witness as a process -----------------------------------------------------------------------


@dataclass
class WitnessKey:
    path: Path
    verifier_key: str

    @property
    def cosigner(self) -> Cosigner:
        return Cosigner.from_private_key(self.path.read_text().strip())

    @property
    def verifier(self) -> CosignatureVerifier:
        return parse_cosigner_key(self.verifier_key)


def _env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _witness(
    log: ServedLog, key: WitnessKey, state: Path, *, url: str | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    return _cli(
        "witness",
        "--url",
        url or log.url,
        "--token",
        token or log.token,
        "--log-key",
        log.log_key,
        "--key",
        str(key.path),
        "--state",
        str(state),
        "--once",
    )


@pytest.fixture
def witness_key(tmp_path: Path) -> WitnessKey:
    path = tmp_path / "witness.key"
    made = _cli("witness", "keygen", "--name", WITNESS_NAME, "--out", str(path))
    assert made.returncode == 0, made.stderr
    [verifier_key] = made.stdout.splitlines()
    assert verifier_key.startswith(WITNESS_NAME + "+")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert parse_cosigner_key(verifier_key) == Cosigner.from_private_key(path.read_text().strip()).verifier()
    return WitnessKey(path, verifier_key)


@pytest.fixture
def log(tmp_path: Path, witness_key: WitnessKey) -> Iterator[ServedLog]:
    with _served_log(_settings(tmp_path / "ledger", [witness_key.verifier_key])) as served:
        yield served


def _witness_lines(note: str, log_key: str) -> list[str]:
    """The signature lines of a note other than the log's own."""
    parsed = parse_note(note)
    log_name = log_key.split("+", 1)[0]
    return [signature.line().rstrip("\n") for signature in parsed.signatures if signature.name != log_name]


def _root_b64(note: str) -> str:
    return base64.b64encode(parse_checkpoint(parse_note(note).text).root).decode()


# --- cosigning ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_witness_cosigns_the_log_as_it_grows_and_the_cosignature_is_published(
    store: str, tmp_path: Path, witness_key: WitnessKey, request: pytest.FixtureRequest
) -> None:
    keys = [witness_key.verifier_key]
    if store == "postgresql":
        settings = _postgres_settings(request, tmp_path / "ledger", keys)
    else:
        settings = _settings(tmp_path / "ledger", keys)
    state = tmp_path / "witness-state.json"
    with _served_log(settings) as log:
        log.append(3)
        first = _witness(log, witness_key, state)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith(f"cosigned {ORIGIN} size 3 root "), first.stdout
        assert "(first checkpoint; stored by the ledger)" in first.stdout
        assert first.stderr == ""
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        saved = json.loads(state.read_text())
        assert (saved["origin"], saved["size"]) == (ORIGIN, 3)

        note = log.get("/v1/checkpoint").text
        text = parse_note(note).text
        assert text == parse_note(log.ledger.checkpoint(3)).text
        opened = open_note(note, [parse_verifier_key(log.log_key), witness_key.verifier], require=2)
        assert (WITNESS_NAME, witness_key.verifier.key_id) in opened.verified
        [line] = _witness_lines(note, log.log_key)
        assert abs(verify_cosignature(text, line, witness_key.verifier) - time.time()) < 120
        assert note.startswith(log.ledger.checkpoint(3))  # the log's note, then the witness's line

        again = _witness(log, witness_key, state)  # nothing new: nothing cosigned or sent again
        assert again.returncode == 0 and again.stdout.strip().endswith("already cosigned"), again

        log.append(2)
        log.append(2)
        second = _witness(log, witness_key, state)
        assert second.returncode == 0, second.stderr
        assert f"size 7 root {_root_b64(log.ledger.checkpoint(7))} (consistent with size 3;" in second.stdout
        assert json.loads(state.read_text())["size"] == 7
        assert stat.S_IMODE(state.stat().st_mode) == 0o600

        latest = log.get("/v1/checkpoint").text
        earlier = log.get("/v1/checkpoints/3").text
        assert earlier == note  # the earlier checkpoint keeps its own cosignature
        [latest_line] = _witness_lines(latest, log.log_key)
        verify_cosignature(parse_note(latest).text, latest_line, witness_key.verifier)
        assert [size for size, _ in log.stored()] == [3, 7]
        assert log.ledger.cosigned_checkpoint() == latest

        env = _env(LEDGER_DATA_DIR=str(settings.data_dir))
        if settings.database_url:
            env["LEDGER_DATABASE_URL"] = settings.database_url
        printed = _cli("checkpoint", "--size", "3", env=env)
        assert printed.returncode == 0 and printed.stdout == earlier, printed


def test_a_cosignature_posted_twice_is_stored_once(log: ServedLog, witness_key: WitnessKey) -> None:
    log.append(2)
    text = parse_note(log.ledger.checkpoint(2)).text
    line = witness_key.cosigner.cosign(text, int(time.time())).rstrip("\n")
    made = log.post_cosignature(2, line)
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == "/v1/checkpoints/2"
    assert made.json() | {"created_at": None} == {
        "size": 2,
        "witness_name": WITNESS_NAME,
        "witness_key_id": witness_key.verifier.key_id.hex(),
        "cosignature": line,
        "created_at": None,
        "created": True,
    }
    repeated = log.post_cosignature(2, line)
    assert repeated.status_code == 200, repeated.text
    assert repeated.json() == made.json() | {"created": False}
    later = witness_key.cosigner.cosign(text, int(time.time()) + 5)  # another timestamp: the first one is kept
    assert log.post_cosignature(2, later).json()["cosignature"] == line
    assert log.stored() == [(2, line)]
    assert _witness_lines(log.get("/v1/checkpoints/2").text, log.log_key) == [line]
    assert _witness_lines(log.get("/v1/checkpoint").text, log.log_key) == [line]


def _flipped(line: str) -> str:
    name, b64 = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    return f"{name} {base64.b64encode(bytes(raw)).decode()}"


REFUSED = {
    "another key of the same name": lambda key, text, other: Cosigner.generate(WITNESS_NAME).cosign(text, _now()),
    "a key of another name": lambda key, text, other: Cosigner.generate("witness.other.example").cosign(text, _now()),
    "a note signature, not a cosignature": lambda key, text, other: _note_signature(text),
    "signed over another checkpoint": lambda key, text, other: key.cosigner.cosign(other, _now()),
    "a flipped signature bit": lambda key, text, other: _flipped(key.cosigner.cosign(text, _now()).rstrip("\n")),
    "timestamped an hour ahead": lambda key, text, other: key.cosigner.cosign(text, _now() + 3600),
    "not a signature line": lambda key, text, other: "cosigned, trust me",
    "two lines": lambda key, text, other: key.cosigner.cosign(text, _now()) + key.cosigner.cosign(text, _now()),
}


def _now() -> int:
    return int(time.time())


def _note_signature(text: str) -> str:
    from ledger.notes import sign_note

    return sign_note(text, [NoteSigner.generate(WITNESS_NAME)]).split("\n\n", 1)[1]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_cosignatures_not_by_a_configured_witness_or_that_do_not_verify_are_refused(
    log: ServedLog, witness_key: WitnessKey, case: str
) -> None:
    log.append(3)
    text = parse_note(log.ledger.checkpoint(3)).text
    other = parse_note(log.ledger.checkpoint(2)).text
    line = REFUSED[case](witness_key, text, other).rstrip("\n")
    refused = log.post_cosignature(3, line)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    for part in line.split():
        if len(part) > 8:
            assert part not in refused.text  # the submitted line is never echoed
    assert problem["detail"]
    assert log.stored() == []
    assert _witness_lines(log.get("/v1/checkpoint").text, log.log_key) == []


def test_a_cosignature_of_a_size_beyond_the_log_is_not_found(log: ServedLog, witness_key: WitnessKey) -> None:
    log.append(1)
    text = parse_note(log.ledger.checkpoint(1)).text.replace("\n1\n", "\n9\n", 1)
    answer = log.post_cosignature(9, witness_key.cosigner.cosign(text, _now()))
    assert answer.status_code == 404, answer.text
    assert log.stored() == []


def test_an_unconfigured_witness_is_told_so_and_exits_3(tmp_path: Path, witness_key: WitnessKey) -> None:
    with _served_log(_settings(tmp_path / "ledger", [])) as log:
        log.append(2)
        done = _witness(log, witness_key, tmp_path / "state.json")
        assert done.returncode == 3, done
        [line] = done.stderr.splitlines()
        assert line.startswith("error: 422 ") and "not by a witness key this ledger accepts" in line
        assert log.stored() == []


# --- forks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("other_size", "kind"), [(5, "longer"), (3, "same size"), (2, "shorter")])
def test_a_fork_is_refused_reported_and_leaves_the_state_unchanged(
    tmp_path: Path, witness_key: WitnessKey, other_size: int, kind: str
) -> None:
    signer = NoteSigner.generate(ORIGIN)  # both ledgers sign with this key (LEDGER_SIGNING_KEY)
    keys = [witness_key.verifier_key]
    state = tmp_path / "witness-state.json"
    with _served_log(_settings(tmp_path / "a", keys, signing_key=signer)) as first:
        first.append(3)
        cosigned = _witness(first, witness_key, state)
        assert cosigned.returncode == 0, cosigned.stderr
        first_root = _root_b64(first.ledger.checkpoint(3))
        assert len(first.stored()) == 1
    before = state.read_bytes()
    mtime = state.stat().st_mtime_ns

    with _served_log(_settings(tmp_path / "b", keys, signing_key=signer)) as second:
        second.append(other_size)  # other events: another tree under the same origin and key
        assert second.log_key == first.log_key
        second_root = _root_b64(second.ledger.checkpoint(other_size))
        done = _witness(second, witness_key, state)
        assert done.returncode == 1, done
        assert done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith(f"FORK: {ORIGIN}: "), line
        assert f"checkpoint of size {other_size} with root {second_root}" in line
        assert f"cosigned checkpoint of size 3 with root {first_root}" in line
        assert second.stored() == []  # nothing was sent
        assert _witness_lines(second.get("/v1/checkpoint").text, second.log_key) == []
    assert state.read_bytes() == before and state.stat().st_mtime_ns == mtime
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


# --- other refusals -----------------------------------------------------------------------------------


def test_a_checkpoint_not_signed_by_the_given_log_key_is_refused(
    log: ServedLog, witness_key: WitnessKey, tmp_path: Path
) -> None:
    log.append(2)
    state = tmp_path / "state.json"
    impostor_key = NoteSigner.generate(ORIGIN).verifier_key()
    done = _cli(
        "witness", "--url", log.url, "--token", log.token, "--log-key", impostor_key,
        "--key", str(witness_key.path), "--state", str(state), "--once",
    )  # fmt: skip
    assert done.returncode == 1, done
    [line] = done.stderr.splitlines()
    assert line.startswith("error: the latest checkpoint is not signed by the log key")
    assert not state.exists()
    assert log.stored() == []


def test_network_and_http_failures_are_one_line_and_exit_3(
    log: ServedLog, witness_key: WitnessKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    closed = f"http://127.0.0.1:{_free_port()}"
    unreachable = _witness(log, witness_key, state, url=closed)
    assert unreachable.returncode == 3, unreachable
    [line] = unreachable.stderr.splitlines()
    assert line.startswith("error: GET /v1/checkpoint: the API could not be reached")
    refused = _witness(log, witness_key, state, token="lk_0123456789abcdef_" + "x" * 43)
    assert refused.returncode == 3, refused
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: 401 ")
    assert not state.exists()


def test_a_malformed_state_file_is_bad_input(log: ServedLog, witness_key: WitnessKey, tmp_path: Path) -> None:
    log.append(1)
    state = tmp_path / "state.json"
    state.write_text('{"format": "something else"}')
    done = _witness(log, witness_key, state)
    assert done.returncode == 2, done
    [line] = done.stderr.splitlines()
    assert line.startswith("error: state file ")
    assert log.stored() == []


def test_without_once_the_witness_cosigns_each_new_checkpoint_until_stopped(
    log: ServedLog, witness_key: WitnessKey, tmp_path: Path
) -> None:
    log.append(2)
    state = tmp_path / "state.json"
    command = [
        sys.executable, "-m", "ledger.cli", "witness", "--url", log.url, "--token", log.token,
        "--log-key", log.log_key, "--key", str(witness_key.path), "--state", str(state), "--interval", "0.2",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(lambda: [size for size, _ in log.stored()] == [2], process)
        log.append(3)
        _wait_for(lambda: [size for size, _ in log.stored()] == [2, 5], process)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert err == ""
    assert [line.split(" root ")[0] for line in out.splitlines()] == [
        f"cosigned {ORIGIN} size 2",
        f"cosigned {ORIGIN} size 5",
    ]
    assert json.loads(state.read_text())["size"] == 5


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the witness did not cosign in time"
        time.sleep(0.1)


@pytest.mark.parametrize("url", ["notaurl", "ftp://witnessed.bank.example", "http://[::1"])
def test_a_url_that_is_not_http_is_bad_input(log: ServedLog, witness_key: WitnessKey, tmp_path: Path, url: str) -> None:
    done = _witness(log, witness_key, tmp_path / "state.json", url=url)
    assert done.returncode == 2, done
    assert done.stderr == "error: --url must be an http:// or https:// URL\n"
