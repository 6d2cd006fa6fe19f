"""JSON Lines: one JSON object per line, for jq, log pipelines and line-by-line loaders.

Per capture, in this order: a "capture" line (the capture's facts, tool, schema, names and
geodata), one "flow" line per flow (by id), then "app", "session" and "finding" lines, an
"answers" line and a closing "summary" line with the counts. Every line has "type" and the
capture's "sha256", so lines of many captures can be concatenated and still be told apart.
Strings are whole as in the JSON report, invisible characters escaped (sanitize.json_inert).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator
from typing import IO

import orjson

from flowscan.report.model import Report
from flowscan.report.sanitize import json_inert, json_safe_tree

SCHEMA = "flowscan.report.jsonl/1"
# Lines joined per write: fewer calls, a block of a few hundred kilobytes at most.
BLOCK = 256


def _line(kind: str, sha256: str, value: object) -> bytes:
    """One line: {"type": kind, "sha256": sha256, then value's members}. A dataclass is
    dumped once, its object spliced after the two leading members (its own fields never
    take their names, so none would move: _splices); the rest as before."""
    if (dataclasses.is_dataclass(value) and not isinstance(value, type)
            and _splices(type(value))):
        try:
            data = orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
            head = orjson.dumps({"type": kind, "sha256": sha256})
        except orjson.JSONEncodeError:
            pass  # a string orjson refuses: json_safe_tree below
        else:
            if data != b"{}\n":
                return json_inert(head[:-1] + b"," + data[1:])
    body: dict[str, object] = {"type": kind, "sha256": sha256}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (orjson.loads(orjson.dumps(value)) if _encodable(value)
                  else json_safe_tree(dataclasses.asdict(value)))
        assert isinstance(fields, dict)
        body.update(fields)
    elif isinstance(value, dict):
        body.update(value)
    try:
        data = orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        data = orjson.dumps(json_safe_tree(body), option=orjson.OPT_APPEND_NEWLINE)
    return json_inert(data)


@functools.cache
def _splices(cls: type) -> bool:
    """Whether cls's object can follow "type" and "sha256" as it is: no field of those
    names, which a dict's update would have put in the leading members' place."""
    return not {"type", "sha256"} & {f.name for f in dataclasses.fields(cls)}


def _encodable(value: object) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


def lines(report: Report) -> Iterator[bytes]:
    """The report's lines, each ending in a newline."""
    sha = report.capture.sha256
    head = orjson.loads(orjson.dumps(report.capture)) if _encodable(report.capture) \
        else json_safe_tree(dataclasses.asdict(report.capture))
    assert isinstance(head, dict)
    yield _line("capture", sha, {"schema": SCHEMA, "report_schema": report.schema,
                                 "tool": dataclasses.asdict(report.tool), **head,
                                 "names": report.names,
                                 "geodata": [dataclasses.asdict(g) for g in report.geodata]})
    for flow in sorted(report.flows, key=lambda f: f.id):
        yield _line("flow", sha, flow)
    for app in report.apps:
        yield _line("app", sha, app)
    for session in report.sessions:
        yield _line("session", sha, session)
    for finding in report.findings:
        yield _line("finding", sha, finding)
    if report.answers is not None:
        yield _line("answers", sha, report.answers)
    yield _line("summary", sha, {"capture": report.capture.path, "flows": len(report.flows),
                                 "apps": len(report.apps), "sessions": len(report.sessions),
                                 "findings": len(report.findings),
                                 "packets": report.capture.packets,
                                 "bytes": report.capture.bytes})


def write(reports: list[Report], out: IO[bytes]) -> None:
    """The lines written as they are made, never all at once."""
    for report in reports:
        made = lines(report)
        while block := b"".join(itertools.islice(made, BLOCK)):
            out.write(block)


def dumps_bytes(reports: list[Report]) -> bytes:
    return b"".join(line for report in reports for line in lines(report))
