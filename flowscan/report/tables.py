"""Tables for analysts: flows, sessions, findings and captures as Parquet (or CSV), one
file per table, every row carrying its capture's SHA-256 to join on.

Parquet is what DuckDB, pandas, polars and Spark all read with a typed schema; CSV is for
those without it. The flow columns are report.rows' (the CSV report's), so a flow looks the
same in every flat output. Rows are appended as each capture finishes, gathered into
Parquet row groups of about ROW_GROUP_BYTES: a run over many captures holds at most one
row group and one capture's rows. (A row group per capture made the file's footer, which
the writer holds until it closes, grow by ~50 KB a capture: 50 MB over 1,000, and the
footer half of the file. Small Arrow tables cost ~10 KB each beyond their data, so every
COMBINE_EVERY captures the gathered ones become one.)
Strings from a capture are inert here too: controls and invisible characters escaped
(sanitize.escape_controls), so a query result printed on a terminal cannot drive it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Any

from flowscan.errors import FlowscanError
from flowscan.report.model import Report
from flowscan.report.rows import COLUMNS as FLOW_COLUMNS
from flowscan.report.rows import flow_row
from flowscan.report.sanitize import csv_cell, escape_controls

TABLE_FORMATS = ("parquet", "csv")
ROW_GROUP_BYTES = 8 << 20  # of Arrow data, uncompressed, gathered before a row group
COMBINE_EVERY = 64

# Column types, in order: "str", "int", "float", "bool", "ints" (a list of integers) or
# "strs" (a list of strings). README "Tables" documents these.
_FLOW_TYPES = {
    "capture": "str", "sha256": "str", "id": "int", "proto": "str", "client_ip": "str",
    "client_port": "int", "server_ip": "str", "server_port": "int", "name": "str",
    "packets_to_server": "int", "packets_to_client": "int", "bytes": "int",
    "start": "float", "duration_s": "float", "app": "str", "protocols": "str",
    "kind": "str", "verdict": "str", "termination": "str", "key_exchange": "str",
    "basis": "str", "confidence": "str", "remote_scope": "str", "remote_country": "str",
    "asn": "int", "organisation": "str", "registered_country": "str", "home": "str",
    "foreign": "bool", "via": "str",
}
SCHEMAS: dict[str, dict[str, str]] = {
    "flows": {column: _FLOW_TYPES[column] for column in FLOW_COLUMNS},
    "sessions": {"capture": "str", "sha256": "str", "id": "int", "app": "str",
                 "flows": "ints", "verdicts": "strs", "summary": "str"},
    "findings": {"capture": "str", "sha256": "str", "severity": "str", "kind": "str",
                 "detail": "str", "flows": "ints"},
    "captures": {"capture": "str", "sha256": "str", "error": "str", "size_bytes": "int",
                 "format": "str", "packets": "int", "bytes": "int",
                 "first_timestamp": "float", "last_timestamp": "float", "flows": "int",
                 "sessions": "int", "findings": "int", "media_end_to_end": "str",
                 "warnings": "strs"},
}
TABLES = tuple(SCHEMAS)


@dataclass
class TableRows:
    """One capture's rows of every table (what a worker sends back)."""

    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in TABLES})


def capture_rows(report: Report) -> TableRows:
    """The rows a report gives each table."""
    out = TableRows()
    path, sha = report.capture.path, report.capture.sha256
    out.rows["flows"] = [flow_row(report, f) for f in sorted(report.flows, key=lambda f: f.id)]
    out.rows["sessions"] = [{"capture": path, "sha256": sha, "id": s.id, "app": s.app,
                             "flows": list(s.flows), "verdicts": list(s.verdicts),
                             "summary": s.summary} for s in report.sessions]
    out.rows["findings"] = [{"capture": path, "sha256": sha, "severity": f.severity,
                             "kind": f.kind, "detail": f.detail, "flows": list(f.flows)}
                            for f in report.findings]
    c = report.capture
    out.rows["captures"] = [{
        "capture": path, "sha256": sha, "error": None, "size_bytes": c.size_bytes,
        "format": c.format, "packets": c.packets, "bytes": c.bytes,
        "first_timestamp": c.first_timestamp, "last_timestamp": c.last_timestamp,
        "flows": len(report.flows), "sessions": len(report.sessions),
        "findings": len(report.findings),
        "media_end_to_end": report.answers.encryption.answer if report.answers else None,
        "warnings": list(c.warnings)}]
    return out


def failed_rows(path: str, error: str) -> TableRows:
    """A capture that could not be read: one captures row with its error, nothing else."""
    out = TableRows()
    row: dict[str, Any] = dict.fromkeys(SCHEMAS["captures"])
    row.update(capture=path, error=error, warnings=[])
    out.rows["captures"] = [row]
    return out


def _inert(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "str":
        return escape_controls(str(value))
    if kind == "strs":
        return [escape_controls(str(v)) for v in value]
    return value


class TableWriter:
    """Appends each capture's rows to DIR/<table>.parquet (or .csv); close() finishes the
    files. Files are written under a temporary name and renamed when complete."""

    def __init__(self, folder: str, fmt: str) -> None:
        if fmt not in TABLE_FORMATS:
            raise FlowscanError(f"unknown table format {fmt!r}; choose parquet or csv")
        self.folder, self.fmt = folder, fmt
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise FlowscanError(f"{folder}: cannot make the tables folder: "
                                f"{exc.strerror or exc}") from None
        self._files: dict[str, Any] = {}
        self._writers: dict[str, Any] = {}
        self._schemas: dict[str, Any] = {}
        self._pending: dict[str, list[Any]] = {name: [] for name in SCHEMAS}  # Arrow tables
        self._pending_bytes = dict.fromkeys(SCHEMAS, 0)
        if fmt == "parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise FlowscanError("--tables needs pyarrow for Parquet: pip install "
                                    "'flowscan[tables]', or give --tables-format csv"
                                    ) from None
            # mimalloc, pyarrow's default pool, kept the pages of the many small tables
            # freed here: the client grew ~15 MB a 300 captures, flat with malloc's.
            pa.set_memory_pool(pa.system_memory_pool())
            types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
                     "bool": pa.bool_(), "ints": pa.list_(pa.int64()),
                     "strs": pa.list_(pa.string())}
            for name, columns in SCHEMAS.items():
                schema = pa.schema([(c, types[t]) for c, t in columns.items()])
                self._schemas[name] = schema
                self._writers[name] = pq.ParquetWriter(self._partial(name), schema)
        else:
            for name, columns in SCHEMAS.items():
                out = open(self._partial(name), "w", newline="", encoding="utf-8",  # noqa: SIM115
                           errors="backslashreplace")
                self._files[name] = out
                writer = csv.writer(out, lineterminator="\r\n")
                writer.writerow(list(columns))
                self._writers[name] = writer

    def path(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.{self.fmt}")

    def _partial(self, name: str) -> str:
        return self.path(name) + ".part"

    def add(self, rows: TableRows) -> None:
        for name, columns in SCHEMAS.items():
            batch = [{c: _inert(r.get(c), t) for c, t in columns.items()}
                     for r in rows.rows[name]]
            if not batch:
                continue
            if self.fmt == "parquet":
                import pyarrow as pa

                table = pa.Table.from_pylist(batch, schema=self._schemas[name])
                self._pending[name].append(table)
                self._pending_bytes[name] += table.nbytes
                if self._pending_bytes[name] >= ROW_GROUP_BYTES:
                    self._flush(name)
                elif len(self._pending[name]) >= COMBINE_EVERY:
                    self._pending[name] = [
                        pa.concat_tables(self._pending[name]).combine_chunks()]
            else:
                for r in batch:
                    self._writers[name].writerow([_csv(r[c]) for c in columns])

    def _flush(self, name: str) -> None:
        """The rows gathered for a table, written as one row group."""
        if not self._pending[name]:
            return
        import pyarrow as pa

        table = pa.concat_tables(self._pending[name])
        self._writers[name].write_table(table, row_group_size=max(1, table.num_rows))
        self._pending[name], self._pending_bytes[name] = [], 0

    def close(self) -> None:
        for name in SCHEMAS:
            if self.fmt == "parquet":
                self._flush(name)
                self._writers[name].close()
            else:
                self._files[name].close()
            os.replace(self._partial(name), self.path(name))


def _csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return csv_cell(";".join(str(v) for v in value))
    return csv_cell(repr(value) if isinstance(value, float) else value)
