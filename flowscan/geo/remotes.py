"""Which end of each flow is the remote, where it is, and whether the round trips seen
allow that location."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator

from flowscan.errors import UsageError
from flowscan.geo.locate import Locator, scope_of
from flowscan.geo.plausibility import Plausibility, Vantage, check
from flowscan.identify import FlowFacts
from flowscan.report.model import Flow, RemoteInfo

# Ports services listen on (weak evidence, as in apps.py): HTTP(S) and QUIC, STUN/TURN
# (RFC 8489 section 18.6, RFC 8656), SIP (RFC 3261 section 19.1.2), Teams' relays,
# Zoom's multimedia routers, Google's STUN. Every port below 1024 is a service's too.
SERVICE_PORTS = frozenset((80, 443, 3478, 3479, 3480, 3481, 5349, 5060, 5061,
                           *range(8801, 8811), *range(19302, 19310)))


def _service_port(port: int) -> bool:
    return 0 < port < 1024 or port in SERVICE_PORTS


def service_side(flow: Flow, facts: FlowFacts | None) -> tuple[str, str] | None:
    """The flow side that is the service (a server, relay or STUN server), and why, when
    something other than the first packet's sender decides: the TCP handshake (RFC 9293
    section 3.5: the SYN's receiver accepted), STUN requests answered one way only (a STUN
    or TURN server; full ICE runs both ways between participants), or a service's port
    against an ephemeral one. None between participants, and when nothing decides."""
    if flow.transport == "tcp" and flow.client_basis in ("tcp-syn", "tcp-syn-ack"):
        return "server", "tcp-handshake"
    stun = facts.stun if facts is not None else None
    if stun is not None and stun.ice != "full" and len(stun.requests_from) == 1:
        asker = stun.requests_from[0]
        return ("server" if asker == "client" else "client"), "stun-server"
    server, client = _service_port(flow.server.port), _service_port(flow.client.port)
    if server != client:
        return ("server" if server else "client"), "service-port"
    return None


def local_side(flow: Flow, facts: FlowFacts | None) -> tuple[str, str] | None:
    """The flow side the capture was taken on, and why, when the traffic names it: a STUN
    success response tells its receiver the address its sender saw it at (XOR-MAPPED-
    ADDRESS, RFC 8489 section 14.2); when that differs from the receiver's address on the
    wire, a translator stood between the receiver and the responder, and the capture was
    taken on the receiver's side of it. Who sent first (an ICE check, a DTLS ClientHello)
    is not used: in WebRTC both ends check (RFC 8445 section 6.1.4) and either may be the
    DTLS client (RFC 8842 section 5), whichever end the capture was taken at."""
    stun = facts.stun if facts is not None else None
    if stun is None:
        return None
    translated = [side for side, seen in stun.reflexive.items()
                  if seen != (flow.client.ip if side == "client" else flow.server.ip)]
    if len(translated) == 1:
        return translated[0], "stun-reflexive"
    return None


def parse_capture_hosts(values: tuple[str, ...]) -> frozenset[str]:
    """--capture-host: IPv4 or IPv6 addresses, written as the report writes them."""
    hosts = set()
    for value in values:
        try:
            hosts.add(str(ipaddress.ip_address(value.strip())))
        except ValueError:
            raise UsageError(f"--capture-host {value!r}: not an IPv4 or IPv6 address"
                             ) from None
    return frozenset(hosts)


def capture_host(flows: list[Flow], facts: list[FlowFacts] | None = None,
                 given: frozenset[str] = frozenset()) -> str | None:
    """The address the capture was most likely taken at: of the addresses the user gave
    (--capture-host), the one in the most flows; else the one in the most flows, when
    one stands out; else, in order of strength, the one the traffic names as the capture
    side (local_side), the one most often facing a service (the other end of flows whose
    service side is decided), when one stands out. None when nothing decides: then
    either end of a flow could be the capture point."""
    counts = Counter(ip for f in flows for ip in {f.client.ip, f.server.ip})
    stated = [(counts[ip], ip) for ip in given if counts[ip]]
    if stated:
        return max(stated)[1]
    known: list[FlowFacts | None] = list(facts) if facts else [None] * len(flows)
    local: Counter[str] = Counter()
    facing: Counter[str] = Counter()
    for flow, flow_facts in zip(flows, known, strict=True):
        named = local_side(flow, flow_facts)
        if named is not None:
            local[flow.client.ip if named[0] == "client" else flow.server.ip] += 1
        decided = service_side(flow, flow_facts)
        if decided is not None:
            facing[flow.client.ip if decided[0] == "server" else flow.server.ip] += 1
    for votes in (counts, local, facing):
        ranked = votes.most_common(2)
        if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
            return ranked[0][0]
    return None


def remote_of(flow: Flow, locator: Locator, host: str | None,
              facts: FlowFacts | None = None, vantage: Vantage | None = None,
              given: frozenset[str] = frozenset()) -> RemoteInfo:
    """The end that is not an address the user gave as the capture host (basis `given`);
    else the end that is not the capture host; without one, the service's side (its
    handshake, STUN role or port), else the end the traffic does not name as the capture
    side (local_side), else the public end facing a private one, else (two
    participants) the end outside the country the user says the capture was taken in
    (--vantage). Where none of that decides, the server side is kept with basis
    `unknown`: either end could be the capture point, and nothing is claimed of it."""
    side, basis = next((d for d in _decisions(flow, locator, host, facts, vantage, given)
                        if d is not None), ("server", "unknown"))
    return _remote(locator, flow.server.ip if side == "server" else flow.client.ip, side,
                   basis)


def _decisions(flow: Flow, locator: Locator, host: str | None, facts: FlowFacts | None,
               vantage: Vantage | None, given: frozenset[str]
               ) -> Iterator[tuple[str, str] | None]:
    """Each rule's (remote side, basis), strongest first; a later rule runs only when
    every earlier one decided nothing."""
    yield _named(_far_from(flow, given), "given")
    yield _named(_far_from(flow, frozenset((host,)) if host else frozenset()), "capture-host")
    yield service_side(flow, facts)
    local = local_side(flow, facts)
    yield None if local is None else (_other(local[0]), local[1])
    yield _named(_public_facing_private(flow), "private-address")
    yield _named(_outside_vantage(flow, locator, vantage), "vantage")


def _named(side: str | None, basis: str) -> tuple[str, str] | None:
    return None if side is None else (side, basis)


def _other(side: str) -> str:
    return "client" if side == "server" else "server"


def _far_from(flow: Flow, local: frozenset[str]) -> str | None:
    """The side facing the one end whose address is in `local`; None unless exactly one
    end's is."""
    server, client = flow.server.ip in local, flow.client.ip in local
    return None if server == client else "client" if server else "server"


def _public_facing_private(flow: Flow) -> str | None:
    server, client = scope_of(flow.server.ip), scope_of(flow.client.ip)
    if server != "public" and client == "public":
        return "client"
    if client != "public" and server == "public":
        return "server"
    return None


def _outside_vantage(flow: Flow, locator: Locator, vantage: Vantage | None) -> str | None:
    """Between two participants, the end not located in the --vantage country, when
    exactly one end is located there."""
    if vantage is None or not vantage.country:
        return None
    at_vantage = [side for side, ip in (("server", flow.server.ip), ("client", flow.client.ip))
                  if locator.lookup(ip).country == vantage.country]
    return _other(at_vantage[0]) if len(at_vantage) == 1 else None


def _remote(locator: Locator, ip: str, which: str, basis: str) -> RemoteInfo:
    return locator.lookup(ip, which, basis)


def plausibility_of(flow: Flow, facts: FlowFacts, vantage: Vantage) -> Plausibility | None:
    """From the TCP handshake (SYN to SYN-ACK) or a STUN exchange, when the capture point
    sent the request (round trips measured at the client side)."""
    remote = flow.remote
    assert remote is not None
    if remote.which != "server":  # round trips are measured from the client side
        return None
    if remote.basis == "unknown":
        # Which end the capture was taken at is not known: a request answered at the
        # capture point would time the local stack, not the path to the remote.
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
