"""flowscan watch: a capture read as it arrives, its flows shown live, the report at the end.

The lab tester sees each flow's verdict, remote and bytes while a call runs, instead of
nothing until the capture ends. The capture is read by the pipeline as `scan` reads it
(pipeline.run with a LiveRead); a viewer thread takes a snapshot of the flows read so far
about once a second (pipeline.snapshot: the later stages up to the observed verdicts, on
copies of the flow records) and shows it as a table on the terminal and/or writes it as
one JSON object a line. When the stream ends, or at Ctrl-C, the report is the one `scan`
gives for the bytes read: snapshots never touch the flows the report is built from.

The input is standard input (`tcpdump -w - | flowscan watch -`) or an interface, read by
dumpcap or tcpdump started here (they need root, or the capture capabilities).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, BinaryIO, cast

import orjson

from flowscan.errors import CaptureError, FlowscanError, UsageError
from flowscan.options import ScanOptions
from flowscan.pipeline import Checked, LiveRead, Snapshot, check_options, run, snapshot
from flowscan.report.answers import plural, size
from flowscan.report.model import Report
from flowscan.report.rows import flow_row
from flowscan.report.sanitize import inert_text, json_inert, json_safe_tree

SCHEMA = "flowscan.watch.snapshot/1"
TOOLS = ("dumpcap", "tcpdump")
# How long a capture tool has to flush and exit after it is told to stop; then the
# capture ends where the reading is.
TOOL_GRACE = 3.0
# After a signal, how long standard input's writer has to end the stream itself: a Ctrl-C
# on `tcpdump -w - | flowscan watch -` reaches both, and tcpdump's last packets follow.
STDIN_GRACE = 1.0
SCREEN_ROWS = 20  # flows in the live table, by bytes
VIEW_SHARE = 3  # the pause after a snapshot, at least, in snapshot durations


class StoppedEmpty(FlowscanError):
    """A signal came before any capture did: there is nothing to report."""


@dataclass
class Watched:
    """What a watch ended with: the report, and whether Ctrl-C ended it."""

    report: Report
    interrupted: bool
    warnings: list[str] = field(default_factory=list)


# --- the capture tool ------------------------------------------------------------------

def capture_tool(choice: str) -> str:
    """The program that captures on an interface: the one asked for, else dumpcap (made
    for this: it only captures), else tcpdump. An error names what is missing."""
    wanted = TOOLS if choice == "auto" else (choice,)
    for tool in wanted:
        if shutil.which(tool):
            return tool
    if choice != "auto":
        raise FlowscanError(f"--capture-tool {choice}: {choice} is not installed")
    raise FlowscanError("watch -i needs dumpcap or tcpdump to capture, and neither is "
                        "installed (Debian: apt install tshark, or tcpdump)")


def tool_command(tool: str, interface: str) -> list[str]:
    """The tool writing a capture of INTERFACE to standard output, each packet as it comes
    (dumpcap flushes every packet to a pipe; tcpdump needs -U and immediate mode)."""
    if tool == "dumpcap":
        return ["dumpcap", "-q", "-i", interface, "-w", "-"]
    return ["tcpdump", "-n", "-U", "--immediate-mode", "-i", interface, "-w", "-"]


class ToolCapture:
    """A capture tool started on an interface, its standard output the capture stream."""

    def __init__(self, tool: str, interface: str) -> None:
        self.tool, self.interface = tool, interface
        # Its messages, for a failure's one line.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        try:
            # Its own session: a Ctrl-C on the terminal reaches flowscan, which stops it
            # and still reads what it flushes.
            self.process = subprocess.Popen(
                tool_command(tool, interface), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=self._errors, bufsize=0,
                start_new_session=True)
        except OSError as exc:
            self._errors.close()
            raise FlowscanError(f"cannot start {tool}: {exc.strerror or exc}") from None
        assert self.process.stdout is not None
        self.stream = cast(BinaryIO, self.process.stdout)

    @property
    def name(self) -> str:
        return f"<{self.tool} -i {self.interface}>"

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def exited(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def failure(self) -> str | None:
        """Why the tool gave no capture, if it failed: its last line of error."""
        if not self.exited(TOOL_GRACE) or self.process.returncode in (0, -signal.SIGTERM):
            return None
        self._errors.seek(0)
        lines = [line.strip() for line in
                 self._errors.read().decode("utf-8", "replace").splitlines() if line.strip()]
        own = [line.removeprefix(f"{self.tool}:").strip() for line in lines
               if line.startswith(f"{self.tool}:")]  # its error comes last
        said = (own or lines or [f"exit code {self.process.returncode}"])[-1]
        hint = "; capturing needs root" if os.geteuid() != 0 else ""
        return (f"{self.tool} could not capture on {self.interface}: {said}{hint}")

    def close(self) -> None:
        self.stop()
        if not self.exited(TOOL_GRACE):
            self.process.kill()
            self.process.wait()
        self._errors.close()


# --- snapshots -------------------------------------------------------------------------

def snapshot_object(snap: Snapshot, started: float, ended: bool) -> dict[str, Any]:
    """One snapshot for machines: when, how much was read, the calls and every flow with
    its current verdict, remote and bytes (the CSV report's columns), and whether the
    flow is still open."""
    report = snap.report
    cap = report.capture
    flows = []
    for flow in sorted(report.flows, key=lambda f: f.id):
        row = flow_row(report, flow)
        del row["capture"], row["sha256"]  # unknown until the stream ends
        remote = flow.remote
        side = (flow.client if remote.which == "client" else flow.server) if remote else None
        flows.append({**row, "packets": flow.packets,
                      "remote_ip": side.ip if side else None,
                      "remote_port": side.port if side else None,
                      "open": flow.id in snap.open_flows})
    answer = report.answers.encryption if report.answers else None
    return {
        "type": "snapshot", "schema": SCHEMA,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "elapsed_s": round(time.monotonic() - started, 3), "ended": ended,
        "capture": {"path": cap.path, "bytes_read": cap.size_bytes, "packets": cap.packets,
                    "bytes": cap.bytes, "first_timestamp": cap.first_timestamp,
                    "last_timestamp": cap.last_timestamp},
        "end_to_end": answer.answer if answer else None,
        "calls": [dataclasses.asdict(s) for s in report.sessions],
        "flows": flows,
    }


def snapshot_line(body: dict[str, Any]) -> bytes:
    """A snapshot as one JSON line, inert as the JSON reports are."""
    try:
        data = orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        data = orjson.dumps(json_safe_tree(body), option=orjson.OPT_APPEND_NEWLINE)
    return json_inert(data)


def screen(body: dict[str, Any], source: str) -> Any:
    """The live table: a heading with the totals and the answer so far, the calls, and
    the flows with the most bytes."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cap = body["capture"]
    state = "ended" if body["ended"] else "live"
    head = Text(f"flowscan watch {inert_text(source, 60)} ({state}, "
                f"{body['elapsed_s']:.0f} s): {plural(cap['packets'], 'packet')}, "
                f"{size(cap['bytes'])}, {plural(len(body['flows']), 'flow')}; media "
                f"end-to-end encrypted: {body['end_to_end'] or 'no media yet'}")
    calls = [Text(f"  call {c['id']}: {inert_text(c['summary'], 300)}", no_wrap=True,
                  overflow="ellipsis") for c in body["calls"][:5]]
    table = Table(box=None, pad_edge=False)
    for column, justify in (("flow", "right"), ("app", "left"), ("remote", "left"),
                            ("where", "left"), ("verdict", "left"), ("bytes", "right"),
                            ("packets", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    shown = sorted(body["flows"], key=lambda f: -f["bytes"])[:SCREEN_ROWS]
    for f in shown:
        remote = f["name"] or (f"{f['remote_ip']}:{f['remote_port']}" if f["remote_ip"]
                               else f"{f['server_ip']}:{f['server_port']}")
        where = " ".join(str(x) for x in (f["remote_country"],
                                          f"AS{f['asn']}" if f["asn"] else None) if x)
        table.add_row(*(Text(inert_text(cell, 48)) for cell in (
            f["id"], f["app"] or "", remote, where,
            f["verdict"] or (f"({f['kind']})" if f["kind"] else ""), size(f["bytes"]),
            f["packets"], "open" if f["open"] else "")))
    rest = len(body["flows"]) - len(shown)
    more = [Text(f"  and {plural(rest, 'more flow')}")] if rest > 0 else []
    return Group(head, *calls, table, *more)


class Viewer:
    """The viewer thread: every `interval` seconds, if anything was read since, a snapshot
    shown on the terminal (rich's Live) and/or written as a JSON line. A failure here
    ends the live view with a warning; the reading and the report go on."""

    def __init__(self, live: LiveRead, checked: Checked, source: str, interval: float,
                 terminal: bool, lines: Callable[[bytes], None] | None) -> None:
        self._live, self._source, self._interval = live, source, interval
        self._checked = checked  # the viewer's own databases, not the reading thread's
        self._lines = lines
        self._screen: Any = None
        if terminal:
            from rich.console import Console
            from rich.live import Live

            self._screen = Live(console=Console(stderr=True), refresh_per_second=4,
                                transient=True)
        self._started = time.monotonic()
        self._seen = -1
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flowscan-watch",
                                        daemon=True)
        self.warnings: list[str] = []

    def __enter__(self) -> Viewer:
        if self._screen is not None:
            self._screen.__enter__()
        if self._screen is not None or self._lines is not None:  # else, nobody looks
            self._thread.start()
        else:
            self._quit.set()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(final=False)
        if self._screen is not None:
            self._screen.__exit__(None, None, None)

    def _loop(self) -> None:
        pause = self._interval
        while not self._quit.wait(pause):
            began = time.monotonic()
            self._show(ended=False)
            # A capture of very many flows makes snapshots slow: the view then takes at
            # most about a quarter of the time, the reading the rest.
            pause = max(self._interval, VIEW_SHARE * (time.monotonic() - began))

    def finish(self, final: bool = True) -> None:
        """Stop the thread; with final, one last snapshot of everything read (the pipeline
        calls this once the stream has ended, before the flows are closed)."""
        if self._quit.is_set():
            return
        self._quit.set()
        self._thread.join()
        if final:
            self._show(ended=True)

    def _show(self, ended: bool) -> None:
        if self._live.batches == self._seen and not ended:
            return
        if self.warnings:  # the view failed once: no more of it
            return
        self._seen = self._live.batches
        try:
            snap = snapshot(self._live, self._checked)
            if snap is None:
                return
            body = snapshot_object(snap, self._started, ended)
            if self._lines is not None:
                self._lines(snapshot_line(body))
            if self._screen is not None:
                self._screen.update(screen(body, self._source), refresh=True)
        except FlowscanError as exc:
            self.warnings.append(f"the live view stopped: {exc}")
        except Exception as exc:  # noqa: BLE001 - the report must not be lost to the view
            self.warnings.append(f"the live view stopped: unexpected "
                                 f"{type(exc).__name__}; the report is complete")


# --- stopping ----------------------------------------------------------------------------

@contextmanager
def _on_interrupt(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call stop() instead of raising mid-batch: the reading ends at
    the next read, and the report is made of what was read."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


class _Stopper:
    """What a signal does. The first stops the capture: the tool is told to exit (what it
    flushed is still read), standard input's writer is given a moment to end the stream.
    A second ends the capture where the reading is; once the stream has ended, it aborts
    the report (KeyboardInterrupt: exit 130), which may be long in the making."""

    def __init__(self, live: LiveRead, capture: ToolCapture | None) -> None:
        self._live, self._capture = live, capture
        self.signals = 0
        self._ended = False

    def read_ended(self) -> None:
        self._ended = True

    def __call__(self) -> None:
        self.signals += 1
        if self.signals > 1:
            if self._ended:
                raise KeyboardInterrupt
            self._live.stop.set()
            return
        if self._capture is not None:
            self._capture.stop()
        threading.Thread(target=_stop_unless_ended, args=(self._capture, self._live),
                         daemon=True).start()


def _stop_unless_ended(capture: ToolCapture | None, live: LiveRead) -> None:
    """A tool that does not exit when told, or a writer that does not end its stream soon
    after the signal, has the capture end where the reading is."""
    if capture is None:
        time.sleep(STDIN_GRACE)
        live.stop.set()
    elif not capture.exited(TOOL_GRACE):
        live.stop.set()


def watch(path: str | None, interface: str | None, tool: str, options: ScanOptions, *,
          interval: float = 1.0, terminal: bool = False,
          lines: Callable[[bytes], None] | None = None) -> Watched:
    """Read the capture on standard input (path "-") or on INTERFACE as it arrives, showing
    snapshots, until it ends or a signal stops it; the report of what was read."""
    if (path is None) == (interface is None):
        raise UsageError("give '-' (a capture on standard input) or -i INTERFACE")
    checked = check_options(options)  # bad keys or databases fail before a tool starts
    capture = ToolCapture(capture_tool(tool), interface) if interface is not None else None
    live = LiveRead(stream=capture.stream if capture is not None else None)
    name = capture.name if capture is not None else "-"

    stopper = _Stopper(live, capture)

    def read_ended() -> None:  # in the reading thread, before the flows are closed
        stopper.read_ended()
        viewer.finish()

    try:
        with _on_interrupt(stopper), Viewer(live, checked, name, interval, terminal,
                                            lines) as viewer:
            live.on_read_end = read_ended
            try:
                report = run(name, options, live=live)
            except CaptureError as exc:
                failed = capture.failure() if capture is not None else None
                if failed is not None:
                    raise FlowscanError(failed) from None
                if stopper.signals and exc.reason == "file is empty":
                    raise StoppedEmpty("stopped before any capture arrived") from None
                raise
    finally:
        if capture is not None:
            capture.close()
    warnings = []
    if live.source is not None and live.source.stopped:
        warnings.append(f"watch was stopped (signal) after {report.capture.size_bytes} bytes "
                        "of a stream that had not ended: the report covers what was read")
        report.capture.warnings += warnings
    # The live view's own troubles are said on stderr only: the report is scan's.
    return Watched(report, bool(stopper.signals), warnings + viewer.warnings)

