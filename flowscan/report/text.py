"""The human-readable report: a capture summary and a table of the largest flows.

Every string from the capture or a file (the capture's path, names, evidence, summaries,
warnings, geodata credits) goes through report.sanitize and into a rich Text, never into
markup: "[/]" in an SNI cannot end the report, "[link=...]" makes no link, "[fe80::1]"
is not taken for a style tag, and no escape sequence or line break reaches the terminal.
"""

from __future__ import annotations

import datetime as dt
from typing import TextIO

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from flowscan.report.model import Flow, Report
from flowscan.report.sanitize import LINE_MAX, inert_text

# An evidence detail is mostly one capture string (an SNI, a name, a SOFTWARE value) in a
# few words: room for the longest DNS name (253) with the address it resolved to.
EVIDENCE_MAX = 320

# A piece of a line: our own words as they are, or (words, rich style).
Piece = str | tuple[str, str]


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


def _d(s: object, max_len: int = LINE_MAX) -> str:
    """Data from the capture or a file, made inert; sentences the analysis composed around
    capture strings get the longer limit, so they are bounded but not cut short."""
    return inert_text(s, max_len)


def _line(*pieces: Piece) -> Text:
    """One report line assembled from plain pieces: nothing in it is parsed as markup."""
    return Text.assemble(*pieces)


def _endpoint(ip: str, port: int) -> str:
    return f"[{_d(ip)}]:{port}" if ":" in ip else f"{_d(ip)}:{port}"


def render(reports: list[Report], out: TextIO, *, top: int = 40, color: bool = False) -> None:
    """Draw the reports on out; color=True writes terminal styles (and only styles: the
    data in them is inert either way)."""
    # A terminal's own width when drawing to one; a fixed width for files and pipes.
    console = Console(file=out, force_terminal=color, no_color=not color,
                      width=None if color else 160, highlight=False, soft_wrap=False,
                      markup=False, emoji=False)
    for index, report in enumerate(reports):
        if index:
            console.print()
        _render_one(console, report, top)


def _render_one(console: Console, report: Report, top: int) -> None:
    cap = report.capture
    console.print(_line((_d(cap.path), "bold"), "  (", _d(cap.format, 40), ", ",
                        _d(", ".join(cap.link_types) or "-"), ")"))
    console.print(_line("  sha256   ", _d(cap.sha256, 64)))
    duration = (
        f"{cap.last_timestamp - cap.first_timestamp:.3f} s"
        if cap.first_timestamp is not None and cap.last_timestamp is not None else "-"
    )
    console.print(_line(
        f"  packets  {cap.packets} ({_size(cap.bytes)}), {len(report.flows)} flows, "
        f"from {_when(cap.first_timestamp)} for {duration}"
    ))
    if cap.decryption_secrets.blocks:
        console.print(_line(
            f"  secrets  {cap.decryption_secrets.blocks} decryption secrets block(s): ",
            _d(", ".join(cap.decryption_secrets.kinds)),
        ))
    for warning in cap.warnings:
        console.print(_line("  ", ("warning", "yellow"), "  ", _d(warning)))
    by_id = {f.id: f for f in report.flows}
    for group in report.apps:
        largest = max((by_id[i] for i in group.flows), key=lambda f: (f.bytes, -f.id))
        why = largest.app.evidence[0] if largest.app else None
        console.print(_line(
            "  app      ", (_d(group.name, 80), "bold"),
            f" ({_d(group.confidence, 40)} confidence): {len(group.flows)} flows, "
            f"{_size(group.bytes)}",
            f"; e.g. {_d(why.signal, 80)}: {_d(why.detail, EVIDENCE_MAX)}" if why else "",
        ))
    for session in report.sessions:
        console.print(_line(f"  call {session.id:<3} ", _d(session.summary)))
    for finding in report.findings:
        color = {"high": "red", "medium": "yellow"}.get(finding.severity, "")
        console.print(_line(
            "  finding  ", (_d(finding.severity, 40), color), ": ", _d(finding.detail),
            f" (flows {', '.join(map(str, finding.flows[:10]))})",
        ))
    credits = sorted({_d(d.attribution) for d in report.geodata if d.attribution})
    if credits:
        console.print(_line("  geodata  ", "; ".join(credits)))
    if not report.flows:
        return
    flows = sorted(report.flows, key=lambda f: (-f.bytes, f.id))
    shown = flows if top <= 0 else flows[:top]
    rows = [_row(flow) for flow in shown]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, (name, justify) in enumerate((
            ("id", "right"), ("proto", "left"), ("client", "left"), ("server", "left"),
            ("packets", "right"), ("bytes", "right"), ("duration", "right"), ("app", "left"),
            ("protocols", "left"), ("encryption", "left"), ("remote", "left"),
            ("via", "left"))):
        if name in ("client", "server"):
            # An address (IPv6 with its port: up to 47 characters) is kept on one line
            # while other columns can give way; where even that cannot fit, it folds.
            widest = max(len(row[index]) for row in rows)
            table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                             min_width=max(widest, len(name)), overflow="fold")
        else:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    _print_table(console, table)
    if len(shown) < len(flows):
        hidden = len(flows) - len(shown)
        console.print(_line(f"  ... {hidden} smaller flows not shown (see --top, --format json)"))


def _print_table(console: Console, table: Table) -> None:
    """Draw the table without cutting an address. In a file or pipe a table wider than the
    fixed width is drawn at its natural width, so no column is cut. On a terminal the
    table fits the screen: other columns give way to the addresses, and when the
    addresses alone leave too little room they fold onto a second line, whole."""
    if not console.is_terminal:
        need = Measurement.get(console, console.options.update(max_width=1 << 16),
                               table).maximum
        if need <= console.width:
            console.print(table)
        else:
            Console(file=console.file, width=need, no_color=True, highlight=False,
                    soft_wrap=False, markup=False, emoji=False).print(table)
        return
    addresses = [c for c in table.columns if c.no_wrap]
    others = len(table.columns) - len(addresses)
    # Room for the addresses, the two spaces between columns, and 4 characters for each
    # other column (enough for "udp", "1/0" or "US…"); otherwise fold the addresses.
    need = sum(c.min_width or 0 for c in addresses) + 2 * (len(table.columns) - 1) + 4 * others
    if need > console.width:
        for column in addresses:
            column.no_wrap, column.min_width = False, None
    console.print(table)


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
    """The table cells, each inert plain text (geodata and app names come from files)."""
    starts = [t for t in (flow.to_server.first_timestamp, flow.to_client.first_timestamp) if t]
    ends = [t for t in (flow.to_server.last_timestamp, flow.to_client.last_timestamp) if t]
    duration = f"{max(ends) - min(starts):.1f}s" if starts and ends else "-"
    return [
        str(flow.id),
        _d(flow.transport, 20),
        _endpoint(flow.client.ip, flow.client.port),
        _endpoint(flow.server.ip, flow.server.port),
        f"{flow.to_server.packets}/{flow.to_client.packets}",
        _size(flow.bytes),
        duration,
        _d(flow.app.name, 40) if flow.app else "",
        _d(",".join(flow.protocols), 80),
        _d(f"{flow.encryption.verdict}/{flow.encryption.termination}", 60)
        if flow.encryption else "",
        _d(_remote(flow), 80),
        _d("+".join(flow.encapsulation), 80),
    ]
