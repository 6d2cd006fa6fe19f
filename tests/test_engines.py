"""The native reader and Wireshark's dissectors must agree on every real capture."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

import flowscan
from flowscan.report.model import Report


def by_tuple(report: Report) -> Counter[tuple[object, ...]]:
    totals: Counter[tuple[object, ...]] = Counter()
    for f in report.flows:
        key = (f.transport, f.client.ip, f.client.port, f.server.ip, f.server.port,
               tuple(f.encapsulation))
        totals[(*key, "packets")] += f.packets
        totals[(*key, "bytes")] += f.bytes
    return totals


def test_native_and_tshark_engines_agree(real_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    native = flowscan.scan(str(real_path))
    wireshark = flowscan.scan(str(real_path), engine="tshark")
    assert wireshark.capture.warnings == []
    assert (native.capture.packets, native.capture.bytes) == (
        wireshark.capture.packets, wireshark.capture.bytes)
    assert native.capture.ip_packets == wireshark.capture.ip_packets
    assert by_tuple(native) == by_tuple(wireshark)
    assert len(native.flows) == len(wireshark.flows)
