"""Flow accounting: direction, initiator, TCP handshake timing, idle timeout, samples."""

from __future__ import annotations

from pathlib import Path

from capfiles import ether, pcap
from scapy.layers.inet import IP, TCP, UDP

import flowscan
from flowscan.capture.decode import Decoder
from flowscan.flows import (
    SAMPLE_HEAD,
    FlowState,
    FlowTable,
    pack_samples,
    unpack_samples,
)

C, S = "192.0.2.10", "198.51.100.20"


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, payload: bytes = b"") -> bytes:
    return bytes(ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
                 / payload)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"u" * 10) -> bytes:
    return bytes(ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def scan(tmp_path: Path, pkts: list[tuple[float, bytes]], **kw: object) -> flowscan.api.Report:
    path = tmp_path / "f.pcap"
    path.write_bytes(pcap(pkts))
    return flowscan.scan(str(path), **kw)  # type: ignore[arg-type]


def test_tcp_handshake_sets_client_and_round_trips(tmp_path: Path) -> None:
    report = scan(tmp_path, [
        (10.000, tcp(C, S, 50000, 443, "S")),
        (10.040, tcp(S, C, 443, 50000, "SA")),
        (10.0405, tcp(C, S, 50000, 443, "A")),
        (10.041, tcp(C, S, 50000, 443, "PA", b"hello")),
    ])
    (flow,) = report.flows
    assert (flow.client.ip, flow.client.port, flow.client_basis) == (C, 50000, "tcp-syn")
    assert flow.tcp_handshake is not None
    assert flow.tcp_handshake.syn_to_synack_ms == 40.0
    assert flow.tcp_handshake.synack_to_ack_ms == 0.5
    assert (flow.to_server.packets, flow.to_client.packets) == (3, 1)


def test_capture_starting_at_syn_ack_still_finds_client(tmp_path: Path) -> None:
    report = scan(tmp_path, [(1.0, tcp(S, C, 8443, 50001, "SA")),
                             (1.1, tcp(C, S, 50001, 8443, "A"))])
    (flow,) = report.flows
    assert (flow.client.ip, flow.server.port, flow.client_basis) == (C, 8443, "tcp-syn-ack")


def test_udp_first_packet_and_well_known_port(tmp_path: Path) -> None:
    report = scan(tmp_path, [(1.0, udp(C, S, 40000, 8801)), (2.0, udp(S, C, 53, 40001))])
    first, second = report.flows
    assert (first.client.ip, first.client_basis) == (C, "first-packet")
    assert (second.client.ip, second.server.port, second.client_basis) == (
        C, 53, "well-known-port")


def test_idle_timeout_splits_a_silent_flow(tmp_path: Path) -> None:
    pkts = [(0.0, udp(C, S, 40000, 3478)), (10.0, udp(S, C, 3478, 40000)),
            (500.0, udp(C, S, 40000, 3478))]
    report = scan(tmp_path, pkts, idle_timeout=300.0)
    assert [(f.id, f.packets) for f in report.flows] == [(1, 2), (2, 1)]
    assert [f.packets for f in scan(tmp_path, pkts, idle_timeout=600.0).flows] == [3]


def test_memory_is_bounded_by_active_flows_not_capture_size() -> None:
    closed: list[FlowState] = []
    table = FlowTable(on_close=closed.append, idle_timeout=30.0)
    decoder = Decoder()
    n = 20000
    base = udp(C, S, 10000, 3478)
    for i in range(n):
        data = base[:34] + (10000 + i).to_bytes(2, "big") + base[36:]
        decoded = decoder.decode(1, data)
        assert decoded is not None
        table.add(float(i), len(data), decoded, data)  # one new flow/second
    assert table.peak_active < 4096 + 100
    table.close_all()
    assert len(closed) == n
    assert [f.flow_id for f in closed] == sorted(f.flow_id for f in closed)


def test_samples_are_bounded_per_direction_and_class() -> None:
    closed: list[FlowState] = []
    table = FlowTable(on_close=closed.append, sample_packets=3, sample_bytes=16)
    decoder = Decoder()
    for i in range(10):
        for src, dst, sp, dp in ((C, S, 40000, 3478), (S, C, 3478, 40000)):
            data = udp(src, dst, sp, dp, bytes([0x40 + i]) * 100)  # all of the "other" class
            decoded = decoder.decode(1, data)
            assert decoded is not None
            table.add(float(i), len(data), decoded, data)
    table.close_all()
    (flow,) = closed
    samples = unpack_samples(flow.samples)
    assert [(d, len(p)) for _ts, d, p in samples] == [(0, 16), (1, 16)] * 3
    assert samples[-1] == (2.0, 1, b"\x42" * 16)


def test_ice_checks_do_not_use_up_the_room_for_rtp() -> None:
    closed: list[FlowState] = []
    table = FlowTable(on_close=closed.append)
    decoder = Decoder()
    stun_check = bytes.fromhex("000100002112a442") + bytes(12)
    rtp_packet = bytes([0x80, 111]) + bytes(10) + b"o" * 300
    for i in range(30):
        data = udp(C, S, 40000, 3478, stun_check if i < 20 else rtp_packet)
        decoded = decoder.decode(1, data)
        assert decoded is not None
        table.add(float(i), len(data), decoded, data)
    table.close_all()
    samples = unpack_samples(closed[0].samples)
    kinds = [p[0] for _ts, _d, p in samples]
    assert kinds.count(0x00) == 4 and kinds.count(0x80) == 8  # STUN 4, RTP 8 (flows.py)
    assert max(len(p) for _ts, _d, p in samples) == 312  # RTP kept whole to 512


def test_samples_pack_and_unpack_as_they_were_taken() -> None:
    """A head of 13 bytes per sample, timestamps to the bit, empty payloads kept, and a
    payload longer than 64 KiB (a --sample-bytes that large) whole."""
    samples = [(1700000000.123456, 0, b"\x80" * 12), (1700000000.1234567, 1, b""),
               (0.1 + 0.2, 1, bytes(range(256)) * 300)]
    packed = pack_samples(samples)
    assert len(packed) == 3 * SAMPLE_HEAD.size + 12 + 256 * 300
    assert unpack_samples(packed) == samples
    assert unpack_samples(bytes(packed)) == samples
    assert unpack_samples(b"") == []
