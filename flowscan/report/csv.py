"""The CSV report: one row per flow, the columns of report.rows, for spreadsheets.

A capture is attacker-controlled, and a spreadsheet runs a cell that starts with = + - @
as a formula: every cell goes through sanitize.csv_cell, which escapes controls and defuses
such a start with a quote. Several captures make one CSV; the capture and sha256 columns
say which row is whose. Same reports, same bytes: values are written in one fixed way.
"""

from __future__ import annotations

import csv
import io

from flowscan.report.model import Report
from flowscan.report.rows import COLUMNS, flow_rows
from flowscan.report.sanitize import csv_cell


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return csv_cell(repr(value) if isinstance(value, float) else value)


def dumps(reports: list[Report]) -> str:
    """The reports as CSV text: a header row, then one row per flow (RFC 4180, CRLF)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for record in flow_rows(reports):
        writer.writerow([_cell(record[column]) for column in COLUMNS])
    return buf.getvalue()


def dumps_bytes(reports: list[Report]) -> bytes:
    return dumps(reports).encode("utf-8", "backslashreplace")
