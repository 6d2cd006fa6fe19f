"""Link layers, IPv4/IPv6, UDP/TCP and tunnels, decoded straight from bytes.

This is the hot path: no objects per packet, only integer reads and one slice for the flow
key. A decoded packet is the tuple
    (ip protocol, flow key, payload start, payload end, tcp flags, encapsulation)
where the flow key is source address + destination address + source port + destination
port as raw bytes (12 bytes for IPv4, 36 for IPv6; ports are zero for other protocols), and
encapsulation is None or a tuple of labels of the layers that were removed ("vlan:100",
"gtp-u", ...). Short or inconsistent packets raise IndexError or ValueError; the caller
counts them.
"""

from __future__ import annotations

# Link types (tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_OPENBSD = 14
LINKTYPE_RAW_BSD = 12
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

LINK_NAMES = {
    LINKTYPE_NULL: "null", LINKTYPE_ETHERNET: "ethernet", LINKTYPE_RAW_BSD: "raw",
    LINKTYPE_RAW_OPENBSD: "raw", LINKTYPE_RAW: "raw", LINKTYPE_LOOP: "loop",
    LINKTYPE_LINUX_SLL: "linux-sll", LINKTYPE_IPV4: "ipv4", LINKTYPE_IPV6: "ipv6",
    LINKTYPE_LINUX_SLL2: "linux-sll2",
}
SUPPORTED_LINKS = frozenset(LINK_NAMES)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100)
ETH_PPPOE_SESSION = 0x8864
ETH_MPLS = (0x8847, 0x8848)
ETH_TEB = 0x6558  # transparent Ethernet bridging inside GRE

PROTO_ICMP = 1
PROTO_IPIP = 4
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_IPV6 = 41
PROTO_GRE = 47

UDP_GTPU = 2152  # 3GPP TS 29.281
UDP_VXLAN = 4789  # RFC 7348

# IPv6 extension headers whose length is (hdr ext len + 1) * 8 octets (RFC 8200 section 4).
IPV6_EXT = frozenset((0, 43, 60, 135, 139, 140))
IPV6_FRAGMENT = 44
IPV6_AH = 51

MAX_TUNNEL_DEPTH = 4
MAX_PENDING_FRAGMENTS = 4096

NO_PORTS = b"\0\0\0\0"
GTPU = ("gtp-u",)
GRE = ("gre",)
VXLAN = ("vxlan",)
IPIP = ("ip-in-ip",)

# A decoded packet; see the module docstring.
Decoded = tuple[int, bytes, int, int, int, tuple[str, ...] | None]


class Decoder:
    """Decodes packets; keeps the little state that IP fragments need."""

    def __init__(self) -> None:
        # (addresses, ip id, protocol) of a first fragment -> its flow key, so that later
        # fragments of the same datagram are accounted to the same flow.
        self._fragments: dict[bytes, bytes] = {}
        self.fragments_seen = 0
        self.fragments_unmatched = 0
        self.non_ip = 0

    def decode(self, link: int, data: bytes) -> Decoded | None:
        if link == LINKTYPE_ETHERNET:
            return self._ethertype(data, (data[12] << 8) | data[13], 14, None, 0)
        if link == LINKTYPE_LINUX_SLL:
            return self._ethertype(data, (data[14] << 8) | data[15], 16, None, 0)
        if link == LINKTYPE_LINUX_SLL2:
            return self._ethertype(data, (data[0] << 8) | data[1], 20, None, 0)
        if link in (LINKTYPE_RAW, LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD):
            return self._ip(data, 0, None, 0)
        if link == LINKTYPE_IPV4:
            return self._ipv4(data, 0, None, 0)
        if link == LINKTYPE_IPV6:
            return self._ipv6(data, 0, None, 0)
        if link in (LINKTYPE_NULL, LINKTYPE_LOOP):
            # Address family in the writer's byte order (NULL) or network order (LOOP);
            # one of the outer bytes is zero either way. 2 is AF_INET; 24, 28 and 30 are
            # the BSDs' AF_INET6.
            family = data[0] | data[3]
            if family == 2:
                return self._ipv4(data, 4, None, 0)
            if family in (24, 28, 30):
                return self._ipv6(data, 4, None, 0)
            self.non_ip += 1
            return None
        return None

    def _note(self, layer: str, offset: int) -> None:
        """Where a layer with a length field starts; only capture.edit needs to know."""

    def _ethertype(
        self, data: bytes, et: int, off: int, encap: tuple[str, ...] | None, depth: int
    ) -> Decoded | None:
        if et == ETH_IPV4:
            return self._ipv4(data, off, encap, depth)
        if et == ETH_IPV6:
            return self._ipv6(data, off, encap, depth)
        labels: list[str] = list(encap or ())
        for _ in range(8):
            if et in ETH_VLAN:  # IEEE 802.1Q / 802.1ad tag: TCI then the inner type
                labels.append(f"vlan:{((data[off] << 8) | data[off + 1]) & 0x0FFF}")
                et = (data[off + 2] << 8) | data[off + 3]
                off += 4
            elif et == ETH_PPPOE_SESSION:  # RFC 2516: 6-byte header, then PPP protocol
                self._note("pppoe", off)
                ppp = (data[off + 6] << 8) | data[off + 7]
                labels.append("pppoe")
                off += 8
                et = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}.get(ppp, 0)
            elif et in ETH_MPLS:  # RFC 3032: labels until bottom of stack, then guess IP
                labels.append("mpls")
                while not data[off + 2] & 1:
                    off += 4
                off += 4
                et = {4: ETH_IPV4, 6: ETH_IPV6}.get(data[off] >> 4, 0)
            else:
                break
            if et == ETH_IPV4:
                return self._ipv4(data, off, tuple(labels), depth)
            if et == ETH_IPV6:
                return self._ipv6(data, off, tuple(labels), depth)
        self.non_ip += 1
        return None

    def _ip(
        self, data: bytes, off: int, encap: tuple[str, ...] | None, depth: int
    ) -> Decoded | None:
        version = data[off] >> 4
        if version == 4:
            return self._ipv4(data, off, encap, depth)
        if version == 6:
            return self._ipv6(data, off, encap, depth)
        self.non_ip += 1
        return None

    def _ipv4(
        self, data: bytes, off: int, encap: tuple[str, ...] | None, depth: int
    ) -> Decoded | None:
        # RFC 791 section 3.1.
        b0 = data[off]
        ihl = (b0 & 0x0F) << 2
        if b0 >> 4 != 4 or ihl < 20:
            raise ValueError("bad IPv4 header")
        if len(data) < off + 20:  # the addresses must all be there to key a flow
            raise IndexError("IPv4 header cut short")
        end = off + ((data[off + 2] << 8) | data[off + 3])
        proto = data[off + 9]
        l4 = off + ihl
        if end < l4:
            raise ValueError("bad IPv4 total length")
        frag = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF
        if frag:
            self.fragments_seen += 1
            fid = data[off + 12:off + 20] + data[off + 4:off + 6] + bytes((proto,))
            if frag & 0x1FFF:  # not the first fragment: no transport header here
                key = self._fragments.get(fid)
                if key is None:
                    self.fragments_unmatched += 1
                    key = data[off + 12:off + 20] + NO_PORTS
                return proto, key, l4, l4, 0, encap
            decoded = self._transport(data, proto, off + 12, off + 20, l4, end, encap, depth)
            if decoded is not None:
                if len(self._fragments) >= MAX_PENDING_FRAGMENTS:
                    self._fragments.clear()
                self._fragments[fid] = decoded[1]
            return decoded
        return self._transport(data, proto, off + 12, off + 20, l4, end, encap, depth)

    def _ipv6(
        self, data: bytes, off: int, encap: tuple[str, ...] | None, depth: int
    ) -> Decoded | None:
        # RFC 8200 sections 3 and 4.
        if data[off] >> 4 != 6:
            raise ValueError("bad IPv6 header")
        if len(data) < off + 40:
            raise IndexError("IPv6 header cut short")
        plen = (data[off + 4] << 8) | data[off + 5]
        end = off + 40 + plen if plen else len(data)
        nh = data[off + 6]
        pos = off + 40
        first_fragment_id: bytes | None = None
        for _ in range(16):
            if nh in IPV6_EXT:
                nh, pos = data[pos], pos + ((data[pos + 1] + 1) << 3)
            elif nh == IPV6_FRAGMENT:
                self.fragments_seen += 1
                fid = data[off + 8:off + 40] + data[pos + 4:pos + 8]
                offset = ((data[pos + 2] << 8) | data[pos + 3]) >> 3
                nh, pos = data[pos], pos + 8
                if offset:
                    key = self._fragments.get(fid)
                    if key is None:
                        self.fragments_unmatched += 1
                        key = data[off + 8:off + 40] + NO_PORTS
                    return nh, key, pos, pos, 0, encap
                first_fragment_id = fid
            elif nh == IPV6_AH:
                nh, pos = data[pos], pos + ((data[pos + 1] + 2) << 2)
            else:
                break
        decoded = self._transport(data, nh, off + 8, off + 40, pos, end, encap, depth)
        if first_fragment_id is not None and decoded is not None:
            if len(self._fragments) >= MAX_PENDING_FRAGMENTS:
                self._fragments.clear()
            self._fragments[first_fragment_id] = decoded[1]
        return decoded

    def _transport(
        self, data: bytes, proto: int, a0: int, a1: int, l4: int, end: int,
        encap: tuple[str, ...] | None, depth: int,
    ) -> Decoded | None:
        """UDP and TCP (RFC 768, RFC 9293 section 3.1); tunnels are unwrapped here."""
        if proto == PROTO_UDP:
            sport = (data[l4] << 8) | data[l4 + 1]
            dport = (data[l4 + 2] << 8) | data[l4 + 3]
            ulen = (data[l4 + 4] << 8) | data[l4 + 5]
            pend = l4 + ulen if ulen >= 8 and l4 + ulen < end else end
            if depth < MAX_TUNNEL_DEPTH:
                if sport == UDP_GTPU or dport == UDP_GTPU:
                    inner = self._gtpu(data, l4 + 8, pend, encap, depth)
                    if inner is not None:
                        return inner
                elif dport == UDP_VXLAN and pend - l4 >= 8 + 8 + 14 and data[l4 + 8] & 0x08:
                    et = (data[l4 + 28] << 8) | data[l4 + 29]
                    return self._ethertype(data, et, l4 + 30, _with(encap, VXLAN), depth + 1)
            return PROTO_UDP, data[a0:a1] + data[l4:l4 + 4], l4 + 8, pend, 0, encap
        if proto == PROTO_TCP:
            doff = (data[l4 + 12] >> 4) << 2
            if doff < 20:
                raise ValueError("bad TCP data offset")
            return PROTO_TCP, data[a0:a1] + data[l4:l4 + 4], l4 + doff, end, data[l4 + 13], encap
        if depth < MAX_TUNNEL_DEPTH:
            if proto == PROTO_GRE:
                inner = self._gre(data, l4, encap, depth)
                if inner is not None:
                    return inner
            elif proto == PROTO_IPIP:
                return self._ipv4(data, l4, _with(encap, IPIP), depth + 1)
            elif proto == PROTO_IPV6:
                return self._ipv6(data, l4, _with(encap, IPIP), depth + 1)
        return proto, data[a0:a1] + NO_PORTS, l4, end, 0, encap

    def _gtpu(
        self, data: bytes, g: int, end: int, encap: tuple[str, ...] | None, depth: int
    ) -> Decoded | None:
        """GTPv1-U G-PDU (3GPP TS 29.281 section 5): the inner packet is an IP datagram."""
        if end - g < 8:
            return None
        flags = data[g]
        if flags >> 5 != 1 or not flags & 0x10 or data[g + 1] != 0xFF:
            return None  # not GTPv1 G-PDU: echo and signalling stay on the outer flow
        pos = g + 8
        if flags & 0x07:
            pos = g + 12
            if flags & 0x04:  # extension headers: length in 4-octet units, next type last
                nxt = data[g + 11]
                while nxt:
                    elen = data[pos] << 2
                    if not elen:
                        return None
                    nxt = data[pos + elen - 1]
                    pos += elen
        if pos >= end or data[pos] >> 4 not in (4, 6):
            return None
        return self._ip(data, pos, _with(encap, GTPU), depth + 1)

    def _gre(
        self, data: bytes, g: int, encap: tuple[str, ...] | None, depth: int
    ) -> Decoded | None:
        """GRE (RFC 2784, key and sequence of RFC 2890)."""
        flags = data[g]
        ptype = (data[g + 2] << 8) | data[g + 3]
        pos = g + 4
        if flags & 0x80:
            pos += 4  # checksum and reserved
        if flags & 0x20:
            pos += 4  # key
        if flags & 0x10:
            pos += 4  # sequence number
        if ptype == ETH_TEB:
            return self._ethertype(
                data, (data[pos + 12] << 8) | data[pos + 13], pos + 14, _with(encap, GRE),
                depth + 1,
            )
        if ptype in (ETH_IPV4, ETH_IPV6):
            return self._ip(data, pos, _with(encap, GRE), depth + 1)
        return None


def _with(encap: tuple[str, ...] | None, label: tuple[str, ...]) -> tuple[str, ...]:
    return label if encap is None else encap + label
