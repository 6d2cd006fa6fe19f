"""JSON serialisation of the report model, in field order, reproducible byte for byte.

orjson serialises the dataclasses directly and indents at C speed; the standard library's
encoder falls back to pure Python when indenting, which dominates the run on large captures.
The flows and the sessions are written a chunk at a time into the report's frame (write), so
a report of a million flows is never one string in memory; the bytes are those of the whole
report serialised at once.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator, Sequence
from typing import IO, Any

import orjson

from flowscan.report.model import Report
from flowscan.report.sanitize import json_inert, json_safe_tree

OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
# The report's members that grow with the flows (a session per media socket), written one
# element at a time, in field order.
STREAMED = ("flows", "sessions")


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


# Elements dumped per orjson call: per element, a call, its json_inert, re-indenting and a
# write cost a few microseconds besides its serialisation; a chunk is under a megabyte.
CHUNK = 256
# orjson's [[e1, ..., ek]] with OPT_INDENT_2 opens with these lines and closes with the
# last: between them, the elements 4 spaces in, as the report's flows and sessions are.
_CHUNK_HEAD = b"[\n  [\n"
_CHUNK_TAIL = b"\n  ]\n]"


def _elements(items: list[object]) -> bytes:
    """The items as a JSON array's elements at 4 spaces, joined by ",\\n": one orjson call
    for the chunk; a chunk orjson refuses (a lone surrogate) is dumped item by item, so
    that only the item that holds it goes through json_safe_tree. json_inert is applied
    to the chunk at once: it matches whole characters inside strings only."""
    try:
        data = orjson.dumps([items], option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:
        return b",\n".join(_indented(_dumps(item, orjson.OPT_INDENT_2), b"    ")
                           for item in items)
    assert data.startswith(_CHUNK_HEAD) and data.endswith(_CHUNK_TAIL)
    return json_inert(data[len(_CHUNK_HEAD):-len(_CHUNK_TAIL)])


def report_chunks(report: Report, prefix: bytes = b"") -> Iterator[bytes]:
    """One report's JSON (with its final newline unless prefixed: an array's element), in
    pieces: the frame up to the flows, the flows CHUNK at a time, the frame up to the
    sessions, the sessions likewise, then the rest of the frame."""
    frame = _dumps(dataclasses.replace(report, flows=[], sessions=[]), OPTIONS)  # STREAMED
    if prefix:
        frame = _indented(frame.rstrip(b"\n"), prefix)
    for name in STREAMED:
        items: list[object] = getattr(report, name)
        if not items:
            continue
        # The member as orjson indents an empty list: two spaces in (past the prefix), so
        # no nested member of that name (of an app, a finding: deeper in) can match.
        member = b"\n" + prefix + b'  "' + name.encode() + b'": ['
        head, found, frame = frame.partition(member + b"],\n" + prefix)
        assert found, f"the report's {name} member is where orjson puts it"
        yield head + member
        for start in range(0, len(items), CHUNK):
            elements = _elements(items[start:start + CHUNK])
            if prefix:
                elements = _indented(elements, prefix)
            yield b",\n" if start else b"\n"
            yield elements  # not joined to the separator: no copy of the chunk
        yield b"\n" + prefix + b"  ],\n" + prefix
    yield frame


def write(reports: list[Report], out: IO[bytes]) -> None:
    """One report as an object; several as an array of objects. Nothing here makes a
    reference cycle, and the pieces made per flow would set the cyclic collector off over
    and over (seconds on 1M flows): the collector waits."""
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
    return orjson.loads(orjson.dumps(report, default=as_list))


def as_list(value: object) -> list[object]:
    """orjson's `default` for a report: a sequence it does not know (sessions.Sessions,
    whose sessions are made as read) as the list it reads as:
    orjson.dumps(report, default=as_list)."""
    if isinstance(value, Sequence):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
