"""Capture formats and link layers, on crafted files and on the shared real corpus."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from capfiles import dsb, epb, ether, idb, nrb, opb, pcap, shb, spb
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import GRE, CookedLinux, Dot1AD, Dot1Q
from scapy.packet import Packet, Raw

import flowscan
from flowscan.report.model import Endpoint, Flow

A, B = "198.51.100.7", "203.0.113.9"


def udp_packet(payload: bytes = b"x" * 20, sport: int = 40000, dport: int = 3478,
               src: str = A, dst: str = B) -> bytes:
    return bytes(ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def write(tmp_path: Path, data: bytes, name: str = "c.pcap") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def only_flow(report: flowscan.api.Report) -> Flow:
    assert len(report.flows) == 1, report.flows
    return report.flows[0]


def test_real_capture_packet_counts_equal_capinfos(real_path: Path) -> None:
    if shutil.which("capinfos") is None:
        pytest.skip("capinfos (Wireshark) is not installed")
    out = subprocess.run(["capinfos", "-M", "-c", "-T", "-r", str(real_path)],
                         capture_output=True, text=True, check=True).stdout
    expected = int(out.strip().split("\t")[-1])
    report = flowscan.scan(str(real_path))
    assert report.capture.packets == expected
    assert report.capture.warnings == []
    assert sum(f.packets for f in report.flows) == report.capture.ip_packets


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    pkts = [(1600000000.25, udp_packet()), (1600000001.5, udp_packet(sport=3478, dport=40000,
                                                                       src=B, dst=A))]
    report = flowscan.scan(write(tmp_path, pcap(pkts, order=order, nano=nano)))
    flow = only_flow(report)
    assert report.capture.format == ("pcap-ns" if nano else "pcap")
    assert (flow.client.ip, flow.client.port, flow.server.ip, flow.server.port) == (
        A, 40000, B, 3478)
    assert (flow.to_server.packets, flow.to_client.packets) == (1, 1)
    assert flow.to_server.first_timestamp == 1600000000.25
    assert flow.to_client.last_timestamp == 1600000001.5


def test_pcap_small_snaplen_counts_wire_length(tmp_path: Path) -> None:
    data = udp_packet(b"y" * 400)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 64, 1)
    record = struct.pack("<IIII", 1, 0, 64, len(data)) + data[:64]
    report = flowscan.scan(write(tmp_path, header + record))
    assert only_flow(report).bytes == len(data)
    assert report.capture.bytes == len(data)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_blocks_sections_and_interfaces(tmp_path: Path, order: str) -> None:
    raw_ip = bytes(IP(src=A, dst=B) / UDP(sport=5004, dport=5006) / (b"r" * 12))
    data = b"".join([
        shb(order),
        idb(order, linktype=1),                       # microseconds (default)
        idb(order, linktype=101, tsresol=9),          # raw IP, nanoseconds
        idb(order, linktype=1, tsresol=0x80 | 20, tsoffset=100),  # 2^-20 s, +100 s
        nrb(order, bytes([203, 0, 113, 9]), "media.example.test"),
        dsb(order, 0x544C534B, b"CLIENT_RANDOM 00 11\n"),
        struct.pack(order + "II", 0x00000BAD, 16) + b"\0" * 4 + struct.pack(order + "I", 16),
        struct.pack(order + "II", 0x12345678, 12) + struct.pack(order + "I", 12),
        epb(order, 0, 1_600_000_000_000_000, udp_packet()),
        epb(order, 1, 1_600_000_001_000_000_000, raw_ip),
        epb(order, 2, 5 << 20, udp_packet(sport=1, dport=2)),
        opb(order, 0, 1_600_000_002_000_000, udp_packet()),
        spb(order, udp_packet()),
        shb(order),                                   # a second section starts afresh
        idb(order, linktype=101),
        epb(order, 0, 1_600_000_003_000_000, raw_ip),
    ])
    report = flowscan.scan(write(tmp_path, data, "c.pcapng"))
    cap = report.capture
    assert cap.format == "pcapng"
    assert (cap.packets, cap.sections, cap.interfaces) == (6, 2, 4)
    assert cap.link_types == ["ethernet", "raw"]
    assert cap.decryption_secrets.blocks == 1
    assert cap.decryption_secrets.kinds == ["tls-keylog"]
    by_port = {f.server.port: f for f in report.flows}
    assert by_port[3478].packets == 3  # EPB, OPB and SPB
    assert by_port[5006].packets == 2
    assert by_port[5006].to_server.first_timestamp == 1600000001.0
    assert by_port[2].to_server.first_timestamp == 105.0


def test_pcapng_secrets_and_names_are_kept_for_later_stages(tmp_path: Path) -> None:
    from flowscan.capture import CaptureSource, open_reader

    data = shb() + idb() + nrb("<", bytes([203, 0, 113, 9]), "media.example.test") + dsb(
        "<", 0x544C534B, b"CLIENT_RANDOM aa bb\n") + epb("<", 0, 1, udp_packet())
    with CaptureSource(write(tmp_path, data, "c.pcapng")) as source:
        reader = open_reader(source)
        assert len(list(reader.packets())) == 1
    assert reader.facts.secrets[0].data == b"CLIENT_RANDOM aa bb\n"
    assert "CLIENT_RANDOM" not in repr(reader.facts.secrets[0])
    assert reader.facts.names == {"203.0.113.9": ["media.example.test"]}


def test_gzip_is_read_transparently_and_hashed_as_stored(tmp_path: Path) -> None:
    plain = pcap([(1.0, udp_packet()), (2.0, udp_packet())])
    packed = gzip.compress(plain)
    report = flowscan.scan(write(tmp_path, packed, "c.pcap.gz"))
    assert report.capture.format == "pcap+gzip"
    assert report.capture.compressed
    assert report.capture.packets == 2
    import hashlib

    assert report.capture.sha256 == hashlib.sha256(packed).hexdigest()
    assert report.capture.size_bytes == len(packed)


def test_stdin_is_read(tmp_path: Path) -> None:
    data = pcap([(1.0, udp_packet()), (2.0, udp_packet())])
    proc = subprocess.run([sys.executable, "-m", "flowscan", "scan", "-", "--format", "json"],
                          input=data, capture_output=True, check=True)
    import json

    report = json.loads(proc.stdout)
    assert report["capture"]["path"] == "<stdin>"
    assert report["capture"]["packets"] == 2
    assert report["flows"][0]["to_server"]["packets"] == 2


def _inner_ip_udp() -> IP:
    return IP(src=A, dst=B) / UDP(sport=40000, dport=8801) / (b"\x05" + b"z" * 30)


@pytest.mark.parametrize(
    ("linktype", "frame", "encap"),
    [
        (1, ether() / Dot1Q(vlan=100) / _inner_ip_udp(), ["vlan:100"]),
        (1, ether() / Dot1AD(vlan=7) / Dot1Q(vlan=100) / _inner_ip_udp(), ["vlan:7", "vlan:100"]),
        (113, CookedLinux(proto=0x0800) / _inner_ip_udp(), []),
        (101, _inner_ip_udp(), []),
        (228, _inner_ip_udp(), []),
        (1, ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / _inner_ip_udp(), ["gre"]),
    ],
    ids=["vlan", "qinq", "sll", "raw", "ipv4", "gre"],
)
def test_link_layers_and_tunnels(tmp_path: Path, linktype: int, frame: Packet,
                                 encap: list[str]) -> None:
    report = flowscan.scan(write(tmp_path, pcap([(1.0, bytes(frame))], linktype=linktype)))
    flow = only_flow(report)
    assert (flow.client.ip, flow.server.ip, flow.server.port) == (A, B, 8801)
    assert flow.encapsulation == tuple(encap)


def test_linux_sll2_and_bsd_null(tmp_path: Path) -> None:
    inner = bytes(_inner_ip_udp())
    sll2 = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\0" * 8) + inner
    null_le = struct.pack("<I", 2) + inner
    loop_be = struct.pack(">I", 2) + inner
    for linktype, frame in ((276, sll2), (0, null_le), (108, loop_be)):
        report = flowscan.scan(write(tmp_path, pcap([(1.0, frame)], linktype=linktype)))
        assert only_flow(report).server.port == 8801, linktype


def test_gtpu_tunnel_with_extension_header(tmp_path: Path) -> None:
    inner = bytes(_inner_ip_udp())
    # GTPv1-U G-PDU with E flag and one PDU session container extension (TS 29.281 5.2).
    ext = bytes([1, 0x00, 0x01, 0x00])  # length 1 (4 bytes), content, next type 0
    gtp = bytes([0x34, 0xFF]) + struct.pack(">HI", len(inner) + 4 + len(ext), 0x1234)
    gtp += b"\0\0\0\x85" + ext
    outer = ether() / IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=2152, dport=2152) / (
        Raw(gtp + inner))
    report = flowscan.scan(write(tmp_path, pcap([(1.0, bytes(outer))])))
    flow = only_flow(report)
    assert (flow.client.ip, flow.server.port, flow.encapsulation) == (A, 8801, ("gtp-u",))


def test_ipv4_options_and_fragments(tmp_path: Path) -> None:
    big = IP(src=A, dst=B, id=77, options=b"\x94\x04\x00\x00") / UDP(sport=41000, dport=2000) / (
        b"q" * 3000)
    from scapy.layers.inet import fragment

    frags = fragment(big, fragsize=1000)
    assert len(frags) > 2
    pkts = [(1.0 + i / 10, bytes(ether() / f)) for i, f in enumerate(frags)]
    report = flowscan.scan(write(tmp_path, pcap(pkts)))
    flow = only_flow(report)
    assert (flow.server.port, flow.packets) == (2000, len(frags))
    assert report.capture.ip_fragments == len(frags)


def test_ipv6_extension_headers_and_fragments(tmp_path: Path) -> None:
    a6, b6 = "2001:db8::1", "2001:db8::2"
    plain = IPv6(src=a6, dst=b6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(
        sport=5000, dport=3478) / (b"s" * 40)
    from scapy.layers.inet6 import fragment6

    big = IPv6(src=a6, dst=b6) / IPv6ExtHdrFragment(id=9) / UDP(sport=5000, dport=3478) / (
        b"f" * 2500)
    frags = fragment6(big, 1280)
    pkts = [(1.0, bytes(ether() / plain))] + [(2.0, bytes(ether() / f)) for f in frags]
    report = flowscan.scan(write(tmp_path, pcap(pkts)))
    flow = only_flow(report)
    assert (flow.client.ip, flow.server.ip, flow.server.port) == (a6, b6, 3478)
    assert flow.packets == 1 + len(frags)


def test_non_ip_and_other_protocols_are_counted(tmp_path: Path) -> None:
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import ARP

    pkts = [(1.0, bytes(ether() / ARP())), (2.0, bytes(ether() / IP(src=A, dst=B) / ICMP())),
            (3.0, bytes(ether() / IP(src=A, dst=B) / TCP(sport=1, dport=443, flags="S")))]
    report = flowscan.scan(write(tmp_path, pcap(pkts)))
    assert (report.capture.packets, report.capture.non_ip_packets) == (3, 1)
    assert sorted(f.transport for f in report.flows) == ["icmp", "tcp"]


def test_a_gzip_bomb_is_inflated_only_as_far_as_it_is_read() -> None:
    """64 MiB of zeros compress to 64 KiB; reading the first 4 KiB must not inflate the
    rest into memory (it did, one 1 MiB chunk of compressed input at a time: a small
    hostile file could take gigabytes)."""
    import io
    import tracemalloc

    from flowscan.capture.source import GunzipStream

    packed = gzip.compress(bytes(64 << 20) + b"end", compresslevel=9)
    raw = io.BytesIO(packed + gzip.compress(b"second member"))
    stream = GunzipStream(raw.read)
    tracemalloc.start()
    try:
        first = stream.read(4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first == bytes(4096)
    assert peak < 8 << 20
    rest = b""
    while chunk := stream.read(4 << 20):
        rest += chunk
    assert first + rest == bytes(64 << 20) + b"end" + b"second member"
    assert not stream.truncated


def test_flows_to_one_server_share_its_endpoint(tmp_path: Path) -> None:
    """Flows to one server hold one Endpoint (frozen, so sharing it is safe), and so do
    the flows of one client socket (its port 40000, to two servers); each other client
    port is its own."""
    packets = [(1.0 + n, udp_packet(sport=40000 + n, dport=3478)) for n in range(3)]
    packets.append((9.0, udp_packet(sport=40000, dport=3479)))
    flows = flowscan.scan(write(tmp_path, pcap(packets))).flows
    servers = [f.server for f in flows if f.server.port == 3478]
    assert len(servers) == 3 and servers[0] is servers[1] is servers[2]
    assert len({id(f.client) for f in flows}) == 3
    assert flows[0].client is flows[3].client and flows[0].client.port == 40000
    other = next(f.server for f in flows if f.server.port == 3479)
    assert other == Endpoint(B, 3479) and other is not servers[0]
    with pytest.raises(AttributeError):
        servers[0].port = 1  # type: ignore[misc]
