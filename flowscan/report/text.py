"""The human-readable report: the plain answers first, then a capture summary and a table
of the largest flows, fitting 100 columns when written to a file or a pipe.

Every string from the capture or a file (the capture's path, names, evidence, summaries,
warnings, geodata credits) goes through report.sanitize and into a rich Text, never into
markup: "[/]" in an SNI cannot end the report, "[link=...]" makes no link, "[fe80::1]"
is not taken for a style tag, and no escape sequence or line break reaches the terminal.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from flowscan.report.answers import duration, flow_name, plural, size, when
from flowscan.report.model import Answers, Flow, MediaSession, Report
from flowscan.report.sanitize import LINE_MAX, inert_text

# Files and pipes get a fixed width a reader's terminal or editor shows whole.
FILE_WIDTH = 100
# The table's name column: longer names are shortened there (whole in JSON and CSV).
NAME_MAX = 30
# Flows leaving home listed one a line; the rest are counted (all are in JSON and CSV).
LEAVING_MAX = 12

# An evidence detail is mostly one capture string (an SNI, a name, a SOFTWARE value) in a
# few words: room for the longest DNS name (253) with the address it resolved to.
EVIDENCE_MAX = 320

# A piece of a line: our own words as they are, or (words, rich style).
Piece = str | tuple[str, str]


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
    # A file gets no spaces at the ends of its lines (rich pads tables to their width).
    target = out if color else io.StringIO()
    console = Console(file=target, force_terminal=color, no_color=not color,
                      width=None if color else FILE_WIDTH, highlight=False, soft_wrap=False,
                      markup=False, emoji=False)
    for index, report in enumerate(reports):
        if index:
            console.print()
        _render_one(console, report, top)
    if isinstance(target, io.StringIO) and target is not out:
        out.write("".join(line.rstrip() + "\n" for line in target.getvalue().splitlines()))


def _labelled(console: Console, rows: list[tuple[Text | str, Text]]) -> None:
    """Lines of a label and its text; a text too long for the line wraps under itself, so
    the labels stay a column a reader runs an eye down."""
    if not rows:
        return
    grid = Table.grid(padding=(0, 2), pad_edge=False)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label if isinstance(label, Text) else Text(label), value)
    outer = Table.grid(pad_edge=False)
    outer.add_column(width=2)
    outer.add_column()
    outer.add_row("", grid)
    console.print(outer)


def _answers(answers: Answers, present: set[str]) -> list[tuple[Text | str, Text]]:
    enc, data = answers.encryption, answers.data
    color = {"yes": "green", "no": "red"}.get(enc.answer, "yellow")
    rows: list[tuple[Text | str, Text]] = [
        (Text("end-to-end?", "bold"), _line((_d(enc.sentence), color)))]
    if enc.settle:
        rows.append(("would settle", _line("; or ".join(_d(s) for s in enc.settle))))
    rows.append((Text("data went", "bold"), _line(_d(data.sentence))))
    for leaving in data.leaving[:LEAVING_MAX]:
        name = f" ({_d(leaving.name, NAME_MAX * 2)})" if leaving.name else ""
        verdict = f" {_d(leaving.verdict, 40)}" if leaving.verdict else ""
        rows.append((f"left {_d(data.home, 10)}", _line(
            f"flow {leaving.flow}: {_d(leaving.kind, 20)}{verdict} to "
            f"{_d(', '.join(leaving.countries), 80)}{name}, {size(leaving.bytes)}")))
    if len(data.leaving) > LEAVING_MAX:
        rest = data.leaving[LEAVING_MAX:]
        rows.append((f"left {_d(data.home, 10)}", _line(
            f"and {plural(len(rest), 'more flow')}, {size(sum(f.bytes for f in rest))} "
            "(all in --format json or csv)")))
    for foreign in data.foreign_operators:
        rows.append(("registered", _line(_d(foreign.sentence))))
    for entry in answers.legend:
        if entry.word in present:
            rows.append((f"{_d(entry.word, 40)}", _line(("means ", "dim"), _d(entry.meaning))))
    return rows


def _destinations(report: Report) -> list[tuple[Text | str, Text]]:
    """Countries and operators by bytes, media and signalling apart."""
    if report.answers is None:
        return []
    data = report.answers.data
    rows: list[tuple[Text | str, Text]] = []
    for label, dests in (("countries", data.countries), ("operators", data.operators[:8])):
        parts = []
        for d in dests:
            kinds = [f"{d.media_flows} media" if d.media_flows else "",
                     f"{d.signalling_flows} signalling" if d.signalling_flows else ""]
            split = ", ".join(k for k in kinds if k)
            who = f" {d.name}" if d.name and label == "operators" else ""
            reg = (f", reg. {d.registered_country}"
                   if label == "operators" and d.registered_country else "")
            key = "local/unknown" if d.key == "unlocated" else d.key
            parts.append(f"{key}{who}{reg}: {size(d.bytes)} in "
                         f"{plural(d.flows, 'flow')}" + (f" ({split})" if split else ""))
        if parts:
            more = len(data.operators) - 8 if label == "operators" else 0
            rows.append((label, _line(_d("; ".join(parts) + (
                f"; {more} more (see --format json)" if more > 0 else "")))))
    return rows


def _sessions(sessions: Sequence[MediaSession]) -> list[tuple[Text | str, Text]]:
    """The calls, identical summaries said once: '3 calls like this: ...'."""
    groups: dict[str, list[int]] = {}
    for session in sessions:
        groups.setdefault(session.summary, []).append(session.id)
    rows: list[tuple[Text | str, Text]] = []
    for summary, ids in groups.items():
        if len(ids) == 1:
            rows.append((f"call {ids[0]}", _line(_d(summary))))
        else:
            rows.append((f"calls {_ids(ids)}",
                         _line(f"{len(ids)} calls like this: ", _d(summary))))
    return rows


def _ids(ids: list[int]) -> str:
    """'1-3' for a run, '1, 4, 7' otherwise."""
    if ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(map(str, ids[:6])) + (", ..." if len(ids) > 6 else "")


Rows = list[tuple[Text | str, Text]]  # (label, line) of the labelled block


def _render_one(console: Console, report: Report, top: int) -> None:
    cap = report.capture
    console.print(_line((_d(cap.path), "bold"), "  (", _d(cap.format, 40), ", ",
                        _d(", ".join(cap.link_types) or "-"), ")"))
    _labelled(console, [row for section in SECTIONS for row in section(report)])
    if report.flows:
        _flow_table(console, report, top)


def _answer_rows(report: Report) -> Rows:
    if report.answers is None:
        return []
    present = {f.encryption.verdict for f in report.flows if f.encryption}
    return _answers(report.answers, present)


def _capture_rows(report: Report) -> Rows:
    cap = report.capture
    rows: Rows = [("sha256", _line(_d(cap.sha256, 64)))]
    span = (duration(cap.last_timestamp - cap.first_timestamp)
            if cap.first_timestamp is not None and cap.last_timestamp is not None else "-")
    rows.append(("packets", _line(
        f"{plural(cap.packets, 'packet')} ({size(cap.bytes)}), "
        f"{plural(len(report.flows), 'flow')}, from {when(cap.first_timestamp)} "
        f"to {when(cap.last_timestamp)} ({span})")))
    if cap.decryption_secrets.blocks:
        rows.append(("secrets", _line(
            f"{plural(cap.decryption_secrets.blocks, 'decryption secrets block')}: ",
            _d(", ".join(cap.decryption_secrets.kinds)))))
    for warning in cap.warnings:
        rows.append((Text("warning", "yellow"), _line(_d(warning))))
    return rows


def _app_rows(report: Report) -> Rows:
    by_id = {f.id: f for f in report.flows}
    rows: Rows = []
    for group in report.apps:
        largest = max((by_id[i] for i in group.flows), key=lambda f: (f.bytes, -f.id))
        why = largest.app.evidence[0] if largest.app else None
        rows.append(("app", _line(
            (_d(group.name, 80), "bold"),
            f" ({_d(group.confidence, 40)} confidence): {plural(len(group.flows), 'flow')}, "
            f"{size(group.bytes)}",
            f"; e.g. {_d(why.signal, 80)}: {_d(why.detail, EVIDENCE_MAX)}" if why else "",
        )))
    return rows


def _finding_rows(report: Report) -> Rows:
    rows: Rows = []
    for finding in report.findings:
        color = {"high": "red", "medium": "yellow"}.get(finding.severity, "")
        rows.append(("finding", _line(
            (_d(finding.severity, 40), color), ": ", _d(finding.detail),
            f" (flows {', '.join(map(str, finding.flows[:10]))}"
            f"{', ...' if len(finding.flows) > 10 else ''})",
        )))
    return rows


def _geodata_rows(report: Report) -> Rows:
    credits = sorted({_d(d.attribution) for d in report.geodata if d.attribution})
    return [("geodata", _line("; ".join(credits)))] if credits else []


# The labelled block above the flow table, section by section, in order.
SECTIONS: tuple[Callable[[Report], Rows], ...] = (
    _answer_rows, _capture_rows, _app_rows, lambda report: _sessions(report.sessions),
    _finding_rows, _destinations, _geodata_rows)


def _flow_table(console: Console, report: Report, top: int) -> None:
    """The largest flows (all with top 0), and a note of what was left out."""
    flows = sorted(report.flows, key=lambda f: (-f.bytes, f.id))
    shown = flows if top <= 0 else flows[:top]
    dropped = _print_table(console, shown, report.names)
    notes = []
    if len(shown) < len(flows):
        hidden = len(flows) - len(shown)
        notes.append(f"{plural(hidden, 'smaller flow')} not shown (see --top)")
    if dropped:
        notes.append(f"columns left out for width: {', '.join(dropped)}")
    if notes:
        _labelled(console, [("...", _line(f"{'; '.join(notes)}; every column in --format "
                                          "csv or json"))])


@dataclass(frozen=True)
class _Column:
    name: str
    justify: str
    # Dropped when the table is too wide, highest first; 0: never dropped.
    drop: int
    # Addresses and verdicts are never cut or wrapped: they are what a reader quotes. Other
    # columns may wrap down to squeeze (their width counted as at most that).
    whole: bool = True
    squeeze: int = 0


COLUMNS = (
    _Column("id", "right", 0), _Column("proto", "left", 0),
    _Column("client", "left", 0), _Column("server", "left", 0),
    _Column("packets", "right", 4), _Column("bytes", "right", 0),
    _Column("duration", "right", 3), _Column("app", "left", 2, False, 8),
    _Column("protocols", "left", 5, False, 10), _Column("encryption", "left", 0),
    _Column("remote", "left", 0, False, 12), _Column("via", "left", 6, False, 10),
)
# Addresses stacked in one column (client above server) when side by side they leave too
# little room: IPv6 ends take up to 47 characters each.
STACKED = _Column("client / server", "left", 0)
# The last resort before folding (a narrow terminal, IPv6): each flow a block in one column,
# client, server (and its name), then size, duration, app, verdict and remote on a line that
# wraps between words. Its width counted is the addresses'.
RECORD = _Column("flow", "left", 0, False)
RECORD_FIELDS = ("bytes", "duration", "app", "encryption", "remote")


def _natural(column: _Column, rows: list[dict[str, str]]) -> int:
    if column is RECORD:
        return max([cell_len(column.name)] + [cell_len(line) for row in rows
                                              for line in row[STACKED.name].split("\n")])
    widest = max([cell_len(column.name)] + [cell_len(line) for row in rows
                                           for line in row[column.name].split("\n")])
    return widest if column.whole else min(widest, max(column.squeeze, cell_len(column.name)))


def _needed(columns: list[_Column], rows: list[dict[str, str]], gap: int) -> int:
    return sum(_natural(c, rows) for c in columns) + gap * (len(columns) - 1)


def _layouts(columns: list[_Column]) -> Iterator[tuple[list[_Column], list[str], int]]:
    """Table layouts from the most to the least complete: (columns, dropped, gap). The
    addresses side by side first, then stacked; for each, columns dropped one by one
    (least useful first), each tried with two spaces between columns, then one."""
    order = sorted((c for c in columns if c.drop), key=lambda c: -c.drop)
    for stack in (False, True):
        for count in range(len(order) + 1):
            gone = {c.name for c in order[:count]}
            kept = [c for c in columns if c.name not in gone]
            if stack:
                at = [c.name for c in kept].index("client")
                kept = [c for c in kept if c.name not in ("client", "server")]
                kept.insert(at, STACKED)
            for gap in (2, 1):
                yield kept, [c.name for c in order[:count]], gap
    record = [c for c in columns if c.name in ("id", "proto")] + [RECORD]
    yield record, [c.name for c in columns if c.name in ("packets", "protocols", "via")], 1


def _print_table(console: Console, flows: list[Flow], names: dict[str, list[str]]
                 ) -> list[str]:
    """Draw the flow table within the console's width without cutting an address or a
    verdict: empty columns are left out; then, as needed, the two addresses stack in one
    column, columns of least use go one by one; remote, app and protocols wrap. A flow's
    name (SNI or DNS) is shown under its server's address. Returns the columns left out."""
    rows = [_row(flow, names) for flow in flows]
    for row in rows:
        row[STACKED.name] = f"{row['client']}\n{row['server']}"
        row[RECORD.name] = row[STACKED.name] + "\n" + "  ".join(
            row[name] for name in RECORD_FIELDS if row[name])
    present = [c for c in COLUMNS if c.drop == 0 or any(row[c.name] for row in rows)]
    layouts = list(_layouts(present))
    columns, dropped, gap = next(
        (layout for layout in layouts if _needed(layout[0], rows, layout[2]) <= console.width),
        layouts[-1])
    fits = _needed(columns, rows, gap) <= console.width
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 0, 0, gap),
                  collapse_padding=True)
    for column in columns:
        # Narrower than any layout (a small terminal): even addresses fold, losing nothing.
        table.add_column(column.name, justify=column.justify,  # type: ignore[arg-type]
                         no_wrap=column.whole and fits, overflow="fold")
    for row in rows:
        table.add_row(*(Text(row[c.name]) for c in columns))
    console.print(table)
    return dropped


def _remote(flow: Flow) -> str:
    r = flow.remote
    if r is None:
        return ""
    if r.scope != "public":
        return r.scope
    if r.basis == "unknown":  # the capture point is not known: either end may be the user's
        return "either end"
    where = r.country or "?"
    if r.registered_country and r.registered_country != r.country:
        where += f" (reg. {r.registered_country})"
    return f"{where} AS{r.asn}" if r.asn else where


def _short(name: str | None) -> str:
    """A name for the table: inert, and at most NAME_MAX characters (… marks a cut)."""
    if not name:
        return ""
    shown = _d(name, NAME_MAX * 4)
    return shown if len(shown) <= NAME_MAX else shown[:NAME_MAX - 1] + "…"


def _row(flow: Flow, names: dict[str, list[str]]) -> dict[str, str]:
    """The table cells, each inert plain text (geodata and app names come from files)."""
    starts = [t for t in (flow.to_server.first_timestamp, flow.to_client.first_timestamp) if t]
    ends = [t for t in (flow.to_server.last_timestamp, flow.to_client.last_timestamp) if t]
    return {
        "id": str(flow.id),
        "proto": _d(flow.transport, 20),
        "client": _endpoint(flow.client.ip, flow.client.port),
        # The name the capture gives the server, under its address.
        "server": "\n".join(x for x in (_endpoint(flow.server.ip, flow.server.port),
                                         _short(flow_name(flow, names))) if x),
        "packets": f"{flow.to_server.packets}/{flow.to_client.packets}",
        "bytes": size(flow.bytes),
        "duration": duration(max(ends) - min(starts)) if starts and ends else "-",
        "app": _d(flow.app.name, 40) if flow.app else "",
        "protocols": _d(",".join(flow.protocols), 80),
        # The verdict alone: where encryption ends is in the calls above, CSV and JSON.
        "encryption": _d(flow.encryption.verdict, 40) if flow.encryption else "",
        "remote": _d(_remote(flow), 80),
        "via": _d("+".join(flow.encapsulation), 80),
    }
