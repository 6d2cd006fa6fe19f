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


def test_ipv6_extension_headers_name_the_upper_layer(tmp_path: Path) -> None:
    """RFC 8200 section 4: MLD reports travel behind a Hop-by-Hop header (Next Header 0),
    and a fragment or destination-options header may stand before UDP. Both engines
    account the flow to the protocol at the end of the chain (turn_tcp_call.pcap's MLD
    reports were `ip-proto-0` through Wireshark's fixed `nxt` field)."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    from capfiles import MAC_A, MAC_B, pcap
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import (
        ICMPv6MLReport2,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrHopByHop,
        RouterAlert,
    )
    from scapy.layers.l2 import Ether

    eth = Ether(src=MAC_A, dst=MAC_B)
    mld = eth / IPv6(src="fe80::1", dst="ff02::16", hlim=1) / IPv6ExtHdrHopByHop(
        options=[RouterAlert()]) / ICMPv6MLReport2()
    udp = eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt() / UDP(
        sport=5000, dport=6000) / (b"x" * 20)
    path = tmp_path / "ext.pcap"
    path.write_bytes(pcap([(1.0, bytes(mld)), (1.1, bytes(mld)), (2.0, bytes(udp))]))
    for engine in ("native", "tshark"):
        report = flowscan.scan(str(path), engine=engine)
        assert sorted((f.transport, f.packets) for f in report.flows) == [
            ("icmpv6", 2), ("udp", 1)], engine
