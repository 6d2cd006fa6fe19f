"""JSON serialisation of the report model, in field order, reproducible byte for byte.

orjson serialises the dataclasses directly and indents at C speed; the standard library's
encoder falls back to pure Python when indenting, which dominates the run on large captures.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from flowscan.report.model import Report
from flowscan.report.sanitize import json_inert, json_safe

OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE


def dumps_bytes(reports: list[Report]) -> bytes:
    """One report as an object; several as an array of objects. Always valid UTF-8: a
    string orjson refuses (a lone surrogate, from a capture path that is not UTF-8) sends
    the reports through json_safe; every other string is kept whole, its invisible and
    bidi characters escaped (json_inert)."""
    data: object = reports[0] if len(reports) == 1 else reports
    try:
        return json_inert(orjson.dumps(data, option=OPTIONS))
    except orjson.JSONEncodeError:
        return json_inert(orjson.dumps(_utf8_safe(data), option=OPTIONS))


def _utf8_safe(value: object) -> object:
    """value as plain containers, every string (dictionary keys too) through json_safe.
    Only for the rare report orjson refuses: dataclasses.asdict keeps field order, so the
    output equals orjson's but for the repaired strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, str):
        return json_safe(value)
    if isinstance(value, dict):
        return {_utf8_safe(k): _utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_utf8_safe(v) for v in value]
    return value


def dumps(reports: list[Report]) -> str:
    return dumps_bytes(reports).decode("utf-8")


def report_to_dict(report: Report) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(report))
