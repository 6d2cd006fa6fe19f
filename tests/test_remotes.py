"""Which end of a flow is the remote: never the capture point (issue 17, class 9). Where
the address count ties (one flow, or every flow between the same two ends), only evidence
that names a side is taken, else neither end is called the remote, and the answers count
neither as a destination."""

from __future__ import annotations

import io
import ipaddress
import json
import os
import struct
from pathlib import Path

import pytest
from capfiles import ether, pcap
from packets import MAGIC, dtls_client_hello, ice_check, stun_message
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP

import flowscan
from flowscan.report import text
from flowscan.report.model import Flow, Report

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
HOME = "91.64.10.20"  # a residential line
SERVICE = "170.114.10.5"  # a Zoom multimedia router's network
ALICE = "24.114.20.10"  # a residential line in CA (Rogers)
RELAY = "5.9.1.1"  # a data centre in DE (Hetzner)
PHONE = "192.168.1.20"  # behind a home router


class Wire:
    """Frames between two ends, in capture order."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, bytes]] = []

    def udp(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        self.frames.append((1 + len(self.frames) / 50, bytes(ether() / IP(
            src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload)))

    def tcp(self, src: tuple[str, int], dst: tuple[str, int], flags: str,
            payload: bytes = b"") -> None:
        self.frames.append((1 + len(self.frames) / 50, bytes(ether() / IP(
            src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags) / payload)))

    def ice(self, a: tuple[str, int], b: tuple[str, int], *, a_seen: tuple[str, int] | None = None,
            b_seen: tuple[str, int] | None = None) -> None:
        """Full ICE (RFC 8445 section 7.2): both ends check, b first, each answer naming the
        requester where the responder saw it (by default, its address on the wire)."""
        for i in range(3):
            for asker, answerer, seen in ((b, a, b_seen or b), (a, b, a_seen or a)):
                txid = bytes([i, asker[1] & 0xFF]) * 6
                self.udp(asker, answerer, ice_check(txid, controlling=asker == b))
                self.udp(answerer, asker, binding_success(txid, seen))

    def media(self, a: tuple[str, int], b: tuple[str, int], count: int = 12) -> None:
        for i in range(count):
            self.udp(a, b, rtp(i, 0x1111))
            self.udp(b, a, rtp(i, 0x2222))

    def scan(self, tmp_path: Path, name: str = "wire.pcap") -> Report:
        path = tmp_path / name
        path.write_bytes(pcap(self.frames))
        return flowscan.scan(str(path))


def xor_address(ip: str, port: int) -> bytes:
    """XOR-MAPPED-ADDRESS value, IPv4 (RFC 8489 section 14.2)."""
    return struct.pack(">BBHI", 0, 1, port ^ (MAGIC >> 16),
                       int(ipaddress.IPv4Address(ip)) ^ MAGIC)


def binding_success(txid: bytes, seen: tuple[str, int]) -> bytes:
    return stun_message(0x0101, txid, [(0x0020, xor_address(*seen))])


def rtp(seq: int, ssrc: int) -> bytes:
    """RFC 3550 section 5.1 header, PCMU (RFC 3551), 20 ms at 8 kHz."""
    return struct.pack(">BBHII", 0x80, 0, seq, 160 * seq, ssrc) + os.urandom(160)


def remote(report: Report) -> tuple[str, str | None]:
    (flow,) = report.flows
    assert flow.remote is not None
    return flow.remote.ip, flow.remote.basis


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


def test_one_flow_between_two_participants_names_neither_end(tmp_path: Path) -> None:
    """Full ICE both ways, each end seen where it is, a DTLS ClientHello from one, media both
    ways: nothing names the capture point. The first sender (bob, the first ICE check) and
    the DTLS client (alice) are no evidence (either end checks first and either may be
    the DTLS client), so neither end is a destination, and the answer says why."""
    wire, a, b = Wire(), (ALICE, 40000), (HOME, 50000)
    wire.ice(a, b)
    wire.udp(a, b, dtls_client_hello(b""))
    wire.media(a, b)
    report = wire.scan(tmp_path)
    assert remote(report)[1] == "unknown"
    assert report.answers is not None
    data = report.answers.data
    assert data.countries == [] and data.operators == [] and data.foreign_operators == []
    assert "went to no destination the capture can tell" in data.sentence
    assert "Media went to" not in data.sentence
    assert (f"not counted as a destination: the capture does not show which end it was "
            f"taken at (between {ALICE} and {HOME})") in data.sentence
    out = io.StringIO()
    text.render([report], out, top=0)
    (row,) = [line for line in out.getvalue().splitlines() if line.startswith(" 1 udp")]
    assert row.endswith("either end") and " DE " not in row


@pytest.mark.parametrize("translated", ["alice", "bob"])
def test_a_stun_answer_naming_its_receiver_elsewhere_names_the_capture_side(
        tmp_path: Path, translated: str) -> None:
    """The responder saw the requester at another address than the capture shows: a
    translator stood between them, and the capture was taken on the requester's side."""
    wire, a, b = Wire(), (ALICE, 40000), (HOME, 50000)
    outside = ("203.0.113.9", 61000)
    if translated == "alice":
        wire.ice(a, b, a_seen=outside)
    else:
        wire.ice(a, b, b_seen=outside)
    wire.media(a, b)
    # The evidence picks the capture host (capture_host), of which the other end is remote.
    assert remote(wire.scan(tmp_path)) == ((HOME, "capture-host") if translated == "alice"
                                           else (ALICE, "capture-host"))


def test_tcp_handshake_names_the_server_on_ephemeral_ports(tmp_path: Path) -> None:
    wire, a, b = Wire(), (ALICE, 40000), (HOME, 50000)
    wire.tcp(b, a, "S")  # a SYN to alice, never answered: its own flow
    wire.tcp(a, b, "S")
    wire.tcp(b, a, "SA")
    wire.tcp(a, b, "A")
    for _ in range(3):
        wire.tcp(a, b, "PA", os.urandom(200))
        wire.tcp(b, a, "PA", os.urandom(200))
    report = wire.scan(tmp_path)
    for flow in report.flows:
        assert flow.remote is not None
        assert (flow.remote.ip, flow.remote.basis) == (
            (HOME, "capture-host") if flow.client.ip == ALICE else (ALICE, "capture-host"))
    # With the lone SYN left out, the handshake alone names alice the capture host.
    wire.frames = wire.frames[1:]
    assert remote(wire.scan(tmp_path, "one.pcap")) == (HOME, "capture-host")


def test_turn_allocate_names_the_relay_on_any_port(tmp_path: Path) -> None:
    """The allocating side is the TURN client (RFC 8656 section 7): requests one way only."""
    wire, a, relay = Wire(), (ALICE, 40000), (RELAY, 40001)
    for i in range(2):
        txid = bytes([i]) * 12
        wire.udp(a, relay, stun_message(0x0003, txid, [(0x0019, bytes([17, 0, 0, 0]))]))
        wire.udp(relay, a, stun_message(0x0103, txid, [(0x0016, xor_address(RELAY, 49152)),
                                                       (0x0020, xor_address(*a))]))
    assert remote(wire.scan(tmp_path)) == (RELAY, "capture-host")


def test_dns_query_names_the_resolver(tmp_path: Path) -> None:
    wire, a, resolver = Wire(), (ALICE, 53000), (RELAY, 53)
    wire.udp(resolver, a, bytes(DNS(id=7, qr=1, qd=DNSQR(qname="sfu.example.net"))))
    wire.udp(a, resolver, bytes(DNS(id=8, rd=1, qd=DNSQR(qname="sfu.example.net"))))
    assert remote(wire.scan(tmp_path)) == (RELAY, "capture-host")


def test_private_end_is_local(tmp_path: Path) -> None:
    wire, phone, b = Wire(), (PHONE, 40000), (HOME, 50000)
    wire.media(phone, b)
    assert remote(wire.scan(tmp_path)) == (HOME, "private-address")


def test_flows_between_the_same_two_ends_take_the_host_one_names(tmp_path: Path) -> None:
    """Two flows, both between alice and bob: the count ties, the STUN answer on one of
    them names alice's side, and both flows take bob as the remote."""
    wire, bob = Wire(), (HOME, 50000)
    wire.ice((ALICE, 40000), bob, a_seen=("203.0.113.9", 61000))
    wire.media((ALICE, 40000), bob)
    wire.media((ALICE, 40002), (HOME, 50002))
    flows = wire.scan(tmp_path).flows
    assert len(flows) == 2
    assert {(f.remote.ip, f.remote.basis) for f in flows if f.remote} == {
        (HOME, "capture-host")}


def alice_port(flow: Flow) -> int:
    return flow.client.port if flow.client.ip == ALICE else flow.server.port


def lab_captures() -> list[tuple[Path, str]]:
    """Every lab capture and the address it was taken at: capture.pcapng (and its -dsb
    copy) at the manifest's captured_at, capture-HOST.pcapng at HOST."""
    out = []
    for manifest_path in sorted(LAB.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        hosts = {name: host["address"] for name, host in manifest["hosts"].items()}
        for capture in sorted(manifest_path.parent.glob("capture*.pcapng")):
            at = capture.stem.removeprefix("capture").removesuffix("-dsb").lstrip("-")
            out.append((capture, hosts[at or manifest["captured_at"]]))
    return out


# Lab captures whose every flow runs between the same two ends with nothing naming either
# as the capture point: the capture at alice of her direct call, of her SFU call (the SFU
# checks too, and sends the first packet) and of her rtpengine call (one flow; rtpengine
# checks, sends first and is the DTLS client), and the SIP calls (every port ephemeral but
# SIP's 5060 on both ends). All on one lab link: TTLs and checksums alike both ways.
# The browser calls at alice likewise: her one direct flow to bob (p2p-browser-dtls13), her
# publisher's and subscriber's flows, both to Janus, which checks and answers like a peer.
UNDECIDED = {"p2p-webrtc/capture", "sfu-webrtc/capture", "sfu-webrtc-e2ee/capture",
             "rtpengine-webrtc-sip/capture", "sip-rtp-plain/capture", "sip-sdes-srtp/capture",
             "p2p-browser-dtls13/capture", "sfu-janus-browser/capture",
             "sfu-janus-browser-e2ee/capture", "sfu-janus-firefox/capture",
             "sfu-janus-firefox-e2ee/capture"}


@pytest.mark.parametrize("capture,at", [pytest.param(c, at, id=f"{c.parent.name}/{c.stem}")
                                        for c, at in lab_captures()])
def test_lab_remote_is_never_the_capture_host(capture: Path, at: str) -> None:
    """Each flow's remote is the manifest's other host, or, where nothing decides, no end
    is: then no flow's bytes count for a destination (the capture host's country among
    them)."""
    report = flowscan.scan(str(capture))
    assert report.answers is not None
    key = f"{capture.parent.name}/{capture.stem.removesuffix('-dsb')}"
    for flow in report.flows:
        assert at in (flow.client.ip, flow.server.ip) and flow.remote is not None
        if key in UNDECIDED:
            assert flow.remote.basis == "unknown", flow
        else:
            other = flow.server.ip if flow.client.ip == at else flow.client.ip
            assert (flow.remote.ip, flow.remote.basis) == (other, "capture-host"), flow
    counted = sum(d.bytes for d in report.answers.data.countries)
    assert counted == sum(f.bytes for f in report.flows if f.remote and (
        f.remote.basis != "unknown"))


def test_flows_naming_different_sides_each_take_their_own(tmp_path: Path) -> None:
    """Captures merged from both ends: one flow's STUN answer names alice's side, the
    other's bob's. No capture host stands out; each flow keeps its own evidence."""
    wire, outside = Wire(), ("203.0.113.9", 61000)
    wire.ice((ALICE, 40000), (HOME, 50000), a_seen=outside)
    wire.ice((ALICE, 40002), (HOME, 50002), b_seen=outside)
    remotes = {alice_port(f): (f.remote.ip, f.remote.basis)
               for f in wire.scan(tmp_path).flows if f.remote}
    assert remotes == {40000: (HOME, "stun-reflexive"), 40002: (ALICE, "stun-reflexive")}


@pytest.mark.parametrize("capture,at", [
    pytest.param(c, at, id=f"{c.parent.name}/{c.stem}") for c, at in lab_captures()
    if f"{c.parent.name}/{c.stem.removesuffix('-dsb')}" in UNDECIDED])
def test_capture_host_given_decides_what_the_wire_cannot(capture: Path, at: str) -> None:
    """Where nothing on the wire names the capture point, the user can (--capture-host):
    every flow's remote is then the manifest's other host, basis `given`, and the answers
    count every byte for a destination again."""
    report = flowscan.scan(str(capture), capture_host=[at])
    assert report.answers is not None
    for flow in report.flows:
        other = flow.server.ip if flow.client.ip == at else flow.client.ip
        assert flow.remote is not None and (flow.remote.ip, flow.remote.basis) == (
            other, "given"), flow
    assert sum(d.bytes for d in report.answers.data.countries) == sum(
        f.bytes for f in report.flows)
    assert not report.capture.warnings


def test_capture_host_other_end_and_unseen_address(tmp_path: Path) -> None:
    """The address given wins over the traffic's own evidence for the flows that hold it
    (here the SYN's receiver: the user says the capture was taken at the server), decides
    nothing for the others, and an address no flow holds is a warning, not silence."""
    syn = [IP(src=ALICE, dst=HOME) / TCP(sport=50000, dport=8443, flags="S"),
           IP(src=HOME, dst=ALICE) / TCP(sport=8443, dport=50000, flags="SA")]
    path = tmp_path / "syn.pcap"
    path.write_bytes(pcap([(1.0 + i, bytes(ether() / p)) for i, p in enumerate(syn)]))
    (flow,) = flowscan.scan(str(path)).flows
    assert flow.remote is not None and (flow.remote.ip, flow.remote.basis) == (
        HOME, "capture-host")  # the end facing the service
    report = flowscan.scan(str(path), capture_host=[HOME, "2001:db8::1"])
    (flow,) = report.flows
    assert flow.remote is not None and (flow.remote.ip, flow.remote.basis) == (ALICE, "given")
    assert report.capture.warnings == [
        "--capture-host 2001:db8::1: no flow of the capture has this address; it decides no "
        "flow's remote"]


@pytest.mark.parametrize("value", ["nope", "1.2.3", "10.0.0.1/24", ""])
def test_capture_host_not_an_address_is_a_usage_error(value: str) -> None:
    with pytest.raises(flowscan.UsageError, match=r"--capture-host .*not an IPv4 or IPv6"):
        flowscan.scan(str(LAB / "p2p-webrtc" / "capture.pcapng"), capture_host=[value])


def test_capture_host_cli_one_line_and_check_takes_it() -> None:
    """The CLI: a bad address is one line and exit 2 before reading; check takes the
    option too (the other end of alice's direct call is bob, in DE: media stays in EU)."""
    import subprocess
    import sys

    capture = str(LAB / "p2p-webrtc" / "capture.pcapng")
    bad = subprocess.run([sys.executable, "-m", "flowscan", "scan", capture, "--capture-host",
                          "nope"], capture_output=True, text=True)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.splitlines() == [
        "flowscan: error: --capture-host 'nope': not an IPv4 or IPv6 address"]
    manifest = json.loads((LAB / "p2p-webrtc" / "manifest.json").read_text())
    alice = manifest["hosts"]["alice"]["address"]
    done = subprocess.run([sys.executable, "-m", "flowscan", "scan", capture, "--format",
                           "json", "--capture-host", alice], capture_output=True, text=True)
    (flow,) = json.loads(done.stdout)["flows"]
    assert (flow["remote"]["ip"], flow["remote"]["basis"], flow["remote"]["country"]) == (
        manifest["hosts"]["bob"]["address"], "given", "DE")
