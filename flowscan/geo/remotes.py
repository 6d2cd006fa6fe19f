"""Which end of each flow is the remote, where it is, and whether the round trips seen
allow that location."""

from __future__ import annotations

from collections import Counter

from flowscan.geo.locate import Locator, scope_of
from flowscan.geo.plausibility import Plausibility, Vantage, check
from flowscan.identify import FlowFacts
from flowscan.report.model import Flow, RemoteInfo


def capture_host(flows: list[Flow]) -> str | None:
    """The address the capture was most likely taken at: the one in the most flows, when
    one stands out."""
    counts = Counter(ip for f in flows for ip in {f.client.ip, f.server.ip})
    ranked = counts.most_common(2)
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return ranked[0][0]
    return None


def remote_of(flow: Flow, locator: Locator, host: str | None) -> RemoteInfo:
    """The end that is not the capture host; without one, the server side, unless only the
    client side is on the public internet."""
    if host == flow.server.ip and host != flow.client.ip:
        return locator.lookup(flow.client.ip, "client")
    if host == flow.client.ip:
        return locator.lookup(flow.server.ip, "server")
    if scope_of(flow.server.ip) != "public" and scope_of(flow.client.ip) == "public":
        return locator.lookup(flow.client.ip, "client")
    return locator.lookup(flow.server.ip, "server")


def plausibility_of(flow: Flow, facts: FlowFacts, vantage: Vantage) -> Plausibility | None:
    """From the TCP handshake (SYN to SYN-ACK) or a STUN exchange, when the capture point
    sent the request (round trips measured at the client side)."""
    remote = flow.remote
    assert remote is not None
    if remote.which != "server":  # round trips are measured from the client side
        return None
    rtt, source = None, ""
    if flow.tcp_handshake and flow.tcp_handshake.syn_to_synack_ms:
        rtt, source = flow.tcp_handshake.syn_to_synack_ms, "tcp-handshake"
    elif facts.stun is not None and facts.stun.rtt_ms:
        rtt, source = facts.stun.rtt_ms, "stun"
    if rtt is None:
        return None
    coordinates = (remote.latitude, remote.longitude) if remote.latitude is not None else None
    return check(vantage, rtt, source, remote.country, coordinates)  # type: ignore[arg-type]
