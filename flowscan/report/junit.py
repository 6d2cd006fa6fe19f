"""`flowscan check --junit FILE`: the claims check as JUnit XML, the test report format
that GitLab, Jenkins, Azure Pipelines and most CI systems show.

One testsuite; one testcase per claim and capture, its classname the capture and its name
the claim. A contradicted claim is a <failure> carrying the evidence (why, and the flows);
an unverifiable one is <skipped>, or a <failure> under --strict; a capture that could not
be read gives an <error> for each claim.

Every string from a capture or a file (a capture's name, the evidence) goes through
inert_line, which shows controls, bidi and other invisible characters as escapes, so none
is left that XML 1.0 forbids; a last filter removes any that would still be there. The
document is built with xml.etree, which escapes markup: a file name cannot add elements.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from flowscan import __version__
from flowscan.policy.ci import CaptureCheck, CheckRun, Outcome
from flowscan.policy.claims import ClaimResult
from flowscan.report.sanitize import inert_line

# Characters XML 1.0 forbids (section 2.2): C0 controls but tab, LF and CR; surrogates;
# U+FFFE and U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
SUITE = "flowscan check"


def xml_text(s: object) -> str:
    """A string for an XML attribute or text node: one inert line, nothing XML forbids."""
    return _XML_FORBIDDEN.sub("\ufffd", inert_line(s))


def evidence(result: ClaimResult) -> str:
    """The claim, its status, why, and the flows: the message of a failure or a skip."""
    flows = f" (flows {', '.join(map(str, result.flows))})" if result.flows else ""
    return f"{result.claim} = {result.stated!r}: {result.status}: {result.why}{flows}"


def _case(suite: ET.Element, capture: CaptureCheck, claim: str, run: CheckRun) -> str:
    case = ET.SubElement(suite, "testcase", classname=xml_text(capture.path),
                         name=xml_text(claim), time="0")
    outcome = capture.outcome(claim)
    if outcome == Outcome.UNREAD:
        message = xml_text(f"{capture.path}: cannot be read: {capture.error}")
        ET.SubElement(case, "error", message=message, type="unreadable-capture").text = message
        return "errors"
    result = capture.result(claim)
    if result is None or outcome == Outcome.HOLDS:
        if result is not None:
            ET.SubElement(case, "system-out").text = xml_text(evidence(result))
        return ""
    message = xml_text(evidence(result))
    # The body: the evidence, then each flow the claim names, one line each.
    body = "\n".join([message, *(xml_text(capture.flows[i]) for i in result.flows
                                  if i in capture.flows)])
    if outcome == Outcome.CONTRADICTED or run.strict:
        failure = ET.SubElement(case, "failure", message=message, type=str(outcome))
        failure.text = body
        return "failures"
    ET.SubElement(case, "skipped", message=message).text = body
    return "skipped"


def render(run: CheckRun) -> bytes:
    """The JUnit XML document, UTF-8 with an XML declaration."""
    root = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(root, "testsuite", name=SUITE)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="flowscan.version", value=__version__)
    ET.SubElement(properties, "property", name="strict", value=str(run.strict).lower())
    for capture in run.captures:
        if capture.sha256:
            ET.SubElement(properties, "property", name=xml_text(f"sha256:{capture.path}"),
                          value=capture.sha256)
    for capture in run.captures:
        for claim in run.claims:
            counts["tests"] += 1
            kind = _case(suite, capture, claim, run)
            if kind:
                counts[kind] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
