"""Command line: a thin layer over flowscan.api.

click gives subcommands, option parsing and help text; rich draws the tables and the
progress bar. Exit codes: 0 analysed, 1 a policy was violated (claims check), 2 bad input
or usage, 3 a claim unverifiable under `check --strict`.
"""

from __future__ import annotations

import gc
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from flowscan.api import decrypt, scan
from flowscan.errors import CaptureError, FlowscanError, UsageError
from flowscan.geo.locate import UNLOCATED
from flowscan.options import ENGINES, ScanOptions
from flowscan.policy.ci import CaptureCheck, CheckRun
from flowscan.report.model import Report
from flowscan.report.sanitize import inert_line, inert_markup
from flowscan.report.tables import TABLE_FORMATS, TABLES
from flowscan.version import __version__
from flowscan.watch import TOOLS

if TYPE_CHECKING:
    from rich.progress import TaskID

if TYPE_CHECKING:
    from flowscan.policy.ci import CaptureCheck, CheckRun

EXIT_OK = 0
EXIT_POLICY = 1
EXIT_BAD_INPUT = 2
PROGRESS_MIN_BYTES = 8 << 20
FORMATS = ("text", "json", "jsonl", "csv", "html")
# -o's extension names the format when --format is not given ("" : no extension).
EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".txt": "text",
              ".text": "text", ".html": "html", ".htm": "html", "": "text"}


def _text() -> ModuleType:
    """The text renderer, imported when asked for: rich takes ~30 ms to import, and JSON
    runs (CI, benchmarks) need none of it."""
    from flowscan.report import text

    return text


def _error(message: str) -> None:
    click.echo(f"flowscan: error: {inert_line(message)}", err=True)


def _silence_stdout() -> None:
    """Point standard output at /dev/null after it failed (full disk, closed pipe), so the
    interpreter's last flush of what is still buffered reports nothing more."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        sys.stdout = None  # type: ignore[assignment]


class _ReaderGone(Exception):
    """Standard output's reader closed the pipe; main() ends quietly."""


def _echo(line: str) -> None:
    """A line of a command's result on standard output (none when it is closed)."""
    if sys.stdout is not None:
        _stdout_bytes(f"{line}\n".encode("utf-8", "backslashreplace"))


def _stdout_bytes(data: bytes) -> None:
    """Write the report to standard output, a failure there being one line of error."""
    if sys.stdout is None:
        raise FlowscanError("standard output is closed; give -o FILE for the report")
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) went away: not an error. Raised as BrokenPipeError,
        # click would catch it and exit 1, which here means a contradicted claim.
        _silence_stdout()
        raise _ReaderGone from None
    except OSError as exc:
        _silence_stdout()
        raise FlowscanError(f"standard output: cannot write: "
                            f"{exc.strerror or exc}") from None


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal and the file is large."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self._label = label
        self._task: TaskID | None = None

    def __enter__(self) -> _Progress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def __call__(self, done: int, total: int | None) -> None:
        if self._task is None:
            self._task = self._progress.add_task(self._label, total=total)
        self._progress.update(self._task, completed=done)


def _wants_progress(path: str) -> bool:
    if sys.stderr is None or not sys.stderr.isatty() or path == "-":
        return False
    try:
        return os.path.getsize(path) >= PROGRESS_MIN_BYTES
    except OSError:
        return False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowscan")
def cli() -> None:
    """Read VTC packet captures; report media encryption and where data goes."""


def _key_options(command: Callable[..., None]) -> Callable[..., None]:
    """--keylog, --srtp-key and --sdp: shared by scan and decrypt."""
    for option in reversed([
        click.option("--keylog", multiple=True, type=click.Path(dir_okay=False),
                     help="NSS key log file (SSLKEYLOGFILE) with the DTLS secrets; "
                          "repeatable. Secrets blocks in a pcapng are used without it."),
        click.option("--srtp-key", "srtp_key", multiple=True,
                     metavar="TARGET=SUITE:inline:KEY",
                     help="An SRTP master key||salt (base64) for a sender, TARGET being its "
                          "SSRC (0x1234abcd) or IP:PORT; SUITE as in SDES, e.g. "
                          "AES_CM_128_HMAC_SHA1_80. Repeatable."),
        click.option("--sdp", multiple=True, type=click.Path(dir_okay=False),
                     help="An SDP file whose a=crypto lines hold SDES keys; repeatable. SDP "
                          "seen in the capture is used without it."),
    ]):
        command = option(command)
    return command


def _format_option(command: Callable[..., None]) -> Callable[..., None]:
    """--format: shared by scan and watch."""
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="Report format: text, json, jsonl (one JSON object a line), csv (one row per "
             "flow) or html (one self-contained page per capture, with a map). Default: "
             "from the extension of -o (.json, .jsonl, .csv, .html, .txt), else text.")(command)


def _analysis_options(command: Callable[..., None]) -> Callable[..., None]:
    """What the analysis is told, shared by scan and watch: --idle-timeout, --top,
    --geoip-db, the key options, --home and --vantage."""
    options: list[Callable[[Callable[..., None]], Callable[..., None]]] = [
        click.option("--idle-timeout", type=click.FloatRange(min=0.001), default=300.0,
                     show_default=True, help="Seconds of silence after which a flow is "
                                             "closed."),
        click.option("--top", type=click.IntRange(min=0), default=40, show_default=True,
                     help="Flows shown in the text report (0: all)."),
        click.option("--geoip-db", "geoip_db", multiple=True,
                     type=click.Path(dir_okay=False),
                     help="A MaxMind-format database (GeoIP2/GeoLite2, DB-IP, IPinfo) to use "
                          "before the bundled ones; repeatable. Also FLOWSCAN_GEOIP_DB."),
        _key_options,
        click.option("--home", help="Your jurisdiction: a country code (DE), or EU or EEA. "
                     "Flows whose remote is located outside it are foreign; findings "
                     "follow."),
        click.option("--vantage", help="Where the capture was taken: a country code or "
                     "LAT,LON. Locations the round-trip times make impossible are flagged."),
        click.option("--capture-host", "capture_host", multiple=True, metavar="ADDRESS",
                     help="The address of the host the capture was taken at (repeatable: "
                          "its IPv4 and IPv6 addresses), for captures whose traffic cannot "
                          "tell which end is the user's: the other end of its flows is "
                          "their remote (basis 'given')."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command("scan")
@click.argument("captures", nargs=-1, required=True)
@_format_option
@click.option("-o", "--output", type=click.Path(),
              help="Write the report to this file instead of standard output; a folder "
                   "(existing, or named with a trailing /) gets one report per capture as "
                   "each finishes, and summary.json and summary.txt (and summary.html "
                   "with --format html).")
@click.option("--tables", "tables_dir", type=click.Path(file_okay=False),
              help="Also write flows, sessions, findings and captures tables to this "
                   "folder (Parquet; see --tables-format).")
@click.option("--tables-format", type=click.Choice(TABLE_FORMATS), default=None,
              help="parquet (the default; needs pyarrow) or csv.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Analyse captures in parallel on N worker processes (dask.distributed); "
                   "output is the same as a serial run's.")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Send the captures to this existing Dask cluster; its workers open the "
                   "paths as given (a shared path).")
@click.option("--worker-wait", "worker_wait", type=click.FloatRange(min=0), default=None,
              metavar="SECONDS",
              help="With -j or --scheduler: when the cluster has had no worker for this "
                   "long (none yet, or all died), the captures not yet done fail "
                   "(exit 2). Default 30.")
@click.option("--connect-timeout", "connect_timeout", type=click.FloatRange(min=0, min_open=True),
              default=None, metavar="SECONDS",
              help="With --scheduler: how long to wait for the connection to the scheduler; "
                   "its first answers may take as long again. Default 10.")
@click.option("--engine", type=click.Choice([str(e) for e in ENGINES]), default="native",
              show_default=True,
              help="native: flowscan's own reader; tshark: Wireshark's dissectors via pyshark.")
@_analysis_options
def scan_command(captures: tuple[str, ...], fmt: str | None, output: str | None,
                 tables_dir: str | None, tables_format: str | None, jobs: int | None,
                 scheduler: str | None, worker_wait: float | None,
                 connect_timeout: float | None, engine: str,
                 idle_timeout: float, top: int, geoip_db: tuple[str, ...], keylog: tuple[str, ...],
                 srtp_key: tuple[str, ...], sdp: tuple[str, ...], home: str | None,
                 vantage: str | None, capture_host: tuple[str, ...]) -> None:
    """Analyse CAPTURES: files (pcap, pcapng, optionally gzip-compressed; '-' for stdin),
    folders searched at every depth, or quoted glob patterns ('calls/**/*.pcapng')."""
    from flowscan import batch

    folder = _is_folder(output)
    _check_scan_choices(tables_dir, tables_format, jobs, scheduler, worker_wait,
                        connect_timeout)
    paths, fmt, names = _scan_plan(captures, fmt, output, folder, jobs, scheduler,
                                   [*keylog, *sdp], tables_dir, tables_format)
    options = ScanOptions(engine=engine, idle_timeout=idle_timeout, workers=None,
                          geoip_db=geoip_db, home=home, vantage=vantage,
                          capture_host=capture_host, keylog=keylog, srtp_key=srtp_key, sdp=sdp)
    if engine == "native":
        from flowscan.pipeline import check_options

        check_options(options)  # bad keys or key files fail once, before any capture is read
    if folder and output is not None:
        _make_folder(output)
    tables = _table_writer(tables_dir, tables_format)
    to_terminal = (output in (None, "-") and fmt == "text" and sys.stdout is not None
                   and sys.stdout.isatty())
    parallel = scheduler is not None or (jobs or 1) > 1
    direct: _SinkFile | None = None
    spec = batch.RenderSpec(fmt=fmt, top=top, tables=tables is not None,
                            keep_report=to_terminal and not parallel, spool=not parallel)
    bar = _CapturesBar(len(paths)) if len(paths) > 1 and _stderr_terminal() else None
    if parallel:
        wait = batch.WORKER_WAIT if worker_wait is None else worker_wait
        connect = batch.CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        results = batch.distributed(paths, options, spec, workers=jobs, scheduler=scheduler,
                                    connect_timeout=connect, worker_wait=wait)
    else:
        # One capture, one output: its report goes straight there as it is rendered.
        direct = None if folder or len(paths) != 1 or spec.keep_report else _SinkFile(
            _report_sink(output))
        results = _serial_with_bars(paths, options, spec, _progress_for(bar is None, engine),
                                    direct)
    combined = None if folder or direct is not None else batch.Combined(
        fmt, _report_sink(output))
    sink = _ScanSink(top, output if folder else None, names, fmt, tables, combined)
    sink.take_all(results, bar)
    sink.close(home)
    failed = any(s.error is not None for s in sink.summaries)
    sys.exit(EXIT_BAD_INPUT if failed else EXIT_OK)


def _scan_plan(captures: tuple[str, ...], fmt: str | None, output: str | None, folder: bool,
               jobs: int | None, scheduler: str | None, key_files: list[str],
               tables_dir: str | None, tables_format: str | None
               ) -> tuple[list[str], str, list[str]]:
    """The captures, the report format and (in a folder) each report's name, checked
    before any reading: stdin is never sent to workers, and no report overwrites a capture
    or a key file."""
    from flowscan import batch

    paths = batch.expand(captures)
    if (jobs not in (None, 1) or scheduler) and STDIN_NAME in paths:
        raise UsageError("'-' (standard input) cannot be sent to Dask workers; save it to a "
                         "file first")
    if not folder and output is not None and output != "-":
        _refuse_overwriting(dict.fromkeys(paths, "a capture"), [output])
    fmt = report_format(fmt, None if folder else output)  # before any reading
    if fmt == "html" and not folder and len(paths) > 1:
        raise UsageError(f"--format html makes one page per capture: give a folder (-o DIR/) "
                         f"for the {len(paths)} captures")
    names = batch.report_names(paths, fmt) if folder else []
    _refuse_overwriting({**dict.fromkeys(key_files, "a key file"),
                         **dict.fromkeys(paths, "a capture")},
                        _planned(output if folder else None, names, output, tables_dir,
                                 tables_format, fmt))
    return paths, fmt, names


def _progress_for(no_run_bar: bool, engine: str) -> Callable[[str], _Progress | None]:
    """A serial run's byte bar for each large capture, where no bar over the captures is
    drawn and the native engine reads them."""
    def progress_for(path: str) -> _Progress | None:
        use = no_run_bar and engine == "native" and _wants_progress(path)
        return _Progress(inert_markup(path)) if use else None

    return progress_for


def _is_folder(output: str | None) -> bool:
    """-o names a folder: one that exists, or a name with a trailing slash."""
    return output is not None and output != "-" and (
        os.path.isdir(output) or output.endswith(("/", os.sep)))


def _table_writer(tables_dir: str | None, tables_format: str | None) -> Any:
    if not tables_dir:
        return None
    from flowscan.report.tables import TableWriter

    return TableWriter(tables_dir, tables_format or "parquet")


def _check_scan_choices(tables_dir: str | None, tables_format: str | None, jobs: int | None,
                        scheduler: str | None, worker_wait: float | None,
                        connect_timeout: float | None) -> None:
    """Options that go together, or not: a usage error before anything is read."""
    if tables_format is not None and tables_dir is None:
        raise UsageError("--tables-format needs --tables DIR")
    if scheduler is not None and jobs is not None:
        raise UsageError("give -j (a local cluster) or --scheduler (an existing one), not both")
    if scheduler is not None and "://" not in scheduler:
        raise UsageError(f"--scheduler {scheduler}: give the scheduler's address as "
                         "tcp://HOST:PORT")
    if worker_wait is not None and scheduler is None and (jobs or 1) == 1:
        raise UsageError("--worker-wait is for Dask workers: give it with -j N (N > 1) or "
                         "--scheduler")
    if connect_timeout is not None and scheduler is None:
        raise UsageError("--connect-timeout is for an existing Dask cluster: give it with "
                         "--scheduler (-j starts its own cluster, nothing to connect to)")


def _planned(folder: str | None, names: list[str], output: str | None,
             tables_dir: str | None, tables_format: str | None, fmt: str) -> list[str]:
    """Every file the run will write: reports (one per capture and the summaries in a
    folder, else -o's file) and tables."""
    from flowscan import batch

    planned = ([os.path.join(folder, n) for n in [*names, *batch.summary_names(fmt)]]
               if folder else [output] if output and output != "-" else [])
    if tables_dir:
        planned += [os.path.join(tables_dir, f"{t}.{tables_format or 'parquet'}")
                    for t in TABLES]
    return [t for t in planned if t]


def _make_folder(output: str) -> None:
    if os.path.isdir(output):
        return
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as exc:
        raise FlowscanError(f"{output}: cannot make the folder: {exc.strerror or exc}"
                            ) from None


class _ScanSink:
    """Where each capture's result goes as it finishes: a terminal (colour and its width),
    one combined report, or a file of its own in a folder; its rows to the tables; its
    summary kept for the run's."""

    def __init__(self, top: int, folder: str | None, names: list[str], fmt: str,
                 tables: Any, combined: Any) -> None:
        self.top, self.folder, self.names, self.fmt = top, folder, names, fmt
        self.tables, self.combined = tables, combined
        self.summaries: list[Any] = []
        self.shown = 0
        self.warned: dict[str, None] = {}

    def take_all(self, results: Iterable[Any], bar: _CapturesBar | None) -> None:
        """Each capture's result as it finishes, the bar advanced over captures."""
        with bar or nullcontext():
            for index, result in enumerate(results):
                self.take(index, result)
                del result
                if bar is not None:
                    bar.advance()
                # Finished reports hold no reference cycles: out of the cyclic collector's
                # sight, they no longer make it rescan them.
                gc.freeze()

    def take(self, index: int, result: Any) -> None:
        from flowscan import batch

        if result.error is not None:
            _error(result.error)
        elif result.report is not None:  # a terminal: colour and its width
            if self.shown:
                sys.stdout.write("\n")
            _text().render([result.report], sys.stdout, top=self.top, color=True)
            self.shown += 1
        elif self.combined is not None:
            assert result.rendered is not None
            self.combined.add(result.rendered)
        elif self.folder is not None:
            assert result.rendered is not None
            batch.write_file(os.path.join(self.folder, self.names[index]), result.rendered)
        # else: the one capture's report went straight to the output as it was rendered
        if self.tables is not None and result.rows is not None:
            self.tables.add(result.rows)
        self.summaries.append(result.summary)
        self.warned.update(dict.fromkeys(w for w in result.summary.warnings
                                         if w.startswith(UNLOCATED)))
        result.summary.warnings = []

    def close(self, home: str | None) -> None:
        """The warnings said once, not once a capture; the reports, tables and (in a
        folder) the run's summary finished."""
        from flowscan import batch

        for warning in self.warned:
            click.echo(f"flowscan: warning: {warning}", err=True)
        if self.combined is not None:
            self.combined.close()
        if self.tables is not None:
            self.tables.close()
        if self.folder is None:
            return
        from flowscan.report.summary import RunSummary

        summary = RunSummary(self.summaries, home=home)
        batch.write_file(os.path.join(self.folder, "summary.json"), summary.json_bytes())
        text = summary.text()
        batch.write_file(os.path.join(self.folder, "summary.txt"), text.encode())
        if self.fmt == "html":
            from flowscan.report import html

            written = [None if s.error else n
                       for s, n in zip(self.summaries, self.names, strict=True)]
            batch.write_file(os.path.join(self.folder, batch.HTML_SUMMARY),
                             html.summary_page(summary.as_dict(), home, written))
        if sys.stdout is not None and sys.stdout.isatty():
            _echo(text.rstrip("\n"))


STDIN_NAME = "-"
EXIT_STOPPED = 130  # watch: stopped (Ctrl-C) before any capture arrived


@cli.command("watch")
@click.argument("source", required=False, metavar="[-]")
@click.option("-i", "--interface", help="Capture on this interface: flowscan starts dumpcap "
              "or tcpdump (needs root, or their capture capabilities).")
@click.option("--capture-tool", type=click.Choice(["auto", *TOOLS]), default="auto",
              show_default=True, help="With -i: the program that captures (auto: dumpcap, "
                                      "else tcpdump).")
@_format_option
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the final report to this file instead of standard output.")
@click.option("--snapshots", metavar="FILE|-",
              help="Write each refresh as a JSON object (time, totals, calls, flows with "
                   "their current verdict, remote and bytes), one a line, to FILE or '-' "
                   "(standard output). Default: standard output when it is not a terminal "
                   "and -o names the report's file.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between refreshes.")
@_analysis_options
def watch_command(source: str | None, interface: str | None, capture_tool: str,
                  fmt: str | None, output: str | None, snapshots: str | None,
                  interval: float, idle_timeout: float, top: int,
                  geoip_db: tuple[str, ...], keylog: tuple[str, ...],
                  srtp_key: tuple[str, ...], sdp: tuple[str, ...], home: str | None,
                  vantage: str | None, capture_host: tuple[str, ...]) -> None:
    """Watch a live capture: '-' (a pcap or pcapng stream on standard input, as from
    `tcpdump -U -w -`) or -i INTERFACE. The flows are shown with their current verdict,
    remote and bytes, refreshed every --interval seconds (on standard error when it is a
    terminal); when the stream ends, or at Ctrl-C, the report is written as `scan` writes
    it for the bytes read. Exit 0 the report was written (Ctrl-C included), 2 bad input or
    usage, 130 stopped before any capture arrived."""
    from flowscan import batch
    from flowscan.watch import StoppedEmpty, watch

    if source not in (None, STDIN_NAME):
        raise UsageError(f"watch reads a live stream: '-' (standard input) or -i INTERFACE; "
                         f"for the file {source} use flowscan scan")
    if (source is None) == (interface is None):
        raise UsageError("give '-' (a capture on standard input) or -i INTERFACE, one of them")
    if capture_tool != "auto" and interface is None:
        raise UsageError("--capture-tool is for -i INTERFACE; standard input is read as it is")
    to_stdout = output in (None, STDIN_NAME)
    if snapshots is None and not to_stdout and not (sys.stdout and sys.stdout.isatty()):
        snapshots = STDIN_NAME
    if snapshots == STDIN_NAME and to_stdout:
        raise UsageError("--snapshots - and the report would share standard output; give -o "
                         "FILE for the report")
    fmt = report_format(fmt, output)
    _check_outputs([*keylog, *sdp, *geoip_db], {"-o": output if not to_stdout else None,
                                                "--snapshots": snapshots
                                                if snapshots != STDIN_NAME else None})
    options = ScanOptions(idle_timeout=idle_timeout, geoip_db=geoip_db, home=home,
                          vantage=vantage, capture_host=capture_host, keylog=keylog,
                          srtp_key=srtp_key, sdp=sdp)
    try:
        with _snapshot_sink(snapshots) as lines:
            watched = watch(source, interface, capture_tool, options, interval=interval,
                            terminal=_stderr_terminal(), lines=lines)
    except StoppedEmpty as exc:
        _error(str(exc))
        sys.exit(EXIT_STOPPED)
    for warning in watched.warnings:
        click.echo(f"flowscan: warning: {inert_line(warning)}", err=True)
    report = watched.report
    if to_stdout and fmt == "text" and sys.stdout is not None and sys.stdout.isatty():
        _text().render([report], sys.stdout, top=top, color=True)
    else:
        rendered = batch.render(report, batch.RenderSpec(fmt=fmt, top=top))
        if to_stdout:
            _stdout_bytes(rendered)
        else:
            batch.write_file(str(output), rendered, "report")
    sys.exit(EXIT_OK)


@contextmanager
def _snapshot_sink(target: str | None) -> Iterator[Callable[[bytes], None] | None]:
    """Where snapshot lines go: nowhere, standard output, or a file flushed each line."""
    if target is None:
        yield None
    elif target == STDIN_NAME:
        def write_stdout(data: bytes) -> None:
            try:
                _stdout_bytes(data)
            except _ReaderGone:  # the view ends; the report still goes to its file
                raise FlowscanError("standard output was closed") from None

        yield write_stdout
    else:
        try:
            handle = open(target, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise FlowscanError(f"{target}: cannot write snapshots: "
                                f"{exc.strerror or exc}") from None

        def write(data: bytes) -> None:
            handle.write(data)
            handle.flush()

        with handle:
            yield write


def _refuse_overwriting(inputs: dict[str, str], outputs: list[str]) -> None:
    """No report may be written over a capture or a key file: each input's file identity
    is taken once (a run names hundreds of captures and as many reports)."""
    identities: dict[tuple[int, int], str] = {}
    for path, what in inputs.items():
        with suppress(OSError, ValueError):
            if path != STDIN_NAME:
                st = os.stat(path)
                identities.setdefault((st.st_dev, st.st_ino), f"{what} ({path})")
    for target in outputs:
        try:
            st = os.stat(target)
        except (OSError, ValueError):
            continue
        if (st.st_dev, st.st_ino) in identities:
            raise FlowscanError(f"{target}: the report would overwrite "
                                f"{identities[(st.st_dev, st.st_ino)]}")


def _stderr_terminal() -> bool:
    return sys.stderr is not None and sys.stderr.isatty()


def _serial_with_bars(paths: list[str], options: ScanOptions, spec: object,
                      progress_for: Callable[[str], _Progress | None],
                      direct: _SinkFile | None = None) -> Iterator[Any]:
    """The serial run, each large capture's byte bar drawn while it is read; with
    `direct`, the one capture's report rendered straight into it."""
    from flowscan import batch

    assert isinstance(spec, batch.RenderSpec)
    for path in paths:
        bar = progress_for(path)
        with bar or nullcontext():
            into = None if direct is None else io.BufferedWriter(direct, SINK_BUFFER)
            yield batch.analyse(path, options, spec, bar, into)


SINK_BUFFER = 1 << 20  # bytes of a report gathered before each write to its output


class _SinkFile(io.RawIOBase):
    """A report's output (_report_sink: standard output, or a file opened at the first
    write) as a file the renderers write into."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        super().__init__()
        self._write = write

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._write(chunk)
        return len(chunk)


class _CapturesBar:
    """One bar over the captures of a run, on stderr (only on a terminal)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress("captures", BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=Console(stderr=True),
                                  transient=True)
        self._task = self._progress.add_task("captures", total=total)

    def __enter__(self) -> _CapturesBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def advance(self) -> None:
        self._progress.advance(self._task)


def _report_sink(output: str | None) -> Callable[[bytes], None]:
    """Where a combined report goes: standard output, or a file opened at the first write
    (no file when no capture could be read, as before)."""
    if output is None or output == "-":
        return _stdout_bytes
    handle: list[Any] = []

    def write(data: bytes) -> None:
        try:
            if not handle:
                handle.append(open(output, "wb"))  # noqa: SIM115 - closed at exit
            handle[0].write(data)
            handle[0].flush()
        except OSError as exc:
            raise FlowscanError(f"{output}: cannot write report: "
                                f"{exc.strerror or exc}") from None

    return write


@cli.command("decrypt")
@click.argument("capture")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The pcapng to write, SRTP and SRTCP replaced by RTP and RTCP in the clear.")
@_key_options
def decrypt_command(capture: str, output: str, keylog: tuple[str, ...],
                    srtp_key: tuple[str, ...], sdp: tuple[str, ...]) -> None:
    """Decrypt the media of CAPTURE with its keys; every authentication tag is verified and
    only packets whose tag verifies are replaced. Exit 1 when nothing could be decrypted."""
    if output == "-":
        raise FlowscanError("-o -: the decrypted capture needs a file name (standard output "
                            "carries the summary); /dev/stdout if you mean it")
    try:
        report = decrypt(capture, output, keylog=keylog, srtp_key=srtp_key, sdp=sdp)
    except FlowscanError as exc:
        _error(str(exc))
        sys.exit(EXIT_BAD_INPUT)
    done = [(f, f.encryption.decryption) for f in report.flows
            if f.encryption and f.encryption.decryption]
    for flow, d in done:
        _echo(f"flow {flow.id} {flow.client.ip}:{flow.client.port} <-> "
              f"{flow.server.ip}:{flow.server.port}: {d.packets_decrypted} packets "
              f"decrypted, {d.tag_failures} failed authentication; inside: {d.inner} "
              f"(key {d.key_sha256} from {d.key_source})")
    for warning in report.capture.warnings:
        click.echo(f"warning: {inert_line(warning)}", err=True)
    decrypted = sum(d.packets_decrypted for _, d in done)
    _echo(f"{output}: {decrypted} packets in the clear")
    if not decrypted:
        _error("nothing was decrypted: no key matches this capture's media (give --keylog, "
               "--srtp-key or --sdp; a pcapng's decryption secrets blocks count too)")
    sys.exit(EXIT_OK if decrypted else EXIT_POLICY)


@cli.command("crosscheck")
@click.argument("captures", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--idle-timeout", type=click.FloatRange(min=0.001), default=300.0,
              show_default=True, help="Seconds of silence after which a flow is closed.")
def crosscheck_command(captures: tuple[str, ...], fmt: str, idle_timeout: float) -> None:
    """Compare flowscan's flow table with Wireshark's dissectors (tshark), flow by flow:
    packets and bytes. Exit 1 if any capture's tables differ."""
    import dataclasses
    import json

    from flowscan.crosscheck import crosscheck

    results = [crosscheck(path, idle_timeout=idle_timeout) for path in captures]
    if fmt == "json":
        _echo(json.dumps([dataclasses.asdict(r) | {"agree": r.agree} for r in results],
                         indent=2))
    else:
        for r in results:
            _echo(f"{inert_line(r.path)}  sha256 {r.sha256}")
            _echo(f"  {'agree' if r.agree else 'DIFFER'}: {r.flows[0]} flows native, "
                  f"{r.flows[1]} tshark; packets {r.packets[0]}/{r.packets[1]}, bytes "
                  f"{r.bytes[0]}/{r.bytes[1]}, IP packets {r.ip_packets[0]}/{r.ip_packets[1]}")
            for d in r.differences:
                transport, cip, cport, sip, sport, encap = d.flow
                tunnels = f" in {'/'.join(encap)}" if encap else ""
                _echo(f"  {transport} {cip}:{cport} <-> {sip}:{sport}{tunnels}: {d.measure} "
                      f"{d.native} native, {d.tshark} tshark")
            for warning in r.tshark_warnings:
                _echo(f"  tshark: {inert_line(warning)}")
    sys.exit(EXIT_OK if all(r.agree for r in results) else EXIT_POLICY)


@cli.command("check")
@click.argument("captures", nargs=-1, required=True)
@click.option("--claims", "claims_path", required=True, type=click.Path(dir_okay=False),
              help="TOML file with a [claims] table (see README).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="What is written on standard output.")
@click.option("--strict", is_flag=True,
              help="An unverifiable claim fails too (exit 3 when nothing is contradicted).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
              help="Also write a JUnit XML report: a test case per claim and capture.")
@click.option("--sarif", "sarif_path", type=click.Path(dir_okay=False),
              help="Also write a SARIF 2.1.0 log (GitHub code scanning).")
@click.option("--geoip-db", "geoip_db", multiple=True, type=click.Path(dir_okay=False),
              help="A MaxMind-format database to use before the bundled ones; repeatable.")
@_key_options
@click.option("--home", help="Your jurisdiction: a country code (DE), or EU or EEA. Media "
              "leaving it is listed with each capture (it fails no claim).")
@click.option("--capture-host", "capture_host", multiple=True, metavar="ADDRESS",
              help="The address of the host the captures were taken at (repeatable), for "
                   "captures whose traffic cannot tell which end is the user's.")
def check_command(captures: tuple[str, ...], claims_path: str, fmt: str, strict: bool,
                  junit_path: str | None, sarif_path: str | None, geoip_db: tuple[str, ...],
                  keylog: tuple[str, ...], srtp_key: tuple[str, ...], sdp: tuple[str, ...],
                  home: str | None, capture_host: tuple[str, ...]) -> None:
    """Check a vendor's claims against CAPTURES (files, or folders searched for captures).

    A claim holds only if it holds in every capture. Exit 0 all hold, 1 a claim is
    contradicted, 2 bad input (a capture that cannot be read: the others are still
    checked), 3 a claim is unverifiable under --strict."""
    from flowscan.pipeline import check_options
    from flowscan.policy.ci import expand_inputs, run_checks
    from flowscan.policy.claims import geodata_for, load_claims

    claims = load_claims(claims_path)  # a UsageError naming the file and line if bad
    geodata_for(claims, geoip_db)  # a location claim without databases: exit 2, before reading
    paths = expand_inputs(captures)
    _check_outputs([*paths, claims_path, *keylog, *sdp],
                   {"--junit": junit_path, "--sarif": sarif_path})
    options = ScanOptions(workers=None, geoip_db=geoip_db, home=home, keylog=keylog,
                          srtp_key=srtp_key,
                          sdp=sdp, capture_host=capture_host)
    check_options(options)  # bad keys or key files fail once, before any capture is read

    def scan_one(path: str) -> Report:
        bar = _Progress(inert_markup(path)) if _wants_progress(path) else None
        try:
            with bar or nullcontext():
                return scan(path, options, progress=bar)
        except CaptureError as exc:
            _error(str(exc))  # one line now; the run goes on with the other captures
            raise

    run = run_checks(paths, claims, strict, scan_one)
    from flowscan.batch import write_file

    if junit_path:
        from flowscan.report import junit

        write_file(junit_path, junit.render(run), "JUnit report")
    if sarif_path:
        from flowscan.report import sarif

        write_file(sarif_path, sarif.render(run), "SARIF log")
    _echo(_check_json(run) if fmt == "json" else _check_text(run))
    sys.exit(int(run.exit_code()))


def _check_outputs(inputs: list[str], outputs: dict[str, str | None]) -> None:
    """Report files are refused before any capture is read when they cannot be what was
    meant: '-' (standard output carries the answers), one file for both reports, or a
    report written over a capture, the claims or a key file (the evidence)."""
    given = {option: output for option, output in outputs.items() if output}
    for option, output in given.items():
        if output == "-":
            raise UsageError(f"{option} -: the report needs a file name (standard output "
                             "carries the check's answers); /dev/stdout if you mean it")
    if len({os.path.realpath(output) for output in given.values()}) < len(given):
        raise UsageError(f"{' and '.join(given)} name the same file; give each its own")
    for option, output in given.items():
        if not os.path.exists(output):
            continue
        for path in inputs:
            if path != "-" and os.path.exists(path) and os.path.samefile(path, output):
                raise FlowscanError(f"{option} {output}: the report would overwrite {path}")


def _check_text(run: CheckRun) -> str:
    """Per capture, each claim's answer; with several captures, the claims over all."""
    lines: list[str] = []
    for capture in run.captures:
        if capture.error is not None:
            lines.append(f"{inert_line(capture.path)}  not read: {inert_line(capture.error)}")
            continue
        lines.append(f"{inert_line(capture.path)}  sha256 {capture.sha256}")
        for r in capture.results:
            flows = f" (flows {', '.join(map(str, r.flows[:12]))})" if r.flows else ""
            stated, why = inert_line(repr(r.stated)), inert_line(r.why)
            lines.append(f"  {r.status:13} {r.claim} = {stated}: {why}{flows}")
        for finding in capture.findings:
            lines.append(f"  finding {finding.severity} {finding.kind}: "
                         f"{inert_line(finding.detail)}")
        for warning in capture.warnings:
            lines.append(f"  warning: {inert_line(warning)}")
    if len(run.captures) > 1:
        lines.append(f"all {len(run.captures)} captures"
                     + (" (--strict: unverifiable fails)" if run.strict else ""))
        for c in run.combined():
            lines.append(f"  {c.status:13} {c.claim} = {inert_line(repr(c.stated))}: "
                         f"{inert_line(c.why)}")
    return "\n".join(lines)


def _check_json(run: CheckRun) -> str:
    """One object: the claims over all captures, then each capture's answers. ASCII only,
    so nothing from a file name or a capture reaches a terminal raw."""
    import dataclasses
    import json

    def capture(c: CaptureCheck) -> dict[str, object]:
        return {"capture": c.path, "sha256": c.sha256, "error": c.error,
                "claims": [dataclasses.asdict(r) for r in c.results],
                "flows": {str(i): line for i, line in sorted(c.flows.items())},
                "findings": [dataclasses.asdict(f) for f in c.findings],
                "warnings": c.warnings}

    return json.dumps({
        "tool": {"name": "flowscan", "version": __version__},
        "strict": run.strict, "exit_code": int(run.exit_code()),
        "claims": [{**dataclasses.asdict(c), "status": str(c.status)} for c in run.combined()],
        "captures": [capture(c) for c in run.captures]}, indent=2, ensure_ascii=True)


@cli.group("lab")
def lab_group() -> None:
    """Reference scenarios with ground truth, made by real stacks in network namespaces."""


@lab_group.command("list")
def lab_list() -> None:
    """Name every scenario and what it shows."""
    from flowscan.lab.scenarios import SCENARIOS, missing_for_any

    width = max(map(len, SCENARIOS))
    for name, scenario in SCENARIOS.items():
        _echo(f"{name:{width}} {scenario.summary}")
    lacking = missing_for_any()
    if lacking:
        click.echo(f"flowscan: note: to run them, this machine also needs {lacking}", err=True)


@lab_group.command("run")
@click.argument("scenario")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), required=True,
              help="Folder for capture.pcapng, capture-dsb.pcapng, keys.log, manifest.json.")
def lab_run(scenario: str, output: str) -> None:
    """Run SCENARIO (needs root) and write its capture and manifest to OUTPUT."""
    from pathlib import Path

    from flowscan.lab.netns import LabError
    from flowscan.lab.scenarios import run_scenario

    try:
        out = run_scenario(scenario, Path(output))
    except LabError as exc:
        raise FlowscanError(f"lab: {exc}") from None
    _echo(f"{scenario}: wrote {out}")


def report_format(fmt: str | None, output: str | None) -> str:
    """The report's format: --format when given; else -o's extension (.json, .csv; .txt
    or none: text); an extension naming no format is an error, not a text file under a
    name that promises something else (a .pdf, which flowscan does not write)."""
    if fmt is not None:
        return fmt
    if output is None or output == "-":
        return "text"
    suffix = os.path.splitext(output)[1].lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    raise FlowscanError(
        f"{output}: no report format is known for the extension {suffix}; name the file "
        f".json, .jsonl, .csv, .html or .txt, or give --format ({', '.join(FORMATS)})")


def _usage_line(exc: click.UsageError) -> str:
    """Click's usage error as one line: its message, then where the help is."""
    message = exc.format_message().strip().rstrip(".").replace(". (", " (")
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) or message == "Missing command":
        group = exc.ctx.command if exc.ctx is not None else cli
        names = ", ".join(getattr(group, "commands", {}))
        message = f"missing command ({names})" if names else "missing command"
    elif message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    path = exc.ctx.command_path if exc.ctx is not None else "flowscan"
    return f"{message}; try '{path} --help'"


def _unexpected(exc: BaseException) -> str:
    """Names the exception's type and where flowscan raised it, never its message: that
    can quote a key or a line of a key log."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "flowscan" in f.filename.replace(os.sep, "/").split("/")]
    where = ""
    if frames:
        parts = frames[-1].filename.replace(os.sep, "/").split("/")
        where = f" in {'/'.join(parts[parts.index('flowscan'):])}:{frames[-1].lineno}"
    return (f"unexpected failure ({type(exc).__name__}{where}); please report this "
            "(FLOWSCAN_DEBUG=1 shows the traceback)")


def _run() -> int:
    """The command's exit code; every failure printed as one line on stderr."""
    try:
        result = cli.main(prog_name="flowscan", standalone_mode=False)
        return result if isinstance(result, int) else EXIT_OK
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except click.UsageError as exc:
        _error(_usage_line(exc))
    except click.ClickException as exc:
        _error(exc.format_message())
    except (click.exceptions.Abort, KeyboardInterrupt):
        return 130
    except FlowscanError as exc:
        _error(str(exc))
    except (_ReaderGone, BrokenPipeError):
        _silence_stdout()  # the reader (head, less) went away: nothing more to say
        return EXIT_OK
    except UnicodeDecodeError as exc:
        _error(f"a file given is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:  # a full disk or a failing device, met outside the checks
        _silence_stdout()
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or type(exc).__name__}")
    except Exception as exc:  # one line for the user, never a traceback
        if os.environ.get("FLOWSCAN_DEBUG"):
            raise
        _error(_unexpected(exc))
    return EXIT_BAD_INPUT


def main() -> None:
    """Entry point: every failure is one line on stderr and exit 2, never a traceback."""
    code = _run()
    try:  # what is still buffered fails here, if anywhere: one line for that too
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        _silence_stdout()
        _error(f"standard output: {exc.strerror or exc}")
        code = EXIT_BAD_INPUT
    sys.exit(code)


if __name__ == "__main__":
    main()
