"""The readable report of an evidence pack (``report.pdf``), rendered from the figures of ``report.json``.

A4 portrait, standard PDF fonts only (Helvetica, Courier), so the output does not depend on the fonts of the
machine.  Every page carries the page identifier ``EVP-<pack id>-<6-digit page number>`` (from ``000001``) and
the pack's content digest (FORMAT.md: SHA-256 of the canonical file list without ``report.pdf``).  The PDF is
built twice, the first time only to count its pages ("page 3 of 7").  With reportlab's ``invariant`` option the
same figures give the same bytes (the PDF creation date is the pack's ``generated_at``; reportlab also honours
``SOURCE_DATE_EPOCH`` in the document id, so keep that variable the same to reproduce a file).

The report shows figures, identifiers of controls, incidents and holds, hashes and keys; never payload values
or personal identifiers (the scope's subject is a pseudonymous reference and is not printed either).  Long
values (hashes, keys, origins) wrap inside their cells; long tables split across pages with their header row
repeated.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    LongTable,
    PageBreak,
    Paragraph,
    Preformatted,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from ledger.errors import ValidationError

__all__ = ["page_identifier", "render_report"]

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_X = 20 * mm
MARGIN_TOP = 22 * mm
MARGIN_BOTTOM = 26 * mm
FRAME_PADDING = 6  # reportlab's default frame padding, on each side
FRAME_WIDTH = PAGE_WIDTH - 2 * MARGIN_X - 2 * FRAME_PADDING  # the width flowables get

SANS = "Helvetica"
SANS_BOLD = "Helvetica-Bold"
MONO = "Courier"
MONO_BOLD = "Courier-Bold"
MONO_SIZE, MONO_LEADING, MONO_PADDING = 8, 10.5, 6  # monospace blocks: keys, the command, the checkpoint

INK = colors.HexColor("#1b2430")
MUTED = colors.HexColor("#5b6675")
RULE = colors.HexColor("#9aa5b1")
HEADER_FILL = colors.HexColor("#dfe6ee")
STRIPE_FILL = colors.HexColor("#f4f6f9")
MONO_FILL = colors.HexColor("#f2f2ee")
GOOD = colors.HexColor("#1e6b34")
BAD = colors.HexColor("#a4161a")
WARN = colors.HexColor("#8a5a00")

# What the offline verifier checks (ledger/packs/FORMAT.md; README.txt of the pack).
VERIFIER_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "File digests and manifest signature",
        "every file of the pack has the SHA-256 and size listed in manifest.json, and manifest.sig is a signed "
        "note over the SHA-256 of manifest.json that verifies with the log key.",
    ),
    (
        "Entry signatures and payload digests",
        "each disclosed entry's hash is SHA-256(0x00 || body), its Ed25519 signature verifies with the key valid "
        "at its seq, and its payload digest is SHA-256(salt || payload); an erased or disposed-of payload is "
        "reported as such, its digest in the signed body still standing.",
    ),
    (
        "Chain links and completeness of the seq range",
        "every entry's prev is the hash of the entry before it, and every seq from the first to the last of the "
        "range appears exactly once, in order (hidden entries as their leaf hash).",
    ),
    (
        "Merkle root against the signed checkpoint",
        "the RFC 9162 Merkle root recomputed from the leaf hashes of the range and the nodes of "
        "proofs/range.json equals the root of checkpoint.txt, whose signature verifies with the log key.",
    ),
    (
        "Inclusion and consistency proofs",
        "the RFC 9162 inclusion proofs of the disclosed entries hold in the checkpoint, and, when the pack was "
        "exported against an auditor's earlier checkpoint, the consistency proof from that checkpoint holds.",
    ),
)

DEADLINE_STATES: Mapping[str, tuple[str, colors.Color]] = {
    "met": ("MET", GOOD),
    "missed": ("MISSED", BAD),
    "overdue": ("OVERDUE", BAD),
    "due": ("DUE", WARN),
    "not_required": ("not required", MUTED),
    "waiting": ("waiting", MUTED),
}


def page_identifier(pack_id: str, page: int) -> str:
    """``EVP-<pack id>-<6-digit page number>``, pages counted from 1."""
    return f"EVP-{pack_id}-{page:06d}"


def render_report(report: dict[str, Any], *, pack_id: str, content_digest: str) -> bytes:
    """The PDF bytes of the readable report of pack ``pack_id`` from its figures ``report``."""
    if not pack_id or any(c.isspace() for c in pack_id):
        raise ValidationError("pack_id must be a non-empty identifier without spaces", field="pack_id")
    if report.get("pack_id") not in (None, pack_id):
        raise ValidationError("the report's pack_id differs from the pack being written", field="pack_id")
    if not content_digest or any(c.isspace() for c in content_digest):
        raise ValidationError("content_digest must be a non-empty hex digest", field="content_digest")
    styles = _Styles()
    _, pages = _build(report, styles, pack_id, content_digest, total_pages=None)
    pdf, pages_again = _build(report, styles, pack_id, content_digest, total_pages=pages)
    if pages_again != pages:  # "page N of M" cannot change the layout, but be sure the count printed is true
        pdf, _ = _build(report, styles, pack_id, content_digest, total_pages=pages_again)
    return pdf


# --- document ---------------------------------------------------------------------------------------------


def _build(
    report: Mapping[str, Any], styles: _Styles, pack_id: str, content_digest: str, *, total_pages: int | None
) -> tuple[bytes, int]:
    buffer = io.BytesIO()
    generator = _mapping(report.get("generator"))
    made_by = " ".join(_str(generator.get(k)) for k in ("name", "version") if generator.get(k)) or "evidence-ledger"
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        title=f"Evidence pack report {pack_id}",
        author=made_by,
        subject="DORA evidence pack: readable report",
        creator=made_by,
        keywords=[pack_id, content_digest],
        invariant=1,
    )
    pages = [0]
    origin = _str(_mapping(report.get("log")).get("origin")) or "unknown log"

    pdf_date = _pdf_date(report.get("generated_at"))

    def decorate(canvas: Any, _doc: Any) -> None:
        page = canvas.getPageNumber()
        if page == 1 and pdf_date is not None:  # creation date = the pack's generation time, not 2000-01-01
            canvas.setDateFormatter(lambda *_ymdhms: pdf_date)
        pages[0] = max(pages[0], page)
        _draw_page_furniture(canvas, page, total_pages, pack_id, content_digest, origin)

    doc.build(_story(report, styles, pack_id, content_digest), onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue(), pages[0]


def _pdf_date(value: Any) -> str | None:
    """An RFC 3339 timestamp as a PDF date string in UTC (``D:YYYYMMDDHHmmSS+00'00'``), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


def _draw_page_furniture(
    canvas: Any, page: int, total: int | None, pack_id: str, content_digest: str, origin: str
) -> None:
    canvas.saveState()
    left, right = MARGIN_X + FRAME_PADDING, PAGE_WIDTH - MARGIN_X - FRAME_PADDING  # aligned with the text
    if page > 1:
        canvas.setFont(SANS, 7.5)
        canvas.setFillColor(MUTED)
        canvas.drawString(left, PAGE_HEIGHT - 12 * mm, _fit(f"Evidence pack report \u2013 log {origin}", SANS, 7.5))
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.4)
        canvas.line(left, PAGE_HEIGHT - 13.5 * mm, right, PAGE_HEIGHT - 13.5 * mm)
    canvas.setStrokeColor(RULE)
    canvas.setLineWidth(0.4)
    canvas.line(left, 18 * mm, right, 18 * mm)
    canvas.setFillColor(INK)
    identifier = page_identifier(pack_id, page)
    size = _fitting_size(identifier, MONO_BOLD, 8.5, FRAME_WIDTH - 40 * mm)
    canvas.setFont(MONO_BOLD, size)
    canvas.drawString(left, 13.5 * mm, identifier)
    canvas.setFont(SANS, 8)
    canvas.drawRightString(right, 13.5 * mm, f"page {page}" if total is None else f"page {page} of {total}")
    digest_line = f"content digest {content_digest}"
    canvas.setFillColor(MUTED)
    canvas.setFont(MONO, _fitting_size(digest_line, MONO, 7.5, FRAME_WIDTH))
    canvas.drawString(left, 9.5 * mm, digest_line)
    canvas.restoreState()


def _fitting_size(text: str, font: str, size: float, width: float) -> float:
    """The font size (at most ``size``, at least 4) at which ``text`` fits in ``width``."""
    measured = stringWidth(text, font, size)
    return size if measured <= width else max(4.0, size * width / measured)


def _fit(text: str, font: str, size: float) -> str:
    """``text`` cut with an ellipsis to the frame width (page header only; the full value is in the body)."""
    text = _latin(text)
    if stringWidth(text, font, size) <= FRAME_WIDTH:
        return text
    while text and stringWidth(text + "...", font, size) > FRAME_WIDTH:
        text = text[:-1]
    return text + "..."


# --- styles -----------------------------------------------------------------------------------------------


class _Styles:
    def __init__(self) -> None:
        base = ParagraphStyle("body", fontName=SANS, fontSize=9.5, leading=13, textColor=INK, spaceAfter=5)
        self.body = base
        self.title = ParagraphStyle("title", base, fontName=SANS_BOLD, fontSize=22, leading=27, spaceAfter=4)
        self.subtitle = ParagraphStyle("subtitle", base, fontSize=11, leading=15, textColor=MUTED, spaceAfter=14)
        self.h1 = ParagraphStyle(
            "h1", base, fontName=SANS_BOLD, fontSize=14, leading=18, spaceBefore=10, spaceAfter=6, keepWithNext=1
        )
        self.h2 = ParagraphStyle(
            "h2", base, fontName=SANS_BOLD, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4, keepWithNext=1
        )
        self.note = ParagraphStyle("note", base, fontSize=8.5, leading=11.5, textColor=MUTED)
        self.cell = ParagraphStyle("cell", base, fontSize=8.5, leading=11, spaceAfter=0)
        self.cell_right = ParagraphStyle("cell_right", self.cell, alignment=TA_RIGHT)
        self.cell_head = ParagraphStyle("cell_head", self.cell, fontName=SANS_BOLD)
        self.cell_head_right = ParagraphStyle("cell_head_right", self.cell_head, alignment=TA_RIGHT)
        self.cell_mono = ParagraphStyle("cell_mono", self.cell, fontName=MONO, fontSize=8, leading=10.5)
        self.mono_block = ParagraphStyle(
            "mono_block", base, fontName=MONO, fontSize=MONO_SIZE, leading=MONO_LEADING, spaceAfter=0
        )
        self.bullet = ParagraphStyle("bullet", base, leftIndent=14, bulletIndent=2, spaceAfter=4)


# --- content ----------------------------------------------------------------------------------------------


def _story(report: Mapping[str, Any], st: _Styles, pack_id: str, content_digest: str) -> list[Flowable]:
    story: list[Flowable] = []
    story += _title_page(report, st, pack_id, content_digest)
    story.append(PageBreak())
    story += _entries_section(report, st)
    story += _controls_section(report, st)
    story += _approvals_section(report, st)
    story += _incidents_section(report, st)
    story += _retention_section(report, st)
    story += _verification_section(report, st)
    return story


def _title_page(report: Mapping[str, Any], st: _Styles, pack_id: str, content_digest: str) -> list[Flowable]:
    log = _mapping(report.get("log"))
    counts = _mapping(report.get("counts"))
    generator = _mapping(report.get("generator"))
    first, last = log.get("first_seq"), log.get("last_seq")
    if isinstance(first, int) and isinstance(last, int):
        seq_range = f"{first} to {last} ({_n(last - first + 1)} entries)"
    else:
        seq_range = "not given"
    made_by = " ".join(_str(generator.get(k)) for k in ("name", "version") if generator.get(k)) or "not given"
    rows: list[tuple[str, Flowable]] = [
        ("Log origin", _p(log.get("origin"), st.cell_mono)),
        ("Pack id", _p(pack_id, st.cell_mono)),
        ("Generated at (UTC)", _p(report.get("generated_at"), st.cell)),
        ("Generator", _p(made_by, st.cell)),
        ("Scope", _p(_scope_words(_mapping(report.get("scope"))), st.cell)),
        ("Sequence range", _p(seq_range, st.cell)),
        ("Checkpoint tree size", _p(_n(log.get("tree_size")) + " entries", st.cell)),
        ("Merkle root (tree at checkpoint)", _p(log.get("root"), st.cell_mono)),
        ("Entries disclosed (in scope)", _p(_n(counts.get("disclosed")), st.cell)),
        ("Entries hidden (in the range, not in scope; leaf hash only)", _p(_n(counts.get("hidden")), st.cell)),
        ("Content digest", _p(content_digest, st.cell_mono)),
    ]
    table = Table(
        [[_p(label, st.cell_head), value] for label, value in rows],
        colWidths=[52 * mm, FRAME_WIDTH - 52 * mm],
        hAlign="LEFT",
    )
    table.setStyle(_key_value_style())
    return [
        Spacer(1, 18 * mm),
        Paragraph("Evidence pack report", st.title),
        Paragraph(
            "DORA compliance evidence: the readable report of an evidence pack of a signed, append-only ledger",
            st.subtitle,
        ),
        table,
        Spacer(1, 8 * mm),
        Paragraph(
            "This report restates the figures of <font face='Courier'>report.json</font>. The signed files of the "
            "pack are authoritative; Section 6 explains how to verify them offline with the log's public key. "
            "Hidden entries are entries of the sequence range outside the scope: the pack holds only their leaf "
            "hash, which proves that nothing in the range was left out without disclosing it.",
            st.note,
        ),
        Paragraph(
            "The content digest printed on every page is the SHA-256 of the canonical JSON (RFC 8785) of the file "
            "list of <font face='Courier'>manifest.json</font> without the entry of this PDF; it must equal "
            "<font face='Courier'>content_digest</font> in the manifest. This PDF is itself listed in the manifest "
            "with its SHA-256, and so is covered by the manifest signature.",
            st.note,
        ),
        Paragraph(
            "The report contains no payload values and no personal identifiers.",
            st.note,
        ),
    ]


def _scope_words(scope: Mapping[str, Any]) -> str:
    """The scope as one sentence: the stream selectors (any of them), narrowed by the other criteria (all)."""
    selectors: list[str] = []
    streams = _strings(scope.get("streams"))
    if streams:
        selectors.append(("stream " if len(streams) == 1 else "streams ") + _join(streams, "or"))
    prefixes = _strings(scope.get("stream_prefixes"))
    if prefixes:
        selectors.append("streams whose name begins with " + _join([f"\u201c{p}\u201d" for p in prefixes], "or"))
    incidents = _strings(scope.get("incidents"))
    if incidents:
        selectors.append(("incident " if len(incidents) == 1 else "incidents ") + _join(incidents, "or"))
    sentence = "Entries of " + (_join(selectors, "or") if selectors else "all streams")
    narrowing: list[str] = []
    types = _strings(scope.get("types"))
    if types:
        narrowing.append(("of event type " if len(types) == 1 else "of event types ") + _join(types, "or"))
    if scope.get("subject"):
        narrowing.append("about one data subject (a pseudonymous reference, not printed here)")
    since, until = scope.get("occurred_since"), scope.get("occurred_until")
    if since and until:
        narrowing.append(f"that occurred at or after {_str(since)} and before {_str(until)}")
    elif since:
        narrowing.append(f"that occurred at or after {_str(since)}")
    elif until:
        narrowing.append(f"that occurred before {_str(until)}")
    if narrowing:
        sentence += ", " + ", ".join(narrowing)
    return sentence + "."


def _entries_section(report: Mapping[str, Any], st: _Styles) -> list[Flowable]:
    counts = _mapping(report.get("counts"))
    by_type = _mapping(counts.get("by_type"))
    out: list[Flowable] = [Paragraph("1. Entries disclosed, by event type", st.h1)]
    out.append(
        _p(
            f"{_n(counts.get('disclosed'))} entries are disclosed and {_n(counts.get('hidden'))} hidden "
            "(leaf hash only).",
            st.body,
        )
    )
    if not by_type:
        out.append(_p("No per-type count is given.", st.body))
        return out
    rows = [[_p("Event type", st.cell_head), _p("Entries", st.cell_head_right)]]
    for name in sorted(by_type, key=str):
        rows.append([_p(name, st.cell_mono), _p(_n(by_type[name]), st.cell_right)])
    out.append(_long_table(rows, [FRAME_WIDTH - 35 * mm, 35 * mm]))
    return out


def _controls_section(report: Mapping[str, Any], st: _Styles) -> list[Flowable]:
    controls = [_mapping(c) for c in _list(report.get("controls"))]
    out: list[Flowable] = [Paragraph("2. Controls: summary of check results", st.h1)]
    if not controls:
        out.append(_p("No check result is disclosed in this pack.", st.body))
        return out
    totals = {k: sum(_int(c.get(k)) for c in controls) for k in ("pass", "fail", "error", "not_applicable", "total")}
    out.append(
        _p(
            f"{_n(len(controls))} controls, {_n(totals['total'])} results: {_n(totals['pass'])} pass, "
            f"{_n(totals['fail'])} fail, {_n(totals['error'])} error, {_n(totals['not_applicable'])} not "
            "applicable. Pass rate = pass / (pass + fail + error), in percent; not-applicable results are not "
            "counted. Controls with failures or errors are marked in red.",
            st.body,
        )
    )
    head = ["Control", "Pass", "Fail", "Error", "N/A", "Total", "Pass rate"]
    rows: list[list[Flowable]] = [
        [_p(head[0], st.cell_head)] + [_p(h, st.cell_head_right) for h in head[1:]],
    ]
    flagged: list[int] = []
    for index, control in enumerate(controls, start=1):
        rate = _str(control.get("pass_rate"))
        rate_text = f"{rate} %" if rate and rate[0].isdigit() else (rate or "n/a")
        rows.append(
            [_p(control.get("control_id"), st.cell_mono)]
            + [_p(_n(control.get(k)), st.cell_right) for k in ("pass", "fail", "error", "not_applicable", "total")]
            + [_p(rate_text, st.cell_right)]
        )
        if _int(control.get("fail")) or _int(control.get("error")):
            flagged.append(index)
    number, rate_width = 14 * mm, 20 * mm
    table = _long_table(rows, [FRAME_WIDTH - 5 * number - rate_width] + [number] * 5 + [rate_width])
    for row in flagged:
        table.setStyle(TableStyle([("LINEBEFORE", (0, row), (0, row), 2.5, BAD)]))
    out.append(table)
    return out


def _approvals_section(report: Mapping[str, Any], st: _Styles) -> list[Flowable]:
    approvals = _mapping(report.get("approvals"))
    by_kind = _mapping(approvals.get("by_kind"))
    out: list[Flowable] = [Paragraph("3. Approvals", st.h1)]
    approved, rejected = approvals.get("approved"), approvals.get("rejected")
    if not by_kind and not _int(approved) and not _int(rejected):
        out.append(_p("No approval decision is disclosed in this pack.", st.body))
        return out
    out.append(
        _p(
            f"{_n(approved)} approved and {_n(rejected)} rejected decisions "
            f"({_n(_int(approved) + _int(rejected))} in all).",
            st.body,
        )
    )
    rows = [
        [_p("Kind of subject", st.cell_head)] + [_p(h, st.cell_head_right) for h in ("Approved", "Rejected", "Total")]
    ]
    for kind in sorted(by_kind, key=str):
        counts = _mapping(by_kind[kind])
        a, r = _int(counts.get("approved")), _int(counts.get("rejected"))
        rows.append(
            [_p(kind, st.cell_mono), _p(_n(a), st.cell_right), _p(_n(r), st.cell_right), _p(_n(a + r), st.cell_right)]
        )
    rows.append(
        [
            _p("All kinds", st.cell_head),
            _p(_n(approved), st.cell_head_right),
            _p(_n(rejected), st.cell_head_right),
            _p(_n(_int(approved) + _int(rejected)), st.cell_head_right),
        ]
    )
    out.append(_long_table(rows, [FRAME_WIDTH - 3 * 25 * mm, 25 * mm, 25 * mm, 25 * mm]))
    return out


def _incidents_section(report: Mapping[str, Any], st: _Styles) -> list[Flowable]:
    incidents = [_mapping(i) for i in _list(report.get("incidents"))]
    out: list[Flowable] = [Paragraph("4. ICT-related incidents: classification and reporting deadlines", st.h1)]
    if not incidents:
        out.append(_p("No incident is in the scope of this pack.", st.body))
        return out
    majors = sum(1 for i in incidents if i.get("major") is True)
    heading = out.pop()
    intro = [
        heading,
        _p(
            f"{_n(len(incidents))} incidents in scope, {_n(majors)} classified as major (Delegated Regulation (EU) "
            "2024/1772). Reporting deadlines follow Delegated Regulation (EU) 2025/301 Art. 5; times are UTC. "
            "The dossier of each incident is in the pack under "
            "<font face='Courier'>incidents/</font>.",
            st.body,
            markup=True,
        ),
    ]
    for index, incident in enumerate(incidents):
        major = incident.get("major")
        verdict = "Major incident" if major is True else ("Not major" if major is False else "Not classified")
        criteria = _strings(incident.get("criteria_met"))
        facts = [
            ("Classification", _p(verdict, ParagraphStyle("v", st.cell, fontName=SANS_BOLD))),
            ("Criteria met", _p(", ".join(criteria) if criteria else "none", st.cell)),
            ("Rule version", _p(incident.get("rule_version") or "not given", st.cell_mono)),
            ("Aware at", _p(incident.get("aware_at") or "not recorded", st.cell)),
            ("Classified as major at", _p(incident.get("classified_at") or "-", st.cell)),
        ]
        table = Table(
            [[_p(label, st.cell_head), value] for label, value in facts],
            colWidths=[45 * mm, FRAME_WIDTH - 45 * mm],
            hAlign="LEFT",
        )
        table.setStyle(_key_value_style())
        block: list[Flowable] = [Paragraph(f"Incident {_x(incident.get('incident_id'))}", st.h2), table]
        deadlines = [_mapping(d) for d in _list(incident.get("deadlines"))]
        block.append(Spacer(1, 3 * mm))
        if deadlines:
            rows: list[list[Flowable]] = [
                [_p(h, st.cell_head) for h in ("Reporting stage", "Deadline", "Due at", "Submitted at")]
            ]
            for deadline in deadlines:
                state = _str(deadline.get("state"))
                word, colour = DEADLINE_STATES.get(state, (state.replace("_", " ") or "unknown", INK))
                rows.append(
                    [
                        _p(deadline.get("stage"), st.cell),
                        _p(word, ParagraphStyle("state", st.cell, fontName=SANS_BOLD, textColor=colour)),
                        _p(deadline.get("due_at") or "-", st.cell),
                        _p(deadline.get("submitted_at") or "not submitted", st.cell),
                    ]
                )
            block.append(
                _long_table(rows, [40 * mm, 28 * mm, (FRAME_WIDTH - 68 * mm) / 2, (FRAME_WIDTH - 68 * mm) / 2])
            )
        else:
            block.append(_p("No reporting deadline applies.", st.body))
        block.append(Spacer(1, 4 * mm))
        if index == 0:  # the section heading and its introduction stay with the first incident
            block = [*intro, *block]
        out.append(KeepTogether(block))  # splits anyway when longer than a page
    return out


def _retention_section(report: Mapping[str, Any], st: _Styles) -> list[Flowable]:
    retention = _mapping(report.get("retention"))
    out: list[Flowable] = [Paragraph("5. Retention and legal holds", st.h1)]
    policy = retention.get("policy")
    out.append(_p(policy or "No retention policy wording is given.", st.body))
    holds = [_mapping(h) for h in _list(retention.get("holds"))]
    active = retention.get("active_holds")
    lines = [
        f"Active legal holds at export: {_n(active if active is not None else len(holds))}.",
        f"Disclosed entries whose payload was erased or disposed of: {_n(retention.get('erased_payloads'))}"
        " (their digests in the signed bodies still stand).",
        "A legal hold suspends expiry until a recorded release; expiry opens eligibility for disposal, never an "
        "automatic delete.",
    ]
    out += [_p(line, st.body) for line in lines]
    if holds:
        rows: list[list[Flowable]] = [[_p(h, st.cell_head) for h in ("Hold", "Scope", "Case", "Set at (UTC)")]]
        for hold in holds:
            kind, target = _str(hold.get("scope_kind")), _str(hold.get("scope"))
            scope = f"{kind}: {target}" if kind and target else (kind or target or "-")
            rows.append(
                [
                    _p(hold.get("hold_id"), st.cell_mono),
                    _p(scope, st.cell_mono),
                    _p(hold.get("case_id") or "-", st.cell_mono),
                    _p(hold.get("set_at") or "-", st.cell),
                ]
            )
        widths = [42 * mm, FRAME_WIDTH - 42 * mm - 34 * mm - 38 * mm, 34 * mm, 38 * mm]
        out.append(_long_table(rows, widths))
    elif "holds" in retention:
        out.append(_p("No legal hold is active.", st.body))
    else:
        out.append(_p("The holds are listed in the retention file of the pack.", st.body))
    return out


def _verification_section(report: Mapping[str, Any], st: _Styles) -> list[Flowable]:
    verification = _mapping(report.get("verification"))
    log = _mapping(report.get("log"))
    keys = _strings(verification.get("verifier_keys"))
    columns = _mono_columns()
    introduction: list[Flowable] = [
        Paragraph("6. How to verify this pack", st.h1),
        _p(
            "The pack verifies offline on any machine with Python 3.11 or newer and the "
            "<font face='Courier'>cryptography</font> package, trusting only the log's public key. Obtain the "
            "verifier key from the entity through a channel you trust, not from this pack, and check that it is "
            "the one below.",
            st.body,
            markup=True,
        ),
    ]
    key_group: list[Flowable] = [
        Paragraph("Verifier key" + ("s" if len(keys) != 1 else ""), st.h2),
        _p(
            f"Keys and the command are shown in full; lines longer than {columns} characters are wrapped here: "
            "join them without the line breaks.",
            st.note,
        ),
    ]
    if len(keys) > 1:
        key_group.append(
            _p("Keys in rotation order, oldest first; keys.json gives the seq range each one is valid for.", st.note)
        )
    if keys:
        key_group += [_mono_block(key, st) for key in keys]
    else:
        key_group.append(_p("No verifier key is given; see keys.json in the pack.", st.body))
    command = verification.get("command")
    command_group: list[Flowable] = [
        Paragraph("Command", st.h2),
        _mono_block(_str(command) if command else "python verify.py PACK.zip --key '<verifier key>'", st),
        _p(
            "Run it in a directory holding the pack's verify.py, with PACK.zip the path of the pack. It prints "
            "one line per check and a verdict, and exits with status 0 only when every check holds.",
            st.note,
        ),
    ]
    checks_group: list[Flowable] = [Paragraph("What the verifier checks", st.h2)]
    for number, (title, text) in enumerate(VERIFIER_CHECKS, start=1):
        checks_group.append(Paragraph(f"<b>{_x(title)}</b>: {_x(text)}", st.bullet, bulletText=f"{number}."))
    note = log.get("checkpoint_note")
    note_group: list[Flowable] = [Paragraph("Signed checkpoint at export (checkpoint.txt)", st.h2)]
    if note:
        note_group.append(
            _p(
                f"The exact text is checkpoint.txt in the pack; lines longer than {columns} characters are wrapped "
                "here (no character is added or removed).",
                st.note,
            )
        )
        note_group.append(_mono_block(_str(note).rstrip("\n"), st))
    else:
        note_group.append(_p("No checkpoint note is given; see checkpoint.txt in the pack.", st.body))
    # Each group stays on one page when it can (a heading is never left at the foot of a page).
    return [*introduction, *(KeepTogether(group) for group in (key_group, command_group, checks_group, note_group))]


# --- building blocks --------------------------------------------------------------------------------------


def _long_table(rows: list[list[Flowable]], widths: Sequence[float]) -> LongTable:
    table = LongTable(rows, colWidths=list(widths), repeatRows=1, hAlign="LEFT", splitByRow=1)
    commands: list[tuple[Any, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
        ("BOX", (0, 0), (-1, -1), 0.5, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, STRIPE_FILL]),
    ]
    table.setStyle(TableStyle(commands))
    return table


def _key_value_style() -> TableStyle:
    return TableStyle(
        [
            ("BACKGROUND", (0, 0), (0, -1), HEADER_FILL),
            ("GRID", (0, 0), (-1, -1), 0.3, RULE),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 3),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ("LEFTPADDING", (0, 0), (-1, -1), 5),
            ("RIGHTPADDING", (0, 0), (-1, -1), 5),
        ]
    )


def _mono_columns() -> int:
    """How many characters of a monospace block fit on one line (frame width less the cell padding)."""
    return max(20, int((FRAME_WIDTH - 2 * MONO_PADDING - 1) / stringWidth("0", MONO, MONO_SIZE)))


def _mono_block(text: str, st: _Styles) -> Flowable:
    """``text`` in a shaded monospace box, hard-wrapped, one table row per line so a long block can split."""
    lines = _wrap_lines(_latin(text), _mono_columns()).split("\n")
    rows = [[Preformatted(line, st.mono_block) if line else Spacer(1, MONO_LEADING)] for line in lines]
    table = Table(rows, colWidths=[FRAME_WIDTH], hAlign="LEFT", splitByRow=1, spaceBefore=3, spaceAfter=8)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), MONO_FILL),
                ("BOX", (0, 0), (-1, -1), 0.4, RULE),
                ("LEFTPADDING", (0, 0), (-1, -1), MONO_PADDING),
                ("RIGHTPADDING", (0, 0), (-1, -1), MONO_PADDING),
                ("TOPPADDING", (0, 0), (-1, -1), 0),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, 0), 4),
                ("BOTTOMPADDING", (0, -1), (-1, -1), 4),
            ]
        )
    )
    return table


def _wrap_lines(text: str, width: int) -> str:
    """Hard-wrap every line at ``width`` characters (monospace blocks: keys, signatures, commands)."""
    out: list[str] = []
    for line in text.split("\n"):
        if not line:
            out.append("")
        while line:
            out.append(line[:width])
            line = line[width:]
    return "\n".join(out)


def _p(value: Any, style: ParagraphStyle, *, markup: bool = False) -> Paragraph:
    """A paragraph of ``value``, escaped unless ``markup`` (then the text is trusted markup of this module)."""
    text = _str(value)
    return Paragraph(_latin(text) if markup else _x(text), style)


def _x(value: Any) -> str:
    return escape(_latin(_str(value)))


def _latin(text: str) -> str:
    """Text the standard PDF fonts can show (WinAnsi): anything else becomes ``?``."""
    return text.encode("cp1252", "replace").decode("cp1252")


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _n(value: Any) -> str:
    """A count as given (no digit grouping, so figures stay unambiguous in copied text); missing as ``-``."""
    return "-" if value is None else _str(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _strings(value: Any) -> list[str]:
    return [_str(v) for v in _list(value) if v is not None and _str(v)]


def _join(items: Iterable[str], word: str) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]
