"""End-to-end behaviour of the ``ledger`` command line, run in subprocesses on a temporary data directory.

Every run checks that stderr carries no traceback; failures must be one ``error: ...`` line and an exit code
by family (2 bad input, 1 integrity, 3 infrastructure).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import independent as iv

ORIGIN = "cli.bank.example/evidence"
SEQ_HASH_LINE = re.compile(r"seq (\d+)  hash ([0-9a-f]{64})")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Cli:
    """The ``ledger`` command bound to one data directory, with a clean environment (no ``LEDGER_*``)."""

    data_dir: Path
    outputs: dict[str, Result] = field(default_factory=dict)

    def run(self, *args: str, stdin: str | None = None) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        done = subprocess.run(
            [sys.executable, "-m", "ledger.cli", "--data-dir", str(self.data_dir), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.data_dir.parent,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.code == 0, (args, result)
        return result.stdout

    def fails(self, code: int, *args: str, stdin: str | None = None) -> str:
        """Run a command that must fail with ``code`` and exactly one ``error: ...`` line; return that line."""
        result = self.run(*args, stdin=stdin)
        assert result.code == code, (args, result)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: "), result.stderr
        return lines[0]

    def seqs(self, *filters: str) -> list[int]:
        out = self.ok("events", *filters, "--format", "jsonl")
        return [json.loads(line)["seq"] for line in out.splitlines()]


def event_id(number: int) -> str:
    return str(uuid.UUID(int=number + 1, version=4))


def check_result(number: int, *, hour: int = 10, control: str = "IAM-01", status: str = "pass") -> dict[str, Any]:
    when = f"2026-11-20T{hour:02d}:00:00Z"
    return {
        "id": event_id(number),
        "stream": f"controls/{control.lower()}/host-{number:03d}",
        "type": "check.result",
        "occurred_at": when,
        "payload": {
            "control_id": control,
            "check_id": f"{control}-{number}",
            "status": status,
            "framework_refs": ["DORA Art. 9(4)(d)"],
            "evidence": [],
            "observed_at": when,
        },
    }


def note_event(number: int, *, hour: int) -> dict[str, Any]:
    return {
        "id": event_id(number),
        "stream": "notes/cli",
        "type": "test.recorded",
        "occurred_at": f"2026-11-20T{hour:02d}:30:00Z",
        "payload": {"number": number, "text": "free-form payload of an untyped event"},
    }


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


# The populated log: ten entries appended in every input form (file or stdin; object, array, JSON Lines).
EVENTS = [
    check_result(0, hour=8),  # object, file
    check_result(1, hour=9, control="BCK-01"),  # object, stdin
    check_result(2, hour=10),  # array, file
    check_result(3, hour=11, control="BCK-01", status="fail"),
    note_event(4, hour=10),  # array, stdin
    check_result(5, hour=12),
    note_event(6, hour=13),  # JSON Lines, file
    check_result(7, hour=14, control="BCK-01"),
    check_result(8, hour=15),  # JSON Lines, stdin
    note_event(9, hour=16),
]
APPENDS: list[tuple[str, str, list[int]]] = [
    ("object-file", json.dumps(EVENTS[0]), [0]),
    ("object-stdin", json.dumps(EVENTS[1], indent=2), [1]),
    ("array-file", json.dumps(EVENTS[2:4], indent=2), [2, 3]),
    ("array-stdin", json.dumps(EVENTS[4:6]), [4, 5]),
    ("jsonl-file", jsonl(EVENTS[6:8]), [6, 7]),
    ("jsonl-stdin", "\n" + jsonl(EVENTS[8:10]) + "\n", [8, 9]),  # blank lines are skipped
]


FILTERS: list[tuple[tuple[str, ...], list[int]]] = [
    (("--type", "test.recorded"), [4, 6, 9]),
    (("--stream-prefix", "controls/bck-01/"), [1, 3, 7]),
    (("--stream", "notes/cli", "--from-seq", "5"), [6, 9]),
    (("--from-seq", "3", "--to-seq", "6"), [3, 4, 5, 6]),
    (("--since", "2026-11-20T10:00:00Z", "--until", "2026-11-20T13:00:00Z"), [2, 3, 4, 5]),  # until: exclusive
    (("--since", "2026-11-20T12:00:00+01:00"), [3, 5, 6, 7, 8, 9]),  # an offset is converted to UTC
    (("--type", "check.result", "--since", "2026-11-20T12:00:00Z", "--to-seq", "8"), [5, 7, 8]),
    (("--type", "no.such.type"), []),
]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("cli") / "data")
    cli.outputs["init"] = cli.run("init", "--origin", ORIGIN)
    for name, text, _ in APPENDS:
        if name.endswith("-file"):
            path = cli.data_dir.parent / f"{name}.json"
            path.write_text(text, encoding="utf-8")
            cli.outputs[name] = cli.run("append", str(path))
        else:
            cli.outputs[name] = cli.run("append", "-", stdin=text)
    # Read-only queries do not depend on each other: run them together (as several readers would).
    queries = {
        "events": ("events", "--format", "jsonl"),
        "public-key": ("public-key",),
        "checkpoint": ("checkpoint",),
        "verify": ("verify",),
        "inclusion-beyond": ("proof", "inclusion", str(len(EVENTS))),
        **{f"filter-{n}": ("events", *filters, "--format", "jsonl") for n, (filters, _) in enumerate(FILTERS)},
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {name: pool.submit(cli.run, *args) for name, args in queries.items()}
        cli.outputs.update({name: result.result() for name, result in results.items()})
    return cli


# --- init -------------------------------------------------------------------------------------------------


def test_init_prints_the_verifier_key_and_writes_a_private_key_file_0600(populated: Cli) -> None:
    init = populated.outputs["init"]
    assert init.code == 0, init
    lines = init.stdout.splitlines()
    assert lines[0] == f"created log {ORIGIN}"
    key_line = next(line for line in lines if line.startswith("verifier key: "))
    key = iv.parse_verifier_key(key_line.removeprefix("verifier key: "))
    assert key.name == ORIGIN
    key_file = populated.data_dir / "keys" / f"{key.key_id_hex}.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any(str(key_file) in line for line in lines)
    assert populated.outputs["public-key"].stdout.splitlines() == [key_line.removeprefix("verifier key: ")]


def test_init_twice_fails_with_one_line(populated: Cli) -> None:
    message = populated.fails(2, "init", "--origin", ORIGIN)
    assert "exists" in message


def test_failed_init_leaves_no_orphan_private_key(populated: Cli) -> None:
    before = sorted((populated.data_dir / "keys").glob("*.key"))
    populated.fails(2, "init", "--origin", ORIGIN)
    assert sorted((populated.data_dir / "keys").glob("*.key")) == before


# --- append -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "seqs"), [(name, seqs) for name, _, seqs in APPENDS])
def test_append_prints_seq_and_hash_per_entry(populated: Cli, name: str, seqs: list[int]) -> None:
    result = populated.outputs[name]
    assert result.code == 0, result
    assert result.stderr == ""
    hashes = {line["seq"]: line["hash"] for line in map(json.loads, populated.outputs["events"].stdout.splitlines())}
    printed = [SEQ_HASH_LINE.fullmatch(line) for line in result.stdout.splitlines()]
    assert all(printed), result.stdout
    assert [(int(m[1]), m[2]) for m in printed if m] == [(seq, hashes[seq]) for seq in seqs]


def test_every_appended_event_is_listed_once_in_order(populated: Cli) -> None:
    lines = [json.loads(line) for line in populated.outputs["events"].stdout.splitlines()]
    assert [line["seq"] for line in lines] == list(range(len(EVENTS)))
    assert [json.loads(line["body"])["id"] for line in lines] == [e["id"] for e in EVENTS]
    assert populated.outputs["events"].stdout.endswith("\n")


@pytest.mark.parametrize(
    ("how", "field_name"),
    [("status-green-in-array-file", "payload.status"), ("float-in-jsonl-stdin", "payload.evidence[0].size")],
)
def test_batch_with_one_invalid_event_exits_2_naming_it_and_appends_nothing(
    populated: Cli, tmp_path: Path, how: str, field_name: str
) -> None:
    batch = [check_result(100 + n, hour=10) for n in range(4)]
    if how.startswith("status-green"):
        batch[2]["payload"]["status"] = "green"
        path = tmp_path / "batch.json"
        path.write_text(json.dumps(batch))
        message = populated.fails(2, "append", str(path))
    else:
        batch[2]["payload"]["evidence"] = [{"name": "scan.json", "sha256": "ab" * 32, "size": 1.5}]
        message = populated.fails(2, "append", "-", stdin=jsonl(batch))
    assert message.startswith("error: event 2: "), message
    assert field_name in message
    assert populated.seqs() == list(range(len(EVENTS)))  # the valid events 0, 1 and 3 were not appended either


def test_invalid_json_line_exits_2_with_the_line_number(populated: Cli) -> None:
    text = json.dumps(check_result(200)) + "\n" + json.dumps(check_result(201)) + "\n" + '{"id": "oops",\n'
    message = populated.fails(2, "append", "-", stdin=text)
    assert "line 3" in message, message


def test_reappending_the_same_file_stores_nothing(populated: Cli) -> None:
    path = populated.data_dir.parent / "array-file.json"
    out = populated.ok("append", str(path))
    lines = out.splitlines()
    assert len(lines) == 2
    assert all("already stored" in line for line in lines), out
    assert [int(line.split()[1]) for line in lines] == [2, 3]
    assert populated.seqs("--from-seq", "9") == [9]  # the log did not grow


def test_conflict_in_a_later_chunk_names_the_input_index(populated: Cli) -> None:
    changed = json.loads(json.dumps(EVENTS[3]))
    changed["payload"]["status"] = "pass"  # same id, other content
    batch = [EVENTS[0], EVENTS[1], EVENTS[2], changed]
    message = populated.fails(2, "append", "-", "--batch-size", "2", stdin=json.dumps(batch))
    assert message.startswith("error: event 3: "), message


@pytest.mark.parametrize("batch_size", ["0", "-1"])
def test_batch_size_below_one_is_refused(populated: Cli, batch_size: str) -> None:
    path = populated.data_dir.parent / "object-file.json"
    populated.fails(2, "append", str(path), "--batch-size", batch_size)


# --- events filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "filters", "expected"), [(n, f, e) for n, (f, e) in enumerate(FILTERS)])
def test_events_filters_select_the_right_seqs(
    populated: Cli, number: int, filters: tuple[str, ...], expected: list[int]
) -> None:
    result = populated.outputs[f"filter-{number}"]
    assert result.code == 0, result
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == expected


# --- checkpoint, verify, proofs ---------------------------------------------------------------------------


def test_checkpoint_prints_exactly_the_signed_note(populated: Cli) -> None:
    result = populated.outputs["checkpoint"]
    assert result.code == 0 and result.stderr == "", result
    out = result.stdout
    assert out.endswith("\n") and not out.endswith("\n\n")
    keys = [iv.parse_verifier_key(line) for line in populated.outputs["public-key"].stdout.splitlines()]
    checkpoint, _ = iv.open_checkpoint(out, keys, origin=ORIGIN)  # nothing before, after or inside but the note
    assert checkpoint.size == len(EVENTS)
    assert checkpoint.extensions == ()
    text, signatures = iv.split_note(out)
    assert text.splitlines()[:2] == [ORIGIN, str(len(EVENTS))]
    assert out.startswith(text + "\n— ")
    signature_lines = out[len(text) + 1 :].splitlines()
    assert len(signature_lines) == len(signatures) == 1
    assert signature_lines[0].startswith(f"— {ORIGIN} ")


def test_verify_reports_ok(populated: Cli) -> None:
    result = populated.outputs["verify"]
    assert result.code == 0, result
    out = result.stdout
    assert out.splitlines()[-1].startswith("OK: 10 entries"), out
    assert "FINDING" not in out


def test_inclusion_proof_beyond_the_size_exits_2(populated: Cli) -> None:
    result = populated.outputs["inclusion-beyond"]
    assert result.code == 2, result
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert f"seq {len(EVENTS)}" in result.stderr


# --- tampering with the database file ---------------------------------------------------------------------


def _drop_triggers(connection: sqlite3.Connection) -> list[str]:
    """What an attacker with the file can do first: drop the append-only triggers."""
    triggers = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    for name in triggers:
        connection.execute(f'DROP TRIGGER "{name}"')
    return triggers


def _flip_body_byte(connection: sqlite3.Connection, seq: int, position: int) -> None:
    (body,) = connection.execute("SELECT body FROM entries WHERE seq = ?", (seq,)).fetchone()
    tampered = bytearray(body)
    tampered[position] ^= 0x01
    connection.execute("UPDATE entries SET body = ? WHERE seq = ?", (bytes(tampered), seq))


def test_verify_names_the_seq_of_a_tampered_body(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    cli.ok("init", "--origin", ORIGIN)
    cli.ok("append", "-", stdin=jsonl([check_result(n, hour=8 + n % 10) for n in range(12)]))
    connection = sqlite3.connect(cli.data_dir / "ledger.db")
    with pytest.raises(sqlite3.DatabaseError):  # the store refuses the edit while its triggers stand
        connection.execute("UPDATE entries SET body = X'00' WHERE seq = 5")
    with connection:
        assert any(name.startswith("entries") for name in _drop_triggers(connection))
        (body,) = connection.execute("SELECT body FROM entries WHERE seq = 5").fetchone()
        _flip_body_byte(connection, 5, bytes(body).index(b'"stream":') + 12)  # inside a string: still JSON
        _flip_body_byte(connection, 9, 0)  # the opening brace: no longer JSON at all
    connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        text_run, json_run = pool.submit(cli.run, "verify"), pool.submit(cli.run, "verify", "--json")
    result = text_run.result()
    assert result.code == 1, result
    findings = [line for line in result.stdout.splitlines() if line.startswith("FINDING ")]
    assert any(line.startswith("FINDING seq 5: ") for line in findings), result.stdout
    assert any(line.startswith("FINDING seq 9: ") for line in findings), result.stdout
    assert "OK" not in result.stdout.splitlines()[-1]

    result = json_run.result()
    assert result.code == 1, result
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert {5, 9} <= {finding["seq"] for finding in report["findings"]}
    assert all(finding["code"] and finding["message"] for finding in report["findings"])


# --- demo -------------------------------------------------------------------------------------------------


def test_demo_runs_and_the_audit_names_the_tampered_seq(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    out = cli.ok("demo", "--events", "500")
    match = re.search(r"names seq (\d+)", out)
    assert match, out
    assert f"FINDING seq {match[1]}:" in out
