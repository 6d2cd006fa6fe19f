"""Encryption verdicts from traffic alone (basis "observed").

The rules, in order, for each media flow:
1. SDES keys (`a=crypto`) sent in clear SIP for the flow's endpoint: keys-exposed.
2. Payloads with codec structure in the clear and no key exchange: plaintext.
3. The key exchange and where the encryption ends decide the rest. end-to-end needs
   positive evidence: DTLS-SRTP whose DTLS peer is another participant (full ICE both ways,
   nothing pointing to a service's server). A proprietary key exchange that ends at a peer
   is encrypted-unverified. Encryption that ends at a service-operated server is
   hop-by-hop, at most medium confidence: without keys an inner end-to-end layer (such as
   SFrame, RFC 9605) cannot be excluded, and the evidence says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowscan.identify import FlowFacts
from flowscan.report.model import Decryption, Encryption, EvidenceItem, Flow

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


def is_media(flow: Flow, facts: FlowFacts) -> bool:
    p = set(facts.protocols)
    if p & {"rtp", "rtcp", "srtp", "zoom", "discord-voice"}:
        return True
    if facts.dtls and (facts.dtls.srtp_profiles_offered or facts.dtls.srtp_profile):
        return True
    return bool(facts.turn and {"rtp", "dtls"} & set(facts.turn.relayed))


def build_context(flows: list[tuple[Flow, FlowFacts]]) -> VerdictContext:
    ctx = VerdictContext()
    for flow, facts in flows:
        if facts.sip is None:
            continue
        over_tls = flow.transport == "tcp" and "tls" in facts.protocols
        for media in facts.sip.media:
            address, port = media.get("address"), media.get("port")
            if not isinstance(address, str) or not isinstance(port, int):
                continue
            keys = media.get("sdes") or []
            call = facts.sip.call_ids[0] if facts.sip.call_ids else "?"
            for endpoint in ((address, port), (address, port + 1)):
                ctx.sdp_media.setdefault(endpoint, call)
                if keys and not over_tls:
                    key = keys[0]  # type: ignore[index]
                    ctx.sdes.setdefault(endpoint, SdesExposure(
                        flow.id, str(key["suite"]), str(key["key_sha256"]),
                        f"{media.get('media')} {address}:{port}"))
                elif str(media.get("protocol", "")).upper() == "RTP/AVP":
                    ctx.sdp_plain_rtp.setdefault(
                        endpoint, f"SDP on flow {flow.id} offers {media.get('media')} "
                                  f"{address}:{port} as RTP/AVP (unencrypted RTP)")
    return ctx


def _payload_look(facts: FlowFacts) -> tuple[str | None, list[EvidenceItem]]:
    """'plain' or 'random' from the RTP payload statistics, with the evidence."""
    if facts.rtp is None or not facts.rtp.payload:
        return None, []
    looks = {side: stats for side, stats in facts.rtp.payload.items()}
    evidence = [EvidenceItem("rtp-payload", f"{side}: {stats.looks}; {stats.detail}")
                for side, stats in looks.items() if stats.looks != "insufficient"]
    kinds = {stats.looks for stats in looks.values()}
    if kinds & {"skewed", "codec-structure"}:
        return "plain", evidence
    if "random" in kinds:
        return "random", evidence
    return None, evidence


def judge(flow: Flow, facts: FlowFacts, ctx: VerdictContext) -> Encryption | None:
    if not is_media(flow, facts):
        return None
    app = flow.app.name if flow.app else None
    ends = ((flow.server.ip, flow.server.port), (flow.client.ip, flow.client.port))
    look, payload_evidence = _payload_look(facts)
    srtcp = facts.rtp.srtcp_index if facts.rtp else None
    if srtcp:
        payload_evidence.append(EvidenceItem("srtcp-trailer", f"{srtcp}, before or after an "
                                             "authentication tag: the RTCP is SRTCP"))
    partly_clear = _rtcp_partly_clear(facts)
    if partly_clear is not None:
        payload_evidence.append(partly_clear)

    # Media straight between the two addresses the SIP parties offered ends at the peer.
    calls = {ctx.sdp_media.get(e) for e in ends}
    sip_path = None
    if len(calls) == 1 and None not in calls:
        sip_path = EvidenceItem("sdp-media-path", f"both ends of this flow are media addresses "
                                f"the parties of SIP call {calls.pop()} offered in SDP: the "
                                "media goes straight from one party to the other")
    sip_termination = "peer" if sip_path else "unknown"
    sip_extra = [sip_path] if sip_path else []

    # 1. Keys in the clear.
    for endpoint in ends:
        exposure = ctx.sdes.get(endpoint)
        if exposure:
            return Encryption("keys-exposed", sip_termination, "sdes", "observed", "high", [
                EvidenceItem("sdes-in-clear", f"SDP with a=crypto {exposure.suite} (key "
                             f"sha256 {exposure.key_sha256}) for {exposure.description} "
                             f"travelled unencrypted on flow {exposure.flow_id}: anyone on "
                             "the path holds the SRTP keys"),
                *sip_extra, *payload_evidence])

    dtls = facts.dtls
    dtls_srtp = bool(dtls and (dtls.srtp_profile or dtls.srtp_profiles_offered))
    plain_sdp = next((ctx.sdp_plain_rtp[e] for e in ends if e in ctx.sdp_plain_rtp), None)

    # 2. Plaintext: codec structure visible (or RTCP in the clear where SDP offered plain
    # RTP) and nothing negotiated keys.
    rtcp_clear = bool(facts.rtp and facts.rtp.rtcp_clear and plain_sdp)
    if (look == "plain" or rtcp_clear) and not dtls_srtp and app not in PROPRIETARY_KEYING:
        evidence = list(payload_evidence)
        if rtcp_clear:
            evidence.append(EvidenceItem("rtcp-clear", "RTCP compounds end where their "
                                         "lengths say: no SRTCP index or authentication tag"))
        if plain_sdp:
            evidence.insert(0, EvidenceItem("sdp-rtp-avp", plain_sdp))
        evidence.append(EvidenceItem("no-key-exchange", "no DTLS-SRTP handshake, SDES keys "
                                     "or proprietary media protocol seen for this flow"))
        evidence += sip_extra
        return Encryption("plaintext", sip_termination, "none", "observed",
                          "high" if plain_sdp or len(evidence) > 2 else "medium", evidence)

    if dtls_srtp and dtls is not None:
        return _dtls_srtp(flow, facts, app, payload_evidence)
    if facts.zoom is not None:
        return _zoom(facts, payload_evidence)
    if app in PROPRIETARY_KEYING:
        return _proprietary(flow, facts, app, payload_evidence)
    if look == "random" or srtcp:
        return Encryption("encrypted-unverified", "unknown", "unknown", "observed", "low", [
            *payload_evidence,
            EvidenceItem("no-key-exchange-seen", "payloads look encrypted but no key "
                         "exchange was seen, so who holds the keys is unknown")])
    return Encryption("unknown", "unknown", "unknown", "observed", "low", [
        *payload_evidence,
        EvidenceItem("insufficient", "too few media payloads or no key exchange seen to "
                     "judge this flow")])


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


# Data-centre and service networks: a remote there is a server or relay, not a participant.
HOSTING_ASNS = {14618: "Amazon", 16509: "Amazon", 15169: "Google", 396982: "Google",
                8075: "Microsoft", 31898: "Oracle", 24940: "Hetzner", 16276: "OVH",
                14061: "DigitalOcean", 63949: "Akamai/Linode", 20473: "Vultr",
                13335: "Cloudflare", 30103: "Zoom", 13445: "Cisco Webex", 49544: "i3D.net",
                32934: "Meta", 62041: "Telegram"}


def _server_signals(flow: Flow, facts: FlowFacts, app: str | None) -> list[EvidenceItem]:
    out: list[EvidenceItem] = []
    remote = flow.remote
    if remote is not None and remote.asn in HOSTING_ASNS:
        out.append(EvidenceItem("remote-network", f"{remote.ip} is in AS{remote.asn} "
                                f"({remote.organisation}), a data-centre or service network, "
                                "not an access network where participants sit"))
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
    if facts.rtp is not None:
        for side in ("client", "server"):
            count = max(len(facts.rtp.ssrcs.get(side, [])), facts.rtp.ssrc_count.get(side, 0))
            if count >= 3:
                end = flow.server if side == "server" else flow.client
                out.append(EvidenceItem(
                    "fan-in", f"{count} SSRCs come from {end.ip}:{end.port} on one "
                    "5-tuple: a mixer or SFU forwards several participants' sources, and "
                    "terminates this leg's encryption"))
    return out


def _peer_signals(flow: Flow, facts: FlowFacts) -> list[EvidenceItem]:
    out: list[EvidenceItem] = []
    if facts.stun is not None and facts.stun.ice == "full":
        out.append(EvidenceItem("ice-full", "both sides send ICE connectivity checks, as "
                                "participants do"))
    return out


def _dtls_srtp(flow: Flow, facts: FlowFacts, app: str | None,
               payload: list[EvidenceItem]) -> Encryption:
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
    server = _server_signals(flow, facts, app)
    if server and not relayed:
        return Encryption("hop-by-hop", "server", "dtls-srtp", "observed", "medium",
                          [keyed, *server, *payload, EvidenceItem("inner-layer", INNER_LAYER)])
    peer = _peer_signals(flow, facts)
    if relayed:
        if peer:
            return Encryption("end-to-end", "relay", "dtls-srtp", "observed", "medium", [
                keyed, EvidenceItem("turn-relay", "the relay forwards ChannelData; it is not "
                                    "the DTLS peer and sees only ciphertext"),
                *peer, EvidenceItem("ice-through-relay", "the connectivity checks of both "
                                    "participants pass through the relay, so the DTLS peer "
                                    "behind it is the other participant"), *payload])
        return Encryption("encrypted-unverified", "relay", "dtls-srtp", "observed", "low",
                          [keyed, EvidenceItem("turn-relay", "the media is relayed through "
                                               "TURN; nothing shows who the peer behind the "
                                               "relay is"), *payload])
    if peer:
        return Encryption("end-to-end", "peer", "dtls-srtp", "observed", "medium", [
            keyed, *peer,
            EvidenceItem("no-server-signal", "no ICE-lite answering, service name, fan-in "
                         "or relay points to a media server"), *payload])
    return Encryption("encrypted-unverified", "unknown", "dtls-srtp", "observed", "low", [
        keyed, *payload, EvidenceItem("termination-unknown", "nothing shows whether the DTLS "
                                      "peer is a participant or a server")])


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
                 payload: list[EvidenceItem]) -> Encryption:
    keying = EvidenceItem("proprietary-keying", PROPRIETARY_KEYING[app] + "; the capture "
                          "cannot show who holds the keys")
    turn = facts.turn is not None or bool(facts.stun and facts.stun.methods.get(
        "allocate-request"))
    if turn:
        return Encryption("encrypted-unverified", "relay", "proprietary", "observed", "low", [
            EvidenceItem("turn-relay", f"the media goes through the relay at "
                         f"{flow.server.ip}:{flow.server.port} (TURN allocation), which "
                         "forwards it to the other side"), keying, *payload])
    server = _server_signals(flow, facts, app)
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
    keys held by a participant (the DTLS peer is one) -> end-to-end; all high confidence."""
    enc.decryption = dec
    opened = EvidenceItem("decrypted", f"{dec.packets_decrypted} packets decrypted, their "
                          f"authentication tags verified ({dec.tag_failures} failed), with "
                          f"keys from {dec.key_source} (key sha256 {dec.key_sha256})"
                          + (f"; {dec.unprotected_rtcp} RTCP packets had no SRTCP trailer at "
                             "all: sent unprotected" if dec.unprotected_rtcp else "")
                          + (f"; {dec.truncated} packets cut short by the capture's snap "
                             "length were not tried" if dec.truncated else ""))
    if not dec.packets_decrypted:
        enc.evidence.append(EvidenceItem("keys-did-not-open", f"{dec.tag_failures} packets "
                                         f"failed authentication with the key from "
                                         f"{dec.key_source}: a wrong key or another session"))
        return
    enc.evidence = [e for e in enc.evidence if e.signal != "inner-layer"]
    enc.evidence += [opened, EvidenceItem(f"inner-{dec.inner}", dec.inner_detail)]
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
    elif dec.inner == "codec" and enc.termination in ("peer", "relay") and (
            enc.key_exchange == "dtls-srtp"):
        enc.verdict = "end-to-end"
