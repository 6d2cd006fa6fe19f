"""The lab's address rewrite reaches the STUN a TURN relay carries: ICE connectivity checks
inside ChannelData (RFC 8656 section 12.4) and inside a Send or Data indication's DATA
attribute (sections 10-11), as browsers send them through a relay. Crafted RFC-shaped
messages: a binding success response naming the lab's private XOR-MAPPED-ADDRESS, rewritten
with its MESSAGE-INTEGRITY (the ICE password, RFC 8445 section 7.2.2) and FINGERPRINT redone,
then its carrier's; every length kept; one no credential verifies left as captured."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib
from pathlib import Path

from flowscan.lab.rewrite import (
    StunRewrite,
    StunTally,
    long_term_key,
    rewrite_capture,
    rewrite_stun,
    rewrite_turn_stream,
    short_term_key,
)
from flowscan.protocols import stun

COOKIE = b"\x21\x12\xa4\x42"
MAPPING = {"10.77.0.1": "81.2.69.160", "10.77.0.2": "24.114.20.15",
           "10.77.0.3": "78.46.100.21"}
ICE = short_term_key("KWBWxT2LZhAZreB6BV0A6c")  # bob's ICE password, from his SDP
TURN = long_term_key("lab", "lab.example", "lab-secret")
FOREIGN = short_term_key("not-the-scenario's-password")
BINDING_SUCCESS, DATA_INDICATION, SEND_INDICATION = 0x0101, 0x0117, 0x0016


def xor_address(atype: int, address: str, port: int) -> bytes:
    """An XOR-*-ADDRESS attribute, IPv4 (RFC 8489 section 14.2)."""
    raw = ipaddress.IPv4Address(address).packed
    value = b"\x00\x01" + (port ^ 0x2112).to_bytes(2, "big") + bytes(
        a ^ b for a, b in zip(raw, COOKIE, strict=True))
    return struct.pack(">HH", atype, len(value)) + value


def attribute(atype: int, value: bytes) -> bytes:
    return struct.pack(">HH", atype, len(value)) + value + bytes(-len(value) % 4)


def message(mtype: int, tid: int, attributes: bytes, key: bytes | None) -> bytes:
    """A STUN message: its attributes, MESSAGE-INTEGRITY with key when given (RFC 8489
    section 14.5), and FINGERPRINT (section 14.7)."""
    transaction = bytes([tid]) * 12
    body = attributes
    if key is not None:
        head = struct.pack(">HH", mtype, len(body) + 24) + COOKIE + transaction
        body += struct.pack(">HH", 0x0008, 20) + hmac.new(key, head + body,
                                                          hashlib.sha1).digest()
    head = struct.pack(">HH", mtype, len(body) + 8) + COOKIE + transaction
    crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    return head + body + struct.pack(">HHI", 0x8028, 4, crc)


def check(message_: bytes, key: bytes | None) -> bool:
    """Its MESSAGE-INTEGRITY verifies with key (or it has none and key is None), and its
    FINGERPRINT verifies: an independent walk of the attributes."""
    pos, mac_ok, crc_ok = 20, key is None, False
    while pos + 4 <= len(message_):
        atype, alen = struct.unpack_from(">HH", message_, pos)
        head = bytearray(message_[:pos])
        if atype == 0x0008 and key is not None:
            head[2:4] = (pos + 24 - 20).to_bytes(2, "big")
            mac_ok = hmac.new(key, bytes(head), hashlib.sha1).digest() == message_[
                pos + 4:pos + 24]
        if atype == 0x8028:
            head[2:4] = (pos + 8 - 20).to_bytes(2, "big")
            crc_ok = ((zlib.crc32(bytes(head)) ^ 0x5354554E) & 0xFFFFFFFF).to_bytes(
                4, "big") == message_[pos + 4:pos + 8]
        pos += 4 + alen + (-alen % 4)
    return mac_ok and crc_ok


def check_response(key: bytes | None = ICE, address: str = "10.77.0.2") -> bytes:
    """Bob's answer to alice's connectivity check: he saw her at the relay's address."""
    return message(BINDING_SUCCESS, 7, xor_address(0x0020, address, 34063), key)


def channel_data(payload: bytes) -> bytes:
    """ChannelData on channel 0x4000, padded to four bytes as over TCP (section 12.5)."""
    return b"\x40\x00" + len(payload).to_bytes(2, "big") + payload + bytes(-len(payload) % 4)


def data_indication(inner: bytes, key: bytes | None = None, mtype: int = DATA_INDICATION
                    ) -> bytes:
    """A Data indication from the relay (section 11.4): the peer's address and its
    datagram; RFC 8656 indications carry no MESSAGE-INTEGRITY, but key adds one so the
    carrier's own integrity is tested too."""
    return message(mtype, 9, xor_address(0x0012, "10.77.0.3", 49162)
                   + attribute(0x0013, inner), key)


def inner_of(carrier: bytes) -> bytes:
    """The STUN message a ChannelData or a Send or Data indication carries."""
    if 0x40 <= carrier[0] <= 0x4F:
        found = stun.parse_channel_data(carrier)
        assert found is not None
        return found.payload
    parsed = stun.parse(carrier)
    assert parsed is not None and parsed.data is not None
    return parsed.data


def test_channel_data_carried_response_rewritten() -> None:
    inner = check_response()
    for carrier in (channel_data(inner), channel_data(inner)[:4 + len(inner)]):  # TCP, UDP
        rewrite = StunRewrite(MAPPING, [TURN, ICE])
        out = rewrite.datagram(carrier)
        assert len(out) == len(carrier) and out[:4] == carrier[:4]
        assert out[4 + len(inner):] == carrier[4 + len(inner):]  # the padding
        parsed = stun.parse(inner_of(out))
        assert parsed is not None and parsed.xor_mapped == ("24.114.20.15", 34063)
        assert check(inner_of(out), ICE)
        assert rewrite.tally == StunTally(in_channel_data=1)


def test_data_indication_carried_response_rewritten() -> None:
    inner = check_response()
    for key in (None, TURN):  # RFC-shaped, and with the carrier's own integrity
        carrier = data_indication(inner, key)
        rewrite = StunRewrite(MAPPING, [ICE, TURN])
        out = rewrite.datagram(carrier)
        assert len(out) == len(carrier) and out[:4] == carrier[:4]
        outer = stun.parse(out)
        assert outer is not None and outer.xor_peer == ("78.46.100.21", 49162)
        assert outer.data is not None and len(outer.data) == len(inner)
        assert stun.parse(outer.data).xor_mapped == ("24.114.20.15", 34063)  # type: ignore[union-attr]
        assert check(outer.data, ICE) and check(out, key)
        assert rewrite.tally == StunTally(in_data_attribute=1)


def test_send_indication_over_tcp_stream_rewritten_in_place() -> None:
    """TURN over TCP: a Send indication then ChannelData back to back (section 3.1), both
    carrying checks; the stream keeps its length and the frames their offsets."""
    request = message(0x0001, 3, attribute(0x0024, bytes(4)), ICE)  # a check, no address
    stream = bytearray(data_indication(request, mtype=SEND_INDICATION)
                       + channel_data(check_response(address="10.77.0.3")))
    before = bytes(stream)
    tally = StunTally()
    rewrite_turn_stream(stream, MAPPING, [ICE], tally)
    assert len(stream) == len(before)
    send = bytes(stream[:len(data_indication(request))])
    assert inner_of(send) == request and check(send, None)  # its peer address changed
    response = inner_of(bytes(stream[len(send):]))
    assert stun.parse(response).xor_mapped == ("78.46.100.21", 34063)  # type: ignore[union-attr]
    assert check(response, ICE)
    assert tally == StunTally(in_channel_data=1)


def test_unverified_inner_message_left_as_captured_and_counted() -> None:
    """A relayed check whose MESSAGE-INTEGRITY no scenario credential verifies keeps its
    addresses and its bytes (rewriting it would break its integrity), and is counted; its
    carrier's own addresses are still rewritten."""
    stranger = check_response(FOREIGN)
    rewrite = StunRewrite(MAPPING, [ICE, TURN])
    assert rewrite.datagram(channel_data(stranger)) == channel_data(stranger)
    out = rewrite.datagram(data_indication(stranger))
    assert inner_of(out) == stranger
    assert stun.parse(out).xor_peer[0] == "78.46.100.21"  # type: ignore[union-attr,index]
    assert rewrite.tally == StunTally(unverified=2)
    assert "2 messages left as captured" in str(rewrite.tally.describe())
    assert StunTally().describe() is None
    # A carrier that does not verify keeps what it carries as captured, and the inner
    # message it would have had rewritten is not counted.
    foreign_carrier = data_indication(check_response(), FOREIGN, SEND_INDICATION)
    rewrite = StunRewrite(MAPPING, [ICE, TURN])
    assert rewrite.datagram(foreign_carrier) == foreign_carrier
    assert rewrite.tally == StunTally(unverified=1)


def test_nesting_beyond_a_relayed_check_not_followed() -> None:
    """A DATA attribute inside a relayed message is followed once more at most; a deep
    crafted nest ends without error, its innermost address untouched."""
    innermost = check_response(None)
    nest = innermost
    for _ in range(400):
        body = xor_address(0x0012, "10.77.0.3", 49162) + attribute(0x0013, nest)
        nest = struct.pack(">HH", DATA_INDICATION, len(body)) + COOKIE + bytes(12) + body
    out = rewrite_stun(nest, MAPPING, None)
    assert len(out) == len(nest) and out.endswith(innermost)
    assert stun.parse(out).xor_peer[0] == "78.46.100.21"  # type: ignore[union-attr,index]
    shallow = data_indication(data_indication(innermost))
    assert inner_of(inner_of(rewrite_stun(shallow, MAPPING, None))) != innermost


def test_rewrite_capture_reaches_channel_data_over_udp(tmp_path: Path) -> None:
    """The whole rewrite on a UDP capture (scapy, as the lab runs it): a ChannelData
    datagram's check rewritten, counted, its UDP length unchanged."""
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap, wrpcap

    carrier = channel_data(check_response())
    packet = IP(src="10.77.0.3", dst="10.77.0.1") / UDP(sport=3478, dport=46633) / carrier
    wrpcap(str(tmp_path / "raw.pcap"), [packet])
    done = rewrite_capture(tmp_path / "raw.pcap", tmp_path / "out.pcap", MAPPING, [ICE])
    assert done.stun == StunTally(in_channel_data=1)
    after = rdpcap(str(tmp_path / "out.pcap"))[0]
    payload = bytes(after[UDP].payload)
    assert after[IP].src == "78.46.100.21" and len(payload) == len(carrier)
    assert stun.parse(inner_of(payload)).xor_mapped[0] == "24.114.20.15"  # type: ignore[union-attr,index]
