"""C2SP signed notes, keys, checkpoints and cosignatures: Go sumdb/note vectors, rules, garbage."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ConfigurationError, LedgerError, ValidationError, VerificationError
from ledger.notes import (
    MAX_SIGNATURES,
    MAX_TIMESTAMP,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Checkpoint,
    Cosigner,
    NoteSigner,
    NoteVerifier,
    add_signature_lines,
    add_signatures,
    cosignature_message,
    cosignature_timestamp,
    format_checkpoint,
    is_valid_key_name,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_cosigner_key,
    parse_note,
    parse_verifier_key,
    sign_note,
    verify_cosignature,
)

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "vectors" / "sumdb_note.json").read_text())
GO = VECTORS["sumdb_note"]
COSIG = VECTORS["tlog_cosignature"]
ROOT = bytes(range(32))


def checkpoint_text(origin: str = "example.com/log", size: int = 10) -> str:
    return format_checkpoint(origin, size, ROOT)


# --- the Go sumdb/note reference example ------------------------------------------------------------


def test_reference_verifier_key_parses() -> None:
    verifier = parse_verifier_key(GO["verifier_key"])
    assert verifier.name == GO["key_name"]
    assert verifier.key_id.hex() == GO["key_id"] == "c74f20a3"
    assert key_id(verifier.name, SIG_TYPE_ED25519, verifier.public_key).hex() == "c74f20a3"
    assert verifier.verifier_key() == GO["verifier_key"]


def test_reference_private_key_round_trips() -> None:
    signer = NoteSigner.from_private_key(GO["private_key"])
    assert signer.name == GO["key_name"]
    assert signer.key_id.hex() == GO["key_id"]
    assert signer.verifier_key() == GO["verifier_key"]
    assert signer.private_key_string() == GO["private_key"]
    assert GO["private_key"] not in repr(signer)
    assert signer.verifier() == parse_verifier_key(GO["verifier_key"])


def test_reference_signature_is_reproduced() -> None:
    signer = NoteSigner.from_private_key(GO["private_key"])
    note = sign_note(GO["text"], [signer])  # Ed25519 is deterministic
    assert note == GO["signed_note"]
    assert note == GO["text"] + "\n" + GO["signature_line"]


def test_reference_note_opens() -> None:
    opened = open_note(GO["signed_note"], [parse_verifier_key(GO["verifier_key"])])
    assert opened.text == GO["text"]
    assert opened.verified == [("PeterNeumann", bytes.fromhex("c74f20a3"))]
    assert opened.unverified == []


def test_reference_doubly_signed_note_keeps_unknown_signature() -> None:
    opened = open_note(GO["doubly_signed_note"], [parse_verifier_key(GO["verifier_key"])])
    assert opened.verified == [("PeterNeumann", bytes.fromhex("c74f20a3"))]
    assert [name for name, _ in opened.unverified] == ["EnochRoot"]


def test_tampering_with_any_text_character_fails() -> None:
    verifier = parse_verifier_key(GO["verifier_key"])
    note, text = GO["signed_note"], GO["text"]
    for position, char in enumerate(text):
        changed = chr(ord(char) ^ 1)
        tampered = note[:position] + changed + note[position + 1 :]
        with pytest.raises(VerificationError):
            open_note(tampered, [verifier])


def test_tampering_with_any_signature_byte_fails() -> None:
    verifier = parse_verifier_key(GO["verifier_key"])
    raw = base64.b64decode(GO["signature_line"].split(" ")[-1])
    for position in range(len(raw)):
        flipped = raw[:position] + bytes([raw[position] ^ 0x40]) + raw[position + 1 :]
        note = GO["text"] + "\n— PeterNeumann " + base64.b64encode(flipped).decode() + "\n"
        with pytest.raises(VerificationError):
            open_note(note, [verifier])


# --- keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example.com/log", "PeterNeumann", "日本/ログ", "a"])
def test_valid_key_names(name: str) -> None:
    assert is_valid_key_name(name)


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u2028b", "a\u3000b", "a\x00b", "a\ud800", 7]
)
def test_invalid_key_names(name: object) -> None:
    assert not is_valid_key_name(name)
    if isinstance(name, str):
        with pytest.raises(ValidationError):
            NoteSigner.generate(name)


def test_generated_keys_round_trip() -> None:
    signer = NoteSigner.generate("example.com/log")
    again = NoteSigner.from_private_key(signer.private_key_string())
    assert again.key_id == signer.key_id and again.public_key == signer.public_key
    verifier = parse_verifier_key(signer.verifier_key())
    assert verifier.key_id == signer.key_id == key_id("example.com/log", 0x01, signer.public_key)
    message = b"hello\n"
    assert verifier.verify(message, signer.sign(message))
    assert not verifier.verify(message + b"x", signer.sign(message))
    assert not verifier.verify(message, signer.sign(message)[:63])


def test_uppercase_hex_key_id_is_accepted() -> None:
    name, hex_id, material = GO["verifier_key"].split("+", 2)
    assert parse_verifier_key(f"{name}+{hex_id.upper()}+{material}").key_id.hex() == hex_id


@pytest.mark.parametrize(
    "text",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong name
        "PeterNeumann+c74f20a3+AhpczQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # type 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",  # 34 bytes
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex digits
        "PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+",
        "",
    ],
)
def test_bad_verifier_keys_rejected(text: str) -> None:
    with pytest.raises(VerificationError):
        parse_verifier_key(text)


@pytest.mark.parametrize(
    "text",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",  # wrong id
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",  # type 0x02
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
    ],
)
def test_bad_private_keys_rejected(text: str) -> None:
    with pytest.raises(ConfigurationError):
        NoteSigner.from_private_key(text)


def test_key_types_are_not_interchangeable() -> None:
    cosigner = Cosigner.generate("witness.example/w1")
    signer = NoteSigner.generate("witness.example/w1")
    with pytest.raises(VerificationError, match="type"):
        parse_verifier_key(cosigner.verifier_key())
    with pytest.raises(VerificationError, match="type"):
        parse_cosigner_key(signer.verifier_key())
    with pytest.raises(ConfigurationError):
        NoteSigner.from_private_key(cosigner.private_key_string())
    with pytest.raises(ConfigurationError):
        Cosigner.from_private_key(signer.private_key_string())


# --- signed notes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no final newline",
        "— starts with the signature prefix\n",
        "fine\n— but this line is not\n",
        "control \x07 character\n",
        "lone \ud800 surrogate\n",
    ],
)
def test_sign_note_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValidationError):
        sign_note(text, [NoteSigner.generate("k")])


def test_sign_note_accepts_em_dash_elsewhere_and_blank_lines() -> None:
    signer = NoteSigner.generate("k")
    text = "a — b\n—no space after the dash\n\nblank line above\n"
    assert open_note(sign_note(text, [signer]), [signer.verifier()]).text == text


def test_sign_note_needs_distinct_signers() -> None:
    signer = NoteSigner.generate("k")
    with pytest.raises(ValidationError):
        sign_note("text\n", [])
    with pytest.raises(ValidationError):
        sign_note("text\n", [signer, signer])


def test_multiple_signers_and_require() -> None:
    a, b, c = (NoteSigner.generate(name) for name in ("a", "b", "c"))
    note = sign_note("text\n", [a, b])
    opened = open_note(note, [a.verifier(), b.verifier(), c.verifier()], require=2)
    assert [name for name, _ in opened.verified] == ["a", "b"]
    with pytest.raises(VerificationError, match="required"):
        open_note(note, [a.verifier(), b.verifier()], require=3)
    with pytest.raises(VerificationError, match="required"):
        open_note(note, [c.verifier()])
    with pytest.raises(ValidationError):
        open_note(note, [a.verifier()], require=0)


def test_bad_signature_by_known_key_rejects_whole_note() -> None:
    a, b = NoteSigner.generate("a"), NoteSigner.generate("b")
    good = sign_note("text\n", [a])
    forged_b = sign_note("other\n", [b]).split("\n\n")[1]
    note = good + forged_b
    with pytest.raises(VerificationError, match="known key b"):
        open_note(note, [a.verifier(), b.verifier()])
    assert open_note(note, [a.verifier()]).unverified == [("b", b.key_id)]


def test_signatures_matching_only_name_or_only_id_are_unknown() -> None:
    real = NoteSigner.generate("log")
    impostor = NoteSigner.generate("log")  # same name, other key id
    note = sign_note("text\n", [real, impostor])
    opened = open_note(note, [real.verifier()])
    assert opened.verified == [("log", real.key_id)]
    assert opened.unverified == [("log", impostor.key_id)]


def test_repeated_signatures_count_once() -> None:
    signer = NoteSigner.generate("a")
    note = sign_note("text\n", [signer])
    line = note.split("\n\n")[1]
    opened = open_note(note + line, [signer.verifier()])
    assert opened.verified == [("a", signer.key_id)]
    with pytest.raises(VerificationError):
        open_note(note + line, [signer.verifier()], require=2)


def test_ambiguous_verifiers_rejected() -> None:
    signer = NoteSigner.generate("a")
    note = sign_note("text\n", [signer])
    open_note(note, [signer.verifier(), signer.verifier()])  # the same key twice is harmless

    class Fake:
        name = "a"
        key_id = signer.key_id

        def verify(self, msg: bytes, sig: bytes) -> bool:
            return True

    with pytest.raises(VerificationError, match="ambiguous"):
        open_note(note, [signer.verifier(), Fake()])


def _signature_block(count: int) -> str:
    line = "— someone " + base64.b64encode(b"\x00\x01\x02\x03" + b"s" * 64).decode() + "\n"
    return line * count


@pytest.mark.parametrize(
    "note",
    [
        "text\n— a AAAAAAAA\n",  # no blank line
        "text\n\n",  # no signatures
        "text\n\n— a AAAAAAAAAA==",  # no final newline
        "text\n\n- a AAAAAAAAAA==\n",  # hyphen, not em dash
        "text\n\n—a AAAAAAAAAA==\n",  # no space after the dash
        "text\n\n— a\n",  # no signature
        "text\n\n— a \n",  # empty signature
        "text\n\n— a AAAAAA==\n",  # 4 bytes: key id only
        "text\n\n— a AAAAAAAAAA=\n",  # bad padding
        "text\n\n— a AAAA AAAAAA==\n",  # space in base64
        "text\n\n— a+b AAAAAAAAAA==\n",  # bad key name
        "text\n\n—  AAAAAAAAAA==\n",  # empty key name
        "te\x01xt\n\n— a AAAAAAAAAA==\n",  # control character
        "text\r\n\n— a AAAAAAAAAA==\n",
        "text\n\n— a AAAAAAAAAA==\n\n",  # trailing blank line
        "text\n\n" + _signature_block(MAX_SIGNATURES + 1),
    ],
)
def test_malformed_notes_rejected(note: str) -> None:
    signer = NoteSigner.generate("a")
    with pytest.raises(VerificationError, match="malformed"):
        open_note(note, [signer.verifier()])


def test_hundred_signatures_parse() -> None:
    assert len(parse_note("text\n\n" + _signature_block(MAX_SIGNATURES)).signatures) == MAX_SIGNATURES


def test_text_is_split_at_the_last_blank_line() -> None:
    parsed = parse_note("a\n\nb\n\n— k AAAAAAAAAA==\n")
    assert parsed.text == "a\n\nb\n"
    assert parsed.signatures[0].name == "k"


def test_add_signatures_for_key_rotation() -> None:
    old, new = NoteSigner.generate("example.com/log"), NoteSigner.generate("example.com/log")
    note = sign_note(checkpoint_text(), [old])
    resigned = add_signatures(note, [new])
    opened = open_note(resigned, [new.verifier()])
    assert opened.unverified == [("example.com/log", old.key_id)]
    assert len(open_note(resigned, [old.verifier(), new.verifier()], require=2).verified) == 2
    assert add_signatures(resigned, [new]) == resigned  # same key replaces, Ed25519 is deterministic
    assert add_signatures(resigned, [old]).count("\n— ") == 2


# --- checkpoints ------------------------------------------------------------------------------------


def test_c2sp_example_checkpoint_parses() -> None:
    checkpoint = parse_checkpoint(COSIG["checkpoint_text"])
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.text() == COSIG["checkpoint_text"]


def test_format_checkpoint_layout() -> None:
    text = format_checkpoint("example.com/log", 0, ROOT, ["ext one", "ext two"])
    assert text == "example.com/log\n0\n" + base64.b64encode(ROOT).decode() + "\next one\next two\n"
    assert parse_checkpoint(text) == Checkpoint("example.com/log", 0, ROOT, ("ext one", "ext two"))


GOOD_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"log\n01\n{GOOD_ROOT}\n",  # leading zero
        f"log\n00\n{GOOD_ROOT}\n",
        f"log\n-1\n{GOOD_ROOT}\n",
        f"log\n+1\n{GOOD_ROOT}\n",
        f"log\n1.0\n{GOOD_ROOT}\n",
        f"log\n 1\n{GOOD_ROOT}\n",
        f"log\n1_0\n{GOOD_ROOT}\n",
        f"log\n\u0661\n{GOOD_ROOT}\n",  # ARABIC-INDIC DIGIT ONE is not ASCII
        f"log\n{2**64}\n{GOOD_ROOT}\n",  # beyond uint64
        f"log\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31-byte root
        f"log\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",
        f"log\n1\n{GOOD_ROOT[:-1]}\n",
        f"log\n1\n{GOOD_ROOT[:-2]}AB\n",  # non-canonical base64 tail
        f"\n1\n{GOOD_ROOT}\n",  # empty origin
        f"log\n1\n{GOOD_ROOT}",  # no final newline
        f"log\n1\n{GOOD_ROOT}\n\n",  # empty extension line
        f"log\n1\n{GOOD_ROOT}\next\n\n",
        "log\n1\n",
        "",
        f"lo\x00g\n1\n{GOOD_ROOT}\n",
    ],
)
def test_malformed_checkpoints_rejected(text: str) -> None:
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        parse_checkpoint(text)


def test_largest_size_accepted() -> None:
    assert parse_checkpoint(f"log\n{2**64 - 1}\n{GOOD_ROOT}\n").size == 2**64 - 1


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("log", -1, ROOT, ()),
        ("log", 2**64, ROOT, ()),
        ("log", True, ROOT, ()),
        ("log", 1, ROOT[:31], ()),
        ("log", 1, ROOT, ("",)),
        ("log", 1, ROOT, ("two\nlines",)),
    ],
)
def test_format_checkpoint_rejects_bad_input(origin: str, size: int, root: bytes, extensions: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError):
        format_checkpoint(origin, size, root, extensions)


def test_open_checkpoint() -> None:
    log = NoteSigner.generate("example.com/log")
    note = sign_note(checkpoint_text(), [log])
    checkpoint, opened = open_checkpoint(note, [log.verifier()], origin="example.com/log")
    assert checkpoint.size == 10 and opened.verified == [("example.com/log", log.key_id)]
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(note, [log.verifier()], origin="example.com/other")
    not_a_checkpoint = sign_note("hello\n", [log])
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        open_checkpoint(not_a_checkpoint, [log.verifier()])


# --- cosignatures -----------------------------------------------------------------------------------


def test_c2sp_cosignature_example_layout() -> None:
    parsed = parse_note(COSIG["checkpoint_text"] + "\n" + COSIG["cosignature_line"])
    (signature,) = parsed.signatures
    assert signature.name == COSIG["cosigner_name"]
    assert signature.key_id.hex() == COSIG["key_id"]
    assert cosignature_timestamp(signature) == COSIG["timestamp"]
    assert cosignature_message(COSIG["checkpoint_text"], COSIG["timestamp"]) == COSIG["signed_message"].encode()


def test_cosign_and_verify() -> None:
    cosigner = Cosigner.generate("witness.example/w1")
    text = checkpoint_text()
    line = cosigner.cosign(text, 1679315147)
    assert line.startswith("— witness.example/w1 ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[-1])
    assert raw[:4] == cosigner.key_id == key_id("witness.example/w1", 0x04, cosigner.public_key)
    assert cosigner.key_id != key_id("witness.example/w1", 0x01, cosigner.public_key)
    assert int.from_bytes(raw[4:12], "big") == 1679315147 and len(raw) == 76
    verifier = parse_cosigner_key(cosigner.verifier_key())
    assert base64.b64decode(cosigner.verifier_key().split("+", 2)[2])[0] == SIG_TYPE_COSIGNATURE_V1
    assert verify_cosignature(text, line, verifier) == 1679315147
    assert verify_cosignature(text, line.rstrip("\n"), verifier) == 1679315147
    with pytest.raises(VerificationError):
        verify_cosignature(checkpoint_text(size=11), line, verifier)
    other = Cosigner.generate("witness.example/w1")
    with pytest.raises(VerificationError, match="not by the given"):
        verify_cosignature(text, other.cosign(text, 5), verifier)


def test_cosignature_timestamp_is_signed() -> None:
    cosigner = Cosigner.generate("w")
    text = checkpoint_text()
    raw = base64.b64decode(cosigner.cosign(text, 1000).split(" ")[-1])
    moved = raw[:4] + (1001).to_bytes(8, "big") + raw[12:]
    line = "— w " + base64.b64encode(moved).decode() + "\n"
    with pytest.raises(VerificationError, match="does not verify"):
        verify_cosignature(text, line, cosigner.verifier())
    too_late = raw[:4] + (2**63).to_bytes(8, "big") + raw[12:]
    with pytest.raises(VerificationError):
        verify_cosignature(text, "— w " + base64.b64encode(too_late).decode(), cosigner.verifier())


def test_cosigned_checkpoint_opens_with_log_and_witness() -> None:
    log, witness = NoteSigner.generate("example.com/log"), Cosigner.generate("witness.example/w1")
    note = sign_note(checkpoint_text(), [log])
    via_lines = add_signature_lines(note, [witness.cosign(checkpoint_text(), 42)])
    via_signer = add_signatures(note, [witness.note_signer(42)])
    assert via_lines == via_signer
    opened = open_note(via_lines, [log.verifier(), witness.verifier()], require=2)
    assert [name for name, _ in opened.verified] == ["example.com/log", "witness.example/w1"]
    assert cosignature_timestamp(opened.verified_signatures[1]) == 42
    only_log = open_note(via_lines, [log.verifier()])
    assert only_log.unverified == [("witness.example/w1", witness.key_id)]


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP + 1])
def test_cosigner_rejects_bad_timestamps(timestamp: int) -> None:
    with pytest.raises(ValidationError):
        Cosigner.generate("w").cosign(checkpoint_text(), timestamp)


def test_cosigner_signs_only_checkpoints() -> None:
    with pytest.raises(ValidationError):
        Cosigner.generate("w").cosign("just some text\n", 1)
    assert Cosigner.generate("w").cosign(checkpoint_text(), MAX_TIMESTAMP)


def test_cosigner_private_key_round_trip() -> None:
    cosigner = Cosigner.generate("witness.example/w1")
    again = Cosigner.from_private_key(cosigner.private_key_string())
    assert again.key_id == cosigner.key_id
    assert again.cosign(checkpoint_text(), 7) == cosigner.cosign(checkpoint_text(), 7)
    assert Cosigner.from_seed("w", bytes(32)).public_key == NoteSigner.from_seed("w", bytes(32)).public_key


# --- properties -------------------------------------------------------------------------------------

line_text = st.text(st.characters(codec="utf-8", exclude_characters="\n", min_codepoint=0x20), min_size=1)


@settings(max_examples=200)
@given(
    line_text,
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(line_text, max_size=3),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    text = format_checkpoint(origin, size, root, extensions)
    assert parse_checkpoint(text) == Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint(text).text() == text


NOTE_PIECES = st.sampled_from([*"ab0+/=— \n\x00\ud800", "\u2014 ", "\n\n", "— a AAAAAAAAAA==\n"])
note_like = st.lists(NOTE_PIECES, max_size=30).map("".join)
garbage = st.one_of(st.text(), note_like, st.text(st.characters(codec="utf-8")))
KNOWN = NoteSigner.from_private_key(GO["private_key"])


def _only_verification_errors(call: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(VerificationError):
        call(*args)


@settings(max_examples=300)
@given(garbage)
def test_garbage_raises_only_verification_error(text: str) -> None:
    _only_verification_errors(parse_checkpoint, text)
    _only_verification_errors(parse_note, text)
    _only_verification_errors(open_note, text, [KNOWN.verifier()])
    _only_verification_errors(parse_verifier_key, text)
    _only_verification_errors(parse_cosigner_key, text)
    _only_verification_errors(verify_cosignature, text, text, Cosigner.from_seed("w", bytes(32)).verifier())
    with contextlib.suppress(ConfigurationError):
        NoteSigner.from_private_key(text)


@settings(max_examples=300)
@given(st.data())
def test_mutated_notes_raise_only_verification_error(data: st.DataObject) -> None:
    note = GO["doubly_signed_note"]
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        position = data.draw(st.integers(min_value=0, max_value=len(note)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        char = data.draw(NOTE_PIECES)
        tail = note[position + 1 :] if action != "insert" else note[position:]
        note = note[:position] + ("" if action == "delete" else char) + tail
    try:
        opened = open_note(note, [KNOWN.verifier()])
    except VerificationError:
        return
    assert opened.text == GO["text"]  # whatever opens still carries the signed text


@settings(max_examples=100)
@given(st.text(st.sampled_from(list("ab+0123456789abcdefABCDEF=/— ")), max_size=90))
def test_key_like_garbage_raises_only_expected_errors(text: str) -> None:
    for candidate in (text, f"PRIVATE+KEY+{text}"):
        try:
            NoteSigner.from_private_key(candidate)
            Cosigner.from_private_key(candidate)
        except ConfigurationError:
            pass
        _only_verification_errors(parse_verifier_key, candidate)


def test_errors_share_the_ledger_base() -> None:
    with pytest.raises(LedgerError):
        parse_checkpoint("x")
    public_key = NoteSigner.from_seed("k", bytes(32)).public_key
    assert NoteVerifier("k", public_key).key_id == key_id("k", SIG_TYPE_ED25519, public_key)
    with pytest.raises(ValidationError):
        NoteVerifier("k", public_key[:31])


# --- the Ed25519 check itself: libsodium, compared with OpenSSL's --------------------------------

_GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493  # RFC 8032 section 5.1: L


def _openssl_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(message=st.binary(max_size=300), flip=st.integers(min_value=-1, max_value=64 * 8 - 1))
def test_signature_check_agrees_with_openssl(message: bytes, flip: int) -> None:
    """Valid signatures verify, and any single flipped bit of the signature fails, exactly as with OpenSSL."""
    signer = NoteSigner.generate("agree.example/log")
    signature = bytearray(signer.sign(message))
    if flip >= 0:
        signature[flip // 8] ^= 1 << (flip % 8)
    verifier = parse_verifier_key(signer.verifier_key())
    expected = _openssl_accepts(signer.public_key, message, bytes(signature))
    assert verifier.verify(message, bytes(signature)) is expected
    assert expected is (flip < 0)


def test_non_canonical_s_is_refused() -> None:
    """S + L satisfies the group equation but is not the canonical scalar: both checks refuse it (RFC 8032 5.1.7)."""
    signer = NoteSigner.generate("agree.example/log")
    message = b"checkpoint text\n"
    signature = signer.sign(message)
    s = int.from_bytes(signature[32:], "little") + _GROUP_ORDER
    malleated = signature[:32] + s.to_bytes(32, "little")
    verifier = parse_verifier_key(signer.verifier_key())
    assert verifier.verify(message, signature)
    assert not verifier.verify(message, malleated)
    assert not _openssl_accepts(signer.public_key, message, malleated)


def test_small_order_key_forgery_is_refused() -> None:
    """With the identity point as the public key, R = identity and S = 0 satisfy the equation for every message;
    OpenSSL accepts that, the ledger's check does not."""
    identity = bytes([1]) + bytes(31)
    forged = identity + bytes(32)
    verifier = NoteVerifier("agree.example/log", identity)
    assert _openssl_accepts(identity, b"any message", forged)  # the weakness being guarded against
    assert not verifier.verify(b"any message", forged)
