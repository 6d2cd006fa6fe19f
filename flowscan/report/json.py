"""JSON serialisation of the report model, stable key order for reproducible output."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from flowscan.report.model import Report


def to_plain(value: Any) -> Any:
    """Dataclasses to dicts without asdict's deep copies (reports may hold many flows)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def report_to_dict(report: Report) -> dict[str, Any]:
    plain = to_plain(report)
    # Put the schema first so a reader sees what it is holding.
    return {"schema": plain.pop("schema"), **plain}


def dumps(reports: list[Report]) -> str:
    """One report as an object; several as an array of objects."""
    data: Any = [report_to_dict(r) for r in reports]
    if len(reports) == 1:
        data = data[0]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
