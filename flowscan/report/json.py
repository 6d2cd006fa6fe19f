"""JSON serialisation of the report model, in field order, reproducible byte for byte.

orjson serialises the dataclasses directly and indents at C speed; the standard library's
encoder falls back to pure Python when indenting, which dominates the run on large captures.
"""

from __future__ import annotations

import gc
from typing import Any

import orjson

from flowscan.report.model import Report
from flowscan.report.sanitize import json_inert, json_safe_tree

OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE


def dumps_bytes(reports: list[Report]) -> bytes:
    """One report as an object; several as an array of objects. Always valid UTF-8: a
    string orjson refuses (a lone surrogate, from a capture path that is not UTF-8) sends
    the reports through json_safe; every other string is kept whole, its invisible and
    bidi characters escaped (json_inert)."""
    data: object = reports[0] if len(reports) == 1 else reports
    # orjson reads each record's __dict__, which Python 3.11 makes then and there: a dict
    # per record, which would set the cyclic collector off over and over (several seconds
    # on 1M flows). Nothing here makes a reference cycle.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return json_inert(orjson.dumps(data, option=OPTIONS))
    except orjson.JSONEncodeError:
        return json_inert(orjson.dumps(json_safe_tree(data), option=OPTIONS))
    finally:
        if was_enabled:
            gc.enable()


def dumps(reports: list[Report]) -> str:
    return dumps_bytes(reports).decode("utf-8")


def report_to_dict(report: Report) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(report))
