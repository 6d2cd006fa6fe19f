"""The apps stage on crafted flow views: which service each flow belongs to, with the
evidence ranked (names and signatures strong, ports weak), inheritance across the flows of
one local socket, and the per-app groups."""

from __future__ import annotations

from stagekit import LOCAL, app_label, flow

from flowscan.apps import PROTOCOL_PORTS, REGISTRY, FlowView, app_groups, identify_apps
from flowscan.identify import FlowFacts, HandshakeFacts, StunFacts, ZoomFacts
from flowscan.report.model import AppInfo, Endpoint

ZOOM_MMR = ("203.0.113.80", 8801)
OTHER = ("198.51.100.9", 3478)


def view(flow_id: int, facts: FlowFacts, *, client: tuple[str, int] = (LOCAL, 50000),
         server: tuple[str, int] = ("203.0.113.5", 443), transport: str = "udp") -> FlowView:
    return FlowView(flow_id, transport, Endpoint(*client), Endpoint(*server), facts)


def tls_facts(sni: str) -> FlowFacts:
    """A TLS flow whose ClientHello names the server (SNI, RFC 6066 section 3)."""
    return FlowFacts(protocols=["tls"], tls=HandshakeFacts(version="TLS 1.3", sni=sni))


def stun_facts(**fields: object) -> FlowFacts:
    return FlowFacts(protocols=["stun"], stun=StunFacts(
        messages=2, methods={"binding-request": 1, "binding-success": 1}, **fields))  # type: ignore[arg-type]


def zoom_facts() -> FlowFacts:
    return FlowFacts(protocols=["zoom", "rtp"], zoom=ZoomFacts(
        form="server", packets=40, media_packets=38, media=["audio"]))


def signals(label: AppInfo) -> list[tuple[str, str | None]]:
    return [(e.signal, e.strength) for e in label.evidence]


def test_an_sni_names_the_app_with_strong_evidence() -> None:
    labels = identify_apps([view(1, tls_facts("us04web.zoom.us"), transport="tcp")], {})
    label = labels[1]
    assert (label.name, label.confidence) == ("zoom", "high")
    assert signals(label) == [("tls-sni", "strong")]
    assert label.evidence[0].detail == "us04web.zoom.us"


def test_a_lookalike_name_is_not_the_service() -> None:
    """zoom.us.example.net and notzoom.us are not under zoom.us."""
    views = [view(1, tls_facts("zoom.us.example.net"), transport="tcp"),
             view(2, tls_facts("notzoom.us"), transport="tcp")]
    assert identify_apps(views, {}) == {}


def test_a_dns_answer_for_the_server_names_the_app() -> None:
    """The capture's DNS said which name led to the server's address (geo.names)."""
    server = ("203.0.113.44", 61000)  # no service's port: the name alone must decide
    labels = identify_apps([view(1, stun_facts(), server=server)],
                           {server[0]: ["meet.l.google.com", "meet.google.com"]})
    assert 1 in labels, "the DNS answer gave no label"
    assert labels[1].name == "meet" and ("dns-answer", "strong") in signals(labels[1])


def test_port_only_evidence_is_weak() -> None:
    labels = identify_apps([view(1, stun_facts(), server=ZOOM_MMR)], {})
    assert (labels[1].name, labels[1].confidence) == ("zoom", "low")
    assert signals(labels[1]) == [("service-port", "weak")]
    # 3478 is every STUN server's port: it names no service.
    assert identify_apps([view(2, stun_facts(), server=OTHER)], {}) == {}


def test_a_protocols_own_port_names_no_service() -> None:
    """RTP on 5004 (RFC 3551 section 8) is any RTP stack's, STUN on 3478 and 5349 any
    server's: no registry entry claims them, and a flow there gets no label by port."""
    assert all(port not in PROTOCOL_PORTS for sig in REGISTRY.values()
               for ports in sig.ports for port in ports)
    rtp = FlowFacts(protocols=["rtp"])
    views = [view(n, rtp, server=("203.0.113.7", port))
             for n, port in enumerate(sorted(PROTOCOL_PORTS), 1)]
    assert identify_apps(views, {}) == {}


def test_a_port_never_decides_against_a_name() -> None:
    labels = identify_apps([view(1, tls_facts("meet.google.com"), server=ZOOM_MMR,
                                 transport="tcp")], {})
    assert labels[1].name == "meet" and labels[1].confidence == "high"


def test_flows_of_one_local_socket_inherit_the_label() -> None:
    """ICE and TURN reuse the local socket (RFC 8445 section 5.1.1): the STUN flow to
    another server from the socket carrying Zoom's media is Zoom's."""
    views = [view(1, zoom_facts(), server=ZOOM_MMR),
             view(2, stun_facts(), server=OTHER),
             view(3, stun_facts(), client=(LOCAL, 50001), server=OTHER)]
    labels = identify_apps(views, {})
    assert (labels[1].name, labels[1].confidence) == ("zoom", "high")
    assert signals(labels[1])[0] == ("zoom-encapsulation", "strong")
    inherited = labels[2]
    assert (inherited.name, inherited.confidence) == ("zoom", "medium")
    assert inherited.evidence[0].signal == "same-local-socket"
    assert f"{LOCAL}:50000" in inherited.evidence[0].detail
    assert 3 not in labels  # another local port: nothing to inherit


def test_weak_labels_are_not_inherited() -> None:
    """A port-only label is no donor: the socket's other flows stay unlabelled."""
    views = [view(1, stun_facts(), server=ZOOM_MMR), view(2, stun_facts(), server=OTHER)]
    labels = identify_apps(views, {})
    assert labels[1].confidence == "low" and 2 not in labels


def test_own_strong_evidence_is_kept_over_inheritance() -> None:
    views = [view(1, zoom_facts(), server=ZOOM_MMR),
             view(2, stun_facts(software=["Microsoft Teams"]), server=OTHER)]
    labels = identify_apps(views, {})
    assert labels[2].name == "teams" and signals(labels[2]) == [("stun-software", "strong")]


def test_webrtc_is_the_generic_label_of_ice_and_dtls_srtp() -> None:
    facts = stun_facts(requests_from=["client", "server"], ice="full")
    facts.dtls = HandshakeFacts(version="DTLS 1.2",
                                srtp_profiles_offered=["SRTP_AES128_CM_HMAC_SHA1_80"])
    facts.protocols.append("dtls")
    labels = identify_apps([view(1, facts, server=("203.0.113.7", 61000))], {})
    assert (labels[1].name, labels[1].confidence) == ("webrtc", "medium")


# -- app groups ---------------------------------------------------------------------------

def test_app_groups_sum_their_flows_largest_first() -> None:
    flows = [flow(1, (LOCAL, 50000), ZOOM_MMR, packets=10, size=1000),
             flow(2, (LOCAL, 50001), ZOOM_MMR, packets=5, size=500),
             flow(3, (LOCAL, 50002), ("203.0.113.9", 443), packets=100, size=90000),
             flow(4, (LOCAL, 50003), OTHER)]  # unlabelled: in no group
    labels = {1: app_label("zoom"), 3: app_label("meet"),
              2: AppInfo("zoom", "low", app_label("zoom").evidence)}
    groups = app_groups(flows, labels)
    assert [(g.name, g.flows) for g in groups] == [("meet", [3]), ("zoom", [1, 2])]
    zoom = groups[1]
    assert (zoom.packets, zoom.bytes) == (30, 3000)  # both directions of both flows
    assert zoom.confidence == "high"  # as confident as its most confident flow
    assert app_groups(flows, {}) == []
