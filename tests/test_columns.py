"""The compiled columnar decoder (_columns.c) gives numpy's columns (columns.py, the
reference) exactly: the same fast packets, offsets, ports and flow groups, numbered alike."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from capfiles import MAC_A, MAC_B, pcap
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from flowscan.accounting import numpy_rank
from flowscan.capture import CaptureSource, columns, open_reader
from flowscan.capture import decode as d

LAB = sorted((Path(__file__).resolve().parent.parent / "captures" / "lab").glob("*/*.pcap*"))

needs_compiled = pytest.mark.skipif(
    columns._columns is None,
    reason="the compiled decoder was not built (setup.py: optional extension)")


def test_compiled_decoder_is_built_where_required() -> None:
    """CI sets FLOWSCAN_REQUIRE_NATIVE: there the extension must have been built."""
    if not os.environ.get("FLOWSCAN_REQUIRE_NATIVE"):
        pytest.skip("FLOWSCAN_REQUIRE_NATIVE is not set (CI sets it)")
    assert columns._columns is not None


def assert_same_columns(path: Path | str) -> int:
    """Every batch of the capture decoded both ways; the number of fast packets."""
    fast = 0
    with CaptureSource(str(path)) as source:
        for batch in open_reader(source).batches():
            reference = columns.numpy_columns(batch)
            compiled = columns._compiled_columns(batch)
            for name in reference.__dataclass_fields__:
                want, got = getattr(reference, name), getattr(compiled, name)
                assert got.dtype == want.dtype and np.array_equal(got, want), name
            fast += len(reference.idx)
    return fast


@needs_compiled
def test_same_columns_on_real_captures(real_path: Path) -> None:
    assert assert_same_columns(real_path) > 0


@needs_compiled
@pytest.mark.parametrize("path", LAB, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_columns_on_lab_captures(path: Path) -> None:
    assert assert_same_columns(path) > 0


def _transports() -> list[bytes]:
    """IP packets of every shape the decoder tells apart: UDP and TCP over IPv4 (with
    options, fragmented, a bad header length) and IPv6, tunnels, odd lengths, others."""
    a, b = "192.0.2.1", "198.51.100.2"
    packets = [
        IP(src=a, dst=b) / UDP(sport=5004, dport=40000) / (b"\x80" * 40),
        IP(src=b, dst=a) / UDP(sport=40000, dport=5004) / (b"\x80" * 12),
        IP(src=a, dst=b, options=b"\x01\x01\x01\x00") / UDP(sport=1, dport=2) / b"opt",
        IP(src=a, dst=b, flags="MF") / UDP(sport=9, dport=10) / b"frag",
        IP(src=a, dst=b, frag=3) / b"later fragment",
        IP(src=a, dst=b) / TCP(sport=5000, dport=443, flags="S"),
        IP(src=b, dst=a) / TCP(sport=443, dport=5000, flags="PA") / (b"t" * 30),
        IP(src=a, dst=b) / TCP(sport=5000, dport=443, dataofs=4) / b"bad offset",
        IP(src=a, dst=b) / UDP(sport=2152, dport=2152) / b"gtp",
        IP(src=a, dst=b) / UDP(sport=1234, dport=4789) / b"vxlan",
        IP(src=a, dst=b) / UDP(sport=4789, dport=1234) / b"not vxlan",
        IP(src=a, dst=b) / UDP(sport=7, dport=8, len=4) / b"short udp length",
        IP(src=a, dst=b) / UDP(sport=7, dport=8, len=200) / b"long udp length",
        IP(src=a, dst=b, proto=47) / b"gre-ish",
        IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=3478, dport=3479) / (b"s" * 20),
        IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=3479, dport=3478) / b"s",
        IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=80, dport=9) / b"h",
        IPv6(src="2001:db8::1", dst="2001:db8::2", nh=0) / b"extension header",
    ]
    raw = [bytes(p) for p in packets]
    bad_ihl = bytearray(raw[0])
    bad_ihl[0] = 0x44
    zero_payload_v6 = bytearray(raw[14])
    zero_payload_v6[4:6] = b"\x00\x00"
    return [*raw, bytes(bad_ihl), bytes(zero_payload_v6), b"\x60", b""]


def _framed(linktype: int, ip: bytes) -> list[bytes]:
    """ip behind each link header of this link type that the decoder reads."""
    version = ip[0] >> 4 if ip else 0
    ethertype = d.ETH_IPV6 if version == 6 else d.ETH_IPV4
    if linktype == d.LINKTYPE_ETHERNET:  # untagged, 802.1Q, 802.1ad + 802.1Q, three tags
        macs = bytes.fromhex("020000000002020000000001")
        return [macs + b"".join(struct.pack(">HH", tpid, 5) for tpid in tags)
                + struct.pack(">H", ethertype) + ip
                for tags in ((), (0x8100,), (0x88A8, 0x8100), (0x9100, 0x8100, 0x8100))]
    if linktype == d.LINKTYPE_LINUX_SLL:
        return [struct.pack(">HHH8sH", 0, 1, 6, bytes(8), ethertype) + ip]
    if linktype == d.LINKTYPE_LINUX_SLL2:
        return [struct.pack(">HHIHBB8s", ethertype, 0, 1, 1, 0, 6, bytes(8)) + ip]
    if linktype in (d.LINKTYPE_NULL, d.LINKTYPE_LOOP):
        return [struct.pack(order + "I", family) + ip for order in "<>"
                for family in (2, 24, 28, 30, 7)]
    return [ip]


@needs_compiled
@pytest.mark.parametrize("linktype", [
    d.LINKTYPE_ETHERNET, d.LINKTYPE_LINUX_SLL, d.LINKTYPE_LINUX_SLL2, d.LINKTYPE_RAW,
    d.LINKTYPE_RAW_BSD, d.LINKTYPE_RAW_OPENBSD, d.LINKTYPE_IPV4, d.LINKTYPE_IPV6,
    d.LINKTYPE_NULL, d.LINKTYPE_LOOP, 147])
def test_same_columns_on_crafted_packets_cut_at_every_length(tmp_path: Path, linktype: int
                                                              ) -> None:
    """Every link header and packet shape, captured whole and cut short at every length:
    nothing past the captured bytes decides whether a packet is fast, or how."""
    frames = [frame for ip in _transports() for frame in _framed(linktype, ip)]
    cuts = [frame[:n] for frame in frames for n in range(len(frame) + 1)]
    path = tmp_path / "crafted.pcap"
    path.write_bytes(pcap([(i * 0.001, frame) for i, frame in enumerate(cuts)],
                          linktype=linktype, snaplen=65535))
    fast = assert_same_columns(path)
    assert fast > 0 or linktype == 147


@needs_compiled
def test_groups_are_numbered_by_hash_across_many_flows(tmp_path: Path) -> None:
    """Thousands of flows, both directions, in one batch: the groups, their first packets
    and who sent each packet come out as numpy's sort has them."""
    frames, eth = [], Ether(src=MAC_A, dst=MAC_B)
    for n in range(3000):
        client, port = f"10.{n % 7}.{n // 250}.{n % 250}", 10000 + n
        up = IP(src=client, dst="203.0.113.9") / UDP(sport=port, dport=3478) / b"x"
        down = IP(src="203.0.113.9", dst=client) / UDP(sport=3478, dport=port) / b"y"
        frames += [(n * 0.001, bytes(eth / up)), (n * 0.001, bytes(eth / down))]
    path = tmp_path / "many.pcap"
    path.write_bytes(pcap(frames))
    assert assert_same_columns(path) == 6000


@needs_compiled
def test_a_hash_collision_falls_back_to_grouping_by_keys(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Where the compiled grouping reports two keys sharing a hash (-1), the groups come
    from numpy's grouping by the keys themselves, as numpy's own path does then."""
    compiled = columns._columns

    class Colliding:
        decode = staticmethod(compiled.decode)

        @staticmethod
        def group(*args: object) -> int:
            return -1

    monkeypatch.setattr(columns, "_columns", Colliding)
    assert assert_same_columns(LAB[0]) > 0


@needs_compiled
@pytest.mark.parametrize("keys", [
    [], [0], [3, 3, 3], [5, 0, 5, 1, 0, 5, 2, 2], list(range(50, 0, -1)) * 3,
    np.random.default_rng(7).integers(0, 40, 5000).tolist(),
    np.random.default_rng(8).integers(0, 100_000, 3000).tolist()])
def test_compiled_rank_equals_the_stable_sort(keys: list[int]) -> None:
    """Each element's position among those with its key, counted in C as the sort has it;
    keys too sparse to count are left to the sort (None)."""
    array = np.asarray(keys, dtype=np.int64)
    ranked = columns.compiled_rank(array)
    if ranked is None:
        assert array.max() > 16 * len(array) + 1024
        return
    assert ranked.dtype == np.int64 and ranked.tolist() == numpy_rank(array).tolist()


@needs_compiled
def test_compiled_rank_leaves_negative_keys_to_the_sort() -> None:
    assert columns.compiled_rank(np.asarray([1, -1, 1], dtype=np.int64)) is None


@needs_compiled
def test_same_columns_on_random_bytes() -> None:
    """Packets of random bytes behind every link type, IP versions and protocols forced
    often enough to reach the deeper tests: the two decoders agree on all of them."""
    from flowscan.capture.records import Batch
    from flowscan.capture.vector import PAD

    rng = np.random.default_rng(13)
    links = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]
    for _ in range(20):
        sizes = rng.integers(0, 120, 400)
        buf = bytearray(rng.integers(0, 256, int(sizes.sum()), dtype=np.uint8).tobytes())
        off = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        link = rng.choice(links, len(sizes)).astype(np.int64)
        for i in np.flatnonzero(sizes > 60):  # an IPv4 or IPv6 UDP/TCP header, sometimes
            at = int(off[i]) + {1: 14, 113: 16, 276: 20, 0: 4, 108: 4}.get(int(link[i]), 0)
            version = 0x45 if rng.random() < 0.6 else 0x60
            buf[at] = version
            buf[at + (9 if version == 0x45 else 6)] = int(rng.choice([6, 17]))
            if version == 0x45:
                buf[at + 6] = 0
            if link[i] == 1:
                buf[int(off[i]) + 12:int(off[i]) + 14] = (
                    b"\x08\x00" if version == 0x45 else b"\x86\xdd")
        batch = Batch(buf + bytes(PAD), off, sizes.astype(np.int64), sizes.astype(np.int64),
                      np.zeros(len(sizes)), link)
        reference, compiled = columns.numpy_columns(batch), columns._compiled_columns(batch)
        for name in reference.__dataclass_fields__:
            assert np.array_equal(getattr(compiled, name), getattr(reference, name)), name
