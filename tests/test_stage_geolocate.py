"""The geolocate stage on crafted flows and DNS facts: which end of a flow is the remote
(geo.remotes), and the names the capture gives addresses (geo.names)."""

from __future__ import annotations

import dataclasses

import pytest
from stagekit import LOCAL, TableLocator, flow

from flowscan.geo.locate import MAX_CACHED, Locator
from flowscan.geo.names import name_map
from flowscan.geo.remotes import capture_host, remote_of
from flowscan.identify import FlowFacts, HandshakeFacts
from flowscan.pipeline import geolocate

SERVER_DE = "78.46.100.20"
SERVER_US = "34.120.10.20"
PEER_FR = "90.12.34.56"
LOCATOR = TableLocator({SERVER_DE: ("DE", 24940, "Hetzner Online GmbH"),
                        SERVER_US: ("US", 15169, "Google LLC"),
                        PEER_FR: ("FR", 3215, "Orange")})


def dns_facts(answers: dict[str, list[str]]) -> FlowFacts:
    """A DNS flow's facts: owner name -> A/AAAA addresses or the CNAME target (RFC 1034
    section 3.6.2), as identify records answers."""
    facts = FlowFacts(protocols=["dns"], dns=answers)
    facts.dns_queries = tuple(answers)[:1]
    return facts


# -- the capture host ---------------------------------------------------------------------

def test_the_capture_host_is_the_address_in_most_flows() -> None:
    flows = [flow(1, (LOCAL, 50000), (SERVER_DE, 443)),
             flow(2, (LOCAL, 50001), (SERVER_US, 443)),
             flow(3, (PEER_FR, 6000), (LOCAL, 50002))]  # an inbound flow counts too
    assert capture_host(flows) == LOCAL


def test_no_capture_host_when_none_stands_out() -> None:
    """Two ends with as many flows each and nothing deciding which faces a service (both
    ports ephemeral): no capture host."""
    assert capture_host([flow(1, (LOCAL, 50000), (SERVER_DE, 40000))]) is None
    assert capture_host([flow(1, (LOCAL, 50000), (SERVER_DE, 40000)),
                         flow(2, ("192.168.1.11", 50000), (SERVER_US, 40000))]) is None
    assert capture_host([]) is None


def test_on_a_tie_the_end_facing_a_service_is_the_capture_host() -> None:
    """One flow to port 443: the end facing the service (issue 17, class 9)."""
    assert capture_host([flow(1, (LOCAL, 50000), (SERVER_DE, 443))]) == LOCAL


def test_an_address_counts_once_per_flow() -> None:
    """A flow from an address to itself (loopback tests, hairpin) is one flow of it."""
    flows = [flow(1, ("127.0.0.1", 5000), ("127.0.0.1", 6000)),
             flow(2, ("127.0.0.1", 5001), ("127.0.0.1", 6001)),
             flow(3, (LOCAL, 50000), (SERVER_DE, 443)),
             flow(4, (LOCAL, 50001), (SERVER_US, 443)),
             flow(5, (LOCAL, 50002), (PEER_FR, 6000))]
    assert capture_host(flows) == LOCAL


# -- the remote of a flow -----------------------------------------------------------------

def test_the_capture_host_is_never_the_remote() -> None:
    flows = [flow(1, (LOCAL, 50000), (SERVER_DE, 443)),
             flow(2, (PEER_FR, 6000), (LOCAL, 50002)),  # the remote is the flow's client
             flow(3, (LOCAL, 50001), (SERVER_US, 3478))]
    host = capture_host(flows)
    assert host == LOCAL
    remotes = [remote_of(f, LOCATOR, host) for f in flows]
    assert [(r.ip, r.which) for r in remotes] == [
        (SERVER_DE, "server"), (PEER_FR, "client"), (SERVER_US, "server")]
    assert all(r.ip != host for r in remotes)


def test_the_remote_is_located() -> None:
    remote = remote_of(flow(1, (LOCAL, 50000), (SERVER_DE, 443)), LOCATOR, LOCAL)
    assert (remote.scope, remote.country, remote.asn) == ("public", "DE", 24940)
    private = remote_of(flow(2, ("192.168.1.20", 5000), (LOCAL, 6000)), LOCATOR, LOCAL)
    assert (private.ip, private.scope, private.country) == ("192.168.1.20", "private", None)


def test_without_a_capture_host_the_public_end_is_the_remote() -> None:
    inbound = flow(1, (PEER_FR, 6000), (LOCAL, 50000))
    assert (remote_of(inbound, LOCATOR, None).ip, remote_of(inbound, LOCATOR, None).which) == (
        PEER_FR, "client")
    outbound = flow(2, (LOCAL, 50000), (SERVER_DE, 443))
    assert remote_of(outbound, LOCATOR, None).which == "server"
    both_public = flow(3, (PEER_FR, 6000), (SERVER_US, 443))
    assert remote_of(both_public, LOCATOR, None).ip == SERVER_US  # the server side


# -- names for addresses ------------------------------------------------------------------

def test_cname_chains_lead_back_to_every_name() -> None:
    """meet.google.com -> CNAME meet.l.google.com -> CNAME edge.l.google.com -> A."""
    facts = [dns_facts({"meet.google.com": ["meet.l.google.com"],
                        "meet.l.google.com": ["edge.l.google.com"]}),
             dns_facts({"edge.l.google.com": [SERVER_US, "2001:db8::443"]})]
    names = name_map(facts, {})
    chain = ["edge.l.google.com", "meet.google.com", "meet.l.google.com"]
    assert names == {"2001:db8::443": chain, SERVER_US: chain}


def test_names_stay_with_their_own_address() -> None:
    facts = [dns_facts({"zoom.us": [SERVER_DE], "example.org": [SERVER_US]}),
             dns_facts({"unresolved.example": ["nowhere.example"]})]  # a CNAME, no address
    assert name_map(facts, {}) == {SERVER_DE: ["zoom.us"], SERVER_US: ["example.org"]}


def test_a_cname_loop_ends() -> None:
    facts = [dns_facts({"a.example": ["b.example"], "b.example": ["a.example", SERVER_DE]})]
    assert name_map(facts, {}) == {SERVER_DE: ["a.example", "b.example"]}


def test_name_resolution_blocks_join_the_dns_names() -> None:
    """pcapng name resolution blocks (draft-ietf-opsawg-pcapng section 4.5) name addresses
    too; their names are merged with the DNS ones, once each."""
    facts = [dns_facts({"zoom.us": [SERVER_DE]})]
    names = name_map(facts, {SERVER_DE: ["zoom.us", "zoomde1.zoom.us"],
                             PEER_FR: ["peer.example"]})
    assert names == {PEER_FR: ["peer.example"], SERVER_DE: ["zoom.us", "zoomde1.zoom.us"]}
    assert name_map([], {}) == {}


# -- the remotes, shared -------------------------------------------------------------------

def test_flows_to_one_server_share_one_frozen_remote() -> None:
    """A remote is made once per (address, side, basis) and shared by the flows it
    describes (memory per flow); a flow whose server name hints at a place (RFC 6066
    section 3: the SNI) gets its own copy with the hint, the others keep none."""
    flows = [(flow(1, (LOCAL, 50000), (SERVER_DE, 443)), FlowFacts()),
             (flow(2, (LOCAL, 50001), (SERVER_DE, 443)), FlowFacts()),
             (flow(3, (LOCAL, 50002), (SERVER_DE, 443)),
              FlowFacts(tls=HandshakeFacts(sni="edge-fra1.example.net"))),
             (flow(4, (LOCAL, 50003), (SERVER_US, 443)), FlowFacts())]
    geolocate(flows, Locator(), None, {}, LOCAL)  # the bundled databases
    first, second, named, other = (f.remote for f, _ in flows)
    assert first is second and first is not None and first.ip == SERVER_DE
    assert first.basis == "capture-host" and first.name_hints == ()
    assert named is not None and named is not first
    assert dataclasses.replace(named, name_hints=()) == first
    assert [hint["country"] for hint in named.name_hints] == ["DE"]
    assert other is not None and other.ip == SERVER_US
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.country = "FR"  # type: ignore[misc]


def test_the_remotes_made_are_bounded() -> None:
    """Past MAX_CACHED remotes the locator starts again: the same answers, the memory of a
    capture of many addresses bounded."""
    locator = Locator([])
    first = locator.lookup("192.0.2.1", "server", "capture-host")
    for n in range(MAX_CACHED):
        locator.lookup(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "client", "unknown")
    again = locator.lookup("192.0.2.1", "server", "capture-host")
    assert again == first and again is not first
    assert locator.lookup("192.0.2.1", "server", "capture-host") is again
