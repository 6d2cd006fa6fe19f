"""Replacing a UDP payload inside a captured frame, with the lengths and checksums that follow;
and bytes of a TCP segment by as many others, with its checksum.

Every header around the payload that counts its length is fixed: IPv4 (total length and
header checksum), IPv6 (payload length, extension headers included), UDP (length; the
checksum zeroed over IPv4, recomputed over IPv6), and in tunnels GTP-U's length, PPPoE's
length and GRE's optional checksum. Fragments are left alone: the datagram is not all there.
"""

from __future__ import annotations

from collections.abc import Callable

from flowscan.capture.decode import PROTO_TCP, PROTO_UDP, Decoded, Decoder

Layer = tuple[str, int]  # (kind, offset of its header)


Encap = tuple[str, ...] | None


class LayerDecoder(Decoder):
    """The packet decoder, noting where each length-bearing header sits, outermost first.
    A subclass, so that the scan's hot path pays nothing for it."""

    def __init__(self) -> None:
        super().__init__()
        self.layers: list[Layer] = []

    def decode(self, link: int, data: bytes) -> Decoded | None:
        self.layers = []
        return super().decode(link, data)

    def _note(self, layer: str, offset: int) -> None:
        self.layers.append((layer, offset))

    def _ipv4(self, data: bytes, off: int, encap: Encap, depth: int) -> Decoded | None:
        self._note("ipv4", off)
        return self._unfragmented(super()._ipv4, data, off, encap, depth)

    def _ipv6(self, data: bytes, off: int, encap: Encap, depth: int) -> Decoded | None:
        self._note("ipv6", off)
        return self._unfragmented(super()._ipv6, data, off, encap, depth)

    def _unfragmented(self, decode: Callable[[bytes, int, Encap, int], Decoded | None],
                      data: bytes, off: int, encap: Encap, depth: int) -> Decoded | None:
        seen = self.fragments_seen
        decoded = decode(data, off, encap, depth)
        if self.fragments_seen != seen:
            self._note("fragment", off)
        return decoded

    def _transport(self, data: bytes, proto: int, a0: int, a1: int, l4: int, end: int,
                   encap: Encap, depth: int) -> Decoded | None:
        if proto == PROTO_UDP:
            self._note("udp", l4)
        elif proto == PROTO_TCP:
            self._note("tcp", l4)
        return super()._transport(data, proto, a0, a1, l4, end, encap, depth)

    def _gtpu(self, data: bytes, g: int, end: int, encap: Encap, depth: int
              ) -> Decoded | None:
        self._note("gtpu", g)
        inner = super()._gtpu(data, g, end, encap, depth)
        if inner is None:  # not a G-PDU: the outer UDP datagram is the packet
            self.layers.pop()
        return inner

    def _gre(self, data: bytes, g: int, encap: Encap, depth: int) -> Decoded | None:
        self._note("gre", g)
        return super()._gre(data, g, encap, depth)


def _checksum(data: bytes | bytearray) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _u16(frame: bytearray, at: int) -> int:
    return int.from_bytes(frame[at:at + 2], "big")


class _Unfit(Exception):
    """A length field cannot hold the edited length (it was already inconsistent)."""


def _add16(frame: bytearray, at: int, delta: int) -> None:
    value = _u16(frame, at) + delta
    if not 0 <= value <= 0xFFFF:
        # A length that did not count the payload (UDP length 0, a GTP-U or PPPoE length
        # short of the packet) would go negative, or one near the top past 16 bits.
        raise _Unfit
    frame[at:at + 2] = value.to_bytes(2, "big")


def replace_udp_payload(data: bytes, layers: list[Layer], start: int, end: int,
                        new: bytes) -> bytes | None:
    """The frame with data[start:end] (inside the innermost UDP payload) replaced by new;
    None when it cannot be edited safely (a fragment, a jumbogram, no UDP header seen, or a
    length field that cannot hold the new length)."""
    if not layers or layers[-1][0] != "udp" or any(kind == "fragment" for kind, _ in layers):
        return None
    try:
        return _replace(data, layers, start, end, new)
    except _Unfit:
        return None


def _replace(data: bytes, layers: list[Layer], start: int, end: int, new: bytes
             ) -> bytes | None:
    delta = len(new) - (end - start)
    frame = bytearray(data[:start] + new + data[end:])
    # Innermost first: a checksum over a payload must see that payload's final bytes.
    for i in range(len(layers) - 1, -1, -1):
        kind, at = layers[i]
        outer_ip = next((layers[j] for j in range(i - 1, -1, -1)
                         if layers[j][0] in ("ipv4", "ipv6")), None)
        if kind == "ipv4":  # RFC 791 3.1
            if _u16(frame, at + 6) & 0x3FFF:
                return None
            _add16(frame, at + 2, delta)
            ihl = (frame[at] & 0x0F) * 4
            frame[at + 10:at + 12] = b"\0\0"
            frame[at + 10:at + 12] = _checksum(frame[at:at + ihl]).to_bytes(2, "big")
        elif kind == "ipv6":  # RFC 8200 3: the payload length counts extension headers too
            if not _u16(frame, at + 4):
                return None
            _add16(frame, at + 4, delta)
        elif kind == "udp":  # RFC 768
            if _u16(frame, at + 4) < 8:
                # Not a length (the decoder read the payload to the end of the IP datagram):
                # shifted by delta it could turn into one that cuts the new payload short.
                raise _Unfit
            _add16(frame, at + 4, delta)
            frame[at + 6:at + 8] = b"\0\0"  # over IPv4, zero says "no checksum"
            if outer_ip is not None and outer_ip[0] == "ipv6":
                # RFC 8200 8.1: mandatory over IPv6, with the pseudo-header.
                ip, length = outer_ip[1], _u16(frame, at + 4)
                pseudo = (bytes(frame[ip + 8:ip + 40]) + length.to_bytes(4, "big")
                          + b"\0\0\0\x11")
                checksum = _checksum(pseudo + bytes(frame[at:at + length])) or 0xFFFF
                frame[at + 6:at + 8] = checksum.to_bytes(2, "big")
        elif kind == "gtpu":  # 3GPP TS 29.281 5.1: length of what follows the 8-byte header
            _add16(frame, at + 2, delta)
        elif kind == "pppoe":  # RFC 2516 4: length of the PPPoE payload
            _add16(frame, at + 4, delta)
        elif kind == "gre" and frame[at] & 0x80 and outer_ip is not None:
            # RFC 2784 2.5: the checksum covers the GRE header and payload.
            ip = outer_ip[1]
            stop = (ip + _u16(frame, ip + 2) if outer_ip[0] == "ipv4"
                    else ip + 40 + _u16(frame, ip + 4))
            frame[at + 4:at + 6] = b"\0\0"
            frame[at + 4:at + 6] = _checksum(frame[at:stop]).to_bytes(2, "big")
    return bytes(frame)


def tcp_sequence(data: bytes, layers: list[Layer]) -> int | None:
    """The sequence number of the TCP segment in the frame (RFC 9293 section 3.1)."""
    if not layers or layers[-1][0] != "tcp":
        return None
    at = layers[-1][1]
    return int.from_bytes(data[at + 4:at + 8], "big")


def replace_tcp_bytes(data: bytes, layers: list[Layer], start: int, new: bytes
                      ) -> bytes | None:
    """The frame with data[start:start + len(new)] (inside the TCP payload) replaced by new,
    the same length, so that no sequence number moves; the TCP checksum is recomputed over
    the pseudo-header (RFC 9293 section 3.1, RFC 8200 section 8.1). None for a fragment or
    a frame without its whole segment."""
    if (not layers or layers[-1][0] != "tcp" or any(k == "fragment" for k, _ in layers)
            or len(layers) < 2 or layers[-2][0] not in ("ipv4", "ipv6")):
        return None
    (ip_kind, ip), (_, at) = layers[-2], layers[-1]
    frame = bytearray(data)
    if ip_kind == "ipv4":
        stop = ip + _u16(frame, ip + 2)
        pseudo = bytes(frame[ip + 12:ip + 20]) + b"\0\x06" + (stop - at).to_bytes(2, "big")
    else:
        stop = ip + 40 + _u16(frame, ip + 4)
        pseudo = (bytes(frame[ip + 8:ip + 40]) + (stop - at).to_bytes(4, "big")
                  + b"\0\0\0\x06")
    if stop > len(frame) or start + len(new) > stop:
        return None
    frame[start:start + len(new)] = new
    frame[at + 16:at + 18] = b"\0\0"
    frame[at + 16:at + 18] = _checksum(pseudo + bytes(frame[at:stop])).to_bytes(2, "big")
    if any(kind in ("udp", "gre") for kind, _ in layers[:-2]):
        return None  # an outer checksum would need the same care: left as captured
    return bytes(frame)
