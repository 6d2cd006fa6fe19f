"""The report's record of one closed flow, made from the flow table's state.

Both engines close flows into this record, so their flow tables compare field by field.
"""

from __future__ import annotations

from flowscan.flows import FlowState, split_key
from flowscan.report.model import DirectionStats, Endpoint, Flow, TcpHandshake

PROTO_TCP = 6


def _ms(a: float, b: float) -> float | None:
    return round((b - a) * 1000.0, 3) if a and b and b >= a else None


def timestamp(value: float) -> float:
    return round(value, 6)  # microseconds, as the README's conventions say


def flow_record(state: FlowState) -> Flow:
    """The report's view of a closed flow."""
    key = split_key(state.proto, state.key)
    handshake = None
    if state.proto == PROTO_TCP and any(state.handshake):
        syn, synack, ack = state.handshake
        handshake = TcpHandshake(_ms(syn, synack), _ms(synack, ack))
    directions = [
        DirectionStats(
            state.pkts[d], state.octets[d],
            timestamp(state.first[d]) if state.pkts[d] else None,
            timestamp(state.last[d]) if state.pkts[d] else None,
        )
        for d in (0, 1)
    ]
    return Flow(
        id=state.flow_id,
        transport=key.transport,
        client=Endpoint(key.client_ip, key.client_port),
        server=Endpoint(key.server_ip, key.server_port),
        client_basis=state.client_basis,
        to_server=directions[0],
        to_client=directions[1],
        encapsulation=state.encap or (),
        tcp_handshake=handshake,
    )
