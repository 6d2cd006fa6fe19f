"""Editing a UDP payload inside a frame: every enclosing length and checksum follows, in
tunnels too. Each edited frame is compared byte for byte with the frame Scapy builds around
the new payload (Scapy computes the lengths and checksums itself)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scapy.contrib.gtp import GTP_U_Header
from scapy.layers.inet import GRE, IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

from flowscan.capture.decode import LINKTYPE_ETHERNET
from flowscan.capture.edit import LayerDecoder, replace_udp_payload

A4, B4 = "198.51.100.1", "203.0.113.9"
A6, B6 = "2001:db8::1", "2001:db8::2"
OLD, NEW = b"\x80" + b"A" * 59, b"\x80" + b"B" * 43


def udp4(payload: bytes) -> Packet:  # UDP over IPv4 goes without a checksum once edited
    return IP(src=A4, dst=B4) / UDP(sport=40000, dport=50000, chksum=0) / Raw(payload)


def udp6(payload: bytes) -> Packet:
    return IPv6(src=A6, dst=B6) / UDP(sport=40000, dport=50000) / Raw(payload)


STACKS: dict[str, Callable[[bytes], Packet]] = {
    "ipv4": lambda p: Ether() / udp4(p),
    "ipv6": lambda p: Ether() / udp6(p),
    "vlan": lambda p: Ether() / Dot1Q(vlan=100) / udp4(p),
    "qinq-ipv6-hop-by-hop": lambda p: Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=100) / IPv6(
        src=A6, dst=B6) / IPv6ExtHdrHopByHop() / UDP(sport=40000, dport=50000) / Raw(p),
    "vxlan": lambda p: Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(
        sport=12345, dport=4789, chksum=0) / VXLAN(vni=42) / Ether() / udp6(p),
    "gtp-u-over-ipv6": lambda p: Ether() / IPv6(src="2001:db8:1::1", dst="2001:db8:1::2")
    / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=7, gtp_type=255) / udp4(p),
    "gre-with-checksum": lambda p: Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(
        chksum_present=1) / udp4(p),
    "pppoe": lambda p: Ether() / PPPoE(sessionid=3) / PPP(proto=0x0021) / udp4(p),
    "ipv6-in-ipv4": lambda p: Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / udp6(p),
}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_edited_frame_is_what_scapy_builds_around_the_new_payload(stack: str) -> None:
    build = STACKS[stack]
    frame, expected = bytes(build(OLD)), bytes(build(NEW))
    decoder = LayerDecoder()
    decoded = decoder.decode(LINKTYPE_ETHERNET, frame)
    assert decoded is not None and frame[decoded[2]:decoded[3]] == OLD
    edited = replace_udp_payload(frame, decoder.layers, decoded[2], decoded[3], NEW)
    assert edited == expected


def test_fragments_are_not_edited() -> None:
    frame = bytes(Ether() / IP(src=A4, dst=B4, flags="MF", id=9) / UDP(
        sport=40000, dport=50000) / Raw(OLD))
    decoder = LayerDecoder()
    decoded = decoder.decode(LINKTYPE_ETHERNET, frame)
    assert decoded is not None
    assert replace_udp_payload(frame, decoder.layers, decoded[2], decoded[3], NEW) is None


@pytest.mark.parametrize("length", [0, 7, 0xFFFF])
def test_a_length_field_that_cannot_hold_the_new_length_is_not_edited(length: int) -> None:
    """Found by fuzzing (tests/fuzz, target decode): a UDP length that did not count the
    payload (0 to 7 mean "to the end of the IP datagram" to the decoder) went negative when
    the payload shrank, one near the top past 16 bits when it grew, and the edit raised
    OverflowError in the middle of `flowscan decrypt`; shifted without overflowing, 0-7
    could become a valid length that cut the new payload short."""
    frame = bytes(Ether() / IP(src=A4, dst=B4) / UDP(sport=40000, dport=50000, len=length)
                  / Raw(OLD))
    decoder = LayerDecoder()
    decoded = decoder.decode(LINKTYPE_ETHERNET, frame)
    assert decoded is not None and frame[decoded[2]:decoded[3]] == OLD
    new = NEW if length == 0 else OLD + b"grown"
    assert replace_udp_payload(frame, decoder.layers, decoded[2], decoded[3], new) is None
