"""Flows as flat rows: one dict per flow, the same columns as the CSV report.

Report.flows_records() hands these to data-frame libraries as they are
(pandas.DataFrame(records), polars.DataFrame(records)): values keep their types (int,
float, bool, None), strings are whole as in the JSON. The CSV renderer (report.csv) writes
the same columns, every cell made inert for spreadsheets.
"""

from __future__ import annotations

from typing import Any

from flowscan.policy import transfers
from flowscan.report.answers import flow_name
from flowscan.report.model import Flow, Report

# The stable column order (add new columns at the end; never reorder or rename).
COLUMNS = (
    "capture", "sha256", "id", "proto", "client_ip", "client_port", "server_ip",
    "server_port", "name", "packets_to_server", "packets_to_client", "bytes", "start",
    "duration_s", "app", "protocols", "kind", "verdict", "termination", "key_exchange",
    "basis", "confidence", "remote_scope", "remote_country", "asn", "organisation",
    "registered_country", "home", "foreign", "via",
)


def _span(flow: Flow) -> tuple[float | None, float | None]:
    starts = [t for t in (flow.to_server.first_timestamp, flow.to_client.first_timestamp)
              if t is not None]
    ends = [t for t in (flow.to_server.last_timestamp, flow.to_client.last_timestamp)
            if t is not None]
    if not starts or not ends:
        return None, None
    return min(starts), round(max(ends) - min(starts), 6)


def flow_row(report: Report, flow: Flow) -> dict[str, Any]:
    """One flow's row: every column of COLUMNS, in order."""
    enc, remote, where = flow.encryption, flow.remote, flow.jurisdiction
    start, span = _span(flow)
    return {
        "capture": report.capture.path,
        "sha256": report.capture.sha256,
        "id": flow.id,
        "proto": flow.transport,
        "client_ip": flow.client.ip,
        "client_port": flow.client.port,
        "server_ip": flow.server.ip,
        "server_port": flow.server.port,
        "name": flow_name(flow, report.names),
        "packets_to_server": flow.to_server.packets,
        "packets_to_client": flow.to_client.packets,
        "bytes": flow.bytes,
        "start": start,
        "duration_s": span,
        "app": flow.app.name if flow.app else None,
        "protocols": ",".join(flow.protocols),
        "kind": transfers.kind(flow),
        "verdict": enc.verdict if enc else None,
        "termination": enc.termination if enc else None,
        "key_exchange": enc.key_exchange if enc else None,
        "basis": enc.basis if enc else None,
        "confidence": enc.confidence if enc else None,
        "remote_scope": remote.scope if remote else None,
        "remote_country": remote.country if remote else None,
        "asn": remote.asn if remote else None,
        "organisation": remote.organisation if remote else None,
        "registered_country": remote.registered_country if remote else None,
        "home": where.home if where else None,
        "foreign": where.foreign if where else None,
        "via": "+".join(flow.encapsulation),
    }


def flow_rows(reports: list[Report]) -> list[dict[str, Any]]:
    """Every flow of every report, in report order then flow id."""
    return [flow_row(report, flow) for report in reports
            for flow in sorted(report.flows, key=lambda f: f.id)]
