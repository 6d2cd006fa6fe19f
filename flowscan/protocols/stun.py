"""STUN and TURN messages (RFC 8489, classic RFC 3489, TURN RFC 8656, ICE RFC 8445).

Attributes are parsed for what tells who talks to whom: mapped, peer and relayed addresses,
ICE roles and priority, USERNAME, SOFTWARE; vendor attributes are kept by number.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

MAGIC_COOKIE = 0x2112A442
HEADER = 20

CLASSES = ("request", "indication", "success", "error")
METHODS = {
    0x001: "binding", 0x002: "shared-secret", 0x003: "allocate", 0x004: "refresh",
    0x006: "send", 0x007: "data", 0x008: "create-permission", 0x009: "channel-bind",
    0x00A: "connect", 0x00B: "connection-bind", 0x00C: "connection-attempt",
}

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_CHANNEL_NUMBER = 0x000C
ATTR_LIFETIME = 0x000D
ATTR_XOR_PEER_ADDRESS = 0x0012
ATTR_DATA = 0x0013
ATTR_REALM = 0x0014
ATTR_NONCE = 0x0015
ATTR_XOR_RELAYED_ADDRESS = 0x0016
ATTR_REQUESTED_TRANSPORT = 0x0019
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_PRIORITY = 0x0024
ATTR_USE_CANDIDATE = 0x0025
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028
ATTR_ICE_CONTROLLED = 0x8029
ATTR_ICE_CONTROLLING = 0x802A
XOR_ADDRESSES = {ATTR_XOR_MAPPED_ADDRESS: "xor_mapped", ATTR_XOR_PEER_ADDRESS: "xor_peer",
                 ATTR_XOR_RELAYED_ADDRESS: "xor_relayed"}


@dataclass
class StunMessage:
    msg_class: str
    method: str
    transaction_id: bytes
    classic: bool  # RFC 3489: no magic cookie, 128-bit transaction id
    length: int  # whole message, header included
    attributes: list[int] = field(default_factory=list)
    username: str | None = None
    software: str | None = None
    mapped: tuple[str, int] | None = None
    xor_mapped: tuple[str, int] | None = None
    xor_peer: tuple[str, int] | None = None
    xor_relayed: tuple[str, int] | None = None
    priority: int | None = None
    ice_role: str | None = None  # controlling / controlled
    use_candidate: bool = False
    channel: int | None = None
    data: bytes | None = None  # DATA attribute of Send/Data indications (relayed payload)
    error_code: int | None = None
    integrity: bool = False
    fingerprint: bool = False

    @property
    def method_code(self) -> str:
        return f"{self.method}-{self.msg_class}"


def _address(value: bytes, xor_with: bytes | None) -> tuple[str, int] | None:
    """(XOR-)MAPPED-ADDRESS value (RFC 8489 sections 14.1 and 14.2)."""
    if len(value) < 8:
        return None
    family = value[1]
    port = int.from_bytes(value[2:4], "big")
    size = {1: 4, 2: 16}.get(family)
    raw = value[4:4 + size] if size else b""
    if not size or len(raw) < size:
        return None
    if xor_with is not None:
        port ^= MAGIC_COOKIE >> 16
        raw = (int.from_bytes(raw, "big") ^ int.from_bytes(xor_with[:size], "big")).to_bytes(
            size, "big")
    return socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, raw), port


def parse(data: bytes, *, exact: bool = True) -> StunMessage | None:
    """One STUN message at the start of data; exact: data must be exactly one message
    (a UDP datagram), else trailing bytes are allowed (a TCP stream)."""
    if len(data) < HEADER or data[0] & 0xC0:
        return None
    mtype = int.from_bytes(data[0:2], "big")
    length = int.from_bytes(data[2:4], "big")
    cookie = int.from_bytes(data[4:8], "big")
    classic = cookie != MAGIC_COOKIE
    if HEADER + length > len(data) or (exact and HEADER + length != len(data)):
        return None
    # RFC 8489 pads attributes to four bytes, so lengths are multiples of four; Microsoft's
    # MS-TURN does not pad, and its lengths need not be.
    padded = length % 4 == 0
    if not padded and not exact:
        return None
    msg_class = CLASSES[((mtype >> 7) & 0x2) | ((mtype >> 4) & 0x1)]
    method_code = (mtype & 0x000F) | ((mtype & 0x00E0) >> 1) | ((mtype & 0x3E00) >> 2)
    method = METHODS.get(method_code)
    if method is None:
        if classic:  # without the cookie only the known methods are believable
            return None
        method = f"method-0x{method_code:03x}"  # extension methods (RFC 8489 section 18.2)
    txid = data[4:20] if classic else data[8:20]
    msg = StunMessage(msg_class, method, txid, classic, HEADER + length)
    xor_key = data[4:20]
    pos, end = HEADER, HEADER + length
    xor_with = None if classic else xor_key
    while end - pos >= 4:  # type, length, value (RFC 8489 section 14)
        atype = (data[pos] << 8) | data[pos + 1]
        alen = (data[pos + 2] << 8) | data[pos + 3]
        pos += 4
        if pos + alen > end:
            break  # a partial attribute list is still the message we found
        value = data[pos:pos + alen]
        pos += alen
        if padded:
            pos = min(pos + (-alen % 4), end)
        msg.attributes.append(atype)
        _attribute(msg, atype, value, xor_with)
    return msg


def _attribute(msg: StunMessage, atype: int, value: bytes, xor_key: bytes | None) -> None:
    if atype in XOR_ADDRESSES and xor_key is not None:
        setattr(msg, XOR_ADDRESSES[atype], _address(value, xor_key))
    elif atype == ATTR_MAPPED_ADDRESS:
        msg.mapped = _address(value, None)
    elif atype == ATTR_USERNAME:
        try:
            msg.username = value.decode("utf-8")
        except UnicodeDecodeError:  # MS-TURN usernames are binary tokens
            msg.username = "0x" + value[:32].hex()
    elif atype == ATTR_SOFTWARE:
        msg.software = value.decode("utf-8", "replace").rstrip("\0")
    elif atype == ATTR_PRIORITY and len(value) == 4:
        msg.priority = int.from_bytes(value, "big")
    elif atype == ATTR_ICE_CONTROLLING:
        msg.ice_role = "controlling"
    elif atype == ATTR_ICE_CONTROLLED:
        msg.ice_role = "controlled"
    elif atype == ATTR_USE_CANDIDATE:
        msg.use_candidate = True
    elif atype == ATTR_CHANNEL_NUMBER and len(value) >= 2:
        msg.channel = int.from_bytes(value[:2], "big")
    elif atype == ATTR_DATA:
        msg.data = value
    elif atype == ATTR_ERROR_CODE and len(value) >= 4:
        msg.error_code = (value[2] & 0x07) * 100 + value[3]
    elif atype == ATTR_MESSAGE_INTEGRITY:
        msg.integrity = True
    elif atype == ATTR_FINGERPRINT:
        msg.fingerprint = True


@dataclass
class ChannelData:
    """TURN ChannelData (RFC 8656 section 12.4): channel number and the relayed payload."""

    channel: int
    payload: bytes


def parse_channel_data(data: bytes, *, exact: bool = False) -> ChannelData | None:
    if len(data) < 4 or not 0x40 <= data[0] <= 0x4F:
        return None
    channel = int.from_bytes(data[0:2], "big")
    length = int.from_bytes(data[2:4], "big")
    # Over UDP the datagram may carry padding up to a multiple of four (section 12.5).
    if 4 + length > len(data) or (exact and len(data) - 4 - length > 3):
        return None
    return ChannelData(channel, data[4:4 + length])


MAX_STREAM_MESSAGES = 64
_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")


def _unframed_length(data: bytes, pos: int) -> int | None:
    """Length of the STUN message or padded ChannelData frame at pos, if one starts there."""
    if pos + 4 > len(data):
        return None
    first = data[pos]
    length = int.from_bytes(data[pos + 2:pos + 4], "big")
    if first <= 1 and data[pos + 4:pos + 8] == _COOKIE:
        return HEADER + length
    if 0x40 <= first <= 0x4F:  # RFC 8656 12.5: over TCP, padded to a multiple of four
        return 4 + length + (-length % 4)
    return None


def split_stream(data: bytes) -> list[bytes]:
    """The messages of one direction of a TCP connection carrying STUN: RFC 4571 framing
    (ICE-TCP, RFC 6544: a 16-bit length before each STUN, DTLS or RTP packet), or STUN
    messages and ChannelData frames back to back (TURN over TCP, RFC 8489 6.2.2 and
    RFC 8656 12.5). Empty if the stream is neither; stops where a frame does not fit."""
    out: list[bytes] = []
    if _unframed_length(data, 0) is not None:
        pos = 0
        while len(out) < MAX_STREAM_MESSAGES:
            size = _unframed_length(data, pos)
            if size is None or pos + size > len(data):
                break
            out.append(data[pos:pos + size])
            pos += size
        return out
    # RFC 4571 framing: the first frame must hold a STUN message with the magic cookie.
    if len(data) < 2 + HEADER or data[6:10] != _COOKIE or data[2] > 1:
        return out
    pos = 0
    while len(out) < MAX_STREAM_MESSAGES and pos + 2 <= len(data):
        size = int.from_bytes(data[pos:pos + 2], "big")
        if not size:  # the null packet (RFC 4571 section 2): nothing to read
            pos += 2
            continue
        if pos + 2 + size > len(data):
            break
        out.append(data[pos + 2:pos + 2 + size])
        pos += 2 + size
    return out
