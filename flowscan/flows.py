"""Bidirectional flow table with per-direction accounting and bounded payload samples.

Each flow sits in the table under both of its directional keys, so one dict lookup per
packet finds the flow and the direction (0: client to server, 1: server to client). Flows
idle for longer than the timeout are closed and handed to a callback, which keeps memory
bounded by the number of concurrently active flows, not by the capture's size.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import NamedTuple

from flowscan.capture.decode import PROTO_TCP, PROTO_UDP, Decoded

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10
SYN_ACK = TCP_SYN | TCP_ACK

# Payload samples are budgeted per direction and per kind of payload, by the first byte as
# RFC 7983 section 7 demultiplexes: STUN, DTLS, RTP/RTCP, anything else. ICE checks and a
# DTLS handshake then cannot use up the room that RTP needs, nor the other way round.
SAMPLE_CLASSES = 5
CLASS_OF: tuple[int, ...] = tuple(
    0 if b <= 3 else 1 if 20 <= b <= 63 else 2 if 128 <= b <= 191 else 3 for b in range(256))
OTHER_CLASS = 3
# A TCP segment's first byte says nothing of what it carries (TLS records would pass for
# DTLS): TCP is sampled as one stream, in the "other" class; except segments that are
# exactly one media frame of TURN over TCP or ICE-TCP (tcp_media_frame), sampled apart so
# that the media after a long ICE and TURN set-up is still seen.
CLASS_BUDGET = (4, 8, 8, 8, 8)  # packets per direction: STUN, DTLS, RTP/RTCP, other, TCP media
CLASS_BYTES = (2048, 2048, 512, 2048, 2048)  # bytes kept of each (RTP: headers and stats)
RTP_CLASS = 2
TCP_MEDIA_CLASS = 4
_COOKIE = b"\x21\x12\xa4\x42"  # STUN's magic cookie (RFC 8489 section 5)
# Later RTP samples, by the sender's packet count: runs of consecutive packets well after
# the first ones. Media whose keys are agreed in the media path (ZRTP, RFC 6189) starts in
# the clear and switches to SRTP after the exchange; the first samples show only the clear
# start. Identification reads these only where the media path carried a key exchange.
LATE_RTP = frozenset((*range(32, 40), *range(128, 136), *range(512, 520)))
# A flow's payload samples are packed into one bytearray as they come: per sample a head
# (timestamp, direction, payload length) and the payload. As a list of (timestamp,
# direction, payload) tuples a sample cost about 120 bytes of objects besides its payload,
# and the open flows of a long capture hold their full budgets; packed, a head is 13 bytes,
# and a closed flow's samples travel to a worker process as one string.
SAMPLE_HEAD = struct.Struct("<dBI")
pack_sample_head = SAMPLE_HEAD.pack
Sample = tuple[float, int, bytes]  # (timestamp, direction, payload)


def pack_samples(samples: list[Sample]) -> bytearray:
    """Samples packed as a flow holds them: the format's reference writer, for flows made
    by hand (tests); the flow table packs each sample inline, on its hot path."""
    packed = bytearray()
    for ts, d, payload in samples:
        packed += pack_sample_head(ts, d, len(payload))
        packed += payload
    return packed


def unpack_samples(packed: bytes | bytearray) -> list[Sample]:
    """A flow's packed samples as (timestamp, direction, payload), in the order taken."""
    out: list[Sample] = []
    at, end, size, unpack = 0, len(packed), SAMPLE_HEAD.size, SAMPLE_HEAD.unpack_from
    while at < end:
        ts, d, length = unpack(packed, at)
        at += size
        out.append((ts, d, bytes(packed[at:at + length])))
        at += length
    return out


# Distinct RTP SSRCs are counted per direction over the whole flow (fan-in shows an SFU),
# up to this many.
MAX_SSRCS = 64

# The TCP handshake is watched over a flow's first packets only (room for retransmitted SYNs).
HANDSHAKE_WINDOW = 8

# Consider a sweep for idle flows once per this many packets (a power of two minus one).
SWEEP_MASK = 0xFFF


class FlowKey(NamedTuple):
    """A flow's identity: transport protocol and the client and server endpoints."""

    proto: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int

    @property
    def transport(self) -> str:
        return transport_name(self.proto)


TRANSPORTS = {PROTO_TCP: "tcp", PROTO_UDP: "udp", 1: "icmp", 58: "icmpv6", 50: "esp",
              47: "gre", 132: "sctp"}


def transport_name(proto: int) -> str:
    """The report's name of an IP protocol number."""
    return TRANSPORTS.get(proto) or f"ip-proto-{proto}"


def split_key(proto: int, raw: bytes) -> FlowKey:
    """Turn a raw directional key (addresses then ports) into a FlowKey."""
    alen = (len(raw) - 4) // 2
    family = socket.AF_INET if alen == 4 else socket.AF_INET6
    return FlowKey(
        proto,
        socket.inet_ntop(family, raw[:alen]),
        int.from_bytes(raw[2 * alen:2 * alen + 2], "big"),
        socket.inet_ntop(family, raw[alen:2 * alen]),
        int.from_bytes(raw[2 * alen + 2:2 * alen + 4], "big"),
    )


def tcp_media_frame(data: bytes, ps: int, pe: int) -> bool:
    """Whether a TCP segment's payload data[ps:pe] holds whole frames that may carry media:
    TURN ChannelData messages padded to four bytes (RFC 8656 section 12.5), a Send or Data
    indication relaying RTP or RTCP (RFC 8656 sections 10 and 11, over TCP per section 3.1),
    or RFC 4571 frames (ICE-TCP, RFC 6544) holding RTP or RTCP. The first frame must end at
    the segment's end or be followed by a second of its kind, so that a chance match in a
    TLS or HTTP stream is unlikely; the vectorised twin is accounting._tcp_media."""
    n = pe - ps
    if n < 8 or ps + 8 > len(data):
        return False
    first = data[ps]
    length = int.from_bytes(data[ps + 2:ps + 4], "big")
    if 0x40 <= first <= 0x4F:
        end = 4 + length + (-length % 4)
        return 0 <= n - 4 - length <= 3 or (
            end + 4 <= n and data[ps + end:ps + end + 2] == data[ps:ps + 2])
    if first == 0 and data[ps + 1] in (0x16, 0x17):
        at = ps + 24 + int.from_bytes(data[ps + 22:ps + 24], "big")  # after XOR-PEER-ADDRESS
        return (data[ps + 4:ps + 8] == _COOKIE and 20 + length == n and at + 5 <= len(data)
                and data[at:at + 2] == b"\x00\x13" and 128 <= data[at + 4] <= 191)
    end = 2 + int.from_bytes(data[ps:ps + 2], "big")
    return 128 <= data[ps + 2] <= 191 and (end == n or (
        end + 3 <= n and ps + end + 3 <= len(data) and 128 <= data[ps + end + 2] <= 191))


def reverse_key(raw: bytes) -> bytes:
    alen = (len(raw) - 4) // 2
    return raw[alen:2 * alen] + raw[:alen] + raw[2 * alen + 2:] + raw[2 * alen:2 * alen + 2]


class FlowState:
    """A flow while it is open; the hot path touches only its lists."""

    __slots__ = (
        "ahead", "budget", "client_basis", "encap", "first", "flow_id", "handshake", "key",
        "last", "late", "octets", "pkts", "proto", "samples", "ssrcs", "tracking",
    )

    def __init__(
        self, flow_id: int, proto: int, key: bytes, ts: float, budget: tuple[int, ...],
        encap: tuple[str, ...] | None, client_basis: str,
    ) -> None:
        self.flow_id = flow_id
        self.proto = proto
        self.key = key  # client-to-server raw key
        self.pkts = [0, 0]
        self.octets = [0, 0]
        self.first = [0.0, 0.0]
        self.last = [ts, ts]
        self.samples = bytearray()  # packed (SAMPLE_HEAD)
        self.late = bytearray()  # packed RTP samples at LATE_RTP counts
        # Samples left per direction and class, at index direction * SAMPLE_CLASSES + class.
        self.budget = list(budget) * 2
        self.ssrcs: tuple[set[bytes], set[bytes]] = (set(), set())
        self.encap = encap
        self.client_basis = client_basis
        # TCP handshake times [SYN, SYN-ACK, ACK], zero where not seen.
        self.handshake = [0.0, 0.0, 0.0]
        self.tracking = proto == PROTO_TCP
        # Facts identified before the flow closed, with what their samples were
        # (identify_workers.LookAhead): None until then.
        self.ahead: tuple[object, object] | None = None

    def copy(self) -> FlowState:
        """A copy that the table's later packets leave as it is (a live view reads it
        while the capture is still read)."""
        other = FlowState.__new__(FlowState)
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(other, name, type(value)(value) if isinstance(value, list | bytearray)
                    else value)
        other.ssrcs = (set(self.ssrcs[0]), set(self.ssrcs[1]))
        return other

    @property
    def flow_key(self) -> FlowKey:
        return split_key(self.proto, self.key)

    @property
    def last_seen(self) -> float:
        return max(self.last)


def _client_side(proto: int, flags: int, raw: bytes) -> tuple[bool, str]:
    """Whether the first packet's sender is the client, and on what basis."""
    if proto == PROTO_TCP:
        if flags & SYN_ACK == TCP_SYN:
            return True, "tcp-syn"
        if flags & SYN_ACK == SYN_ACK:
            return False, "tcp-syn-ack"
    alen = (len(raw) - 4) // 2
    sport = int.from_bytes(raw[2 * alen:2 * alen + 2], "big")
    dport = int.from_bytes(raw[2 * alen + 2:2 * alen + 4], "big")
    if 0 < sport < 1024 <= dport:
        return False, "well-known-port"
    return True, "first-packet"


class FlowTable:
    def __init__(
        self,
        on_close: Callable[[FlowState], None],
        idle_timeout: float = 300.0,
        sample_packets: int | None = None,
        sample_bytes: int | None = None,
    ) -> None:
        self._on_close = on_close
        self.idle_timeout = idle_timeout
        # Per class; a single number given applies to every class (tests use that).
        self.class_budget = CLASS_BUDGET if sample_packets is None else (
            (sample_packets,) * SAMPLE_CLASSES)
        self.class_bytes = CLASS_BYTES if sample_bytes is None else (
            (sample_bytes,) * SAMPLE_CLASSES)
        self._tables: dict[int, dict[bytes, tuple[FlowState, int]]] = {
            PROTO_TCP: {}, PROTO_UDP: {},
        }
        self._next_id = 1
        self._count = 0
        self._now = 0.0
        self._last_sweep = 0.0
        self._sweep_every = min(idle_timeout, 60.0) / 2
        # Off while a batch is folded in: its flows' times are updated only at its end.
        self.autosweep = True
        self.active = 0
        self.peak_active = 0
        self.evicted = 0
        # The open flows whose samples, late samples or SSRCs grew since the set was last
        # taken, for whoever identifies flows before they close (None: nobody does; not
        # kept).
        self.touched: set[FlowState] | None = None

    def add(self, ts: float, wirelen: int, decoded: Decoded, data: bytes) -> None:
        proto, key, ps, pe, flags, encap = decoded
        table = self._tables.get(proto)
        if table is None:
            table = self._tables[proto] = {}
        entry = table.get(key)
        if entry is None:
            entry = self._open(table, proto, key, ts, flags, encap)
        elif ts - entry[0].last[0] > self.idle_timeout < ts - entry[0].last[1]:
            # Silent for longer than the timeout in both directions: a new flow begins.
            self._close(entry[0])
            entry = self._open(table, proto, key, ts, flags, encap)
        flow, d = entry
        if not flow.pkts[d]:
            flow.first[d] = ts
        flow.pkts[d] += 1
        flow.octets[d] += wirelen
        flow.last[d] = ts
        if pe > ps:
            if proto != PROTO_TCP:
                c = CLASS_OF[data[ps]] if ps < len(data) else OTHER_CLASS
            else:
                c = TCP_MEDIA_CLASS if tcp_media_frame(data, ps, pe) else OTHER_CLASS
            i = d * SAMPLE_CLASSES + c
            grew = False
            if flow.budget[i]:
                flow.budget[i] -= 1
                payload = data[ps:min(pe, ps + self.class_bytes[c])]
                flow.samples += pack_sample_head(ts, d, len(payload))
                flow.samples += payload
                grew = True
            if c == RTP_CLASS and flow.pkts[d] in LATE_RTP:
                payload = data[ps:min(pe, ps + self.class_bytes[c])]
                flow.late += pack_sample_head(ts, d, len(payload))
                flow.late += payload
                grew = True
            if c == RTP_CLASS and pe - ps >= 12 and ps + 12 <= len(data) and not (
                    192 <= data[ps + 1] <= 223):  # RTP, not RTCP (RFC 5761 section 4)
                seen, ssrc = flow.ssrcs[d], data[ps + 8:ps + 12]
                if len(seen) < MAX_SSRCS and ssrc not in seen:
                    seen.add(ssrc)
                    grew = True
            if grew and self.touched is not None:
                self.touched.add(flow)
        if flow.tracking:
            self._handshake(flow, d, flags, ts)
        if ts > self._now:
            self._now = ts
        self._count += 1
        if not self._count & SWEEP_MASK and self.autosweep:
            self.sweep_if_due()

    def _open(
        self, table: dict[bytes, tuple[FlowState, int]], proto: int, key: bytes, ts: float,
        flags: int, encap: tuple[str, ...] | None,
    ) -> tuple[FlowState, int]:
        forward, basis = _client_side(proto, flags, key)
        rkey = reverse_key(key)
        if rkey == key:  # both ends share address and port: one entry, direction 0
            forward = True
        flow = FlowState(
            self._next_id, proto, key if forward else rkey, ts, self.class_budget, encap,
            basis,
        )
        self._next_id += 1
        entry = (flow, 0) if forward else (flow, 1)
        if rkey != key:
            table[rkey] = (flow, 1) if forward else (flow, 0)
        table[key] = entry
        self.active += 1
        if self.active > self.peak_active:
            self.peak_active = self.active
        return entry

    @staticmethod
    def _handshake(flow: FlowState, d: int, flags: int, ts: float) -> None:
        """Times of SYN, SYN-ACK and the client's ACK (RFC 9293 section 3.5)."""
        hs = flow.handshake
        if flags & SYN_ACK == TCP_SYN and d == 0:
            hs[0] = ts
        elif flags & SYN_ACK == SYN_ACK and d == 1:
            if not hs[1]:
                hs[1] = ts
        elif flags & TCP_ACK and d == 0 and hs[1]:
            hs[2] = ts
            flow.tracking = False
        if flow.pkts[0] + flow.pkts[1] >= HANDSHAKE_WINDOW:
            flow.tracking = False

    def lookup(self, proto: int, key: bytes) -> tuple[FlowState, int] | None:
        """The open flow for a directional raw key, and the key's direction in it."""
        table = self._tables.get(proto)
        return None if table is None else table.get(key)

    def note_time(self, ts: float) -> None:
        if ts > self._now:
            self._now = ts

    def sweep_if_due(self) -> None:
        if self._now - self._last_sweep >= self._sweep_every:
            self._last_sweep = self._now
            self.sweep(self._now - self.idle_timeout)

    def _close(self, flow: FlowState) -> None:
        table = self._tables[flow.proto]
        for key in (flow.key, reverse_key(flow.key)):
            entry = table.get(key)
            if entry is not None and entry[0] is flow:
                del table[key]
        self.active -= 1
        self.evicted += 1
        if self.touched is not None:
            # Not kept past its close: a batch of flows that each open and close (idle
            # timeout churn) held ~1 KB a flow here until the next look.
            self.touched.discard(flow)
        self._on_close(flow)

    def sweep(self, cutoff: float) -> None:
        """Close every flow whose last packet is older than cutoff, oldest flow first."""
        closing: dict[int, FlowState] = {}
        for table in self._tables.values():
            for flow, d in table.values():
                if d == 0 and flow.last_seen < cutoff:
                    closing[flow.flow_id] = flow
        for flow_id in sorted(closing):
            self._close(closing[flow_id])

    def open_flows(self) -> list[FlowState]:
        """The open flows in the order they began; the table is left as it is."""
        remaining: dict[int, FlowState] = {}
        for table in self._tables.values():
            for flow, _d in table.values():
                remaining[flow.flow_id] = flow
        return [remaining[flow_id] for flow_id in sorted(remaining)]

    def close_all(self) -> None:
        """Close every open flow in the order the flows began."""
        remaining = self.open_flows()
        for table in self._tables.values():
            table.clear()
        for flow in remaining:
            self.active -= 1
            self._on_close(flow)


