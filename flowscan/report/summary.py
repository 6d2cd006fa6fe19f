"""The combined summary of a run over many captures: per app, verdict, country, operator
and foreign transfer, counted across captures.

A batch over hundreds of captures must not keep every report: each capture is reduced, as
soon as it is analysed, to a CaptureSummary of counters (a few hundred bytes), and the run
keeps only those. The summary renders as JSON (schema flowscan.summary/1) and as text;
both list captures by path and counters by bytes then key, so the same captures always
give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from flowscan.report.model import Report
from flowscan.report.sanitize import inert_text, json_inert, json_safe

SCHEMA = "flowscan.summary/1"


@dataclass
class Count:
    """Flows and bytes of one key (an app, a verdict, a country...) in one capture."""

    flows: int = 0
    bytes: int = 0
    name: str | None = None  # a country's or operator's name where the report gives one
    registered_country: str | None = None  # an operator's country of registration


@dataclass
class CaptureSummary:
    """What the combined summary needs of one capture: counters, never flows or strings
    beyond the keys. error: the one-line reason a capture could not be read."""

    path: str
    sha256: str | None = None
    error: str | None = None
    packets: int = 0
    bytes: int = 0
    flows: int = 0
    sessions: int = 0
    findings: dict[str, int] = field(default_factory=dict)  # by severity
    encryption: str | None = None  # the plain answer: yes, no, cannot-tell
    apps: dict[str, Count] = field(default_factory=dict)
    verdicts: dict[str, Count] = field(default_factory=dict)  # media flows by verdict
    countries: dict[str, Count] = field(default_factory=dict)
    operators: dict[str, Count] = field(default_factory=dict)
    leaving: dict[str, Count] = field(default_factory=dict)  # by kind, with --home
    foreign_operators: int = 0  # readable media on a network registered elsewhere
    warnings: list[str] = field(default_factory=list)


def summarise(report: Report) -> CaptureSummary:
    """One report reduced to its counters."""
    s = CaptureSummary(path=report.capture.path, sha256=report.capture.sha256,
                       packets=report.capture.packets, bytes=report.capture.bytes,
                       flows=len(report.flows), sessions=len(report.sessions),
                       warnings=list(report.capture.warnings))
    for finding in report.findings:
        s.findings[finding.severity] = s.findings.get(finding.severity, 0) + 1
    for group in report.apps:
        count = s.apps.setdefault(group.name, Count())
        count.flows += len(group.flows)
        count.bytes += group.bytes
    answers = report.answers
    if answers is None:
        return s
    s.encryption = answers.encryption.answer
    for share in answers.encryption.verdicts:
        count = s.verdicts.setdefault(share.verdict, Count())
        count.flows += share.flows
        count.bytes += share.bytes
    for d in answers.data.countries:
        s.countries[d.key] = Count(d.flows, d.bytes, d.name)
    for d in answers.data.operators:
        s.operators[d.key] = Count(d.flows, d.bytes, d.name, d.registered_country)
    for leaving in answers.data.leaving:
        count = s.leaving.setdefault(leaving.kind, Count())
        count.flows += 1
        count.bytes += leaving.bytes
    s.foreign_operators = len(answers.data.foreign_operators)
    return s


def failed(path: str, error: str) -> CaptureSummary:
    return CaptureSummary(path=path, error=error)


@dataclass
class Total:
    """A key's counters over the run: in how many captures, how many flows and bytes."""

    key: str
    captures: int = 0
    flows: int = 0
    bytes: int = 0
    name: str | None = None
    registered_country: str | None = None


def _combine(maps: Iterable[dict[str, Count]]) -> list[Total]:
    totals: dict[str, Total] = {}
    for counts in maps:
        for key, c in counts.items():
            t = totals.setdefault(key, Total(key))
            t.captures += 1
            t.flows += c.flows
            t.bytes += c.bytes
            t.name = t.name or c.name
            t.registered_country = t.registered_country or c.registered_country
    return sorted(totals.values(), key=lambda t: (-t.bytes, -t.flows, t.key))


@dataclass
class RunSummary:
    """The combined summary; captures in path order."""

    captures: list[CaptureSummary]
    home: str | None = None

    def as_dict(self) -> dict[str, Any]:
        read = [c for c in self.captures if c.error is None]
        answers: dict[str, int] = {}
        for c in read:
            key = c.encryption or "no-answer"
            answers[key] = answers.get(key, 0) + 1

        def totals(attr: str) -> list[dict[str, Any]]:
            out = []
            for t in _combine(getattr(c, attr) for c in read):
                row: dict[str, Any] = {"key": t.key, "captures": t.captures,
                                       "flows": t.flows, "bytes": t.bytes}
                if attr in ("countries", "operators"):
                    row["name"] = t.name
                if attr == "operators":
                    row["registered_country"] = t.registered_country
                out.append(row)
            return out

        return {
            "schema": SCHEMA,
            "home": self.home,
            "captures": {"total": len(self.captures), "read": len(read),
                         "failed": len(self.captures) - len(read),
                         "packets": sum(c.packets for c in read),
                         "bytes": sum(c.bytes for c in read),
                         "flows": sum(c.flows for c in read)},
            "failed": [{"capture": c.path, "error": c.error} for c in self.captures
                       if c.error is not None],
            "media_end_to_end": dict(sorted(answers.items())),
            "apps": totals("apps"),
            "verdicts": totals("verdicts"),
            "countries": totals("countries"),
            "operators": totals("operators"),
            "foreign": {"leaving": totals("leaving"),
                        "captures_leaving": sum(1 for c in read if c.leaving),
                        "foreign_operator_flows": sum(c.foreign_operators for c in read)},
            "per_capture": [{"capture": c.path, "sha256": c.sha256, "error": c.error,
                             "packets": c.packets, "bytes": c.bytes, "flows": c.flows,
                             "sessions": c.sessions, "media_end_to_end": c.encryption,
                             "findings": dict(sorted(c.findings.items()))}
                            for c in self.captures],
        }

    def json_bytes(self) -> bytes:
        """The summary as JSON: strings whole (lone surrogates repaired), invisible
        characters escaped, as in the report's JSON."""
        data = _json_safe(self.as_dict())
        return json_inert(orjson.dumps(data, option=orjson.OPT_INDENT_2
                                       | orjson.OPT_APPEND_NEWLINE))

    def text(self) -> str:
        """The summary for a person: one line per key, every string inert."""
        d = self.as_dict()
        c = d["captures"]
        lines = [f"flowscan summary: {c['total']} captures, {c['read']} read, "
                 f"{c['failed']} failed; {c['flows']} flows, {c['packets']} packets, "
                 f"{c['bytes']} bytes"]
        for f in d["failed"]:
            lines.append(f"  not read: {inert_text(f['capture'])}: {inert_text(f['error'])}")
        answers = ", ".join(f"{k} {v}" for k, v in d["media_end_to_end"].items())
        lines.append(f"media end-to-end encrypted (captures): {answers or 'none'}")
        sections = (("apps", "apps"), ("verdicts", "media verdicts"),
                    ("countries", "countries"), ("operators", "operators"))
        for key, title in sections:
            lines.append(f"{title}:")
            if not d[key]:
                lines.append("  none")
            for t in d[key]:
                label = inert_text(t["key"])
                if t.get("name"):
                    label += f" ({inert_text(t['name'])})"
                if t.get("registered_country"):
                    label += f", registered {inert_text(t['registered_country'])}"
                lines.append(f"  {label}: {t['captures']} captures, {t['flows']} flows, "
                             f"{t['bytes']} bytes")
        foreign = d["foreign"]
        home = f" {inert_text(self.home)}" if self.home else ""
        lines.append(f"leaving home{home}:" if self.home else
                     "leaving home: not asked (give --home)")
        if self.home:
            if not foreign["leaving"]:
                lines.append("  none")
            for t in foreign["leaving"]:
                lines.append(f"  {t['key']}: {t['captures']} captures, {t['flows']} flows, "
                             f"{t['bytes']} bytes")
        lines.append(f"readable media on a network registered elsewhere: "
                     f"{foreign['foreign_operator_flows']} flows")
        lines.append("captures:")
        for p in d["per_capture"]:
            if p["error"] is not None:
                lines.append(f"  {inert_text(p['capture'])}: not read: "
                             f"{inert_text(p['error'])}")
                continue
            lines.append(f"  {inert_text(p['capture'])}: {p['flows']} flows, "
                         f"{p['bytes']} bytes, end-to-end {p['media_end_to_end'] or '-'}")
        return "\n".join(lines) + "\n"


def _json_safe(value: object) -> object:
    if isinstance(value, str):
        return json_safe(value)
    if isinstance(value, dict):
        return {json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
