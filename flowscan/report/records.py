"""The report's record of one closed flow, made from the flow table's state.

Both engines close flows into this record, so their flow tables compare field by field.
"""

from __future__ import annotations

import sys

from flowscan.flows import FlowState, split_key
from flowscan.report.model import DirectionStats, Endpoint, Flow, TcpHandshake

PROTO_TCP = 6


def _ms(a: float, b: float) -> float | None:
    return round((b - a) * 1000.0, 3) if a and b and b >= a else None


def timestamp(value: float) -> float:
    return round(value, 6)  # microseconds, as the README's conventions say


# A direction that carried no packet: one object for every such flow (DirectionStats is
# frozen), where many flows are one-way (scans, unanswered requests, a capture of one side).
NO_PACKETS = DirectionStats(0, 0, None, None)


def _direction(state: FlowState, d: int) -> DirectionStats:
    if not state.pkts[d] and not state.octets[d]:
        return NO_PACKETS
    return DirectionStats(state.pkts[d], state.octets[d], timestamp(state.first[d]),
                          timestamp(state.last[d]))


def flow_record(state: FlowState) -> Flow:
    """The report's view of a closed flow. Its addresses are interned (one string per
    address, whatever the number of its flows: the capture host's is in nearly all)."""
    key = split_key(state.proto, state.key)
    handshake = None
    if state.proto == PROTO_TCP and any(state.handshake):
        syn, synack, ack = state.handshake
        handshake = TcpHandshake(_ms(syn, synack), _ms(synack, ack))
    return Flow(
        id=state.flow_id,
        transport=key.transport,
        client=Endpoint(sys.intern(key.client_ip), key.client_port),
        server=Endpoint(sys.intern(key.server_ip), key.server_port),
        client_basis=state.client_basis,
        to_server=_direction(state, 0),
        to_client=_direction(state, 1),
        encapsulation=state.encap or (),
        tcp_handshake=handshake,
    )
