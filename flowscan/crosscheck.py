"""flowscan crosscheck: the native flow table against Wireshark's dissectors.

The tshark engine exists to check the native reader, not to replace it: it gives packets
and bytes per flow and nothing else. This compares the two tables flow by flow (by
transport, both endpoints and the tunnels removed), so a disagreement names the flow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from flowscan.api import scan
from flowscan.errors import UsageError
from flowscan.report.model import Flow, Report
from flowscan.tshark import FLOW_TABLE_ONLY

FlowKey = tuple[str, str, int, str, int, tuple[str, ...]]


def flow_key(flow: Flow) -> FlowKey:
    """A flow's identity independent of the order in which the engines saw flows begin."""
    return (flow.transport, flow.client.ip, flow.client.port, flow.server.ip,
            flow.server.port, tuple(flow.encapsulation))


def totals(report: Report) -> Counter[tuple[FlowKey, str]]:
    """Packets and bytes per flow key (a 5-tuple reused after an idle timeout adds up)."""
    out: Counter[tuple[FlowKey, str]] = Counter()
    for flow in report.flows:
        out[(flow_key(flow), "packets")] += flow.packets
        out[(flow_key(flow), "bytes")] += flow.bytes
    return out


@dataclass(frozen=True)
class Difference:
    flow: FlowKey
    measure: str  # "packets" or "bytes"
    native: int
    tshark: int


@dataclass
class CrossCheck:
    path: str
    sha256: str
    packets: tuple[int, int]  # (native, tshark): every record in the file
    bytes: tuple[int, int]
    ip_packets: tuple[int, int]
    flows: tuple[int, int]
    differences: list[Difference] = field(default_factory=list)
    tshark_warnings: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return (not self.differences and self.packets[0] == self.packets[1]
                and self.bytes[0] == self.bytes[1] and self.ip_packets[0] == self.ip_packets[1]
                and self.flows[0] == self.flows[1])


def crosscheck(path: str, *, idle_timeout: float = 300.0) -> CrossCheck:
    """Scan PATH with both engines and compare their flow tables."""
    if path == "-":
        raise UsageError("crosscheck reads the capture once per engine; give a file, not '-'")
    native = scan(path, idle_timeout=idle_timeout)
    return compare(native, scan(path, engine="tshark", idle_timeout=idle_timeout))


def compare(native: Report, wireshark: Report) -> CrossCheck:
    """The two engines' reports of one capture, flow by flow."""
    ours, theirs = totals(native), totals(wireshark)
    differences = [Difference(key, measure, ours[(key, measure)], theirs[(key, measure)])
                   for key, measure in sorted(set(ours) | set(theirs), key=repr)
                   if ours[(key, measure)] != theirs[(key, measure)]]
    cap, other = native.capture, wireshark.capture
    return CrossCheck(
        path=cap.path, sha256=cap.sha256, packets=(cap.packets, other.packets),
        bytes=(cap.bytes, other.bytes), ip_packets=(cap.ip_packets, other.ip_packets),
        flows=(len(native.flows), len(wireshark.flows)), differences=differences,
        tshark_warnings=[w for w in other.warnings if w != FLOW_TABLE_ONLY],
    )
