"""Replacing a UDP payload inside a captured frame, with the lengths and checksums that follow.

Only frames whose UDP datagram sits directly in the outermost IP header are edited: inside a
tunnel, the outer headers' lengths would need the same care, so such frames are left as they
were and counted by the caller.
"""

from __future__ import annotations

from flowscan.capture.decode import PROTO_UDP, Decoded


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_header(data: bytes, l4: int, key: bytes) -> tuple[int, int] | None:
    """(offset, version) of the IP header right before the UDP header at l4, or None."""
    if len(key) == 12:  # IPv4: the header length is in the header, so look for it
        for ihl in range(5, 16):
            s = l4 - ihl * 4
            if s >= 0 and data[s] == 0x40 | ihl and data[s + 9] == PROTO_UDP \
                    and data[s + 12:s + 20] == key[:8]:
                return s, 4
        return None
    s = l4 - 40  # IPv6 without extension headers
    if s >= 0 and data[s] >> 4 == 6 and data[s + 6] == PROTO_UDP and data[s + 8:s + 40] == key[:32]:
        return s, 6
    return None


def replace_udp_payload(data: bytes, decoded: Decoded, start: int, end: int,
                        new: bytes) -> bytes | None:
    """The frame with data[start:end] (inside the UDP payload) replaced by new; None when the
    frame cannot be edited safely (tunnelled, fragmented, IPv6 extension headers)."""
    proto, key, payload_start, _payload_end, _flags, encap = decoded
    if proto != PROTO_UDP or encap is not None:
        return None
    l4 = payload_start - 8
    found = _ip_header(data, l4, key)
    if found is None:
        return None
    ip, version = found
    delta = len(new) - (end - start)
    frame = bytearray(data[:start] + new + data[end:])
    udp_length = int.from_bytes(frame[l4 + 4:l4 + 6], "big") + delta
    frame[l4 + 4:l4 + 6] = udp_length.to_bytes(2, "big")
    frame[l4 + 6:l4 + 8] = b"\0\0"
    if version == 4:
        if int.from_bytes(frame[ip + 6:ip + 8], "big") & 0x3FFF:
            return None  # a fragment: the datagram is not all here
        total = int.from_bytes(frame[ip + 2:ip + 4], "big") + delta
        frame[ip + 2:ip + 4] = total.to_bytes(2, "big")
        ihl = (frame[ip] & 0x0F) * 4
        frame[ip + 10:ip + 12] = b"\0\0"
        frame[ip + 10:ip + 12] = _checksum(bytes(frame[ip:ip + ihl])).to_bytes(2, "big")
        # UDP over IPv4 may go without a checksum (RFC 768): zero says "none".
        return bytes(frame)
    plen = int.from_bytes(frame[ip + 4:ip + 6], "big") + delta
    frame[ip + 4:ip + 6] = plen.to_bytes(2, "big")
    # UDP over IPv6 must carry one (RFC 8200 section 8.1): over the pseudo-header too.
    segment = bytes(frame[l4:l4 + udp_length])
    pseudo = bytes(frame[ip + 8:ip + 40]) + udp_length.to_bytes(4, "big") + b"\0\0\0\x11"
    checksum = _checksum(pseudo + segment) or 0xFFFF
    frame[l4 + 6:l4 + 8] = checksum.to_bytes(2, "big")
    return bytes(frame)
