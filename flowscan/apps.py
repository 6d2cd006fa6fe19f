"""Application identification: which VTC service a flow belongs to, and the evidence.

Evidence is ranked: payload signatures and names seen in the capture (TLS/QUIC SNI,
certificate names, DNS answers for the flow's server) are strong; well-known service ports
are weak and never decide alone against stronger evidence. Flows that share a local socket
with an identified flow (the same client address and port, as ICE and TURN do) inherit the
label with that as the evidence.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter

from flowscan.geo.networks import SERVICE_ASNS
from flowscan.identify import FlowFacts
from flowscan.protocols.sdp import offers
from flowscan.report.model import AppGroup, Endpoint, Flow, RemoteInfo
from flowscan.report.model import AppInfo as AppLabel
from flowscan.report.model import EvidenceItem as Evidence


@dataclass(frozen=True)
class AppSignature:
    """What names one service, by kind of evidence. Names (SNI, certificates, DNS) and a
    network only the service runs (its ASN: flowscan.geo.networks, the one table of
    networks) are strong; STUN SOFTWARE and DTLS certificate names the service's
    own servers present are strong; ports are weak and never decide against stronger
    evidence."""

    domains: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()  # regular expressions over host names
    software: tuple[str, ...] = ()  # substrings of STUN SOFTWARE (RFC 8489 section 14.14)
    certificates: tuple[str, ...] = ()  # DTLS certificate subject CNs, exactly
    ports: tuple[range, ...] = ()  # documented media or relay ports: weak


# The one app signature registry.
REGISTRY: dict[str, AppSignature] = {
    "zoom": AppSignature(
        domains=("zoom.us", "zoom.com", "zoomgov.com", "zoomcdn.net", "zoom.com.cn"),
        software=("zoom",), ports=(range(8801, 8811),)),
    "teams": AppSignature(
        domains=("teams.microsoft.com", "teams.live.com", "teams.office.com",
                 "teams.cdn.office.net", "teams.trafficmanager.net", "skype.com", "skype.net",
                 "skypeforbusiness.com", "lync.com", "trouter.io"),
        # Cloud front ends named after the service, e.g.
        # emea.ng.msg.teams-msgapi.trafficmanager.net, c-flightproxy-euno-01-teams.cloudapp.net.
        patterns=(r"(^|[.-])teams([.-][^ ]*)?\.(trafficmanager|cloudapp)\.net$",),
        software=("microsoft", "skype"), ports=(range(3479, 3482),)),
    # Google's public STUN servers (stun*.l.google.com:19302) answer any app: neither their
    # names nor port 19302 name Meet.
    "meet": AppSignature(
        domains=("meet.google.com", "meetings.googleusercontent.com", "meet.googleapis.com",
                 "hangouts.google.com"),
        certificates=("hangouts",), ports=(range(19303, 19310),)),
    "webex": AppSignature(
        domains=("webex.com", "wbx2.com", "ciscospark.com", "webexcontent.com", "webex.cn"),
        software=("webex",), ports=(range(9000, 9001),)),
    "whatsapp": AppSignature(domains=("whatsapp.net", "whatsapp.com", "wa.me"),
                             software=("whatsapp",)),
    "messenger": AppSignature(domains=("messenger.com", "m.me"), software=("messenger",)),
    # Signal's calling relays and SFU live under voip.signal.org (turn*.voip.signal.org).
    "signal": AppSignature(domains=("signal.org", "whispersystems.org", "signal.art"),
                           software=("signal",)),
    "telegram": AppSignature(
        domains=("telegram.org", "t.me", "telegram.me", "cdn-telegram.org"),
        software=("telegram",)),
    "discord": AppSignature(domains=("discord.com", "discord.gg", "discord.media",
                                     "discordapp.com", "discordapp.net")),
    # Apple's networks (AS714, AS6185) carry every Apple service: they name none alone.
    # Apple documents FaceTime's UDP ports 3478-3497 (shared with every STUN server and
    # Teams' relays, so not used) and 16384-16387, 16393-16402.
    "facetime": AppSignature(
        domains=("facetime.apple.com",), ports=(range(16384, 16388), range(16393, 16403))),
    "snapchat": AppSignature(domains=("snapchat.com", "snapkit.com", "sc-cdn.net",
                                      "feelinsonice-hrd.appspot.com")),
    "line": AppSignature(domains=("line.me", "line-apps.com", "line-scdn.net", "naver.jp")),
    "kakaotalk": AppSignature(domains=("kakao.com", "kakaocdn.net", "kakaotalk.com")),
    "imo": AppSignature(domains=("imo.im",)),
    "viber": AppSignature(domains=("viber.com",), software=("viber",),
                          ports=(range(5242, 5244), range(7985, 7986))),
    # Jitsi Videobridge's default media port is UDP 10000; 8x8's networks carry all of
    # 8x8's products, so they name none alone.
    "jitsi": AppSignature(domains=("meet.jit.si", "jitsi.net", "8x8.vc"), software=("jitsi",),
                          ports=(range(10000, 10001),)),
    "sip": AppSignature(ports=(range(5060, 5062),)),
}
# A protocol's own registered ports (IANA): any implementation uses them by default, so they
# name no service. Webex documents UDP 5004 for its media, but 5004 is every RTP stack's
# (RFC 3551 section 8: RTP 5004, RTCP 5005); 3478 and 5349 are every STUN/TURN server's
# (RFC 8489 section 18.1).
PROTOCOL_PORTS = frozenset((3478, 5004, 5005, 5349))
APPS = (*REGISTRY, "webrtc")

DOMAINS = {app: sig.domains for app, sig in REGISTRY.items() if sig.domains}
NAME_PATTERNS = {app: re.compile(pattern) for app, sig in REGISTRY.items()
                 for pattern in sig.patterns}
PORTS = {app: sig.ports for app, sig in REGISTRY.items() if sig.ports}
OPERATOR_ASNS = SERVICE_ASNS  # networks one service runs alone: flowscan.geo.networks
CERTIFICATE_NAMES = {name: app for app, sig in REGISTRY.items() for name in sig.certificates}
SOFTWARE = [(needle, app) for app, sig in REGISTRY.items() for needle in sig.software]


def _port_apps() -> dict[int, tuple[str, ...]]:
    """PORTS turned round: port -> the services that document it, in PORTS order."""
    out: dict[int, tuple[str, ...]] = {}
    for app, ranges in PORTS.items():
        for port in (p for r in ranges for p in r):
            out[port] = (*out.get(port, ()), app)
    return out


PORT_APPS = _port_apps()

# Microsoft's STUN/TURN extensions (MS-TURN, MS-ICE2), used by Teams and Skype.
MS_STUN_ATTRIBUTES = frozenset(("0x8008", "0x8050", "0x8054", "0x8055", "0x8070"))
# WhatsApp's STUN: extension methods 0x200-0x20f and vendor attributes 0x4000-0x4003.
WHATSAPP_STUN_ATTRIBUTES = frozenset(("0x4000", "0x4001", "0x4002", "0x4003"))

STRONG, MEDIUM, WEAK = "strong", "medium", "weak"
RANK: dict[str | None, int] = {STRONG: 3, MEDIUM: 2, WEAK: 1, None: 0}


@dataclass(slots=True)
class FlowView:
    """What app identification needs to know of a flow."""

    flow_id: int
    transport: str
    client: Endpoint  # the records' own (frozen, hashable): no tuple made per flow
    server: Endpoint
    facts: FlowFacts
    remote: RemoteInfo | None = None


# The views identify_apps reads, several times over (once a pass): a list, or a collection
# that makes each view as it is read (pipeline.label_apps), so that a view is not held per
# flow for the whole stage.
Views = Iterable[FlowView]


@functools.lru_cache(maxsize=1 << 14)
def domain_app(name: str) -> str | None:
    """The app a DNS name belongs to (names repeat across flows: answers are cached)."""
    name = name.lower().rstrip(".")
    for app, domains in DOMAINS.items():
        for d in domains:
            if name == d or name.endswith("." + d):
                return app
    for app, pattern in NAME_PATTERNS.items():
        if pattern.search(name):
            return app
    return None


Candidate = tuple[str, Evidence]  # an app, and the evidence that names it


def _candidates(view: FlowView, names_for: dict[str, list[str]],
                extra: tuple[Candidate, ...] = ()) -> list[Candidate]:
    """Every app the flow's evidence names: `extra`, from other flows (SDP naming its
    endpoint), then reader by reader (EVIDENCE_READERS, in order); a reader whose facts the
    flow lacks is not called (most flows have few: this runs once per flow)."""
    out: list[Candidate] = list(extra)
    facts = view.facts
    for needs, read in EVIDENCE_READERS:
        if needs is None or getattr(facts, needs) is not None:
            out += read(view, names_for)
    return out


def _named(signal: str, name: str | None, strength: str, detail: str | None = None
           ) -> list[Candidate]:
    """The app a host name belongs to, if any, with the name as the evidence."""
    app = domain_app(name) if name else None
    return [(app, Evidence(signal, detail or name or "", strength))] if app else []


def _tls_names(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    tls = view.facts.tls
    if tls is None:
        return []
    out = _named("tls-sni", tls.sni, STRONG)
    for cert in tls.certificates.get("server", [])[:1]:
        names = cert.get("dns_names")
        for n in names[:5] if isinstance(names, list) else ():
            out += _named("tls-certificate", str(n), STRONG)
    return out


def _quic_name(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    return _named("quic-sni", view.facts.quic.sni, STRONG) if view.facts.quic else []


def _dtls_names(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    out: list[Candidate] = []
    for certs in view.facts.dtls.certificates.values() if view.facts.dtls else ():
        for cert in certs[:1]:
            common = str(cert.get("subject", "")).split("CN=")[-1]
            out += _named("dtls-certificate", common, STRONG)
            if common in CERTIFICATE_NAMES:
                out.append((CERTIFICATE_NAMES[common], Evidence(
                    "dtls-certificate", f"DTLS certificate CN={common}, which the service's "
                    "media servers present", STRONG)))
    return out


def _dns_names(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    """The flow's own queries, then the names of its remote (a capture that starts
    mid-flow may have the service as the client side), else of its server."""
    out = [c for query in view.facts.dns_queries for c in _named("dns-query", query, MEDIUM)]
    far = view.remote.ip if view.remote is not None else view.server.ip
    for name in names_for.get(far, ()):
        out += _named("dns-answer", name, STRONG, f"{name} resolved to {far}")
    return out


def _zoom_media(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    zoom = view.facts.zoom
    if zoom is None:
        return []
    detail = f"Zoom {zoom.form} media encapsulation" + (
        f" ({', '.join(zoom.media)})" if zoom.media else "")
    return [("zoom", Evidence("zoom-encapsulation", detail, STRONG))]


def _stun_signatures(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    stun = view.facts.stun
    if stun is None:
        return []
    out: list[Candidate] = []
    if stun.zoom_signature:
        out.append(("zoom", Evidence("zoom-stun", "classic STUN with Zoom's attribute 0x0101",
                                     STRONG)))
    ms = sorted(MS_STUN_ATTRIBUTES.intersection(stun.attributes))
    if ms:
        out.append(("teams", Evidence("microsoft-stun-attributes",
                                      "MS-TURN/MS-ICE2 attributes " + ", ".join(ms), STRONG)))
    wa = sorted(WHATSAPP_STUN_ATTRIBUTES.intersection(stun.attributes))
    wa_methods = sorted(m for m in stun.methods if m.startswith("method-0x20"))
    if wa or wa_methods:
        out.append(("whatsapp", Evidence("whatsapp-stun", ", ".join(wa + wa_methods), STRONG)))
    for software in stun.software:
        app = _software_app(software)
        if app:
            out.append((app, Evidence("stun-software", software, STRONG)))
    return out


# Protocol signatures each one flag of the facts stands for: (is it there, app, evidence).
# (attrgetter, not a lambda, where the flag is a field: this is asked of every flow.)
FLAG_SIGNATURES: tuple[tuple[Callable[[FlowFacts], bool], str, Evidence], ...] = (
    (lambda f: "whatsapp-chat" in f.protocols, "whatsapp",
     Evidence("whatsapp-chat", "WhatsApp's Noise chat prologue ('WA' and its versions)",
              STRONG)),
    (attrgetter("discord_ip_discovery"), "discord",
     Evidence("discord-ip-discovery", "Discord voice IP discovery exchange", STRONG)),
    (attrgetter("discord_ping"), "discord",
     Evidence("discord-voice-ping", "Discord voice server ping (0x1337cafe)", STRONG)),
)


def _flag_signatures(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    out: list[Candidate] = []
    for present, app, ev in FLAG_SIGNATURES:
        if present(view.facts):
            out.append((app, Evidence(ev.signal, ev.detail, ev.strength)))
    return out


def _sip(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    sip = view.facts.sip
    if sip is None:
        return []
    return [("sip", Evidence("sip-signalling", f"SIP {', '.join(dict.fromkeys(sip.messages))}",
                             STRONG))]


def _webrtc(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    f = view.facts
    if not (f.stun and f.dtls and f.dtls.srtp_profiles_offered):
        return []
    if f.stun.ice == "full":
        return [("webrtc", Evidence("webrtc", "ICE checks both ways and DTLS-SRTP", MEDIUM))]
    if f.stun.methods.get("binding-request"):
        return [("webrtc", Evidence("webrtc", "ICE checks and DTLS-SRTP", MEDIUM))]
    return []


def _operator(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    remote = view.remote
    operator = OPERATOR_ASNS.get(remote.asn) if remote and remote.asn is not None else None
    if not operator or remote is None:
        return []
    return [(operator, Evidence("operator-asn", f"{remote.ip} is in AS{remote.asn} "
                                f"({remote.organisation})", STRONG))]


def _service_port(view: FlowView, names_for: dict[str, list[str]]) -> list[Candidate]:
    port = view.server.port
    if port not in PORT_APPS:
        return []
    return [(app, Evidence("service-port", f"{view.transport}/{port}", WEAK))
            for app in PORT_APPS[port]]


# The readers of app evidence, in the order their evidence is listed. A new kind of
# evidence is one reader and its place here; a new app is one REGISTRY entry.
# Each with the FlowFacts field it reads nothing without (None: it may find evidence in any
# flow).
EVIDENCE_READERS: tuple[tuple[str | None, Callable[[FlowView, dict[str, list[str]]],
                                                    list[Candidate]]], ...] = (
    ("tls", _tls_names), ("quic", _quic_name), ("dtls", _dtls_names), (None, _dns_names),
    ("zoom", _zoom_media), ("stun", _stun_signatures), (None, _flag_signatures),
    ("sip", _sip), ("stun", _webrtc), (None, _operator), (None, _service_port))


def _software_app(software: str) -> str | None:
    s = software.lower()
    return next((app for needle, app in SOFTWARE if needle in s), None)


def _decide(cands: list[tuple[str, Evidence]]) -> AppLabel | None:
    if not cands:
        return None
    by_app: dict[str, list[Evidence]] = {}
    for app, ev in cands:
        by_app.setdefault(app, []).append(ev)
    strongest = {app: max([RANK[e.strength] for e in evidence])
                 for app, evidence in by_app.items()}
    specific = sorted([app for app in by_app if app != "webrtc"])
    # Of apps named as strongly, the first by name.
    best = max(specific, key=strongest.__getitem__) if specific else "webrtc"
    top = strongest[best]
    confidence = {3: "high", 2: "medium", 1: "low"}[top]
    evidence = sorted(by_app[best], key=lambda e: -RANK[e.strength])
    if best != "webrtc" and "webrtc" in by_app:
        evidence += by_app["webrtc"]  # the generic WebRTC evidence still says what it is
    return AppLabel(best, confidence, evidence)


def _inherit(views: Views, labels: dict[int, AppLabel], key_of: object,
             signal: str, describe: object, also: frozenset[str] = frozenset()) -> None:
    """Flows sharing a key (a local socket, a server address) with a flow labelled by
    strong evidence (or by a signal in `also`) take that label, unless their own evidence
    is as strong."""
    if not labels:
        return  # no donor: a pass over every flow for nothing (a capture of no known app)
    donors: dict[object, AppLabel] = {}
    for view in views:
        label = labels.get(view.flow_id)
        if label and (RANK[label.evidence[0].strength] == RANK[STRONG]
                      or label.evidence[0].signal in also) and label.name not in (
                "webrtc", "sip"):
            donors.setdefault(key_of(view), label)  # type: ignore[operator]
    for view in views if donors else ():
        donor = donors.get(key_of(view))  # type: ignore[operator]
        if donor is None:
            continue
        current = labels.get(view.flow_id)
        if current is not None and RANK[current.evidence[0].strength] >= RANK[MEDIUM] and (
                current.name != "webrtc"):
            continue
        ev = Evidence(signal, describe(view, donor), MEDIUM)  # type: ignore[operator]
        keep = current.evidence if current and current.name in (donor.name, "webrtc") else []
        labels[view.flow_id] = AppLabel(donor.name, "medium", [ev, *keep])


def sdp_endpoints(views: Views) -> dict[tuple[str, int], str]:
    """Media endpoints offered in SDP bodies of SIP calls: (address, port) -> description."""
    out: dict[tuple[str, int], str] = {}
    for view in views:
        if not view.facts.sdp_media:
            continue  # most flows carry no SDP
        for offer in offers(view.facts.sdp_media, view.facts.sip):
            if offer.media.port:
                what = (f"{offer.media.media} {offer.address}:{offer.media.port} offered in "
                        f"SDP of SIP call {offer.call or '?'}")
                rtp, rtcp = offer.endpoints
                out.setdefault(rtp, what)
                # RTCP on the next port unless multiplexed (RFC 3550 section 11).
                out.setdefault(rtcp, "RTCP of " + what)
    return out


def identify_apps(views: Views, names_for: dict[str, list[str]]
                  ) -> dict[int, AppLabel]:
    """Label every flow that has evidence; then let flows on the same local socket as a
    strongly identified flow inherit its label (ICE and TURN reuse the socket)."""
    labels: dict[int, AppLabel] = {}
    signalled = sdp_endpoints(views)
    extra: dict[int, tuple[Candidate, ...]] = {}  # flow id -> evidence of the SDP
    for view in views if signalled else ():
        for endpoint in (view.server, view.client):
            offered = signalled.get((endpoint.ip, endpoint.port))
            if offered is not None and view.transport == "udp":
                extra[view.flow_id] = (("sip", Evidence("sdp-media", offered, STRONG)),)
                break
    for view in views:
        label = _decide(_candidates(view, names_for, extra.get(view.flow_id, ())))
        if label is not None:
            labels[view.flow_id] = label
    _inherit(views, labels, lambda v: (v.transport, v.server), "same-server",
             lambda v, d: f"another connection to {v.server.ip}:{v.server.port} was identified "
                          f"as {d.name} by {d.evidence[0].signal} ({d.evidence[0].detail})")
    # A socket that talks to a server identified strongly belongs to that app too (ICE
    # checks to the service's other addresses, its STUN servers).
    _inherit(views, labels, lambda v: (v.transport, v.client), "same-local-socket",
             lambda v, d: f"{v.client.ip}:{v.client.port} also carries {d.name} traffic "
                          f"identified by {d.evidence[0].signal}",
             also=frozenset(("same-server",)))
    return labels


CONFIDENCE_ORDER = {"high": 3, "medium": 2, "low": 1}


def app_groups(flows: list[Flow], labels: dict[int, AppLabel]) -> list[AppGroup]:
    """The flows of each application, largest first by bytes; a group is as confident as
    its most confident flow."""
    groups: dict[str, list[Flow]] = defaultdict(list)
    for flow in flows:
        if flow.id in labels:
            groups[labels[flow.id].name].append(flow)
    return [
        AppGroup(name, max((labels[f.id].confidence for f in members),
                           key=lambda c: CONFIDENCE_ORDER[c]),
                 [f.id for f in members], sum(f.packets for f in members),
                 sum(f.bytes for f in members))
        for name, members in sorted(groups.items(),
                                    key=lambda kv: -sum(f.bytes for f in kv[1]))
    ]
