"""A closed flow's record (report/records.py): timestamps rounded to the microsecond as
round(value, 6) does, and the Endpoint of a server (or of a client socket) shared by its
flows."""

from __future__ import annotations

import math
import random

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from flowscan.capture.decode import Decoder
from flowscan.flows import FlowTable
from flowscan.report.model import Flow
from flowscan.report.records import flow_record, timestamp


def same_float(a: float, b: float) -> bool:
    """Equal as JSON writes them: the same value and sign, or both not a number."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def test_timestamps_round_as_round_does() -> None:
    """pcap's microseconds, pcapng's nanoseconds (if_tsresol 9), values near a half
    microsecond, and the edges (zero, signs, huge, infinite, not a number): the fast
    path and round(value, 6) never differ."""
    rng = random.Random(13)
    values = [0.0, -0.0, 5e-7, -5e-7, 1.5e-6, 2.5e-6, 1e-320, 4503599627.370496,
              4503599627.3704955, 9007199254.740992, 1e300, -1e300, math.inf, -math.inf,
              math.nan]
    for _ in range(20_000):
        sec, usec, nsec = (rng.randint(0, 4_300_000_000), rng.randint(0, 999_999),
                           rng.randint(0, 999_999_999))
        values += [sec + usec * 1e-6, sec + usec / 1e6, sec + nsec * 1e-9,
                   sec + usec * 1e-6 + 5e-7, rng.uniform(-1e10, 1e10), rng.random()]
    for value in values:
        assert same_float(timestamp(value), round(value, 6)), value


def closed_flows(frames: list[bytes]) -> list[Flow]:
    records: list[Flow] = []
    table = FlowTable(on_close=lambda state: records.append(flow_record(state)))
    decoder = Decoder()
    for n, frame in enumerate(frames):
        decoded = decoder.decode(101, frame)  # LINKTYPE_RAW: the IP packet itself
        assert decoded is not None
        table.add(1_700_000_000.25 + n * 1e-6, len(frame), decoded, frame)
    table.close_all()
    return sorted(records, key=lambda record: record.id)


def test_the_flows_to_one_server_share_its_endpoint() -> None:
    server4, server6 = "198.51.100.20", "2001:db8::20"
    records = closed_flows([
        bytes(IP(src="192.0.2.10", dst=server4) / UDP(sport=50000, dport=3478) / b"x"),
        bytes(IP(src="192.0.2.11", dst=server4) / UDP(sport=50001, dport=3478) / b"x"),
        bytes(IP(src="192.0.2.10", dst=server4) / UDP(sport=50002, dport=3479) / b"x"),
        bytes(IPv6(src="2001:db8::10", dst=server6) / UDP(sport=50000, dport=3478) / b"x"),
        bytes(IPv6(src="2001:db8::11", dst=server6) / UDP(sport=50001, dport=3478) / b"x"),
    ])
    assert [(r.server.ip, r.server.port) for r in records] == [
        (server4, 3478), (server4, 3478), (server4, 3479), (server6, 3478), (server6, 3478)]
    assert records[0].server is records[1].server
    assert records[2].server is not records[0].server
    assert records[3].server is records[4].server
    assert [r.client.port for r in records] == [50000, 50001, 50002, 50000, 50001]
    assert records[1].to_server.first_timestamp == 1_700_000_000.250001


def test_a_client_socket_used_again_after_the_idle_timeout_is_one_endpoint() -> None:
    """A socket's flows one idle timeout apart (keep-alives, a long call) share its
    Endpoint, as a server's flows share the server's; another port is another."""
    records: list[Flow] = []
    table = FlowTable(on_close=lambda state: records.append(flow_record(state)),
                      idle_timeout=120.0)
    decoder = Decoder()
    for n, sport in enumerate((50000, 50000, 50000, 50001)):
        frame = bytes(IP(src="192.0.2.10", dst="198.51.100.20") / UDP(sport=sport, dport=3478)
                      / b"x")
        decoded = decoder.decode(101, frame)
        assert decoded is not None
        table.add(1_700_000_000.0 + n * 400, len(frame), decoded, frame)
    table.close_all()
    records.sort(key=lambda record: record.id)
    assert [(r.id, r.client.ip, r.client.port) for r in records] == [
        (1, "192.0.2.10", 50000), (2, "192.0.2.10", 50000), (3, "192.0.2.10", 50000),
        (4, "192.0.2.10", 50001)]
    assert records[0].client is records[1].client is records[2].client
    assert records[3].client is not records[0].client
    # A direction of one packet: one timestamp object for its first and last.
    stats = records[1].to_server
    assert stats.first_timestamp == 1_700_000_400.0
    assert stats.last_timestamp is stats.first_timestamp
