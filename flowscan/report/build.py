"""The report, assembled once at the end of the pipeline from what the stages found.

Renderers (text, JSON) only render what this builds; the warnings a capture gets are
gathered here, in one place, from every stage that skipped or could not do something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flowscan.capture.decode import LINK_NAMES
from flowscan.geo.plausibility import Vantage
from flowscan.policy.jurisdictions import Home
from flowscan.report.answers import build as build_answers
from flowscan.report.model import (
    AppGroup,
    CaptureInfo,
    Finding,
    Flow,
    GeoDatabase,
    MediaSession,
    Report,
    SecretsInfo,
    ToolInfo,
    VantagePoint,
)
from flowscan.report.records import timestamp
from flowscan.version import __version__


@dataclass
class CaptureTotals:
    """What reading and accounting counted over the whole capture."""

    path: str
    sha256: str
    size_bytes: int
    compressed: bool
    format: str
    link_types: set[int]
    sections: int
    interfaces: int
    packets: int
    bytes: int
    first_ts: float
    last_ts: float
    ip_packets: int
    non_ip_packets: int
    malformed: int
    unsupported: dict[int, int]
    ip_fragments: int
    fragments_unmatched: int
    secrets_kinds: list[str] = field(default_factory=list)
    reader_warnings: list[str] = field(default_factory=list)


def reading_warnings(totals: CaptureTotals) -> list[str]:
    """What the reader and the decoder could not place: said, never dropped."""
    out = list(totals.reader_warnings)
    if totals.malformed:
        out.append(f"{totals.malformed} packets were too short or inconsistent to decode; "
                   "they are counted in the capture totals but belong to no flow")
    for link, n in sorted(totals.unsupported.items()):
        out.append(f"{n} packets of unsupported link type {link} were not decoded")
    return out


def malformed_sip_warnings(flows: list[Flow]) -> list[str]:
    """One warning per flow whose SIP or SDP had lines skipped as malformed: where they
    were, never what they held (details.sip.malformed_lines says why each was skipped)."""
    out = []
    for flow in flows:
        bad = getattr(flow.details.get("sip"), "malformed_lines", None)
        if bad:
            where = ", ".join(f"message {m['message']} line {m['line']}" for m in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            out.append(f"flow {flow.id}: {len(bad)} malformed SIP/SDP line(s) were skipped "
                       f"({where}{more}); the rest of each message was read")
    return out


def capture_info(totals: CaptureTotals, warnings: list[str]) -> CaptureInfo:
    counted = totals.packets > 0
    return CaptureInfo(
        path=totals.path,
        sha256=totals.sha256,
        size_bytes=totals.size_bytes,
        compressed=totals.compressed,
        format=totals.format + ("+gzip" if totals.compressed else ""),
        link_types=sorted({LINK_NAMES.get(lt, f"linktype-{lt}") for lt in totals.link_types}),
        sections=totals.sections,
        interfaces=totals.interfaces,
        packets=totals.packets,
        bytes=totals.bytes,
        first_timestamp=timestamp(totals.first_ts) if counted else None,
        last_timestamp=timestamp(totals.last_ts) if counted else None,
        ip_packets=totals.ip_packets,
        non_ip_packets=totals.non_ip_packets,
        undecoded_packets=totals.malformed + sum(totals.unsupported.values()),
        ip_fragments=totals.ip_fragments,
        decryption_secrets=SecretsInfo(blocks=len(totals.secrets_kinds),
                                       kinds=sorted(set(totals.secrets_kinds))),
        warnings=warnings,
    )


def build_report(totals: CaptureTotals, warnings: list[str], flows: list[Flow],
                 apps: list[AppGroup], names: dict[str, list[str]],
                 sessions: Sequence[MediaSession], findings: list[Finding],
                 geodata: list[GeoDatabase], home: Home | None,
                 vantage: Vantage | None = None) -> Report:
    report = Report(tool=ToolInfo("flowscan", __version__),
                    capture=capture_info(totals, warnings), flows=flows, apps=apps,
                    names=names, sessions=sessions, findings=findings, geodata=geodata,
                    vantage=vantage_point(vantage))
    return with_answers(report, home)


def vantage_point(vantage: Vantage | None) -> VantagePoint | None:
    if vantage is None:
        return None
    return VantagePoint(vantage.label, vantage.point[0], vantage.point[1], vantage.country)


def with_answers(report: Report, home: Home | None) -> Report:
    """The plain answers come last, drawn from everything else the report holds."""
    report.answers = build_answers(report, home)
    return report
