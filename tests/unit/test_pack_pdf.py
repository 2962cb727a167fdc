"""The readable report of an evidence pack (ledger/packs/pdf.py), read back with pypdf and rendered with pdftoppm.

Checks: the PDF opens, every page carries ``EVP-<pack id>-<6-digit page>`` and the content digest, the figures
in the text are those of the report dict, long tables split across pages with their header repeated, long
values wrap instead of running off the page, the output is deterministic, and nothing about the data subject
is printed.  The rendering check uses pdftoppm when it is installed (apt package poppler-utils) and otherwise
pypdf's own reading of every page; it never skips.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from ledger.errors import ValidationError
from ledger.notes import NoteSigner, format_checkpoint, sign_note
from ledger.packs.pdf import page_identifier, render_report

PACK_ID = "3f2a9c0d5e6b47c8a1b2c3d4e5f60718"
CONTENT_DIGEST = hashlib.sha256(b"canonical file list without report.pdf").hexdigest()
ORIGIN = "evidence.bank-example.be/ledger/production-2025"
SUBJECT_REF = hashlib.sha256(b"pseudonymous subject").hexdigest()
SIGNER = NoteSigner.from_seed(ORIGIN, bytes(range(32)))
ROOT = hashlib.sha256(b"root of 18234").hexdigest()
CHECKPOINT = sign_note(format_checkpoint(ORIGIN, 18234, bytes.fromhex(ROOT)), [SIGNER])
CONTROL_HEADER = "Control Pass Fail Error N/A Total Pass rate"


def _controls(count: int) -> list[dict[str, Any]]:
    controls = []
    for i in range(count):
        passed, failed, errors, not_applicable = 40 - i % 7, i % 3, 1 if i % 10 == 5 else 0, i % 4
        decided = passed + failed + errors
        kind = "access-review" if i % 2 else "backup-restore-test"
        controls.append(
            {
                "control_id": f"RTS1774-Art{9 + i % 20}-{kind}-{i:03d}",
                "pass": passed,
                "fail": failed,
                "error": errors,
                "not_applicable": not_applicable,
                "total": decided + not_applicable,
                "pass_rate": f"{100 * passed / decided:.2f}",
            }
        )
    return controls


def _report(controls: int = 8) -> dict[str, Any]:
    return {
        "pack_id": PACK_ID,
        "generated_at": "2025-06-30T14:05:09Z",
        "generator": {"name": "evidence-ledger", "version": "0.1.0"},
        "log": {
            "origin": ORIGIN,
            "first_seq": 1200,
            "last_seq": 18000,
            "tree_size": 18234,
            "root": ROOT,
            "checkpoint_note": CHECKPOINT,
        },
        "scope": {
            "streams": ["ict/backup", "ict/access"],
            "stream_prefixes": ["controls/"],
            "types": ["check.result", "approval.decision"],
            "incidents": ["INC-2025-0042"],
            "subject": SUBJECT_REF,
            "occurred_since": "2025-01-01T00:00:00Z",
            "occurred_until": "2025-07-01T00:00:00Z",
        },
        "counts": {
            "disclosed": 4321,
            "hidden": 12480,
            "by_type": {
                "check.result": 3800,
                "approval.decision": 500,
                "incident.detected": 2,
                "incident.classified": 3,
                "incident.report_submitted": 16,
            },
        },
        "controls": _controls(controls),
        "approvals": {
            "approved": 470,
            "rejected": 30,
            "by_kind": {"change": {"approved": 400, "rejected": 25}, "access_grant": {"approved": 70, "rejected": 5}},
        },
        "incidents": [
            {
                "incident_id": "INC-2025-0042",
                "major": True,
                "aware_at": "2025-03-02T08:10:00Z",
                "classified_at": "2025-03-02T11:40:00Z",
                "criteria_met": ["critical_services_affected", "clients_affected", "data_losses"],
                "rule_version": "RTS-2024/1772 v1.2",
                "deadlines": [
                    {
                        "stage": "initial",
                        "state": "met",
                        "due_at": "2025-03-02T15:40:00Z",
                        "submitted_at": "2025-03-02T13:00:00Z",
                    },
                    {
                        "stage": "intermediate",
                        "state": "missed",
                        "due_at": "2025-03-05T13:00:00Z",
                        "submitted_at": "2025-03-06T09:00:00Z",
                    },
                    {"stage": "final", "state": "due", "due_at": "2025-04-06T09:00:00Z", "submitted_at": None},
                ],
            },
            {
                "incident_id": "INC-2025-0057",
                "major": False,
                "aware_at": "2025-04-11T21:00:00Z",
                "classified_at": None,
                "criteria_met": ["clients_affected"],
                "rule_version": "RTS-2024/1772 v1.2",
                "deadlines": [
                    {"stage": "initial", "state": "not_required", "due_at": None, "submitted_at": None},
                ],
            },
        ],
        "retention": {
            "policy": "Default retention: 7 years from the event (or from incident closure) - an entity-configurable "
            "policy.",
            "active_holds": 2,
            "erased_payloads": 3,
            "holds": [
                {
                    "hold_id": "hold-7d1e",
                    "scope_kind": "incident",
                    "scope": "INC-2025-0042",
                    "case_id": "FSMA-2025-118",
                    "set_at": "2025-03-03T10:00:00Z",
                },
                {
                    "hold_id": "hold-8a2f",
                    "scope_kind": "stream_prefix",
                    "scope": "ict/backup/",
                    "case_id": "NBB-LIT-2025-007",
                    "set_at": "2025-05-20T09:30:00Z",
                },
            ],
        },
        "verification": {
            "verifier_keys": [SIGNER.verifier_key()],
            "command": f"python verify.py PACK.zip --key '{SIGNER.verifier_key()}'",
        },
    }


def _render(report: dict[str, Any]) -> bytes:
    return render_report(report, pack_id=PACK_ID, content_digest=CONTENT_DIGEST)


def _texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _flat(text: str) -> str:
    """Words separated by single spaces: table cells come out one per line."""
    return " ".join(text.split())


def _solid(text: str) -> str:
    """No whitespace at all: long values (hashes, keys) are wrapped over several lines."""
    return "".join(text.split())


def _check_footers(texts: list[str]) -> None:
    total = len(texts)
    for number, text in enumerate(texts, start=1):
        identifiers = re.findall(rf"EVP-{PACK_ID}-(\d{{6}})", text)
        assert identifiers == [f"{number:06d}"], f"page {number}: identifiers {identifiers}"
        assert page_identifier(PACK_ID, number) in text
        assert f"content digest {CONTENT_DIGEST}" in text, f"page {number} lacks the content digest"
        assert f"page {number} of {total}" in text


def _check_rendered(pdf: bytes, tmp_path: Path, pages: int) -> None:
    """Every page renders: with pdftoppm to PNG (non-blank, margins clear) if installed, else through pypdf."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        # No renderer on this machine: read every page's content stream back instead (never a skip).
        reader = PdfReader(io.BytesIO(pdf))
        assert len(reader.pages) == pages
        for number, page in enumerate(reader.pages, start=1):
            content = page.get_contents()
            assert content is not None, f"page {number} has no content stream"
            data = content.get_data()
            assert b"Tj" in data or b"TJ" in data, f"page {number} draws no text"
            assert len(page.extract_text().split()) > 10, f"page {number} is nearly empty"
        return
    from PIL import Image  # a dependency of reportlab

    source = tmp_path / "report.pdf"
    source.write_bytes(pdf)
    result = subprocess.run(
        [pdftoppm, "-r", "40", "-png", str(source), str(tmp_path / "page")], capture_output=True, check=False
    )
    assert result.returncode == 0, f"pdftoppm failed: {result.stderr.decode(errors='replace')}"
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages, f"pdftoppm made {len(images)} images for {pages} pages"
    for image_path in images:
        with Image.open(image_path) as image:
            grey = image.convert("L")
            width, height = grey.size
            assert grey.getextrema()[0] < 128, f"{image_path.name} is blank"
            dark = sum(grey.histogram()[:200])
            assert dark > 200, f"{image_path.name} is nearly blank ({dark} dark pixels)"
            strip = round(10 / 25.4 * 40)  # the outer 10 mm of each side margin (20 mm) stays white
            for box in ((0, 0, strip, height), (width - strip, 0, width, height)):
                assert grey.crop(box).getextrema()[0] == 255, f"{image_path.name}: something is drawn in the margin"


def _text_extents(pdf: bytes) -> list[list[tuple[float, float, str]]]:
    """Per page, (left x, right x, text) of every text run, from its position and font metrics."""
    pages = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        runs: list[tuple[float, float, str]] = []

        def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float, runs: Any = runs) -> None:
            if not text.strip() or font is None:
                return
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            width = stringWidth(text.rstrip("\n"), str(font["/BaseFont"]).lstrip("/"), size * tm[0] * cm[0])
            runs.append((x, x + width, text.strip()))

        page.extract_text(visitor_text=visit)
        pages.append(runs)
    return pages


def _check_within_page(pdf: bytes) -> None:
    width = float(PdfReader(io.BytesIO(pdf)).pages[0].mediabox.width)
    margin = 10 / 25.4 * 72  # text stays out of the outer 10 mm of each side
    for number, runs in enumerate(_text_extents(pdf), start=1):
        assert runs, f"page {number} has no text"
        for left, right, text in runs:
            assert left >= margin and right <= width - margin, f"page {number}: text overflows: {text[:60]!r}"


# --- tests ----------------------------------------------------------------------------------------------------


def test_short_report_pages_footers_and_rendering(tmp_path: Path) -> None:
    pdf = _render(_report(controls=8))
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 4  # title; entries, controls, approvals; incidents, retention, keys; the rest
    assert reader.metadata is not None and reader.metadata.title == f"Evidence pack report {PACK_ID}"
    assert reader.metadata["/CreationDate"] == "D:20250630140509+00'00'"  # generated_at, not the render time
    texts = _texts(pdf)
    _check_footers(texts)
    _check_rendered(pdf, tmp_path, len(texts))
    _check_within_page(pdf)


def test_title_page_shows_the_anchor_scope_and_counts() -> None:
    report = _report()
    title = _texts(_render(report))[0]
    flat, solid = _flat(title), _solid(title)
    assert "Evidence pack report" in flat
    assert f"Log origin {ORIGIN}" in flat
    assert f"Pack id {PACK_ID}" in flat
    assert "Generated at (UTC) 2025-06-30T14:05:09Z" in flat
    assert "Generator evidence-ledger 0.1.0" in flat
    assert "Sequence range 1200 to 18000 (16801 entries)" in flat
    assert "Checkpoint tree size 18234 entries" in flat
    assert ROOT in solid
    assert "Entries disclosed (in scope) 4321" in flat
    assert re.search(r"Entries hidden \(in the range, not in scope; leaf hash only\) 12480", flat)
    assert CONTENT_DIGEST in solid
    for words in (
        "streams ict/backup or ict/access",
        "streams whose name begins with “controls/”",
        "incident INC-2025-0042",
        "of event types check.result or approval.decision",
        "about one data subject",
        "at or after 2025-01-01T00:00:00Z and before 2025-07-01T00:00:00Z",
    ):
        assert words in flat, words


def test_figures_match_the_report() -> None:
    report = _report(controls=8)
    texts = _texts(_render(report))
    flat = _flat("\n".join(texts))
    for name, count in report["counts"]["by_type"].items():
        assert f"{name} {count}" in flat
    assert "8 controls, 319 results: 299 pass, 7 fail, 1 error, 12 not applicable" in flat
    assert CONTROL_HEADER in flat
    for c in report["controls"]:
        row = f"{c['control_id']} {c['pass']} {c['fail']} {c['error']} {c['not_applicable']} {c['total']}"
        assert f"{row} {c['pass_rate']} %" in flat, row
    assert "470 approved and 30 rejected decisions (500 in all)" in flat
    assert "access_grant 70 5 75" in flat and "change 400 25 425" in flat and "All kinds 470 30 500" in flat
    assert "2 incidents in scope, 1 classified as major" in flat
    assert "Incident INC-2025-0042 Classification Major incident" in flat
    assert "Criteria met critical_services_affected, clients_affected, data_losses" in flat
    assert "Rule version RTS-2024/1772 v1.2" in flat
    assert "Classified as major at 2025-03-02T11:40:00Z" in flat
    assert "initial MET 2025-03-02T15:40:00Z 2025-03-02T13:00:00Z" in flat
    assert "intermediate MISSED 2025-03-05T13:00:00Z 2025-03-06T09:00:00Z" in flat
    assert "final DUE 2025-04-06T09:00:00Z not submitted" in flat
    assert "Incident INC-2025-0057 Classification Not major" in flat
    assert "initial not required - not submitted" in flat
    assert report["retention"]["policy"] in flat
    assert "Active legal holds at export: 2." in flat
    assert "payload was erased or disposed of: 3" in flat
    assert "hold-7d1e incident: INC-2025-0042 FSMA-2025-118 2025-03-03T10:00:00Z" in flat
    assert "hold-8a2f stream_prefix: ict/backup/ NBB-LIT-2025-007 2025-05-20T09:30:00Z" in flat


def test_how_to_verify_section() -> None:
    report = _report()
    texts = _texts(_render(report))
    flat = _flat("\n".join(texts))
    solid = _solid("\n".join(texts))
    assert "6. How to verify this pack" in flat
    assert SIGNER.verifier_key() in solid
    assert _solid(report["verification"]["command"]) in solid
    for check in (
        "File digests and manifest signature",
        "Entry signatures and payload digests",
        "Chain links and completeness of the seq range",
        "Merkle root against the signed checkpoint",
        "Inclusion and consistency proofs",
    ):
        assert check in flat, check
    assert "Signed checkpoint at export (checkpoint.txt)" in flat
    for line in CHECKPOINT.splitlines():
        assert _solid(line) in solid, line


def test_long_report_splits_tables_across_pages(tmp_path: Path) -> None:
    report = _report(controls=300)
    pdf = _render(report)
    texts = _texts(pdf)
    assert len(texts) >= len(_texts(_render(_report(controls=8)))) + 6  # 300 rows need 6 more pages at least
    _check_footers(texts)
    _check_rendered(pdf, tmp_path, len(texts))
    _check_within_page(pdf)
    pages = [_flat(t) for t in texts]
    control_pages = []
    for c in report["controls"]:
        row = f"{c['control_id']} {c['pass']} {c['fail']} {c['error']} {c['not_applicable']} {c['total']}"
        row += f" {c['pass_rate']} %"
        where = [n for n, page in enumerate(pages, start=1) if row in page]
        assert len(where) == 1, f"{c['control_id']} appears on pages {where}"
        control_pages.append(where[0])
    assert control_pages == sorted(control_pages)  # in order
    assert len(set(control_pages)) > 5
    for number in set(control_pages):  # the header row is repeated on every page of the table
        assert CONTROL_HEADER in pages[number - 1], f"page {number} lacks the table header"
    assert "Incident INC-2025-0042" in " ".join(pages[max(control_pages) - 1 :])


def test_long_values_wrap_inside_the_page(tmp_path: Path) -> None:
    report = _report()
    report["log"]["origin"] = "ledger." + "o" * 180 + ".example.be"
    report["controls"][0]["control_id"] = "X" * 300
    report["counts"]["by_type"]["t" * 250] = 5
    report["scope"]["streams"] = ["z" * 400]
    report["incidents"][0]["criteria_met"] = ["c" * 200]
    report["retention"]["holds"][0]["hold_id"] = "h" * 150
    report["retention"]["holds"][0]["scope"] = "s" * 150
    report["verification"]["verifier_keys"] = ["k" * 500]
    cosignatures = "".join(f"— witness-{n}.example.org {'A' * 120}\n" for n in range(120))
    report["log"]["checkpoint_note"] = CHECKPOINT + cosignatures  # a block longer than a page splits
    pdf = _render(report)
    texts = _texts(pdf)
    _check_footers(texts)
    _check_within_page(pdf)
    _check_rendered(pdf, tmp_path, len(texts))
    solid = _solid("\n".join(texts))
    assert "X" * 300 in solid and "k" * 500 in solid and "z" * 400 in solid
    assert "—witness-119.example.org" + "A" * 120 in solid


def test_the_overflow_check_sees_overflowing_text() -> None:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, invariant=1)
    canvas.setFont("Courier", 10)
    canvas.drawString(60, 400, "0123456789abcdef" * 6)  # 576 pt wide from x = 60: past the right edge of A4
    canvas.showPage()
    canvas.save()
    with pytest.raises(AssertionError, match="overflows"):
        _check_within_page(buffer.getvalue())


def test_output_is_deterministic() -> None:
    assert _render(_report()) == _render(_report())
    assert _render(_report()) != render_report(_report(), pack_id=PACK_ID, content_digest="0" * 64)


def test_no_subject_reference_or_payload_is_printed() -> None:
    solid = _solid("\n".join(_texts(_render(_report()))))
    assert SUBJECT_REF not in solid
    assert SUBJECT_REF[:16] not in solid


@pytest.mark.parametrize(
    "strip",
    [
        lambda r: {"pack_id": r["pack_id"]},
        lambda r: {k: v for k, v in r.items() if k not in ("incidents", "controls", "approvals")},
        lambda r: {**r, "retention": {"policy": r["retention"]["policy"]}, "verification": {}},
        lambda r: {**r, "log": {"origin": ORIGIN}, "scope": {}, "counts": {}},
    ],
    ids=["only-pack-id", "no-figures", "no-holds-no-keys", "bare-log"],
)
def test_missing_optional_keys_render(strip: Callable[[dict[str, Any]], dict[str, Any]], tmp_path: Path) -> None:
    pdf = _render(strip(_report()))
    texts = _texts(pdf)
    _check_footers(texts)
    _check_rendered(pdf, tmp_path, len(texts))
    flat = _flat("\n".join(texts))
    assert "How to verify this pack" in flat


def test_empty_sections_say_so() -> None:
    report = _report()
    report.update(controls=[], incidents=[], approvals={"approved": 0, "rejected": 0, "by_kind": {}})
    report["retention"].update(active_holds=0, holds=[])
    flat = _flat("\n".join(_texts(_render(report))))
    assert "No check result is disclosed in this pack." in flat
    assert "No approval decision is disclosed in this pack." in flat
    assert "No incident is in the scope of this pack." in flat
    assert "No legal hold is active." in flat


def test_rejects_a_report_of_another_pack() -> None:
    with pytest.raises(ValidationError):
        render_report(_report(), pack_id="0" * 32, content_digest=CONTENT_DIGEST)
    with pytest.raises(ValidationError):
        render_report(_report(), pack_id=PACK_ID, content_digest="")


def test_rendering_check_without_pdftoppm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fallback of ``_check_rendered`` (no pdftoppm on the machine) reads every page and still checks."""
    pdf = _render(_report())
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    _check_rendered(pdf, tmp_path, len(_texts(pdf)))
    assert not list(tmp_path.glob("*.png"))
    with pytest.raises(AssertionError):
        _check_rendered(pdf, tmp_path, len(_texts(pdf)) + 1)
