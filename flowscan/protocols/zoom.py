"""Zoom's UDP media encapsulation, server and peer-to-peer forms.

Not a published format; the layout follows the public measurement work on Zoom (Michel et
al., "Enabling Passive Measurement of Zoom Performance", IMC 2022) and what the shared
captures show. Server form (UDP 8801-8810): an 8-byte outer header, type byte 0x05 for
media with the direction in byte 7 (0 to Zoom, 4 from Zoom), then the inner header. Types
1-4 in the outer byte carry session set-up. Peer-to-peer form: the inner header alone.
Inner header: byte 0 is the media type, and the RTP or RTCP header sits at a type-specific
offset.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowscan.protocols import rtp
from flowscan.protocols.rtp import RtcpCompound, RtpHeader

SERVER_PORTS = range(8801, 8811)
OUTER_MEDIA = 0x05
OUTER_TYPES = frozenset((1, 2, 3, 4, 5))
DIRECTIONS = {0: "to-zoom", 4: "from-zoom"}
MEDIA_TYPES = {13: "screen-share", 15: "audio", 16: "video", 30: "screen-share",
               33: "rtcp", 34: "rtcp", 35: "rtcp"}


@dataclass
class ZoomPacket:
    form: str  # "server" or "p2p"
    outer_type: int | None
    direction: str | None
    inner_type: int | None
    media: str | None  # audio, video, screen-share, rtcp, or None when not recognised
    rtp: RtpHeader | None = None  # a field named as the module: the types imported by name
    rtcp: RtcpCompound | None = None


def _inner(data: bytes, start: int) -> tuple[int | None, str | None, rtp.RtpHeader | None,
                                            rtp.RtcpCompound | None]:
    if start >= len(data):
        return None, None, None, None
    inner_type = data[start]
    media = MEDIA_TYPES.get(inner_type)
    offset: int | None = None
    if inner_type == 15:
        offset = 19
    elif inner_type == 16:
        offset = 24 if len(data) > start + 20 and data[start + 20] == 0x02 else 20
    elif inner_type == 30:
        offset = 20
    elif inner_type == 13 and len(data) > start + 7 and data[start + 7] == 0x1E:
        offset = 27
    elif inner_type in (33, 34, 35):
        compound = rtp.parse_rtcp(data[start + 16:])
        return inner_type, media, None, compound
    header = rtp.parse_rtp(data[start + offset:]) if offset is not None else None
    return inner_type, media if header or offset is None else None, header, None


def parse_server(data: bytes) -> ZoomPacket | None:
    """A packet to or from a Zoom multimedia router (outer header first)."""
    if len(data) < 8 or data[0] not in OUTER_TYPES:
        return None
    if data[0] != OUTER_MEDIA:
        return ZoomPacket("server", data[0], None, None, None)
    inner_type, media, header, compound = _inner(data, 8)
    return ZoomPacket("server", OUTER_MEDIA, DIRECTIONS.get(data[7]), inner_type, media,
                      header, compound)


def parse_p2p(data: bytes) -> ZoomPacket | None:
    """A peer-to-peer media packet: recognised only when the RTP/RTCP inside checks out."""
    inner_type, media, header, compound = _inner(data, 0)
    if header is None and compound is None:
        return None
    return ZoomPacket("p2p", None, None, inner_type, media, header, compound)


@dataclass
class ZoomStun:
    """Zoom's classic-STUN binding requests carry attribute 0x0101 with ASCII digits."""

    attribute_value: str


def zoom_stun_signature(attributes: list[int], data: bytes) -> bool:
    return 0x0101 in attributes and b"1234567890" in data
