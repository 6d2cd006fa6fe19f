"""The verdicts stage on crafted flows and facts: verdict.rules.build_context over all
flows, judge for each, and apply_decryption with what keys revealed."""

from __future__ import annotations

import pytest
from stagekit import LOCAL, TableLocator, app_label, flow, rtp_facts, sip_facts

from flowscan import pipeline
from flowscan.identify import FlowFacts, HandshakeFacts, RtpFacts, StunFacts
from flowscan.report.model import Decryption, Encryption, Flow
from flowscan.verdict.rules import VerdictContext, apply_decryption, build_context, judge

PHONE = ("192.0.2.10", 49170)  # the SDP's media address (RFC 5737 TEST-NET-1)
OTHER_PHONE = ("192.0.2.20", 30000)
SFU = ("34.120.10.20", 3478)  # Google Cloud (AS15169): a data-centre network
PEER = ("90.12.34.56", 61000)  # Orange (AS3215): a residential access network
LOCAL_PUBLIC = ("84.128.10.20", 50000)  # Deutsche Telekom (AS3320): access
LOCATOR = TableLocator({SFU[0]: ("US", 15169, "Google LLC"),
                        PEER[0]: ("FR", 3215, "Orange"),
                        LOCAL_PUBLIC[0]: ("DE", 3320, "Deutsche Telekom AG")})
SRTP = "SRTP_AES128_CM_HMAC_SHA1_80"


def judged(flows: list[tuple[Flow, FlowFacts]], host: str | None = LOCAL
           ) -> dict[int, Encryption | None]:
    """The stage as the pipeline runs it: one context over all flows, then each judged."""
    ctx = build_context(flows)
    ctx.capture_host, ctx.locate = host, LOCATOR.lookup
    return {f.id: judge(f, facts, ctx) for f, facts in flows}


def signals(enc: Encryption | None) -> list[str]:
    assert enc is not None
    return [e.signal for e in enc.evidence]


def stun(ice: str) -> StunFacts:
    """Connectivity checks (RFC 8445 section 7.2): both sides for full ICE, else only the
    capture's side, the other answering (ICE-lite, section 2.5)."""
    sides = ["client", "server"] if ice == "full" else ["client"]
    return StunFacts(messages=8, methods={"binding-request": 4, "binding-success": 4},
                     requests_from=sides, ice=ice)


def dtls_srtp(*, certificates: dict[str, list[dict[str, object]]] | None = None
              ) -> HandshakeFacts:
    """A complete DTLS 1.2 handshake that agreed on an SRTP profile (RFC 5764 4.1.1)."""
    return HandshakeFacts(version="DTLS 1.2", srtp_profiles_offered=[SRTP],
                          srtp_profile=SRTP, complete=True, dtls_client="client",
                          encrypted_records={"client": 2, "server": 2},
                          certificates=certificates or {})


def webrtc_media(ice: str, *, media: bool = True) -> FlowFacts:
    """ICE, DTLS-SRTP and (when media) SRTP whose payloads look random, on one 5-tuple."""
    return FlowFacts(protocols=["stun", "dtls"] + (["rtp", "srtp"] if media else []),
                     stun=stun(ice), dtls=dtls_srtp(), rtp=rtp_facts() if media else None)


# -- 1. keys in the clear -----------------------------------------------------------------

def sdes_call(over_tls: bool = False) -> list[tuple[Flow, FlowFacts]]:
    sip = flow(1, (LOCAL, 5060), ("198.51.100.7", 5061 if over_tls else 5060),
               transport="tcp" if over_tls else "udp")
    sip_facts_ = sip_facts("call-1", [PHONE], sdes=True)
    if over_tls:
        sip_facts_.protocols.insert(0, "tls")
    return [(sip, sip_facts_),
            (flow(2, PHONE, OTHER_PHONE), FlowFacts(protocols=["rtp"], rtp=rtp_facts())),
            (flow(3, (PHONE[0], PHONE[1] + 1), (OTHER_PHONE[0], OTHER_PHONE[1] + 1)),
             FlowFacts(protocols=["rtp"], rtp=rtp_facts()))]


def test_sdes_keys_in_clear_sip_expose_the_media() -> None:
    """SDES keys (RFC 4568 section 9.1) are the SRTP master keys: sent in clear SIP, they
    let anyone on the path decrypt (RFC 4568 section 8.3 requires a secure channel)."""
    verdicts = judged(sdes_call())
    assert verdicts[1] is None  # signalling is no media flow
    for flow_id in (2, 3):  # the offered port and RTCP on the next (RFC 3550 section 11)
        enc = verdicts[flow_id]
        assert enc is not None
        assert (enc.verdict, enc.key_exchange, enc.confidence, enc.basis) == (
            "keys-exposed", "sdes", "high", "observed")
        assert signals(enc)[0] == "sdes-in-clear" and "flow 1" in enc.evidence[0].detail


def test_sdes_keys_inside_tls_are_not_exposed() -> None:
    """SIP over TLS (RFC 3261 section 26.2) carries the keys encrypted."""
    enc = judged(sdes_call(over_tls=True))[2]
    assert enc is not None and enc.verdict != "keys-exposed"
    assert "sdes-in-clear" not in signals(enc)


# -- 2. plaintext -------------------------------------------------------------------------

def test_codec_structure_without_a_key_exchange_is_plaintext() -> None:
    facts = FlowFacts(protocols=["rtp"], rtp=rtp_facts("codec-structure"))
    enc = judged([(flow(1, (LOCAL, 40000), OTHER_PHONE), facts)])[1]
    assert enc is not None
    assert (enc.verdict, enc.key_exchange) == ("plaintext", "none")
    assert {"rtp-payload", "no-key-exchange"} <= set(signals(enc))


def test_codec_frame_sizes_alone_are_plaintext() -> None:
    """Payloads exactly a codec's frames leave no room for an SRTP tag (RFC 3711 3.1)."""
    frames = "G.711 u-law (static payload type 0): 20 payloads of 160 bytes"
    facts = FlowFacts(protocols=["rtp"], rtp=rtp_facts("random", payload_type=0,
                                                       frames=frames))
    enc = judged([(flow(1, (LOCAL, 40000), OTHER_PHONE), facts)])[1]
    assert enc is not None and enc.verdict == "plaintext"
    assert "codec-frame-sizes" in signals(enc)


def test_random_payloads_without_a_key_exchange_are_not_plaintext() -> None:
    facts = FlowFacts(protocols=["rtp"], rtp=rtp_facts("random"))
    enc = judged([(flow(1, (LOCAL, 40000), OTHER_PHONE), facts)])[1]
    assert enc is not None
    assert (enc.verdict, enc.key_exchange) == ("encrypted-unverified", "unknown")


def test_codec_structure_under_dtls_srtp_is_not_plaintext() -> None:
    """Keys were negotiated: the structure seen is not taken for the media in the clear."""
    facts = webrtc_media("full")
    facts.rtp = rtp_facts("codec-structure")
    enc = judged([(flow(1, (LOCAL, 50000), PEER), facts)])[1]
    assert enc is not None and enc.verdict != "plaintext" and enc.key_exchange == "dtls-srtp"


# -- 3. DTLS-SRTP: who is the DTLS peer ---------------------------------------------------

def test_dtls_srtp_to_an_ice_lite_server_is_hop_by_hop() -> None:
    """Only the client checks, the remote answers: ICE-lite, as media servers run it (RFC
    8445 section 2.5). Without keys an inner SFrame layer (RFC 9605) cannot be excluded."""
    enc = judged([(flow(1, (LOCAL, 50000), ("203.0.113.30", 3478)),
                   webrtc_media("lite-or-server"))])[1]
    assert enc is not None
    assert (enc.verdict, enc.termination, enc.key_exchange) == ("hop-by-hop", "server",
                                                                "dtls-srtp")
    assert enc.confidence in ("medium", "low")  # at most medium without keys
    assert "ice-lite" in signals(enc) and signals(enc)[-1] == "inner-layer"


def test_dtls_srtp_to_a_data_centre_is_hop_by_hop() -> None:
    enc = judged([(flow(1, (LOCAL, 50000), SFU), webrtc_media("full"))])[1]
    assert enc is not None and (enc.verdict, enc.termination) == ("hop-by-hop", "server")
    assert "inner-layer" in signals(enc) and enc.confidence != "high"


@pytest.mark.parametrize("server", [("203.0.113.31", 61000), ("198.51.100.77", 50000)])
def test_nothing_positive_about_the_peer_is_never_end_to_end(server: tuple[str, int]) -> None:
    """Full ICE alone: media servers run full ICE too, so the peer may be either."""
    enc = judged([(flow(1, (LOCAL, 50000), server), webrtc_media("full"))])[1]
    assert enc is not None
    assert (enc.verdict, enc.termination, enc.confidence) == ("encrypted-unverified",
                                                              "unknown", "low")
    assert signals(enc)[-1] == "termination-unknown"


def test_two_access_networks_with_full_ice_are_end_to_end() -> None:
    """The positive case the rule above holds back from: both ends where participants'
    devices sit (residential access networks), full ICE, nothing pointing to a server."""
    enc = judged([(flow(1, LOCAL_PUBLIC, PEER), webrtc_media("full"))], host=LOCAL_PUBLIC[0])[1]
    assert enc is not None
    assert (enc.verdict, enc.termination, enc.confidence) == ("end-to-end", "peer", "medium")
    assert {"ice-full", "access-networks", "no-server-signal"} <= set(signals(enc))


def test_a_server_certificate_outweighs_access_networks() -> None:
    cert: dict[str, object] = {"subject": "CN=sfu.example.net", "issuer": "CN=Example CA",
                               "sha256": "00" * 32, "dns_names": ["sfu.example.net"]}
    facts = webrtc_media("full")
    facts.dtls = dtls_srtp(certificates={"server": [cert]})
    enc = judged([(flow(1, LOCAL_PUBLIC, PEER), facts)], host=LOCAL_PUBLIC[0])[1]
    assert enc is not None and enc.verdict == "hop-by-hop"
    assert "dtls-certificate" in signals(enc)


def test_a_service_media_server_by_app_evidence_is_hop_by_hop() -> None:
    media = flow(1, (LOCAL, 50000), ("203.0.113.40", 19305),
                 app=app_label("meet", "dns-answer", "meet.google.com resolved to 203.0.113.40"))
    enc = judged([(media, webrtc_media("full"))])[1]
    assert enc is not None and enc.verdict == "hop-by-hop"
    assert "service-media-server" in signals(enc)


# -- handshake only -----------------------------------------------------------------------

def test_a_handshake_only_flow_is_unknown() -> None:
    enc = judged([(flow(1, (LOCAL, 50000), PEER), webrtc_media("full", media=False))])[1]
    assert enc is not None
    assert (enc.verdict, enc.termination, enc.key_exchange, enc.confidence) == (
        "unknown", "unknown", "dtls-srtp", "low")
    assert signals(enc) == ["handshake-only"]


def test_a_handshake_with_media_left_unread_is_judged() -> None:
    """The sample budget ran out: the media may be there, so the handshake decides."""
    facts = webrtc_media("lite-or-server", media=False)
    facts.media_unread = True
    enc = judged([(flow(1, (LOCAL, 50000), ("203.0.113.30", 3478)), facts)])[1]
    assert enc is not None and enc.verdict == "hop-by-hop"


def test_flows_that_carry_no_media_get_no_verdict() -> None:
    tls = FlowFacts(protocols=["tls"], tls=HandshakeFacts(version="TLS 1.3", sni="zoom.us"))
    stun_only = FlowFacts(protocols=["stun"], stun=stun("lite-or-server"))
    verdicts = judged([(flow(1, (LOCAL, 50000), SFU, transport="tcp"), tls),
                       (flow(2, (LOCAL, 50001), SFU), stun_only)])
    assert verdicts == {1: None, 2: None}


def test_build_context_finds_sdp_media_and_turn_relays() -> None:
    allocate = FlowFacts(protocols=["stun", "turn"], stun=StunFacts(
        messages=2, methods={"allocate-request": 1, "allocate-success": 1},
        relayed_addresses=["198.51.100.50:49152"]))
    ctx = build_context([(flow(1, (LOCAL, 5060), ("198.51.100.7", 5060)),
                          sip_facts("call-9", [PHONE])),
                         (flow(2, (LOCAL, 50000), ("198.51.100.50", 3478)), allocate)])
    assert isinstance(ctx, VerdictContext)
    assert ctx.sdp_media == {PHONE: "call-9", (PHONE[0], PHONE[1] + 1): "call-9"}
    assert set(ctx.sdp_plain_rtp) == {PHONE, (PHONE[0], PHONE[1] + 1)}  # RTP/AVP offered
    assert ctx.sdes == {}
    assert ctx.turn_servers == {"198.51.100.50": 2}
    assert ctx.relayed == {"198.51.100.50:49152": 2}


# -- what keys revealed -------------------------------------------------------------------

def decryption(inner: str, packets: int = 200) -> Decryption:
    return Decryption(packets_decrypted=packets, tag_failures=0 if packets else 50,
                      key_source="the key log", key_sha256="ab12cd34ef56ab78", inner=inner,
                      inner_detail=f"crafted: {inner} inside")


def observed(verdict: str, termination: str) -> Encryption:
    enc = judged([(flow(1, (LOCAL, 50000), ("203.0.113.30", 3478)),
                   webrtc_media("lite-or-server"))])[1]
    assert enc is not None
    enc.verdict, enc.termination = verdict, termination
    return enc


def test_codec_frames_behind_a_servers_keys_are_hop_by_hop() -> None:
    enc = observed("hop-by-hop", "server")
    apply_decryption(enc, decryption("codec"))
    assert (enc.verdict, enc.basis, enc.confidence) == ("hop-by-hop", "decrypted", "high")
    assert "inner-layer" not in signals(enc)  # the caveat is settled
    assert signals(enc)[-2:] == ["decrypted", "inner-codec"]
    assert enc.decryption is not None and enc.decryption.inner == "codec"


def test_an_sframe_layer_inside_is_end_to_end() -> None:
    """SFrame (RFC 9605) encrypts the frames end to end inside the hop's SRTP."""
    enc = observed("hop-by-hop", "server")
    apply_decryption(enc, decryption("sframe"))
    assert (enc.verdict, enc.basis, enc.confidence) == ("end-to-end", "decrypted", "high")
    assert "inner-sframe" in signals(enc)


def test_codec_frames_do_not_make_an_unverified_peer_a_participant() -> None:
    enc = observed("encrypted-unverified", "unknown")
    apply_decryption(enc, decryption("codec"))
    assert enc.verdict == "encrypted-unverified" and enc.basis == "decrypted"


def test_keys_that_open_nothing_change_nothing() -> None:
    enc = observed("hop-by-hop", "server")
    apply_decryption(enc, decryption("insufficient", packets=0))
    assert (enc.verdict, enc.basis, enc.confidence) == ("hop-by-hop", "observed", "medium")
    assert signals(enc)[-1] == "keys-did-not-open" and "inner-layer" in signals(enc)


def test_flows_with_nothing_to_judge_share_one_evidence_not_one_encryption() -> None:
    """The verdict of fixed words is one evidence tuple for every such flow; each flow keeps
    its own Encryption, as the sessions stage numbers each (encryption.session)."""
    flows = [(flow(n, (LOCAL, 40000 + n), OTHER_PHONE),
              FlowFacts(protocols=["rtp"], rtp=RtpFacts(packets={"client": 1}))) for n in (1, 2)]
    one, two = judged(flows).values()
    assert one is not None and two is not None and one is not two
    assert one.verdict == "unknown" and signals(one) == ["insufficient"]
    assert one.evidence is two.evidence and isinstance(one.evidence, tuple)
    one.session = 1
    assert two.session is None


def test_flows_judged_alike_share_a_verdict_and_decryption_changes_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pipeline.judge_flows keeps one Encryption for verdicts alike in every field (here:
    two flows of one RTP packet, too few to judge); what keys reveal for one of them
    (pipeline.decrypt) changes that flow's own copy, never the other's verdict."""
    facts = FlowFacts(protocols=["rtp"], rtp=RtpFacts(packets={"client": 1}))
    flows = [(flow(n, (LOCAL, 50000 + n), SFU), facts) for n in (1, 2)]
    pipeline.judge_flows(flows, {}, LOCATOR, LOCAL)
    first, second = (f.encryption for f, _ in flows)
    assert first is second and first is not None and first.verdict == "unknown"
    opened = Decryption(80, 0, "crafted key log", "0" * 16, "codec", "crafted codec frames")
    monkeypatch.setattr(pipeline, "decrypt_flows", lambda keys, flows: {1: opened})
    pipeline.decrypt(flows, None)  # type: ignore[arg-type]  # decrypt_flows is replaced
    decrypted, other = (f.encryption for f, _ in flows)
    assert decrypted is not None and decrypted.basis == "decrypted"
    assert decrypted.decryption is opened
    assert other is second and other is not None
    assert other.basis == "observed" and other.decryption is None
