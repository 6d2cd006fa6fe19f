"""The CSV report: one row per flow, the columns of report.rows, for spreadsheets.

A capture is attacker-controlled, and a spreadsheet runs a cell that starts with = + - @
as a formula: every cell goes through sanitize.csv_cell, which escapes controls and defuses
such a start with a quote. Several captures make one CSV; the capture and sha256 columns
say which row is whose. Same reports, same bytes: values are written in one fixed way.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from typing import IO

from flowscan.report.model import Report
from flowscan.report.rows import COLUMNS, flow_row
from flowscan.report.sanitize import FORMULA_START, csv_cell

# Rows per block of text: a few hundred kilobytes.
BLOCK = 1024


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return csv_cell(repr(value) if isinstance(value, float) else value)


def _cells(values: Iterable[object]) -> list[str]:
    """_cell of each value, the common ones without a call: a printable string that starts
    no formula (csv_cell keeps it as it is), None, a non-negative int (bool excluded)."""
    return [value if type(value) is str and value.isprintable()
            and not value.startswith(FORMULA_START)
            else "" if value is None
            else str(value) if type(value) is int and value >= 0
            else _cell(value) for value in values]


def _rows(reports: list[Report]) -> Iterator[list[str]]:
    for report in reports:
        for flow in sorted(report.flows, key=lambda f: f.id):
            yield _cells(flow_row(report, flow).values())  # in COLUMNS order


def _blocks(reports: list[Report]) -> Iterator[str]:
    """A header row, then one row per flow (RFC 4180, CRLF), BLOCK rows of text at a time:
    the csv module's calls and the writes made per block, not per row."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    rows = _rows(reports)
    while True:
        writer.writerows(itertools.islice(rows, BLOCK))
        text = buf.getvalue()
        if not text:
            return
        yield text
        buf.seek(0)
        buf.truncate()


def dumps(reports: list[Report]) -> str:
    """The reports as CSV text."""
    return "".join(_blocks(reports))


def write(reports: list[Report], out: IO[bytes]) -> None:
    """The reports as CSV bytes into out, UTF-8 (backslash escapes for what it cannot
    hold: a lone surrogate from a path that is not UTF-8)."""
    for text in _blocks(reports):
        out.write(text.encode("utf-8", "backslashreplace"))


def dumps_bytes(reports: list[Report]) -> bytes:
    buf = io.BytesIO()
    write(reports, buf)
    return buf.getvalue()
