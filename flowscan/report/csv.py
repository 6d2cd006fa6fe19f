"""The CSV report: one row per flow, the columns of report.rows, for spreadsheets.

A capture is attacker-controlled, and a spreadsheet runs a cell that starts with = + - @
as a formula: every cell goes through sanitize.csv_cell, which escapes controls and defuses
such a start with a quote. Several captures make one CSV; the capture and sha256 columns
say which row is whose. Same reports, same bytes: values are written in one fixed way.
"""

from __future__ import annotations

import csv
import io
from typing import IO, TextIO

from flowscan.report.model import Report
from flowscan.report.rows import COLUMNS, flow_row
from flowscan.report.sanitize import csv_cell


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return csv_cell(repr(value) if isinstance(value, float) else value)


def _write_text(reports: list[Report], out: TextIO) -> None:
    """A header row, then one row per flow (RFC 4180, CRLF), each written as it is made."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for report in reports:
        for flow in sorted(report.flows, key=lambda f: f.id):
            record = flow_row(report, flow)
            writer.writerow([_cell(record[column]) for column in COLUMNS])


def dumps(reports: list[Report]) -> str:
    """The reports as CSV text."""
    buf = io.StringIO()
    _write_text(reports, buf)
    return buf.getvalue()


def write(reports: list[Report], out: IO[bytes]) -> None:
    """The reports as CSV bytes into out, UTF-8 (backslash escapes for what it cannot
    hold: a lone surrogate from a path that is not UTF-8)."""
    text = io.TextIOWrapper(out, encoding="utf-8", errors="backslashreplace", newline="",
                            write_through=True)
    try:
        _write_text(reports, text)
        text.flush()
    finally:
        text.detach()  # out stays open: it is the caller's


def dumps_bytes(reports: list[Report]) -> bytes:
    buf = io.BytesIO()
    write(reports, buf)
    return buf.getvalue()
