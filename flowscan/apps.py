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
from dataclasses import dataclass, field

from flowscan.identify import FlowFacts
from flowscan.report.model import AppGroup, Flow, RemoteInfo
from flowscan.report.model import AppInfo as AppLabel
from flowscan.report.model import EvidenceItem as Evidence


@dataclass(frozen=True)
class AppSignature:
    """What names one service, by kind of evidence. Names (SNI, certificates, DNS) and a
    network only the service runs (its ASN, from the public registries' IPtoASN data
    bundled in geodata/) are strong; STUN SOFTWARE and DTLS certificate names the service's
    own servers present are strong; ports are weak and never decide against stronger
    evidence."""

    domains: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()  # regular expressions over host names
    asns: tuple[int, ...] = ()  # networks run by this service alone
    software: tuple[str, ...] = ()  # substrings of STUN SOFTWARE (RFC 8489 section 14.14)
    certificates: tuple[str, ...] = ()  # DTLS certificate subject CNs, exactly
    ports: tuple[range, ...] = ()  # documented media or relay ports: weak


# The one app signature registry.
REGISTRY: dict[str, AppSignature] = {
    "zoom": AppSignature(
        domains=("zoom.us", "zoom.com", "zoomgov.com", "zoomcdn.net", "zoom.com.cn"),
        asns=(30103,), software=("zoom",), ports=(range(8801, 8811),)),
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
        asns=(13445, 6577), software=("webex",), ports=(range(9000, 9001), range(5004, 5005))),
    "whatsapp": AppSignature(domains=("whatsapp.net", "whatsapp.com", "wa.me"),
                             software=("whatsapp",)),
    "messenger": AppSignature(domains=("messenger.com", "m.me"), software=("messenger",)),
    # Signal's calling relays and SFU live under voip.signal.org (turn*.voip.signal.org).
    "signal": AppSignature(domains=("signal.org", "whispersystems.org", "signal.art"),
                           software=("signal",)),
    "telegram": AppSignature(
        domains=("telegram.org", "t.me", "telegram.me", "cdn-telegram.org"),
        asns=(62041, 62014, 59930, 44907, 211157), software=("telegram",)),
    "discord": AppSignature(domains=("discord.com", "discord.gg", "discord.media",
                                     "discordapp.com", "discordapp.net")),
    # Apple's networks (AS714, AS6185) carry every Apple service: they name none alone.
    # Apple documents FaceTime's UDP ports 3478-3497 (shared with every STUN server and
    # Teams' relays, so not used) and 16384-16387, 16393-16402.
    "facetime": AppSignature(
        domains=("facetime.apple.com",), ports=(range(16384, 16388), range(16393, 16403))),
    "snapchat": AppSignature(domains=("snapchat.com", "snapkit.com", "sc-cdn.net",
                                      "feelinsonice-hrd.appspot.com")),
    "line": AppSignature(domains=("line.me", "line-apps.com", "line-scdn.net", "naver.jp"),
                         asns=(38631,)),
    "kakaotalk": AppSignature(domains=("kakao.com", "kakaocdn.net", "kakaotalk.com"),
                              asns=(10158, 38099, 18160, 152199)),
    "imo": AppSignature(domains=("imo.im",)),
    "viber": AppSignature(domains=("viber.com",), software=("viber",),
                          ports=(range(5242, 5244), range(7985, 7986))),
    # Jitsi Videobridge's default media port is UDP 10000; 8x8's networks carry all of
    # 8x8's products, so they name none alone.
    "jitsi": AppSignature(domains=("meet.jit.si", "jitsi.net", "8x8.vc"), software=("jitsi",),
                          ports=(range(10000, 10001),)),
    "sip": AppSignature(ports=(range(5060, 5062),)),
}
APPS = (*REGISTRY, "webrtc")

DOMAINS = {app: sig.domains for app, sig in REGISTRY.items() if sig.domains}
NAME_PATTERNS = {app: re.compile(pattern) for app, sig in REGISTRY.items()
                 for pattern in sig.patterns}
PORTS = {app: sig.ports for app, sig in REGISTRY.items() if sig.ports}
OPERATOR_ASNS = {asn: app for app, sig in REGISTRY.items() for asn in sig.asns}
CERTIFICATE_NAMES = {name: app for app, sig in REGISTRY.items() for name in sig.certificates}
SOFTWARE = [(needle, app) for app, sig in REGISTRY.items() for needle in sig.software]
# Networks several services share: they name none of them alone (Google: Meet, Duo, its
# public STUN; Microsoft; Meta: WhatsApp, Messenger, Instagram; Apple; 8x8), and say only
# that the remote is a service's server.
SHARED_ASNS = {15169: "Google", 396982: "Google Cloud", 8075: "Microsoft", 32934: "Meta",
               63293: "Meta", 54115: "Meta", 714: "Apple", 6185: "Apple", 32308: "8x8",
               13896: "8x8"}


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


@dataclass
class FlowView:
    """What app identification needs to know of a flow."""

    flow_id: int
    transport: str
    client: tuple[str, int]
    server: tuple[str, int]
    facts: FlowFacts
    extra: list[tuple[str, Evidence]] = field(default_factory=list)
    remote: RemoteInfo | None = None


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


def _candidates(view: FlowView, names_for: dict[str, list[str]]
                ) -> list[tuple[str, Evidence]]:
    f = view.facts
    out: list[tuple[str, Evidence]] = list(view.extra)

    def named(signal: str, name: str | None, strength: str, detail: str | None = None
              ) -> None:
        app = domain_app(name) if name else None
        if app:
            out.append((app, Evidence(signal, detail or name or "", strength)))

    if f.tls:
        named("tls-sni", f.tls.sni, STRONG)
        for cert in f.tls.certificates.get("server", [])[:1]:
            names = cert.get("dns_names")
            for n in names[:5] if isinstance(names, list) else ():
                named("tls-certificate", str(n), STRONG)
    if f.quic:
        named("quic-sni", f.quic.sni, STRONG)
    if f.dtls:
        for certs in f.dtls.certificates.values():
            for cert in certs[:1]:
                common = str(cert.get("subject", "")).split("CN=")[-1]
                named("dtls-certificate", common, STRONG)
                if common in CERTIFICATE_NAMES:
                    out.append((CERTIFICATE_NAMES[common], Evidence(
                        "dtls-certificate", f"DTLS certificate CN={common}, which the "
                        "service's media servers present", STRONG)))
    for query in f.dns_queries:
        named("dns-query", query, MEDIUM)
    # The names of the flow's remote (a capture that starts mid-flow may have the service
    # as the client side), else of its server.
    far = view.remote.ip if view.remote is not None else view.server[0]
    for name in names_for.get(far, []):
        named("dns-answer", name, STRONG, f"{name} resolved to {far}")
    if f.zoom:
        detail = f"Zoom {f.zoom.form} media encapsulation" + (
            f" ({', '.join(f.zoom.media)})" if f.zoom.media else "")
        out.append(("zoom", Evidence("zoom-encapsulation", detail, STRONG)))
    if f.stun:
        if f.stun.zoom_signature:
            out.append(("zoom", Evidence("zoom-stun", "classic STUN with Zoom's attribute "
                                         "0x0101", STRONG)))
        ms = sorted(MS_STUN_ATTRIBUTES.intersection(f.stun.attributes))
        if ms:
            out.append(("teams", Evidence("microsoft-stun-attributes",
                                          "MS-TURN/MS-ICE2 attributes " + ", ".join(ms),
                                          STRONG)))
        wa = sorted(WHATSAPP_STUN_ATTRIBUTES.intersection(f.stun.attributes))
        wa_methods = sorted(m for m in f.stun.methods if m.startswith("method-0x20"))
        if wa or wa_methods:
            out.append(("whatsapp", Evidence("whatsapp-stun", ", ".join(wa + wa_methods),
                                             STRONG)))
        for software in f.stun.software:
            app = _software_app(software)
            if app:
                out.append((app, Evidence("stun-software", software, STRONG)))
    if "whatsapp-chat" in f.protocols:
        out.append(("whatsapp", Evidence("whatsapp-chat", "WhatsApp's Noise chat prologue "
                                         "('WA' and its versions)", STRONG)))
    if f.discord_ip_discovery:
        out.append(("discord", Evidence("discord-ip-discovery",
                                        "Discord voice IP discovery exchange", STRONG)))
    if f.discord_ping:
        out.append(("discord", Evidence("discord-voice-ping",
                                        "Discord voice server ping (0x1337cafe)", STRONG)))
    if f.sip:
        out.append(("sip", Evidence("sip-signalling",
                                    f"SIP {', '.join(dict.fromkeys(f.sip.messages))}", STRONG)))
    if f.stun and f.stun.ice == "full" and f.dtls and f.dtls.srtp_profiles_offered:
        out.append(("webrtc", Evidence("webrtc", "ICE checks both ways and DTLS-SRTP",
                                       MEDIUM)))
    elif f.stun and f.stun.methods.get("binding-request") and f.dtls and (
            f.dtls.srtp_profiles_offered):
        out.append(("webrtc", Evidence("webrtc", "ICE checks and DTLS-SRTP", MEDIUM)))
    remote = view.remote
    if remote is not None and remote.asn is not None:
        operator = OPERATOR_ASNS.get(remote.asn)
        if operator:
            out.append((operator, Evidence("operator-asn", f"{remote.ip} is in AS{remote.asn} "
                                           f"({remote.organisation})", STRONG)))
    port = view.server[1]
    for app in PORT_APPS.get(port, ()):
        out.append((app, Evidence("service-port", f"{view.transport}/{port}", WEAK)))
    return out


def _software_app(software: str) -> str | None:
    s = software.lower()
    return next((app for needle, app in SOFTWARE if needle in s), None)


def _decide(cands: list[tuple[str, Evidence]]) -> AppLabel | None:
    if not cands:
        return None
    by_app: dict[str, list[Evidence]] = defaultdict(list)
    for app, ev in cands:
        by_app[app].append(ev)
    specific = [app for app in by_app if app != "webrtc"]
    if not specific:
        best = "webrtc"
    else:
        best = max(sorted(specific), key=lambda app: max(RANK[e.strength] for e in by_app[app]))
    top = max(RANK[e.strength] for e in by_app[best])
    confidence = {3: "high", 2: "medium", 1: "low"}[top]
    evidence = sorted(by_app[best], key=lambda e: -RANK[e.strength])
    if best != "webrtc" and "webrtc" in by_app:
        evidence += by_app["webrtc"]  # the generic WebRTC evidence still says what it is
    return AppLabel(best, confidence, evidence)


def _inherit(views: list[FlowView], labels: dict[int, AppLabel], key_of: object,
             signal: str, describe: object, also: frozenset[str] = frozenset()) -> None:
    """Flows sharing a key (a local socket, a server address) with a flow labelled by
    strong evidence (or by a signal in `also`) take that label, unless their own evidence
    is as strong."""
    donors: dict[object, AppLabel] = {}
    for view in views:
        label = labels.get(view.flow_id)
        if label and (RANK[label.evidence[0].strength] == RANK[STRONG]
                      or label.evidence[0].signal in also) and label.name not in (
                "webrtc", "sip"):
            donors.setdefault(key_of(view), label)  # type: ignore[operator]
    for view in views:
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


def sdp_endpoints(views: list[FlowView]) -> dict[tuple[str, int], str]:
    """Media endpoints offered in SDP bodies of SIP calls: (address, port) -> description."""
    out: dict[tuple[str, int], str] = {}
    for view in views:
        sip = view.facts.sip
        if sip is None:
            continue
        call = sip.call_ids[0] if sip.call_ids else "?"
        for media in sip.media:
            address, port = media.get("address"), media.get("port")
            if isinstance(address, str) and isinstance(port, int) and port:
                what = f"{media.get('media')} {address}:{port} offered in SDP of SIP call {call}"
                out.setdefault((address, port), what)
                # RTCP on the next port unless multiplexed (RFC 3550 section 11).
                out.setdefault((address, port + 1), "RTCP of " + what)
    return out


def identify_apps(views: list[FlowView], names_for: dict[str, list[str]]
                  ) -> dict[int, AppLabel]:
    """Label every flow that has evidence; then let flows on the same local socket as a
    strongly identified flow inherit its label (ICE and TURN reuse the socket)."""
    labels: dict[int, AppLabel] = {}
    signalled = sdp_endpoints(views)
    for view in views:
        for endpoint in (view.server, view.client):
            if endpoint in signalled and view.transport == "udp":
                view.extra.append(("sip", Evidence("sdp-media", signalled[endpoint], STRONG)))
                break
    for view in views:
        label = _decide(_candidates(view, names_for))
        if label is not None:
            labels[view.flow_id] = label
    _inherit(views, labels, lambda v: (v.transport, v.server), "same-server",
             lambda v, d: f"another connection to {v.server[0]}:{v.server[1]} was identified "
                          f"as {d.name} by {d.evidence[0].signal} ({d.evidence[0].detail})")
    # A socket that talks to a server identified strongly belongs to that app too (ICE
    # checks to the service's other addresses, its STUN servers).
    _inherit(views, labels, lambda v: (v.transport, v.client), "same-local-socket",
             lambda v, d: f"{v.client[0]}:{v.client[1]} also carries {d.name} traffic "
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
