"""JSON serialisation of the report model, in field order, reproducible byte for byte.

orjson serialises the dataclasses directly and indents at C speed; the standard library's
encoder falls back to pure Python when indenting, which dominates the run on large captures.
The flows are written one at a time into the report's frame (write), so a report of a
million flows is never one string in memory; the bytes are those of the whole report
serialised at once.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from typing import IO, Any

import orjson

from flowscan.report.model import Report
from flowscan.report.sanitize import json_inert, json_safe_tree

OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
# The report's own "flows" member as orjson indents an empty list of them: two spaces in,
# so no nested "flows" (of an app, a session, a finding: deeper in) can match.
_EMPTY_FLOWS = b'\n  "flows": [],\n'


def _dumps(value: object, option: int) -> bytes:
    """Always valid UTF-8: a string orjson refuses (a lone surrogate, from a capture path
    that is not UTF-8) sends the value through json_safe; every other string is kept whole,
    its invisible and bidi characters escaped (json_inert). Both work string by string, so
    a report written in pieces equals the report written whole."""
    try:
        return json_inert(orjson.dumps(value, option=option))
    except orjson.JSONEncodeError:
        return json_inert(orjson.dumps(json_safe_tree(value), option=option))


def _indented(data: bytes, prefix: bytes) -> bytes:
    """orjson's indented value moved `prefix` further in (strings hold no raw newline)."""
    return prefix + data.replace(b"\n", b"\n" + prefix)


def report_chunks(report: Report, prefix: bytes = b"") -> Iterator[bytes]:
    """One report's JSON (with its final newline unless prefixed: an array's element), in
    pieces: the frame up to the flows, each flow, then the rest of the frame."""
    frame = _dumps(dataclasses.replace(report, flows=[]), OPTIONS)
    if prefix:
        frame = _indented(frame.rstrip(b"\n"), prefix)
    if not report.flows:
        yield frame
        return
    head, found, tail = frame.partition(b"\n" + prefix + _EMPTY_FLOWS[1:] + prefix)
    assert found, "the report's flows member is where orjson puts it"
    inner = prefix + b"    "
    yield head + b"\n" + prefix + b'  "flows": ['
    for number, flow in enumerate(report.flows):
        yield (b",\n" if number else b"\n") + _indented(_dumps(flow, orjson.OPT_INDENT_2),
                                                         inner)
    yield b"\n" + prefix + b"  ],\n" + prefix + tail


def write(reports: list[Report], out: IO[bytes]) -> None:
    """One report as an object; several as an array of objects. orjson reads the __dict__
    of each record that has no slots (the facts in details), which Python 3.11 makes then
    and there: a dict per record, which would set the cyclic collector off over and over
    (seconds on 1M flows). Nothing here makes a reference cycle: the collector waits."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _write(reports, out)
    finally:
        if was_enabled:
            gc.enable()


def _write(reports: list[Report], out: IO[bytes]) -> None:
    if len(reports) == 1:
        for chunk in report_chunks(reports[0]):
            out.write(chunk)
        return
    out.write(b"[")
    for number, report in enumerate(reports):
        out.write(b",\n" if number else b"\n")
        for chunk in report_chunks(report, b"  "):
            out.write(chunk)
    out.write(b"\n]\n")


def dumps_bytes(reports: list[Report]) -> bytes:
    chunks: list[bytes] = []
    write(reports, _Collect(chunks))  # type: ignore[arg-type]
    return b"".join(chunks)


class _Collect:
    def __init__(self, chunks: list[bytes]) -> None:
        self.write = chunks.append


def dumps(reports: list[Report]) -> str:
    return dumps_bytes(reports).decode("utf-8")


def report_to_dict(report: Report) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(report))
