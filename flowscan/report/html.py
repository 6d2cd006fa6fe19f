"""The HTML report: one self-contained file a regulator opens in any browser, offline.

Nothing is fetched when the page is viewed: the style, the small sorting script and every
picture (a world map from bundled Natural Earth shapes, the flow timeline) are inline, and
a Content-Security-Policy forbids any request at all. The renderer lays out the built
Report and computes no finding: positions on the map and the timeline, and the worst
verdict a marker is coloured by, are drawing, not analysis.

Capture strings are made inert twice: each goes through report.sanitize (inert_text, or
html_text where a field has its own length limit), and Jinja2 escapes whatever reaches
the page (autoescape). The script is pinned by its hash in the policy, so even an
injected <script> could not run. Same report, same bytes: nothing here reads the clock.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from flowscan.geo.plausibility import centroid
from flowscan.report.answers import VERDICTS, duration, size, undecided, when
from flowscan.report.model import Flow, Report
from flowscan.report.rows import flow_row
from flowscan.report.sanitize import TEXT_MAX, escape_controls, html_text
from flowscan.sessions import encryption_path

SCALE = 4  # map units per degree, as geodata/worldmap.py projected the shapes
MAP_MARGIN_DEGREES = 15  # around the outermost marker
MAP_MIN_DEGREES = 110  # the narrowest map: a call within one country still shows the region
TIMELINE_MAX = 60  # the largest flows drawn on the timeline; all are in the table
TABLE_MAX = 2000  # flows in the table; the JSON and CSV hold every one
EVIDENCE_MAX = 320  # an evidence detail: a capture string in a few words
# Markers of one country share its centre: each is set this far from it, around a circle.
SPREAD = 7.0
MARKER_SHARE = 180  # a marker's radius: this share of the map's width, the same on any map
# Marker and arc colours by kind: media by verdict, then what is not media.
KINDS = (*(str(v) for v in VERDICTS), "signalling", "other")
# The timeline's axis is cut where the flows fall silent for more than this share of the
# capture's span; the stretches left are BREAK_GAP apart.
BREAK_SHARE = 0.2
BREAK_GAP = 24.0
SUMMARY_SECTIONS = (("apps", "Apps"), ("verdicts", "Media verdicts"),
                    ("countries", "Countries"), ("operators", "Operators"))


def _inert(value: Any) -> Any:
    """Jinja's finalize: every string printed passes the sanitiser (our own words and the
    map's shapes too, harmlessly), none cut: the template cuts capture strings with the
    `short` filter, each at its field's limit. Markup is already inert where it was made."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return escape_controls(value)
    return value


def _short(value: object, limit: int = TEXT_MAX) -> Markup:
    """A capture string with its own limit: inert and HTML-escaped (sanitize.html_text)."""
    return Markup(html_text("" if value is None else value, limit))


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flowscan", "report/templates"),
        autoescape=True, finalize=_inert, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(short=_short, size=size, duration=duration, when=when)
    return env


def _template_text(name: str) -> str:
    return (importlib.resources.files("flowscan") / "report" / "templates" / name).read_text(
        encoding="utf-8")


@cache
def world() -> dict[str, Any]:
    """The bundled country shapes (report/worldmap.json, made by geodata/worldmap.py)."""
    text = (importlib.resources.files("flowscan") / "report" / "worldmap.json").read_text(
        encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def project(lat: float, lon: float) -> tuple[float, float]:
    """Equirectangular, in the map's units (the shapes' projection)."""
    return round((lon + 180) * SCALE, 1), round((90 - lat) * SCALE, 1)


@dataclass
class Marker:
    """One located remote address on the map."""

    ip: str
    x: float
    y: float
    country: str | None
    kind: str  # the worst media verdict of its flows, else signalling or other
    foreign: bool
    flows: list[int] = field(default_factory=list)
    bytes: int = 0
    names: list[str] = field(default_factory=list)
    arc: str | None = None  # SVG path from the vantage point, with --vantage


def _position(flow: Flow) -> tuple[float, float] | None:
    remote = flow.remote
    if remote is None or remote.scope != "public":
        return None
    if remote.latitude is not None and remote.longitude is not None:
        return remote.latitude, remote.longitude
    return centroid(remote.country) if remote.country else None


def _kind(row: dict[str, Any]) -> str:
    return str(row["verdict"] or row["kind"] or "other")


def _worse(a: str, b: str) -> str:
    return a if KINDS.index(a) <= KINDS.index(b) else b


def markers(report: Report, rows: dict[int, dict[str, Any]],
            start: tuple[float, float] | None) -> list[Marker]:
    """One marker per located remote address (the distinct remotes of the JSON report with
    a country or coordinates), in address order; those sharing a point are spread around
    it so each stays visible. A flow whose capture end cannot be told (answers.undecided)
    has no destination to draw."""
    found: dict[str, Marker] = {}
    for flow in report.flows:
        point = _position(flow)
        if point is None or flow.remote is None or undecided(flow):
            continue
        row = rows[flow.id]
        marker = found.get(flow.remote.ip)
        if marker is None:
            x, y = project(*point)
            marker = found[flow.remote.ip] = Marker(flow.remote.ip, x, y, flow.remote.country,
                                                    _kind(row), False)
        marker.kind = _worse(marker.kind, _kind(row))
        marker.foreign = marker.foreign or bool(row["foreign"])
        marker.flows.append(flow.id)
        marker.bytes += flow.bytes
        if row["name"] and row["name"] not in marker.names:
            marker.names.append(row["name"])
    out = sorted(found.values(), key=lambda m: (m.y, m.x, m.ip))
    _spread(out)
    if start is not None:
        for m in out:
            m.arc = _arc(start, (m.x, m.y))
    return out


def _spread(marks: list[Marker]) -> None:
    at: dict[tuple[float, float], list[Marker]] = {}
    for m in marks:
        at.setdefault((m.x, m.y), []).append(m)
    for (x, y), group in at.items():
        if len(group) < 2:
            continue
        for i, m in enumerate(sorted(group, key=lambda m: m.ip)):
            angle = 2 * math.pi * i / len(group)
            m.x = round(x + SPREAD * math.cos(angle), 1)
            m.y = round(y + SPREAD * math.sin(angle), 1)


def _arc(a: tuple[float, float], b: tuple[float, float]) -> str:
    """A curve from a to b bowed upwards (north), as routes are drawn on flat maps."""
    (x1, y1), (x2, y2) = a, b
    length = math.hypot(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - max(8.0, length * 0.25)
    return f"M{x1:.1f} {y1:.1f}Q{cx:.1f} {cy:.1f} {x2:.1f} {y2:.1f}"


def view(marks: list[Marker], start: tuple[float, float] | None,
         world_box: list[int]) -> tuple[list[float], float]:
    """The part of the world the map shows: every marker and the capture point with a
    margin, at least MAP_MIN_DEGREES wide, in the map's proportions; and the markers'
    radius for it. A call within Europe is drawn as Europe, not as a dot on a world."""
    wx, wy, ww, wh = (float(v) for v in world_box)
    points = [(m.x, m.y) for m in marks] + ([start] if start else [])
    if not points:
        return [wx, wy, ww, wh], ww / MARKER_SHARE
    pad = MAP_MARGIN_DEGREES * SCALE
    x0, x1 = min(p[0] for p in points) - pad, max(p[0] for p in points) + pad
    y0, y1 = min(p[1] for p in points) - pad, max(p[1] for p in points) + pad
    width = max(x1 - x0, (y1 - y0) * ww / wh, MAP_MIN_DEGREES * SCALE)
    width = min(width, ww)
    height = width * wh / ww
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = min(max(cx - width / 2, wx), wx + ww - width)
    top = min(max(cy - height / 2, wy), wy + wh - height)
    box = [round(left, 1), round(top, 1), round(width, 1), round(height, 1)]
    return box, round(width / MARKER_SHARE, 2)


@dataclass
class Bar:
    flow: int
    x: float
    width: float
    kind: str
    label: str


@dataclass
class Segment:
    """A stretch of the timeline where flows are active; long silences between stretches
    are cut out of the axis (a capture merged from two days would otherwise squeeze every
    flow into a hair at each end)."""

    start: float
    end: float
    x: float = 0.0
    width: float = 0.0

    def at(self, t: float) -> float:
        return self.x + (t - self.start) / max(self.end - self.start, 1e-6) * self.width


def segments(spans: list[tuple[float, float]], first: float, last: float,
             width: float) -> list[Segment]:
    """The axis: one segment over the whole capture, unless silences longer than
    BREAK_SHARE of it separate the flows. Each segment's width is half its share of the
    time shown and half its share of the flows, BREAK_GAP apart: seven busy seconds stay
    readable beside a long flow minutes later."""
    total = max(last - first, 1e-6)
    out: list[Segment] = []
    counts: list[int] = []
    for start, end in sorted(spans):
        if out and start - out[-1].end <= BREAK_SHARE * total:
            out[-1].end = max(out[-1].end, end)
            counts[-1] += 1
        else:
            out.append(Segment(start, end))
            counts.append(1)
    if len(out) == 1:
        return [Segment(first, last, 0.0, width)]
    room = width - BREAK_GAP * (len(out) - 1)
    shown = sum(seg.end - seg.start for seg in out) or 1.0
    x = 0.0
    for seg, count in zip(out, counts, strict=True):
        share = ((seg.end - seg.start) / shown + count / len(spans)) / 2
        seg.x, seg.width = round(x, 1), round(room * share, 1)
        x += seg.width + BREAK_GAP
    return out


def timeline(report: Report, rows: dict[int, dict[str, Any]], width: float = 1000.0
             ) -> tuple[list[Bar], list[Segment], int]:
    """The largest flows (TIMELINE_MAX) as bars over the capture's span, by start time;
    the axis's segments; and how many flows had a span at all."""
    cap = report.capture
    timed = [f for f in report.flows if rows[f.id]["start"] is not None]
    if cap.first_timestamp is None or cap.last_timestamp is None or not timed:
        return [], [], 0
    spans = [(rows[f.id]["start"], rows[f.id]["start"] + (rows[f.id]["duration_s"] or 0))
             for f in timed]
    axis = segments(spans, cap.first_timestamp, cap.last_timestamp, width)
    chosen = sorted(timed, key=lambda f: (-f.bytes, f.id))[:TIMELINE_MAX]
    bars = []
    for flow in sorted(chosen, key=lambda f: (rows[f.id]["start"], f.id)):
        row = rows[flow.id]
        start, end = row["start"], row["start"] + (row["duration_s"] or 0)
        seg = next(s for s in axis if s.start <= start <= s.end)
        x = seg.at(start)
        w = max(2.0, min(seg.at(end), seg.x + seg.width) - x)
        label = (f"flow {flow.id}: {row['server_ip']}:{row['server_port']} "
                 f"{row['name'] or ''} {_kind(row)}, {size(flow.bytes)}, "
                 f"{duration(row['duration_s'])}")
        bars.append(Bar(flow.id, round(x, 1), round(w, 1), _kind(row), label))
    return bars, axis, len(timed)


@dataclass
class Card:
    """A call or media session: its verdicts, where the encryption ends, the evidence and
    what decryption showed, per flow."""

    title: str
    summary: str | None
    verdicts: list[str]
    flows: list[Flow]
    paths: list[str]
    evidence: list[tuple[str, str, str | None]]


def cards(report: Report) -> list[Card]:
    by_id = {f.id: f for f in report.flows}
    out = []
    covered: set[int] = set()
    for s in report.sessions:
        members = [by_id[i] for i in s.flows if i in by_id]
        covered.update(s.flows)
        out.append(_card(f"Session {s.id}" + (f": {s.app}" if s.app else ""), s.summary,
                         list(s.verdicts), members))
    for flow in report.flows:  # media judged outside any session
        if flow.encryption is not None and flow.id not in covered:
            out.append(_card(f"Flow {flow.id}" + (f": {flow.app.name}" if flow.app else ""),
                             None, [flow.encryption.verdict], [flow]))
    return out


def _card(title: str, summary: str | None, verdicts: list[str], members: list[Flow]) -> Card:
    paths: dict[str, None] = {}
    evidence: dict[tuple[str, str, str | None], None] = {}
    for f in members:
        if f.encryption is None:
            continue
        paths[encryption_path(f.encryption.verdict, f.encryption.termination)] = None
        for e in f.encryption.evidence:
            evidence[(e.signal, e.detail, e.strength)] = None
    return Card(title, summary, verdicts, members, list(paths), list(evidence))


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def render(report: Report) -> str:
    """One report as a complete HTML document."""
    rows = {f.id: flow_row(report, f) for f in report.flows}
    vantage = report.vantage
    start = project(vantage.latitude, vantage.longitude) if vantage else None
    marks = markers(report, rows, start)
    bars, axis, timed = timeline(report, rows)
    script = _template_text("report.js")
    shapes = world()
    box, radius = view(marks, start, shapes["viewbox"])
    dest = {d.key for d in report.answers.data.countries} if report.answers else set()
    table = [rows[f.id] for f in sorted(report.flows, key=lambda f: f.id)][:TABLE_MAX]
    return _environment().get_template("report.html.j2").render(
        report=report, answers=report.answers, rows=table, flows_total=len(report.flows),
        markers=marks, box=box, r=radius, vantage=vantage, start=start, world=shapes,
        destinations=dest, bars=bars, axis=axis, break_gap=BREAK_GAP, timed=timed,
        timeline_max=TIMELINE_MAX, cards=cards(report),
        kinds=KINDS, style=Markup(_template_text("report.css")), script=Markup(script),
        script_hash=_script_hash(script), evidence_max=EVIDENCE_MAX)


def summary_page(summary: dict[str, Any], home: str | None, pages: list[str | None]
                 ) -> bytes:
    """The combined summary of a run (report.summary.RunSummary.as_dict()) as a page beside
    the captures' pages, each capture linked to its own (pages: a file name, in capture
    order, or None where no page was written)."""
    links = [quote(page) if page else None for page in pages]
    return _environment().get_template("summary.html.j2").render(
        d=summary, home=home, captures=list(zip(summary["per_capture"], links, strict=True)),
        sections=SUMMARY_SECTIONS, style=Markup(_template_text("report.css"))).encode("utf-8")


def dumps_bytes(reports: list[Report]) -> bytes:
    """The HTML of one report (a page holds one capture; a batch writes one page each)."""
    (report,) = reports
    return render(report).encode("utf-8")
