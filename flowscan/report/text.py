"""The human-readable report: a capture summary and a table of the largest flows."""

from __future__ import annotations

import datetime as dt
from typing import TextIO

from rich.console import Console
from rich.table import Table

from flowscan.report.model import Flow, Report


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def render(reports: list[Report], out: TextIO, *, top: int = 40, color: bool = False) -> None:
    # A terminal's own width when drawing to one; a fixed width for files and pipes.
    console = Console(file=out, force_terminal=color, no_color=not color,
                      width=None if color else 160, highlight=False, soft_wrap=False)
    for index, report in enumerate(reports):
        if index:
            console.print()
        _render_one(console, report, top)


def _render_one(console: Console, report: Report, top: int) -> None:
    cap = report.capture
    console.print(f"[bold]{cap.path}[/bold]  ({cap.format}, {', '.join(cap.link_types) or '-'})")
    console.print(f"  sha256   {cap.sha256}")
    duration = (
        f"{cap.last_timestamp - cap.first_timestamp:.3f} s"
        if cap.first_timestamp is not None and cap.last_timestamp is not None else "-"
    )
    console.print(
        f"  packets  {cap.packets} ({_size(cap.bytes)}), {len(report.flows)} flows, "
        f"from {_when(cap.first_timestamp)} for {duration}"
    )
    if cap.decryption_secrets.blocks:
        console.print(
            f"  secrets  {cap.decryption_secrets.blocks} decryption secrets block(s): "
            f"{', '.join(cap.decryption_secrets.kinds)}"
        )
    for warning in cap.warnings:
        console.print(f"  [yellow]warning[/yellow]  {warning}")
    by_id = {f.id: f for f in report.flows}
    for group in report.apps:
        largest = max((by_id[i] for i in group.flows), key=lambda f: (f.bytes, -f.id))
        why = largest.app.evidence[0] if largest.app else None
        console.print(
            f"  app      [bold]{group.name}[/bold] ({group.confidence} confidence): "
            f"{len(group.flows)} flows, {_size(group.bytes)}"
            + (f"; e.g. {why.signal}: {why.detail}" if why else "")
        )
    for session in report.sessions:
        console.print(f"  call {session.id:<3} {session.summary}")
    for finding in report.findings:
        color = {"high": "red", "medium": "yellow"}.get(finding.severity, "")
        label = f"[{color}]{finding.severity}[/{color}]" if color else finding.severity
        console.print(f"  finding  {label}: {finding.detail} (flows "
                      f"{', '.join(map(str, finding.flows[:10]))})")
    credits = sorted({d.attribution for d in report.geodata if d.attribution})
    if credits:
        console.print(f"  geodata  {'; '.join(credits)}")
    if not report.flows:
        return
    flows = sorted(report.flows, key=lambda f: (-f.bytes, f.id))
    shown = flows if top <= 0 else flows[:top]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (("id", "right"), ("proto", "left"), ("client", "left"),
                          ("server", "left"), ("packets", "right"), ("bytes", "right"),
                          ("duration", "right"), ("app", "left"), ("protocols", "left"),
                          ("encryption", "left"), ("remote", "left"), ("via", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for flow in shown:
        table.add_row(*_row(flow))
    console.print(table)
    if len(shown) < len(flows):
        hidden = len(flows) - len(shown)
        console.print(f"  ... {hidden} smaller flows not shown (see --top, --format json)")


def _remote(flow: Flow) -> str:
    r = flow.remote
    if r is None:
        return ""
    if r.scope != "public":
        return r.scope
    where = r.country or "?"
    if r.registered_country and r.registered_country != r.country:
        where += f" (reg. {r.registered_country})"
    return f"{where} AS{r.asn}" if r.asn else where


def _row(flow: Flow) -> list[str]:
    starts = [t for t in (flow.to_server.first_timestamp, flow.to_client.first_timestamp) if t]
    ends = [t for t in (flow.to_server.last_timestamp, flow.to_client.last_timestamp) if t]
    duration = f"{max(ends) - min(starts):.1f}s" if starts and ends else "-"
    return [
        str(flow.id),
        flow.transport,
        _endpoint(flow.client.ip, flow.client.port),
        _endpoint(flow.server.ip, flow.server.port),
        f"{flow.to_server.packets}/{flow.to_client.packets}",
        _size(flow.bytes),
        duration,
        flow.app.name if flow.app else "",
        ",".join(flow.protocols),
        f"{flow.encryption.verdict}/{flow.encryption.termination}" if flow.encryption else "",
        _remote(flow),
        "+".join(flow.encapsulation) or "",
    ]
