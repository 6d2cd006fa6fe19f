"""Scanning many captures: which captures (folders, globs), where each report goes, and
running them one after another or in parallel on Dask workers.

A regulator scans hundreds of captures at once. Each capture is analysed and rendered where
it runs (in this process, or on a Dask worker), and only its rendered report, its summary
counters and, with --tables, its table rows come back: the run never holds every report.
Results are consumed in the order of the captures, whatever order they finish in, so a
parallel run writes the same bytes as a serial one.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flowscan.api import scan
from flowscan.capture import displayable
from flowscan.errors import CaptureError, FlowscanError, UsageError
from flowscan.options import ScanOptions
from flowscan.policy.ci import STDIN, expand_inputs, is_capture_name
from flowscan.report import csv as csv_report
from flowscan.report import json as json_report
from flowscan.report import jsonl as jsonl_report
from flowscan.report.model import Report
from flowscan.report.sanitize import escape_controls
from flowscan.report.summary import CaptureSummary, failed, summarise
from flowscan.report.tables import TableRows, capture_rows, failed_rows
from flowscan.spill import chunks_of, spool

GLOB_CHARS = "*?["
# A report file's extension, by format.
EXTENSIONS = {"json": ".json", "jsonl": ".jsonl", "csv": ".csv", "text": ".txt",
              "html": ".html"}
# Names the run itself writes in the output folder.
SUMMARY_NAMES = ("summary.json", "summary.txt")
HTML_SUMMARY = "summary.html"  # beside the captures' pages, linking to each
NAME_MAX = 200  # characters of a report's file name before it is shortened
# Captures sent to the workers ahead of the one being written, per worker: enough to keep
# every worker busy, few enough that finished reports waiting their turn stay small.
AHEAD_PER_WORKER = 4
# A Dask task's captures: small ones go several to a task (batch.chunks).
CHUNK_MAX = 16
CHUNK_BYTES = 16 << 20
# Seconds the cluster may have no worker at all (none yet, or all died) before the
# captures not yet done fail: Dask would wait for one forever. --worker-wait.
WORKER_WAIT = 30.0
CONNECT_TIMEOUT = 10.0  # seconds for the connection to a --scheduler, and again for its answers
WORKER_POLL = 1.0  # seconds between asking the scheduler, while a result is awaited


def expand(inputs: Sequence[str]) -> list[str]:
    """The captures the command line names, in its order: a file as it is (named twice,
    scanned twice, as before), a folder replaced by the captures in it at every depth (as
    for `check`: policy.ci.expand_inputs), and a glob pattern (`'calls/**/*.pcap'`, quoted
    so the shell leaves it; `**` spans folders) by its matches, sorted by path, folders
    among them expanded. A name that exists is taken as it is, even with * in it; a
    pattern with * or ? that matches nothing is a usage error."""
    out: list[str] = []
    for item in inputs:
        if item == STDIN or (os.path.lexists(item) and not os.path.isdir(item)):
            out.append(item)
        elif os.path.isdir(item):
            out.extend(expand_inputs([item]))
        elif matches := [m for m in glob.glob(item, recursive=True)
                         if os.path.isdir(m) or is_capture_name(m)]:
            out.extend(expand_inputs(sorted(matches, key=lambda p: Path(p).parts)))
        elif "*" in item or "?" in item:
            raise UsageError(f"{item}: no capture or folder matches this pattern")
        else:
            # Missing (a '[' alone is more often part of a name than a pattern): reading
            # it fails aloud, and the others go on.
            out.append(item)
    return out


def summary_names(fmt: str) -> tuple[str, ...]:
    """The names the run writes in the output folder beside the reports."""
    return (*SUMMARY_NAMES, HTML_SUMMARY) if fmt == "html" else SUMMARY_NAMES


def report_names(paths: Sequence[str], fmt: str) -> list[str]:
    """A file name for each capture's report in the output folder: its path relative to
    the folder all the captures share, separators replaced by '__', then the format's
    extension (calls/a/x.pcap -> a__x.pcap.json). Names that would still collide (case
    included, for file systems that ignore it) get -2, -3... in capture order; control
    characters are escaped and long names shortened with a digest, so every name is one
    safe path component."""
    located = [os.path.abspath(p) for p in paths if p != STDIN]
    base = os.path.commonpath([os.path.dirname(p) for p in located]) if located else ""
    used = {name.lower() for name in summary_names(fmt)}
    names: list[str] = []
    ext = EXTENSIONS[fmt]
    for path in paths:
        rel = "stdin" if path == STDIN else os.path.relpath(os.path.abspath(path), base)
        stem = escape_controls(rel).replace(os.sep, "__").replace("/", "__")
        if len(stem) > NAME_MAX:
            digest = hashlib.sha256(os.fsencode(rel)).hexdigest()[:12]
            stem = f"{stem[:NAME_MAX - 13]}-{digest}"
        name, n = stem + ext, 1
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}{ext}"
        used.add(name.lower())
        names.append(name)
    return names


@dataclass(frozen=True)
class RenderSpec:
    """What a worker renders of each report: the format, the text report's --top, and
    whether it also builds table rows."""

    fmt: str
    top: int = 40
    tables: bool = False
    keep_report: bool = False  # in this process only: the report itself, for a terminal
    spool: bool = False  # in this process only: rendered into a spool file, not bytes


@dataclass
class CaptureResult:
    """One capture's result as a worker sends it back: bytes and counters, no report."""

    path: str
    summary: CaptureSummary
    rendered: bytes | IO[bytes] | None = None  # None: the capture could not be read
    rows: TableRows | None = None
    error: str | None = None  # the one-line reason, as printed: "PATH: reason"
    report: Report | None = None


def render(report: Report, spec: RenderSpec) -> bytes:
    """One report, alone, in the chosen format (what `scan CAPTURE --format F` writes)."""
    out = io.BytesIO()
    render_to(report, spec, out)
    return out.getvalue()


def render_to(report: Report, spec: RenderSpec, out: IO[bytes]) -> None:
    """The report written into out as it is rendered: flow by flow for JSON, JSON Lines
    and CSV, so that the output of a large capture is never one string in memory."""
    if spec.fmt == "json":
        json_report.write([report], out)
    elif spec.fmt == "csv":
        csv_report.write([report], out)
    elif spec.fmt == "jsonl":
        jsonl_report.write([report], out)
    elif spec.fmt == "html":
        from flowscan.report import html  # Jinja2, only for HTML

        out.write(html.dumps_bytes([report]))
    else:
        from flowscan.report import text  # rich, only for text

        drawn = io.StringIO()
        text.render([report], drawn, top=spec.top, color=False)
        out.write(drawn.getvalue().encode("utf-8", "backslashreplace"))


def _rendered(report: Report, spec: RenderSpec) -> bytes | IO[bytes]:
    """The rendered report: bytes to send back from a worker, or in this process a spool
    file (spill.spool: memory while small, an unnamed temporary file beyond)."""
    if not spec.spool:
        return render(report, spec)
    out = spool()
    try:
        render_to(report, spec, out)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def analyse(path: str, options: ScanOptions, spec: RenderSpec,
            progress: Callable[[int, int | None], None] | None = None,
            into: IO[bytes] | None = None) -> CaptureResult:
    """Scan one capture and reduce it to what the run keeps; runs on a Dask worker too.
    A capture that cannot be read is a result with its error, not an exception. With
    `into` (a run of one capture in this process), the report is rendered straight into
    that output as it is made, not into a spool file copied there afterwards: that copy
    wrote a large report twice (a million flows' JSON, 2.9 GB: 14 s more)."""
    try:
        report = scan(path, options, progress=progress)
    except CaptureError as exc:
        return failure(path, exc.reason, spec)
    if into is not None:
        render_to(report, spec, into)
        into.flush()
    rendered = b"" if spec.keep_report or into is not None else _rendered(report, spec)
    return CaptureResult(path=report.capture.path, summary=summarise(report),
                         rendered=rendered,
                         rows=capture_rows(report) if spec.tables else None,
                         report=report if spec.keep_report else None)


def failure(path: str, reason: str, spec: RenderSpec) -> CaptureResult:
    """A capture that could not be analysed: its one-line error in the summary, on stderr
    and (with --tables) in the captures table, and no report."""
    shown = displayable(path)
    return CaptureResult(path=shown, summary=failed(shown, reason),
                         rows=failed_rows(shown, reason) if spec.tables else None,
                         error=str(CaptureError(shown, reason)))


def analyse_many(paths: Sequence[str], options: ScanOptions, spec: RenderSpec
                 ) -> list[CaptureResult]:
    """Several small captures in one task: a Dask task costs milliseconds of scheduling
    and transfer, as much as a small capture's whole analysis."""
    return [analyse(path, options, spec) for path in paths]


def chunks(paths: Sequence[str], workers: int) -> list[list[str]]:
    """Consecutive captures grouped into tasks: at most CHUNK_BYTES of capture and
    CHUNK_MAX captures each, and at least AHEAD_PER_WORKER tasks per worker when there are
    captures enough, so that every worker stays busy to the end."""
    per_task = max(1, min(CHUNK_MAX, len(paths) // (workers * AHEAD_PER_WORKER)))
    groups: list[list[str]] = []
    size = 0
    for path in paths:
        try:
            length = os.path.getsize(path)
        except OSError:
            length = 0
        if groups and len(groups[-1]) < per_task and size + length <= CHUNK_BYTES:
            groups[-1].append(path)
            size += length
        else:
            groups.append([path])
            size = length
    return groups


def serial(paths: Sequence[str], options: ScanOptions, spec: RenderSpec,
           progress_for: Callable[[str], Callable[[int, int | None], None] | None]
           | None = None) -> Iterator[CaptureResult]:
    """Each capture in this process, in order."""
    for path in paths:
        yield analyse(path, options, spec, progress_for(path) if progress_for else None)


def distributed(paths: Sequence[str], options: ScanOptions, spec: RenderSpec, *,
                workers: int | None = None, scheduler: str | None = None,
                connect_timeout: float = CONNECT_TIMEOUT, worker_wait: float = WORKER_WAIT
                ) -> Iterator[CaptureResult]:
    """Each capture as a task on Dask: a LocalCluster of `workers` processes, or the
    cluster whose scheduler is at `scheduler`. Results are yielded in path order. When the
    cluster has had no worker for `worker_wait` seconds, the captures not yet done fail
    with one line each (Dask itself would wait for a worker forever)."""
    client, cluster = _connect(workers, scheduler, connect_timeout)
    try:
        yield from _run(client, paths, options, spec, _WorkerWatch(client, worker_wait))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(workers: int | None, scheduler: str | None, connect_timeout: float
             ) -> tuple[Any, Any]:
    """A client of the scheduler at `scheduler`, or of a new LocalCluster (returned too, to
    close it): an unreachable scheduler or a cluster that cannot start is one line."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("-j and --scheduler need dask.distributed: pip install "
                         "'flowscan[dask]'") from None
    import logging

    try:
        if scheduler is not None:
            try:
                return _client_within(Client, scheduler, connect_timeout), None
            except (OSError, TimeoutError, ValueError) as exc:
                raise FlowscanError(f"cannot reach the Dask scheduler at {scheduler}: "
                                    f"{exc}") from None
        # The scheduler's HTTP server starts even without a dashboard, by default on port
        # 8787 of every interface, warning on stderr when that port is taken (a second
        # run, another cluster): any free port of the loopback instead.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        return Client(cluster), cluster
    except FlowscanError:
        raise
    except Exception as exc:  # noqa: BLE001 - Dask raises many kinds; one line for the user
        raise FlowscanError(f"cannot start Dask: {type(exc).__name__}: {exc}") from None


def _client_within(client_type: Any, scheduler: str, connect_timeout: float) -> Any:
    """A client of the scheduler, made in a thread of its own to bound the wait: Dask
    bounds the connection but not its handshake, so a server that accepts and never
    answers (not a Dask scheduler, a stuck one) would hold the run for ever."""
    made: list[Any] = []

    def connect() -> None:
        try:
            made.append(client_type(scheduler, timeout=connect_timeout))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            made.append(exc)

    # A daemon: left blocked on a silent server, it does not hold the exit.
    thread = threading.Thread(target=connect, name="flowscan-dask-connect", daemon=True)
    thread.start()
    bound = 2 * connect_timeout  # the connection, then the scheduler's first answers
    thread.join(bound)
    if not made:
        raise TimeoutError(f"no Dask handshake within {bound:g} s (is a Dask scheduler "
                           "listening there?)")
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class _WorkerWatch:
    """How long the cluster has been without any worker, asked of the scheduler only
    while a result is awaited (WORKER_POLL apart)."""

    def __init__(self, client: Any, grace: float) -> None:
        self.client, self.grace = client, grace
        self.seen = time.monotonic()  # no worker from the start counts from here

    def deserted(self) -> bool:
        """The cluster has had no worker for the grace period."""
        now = time.monotonic()
        if self.client.nthreads():
            self.seen = now
        return now - self.seen >= self.grace


def _run(client: Any, paths: Sequence[str], options: ScanOptions, spec: RenderSpec,
         watch: _WorkerWatch) -> Iterator[CaptureResult]:
    """The tasks submitted a few ahead of the one whose results are yielded."""
    workers_total = max(1, sum(client.nthreads().values()))
    pending: deque[tuple[list[str], Any]] = deque()

    def submit(group: list[str]) -> None:
        pending.append((group, client.submit(analyse_many, group, options, spec,
                                             pure=False)))

    queue = iter(chunks(paths, workers_total))
    for group in itertools.islice(queue, workers_total * AHEAD_PER_WORKER):
        submit(group)
    while pending:
        group, future = pending.popleft()
        results = _gathered(group, future, spec, watch)
        if results is None:
            client.cancel([future, *(f for _, f in pending)])
            reason = f"no Dask worker for {watch.grace:g} s: not scanned"
            for left in itertools.chain([group], (g for g, _ in pending), queue):
                yield from (failure(path, reason, spec) for path in left)
            return
        del future
        nxt = next(queue, None)
        if nxt is not None:
            submit(nxt)
        while results:
            yield results.pop(0)


def _gathered(group: list[str], future: Any, spec: RenderSpec, watch: _WorkerWatch
              ) -> list[CaptureResult] | None:
    """A task's results; None when the cluster has had no worker to run it (or to hold its
    results: they die with their worker) for the watch's grace period. A worker that dies
    (killed, out of memory) takes its tasks with it and Dask runs them again on another;
    only when the task's workers have died more than
    `distributed.scheduler.allowed-failures` times (3 by default) does Dask give up with
    KilledWorker, and then each of its captures fails with one line, the others go on. A
    task lost with the scheduler itself (CancelledError) ends the run."""
    from distributed import KilledWorker

    while True:
        try:
            results: list[CaptureResult] = future.result(timeout=WORKER_POLL)
        except TimeoutError:
            if future.status == "error":
                raise  # the task's own error, not the wait's
            if watch.deserted():
                return None
            continue
        except KilledWorker:
            reason = "Dask gave up on this capture: the workers that ran it died"
            return [failure(path, reason, spec) for path in group]
        except CancelledError:
            raise FlowscanError("the Dask scheduler cancelled the run (did it stop, or "
                                "restart?)") from None
        return results


def indent_json(data: bytes) -> bytes:
    """One report's JSON (orjson, two-space indent) as an element of the array that
    several reports make: every line two spaces further in, no final newline. Strings
    hold no raw newline in JSON, so this equals orjson's rendering of the array."""
    return b"".join(_indented_lines(io.BytesIO(data)))


def _indented_lines(lines: Iterable[bytes]) -> Iterator[bytes]:
    """indent_json line by line, for a report read back from its spool file."""
    pending = b""
    for line in lines:
        if pending:
            yield pending
        pending = b"  " + line
    yield pending.rstrip(b"\n")


class Combined:
    """Reports of several captures as one output (standard output or one file), written as
    each capture finishes: the same bytes as rendering them all at once (a JSON array of
    reports when there are several, one CSV header, text reports a blank line apart)."""

    def __init__(self, fmt: str, write: Callable[[bytes], None]) -> None:
        self.fmt, self._write = fmt, write
        self.count = 0
        self._first: bytes | IO[bytes] | None = None

    def add(self, data: bytes | IO[bytes]) -> None:
        """One report's rendering, bytes or a spool file (closed here once written)."""
        self.count += 1
        if self.fmt == "json":
            if self.count == 1:
                self._first = data  # an object alone, unless another report follows
                return
            if self.count == 2:
                assert self._first is not None
                self._write(b"[\n")
                self._write_indented(self._first)
                self._first = None
            self._write(b",\n")
            self._write_indented(data)
            return
        if self.fmt == "csv" and self.count > 1:
            data = _after_first_line(data)  # the header once, from the first report
        elif self.fmt == "text" and self.count > 1:
            self._write(b"\n")
        self._copy(data)

    def _copy(self, data: bytes | IO[bytes]) -> None:
        for chunk in chunks_of(data):
            self._write(chunk)

    def _write_indented(self, data: bytes | IO[bytes]) -> None:
        if isinstance(data, bytes):
            self._write(indent_json(data))
            return
        with data:  # line by line: the element is as long as its report
            for line in _indented_lines(data):
                self._write(line)

    def close(self) -> None:
        if self.fmt == "json":
            if self._first is not None:
                self._copy(self._first)
            elif self.count > 1:
                self._write(b"\n]\n")


def _after_first_line(data: bytes | IO[bytes]) -> bytes | IO[bytes]:
    if isinstance(data, bytes):
        return data.split(b"\r\n", 1)[1]
    data.readline()
    return data


def write_file(path: str, data: bytes | IO[bytes], what: str = "") -> None:
    """A file written whole under a temporary name, then renamed: nobody (a CI job, an
    analyst) reads half of it. A device or FIFO (/dev/stdout, a pipe) is written in place:
    renaming over it would replace the device node itself."""
    failed = f"{path}: cannot write{' ' + what if what else ''}"
    if os.path.exists(path) and not os.path.isfile(path):
        try:
            with open(path, "wb") as out:
                _copy_into(out, data)
        except OSError as exc:
            raise FlowscanError(f"{failed}: {exc.strerror or exc}") from None
        return
    partial = f"{path}.part"
    try:
        with open(partial, "wb") as out:
            _copy_into(out, data)
        os.replace(partial, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise FlowscanError(f"{failed}: {exc.strerror or exc}") from None


def _copy_into(out: IO[bytes], data: bytes | IO[bytes]) -> None:
    for chunk in chunks_of(data):
        out.write(chunk)
