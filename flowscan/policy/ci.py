"""`flowscan check` over several captures, as a CI gate: which captures, what each says of
each claim, and what they say together.

A claim holds only if it holds in every capture: one capture that contradicts it is enough
to fail the gate, and one where it cannot be verified keeps it from holding. A capture that
cannot be read is reported and the others are still checked, so one corrupt file does not
hide what the rest show; the run then ends with exit 2, since its answer is incomplete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

from flowscan.capture.source import displayable
from flowscan.errors import CaptureError, UsageError
from flowscan.policy.claims import ClaimResult, check_claims
from flowscan.report.model import Finding, Flow, Report

# What a folder given to `check` is searched for (any case: captures from Windows tools).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")
STDIN = "-"


class Outcome(StrEnum):
    """A claim's status in one capture or over all of them; `unread` is a capture that
    could not be read, so nothing was said about the claim there."""

    HOLDS = "holds"
    CONTRADICTED = "contradicted"
    UNVERIFIABLE = "unverifiable"
    UNREAD = "unread"


class ExitCode(IntEnum):
    """`check`'s exit codes (README, "Exit codes"): bad input wins over a contradiction,
    which wins over an unverifiable claim under --strict."""

    HOLD = 0
    CONTRADICTED = 1
    BAD_INPUT = 2
    UNVERIFIABLE = 3


@dataclass
class CaptureCheck:
    """One capture's answers (or why it could not be read: `error`, and no results)."""

    path: str  # as reports show it (bytes that are not UTF-8 as \\xNN escapes)
    # The path as given, for a URI that finds the file itself (SARIF); shown nowhere raw.
    source: str = ""
    sha256: str | None = None
    size_bytes: int | None = None
    results: list[ClaimResult] = field(default_factory=list)
    # Transfer findings (--home): media leaving the jurisdiction, for the reader; not a gate.
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    # One line per flow a claim names (endpoints, transport, verdict, app): the evidence
    # a CI report shows without the full report at hand.
    flows: dict[int, str] = field(default_factory=dict)

    def outcome(self, claim: str) -> Outcome:
        if self.error is not None:
            return Outcome.UNREAD
        for result in self.results:
            if result.claim == claim:
                return Outcome(result.status)
        raise KeyError(claim)

    def result(self, claim: str) -> ClaimResult | None:
        return next((r for r in self.results if r.claim == claim), None)


@dataclass
class CombinedClaim:
    """One claim over every capture: the captures that contradict it, those where it is
    unverifiable and those that could not be read are named."""

    claim: str
    stated: Any
    status: Outcome
    why: str
    holds_in: list[str] = field(default_factory=list)
    contradicted_in: list[str] = field(default_factory=list)
    unverifiable_in: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)


@dataclass
class CheckRun:
    """Everything a `check` run found: the renderers (text, JSON, JUnit, SARIF) read this."""

    claims: dict[str, Any]
    strict: bool
    captures: list[CaptureCheck] = field(default_factory=list)

    def combined(self) -> list[CombinedClaim]:
        return [_combine(claim, stated, self.captures) for claim, stated in self.claims.items()]

    def exit_code(self) -> ExitCode:
        if any(c.error is not None for c in self.captures):
            return ExitCode.BAD_INPUT
        statuses = {r.status for c in self.captures for r in c.results}
        if Outcome.CONTRADICTED in statuses:
            return ExitCode.CONTRADICTED
        if self.strict and Outcome.UNVERIFIABLE in statuses:
            return ExitCode.UNVERIFIABLE
        return ExitCode.HOLD


def _combine(claim: str, stated: Any, captures: list[CaptureCheck]) -> CombinedClaim:
    by: dict[Outcome, list[str]] = {o: [] for o in Outcome}
    for capture in captures:
        by[capture.outcome(claim)].append(capture.path)
    combined = CombinedClaim(claim, stated, Outcome.HOLDS, "",
                             holds_in=by[Outcome.HOLDS],
                             contradicted_in=by[Outcome.CONTRADICTED],
                             unverifiable_in=by[Outcome.UNVERIFIABLE],
                             unread=by[Outcome.UNREAD])
    parts = []
    if combined.contradicted_in:
        parts.append(f"contradicted in {_names(combined.contradicted_in)}")
    if combined.unverifiable_in:
        parts.append(f"unverifiable in {_names(combined.unverifiable_in)}")
    if combined.unread:
        parts.append(f"not checked in {_names(combined.unread)} (could not be read)")
    if combined.contradicted_in:
        combined.status = Outcome.CONTRADICTED
    elif combined.unverifiable_in or combined.unread or not captures:
        combined.status = Outcome.UNVERIFIABLE
    if combined.holds_in:
        parts.append(f"holds in {_names(combined.holds_in)}")
    combined.why = "; ".join(parts) if parts else "no capture was given"
    return combined


def _names(paths: list[str], limit: int = 8) -> str:
    shown = ", ".join(paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


def is_capture_name(name: str) -> bool:
    return name.lower().endswith(CAPTURE_SUFFIXES)


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """The captures named on the command line, each folder replaced by the captures found
    in it at any depth (sorted, so that every run lists them in the same order); a file
    named twice, directly or through a folder, is checked once.

    A path that does not exist is kept: reading it fails like any unreadable capture, which
    is reported while the others are still checked. A folder with no capture in it, or
    standard input named twice, is a usage error.
    """
    out: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if path == STDIN:
            if STDIN in seen:
                raise UsageError("'-' (standard input) can be given only once")
            found = [STDIN]
        elif os.path.isdir(path):
            found = _captures_in(path)
            if not found:
                raise UsageError(f"{path}: no capture in this folder (looked for "
                                 f"{', '.join('*' + s for s in CAPTURE_SUFFIXES)}, "
                                 "in every subfolder)")
        else:
            found = [path]
        for capture in found:
            key = capture if capture == STDIN else os.path.realpath(capture)
            if key not in seen:
                seen.add(key)
                out.append(capture)
    return out


def _captures_in(folder: str) -> list[str]:
    """Capture files under folder, sorted by their path; symbolic links to folders are not
    followed (a link to a parent would loop), links to files are, and a dangling link is
    kept so that reading it fails aloud. A subfolder that cannot be listed is a usage
    error: skipping it would pass its captures over in silence."""

    def refuse(exc: OSError) -> None:
        raise UsageError(f"{exc.filename or folder}: cannot list folder: "
                         f"{exc.strerror or exc}") from None

    found: list[str] = []
    for root, _dirs, files in os.walk(folder, onerror=refuse):
        found.extend(os.path.join(root, f) for f in files if is_capture_name(f))
    return sorted(found, key=lambda p: Path(p).parts)


def flow_line(flow: Flow) -> str:
    """A flow in one line: id, transport, endpoints, verdict, app and where its remote is
    located (raw strings from the capture: renderers make them inert)."""
    line = (f"flow {flow.id} {flow.transport} {flow.client.ip}:{flow.client.port} <-> "
            f"{flow.server.ip}:{flow.server.port}")
    if flow.encryption is not None:
        line += f", {flow.encryption.verdict} ({flow.encryption.basis})"
    if flow.app is not None:
        line += f", app {flow.app.name}"
    if flow.remote is not None and (flow.remote.country or flow.remote.asn):
        where = [flow.remote.country or "", f"AS{flow.remote.asn}" if flow.remote.asn else ""]
        line += f", remote in {' '.join(w for w in where if w)}"
    return line


def run_checks(captures: Iterable[str], claims: dict[str, Any], strict: bool,
               scan: Callable[[str], Report]) -> CheckRun:
    """Check claims against each capture in turn, keeping only the answers (a report can
    be large; a run over a folder of calls holds one at a time). A capture that cannot be
    read is recorded with its reason; any other error (a bad key option, say) ends the run,
    as it would fail the same way for every capture."""
    run = CheckRun(claims=claims, strict=strict)
    for path in captures:
        try:
            report = scan(path)
        except CaptureError as exc:
            run.captures.append(CaptureCheck(path=displayable(path), source=path,
                                             error=exc.reason))
            continue
        results = check_claims(report, claims)
        named = {i for r in results if r.status != Outcome.HOLDS for i in r.flows}
        run.captures.append(CaptureCheck(
            path=report.capture.path, source=path, sha256=report.capture.sha256,
            size_bytes=report.capture.size_bytes, results=results,
            findings=[f for f in report.findings if f.kind.startswith("foreign-")],
            warnings=list(report.capture.warnings),
            flows={f.id: flow_line(f) for f in report.flows if f.id in named}))
        del report
    return run
