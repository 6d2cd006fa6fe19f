"""`flowscan check --sarif FILE`: the claims check as SARIF 2.1.0 (OASIS), the format GitHub
code scanning and other dashboards read.

One run: tool.driver is flowscan with one rule per kind of claim; each capture is an artifact
with its SHA-256 in `hashes`; each contradicted claim in a capture is a result of level
error, each unverifiable one a warning (an error under --strict). A capture that could not
be read is a tool execution notification of level error, and the invocation did not succeed.
With --home, media that leaves the jurisdiction is a result of level note under the rule
`foreign-media`, for the reader: it fails no gate.

Messages go through inert_line (controls, bidi and invisible characters shown as escapes),
the JSON is written ASCII-only, and a capture's URI is percent-encoded: nothing from a file
name or a capture reaches a viewer raw.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from typing import Any

from flowscan import __version__
from flowscan.policy.ci import CaptureCheck, CheckRun, Outcome
from flowscan.policy.claims import DESCRIPTIONS
from flowscan.report.junit import evidence
from flowscan.report.sanitize import inert_line

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FOREIGN_MEDIA = "foreign-media"
_FOREIGN_DESCRIPTION = ("Media leaves the jurisdiction given with --home (a transfer "
                        "finding: informational, it fails no claim).")


def artifact_uri(path: str) -> str:
    """A capture's path as a URI reference: relative paths stay relative (GitHub resolves
    them against the repository), absolute ones become file: URIs; every byte outside the
    unreserved set is percent-encoded."""
    raw = os.fsencode(path)  # a name that is not UTF-8: its own bytes, percent-encoded
    if os.path.isabs(path):
        return "file://" + urllib.parse.quote(raw, safe="/")
    return urllib.parse.quote(raw, safe="/")


def _message(text: str) -> dict[str, str]:
    return {"text": inert_line(text)}


def _location(uri: str, index: int) -> dict[str, Any]:
    # A capture has no lines, but GitHub places an alert only with region.startLine:
    # line 1 stands for the whole file.
    return {"physicalLocation": {"artifactLocation": {"uri": uri, "index": index},
                                 "region": {"startLine": 1}}}


def _fingerprint(rule: str, uri: str, extra: str = "") -> dict[str, str]:
    """Stable over runs (the rule and the capture's path, not its content), so a dashboard
    tracks one alert while the same recording keeps contradicting the same claim."""
    digest = hashlib.sha256(f"{rule}\0{uri}\0{extra}".encode()).hexdigest()[:32]
    return {"flowscanResult/v1": digest}


def _level(run: CheckRun, outcome: Outcome) -> str | None:
    if outcome == Outcome.CONTRADICTED:
        return "error"
    if outcome == Outcome.UNVERIFIABLE:
        return "error" if run.strict else "warning"
    return None


def _results(run: CheckRun, capture: CaptureCheck, index: int, rules: list[str]
             ) -> list[dict[str, Any]]:
    uri = artifact_uri(capture.source or capture.path)
    out: list[dict[str, Any]] = []
    for result in capture.results:
        level = _level(run, Outcome(result.status))
        if level is None:
            continue
        out.append({
            "ruleId": result.claim, "ruleIndex": rules.index(result.claim),
            "level": level, "kind": "fail",
            "message": _message(f"{capture.path}: {evidence(result)}"),
            "locations": [_location(uri, index)],
            "partialFingerprints": _fingerprint(result.claim, uri),
            "properties": {"status": result.status, "stated": result.stated,
                           "flows": result.flows,
                           "flowDetails": [inert_line(capture.flows[i]) for i in result.flows
                                           if i in capture.flows]}})
    for finding in capture.findings:
        out.append({
            "ruleId": FOREIGN_MEDIA, "ruleIndex": rules.index(FOREIGN_MEDIA),
            "level": "note", "kind": "informational",
            "message": _message(f"{capture.path}: {finding.severity}: {finding.detail}"),
            "locations": [_location(uri, index)],
            "partialFingerprints": _fingerprint(FOREIGN_MEDIA, uri, finding.kind),
            "properties": {"severity": finding.severity, "finding": finding.kind,
                           "flows": finding.flows}})
    return out


def _rule(rule_id: str, description: str) -> dict[str, Any]:
    return {"id": rule_id, "name": rule_id, "shortDescription": {"text": description},
            "defaultConfiguration": {"level": "note" if rule_id == FOREIGN_MEDIA
                                     else "error"}}


def render(run: CheckRun) -> bytes:
    """The SARIF log as UTF-8 JSON (ASCII only)."""
    rules = sorted(DESCRIPTIONS)
    if any(c.findings for c in run.captures):
        rules.append(FOREIGN_MEDIA)
    artifacts: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for index, capture in enumerate(run.captures):
        uri = artifact_uri(capture.source or capture.path)
        artifact: dict[str, Any] = {"location": {"uri": uri}, "roles": ["analysisTarget"]}
        if capture.sha256:
            artifact["hashes"] = {"sha-256": capture.sha256}
        if capture.size_bytes is not None:
            artifact["length"] = capture.size_bytes
        artifacts.append(artifact)
        if capture.error is not None:
            notifications.append({
                "level": "error",
                "message": _message(f"{capture.path}: cannot be read: {capture.error}"),
                "locations": [_location(uri, index)]})
        results.extend(_results(run, capture, index, rules))
    code = int(run.exit_code())
    log = {
        "$schema": SCHEMA_URI, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "flowscan", "version": __version__, "semanticVersion": __version__,
                "rules": [_rule(r, DESCRIPTIONS.get(r, _FOREIGN_DESCRIPTION))
                          for r in rules]}},
            "invocations": [{"executionSuccessful": not notifications, "exitCode": code,
                             "toolExecutionNotifications": notifications,
                             "properties": {"strict": run.strict}}],
            "artifacts": artifacts,
            "results": results,
        }]}
    return json.dumps(log, indent=2, ensure_ascii=True).encode("ascii") + b"\n"
