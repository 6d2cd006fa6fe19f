"""The report's record of one closed flow, made from the flow table's state.

Both engines close flows into this record, so their flow tables compare field by field.
"""

from __future__ import annotations

import socket
import sys

from flowscan.flows import FlowState, transport_name
from flowscan.report.model import DirectionStats, Endpoint, Flow, TcpHandshake

PROTO_TCP = 6


def _ms(a: float, b: float) -> float | None:
    return round((b - a) * 1000.0, 3) if a and b and b >= a else None


# Below this magnitude a float times 1e6 is within a quarter of the exact product (its
# spacing there is at most 0.5), so the whole microsecond nearest to it is the exact one's.
_SCALED_EXACT = 2.0 ** 52


def timestamp(value: float) -> float:
    """round(value, 6): microseconds, as the README's conventions say; the same float,
    without round's decimal conversion (a quarter of a flow record's cost) where the value
    is clearly near a whole microsecond, as a capture's timestamps are. There the nearest
    microsecond r is that of the exact value, and r / 1e6 (an exact integer divided by an
    exact 1e6, correctly rounded by IEEE 754) is the float round() returns: the nearest
    to r microseconds. Anywhere else (near a half microsecond, nanosecond timestamps off
    the grid, huge, zero, or not a number) round() decides."""
    scaled = value * 1e6
    if -_SCALED_EXACT < scaled < _SCALED_EXACT:
        micros = round(scaled)
        if micros and -0.2 <= scaled - micros <= 0.2:
            return micros / 1e6
    return round(value, 6)


# A direction that carried no packet: one object for every such flow (DirectionStats is
# frozen), where many flows are one-way (scans, unanswered requests, a capture of one side).
NO_PACKETS = DirectionStats(0, 0, None, None)


# Each endpoint once, found by its packed address and port before any text is made: a
# server's port is the same in all its flows, so flows to one server share its Endpoint
# (frozen); a client's port usually changes per flow, but a socket used again after the
# idle timeout (keep-alives, a long call's flows) is one Endpoint for all its flows. Each
# table starts afresh when it reaches ENDPOINTS_MAX, so many endpoints cannot grow it
# without end.
_SERVERS: dict[bytes, Endpoint] = {}
_CLIENTS: dict[bytes, Endpoint] = {}
ENDPOINTS_MAX = 16384


def _endpoint(packed: bytes, known: dict[bytes, Endpoint]) -> Endpoint:
    """The Endpoint of a packed address followed by its port (two bytes, network order)."""
    found = known.get(packed)
    if found is None:
        if len(known) >= ENDPOINTS_MAX:
            known.clear()
        found = known[packed] = Endpoint(_address(packed[:-2]),
                                         int.from_bytes(packed[-2:], "big"))
    return found


def _direction(state: FlowState, d: int) -> DirectionStats:
    if not state.pkts[d]:
        return NO_PACKETS if not state.octets[d] else DirectionStats(
            0, state.octets[d], None, None)
    first = timestamp(state.first[d])
    # One float object for both where they are equal (a direction of one packet: most
    # flows of a scan, or of a socket used again after the idle timeout); zero aside,
    # whose sign equality does not see.
    same = state.last[d] == state.first[d] and state.first[d] != 0.0
    return DirectionStats(state.pkts[d], state.octets[d], first,
                          first if same else timestamp(state.last[d]))


# Packed address -> its text, interned: the capture host's address is in nearly every
# flow, so inet_ntop and intern run once per address, not twice per flow. Emptied when
# it reaches MAX_ADDRESSES, so a capture of many addresses cannot grow it without end.
_ADDRESSES: dict[bytes, str] = {}
MAX_ADDRESSES = 1 << 16


def _address(packed: bytes) -> str:
    text = _ADDRESSES.get(packed)
    if text is None:
        if len(_ADDRESSES) >= MAX_ADDRESSES:
            _ADDRESSES.clear()
        family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
        text = _ADDRESSES[packed] = sys.intern(socket.inet_ntop(family, packed))
    return text


def flow_record(state: FlowState) -> Flow:
    """The report's view of a closed flow. It runs once per flow, so it builds the record
    directly rather than through split_key's FlowKey (the same fields). Its addresses are
    interned (one string per address, whatever the number of its flows: the capture
    host's is in nearly all)."""
    raw, proto = state.key, state.proto
    alen = (len(raw) - 4) // 2
    handshake = None
    if proto == PROTO_TCP and any(state.handshake):
        syn, synack, ack = state.handshake
        handshake = TcpHandshake(_ms(syn, synack), _ms(synack, ack))
    return Flow(
        id=state.flow_id,
        transport=transport_name(proto),
        client=_endpoint(raw[:alen] + raw[2 * alen:2 * alen + 2], _CLIENTS),
        server=_endpoint(raw[alen:2 * alen] + raw[2 * alen + 2:2 * alen + 4], _SERVERS),
        client_basis=state.client_basis,
        to_server=_direction(state, 0),
        to_client=_direction(state, 1),
        encapsulation=state.encap or (),
        tcp_handshake=handshake,
    )

