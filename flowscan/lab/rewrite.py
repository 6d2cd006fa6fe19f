"""Give a lab capture the public addresses its scenario assigns, consistently everywhere.

IP headers (checksums recomputed), STUN address attributes (XOR-MAPPED, XOR-PEER,
XOR-RELAYED and the plain forms), with MESSAGE-INTEGRITY and FINGERPRINT recomputed so the
messages still verify, and SIP/SDP bodies with Content-Length fixed. The key for
MESSAGE-INTEGRITY is whichever of the scenario's credentials verified the original message;
one that none verifies is left as captured (and counted). STUN relayed through TURN is
rewritten too: an ICE check a peer sent rides in ChannelData (RFC 8656 section 12) or in a
Send or Data indication's DATA attribute (sections 10-11), and its XOR-MAPPED-ADDRESS names
the peer as the relay saw it; the inner message is redone first, then its carrier's, with
every length kept.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flowscan.crypto.keylog import KeyLog
from flowscan.lab.tls_reseal import reseal_connection
from flowscan.protocols import framing, tls

MAGIC = 0x2112A442
XOR_ATTRS = {0x0020, 0x0012, 0x0016}
PLAIN_ATTRS = {0x0001, 0x802B, 0x802C}
ATTR_INTEGRITY = 0x0008
ATTR_DATA = 0x0013  # RFC 8656 section 18.4
ATTR_FINGERPRINT = 0x8028
FINGERPRINT_XOR = 0x5354554E


def short_term_key(password: str) -> bytes:
    return password.encode()


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """RFC 8489 section 9.2.2 (MD5 form)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()


def _rewrite_address(value: bytes, xor_key: bytes | None, mapping: dict[str, str]) -> bytes:
    family, port_raw, raw = value[1], value[2:4], value[4:]
    size = 4 if family == 1 else 16
    if len(raw) < size:
        return value
    mask = xor_key[:size] if xor_key else bytes(size)
    addr = bytes(a ^ b for a, b in zip(raw[:size], mask, strict=True))
    text = str(ipaddress.ip_address(addr))
    if text not in mapping:
        return value
    new = ipaddress.ip_address(mapping[text]).packed
    if len(new) != size:
        return value
    return value[:2] + port_raw + bytes(a ^ b for a, b in zip(new, mask, strict=True))


@dataclass
class StunTally:
    """What the STUN rewrite did inside TURN, in counts a manifest can carry."""

    in_channel_data: int = 0  # STUN messages rewritten inside ChannelData (RFC 8656 s. 12)
    in_data_attribute: int = 0  # inside a Send or Data indication's DATA (sections 10-11)
    unverified: int = 0  # left as captured: MESSAGE-INTEGRITY no credential verifies

    def describe(self) -> str | None:
        if not (self.in_channel_data or self.in_data_attribute or self.unverified):
            return None
        return (f"{self.in_channel_data} STUN messages inside ChannelData and "
                f"{self.in_data_attribute} inside a Send or Data indication's DATA given the "
                f"public addresses; {self.unverified} messages left as captured (their "
                f"MESSAGE-INTEGRITY verifies with none of the scenario's credentials)")


# A relayed ICE check sits one level down (RFC 8656 sections 11.4-11.6 and 12.4); deeper
# nesting is no stack's and only a crafted message's, so it is not followed.
MAX_DEPTH = 2
CHANNEL_DATA, DATA_ATTRIBUTE = "channel-data", "data-attribute"


@dataclass
class StunRewrite:
    """The address rewrite of STUN at every depth of TURN: a message on the wire, one a
    peer sent that the relay carries in ChannelData or in a DATA attribute, whose own
    MESSAGE-INTEGRITY and FINGERPRINT are redone, then the carrier's (the DATA attribute
    keeps its length, so the outer header and every TCP and TLS length stay valid).

    keys: the scenario's credentials; a message with MESSAGE-INTEGRITY that none of them
    verifies is left as captured and counted. None: no credentials at all, addresses
    rewritten regardless and MESSAGE-INTEGRITY left stale (the benchmarks' copies)."""

    mapping: dict[str, str]
    keys: list[bytes] | None
    tally: StunTally = field(default_factory=StunTally)

    def datagram(self, data: bytes) -> bytes:
        """A UDP payload or a TURN-over-TCP frame: a STUN message, or ChannelData (RFC
        8656 section 12.4) whose data, when a STUN message, is rewritten (its padding,
        section 12.5, kept)."""
        if not data[:1] or not 0x40 <= data[0] <= 0x4F:
            return self.message(data)
        end = 4 + int.from_bytes(data[2:4], "big")
        if end > len(data):
            return data
        return data[:4] + self.message(data[4:end], 1, CHANNEL_DATA) + data[end:]

    def message(self, data: bytes, depth: int = 0, carrier: str | None = None) -> bytes:
        """One STUN message (RFC 8489 section 5) with its addresses mapped, what its DATA
        attribute carries rewritten in turn, and its integrity and fingerprint redone."""
        if len(data) < 20 or data[0] & 0xC0 or int.from_bytes(data[4:8], "big") != MAGIC:
            return data
        if 20 + int.from_bytes(data[2:4], "big") != len(data):
            return data
        out = bytearray(data)
        before = replace(self.tally)
        integrity_at, fingerprint_at = self._attributes(out, depth)
        if out == data:
            return data
        if integrity_at is not None and self.keys is not None:
            key = _key_that_verifies(data, integrity_at, self.keys)
            if key is None:  # what was rewritten inside it is left with it, uncounted
                vars(self.tally).update(vars(before), unverified=before.unverified + 1)
                return data
            out[integrity_at + 4:integrity_at + 24] = _integrity(bytes(out), integrity_at, key)
        if fingerprint_at is not None:
            _fingerprint(out, fingerprint_at)
        if carrier == CHANNEL_DATA:
            self.tally.in_channel_data += 1
        elif carrier == DATA_ATTRIBUTE:
            self.tally.in_data_attribute += 1
        return bytes(out)

    def _attributes(self, out: bytearray, depth: int) -> tuple[int | None, int | None]:
        """Each attribute (RFC 8489 section 14) rewritten in place; where MESSAGE-INTEGRITY
        and FINGERPRINT sit."""
        xor_key = bytes(out[4:20])
        pos = 20
        integrity_at = fingerprint_at = None
        while pos + 4 <= len(out):
            atype, alen = struct.unpack_from(">HH", out, pos)
            value = bytes(out[pos + 4:pos + 4 + alen])
            if atype in XOR_ATTRS:
                out[pos + 4:pos + 4 + alen] = _rewrite_address(value, xor_key, self.mapping)
            elif atype in PLAIN_ATTRS:
                out[pos + 4:pos + 4 + alen] = _rewrite_address(value, None, self.mapping)
            elif atype == ATTR_DATA and depth < MAX_DEPTH:
                out[pos + 4:pos + 4 + alen] = self.message(value, depth + 1, DATA_ATTRIBUTE)
            elif atype == ATTR_INTEGRITY:
                integrity_at = pos
            elif atype == ATTR_FINGERPRINT:
                fingerprint_at = pos
            pos += 4 + alen + (-alen % 4)
        return integrity_at, fingerprint_at


def rewrite_stun(data: bytes, mapping: dict[str, str], keys: list[bytes] | None) -> bytes:
    """The message with its addresses mapped, at every depth, and its integrity and
    fingerprint redone (StunRewrite.message)."""
    return StunRewrite(mapping, keys).message(data)


def _fingerprint(out: bytearray, at: int) -> None:
    """RFC 8489 section 14.7: CRC-32 of the message up to the attribute, with the header's
    length counting it, xor 0x5354554e."""
    head = bytearray(out[:at])
    head[2:4] = (at + 8 - 20).to_bytes(2, "big")
    crc = (zlib.crc32(bytes(head)) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
    out[at + 4:at + 8] = crc.to_bytes(4, "big")


def _integrity(message: bytes, at: int, key: bytes) -> bytes:
    """RFC 8489 section 14.5: HMAC-SHA1 over the message up to the attribute, with the
    header's length counting up to and including MESSAGE-INTEGRITY."""
    head = bytearray(message[:at])
    head[2:4] = (at + 24 - 20).to_bytes(2, "big")
    return hmac.new(key, bytes(head), hashlib.sha1).digest()


def _key_that_verifies(message: bytes, at: int, keys: list[bytes]) -> bytes | None:
    expected = message[at + 4:at + 24]
    for key in keys:
        if hmac.compare_digest(_integrity(message, at, key), expected):
            return key
    return None


def rewrite_sip(data: bytes, mapping: dict[str, str]) -> bytes:
    """Addresses in the SIP headers and SDP body; Content-Length made right again."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not (head.startswith(b"SIP/2.0") or b" SIP/2.0\r\n" in head.split(b"\r\n")[0]
                       + b"\r\n"):
        return data
    for old, new in mapping.items():
        pattern = re.compile(re.escape(old.encode()) + rb"(?![0-9])")
        head = pattern.sub(new.encode(), head)
        body = pattern.sub(new.encode(), body)
    head = re.sub(rb"(?im)^(content-length|l)[ \t]*:[ \t]*\d+",
                  lambda m: m.group(0)[:m.group(0).rfind(b":") + 1] + b" " + str(len(body))
                  .encode(), head)
    return head + sep + body


def _text(data: bytes, mapping: dict[str, str]) -> bytes:
    for old, new in mapping.items():
        data = re.sub(re.escape(old.encode()) + rb"(?![0-9])", new.encode(), data)
    return data


def _pad(body: bytes) -> bytes:
    return body + b"\0" * (-len(body) % 4)


def rewrite_rtcp(data: bytes, mapping: dict[str, str]) -> bytes:
    """Addresses in the text of plain RTCP: SDES items (RFC 3550 section 6.5) and BYE
    reasons (section 6.6), each packet re-padded to 32-bit words with its length fixed.
    SRTCP is left alone: its text is ciphertext."""
    if len(data) < 8 or data[0] >> 6 != 2 or not 200 <= data[1] <= 204:
        return data
    out = bytearray()
    pos = 0
    while pos + 4 <= len(data):
        b0, ptype = data[pos], data[pos + 1]
        length = (int.from_bytes(data[pos + 2:pos + 4], "big") + 1) * 4
        packet = data[pos:pos + length]
        if b0 >> 6 != 2 or len(packet) < length:
            return data  # not a compound that parses to the end: leave it as it is
        count = b0 & 0x1F
        if ptype == 202:  # SDES: chunks of SSRC then (type, length, text) items, 0-ended
            body = bytearray()
            cur = 4
            for _ in range(count):
                body += packet[cur:cur + 4]
                cur += 4
                items = bytearray()
                while cur < len(packet) and packet[cur] != 0:
                    itype, ilen = packet[cur], packet[cur + 1]
                    text = _text(packet[cur + 2:cur + 2 + ilen], mapping)[:255]
                    items += bytes([itype, len(text)]) + text
                    cur += 2 + ilen
                body += _pad(bytes(items) + b"\0")
                while cur < len(packet) and packet[cur] == 0:
                    cur += 1
            packet = packet[:4] + bytes(body)
        elif ptype == 203 and len(packet) > 4 + 4 * count:  # BYE with a reason
            at = 4 + 4 * count
            reason = _text(packet[at + 1:at + 1 + packet[at]], mapping)[:255]
            packet = packet[:at] + _pad(bytes([len(reason)]) + reason)
        words = len(packet) // 4 - 1
        out += bytes([packet[0], packet[1]]) + words.to_bytes(2, "big") + packet[4:]
        pos += length
    return bytes(out) + data[pos:]


@dataclass
class Rewritten:
    """What rewrite_capture wrote: its packets, what it says of TLS it re-sealed, and what
    it did to STUN inside TURN."""

    packets: int
    notes: list[str] = field(default_factory=list)
    stun: StunTally = field(default_factory=StunTally)


def rewrite_capture(src: Path, dst: Path, mapping: dict[str, str], keys: list[bytes],
                    keylog: KeyLog | None = None) -> Rewritten:
    """Rewrite every packet of src into dst (pcap). With the scenario's key log, TURN over
    TLS is rewritten inside its records too (tls_reseal.py)."""
    # scapy (the lab extra) is imported here: `flowscan lab list`, and the key functions
    # the tests use, work without it.
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.packet import Raw
    from scapy.utils import PcapReader, wrpcap

    with PcapReader(str(src)) as reader:
        packets = list(reader)
    notes: list[str] = []
    tally = StunTally()
    streamed = _tcp_payloads(packets, mapping, keys, keylog, notes, tally)
    rewrite = StunRewrite(mapping, keys, tally)
    for index, packet in enumerate(packets):
        ip = packet.getlayer(IP)
        if ip is None:
            continue
        ip.src = mapping.get(ip.src, ip.src)
        ip.dst = mapping.get(ip.dst, ip.dst)
        del ip.chksum
        l4 = packet.getlayer(UDP) or packet.getlayer(TCP)
        if l4 is None:
            continue
        del l4.chksum
        payload = bytes(l4.payload)
        new = streamed.get(index) or rewrite_rtcp(
            rewrite_sip(rewrite.datagram(payload), mapping), mapping)
        if payload and new != payload:
            l4.remove_payload()
            l4.add_payload(Raw(new))
            if isinstance(l4, UDP):
                del l4.len
            del ip.len
            # The wire length PcapReader kept is the old one.
            packet.wirelen = len(bytes(packet))
    wrpcap(str(dst), packets)
    return Rewritten(len(packets), notes, tally)


Direction = tuple[str, int, str, int]  # source, source port, destination, destination port


@dataclass
class _Stream:
    """One TCP direction put back together from its segments' sequence numbers."""

    segments: list[tuple[int, int, bytes]]  # packet index, sequence number, payload
    base: int = 0
    data: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.base = min(seq for _, seq, _ in self.segments)  # no wrap in a lab call
        self.data = bytearray(max(seq - self.base + len(data)
                                  for _, seq, data in self.segments))
        for _, seq, data in self.segments:
            self.data[seq - self.base:seq - self.base + len(data)] = data

    def payloads(self) -> dict[int, bytes]:
        """Each segment cut out of the (rewritten) stream again, by packet index."""
        return {index: bytes(self.data[seq - self.base:seq - self.base + len(data)])
                for index, seq, data in self.segments}


def _tcp_streams(packets: list[Any]) -> dict[Direction, _Stream]:
    from scapy.layers.inet import IP, TCP

    directions: dict[Direction, list[tuple[int, int, bytes]]] = {}
    for index, packet in enumerate(packets):
        tcp = packet.getlayer(TCP)
        if tcp is not None and bytes(tcp.payload):
            ip = packet.getlayer(IP)
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            directions.setdefault(key, []).append((index, tcp.seq, bytes(tcp.payload)))
    return {key: _Stream(segments) for key, segments in directions.items()}


def rewrite_turn_stream(stream: bytearray, mapping: dict[str, str], keys: list[bytes],
                        tally: StunTally | None = None) -> None:
    """A direction framed as TURN over TCP (RFC 8656 section 3.1: STUN and ChannelData back
    to back) with its STUN messages rewritten in place, those inside ChannelData and DATA
    attributes too; the rewrite keeps every length."""
    if framing.detect(bytes(stream[:10])) != framing.TURN:
        return
    rewrite = StunRewrite(mapping, keys, tally if tally is not None else StunTally())
    pos = 0
    while isinstance(frame := framing.frame_at(stream, pos, framing.TURN), framing.Frame):
        stream[frame.start:frame.end] = rewrite.datagram(bytes(stream[frame.start:frame.end]))
        pos = frame.end


def _tcp_payloads(packets: list[Any], mapping: dict[str, str], keys: list[bytes],
                  keylog: KeyLog | None, notes: list[str], tally: StunTally
                  ) -> dict[int, bytes]:
    """New payloads (by packet index) for the segments of TCP connections framed as TURN
    over TCP, or, with the key log, TURN over TLS: a STUN message may span segments or
    share one, so each direction's stream is rebuilt from its sequence numbers, its STUN
    messages are rewritten in place (inside TLS, records re-sealed), and the segments cut
    out again."""
    streams = _tcp_streams(packets)
    edited: set[Direction] = set()

    def edit(data: bytearray) -> None:
        rewrite_turn_stream(data, mapping, keys, tally)

    for key, stream in streams.items():
        if framing.detect(bytes(stream.data[:10])) == framing.TURN:
            edit(stream.data)
            edited.add(key)
    if keylog is not None:
        notes += _reseal_tls(streams, edited, keylog, edit, mapping)
    return {index: data for key in edited for index, data in streams[key].payloads().items()}


def _reseal_tls(streams: dict[Direction, _Stream], edited: set[Direction], keylog: KeyLog,
                edit: Callable[[bytearray], None], mapping: dict[str, str]) -> list[str]:
    """Each TLS connection the key log opens, its TURN messages rewritten inside the
    records (tls_reseal.py); both its directions join edited. What was done, in words
    (public addresses, no key material)."""
    notes: list[str] = []
    for key, stream in streams.items():
        reverse = (key[2], key[3], key[0], key[1])
        if key in edited or reverse not in streams or stream.data[:1] != bytes(
                [tls.CONTENT_HANDSHAKE]) or not tls.looks_like_tls(bytes(stream.data[:5])):
            continue
        sides = reseal_connection(stream.data, streams[reverse].data, keylog, edit)
        if sides is None:
            continue
        edited |= {key, reverse}
        client, server = (f"{mapping.get(ip, ip)}:{port}" for ip, port in (key[:2], key[2:]))
        notes += [f"TLS {client} to {server}, {side}: {done.describe()}"
                  for side, done in zip(("client to server", "server to client"), sides,
                                        strict=True)]
    return notes
