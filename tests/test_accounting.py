"""The columnar fast path must leave every flow exactly as the per-packet reference does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from capfiles import ether, pcap
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from flowscan.accounting import FlowAccounting
from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import Decoder
from flowscan.flows import FlowState, FlowTable


def closed_flows(path: str, columnar: bool, idle_timeout: float) -> list[tuple[object, ...]]:
    closed: list[FlowState] = []
    table = FlowTable(on_close=closed.append, idle_timeout=idle_timeout, sample_packets=4,
                      sample_bytes=64)
    accounting = FlowAccounting(table, Decoder(), columnar=columnar)
    with CaptureSource(path) as source:
        for batch in open_reader(source).batches():
            accounting.add_batch(batch)
    table.close_all()
    closed.sort(key=lambda f: f.flow_id)
    return [(f.flow_id, f.proto, f.key, f.pkts, f.octets, f.first, f.last, f.samples,
             f.budget, f.handshake, f.client_basis, f.encap, f.ssrcs, f.late) for f in closed] + [
        (accounting.ip_packets, accounting.malformed, accounting.bytes)]


@pytest.fixture(params=[None, 4096], ids=["one-batch", "small-batches"])
def batch_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small batches carry flows across batch boundaries, where the fast path keeps state."""
    if request.param:
        monkeypatch.setattr("flowscan.capture.records.BATCH_BYTES", request.param)


@pytest.mark.parametrize("idle_timeout", [1e9, 300.0, 2.0])
def test_columnar_equals_reference_on_real_captures(real_path: Path, idle_timeout: float,
                                                    batch_bytes: None) -> None:
    fast = closed_flows(str(real_path), True, idle_timeout)
    assert fast == closed_flows(str(real_path), False, idle_timeout)
    assert len(fast) > 1


def test_columnar_equals_reference_on_mixed_crafted_traffic(tmp_path: Path,
                                                            batch_bytes: None) -> None:
    a, b = "192.0.2.1", "198.51.100.2"
    frames = []
    for i in range(300):
        t = i * 0.5 if i < 200 else 100 + (i - 200) * 4.0  # a quiet stretch, then sparse
        kind = i % 6
        if kind == 0:
            f = ether() / IP(src=a, dst=b) / TCP(sport=5000, dport=443, flags="S" if i == 0
                                                 else "PA") / (b"t" * (i % 40))
        elif kind == 1:
            f = ether() / IP(src=b, dst=a) / TCP(sport=443, dport=5000, flags="SA" if i == 1
                                                 else "A")
        elif kind == 2:
            f = ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(
                sport=3478, dport=3479) / (b"s" * (i % 70))
        elif kind == 3:
            f = ether() / IP(src=b, dst=a, flags="MF") / UDP(sport=9, dport=10) / b"frag"
        elif kind == 4:
            f = ether() / IP(src=a, dst=b) / UDP(sport=40000, dport=8801) / (b"m" * 90)
        else:
            f = ether() / IP(src=b, dst=a) / UDP(sport=8801, dport=40000)
        cut = 60 if kind == 4 and i % 5 == 0 else 40 if i % 50 == 7 else None
        frames.append((t, bytes(f)[:cut]))  # some captured short (snaplen)
    path = tmp_path / "mixed.pcap"
    path.write_bytes(pcap(frames, snaplen=65535))
    for timeout in (1000.0, 300.0, 3.0, 1.0):
        assert closed_flows(str(path), True, timeout) == closed_flows(str(path), False,
                                                                       timeout)


def test_tcp_handshakes_equal_reference_however_they_fall(tmp_path: Path, batch_bytes: None
                                                          ) -> None:
    """Handshakes of every shape, across batch boundaries too, come out of the columnar
    path exactly as the per-packet reference has them."""
    a, b = "192.0.2.1", "198.51.100.2"
    shapes = [
        ["S", "SA", "A", "PA", "A", "PA", "A", "PA", "A", "PA"],  # plain
        ["S", "S", "SA", "SA", "A", "PA", "A", "PA", "A", "PA"],  # retransmitted
        ["SA", "A", "PA", "A", "PA", "A"],  # capture began after the SYN
        ["PA", "A", "PA", "A", "PA", "A", "PA", "A", "PA", "A"],  # mid-stream
        ["S", "PA", "SA", "PA", "A", "PA", "A", "PA", "A", "PA"],  # data before SYN-ACK
        ["S", "SA", "SA", "PA", "A", "PA"],  # the client answers with SYN+ACK flags
        ["S"] * 10,  # never answered
    ]
    frames = []
    for n, shape in enumerate(shapes):
        sport = 40000 + n
        for i, flags in enumerate(shape):
            # SYNs and even steps come from the client, SYN-ACKs and odd steps from the server.
            from_client = flags == "S" or (flags != "SA" and i % 2 == 0) or (n, i) == (5, 2)
            ip = IP(src=a, dst=b) if from_client else IP(src=b, dst=a)
            ports: dict[str, Any] = (dict(sport=sport, dport=443) if from_client
                                     else dict(sport=443, dport=sport))  # TCP's **fields
            frames.append((n * 0.01 + i * 0.1,
                           bytes(ether() / ip / TCP(flags=flags, **ports) / (b"d" * 30))))
    frames.sort(key=lambda f: f[0])
    path = tmp_path / "handshakes.pcap"
    path.write_bytes(pcap(frames))
    for timeout in (300.0, 0.35):
        fast = closed_flows(str(path), True, timeout)
        assert fast == closed_flows(str(path), False, timeout)
    handshakes = [cast("list[float]", f[9]) for f in fast[:-1]]  # FlowState.handshake
    assert sum(1 for hs in handshakes if all(hs)) >= 3  # SYN, SYN-ACK and ACK all timed


def _grown(state: FlowState) -> tuple[int, int, int, int]:
    """What identification reads of a flow, by size: its samples, late samples, SSRCs."""
    return len(state.samples), len(state.late), len(state.ssrcs[0]), len(state.ssrcs[1])


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "per-packet"])
@pytest.mark.parametrize("sample_packets", [None, 1], ids=["budgets", "one-sample"])
def test_the_table_notes_exactly_the_flows_whose_samples_grew(
        real_path: Path, columnar: bool, sample_packets: int | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """FlowTable.touched, batch by batch, is the set of flows whose samples, late samples
    or SSRCs grew in it (identify_workers.LookAhead sends the others to the workers): no
    flow that grew is missing, and no flow whose packets added nothing is there, nor one
    that closed (by the idle timeout of 2 s). With one sample a class, RTP flows go on
    growing by their SSRCs and late samples alone."""
    monkeypatch.setattr("flowscan.capture.records.BATCH_BYTES", 4096)
    seen: dict[FlowState, tuple[int, int, int, int]] = {}
    table = FlowTable(on_close=lambda state: None, idle_timeout=2.0,
                      sample_packets=sample_packets)
    table.touched = set()
    accounting = FlowAccounting(table, Decoder(), columnar=columnar)
    grew_somewhere = 0
    with CaptureSource(str(real_path)) as source:
        for batch in open_reader(source).batches():
            touched: set[FlowState] = set()
            table.touched = touched
            accounting.add_batch(batch)
            now = set(table.open_flows())
            assert touched <= now  # a flow that closed in the batch is not kept
            grown = {state for state in now if _grown(state) != seen.get(state, (0, 0, 0, 0))}
            assert touched == grown
            seen.update((state, _grown(state)) for state in now)
            grew_somewhere += len(grown)
    assert grew_somewhere
