"""STUN over TCP: TURN messages and ChannelData back to back (RFC 8489 6.2.2, RFC 8656
12.5), and ICE-TCP's RFC 4571 framing (RFC 6544), each message then read as a datagram."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from capfiles import ether, pcap
from packets import dtls_client_hello, ice_check, ice_response, srtp_like, stun_message
from scapy.layers.inet import IP, TCP

import flowscan
from flowscan.protocols import stun

ALLOCATE, CHANNEL_BIND = 0x0003, 0x0009
XOR_PEER = struct.pack(">BBH", 0, 1, 50000 ^ 0x2112) + bytes(a ^ b for a, b in zip(
    bytes([203, 0, 113, 5]), bytes.fromhex("2112A442"), strict=True))


def channel_data(payload: bytes, channel: int = 0x4000) -> bytes:
    """Padded to a multiple of four, as over TCP (RFC 8656 section 12.5)."""
    return struct.pack(">HH", channel, len(payload)) + payload + b"\0" * (-len(payload) % 4)


def framed(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


def test_split_stream_turn_messages_and_padded_channel_data() -> None:
    allocate = stun_message(ALLOCATE, os.urandom(12), [(0x0019, b"\x11\0\0\0")])
    rtp = srtp_like(1, 0x1234, size=41)  # 53 bytes: three of padding on TCP
    data = allocate + channel_data(rtp) + stun_message(0x0101, os.urandom(12), [])
    messages = stun.split_stream(data)
    assert [len(m) for m in messages] == [len(allocate), 4 + 53 + 3, 20]
    channel = stun.parse_channel_data(messages[1], exact=True)
    assert channel is not None and channel.payload == rtp
    assert stun.split_stream(data[:-5]) == messages[:2]  # a cut frame ends the walk


def test_split_stream_rfc4571_framing() -> None:
    parts = [ice_check(os.urandom(12), True), dtls_client_hello(), srtp_like(7, 0x99)]
    data = b"".join(framed(p) for p in parts)
    assert stun.split_stream(data) == parts
    assert stun.split_stream(b"\x00\x10" + b"GET / HTTP/1.1\r\n") == []
    assert stun.split_stream(b"") == []


def _tcp_flow(tmp_path: Path, forward: list[bytes], backward: list[bytes]) -> str:
    a, b = ("192.0.2.10", 40000), ("198.51.100.77", 3478)
    out: list[tuple[float, bytes]] = []
    seq = {a: 1000, b: 5000}
    for i in range(max(len(forward), len(backward))):
        for src, dst, segments in ((a, b, forward), (b, a, backward)):
            if i < len(segments):
                out.append((1.0 + len(out) / 100, bytes(
                    ether() / IP(src=src[0], dst=dst[0])
                    / TCP(sport=src[1], dport=dst[1], flags="PA", seq=seq[src])
                    / segments[i])))
                seq[src] += len(segments[i])
    path = tmp_path / "tcp.pcap"
    path.write_bytes(pcap(out))
    return str(path)


def test_turn_over_tcp_relays_media_in_channel_data(tmp_path: Path) -> None:
    tx = [os.urandom(12) for _ in range(2)]
    forward = [stun_message(ALLOCATE, tx[0], [(0x0019, b"\x11\0\0\0")]),
               stun_message(CHANNEL_BIND, tx[1], [(0x000C, b"\x40\x00\0\0"),
                                                  (0x0012, XOR_PEER)]),
               # two frames in one segment: the boundary falls inside the stream
               channel_data(srtp_like(1, 0x1111, size=41))
               + channel_data(srtp_like(2, 0x1111, size=41))]
    backward = [stun_message(0x0103, tx[0], []), stun_message(0x0109, tx[1], []),
                channel_data(srtp_like(1, 0x2222, size=160))]
    (flow,) = flowscan.scan(_tcp_flow(tmp_path, forward, backward)).flows
    assert {"stun", "turn", "rtp"} <= set(flow.protocols)
    turn = flow.details["turn"]
    assert turn.channel_data == 3 and turn.relayed == {"rtp": 3}
    assert flow.details["stun"].peer_addresses == ["203.0.113.5:50000"]


def test_ice_tcp_framing_carries_checks_dtls_and_media(tmp_path: Path) -> None:
    tx, tx2 = os.urandom(12), os.urandom(12)
    forward = [framed(ice_check(tx, True)) + framed(ice_response(tx2)),
               framed(dtls_client_hello()),
               b"".join(framed(srtp_like(i, 0x1111)) for i in range(3))]
    backward = [framed(ice_response(tx)) + framed(ice_check(tx2, False)),
                b"".join(framed(srtp_like(i, 0x2222)) for i in range(3))]
    (flow,) = flowscan.scan(_tcp_flow(tmp_path, forward, backward)).flows
    assert {"stun", "dtls", "rtp"} <= set(flow.protocols)
    assert flow.details["stun"].ice == "full"
    assert flow.details["rtp"].packets == {"client": 3, "server": 3}
