"""Encryption verdicts from traffic alone (basis "observed").

The rules, in order, for each media flow (RULES: the first that gives a verdict decides):
1. SDES keys (`a=crypto`) sent in clear SIP for the flow's endpoint: keys-exposed.
2. Payloads with codec structure in the clear and no key exchange: plaintext.
3. The key exchange and where the encryption ends decide the rest. end-to-end needs
   positive evidence: DTLS-SRTP whose DTLS peer is another participant (full ICE both ways,
   the ends on residential or mobile networks or the parties' own SDP, and nothing -- a
   data-centre network, a certificate or DNS name of a server, a TURN relay, fan-in --
   pointing to a server). Full ICE alone is not enough: media servers run full ICE too.
   With nothing positive either way the verdict is encrypted-unverified. A proprietary key
   exchange that ends at a peer is encrypted-unverified. Encryption that ends at a
   service-operated server is hop-by-hop, at most medium confidence: without keys an inner
   end-to-end layer (such as SFrame, RFC 9605) cannot be excluded, and the evidence says so.
A verdict about media needs media packets: a flow that carried only a handshake (DTLS,
ICE, a voice server's address discovery) is unknown, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from flowscan.geo.locate import scope_of
from flowscan.identify import SIDES, FlowFacts
from flowscan.protocols.sdp import MediaOffer, offers
from flowscan.report.model import Decryption, Encryption, EvidenceItem, Flow, RemoteInfo
from flowscan.verdict.endpoints import network_kind, server_certificate, throwaway_certificate

# Apps whose media keys are negotiated by their own protocols, not visible on the wire.
PROPRIETARY_KEYING = {
    "zoom": "Zoom negotiates media keys through its own servers",
    "whatsapp": "WhatsApp negotiates SRTP keys in its own signalling",
    "discord": "Discord's voice gateway hands out the voice encryption key",
    "teams": "Teams and Skype exchange SRTP keys (SDES) inside encrypted signalling",
    "facetime": "FaceTime negotiates keys in its own signalling",
    "signal": "Signal negotiates keys in its own signalling",
    "telegram": "Telegram negotiates keys in its own signalling",
}
# Services that run media servers (SFU/MCU) which terminate transport encryption.
SERVER_APPS = {"zoom", "meet", "teams", "webex", "discord", "jitsi"}
# App evidence that is about the remote endpoint (its names, what it sends), as opposed to
# signatures of the client software, which say nothing about who terminates the media.
REMOTE_SIGNALS = {"operator-asn", "tls-sni", "quic-sni", "tls-certificate", "dtls-certificate",
                  "dns-answer", "zoom-encapsulation", "discord-ip-discovery", "discord-voice-ping",
                  "same-server", "service-port"}
T = TypeVar("T")
Ends = tuple[tuple[str, int], tuple[str, int]]  # (server, client): (address, port) each
INNER_LAYER = ("observed without keys: an inner end-to-end layer (such as SFrame, RFC 9605) "
               "cannot be excluded; the transport keys would settle it")


@dataclass
class SdesExposure:
    flow_id: int  # the SIP flow that carried the SDP in the clear
    suite: str
    key_sha256: str
    description: str


@dataclass
class VerdictContext:
    sdes: dict[tuple[str, int], SdesExposure] = field(default_factory=dict)
    sdp_plain_rtp: dict[tuple[str, int], str] = field(default_factory=dict)
    # Media endpoints offered in SDP (RTCP on the next port too) -> the SIP call's Call-ID.
    sdp_media: dict[tuple[str, int], str] = field(default_factory=dict)
    # Media endpoints whose SDP carried a=zrtp-hash (RFC 6189 section 8.1) -> the evidence.
    sdp_zrtp: dict[tuple[str, int], str] = field(default_factory=dict)
    # Set by the analysis: address -> DNS names that led to it, the address the capture
    # was taken at (if one stands out), and a geolocation lookup for either end of a flow.
    names: dict[str, list[str]] = field(default_factory=dict)
    capture_host: str | None = None
    locate: Callable[[str], RemoteInfo] | None = None
    # TURN servers (address -> the flow that allocated there) and relayed transport
    # addresses they handed out (RFC 8656 section 7.3): media to these goes via a relay.
    turn_servers: dict[str, int] = field(default_factory=dict)
    relayed: dict[str, int] = field(default_factory=dict)


# Apps whose calls carry opaque datagrams of their own (no RTP header to read) over UDP:
# a flow of theirs with datagrams both ways, beyond the samples, is their media.
OPAQUE_MEDIA_APPS = {"telegram"}
OPAQUE_MEDIA_PACKETS = 20  # each way: more than a handshake or keepalives


MEDIA_PROTOCOLS = frozenset(("rtp", "rtcp", "srtp", "zoom", "discord-voice"))
NOT_OPAQUE_MEDIA = frozenset(("dns", "quic", "gquic", "stun"))


def is_media(flow: Flow, facts: FlowFacts) -> bool:
    if not MEDIA_PROTOCOLS.isdisjoint(facts.protocols):
        return True
    if flow.app is not None and flow.app.name in OPAQUE_MEDIA_APPS and (
            flow.transport == "udp") and NOT_OPAQUE_MEDIA.isdisjoint(facts.protocols) and (
            facts.peer_tag or min(flow.to_server.packets, flow.to_client.packets)
            >= OPAQUE_MEDIA_PACKETS):
        return True
    if facts.dtls and (facts.dtls.srtp_profiles_offered or facts.dtls.srtp_profile):
        return True
    return bool(facts.turn and {"rtp", "dtls"} & set(facts.turn.relayed))


def build_context(flows: list[tuple[Flow, FlowFacts]]) -> VerdictContext:
    ctx = VerdictContext()
    for flow, facts in flows:
        if facts.stun is not None and facts.stun.methods.get("allocate-request"):
            ctx.turn_servers.setdefault(flow.server.ip, flow.id)
            for address in facts.stun.relayed_addresses:
                ctx.relayed.setdefault(address, flow.id)
        if not facts.sdp_media:
            continue  # most flows carry no SDP
        over_tls = flow.transport == "tcp" and "tls" in facts.protocols
        for offer in offers(facts.sdp_media, facts.sip):
            _read_offer(ctx, flow.id, offer, over_tls)
    return ctx


def _read_offer(ctx: VerdictContext, flow_id: int, offer: MediaOffer, over_tls: bool) -> None:
    """What one m= section says of its endpoints: the SIP call, ZRTP announced, SDES keys
    sent in the clear, or plain RTP offered."""
    m, call = offer.media, offer.call or "?"
    where = f"{m.media} {offer.address}:{m.port}"
    for endpoint in offer.endpoints:
        ctx.sdp_media.setdefault(endpoint, call)
        if m.zrtp_hash:
            ctx.sdp_zrtp.setdefault(endpoint, (
                f"SDP on flow {flow_id} (SIP call {call}) announces ZRTP for {where} with "
                "a=zrtp-hash (RFC 6189 section 8.1), binding the exchange to the signalling"))
        if m.crypto and not over_tls:
            key = m.crypto[0]
            ctx.sdes.setdefault(endpoint, SdesExposure(flow_id, key.suite, key.fingerprint,
                                                       where))
        elif m.protocol.upper() == "RTP/AVP":
            ctx.sdp_plain_rtp.setdefault(endpoint, f"SDP on flow {flow_id} offers {where} as "
                                                   "RTP/AVP (unencrypted RTP)")


def _payload_look(facts: FlowFacts) -> tuple[str | None, list[EvidenceItem]]:
    """'plain' or 'random' from the RTP payload statistics and codec frame sizes, with the
    evidence. Compressed codecs (G.729, GSM) look random byte for byte; their exact frame
    sizes still show that no authentication tag follows them."""
    if facts.rtp is None or not (facts.rtp.payload or facts.rtp.frame_sizes):
        return None, []
    looks = {side: stats for side, stats in facts.rtp.payload.items()}
    evidence = [EvidenceItem("rtp-payload", f"{side}: {stats.looks}; {stats.detail}")
                for side, stats in looks.items() if stats.looks != "insufficient"]
    evidence += [EvidenceItem("codec-frame-sizes", f"{side}: {detail}")
                 for side, detail in facts.rtp.frame_sizes.items()]
    kinds = {stats.looks for stats in looks.values()}
    if kinds & {"skewed", "codec-structure"} or facts.rtp.frame_sizes:
        return "plain", evidence
    if "random" in kinds:
        return "random", evidence
    return None, evidence


def media_packets(facts: FlowFacts) -> int:
    """Media packets among the flow's samples: RTP of senders not shown to be something
    else, RTCP, and Zoom's media encapsulation."""
    count = 0
    rtp = facts.rtp
    if rtp is not None:
        for side, n in rtp.packets.items():
            if rtp.streams.get(side) != "invalid":
                count += n
        count += rtp.rtcp_clear_packets + rtp.rtcp_trailer_packets
    if facts.zoom is not None:
        count += facts.zoom.media_packets
    return count


def _handshake_only(facts: FlowFacts) -> Encryption:
    seen = [name for name, present in (
        ("ICE/STUN", facts.stun is not None), ("TURN", facts.turn is not None),
        ("DTLS", facts.dtls is not None), ("Zoom control", facts.zoom is not None),
        ("Discord voice address discovery", facts.discord_ip_discovery or facts.discord_ping))
        if present]
    dtls = facts.dtls
    keyed = bool(dtls and (dtls.srtp_profile or dtls.srtp_profiles_offered))
    return Encryption("unknown", "unknown", "dtls-srtp" if keyed else "unknown", "observed",
                      "low", [EvidenceItem("handshake-only", f"handshake only, no media "
                                           f"packets: this flow carried {', '.join(seen)} "
                                           "and no RTP, RTCP or media payload, so there is "
                                           "no media here to judge")])


TURNS_PORT = 5349  # TURN over TLS (RFC 8656 section 3.1; IANA "turns")
TURN_ALPN = "stun.turn"  # RFC 7443 section 5


def _turn_over_tls(flow: Flow, facts: FlowFacts, ctx: VerdictContext) -> Encryption | None:
    """TURN over TLS (RFC 8656 section 3.1; RFC 6062 relays TCP the same way): whatever the
    relay forwards travels inside TLS, so neither the media nor its own protection can be
    seen. Said so, rather than leaving the flow unjudged as if it held no media."""
    tls = facts.tls
    if flow.transport != "tcp" or tls is None:
        return None
    signs = []
    if TURN_ALPN in tls.alpn_offered or tls.alpn == TURN_ALPN:
        signs.append(f"ALPN {TURN_ALPN} (RFC 7443)")
    if flow.server.port == TURNS_PORT:
        signs.append(f"port {TURNS_PORT}, TURN over TLS's")
    if flow.server.ip in ctx.turn_servers and ctx.turn_servers[flow.server.ip] != flow.id:
        signs.append(f"the address of the TURN server allocated at on flow "
                     f"{ctx.turn_servers[flow.server.ip]}")
    if not signs:
        return None
    return Encryption("unknown", "relay", "unknown", "observed", "low", [
        EvidenceItem("turn-over-tls", f"TURN over TLS to {flow.server.ip}:{flow.server.port} "
                     f"({'; '.join(signs)}): the relayed payload is inside TLS and not "
                     "visible, so whether media went through the relay, and how it is "
                     "protected inside, cannot be seen without the TLS keys (--keylog with "
                     "the client's TLS key log would open it)")])


def tls_opened(flow: Flow, facts: FlowFacts) -> EvidenceItem | None:
    """TURN over TLS opened with the key log (tlsopen): said first, since everything else
    was seen inside it."""
    if not facts.tls_opened:
        return None
    return EvidenceItem("tls-opened", f"TURN over TLS to {flow.server.ip}:{flow.server.port} "
                        f"opened with the key log ({facts.tls_opened}): the STUN, ChannelData "
                        "and media inside are judged as over TCP (RFC 8656 section 3.1)")


def judge(flow: Flow, facts: FlowFacts, ctx: VerdictContext) -> Encryption | None:
    """The flow's verdict: the first rule of RULES that gives one, in order."""
    if not is_media(flow, facts):
        return _turn_over_tls(flow, facts, ctx)
    media = media_packets(facts)
    opaque = not media and flow.app is not None and flow.app.name in OPAQUE_MEDIA_APPS
    if not media and not facts.media_unread and not opaque:
        # Every packet that could be media was read, and none was. (With such packets left
        # unread beyond the samples, the handshake is judged: the media may be there.)
        return _handshake_only(facts)
    case = _Case.of(flow, facts, ctx)
    for rule in RULES:
        verdict = rule(case)
        if verdict is not None:
            return verdict
    raise AssertionError("the last rule always gives a verdict")


@dataclass(slots=True)
class _Case:
    """What the rules read of one media flow, worked out once."""

    flow: Flow
    facts: FlowFacts
    ctx: VerdictContext
    app: str | None
    ends: Ends
    look: str | None  # "plain" or "random" from the payloads, or None
    payload: list[EvidenceItem]  # what the media payloads and RTCP show
    sip_path: EvidenceItem | None  # media straight between the SIP parties' addresses

    @classmethod
    def of(cls, flow: Flow, facts: FlowFacts, ctx: VerdictContext) -> _Case:
        look, payload = _payload_look(facts)
        srtcp = facts.rtp.srtcp_index if facts.rtp else None
        if srtcp:
            payload.append(EvidenceItem("srtcp-trailer", f"{srtcp}, before or after an "
                                        "authentication tag: the RTCP is SRTCP"))
        partly_clear = _rtcp_partly_clear(facts)
        if partly_clear is not None:
            payload.append(partly_clear)
        ends = ((flow.server.ip, flow.server.port), (flow.client.ip, flow.client.port))
        return cls(flow, facts, ctx, flow.app.name if flow.app else None, ends, look,
                   payload, _sip_path(ctx, ends))

    @property
    def sip_extra(self) -> list[EvidenceItem]:
        return [self.sip_path] if self.sip_path else []

    @property
    def sip_termination(self) -> str:
        return "peer" if self.sip_path else "unknown"

    @property
    def evidence(self) -> list[EvidenceItem]:
        """The payload evidence, and ZRTP begun but never confirmed where it was."""
        if self.facts.zrtp is None or self.facts.zrtp.confirmed:
            return list(self.payload)
        return [*self.payload, EvidenceItem("zrtp-incomplete", _zrtp_messages(self.facts) + (
            ": no Confirm exchange was seen, so no ZRTP keys were agreed on this flow"))]

    @property
    def dtls_srtp(self) -> bool:
        dtls = self.facts.dtls
        return bool(dtls and (dtls.srtp_profile or dtls.srtp_profiles_offered))

    @property
    def srtcp(self) -> str | None:
        return self.facts.rtp.srtcp_index if self.facts.rtp else None

    def offered(self, table: dict[tuple[str, int], str]) -> str | None:
        """What an SDP table says of either end of the flow, server end first."""
        return _at_either_end(table, self.ends)


def _at_either_end(table: Mapping[tuple[str, int], T], ends: Ends) -> T | None:
    """What a table of SDP endpoints holds for either end, server end first. Most captures
    carry no SDP: an empty table is not searched."""
    if not table:
        return None
    found = table.get(ends[0])
    return found if found is not None else table.get(ends[1])


def _sip_path(ctx: VerdictContext, ends: Ends) -> EvidenceItem | None:
    """Media straight between the two addresses the SIP parties offered ends at the peer."""
    if not ctx.sdp_media:
        return None
    calls = {ctx.sdp_media.get(e) for e in ends}
    if len(calls) != 1 or None in calls:
        return None
    return EvidenceItem("sdp-media-path", f"both ends of this flow are media addresses the "
                        f"parties of SIP call {calls.pop()} offered in SDP: the media goes "
                        "straight from one party to the other")


def _keys_exposed(case: _Case) -> Encryption | None:
    """1. Keys in the clear: SDES keys sent in SDP nobody encrypted."""
    exposure = _at_either_end(case.ctx.sdes, case.ends)
    if exposure is None:
        return None
    return Encryption("keys-exposed", case.sip_termination, "sdes", "observed", "high", [
        EvidenceItem("sdes-in-clear", f"SDP with a=crypto {exposure.suite} (key sha256 "
                     f"{exposure.key_sha256}) for {exposure.description} travelled "
                     f"unencrypted on flow {exposure.flow_id}: anyone on the path holds the "
                     "SRTP keys"),
        *case.sip_extra, *case.payload])


def _zrtp_agreed(case: _Case) -> Encryption | None:
    """2a. ZRTP (RFC 6189) in the media path: the media after the switch is what is
    judged."""
    if case.facts.zrtp is None or not case.facts.zrtp.confirmed:
        return None
    return _zrtp(case)


def _plaintext(case: _Case) -> Encryption | None:
    """2. Plaintext: codec structure visible (or RTCP in the clear where SDP offered plain
    RTP) and nothing negotiated keys."""
    plain_sdp = case.offered(case.ctx.sdp_plain_rtp)
    rtcp_clear = bool(case.facts.rtp and case.facts.rtp.rtcp_clear and plain_sdp)
    if (case.look != "plain" and not rtcp_clear) or case.dtls_srtp or (
            case.app in PROPRIETARY_KEYING):
        return None
    evidence = case.evidence
    if rtcp_clear:
        evidence.append(EvidenceItem("rtcp-clear", "RTCP compounds end where their lengths "
                                     "say: no SRTCP index or authentication tag"))
    if plain_sdp:
        evidence.insert(0, EvidenceItem("sdp-rtp-avp", plain_sdp))
    evidence.append(EvidenceItem("no-key-exchange", "no DTLS-SRTP handshake, SDES keys or "
                                 "proprietary media protocol seen for this flow"))
    evidence += case.sip_extra
    return Encryption("plaintext", case.sip_termination, "none", "observed",
                      "high" if plain_sdp or len(evidence) > 2 else "medium", evidence)


def _dtls_srtp_keyed(case: _Case) -> Encryption | None:
    if not case.dtls_srtp or case.facts.dtls is None:
        return None
    return _dtls_srtp(case.flow, case.facts, case.app, case.evidence, case.ctx, case.sip_path)


def _zoom_media(case: _Case) -> Encryption | None:
    return _zoom(case.facts, case.evidence) if case.facts.zoom is not None else None


def _proprietary_keyed(case: _Case) -> Encryption | None:
    if case.app not in PROPRIETARY_KEYING:
        return None
    assert case.app is not None
    return _proprietary(case.flow, case.facts, case.app, case.evidence, case.ctx)


# Items of fixed words, one object for every flow they explain (EvidenceItem is frozen).
_NO_KEY_EXCHANGE = EvidenceItem("no-key-exchange-seen", "payloads look encrypted but no key "
                                "exchange was seen, so who holds the keys is unknown")
_INSUFFICIENT = EvidenceItem("insufficient", "too few media payloads or no key exchange seen "
                             "to judge this flow")


# The evidence of a flow with nothing else to show: one tuple for all such flows.
_NO_KEY_EXCHANGE_ONLY = (_NO_KEY_EXCHANGE,)
_INSUFFICIENT_ONLY = (_INSUFFICIENT,)


def _looks_encrypted(case: _Case) -> Encryption | None:
    if case.look != "random" and not case.srtcp:
        return None
    evidence = case.evidence
    return Encryption("encrypted-unverified", "unknown", "unknown", "observed", "low",
                      (*evidence, _NO_KEY_EXCHANGE) if evidence else _NO_KEY_EXCHANGE_ONLY)


def _insufficient(case: _Case) -> Encryption:
    evidence = case.evidence
    return Encryption("unknown", "unknown", "unknown", "observed", "low",
                      (*evidence, _INSUFFICIENT) if evidence else _INSUFFICIENT_ONLY)


# The verdict rules of a media flow, in order: the first that gives a verdict decides, and
# the last always does. A new rule is one function and its place here.
RULES: tuple[Callable[[_Case], Encryption | None], ...] = (
    _keys_exposed, _zrtp_agreed, _plaintext, _dtls_srtp_keyed, _zoom_media, _proprietary_keyed,
    _looks_encrypted, _insufficient)


def _zrtp_messages(facts: FlowFacts) -> str:
    z = facts.zrtp
    assert z is not None
    sent = "; ".join(f"the {side} sent {', '.join(dict.fromkeys(types))}"
                     for side, types in z.messages.items())
    return f"ZRTP (RFC 6189) in the media path: {sent}"


def _zrtp(case: _Case) -> Encryption:
    """Keys agreed by ZRTP between the two ends that carry it (RFC 6189 section 4): a
    Diffie-Hellman exchange in the media path, so only those ends hold the SRTP keys, and a
    party in the path could read the media only as a man in the middle, which the short
    authentication string the users compare exposes (section 7). A PBX that says it is a
    trusted man in the middle (the Hello's M flag, SASrelay; sections 5.2 and 7.3) holds
    the keys itself. The clear RTP before the switch is evidence of its own, not the
    verdict: the media judged is the media sent after Confirm1/Confirm2."""
    evidence = _zrtp_evidence(case)
    for outcome in ZRTP_OUTCOMES:
        verdict = outcome(case, evidence)
        if verdict is not None:
            return verdict
    raise AssertionError("the last ZRTP outcome always gives a verdict")


def _zrtp_evidence(case: _Case) -> list[EvidenceItem]:
    """The exchange, the SDP that announced it, the clear start, and the media after."""
    z = case.facts.zrtp
    assert z is not None
    chosen = ", ".join(f"{k} {v}" for k, v in z.chosen.items())
    evidence = [EvidenceItem("zrtp-exchange", _zrtp_messages(case.facts) + (
        f" (chosen: {chosen})" if chosen else "") + "; the Confirm exchange completed, so "
        "SRTP keys were agreed between the two ends of this flow")]
    zrtp_sdp = case.offered(case.ctx.sdp_zrtp)
    if zrtp_sdp:
        evidence.append(EvidenceItem("sdp-zrtp-hash", zrtp_sdp))
    if z.clear_packets:
        counts = ", ".join(
            (f"between {n} and {z.clear_at_most[side]}" if side in z.clear_at_most
             else f"at least {n}" if z.clear_at_least else str(n))
            + f" from the {side} in the {z.clear_ms.get(side, 0.0)} ms before the switch"
            for side, n in z.clear_packets.items())
        evidence.append(EvidenceItem("zrtp-clear-start", f"RTP sent unencrypted before ZRTP "
                                     f"completed: {counts}; the verdict is about the media "
                                     "after the switch"))
    after = [EvidenceItem(e.signal, f"after the ZRTP switch: {e.detail}") for e in case.payload]
    return evidence + after + case.sip_extra


def _zrtp_nothing_after(case: _Case, evidence: list[EvidenceItem]) -> Encryption | None:
    assert case.facts.zrtp is not None
    if case.facts.zrtp.after_sampled:
        return None
    evidence.append(EvidenceItem("zrtp-no-media-after", "no media packet sent after the "
                                 "Confirm exchange was sampled, so what followed it is not "
                                 "known"))
    return Encryption("encrypted-unverified" if case.facts.media_unread else "plaintext",
                      "unknown", "zrtp", "observed", "low", evidence)


def _zrtp_not_switched(case: _Case, evidence: list[EvidenceItem]) -> Encryption | None:
    if case.look != "plain":
        return None
    evidence.append(EvidenceItem("no-srtp-after-zrtp", "the media after the Confirm exchange "
                                 "still shows codec structure: SRTP was not switched on"))
    return Encryption("plaintext", case.sip_termination, "zrtp", "observed", "high", evidence)


def _zrtp_trusted_mitm(case: _Case, evidence: list[EvidenceItem]) -> Encryption | None:
    z = case.facts.zrtp
    assert z is not None
    mitm = [side for side, types in z.messages.items() if "SASrelay" in types] + z.mitm
    if not mitm:
        return None
    evidence.append(EvidenceItem("zrtp-trusted-mitm", f"the {', '.join(sorted(set(mitm)))} "
                                 "announced itself as a PBX that terminates ZRTP (the Hello's "
                                 "M flag or SASrelay, RFC 6189 section 7.3): it holds the "
                                 "media keys"))
    return Encryption("hop-by-hop", "server", "zrtp", "observed", "medium", evidence)


def _zrtp_too_few(case: _Case, evidence: list[EvidenceItem]) -> Encryption | None:
    if case.look == "random" or case.srtcp:
        return None
    evidence.append(EvidenceItem("insufficient", "too few media payloads after the ZRTP "
                                 "switch to tell whether they are encrypted"))
    return Encryption("encrypted-unverified", "unknown", "zrtp", "observed", "low", evidence)


def _zrtp_one_way(case: _Case, evidence: list[EvidenceItem]) -> Encryption | None:
    assert case.facts.zrtp is not None
    if len(case.facts.zrtp.messages) >= 2:
        return None
    evidence.append(EvidenceItem("zrtp-one-way", "ZRTP messages were seen from one end only: "
                                 "who answered them is not shown"))
    return Encryption("encrypted-unverified", "unknown", "zrtp", "observed", "low", evidence)


def _zrtp_end_to_end(case: _Case, evidence: list[EvidenceItem]) -> Encryption:
    evidence.append(EvidenceItem("zrtp-end-to-end", "the SRTP keys come from a Diffie-Hellman "
                                 "exchange between the two ends of this flow (RFC 6189 section "
                                 "4): a party in the path could read the media only as a man "
                                 "in the middle, which the short authentication string the "
                                 "users compare would expose (section 7)"))
    return Encryption("end-to-end", "peer", "zrtp", "observed", "medium", evidence)


# What agreed ZRTP keys come to, in order: the first outcome that applies decides.
ZRTP_OUTCOMES: tuple[Callable[[_Case, list[EvidenceItem]], Encryption | None], ...] = (
    _zrtp_nothing_after, _zrtp_not_switched, _zrtp_trusted_mitm, _zrtp_too_few, _zrtp_one_way,
    _zrtp_end_to_end)


def _rtcp_partly_clear(facts: FlowFacts) -> EvidenceItem | None:
    """RTCP that parses to its last byte has no SRTCP index and tag (RFC 3711 section 3.4):
    beside protected RTCP, it was sent unprotected, with whatever metadata it carries."""
    r = facts.rtp
    if r is None or not (r.rtcp_clear_packets and r.rtcp_trailer_packets):
        return None
    names = (f"; SDES CNAME {', '.join(r.rtcp_clear_cnames[:4])}"
             if r.rtcp_clear_cnames else "")
    total = r.rtcp_clear_packets + r.rtcp_trailer_packets
    return EvidenceItem("rtcp-partly-clear", f"{r.rtcp_clear_packets} of {total} RTCP "
                        "packets sampled carry no SRTCP index or tag (each parses as RTCP to "
                        "its last byte): sent unprotected beside the protected ones "
                        f"({', '.join(r.rtcp_clear_types)}{names}); anyone on the path "
                        "reads them")


def _end(flow: Flow, side: str) -> tuple[str, int]:
    end = flow.client if side == "client" else flow.server
    return end.ip, end.port


def _local_side(flow: Flow, ctx: VerdictContext) -> str | None:
    """The flow side at the capture point, when it can be told: the capture host, else the
    only end on a private network (behind the NAT where the capture was taken)."""
    ips = {"client": flow.client.ip, "server": flow.server.ip}
    if ctx.capture_host and list(ips.values()).count(ctx.capture_host) == 1:
        return next(side for side, ip in ips.items() if ip == ctx.capture_host)
    private = [side for side, ip in ips.items() if _scope(ip) != "public"]
    return private[0] if len(private) == 1 else None


def _scope(ip: str) -> str:
    try:
        return scope_of(ip)
    except ValueError:
        return "unknown"


def _network(flow: Flow, side: str, ctx: VerdictContext) -> tuple[str, str] | None:
    """The kind of network ("hosting", "access", "private") one end of the flow sits on."""
    ip = _end(flow, side)[0]
    scope = _scope(ip)
    if scope != "public":
        return ("private", f"{ip} is a {scope} address") if scope in (
            "private", "cgnat", "unique-local") else None
    info = flow.remote if flow.remote is not None and flow.remote.ip == ip else (
        ctx.locate(ip) if ctx.locate is not None else None)
    if info is None or info.asn is None:
        return None
    return network_kind(info.asn, info.organisation)


def _dtls_side(facts: FlowFacts, role: str) -> str:
    """The flow side (client/server) of a DTLS role."""
    dtls_client = facts.dtls.dtls_client if facts.dtls else None
    if dtls_client in (None, "client"):
        return role
    return "server" if role == "client" else "client"


def _name_signals(flow: Flow, facts: FlowFacts) -> list[EvidenceItem]:
    """Names that make a DTLS end a server: its certificate, or the SNI the other end
    asked for. They hold whether or not the packets pass a relay."""
    out: list[EvidenceItem] = []
    dtls = facts.dtls
    if dtls is None:
        return out
    for role, certs in dtls.certificates.items():
        if not certs:
            continue
        why = server_certificate(certs[0])
        if why is not None:
            ip, port = _end(flow, _dtls_side(facts, role))
            out.append(EvidenceItem("dtls-certificate", f"the DTLS certificate of {ip}:{port} "
                                    f"({certs[0].get('subject')}) is a server's: {why}; a "
                                    "participant's WebRTC certificate is a self-signed "
                                    "throwaway authenticated by its fingerprint (RFC 5763 "
                                    "section 5)"))
    if dtls.sni:
        out.append(EvidenceItem("dtls-sni", f"the DTLS ClientHello asks for the server name "
                                f"{dtls.sni} (SNI, RFC 6066 section 3): the DTLS peer is a "
                                "named server, not a participant's device"))
    return out


def _fan_in(facts: FlowFacts, flow: Flow, ctx: VerdictContext
            ) -> tuple[EvidenceItem | None, EvidenceItem | None]:
    """(fan-in from the remote side, more sources sent by the local side than one
    participant sends). Only validated RTP streams count, a source grouped with its RTX
    and FEC companions; one participant sends at most audio, camera and screen (3), and
    one source of a kind, so several must also share a payload type."""
    if facts.rtp is None:
        return None, None
    local = _local_side(flow, ctx)
    remote, own = None, None
    for side in SIDES:
        groups = facts.rtp.source_groups.get(side, 0)
        same, pt = facts.rtp.same_type.get(side, (0, 0))
        if groups <= MAX_PARTICIPANT_SOURCES or same < 2:
            continue
        ip, port = _end(flow, side)
        sampled = facts.rtp.sources.get(side, [])
        listed = "; ".join("+".join(g) for g in sampled[:6]) + (
            f"; {same} of them with payload type {pt}")
        if side == local:
            own = EvidenceItem("local-sources", f"the capture's own end {ip}:{port} sends "
                               f"{groups} source groups ({listed}), more than one "
                               "participant sends: it may be a media server itself")
            continue
        remote = EvidenceItem("fan-in", f"{groups} source groups come from {ip}:{port} on "
                              f"one 5-tuple (validated RTP streams, RTX/FEC companions "
                              f"grouped: {listed}), more than one participant sends: a "
                              "mixer or SFU forwards several participants' sources and "
                              "terminates this leg's encryption")
    return remote, own


MAX_PARTICIPANT_SOURCES = 3


def _server_signals(flow: Flow, facts: FlowFacts, app: str | None,
                    ctx: VerdictContext) -> list[EvidenceItem]:
    out: list[EvidenceItem] = []
    for side in SIDES:
        kind = _network(flow, side, ctx)
        if kind is not None and kind[0] == "hosting":
            ip = _end(flow, side)[0]
            signal = "remote-network" if flow.remote and flow.remote.ip == ip else (
                "server-network")
            out.append(EvidenceItem(signal, f"{ip} is on a data-centre or service network, "
                                    f"not an access network where participants sit: "
                                    f"{kind[1]}"))
    stun = facts.stun
    if stun is not None and stun.ice == "lite-or-server":
        out.append(EvidenceItem("ice-lite", f"only {', '.join(stun.requests_from)} sends ICE "
                                "connectivity checks; the remote only answers, as ICE-lite "
                                "media servers do (RFC 8445 section 2.5)"))
    if app in SERVER_APPS and flow.app is not None:
        why = next((e for e in flow.app.evidence if e.signal in REMOTE_SIGNALS), None)
        if why is not None:
            out.append(EvidenceItem("service-media-server", f"the remote is {app}'s "
                                    f"({why.signal}: {why.detail})"))
    out += _name_signals(flow, facts)
    local = _local_side(flow, ctx)
    for side in SIDES:
        ip = _end(flow, side)[0]
        names = ctx.names.get(ip)
        if names and _scope(ip) == "public" and side != local:
            out.append(EvidenceItem("dns-name", f"{ip} is the address of "
                                    f"{', '.join(names[:3])} (DNS in this capture): a named "
                                    "host, as a service's servers are"))
    fan_in, _own = _fan_in(facts, flow, ctx)
    if fan_in is not None:
        out.append(fan_in)
    return out


def _relay_signals(flow: Flow, ctx: VerdictContext) -> list[EvidenceItem]:
    """The remote end is a TURN server or one of its relayed addresses (RFC 8656)."""
    out: list[EvidenceItem] = []
    for side in SIDES:
        ip, port = _end(flow, side)
        text = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        if text in ctx.relayed:
            out.append(EvidenceItem("turn-relayed-address", f"{text} is a relayed address a "
                                    f"TURN server handed out (flow {ctx.relayed[text]}): the "
                                    "media passes a relay, and who is behind it is not seen"))
        elif ip in ctx.turn_servers and _local_side(flow, ctx) != side:
            out.append(EvidenceItem("turn-server", f"{ip} is a TURN server (allocation on flow "
                                    f"{ctx.turn_servers[ip]}): the media passes a relay, and "
                                    "who is behind it is not seen"))
    return out


def _peer_behind_relay(flow: Flow, facts: FlowFacts, ctx: VerdictContext
                       ) -> EvidenceItem | None:
    """Positive evidence that the peer behind a TURN relay is a participant: its address
    (XOR-PEER-ADDRESS, RFC 8656 section 18.3) is itself a relayed address (another TURN
    client, as participants behind NAT are; media servers sit on public addresses and
    allocate no relays), or is on a residential or mobile network."""
    if facts.stun is None:
        return None
    for text in facts.stun.peer_addresses:
        ip = text.rpartition(":")[0]
        ip = ip.strip("[]")
        if text in ctx.relayed or ip == flow.server.ip:
            return EvidenceItem("peer-is-relayed", f"the peer address behind the relay, "
                                f"{text}, is itself a relayed address of a TURN server: the "
                                "other end is a TURN client too, as participants behind NAT "
                                "are; media servers sit on public addresses and allocate no "
                                "relays")
        info = ctx.locate(ip) if ctx.locate is not None and _scope(ip) == "public" else None
        kind = network_kind(info.asn, info.organisation) if info and info.asn else None
        if kind is not None and kind[0] == "access":
            return EvidenceItem("peer-access-network", f"the peer address behind the relay, "
                                f"{text}, is on a residential or mobile network, where "
                                f"participants' devices sit: {kind[1]}")
    return None


def _peer_signals(flow: Flow, facts: FlowFacts) -> list[EvidenceItem]:
    out: list[EvidenceItem] = []
    if facts.stun is not None and facts.stun.ice == "full":
        out.append(EvidenceItem("ice-full", "both sides send ICE connectivity checks (full "
                                "ICE, RFC 8445): participants do, and so do media servers "
                                "that do not run ICE-lite"))
    return out


def _participant_signals(flow: Flow, facts: FlowFacts, ctx: VerdictContext,
                         sip_path: EvidenceItem | None) -> tuple[list[EvidenceItem],
                                                                 list[EvidenceItem]]:
    """(positive evidence that the DTLS peer is a participant, supporting detail)."""
    positive: list[EvidenceItem] = []
    if sip_path is not None:
        positive.append(sip_path)
    kinds = {side: _network(flow, side, ctx) for side in SIDES}
    public = [k for k in kinds.values() if k is not None and k[0] == "access"]
    if public and all(k is not None and k[0] in ("access", "private") for k in kinds.values()):
        where = "; ".join(f"{_end(flow, side)[0]}: {k[1]}" for side, k in kinds.items() if k)
        nat = (" (one behind a NAT on a private network)" if len(public) < len(kinds)
               else "")
        positive.append(EvidenceItem("access-networks", "both ends are on residential or "
                                     f"mobile access networks{nat}, where participants' "
                                     f"devices sit: {where}"))
    supporting: list[EvidenceItem] = []
    certs = facts.dtls.certificates if facts.dtls else {}
    if len(certs) == 2 and all(c and throwaway_certificate(c[0]) for c in certs.values()):
        names = ", ".join(str(c[0].get("subject")) for c in certs.values())
        supporting.append(EvidenceItem("throwaway-certificates", f"both DTLS certificates "
                                       f"are self-signed with throwaway names ({names}), as "
                                       "WebRTC endpoints generate per call (RFC 5763 section "
                                       "5)"))
    return positive, supporting


def _dtls_srtp(flow: Flow, facts: FlowFacts, app: str | None,
               payload: list[EvidenceItem], ctx: VerdictContext,
               sip_path: EvidenceItem | None) -> Encryption:
    dtls = facts.dtls
    assert dtls is not None
    profile = dtls.srtp_profile or ", ".join(dtls.srtp_profiles_offered) + " offered"
    relayed = facts.turn is not None and bool(facts.turn.channel_data or
                                              facts.turn.data_indications)
    if relayed:
        behind = ", ".join(facts.stun.peer_addresses) if facts.stun else ""
        keyed = EvidenceItem("dtls-srtp", f"DTLS ({dtls.version}) relayed through the TURN "
                             f"server at {flow.server.ip}:{flow.server.port} negotiates SRTP "
                             f"keys ({profile}) with the peer behind it"
                             + (f" ({behind})" if behind else ""))
    else:
        keyed = EvidenceItem("dtls-srtp", f"DTLS ({dtls.version}) between {flow.client.ip}:"
                             f"{flow.client.port} and {flow.server.ip}:{flow.server.port} "
                             f"negotiates SRTP keys ({profile}); both ends hold them")
    server = _name_signals(flow, facts) if relayed else _server_signals(flow, facts, app, ctx)
    if server:
        return Encryption("hop-by-hop", "server", "dtls-srtp", "observed", "medium",
                          [keyed, *server, *payload, EvidenceItem("inner-layer", INNER_LAYER)])
    peer = _peer_signals(flow, facts)
    if relayed:
        behind_peer = _peer_behind_relay(flow, facts, ctx)
        _positive, supporting = _participant_signals(flow, facts, ctx, None)
        if peer and behind_peer is not None:
            return Encryption("end-to-end", "relay", "dtls-srtp", "observed", "medium", [
                keyed, EvidenceItem("turn-relay", "the relay forwards ChannelData; it is not "
                                    "the DTLS peer and sees only ciphertext"),
                *peer, EvidenceItem("ice-through-relay", "the connectivity checks of both "
                                    "ends pass through the relay"), behind_peer,
                *supporting, *payload])
        return Encryption("encrypted-unverified", "relay", "dtls-srtp", "observed", "low",
                          [keyed, EvidenceItem("turn-relay", "the media is relayed through "
                                               "TURN; nothing shows that the peer behind the "
                                               "relay is a participant rather than a media "
                                               "server"), *peer, *supporting, *payload])
    via_relay = _relay_signals(flow, ctx)
    if via_relay:
        return Encryption("encrypted-unverified", "relay", "dtls-srtp", "observed", "low",
                          [keyed, *via_relay, *peer, *payload])
    positive, supporting = _participant_signals(flow, facts, ctx, sip_path)
    _fan, own = _fan_in(facts, flow, ctx)
    if peer and positive and own is None:
        return Encryption("end-to-end", "peer", "dtls-srtp", "observed", "medium", [
            keyed, *peer, *positive, *supporting,
            EvidenceItem("no-server-signal", "no data-centre network, server certificate or "
                         "name, ICE-lite answering, fan-in or relay points to a media "
                         "server"), *payload])
    missing = ("both sides send ICE checks, but media servers running full ICE do too, and "
               if peer else "")
    return Encryption("encrypted-unverified", "unknown", "dtls-srtp", "observed", "low", [
        keyed, *peer, *supporting, *([own] if own else []), *payload,
        EvidenceItem("termination-unknown", f"{missing}nothing positive shows whether the "
                     "DTLS peer is a participant or a server: no residential or mobile "
                     "network at both ends, no SDP of both parties, no server name, "
                     "data-centre network or fan-in")])


def _zoom(facts: FlowFacts, payload: list[EvidenceItem]) -> Encryption:
    zoom = facts.zoom
    assert zoom is not None
    media = f" ({', '.join(zoom.media)})" if zoom.media else ""
    if zoom.form == "server":
        return Encryption("hop-by-hop", "server", "proprietary", "observed", "medium", [
            EvidenceItem("zoom-server-encapsulation", f"Zoom server encapsulation{media}: "
                         "the media goes to a Zoom multimedia router, which holds the "
                         "media keys in Zoom's default mode"),
            *payload, EvidenceItem("inner-layer", INNER_LAYER + " (Zoom's optional "
                                   "end-to-end mode uses the same encapsulation)")])
    return Encryption("encrypted-unverified", "peer", "proprietary", "observed", "medium", [
        EvidenceItem("zoom-p2p", f"Zoom peer-to-peer encapsulation{media}: the media goes "
                     "straight to the other participant"),
        EvidenceItem("proprietary-keying", PROPRIETARY_KEYING["zoom"] + "; the capture "
                     "cannot show who else holds the keys"), *payload])


def _proprietary(flow: Flow, facts: FlowFacts, app: str,
                 payload: list[EvidenceItem], ctx: VerdictContext) -> Encryption:
    keying = EvidenceItem("proprietary-keying", PROPRIETARY_KEYING[app] + "; the capture "
                          "cannot show who holds the keys")
    turn = facts.turn is not None or bool(facts.stun and facts.stun.methods.get(
        "allocate-request"))
    if facts.peer_tag:
        return Encryption("encrypted-unverified", "relay", "proprietary", "observed", "low", [
            EvidenceItem("peer-tag", f"every datagram the {', '.join(facts.peer_tag)} sent "
                         "begins with the same 16-byte peer tag, then opaque bytes: a relay "
                         f"(reflector) at {flow.server.ip}:{flow.server.port} matches the "
                         "call's parties by that tag and forwards the rest"), keying,
            *payload])
    if turn:
        return Encryption("encrypted-unverified", "relay", "proprietary", "observed", "low", [
            EvidenceItem("turn-relay", f"the media goes through the relay at "
                         f"{flow.server.ip}:{flow.server.port} (TURN allocation), which "
                         "forwards it to the other side"), keying, *payload])
    server = _server_signals(flow, facts, app, ctx)
    if server:
        return Encryption("hop-by-hop", "server", "proprietary", "observed", "low", [
            *server, keying, *payload, EvidenceItem("inner-layer", INNER_LAYER)])
    peer = _peer_signals(flow, facts)
    if peer:
        return Encryption("encrypted-unverified", "peer", "proprietary", "observed", "low", [
            *peer, EvidenceItem("direct-path", f"media flows directly between "
                                f"{flow.client.ip}:{flow.client.port} and "
                                f"{flow.server.ip}:{flow.server.port}, not through a relay, "
                                "and nothing names a service's server there (the remote "
                                "network's operator would settle it once geodata is used)"),
            keying, *payload])
    return Encryption("encrypted-unverified", "unknown", "proprietary", "observed", "low", [
        keying, *payload, EvidenceItem("termination-unknown", "nothing shows whether the "
                                       "other end is a participant, a relay or a server")])


def apply_decryption(enc: Encryption, dec: Decryption) -> None:
    """What the transport keys revealed (basis decrypted), issue 6's rules:
    codec frames behind keys a server holds -> hop-by-hop; an SFrame layer -> end-to-end;
    keys held by a participant (the DTLS peer shown to be one) stay end-to-end; all high
    confidence."""
    enc.decryption = dec
    opened = EvidenceItem("decrypted", f"{dec.packets_decrypted} packets decrypted, their "
                          f"authentication tags verified ({dec.tag_failures} failed), with "
                          f"keys from {dec.key_source} (key sha256 {dec.key_sha256})"
                          + (f"; {dec.unprotected_rtcp} RTCP packets had no SRTCP trailer at "
                             "all: sent unprotected" if dec.unprotected_rtcp else "")
                          + (f"; {dec.truncated} packets cut short by the capture's snap "
                             "length were not tried" if dec.truncated else "")
                          + (f"; {dec.stream_gap_bytes} bytes of the TCP stream were never "
                             "captured, so the packets in them were not tried"
                             if dec.stream_gap_bytes else ""))
    if not dec.packets_decrypted:
        enc.evidence = (*enc.evidence, EvidenceItem(
            "keys-did-not-open", f"{dec.tag_failures} packets failed authentication with the "
            f"key from {dec.key_source}: a wrong key or another session"))
        return
    enc.evidence = (*(e for e in enc.evidence if e.signal != "inner-layer"), opened,
                    EvidenceItem(f"inner-{dec.inner}", dec.inner_detail))
    enc.basis = "decrypted"
    if dec.inner == "insufficient":
        return
    enc.confidence = "high"
    if enc.verdict == "keys-exposed":
        return
    if dec.inner == "sframe":
        enc.verdict = "end-to-end"
    elif dec.inner == "codec" and enc.termination == "server":
        enc.verdict = "hop-by-hop"
    # Codec frames behind keys the DTLS peer holds are end-to-end only if that peer was
    # shown to be a participant (the observed verdict); an unverified peer may be a media
    # server, and the keys say nothing of who it is (issue 17).
