"""RTP and RTCP headers (RFC 3550 sections 5.1 and 6.4), header extensions (RFC 8285),
and telling the two apart on one port (RFC 5761 section 4)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTCP_TYPES = {200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 204: "APP", 205: "RTPFB",
              206: "PSFB", 207: "XR"}
ONE_BYTE_PROFILE = 0xBEDE


@dataclass
class RtpHeader:
    version: int
    padding: bool
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extension_form: str | None = None  # "one-byte" or "two-byte" (RFC 8285)
    extension_ids: list[int] = field(default_factory=list)
    header_length: int = 12
    payload_length: int = 0


def is_rtcp_type(second_byte: int) -> bool:
    """RFC 5761 section 4: RTCP packet types 192-223 never collide with RTP's."""
    return 192 <= second_byte <= 223


_FIXED_HEADER = struct.Struct(">BBHII").unpack_from  # RFC 3550 section 5.1


def parse_rtp(data: bytes) -> RtpHeader | None:
    n = len(data)
    if n < 12 or data[0] >> 6 != 2 or is_rtcp_type(data[1]):
        return None
    b0, b1, sequence, timestamp, ssrc = _FIXED_HEADER(data)
    head = RtpHeader(2, bool(b0 & 0x20), bool(b1 & 0x80), b1 & 0x7F, sequence, timestamp,
                     ssrc)
    pos = 12
    count = b0 & 0x0F
    if count:
        if pos + 4 * count > n:
            return None
        head.csrcs = list(struct.unpack_from(f">{count}I", data, pos))
        pos += 4 * count
    if b0 & 0x10:
        if pos + 4 > n:
            return None
        profile, words = struct.unpack_from(">HH", data, pos)
        pos += 4
        if pos + 4 * words > n:
            return None
        head.extension_profile = profile
        _extension(head, profile, data[pos:pos + 4 * words])
        pos += 4 * words
    head.header_length = pos
    padding = data[-1] if head.padding and data[-1] else 0
    head.payload_length = n - pos - padding
    if head.payload_length < 0:
        return None
    return head


def _extension(head: RtpHeader, profile: int, body: bytes) -> None:
    pos = 0
    if profile == ONE_BYTE_PROFILE:  # RFC 8285 section 4.2
        head.extension_form = "one-byte"
        while pos < len(body):
            ident, length = body[pos] >> 4, (body[pos] & 0x0F) + 1
            if ident == 0:  # padding byte
                pos += 1
                continue
            if ident == 15:
                break
            head.extension_ids.append(ident)
            pos += 1 + length
    elif profile >> 4 == 0x100:  # RFC 8285 section 4.3
        head.extension_form = "two-byte"
        while pos + 1 < len(body):
            ident, length = body[pos], body[pos + 1]
            if ident == 0:
                pos += 1
                continue
            head.extension_ids.append(ident)
            pos += 2 + length


@dataclass
class RtcpPacket:
    packet_type: int
    count: int
    length: int  # bytes, header included
    ssrc: int | None

    @property
    def name(self) -> str:
        return RTCP_TYPES.get(self.packet_type, str(self.packet_type))


@dataclass
class RtcpCompound:
    packets: list[RtcpPacket]
    trailing: int  # bytes after the last well-formed packet (SRTCP index and tag, or cipher)


def parse_rtcp(data: bytes) -> RtcpCompound | None:
    """A compound RTCP packet; the first packet must be well formed (its header is sent in
    the clear even in SRTCP, RFC 3711 section 3.4)."""
    packets: list[RtcpPacket] = []
    pos = 0
    while pos + 4 <= len(data):
        b0, ptype = data[pos], data[pos + 1]
        length = (int.from_bytes(data[pos + 2:pos + 4], "big") + 1) * 4
        if b0 >> 6 != 2 or ptype not in RTCP_TYPES or pos + length > len(data):
            break
        ssrc = int.from_bytes(data[pos + 4:pos + 8], "big") if length >= 8 else None
        packets.append(RtcpPacket(ptype, b0 & 0x1F, length, ssrc))
        pos += length
    if not packets:
        return None
    return RtcpCompound(packets, len(data) - pos)


def sdes_cnames(data: bytes, compound: RtcpCompound) -> list[str]:
    """The CNAME items (type 1) of a compound's SDES packets (RFC 3550 section 6.5): chunks
    of an SSRC and items, each chunk ended by a null item and padded to 32 bits."""
    names: list[str] = []
    pos = 0
    for packet in compound.packets:
        if packet.packet_type == 202:
            chunk, end = pos + 4, pos + packet.length
            for _ in range(packet.count):
                item = chunk + 4
                while item + 2 <= end and data[item] != 0:
                    kind, size = data[item], data[item + 1]
                    if kind == 1 and item + 2 + size <= end:
                        names.append(data[item + 2:item + 2 + size].decode("utf-8", "replace"))
                    item += 2 + size
                chunk = (item + 4) & ~3  # past the null item, to the next 32-bit boundary
                if chunk >= end:
                    break
        pos += packet.length
    return names


# Where the SRTCP trailer's E flag and 31-bit index sit, counted from the end of the packet
# (RFC 3711 section 3.4): before an 80-bit HMAC-SHA1 tag, or last with AES-GCM (RFC 7714
# section 9, where the tag precedes it).
SRTCP_TRAILER_OFFSETS = {"hmac-sha1-80": 14, "aead": 4}


def srtcp_trailers(data: bytes) -> dict[str, int]:
    """The SRTCP indices this packet would carry under each layout whose E flag is set."""
    found = {}
    for layout, back in SRTCP_TRAILER_OFFSETS.items():
        if len(data) >= 8 + back:
            word = int.from_bytes(data[len(data) - back:len(data) - back + 4], "big")
            if word >> 31:
                found[layout] = word & 0x7FFFFFFF
    return found
