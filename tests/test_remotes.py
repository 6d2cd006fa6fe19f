"""Which end of a flow is the remote: never the capture point (issue 17, class 9)."""

from __future__ import annotations

import os
from pathlib import Path

from capfiles import ether, pcap
from scapy.layers.inet import IP, TCP, UDP

import flowscan

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
HOME = "91.64.10.20"  # a residential line
SERVICE = "170.114.10.5"  # a Zoom multimedia router's network


def test_direct_call_names_both_ends_when_nothing_tells_the_capture_point() -> None:
    """The lab's direct call captured at alice: two participants, one flow; nothing in the
    traffic says which end the capture was taken at, so neither is called the remote."""
    report = flowscan.scan(str(LAB / "p2p-webrtc" / "capture.pcapng"))
    (flow,) = report.flows
    assert flow.remote is not None and flow.remote.basis == "unknown"
    (session,) = report.sessions
    assert "media between" in session.summary and "media to" not in session.summary


def test_vantage_names_the_other_participant_and_claims_nothing_impossible() -> None:
    """With --vantage CA (alice's country), bob (DE) is the remote; alice's own location is
    never judged against round trips timed at her own stack."""
    report = flowscan.scan(str(LAB / "p2p-webrtc" / "capture.pcapng"), vantage="CA")
    (flow,) = report.flows
    assert flow.remote is not None and flow.remote.ip == "91.64.10.20"
    assert flow.remote.basis == "vantage"
    assert "implausible-location" not in [f.kind for f in report.findings]
    assert "media to 91.64.10.20" in report.sessions[0].summary


def test_capture_starting_mid_flow_takes_the_service_as_remote(tmp_path: Path) -> None:
    """The first packet captured came from the service: its port, not the first sender,
    says which end is the service's."""
    frames = []
    for i in range(20):
        src, dst, sport, dport = ((SERVICE, HOME, 8801, 51000) if i % 2 == 0
                                  else (HOME, SERVICE, 51000, 8801))
        frames.append((1 + i / 50, bytes(ether() / IP(src=src, dst=dst) / UDP(
            sport=sport, dport=dport) / os.urandom(120))))
    path = tmp_path / "midflow.pcap"
    path.write_bytes(pcap(frames))
    (flow,) = flowscan.scan(str(path)).flows
    assert flow.client.ip == SERVICE  # the first sender, as the flow table has it
    assert flow.remote is not None
    # The home line faces the service, so it is taken as the capture host.
    assert (flow.remote.ip, flow.remote.basis) == (SERVICE, "capture-host")


def test_tcp_without_its_handshake_takes_the_service_port(tmp_path: Path) -> None:
    frames = [(1.0, bytes(ether() / IP(src=SERVICE, dst=HOME) / TCP(
        sport=443, dport=52000, flags="PA") / b"\x17\x03\x03\x00\x10" / os.urandom(16))),
              (1.1, bytes(ether() / IP(src=HOME, dst=SERVICE) / TCP(
                  sport=52000, dport=443, flags="A")))]
    path = tmp_path / "midtcp.pcap"
    path.write_bytes(pcap(frames))
    (flow,) = flowscan.scan(str(path)).flows
    assert flow.remote is not None and flow.remote.ip == SERVICE
